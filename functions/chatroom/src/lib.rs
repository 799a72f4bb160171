//! `chatroom`: the agent API (health, channels; conversations and more in later routes).
//!
//! [`handle`] is what Lambda runs and what the dev server and tests call.

use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::Error;
use shared::adapters::aws::{SharedCredentialsProvider, dynamodb_client, sdk_config};
use shared::adapters::dynamo::DynamoStore;
use shared::config::{Config, ConfigError, Source};
use shared::http::{self, json, respond};
use shared::service::channels;
use tracing::{Instrument, info_span};

/// Clients and settings, built once per process.
#[derive(Debug, Clone)]
pub struct App {
    store: DynamoStore,
}

impl App {
    /// Builds the app from configuration (reads no environment itself).
    pub fn from_source(
        env: &impl Source,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ConfigError> {
        let config = Config::from_source(env)?;
        let sdk = sdk_config(&config.aws, credentials);
        let dynamo = dynamodb_client(&sdk);
        Ok(Self {
            store: DynamoStore::new(dynamo, config.table_name),
        })
    }
}

/// Handles one API Gateway request. Never fails: every error is a response.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let span = info_span!(
        "request",
        function = "chatroom",
        request_id = %http::request_id(&req),
        route = %http::route_key(&req),
    );
    async move { respond(route(app, &req).await) }
        .instrument(span)
        .await
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, Error> {
    match http::route_key(req) {
        "GET /health" => Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"}))),
        "POST /channels" => {
            let principal = http::principal(req)?;
            principal.require_admin()?;
            let body = http::json_body(req)?;
            let channel =
                channels::connect_channel(&app.store, &principal, body, Utc::now()).await?;
            Ok(json(StatusCode::CREATED, &channel))
        }
        "GET /channels" => {
            let principal = http::principal(req)?;
            let page = http::page_request(req)?;
            let channels = channels::list_channels(&app.store, &principal, &page).await?;
            Ok(json(StatusCode::OK, &channels))
        }
        _ => Err(Error::NotFound { what: "route" }),
    }
}
