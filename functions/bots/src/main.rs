//! Lambda entry point of the `bots` function: EventBridge `MessageReceived` events.

// The SDK futures nested in one service future are deep.
#![recursion_limit = "256"]

use lambda_http::Error;
use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::Value;
use shared::adapters::aws::environment_credentials;
use shared::config::ProcessEnv;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = bots::App::from_source(&ProcessEnv, environment_credentials())?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let outcome = bots::handle_event(app, &event.payload).await?;
        Ok::<Value, Error>(serde_json::json!({"outcome": outcome}))
    }))
    .await
}
