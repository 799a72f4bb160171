//! Lambda entry point of the `calls` function: API Gateway HTTP requests (the call routes
//! and page) and API Gateway WebSocket events (signaling), told apart by their shape.

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
    let app = calls::App::from_source(&ProcessEnv, environment_credentials())?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let payload = event.payload;
        // WebSocket events carry an eventType (CONNECT, MESSAGE, DISCONNECT).
        if payload["requestContext"].get("eventType").is_some() {
            return Ok::<Value, Error>(calls::handle_websocket(app, payload).await);
        }
        let req = request::from_str(&payload.to_string())?;
        Ok(calls::to_api_gateway_response(
            calls::handle_http(app, req).await,
        ))
    }))
    .await
}
