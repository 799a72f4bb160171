//! Lambda entry point of the `outbound` function: wiring only.

use std::convert::Infallible;

use lambda_http::{Error, run, service_fn};
use shared::adapters::aws::environment_credentials;
use shared::config::ProcessEnv;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = outbound::App::from_source(&ProcessEnv, environment_credentials())?;
    let app = &app;
    run(service_fn(move |req| async move {
        Ok::<_, Infallible>(outbound::handle(app, req).await)
    }))
    .await
}
