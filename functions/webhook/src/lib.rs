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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const HANDSHAKE: &str = include_str!("../../fixtures/apigw-v2-meta-handshake.json");

    fn app() -> App {
        let env: HashMap<String, String> = [
            ("META_APP_SECRET", "fixture-app-secret"),
            ("META_VERIFY_TOKEN", "fixture-verify-token"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        App::from_source(&env).expect("config")
    }

    #[tokio::test]
    async fn api_gateway_handshake_event_gets_the_challenge_back() {
        let req = lambda_http::request::from_str(HANDSHAKE).unwrap();
        let response = handle(&app(), req).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body().as_ref(), b"1158201444");
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn handshake_with_another_token_is_forbidden() {
        let event = HANDSHAKE.replace("fixture-verify-token", "guess");
        let req = lambda_http::request::from_str(&event).unwrap();
        assert_eq!(handle(&app(), req).await.status(), StatusCode::FORBIDDEN);
    }
}
