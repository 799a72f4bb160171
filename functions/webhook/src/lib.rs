//! `webhook`: what channel providers call. For now the Meta subscription handshake;
//! message and status ingest build on it.
//!
//! [`handle`] is what Lambda runs and what the dev server and tests call.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::Error;
use shared::config::{ConfigError, MetaSettings, Source};
use shared::domain::meta::verify_subscription;
use shared::http::{self, respond};
use tracing::{Instrument, info, info_span};

/// Settings and clients, built once per process.
#[derive(Debug, Clone)]
pub struct App {
    meta: MetaSettings,
}

impl App {
    /// Builds the app from configuration (reads no environment itself).
    pub fn from_source(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            meta: MetaSettings::from_source(env)?,
        })
    }
}

/// Handles one API Gateway request. Never fails: every error is a response.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let span = info_span!(
        "request",
        function = "webhook",
        request_id = %http::request_id(&req),
        route = %http::route_key(&req),
    );
    async move { respond(route(app, &req)) }
        .instrument(span)
        .await
}

fn route(app: &App, req: &Request) -> Result<Response<Body>, Error> {
    match http::route_key(req) {
        "GET /webhooks/whatsapp" | "GET /webhooks/messenger" | "GET /webhooks/instagram" => {
            let challenge = verify_subscription(
                http::query(req, "hub.mode"),
                http::query(req, "hub.verify_token"),
                http::query(req, "hub.challenge"),
                &app.meta.verify_token,
            )?;
            info!("meta subscription verified");
            Ok(http::text(StatusCode::OK, challenge))
        }
        _ => Err(Error::NotFound { what: "route" }),
    }
}
