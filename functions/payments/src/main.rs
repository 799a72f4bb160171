//! Lambda entry point of the `payments` function: API Gateway HTTP requests (payment
//! settings, products, payment links, the Stripe webhook).

// The SDK futures nested in one service future are deep.
#![recursion_limit = "256"]

use lambda_http::{Error, Request, service_fn};
use shared::adapters::aws::environment_credentials;
use shared::config::ProcessEnv;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = payments::App::from_source(&ProcessEnv, environment_credentials())?;
    let app = &app;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(payments::handle_http(app, req).await)
    }))
    .await
}
