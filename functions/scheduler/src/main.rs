//! Lambda entry point of the `scheduler` function: HTTP requests, EventBridge Scheduler
//! invocations (the schedule's input) and EventBridge `MessageReceived` events.

// The SDK futures nested in one service future are deep.
#![recursion_limit = "256"]

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use lambda_http::{Error, request};
use serde_json::Value;
use shared::adapters::aws::environment_credentials;
use shared::config::ProcessEnv;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = scheduler::App::from_source(&ProcessEnv, environment_credentials())?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let payload = event.payload;
        if payload.get("routeKey").is_some() {
            let req = request::from_str(&payload.to_string())?;
            let response = scheduler::handle_http(app, req).await;
            return Ok::<Value, Error>(scheduler::to_api_gateway_response(response));
        }
        let outcome = scheduler::handle_event(app, &payload).await?;
        Ok(serde_json::json!({"outcome": outcome}))
    }))
    .await
}
