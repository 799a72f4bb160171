//! `calls`: video calls (SPEC §12).
//!
//! HTTP (API Gateway HTTP API): `POST /conversations/{id}/calls`, `GET /calls/{id}` (JWT)
//! and the public call page `GET /call/{token}`. WebSocket (API Gateway WebSocket API):
//! `$connect` (`?token=`), `signal`, `$disconnect`, relayed through the management API.
//! [`handle_http`] and [`handle_websocket`] are what Lambda runs and what the dev server
//! calls.

mod page;
mod signaling;

use chrono::Utc;
use lambda_http::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use shared::Error;
use shared::adapters::aws::{
    SharedCredentialsProvider, dynamodb_client, s3_client, scheduler_client, sdk_config,
};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::scheduler::EventBridgeSchedules;
use shared::config::{Config, ConfigError, Source, public_base_url, schedule_target};
use shared::http::{self, json};
use shared::service::calls::{self, Links};
use tracing::{Instrument, error, info_span};

pub use shared::http::to_api_gateway_response;

/// The AWS clients the app uses besides the management API's.
#[derive(Debug, Clone)]
pub struct Clients {
    /// DynamoDB (calls, connections, the send path).
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// S3 (the send path's media).
    pub s3: aws_sdk_s3::Client,
    /// EventBridge Scheduler (a call's expiry).
    pub scheduler: aws_sdk_scheduler::Client,
}

/// Clients, the send service, the schedules and where pages and signaling live, built
/// once per process.
#[derive(Debug)]
pub struct App {
    store: DynamoStore,
    schedules: EventBridgeSchedules,
    outbound: outbound::Service,
    signaling: signaling::Management,
    public_base_url: String,
    signaling_url: String,
    stun_urls: Vec<String>,
}

impl App {
    /// Builds the app from configuration (reads no environment itself).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable that is missing or wrong (`PUBLIC_BASE_URL`,
    /// `SIGNALING_URL`, `STUN_URLS`, the schedules' and the send service's).
    pub fn from_source(
        env: &impl Source,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ConfigError> {
        let config = Config::from_source(env)?;
        let sdk = sdk_config(&config.aws, credentials.clone());
        let clients = Clients {
            dynamodb: dynamodb_client(&sdk),
            s3: s3_client(&sdk, &config.aws),
            scheduler: scheduler_client(&sdk),
        };
        Self::with_clients(env, &config, clients, sdk, credentials)
    }

    /// Builds the app around given clients (measurements attach interceptors to them);
    /// `sdk` makes the management API's clients.
    ///
    /// # Errors
    /// As [`App::from_source`].
    pub fn with_clients(
        env: &impl Source,
        config: &Config,
        clients: Clients,
        sdk: aws_config::SdkConfig,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ConfigError> {
        let signaling_url = env.required("SIGNALING_URL")?;
        if !(signaling_url.starts_with("wss://") || signaling_url.starts_with("ws://")) {
            return Err(ConfigError::Invalid {
                name: "SIGNALING_URL",
                reason: "must be a ws:// or wss:// URL".into(),
            });
        }
        let stun_urls: Vec<String> = env
            .optional("STUN_URLS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = stun_urls
            .iter()
            .find(|u| !(u.starts_with("stun:") || u.starts_with("stuns:")))
        {
            return Err(ConfigError::Invalid {
                name: "STUN_URLS",
                reason: format!("{bad} is not a stun: or stuns: URL"),
            });
        }
        let Clients {
            dynamodb,
            s3,
            scheduler,
        } = clients;
        Ok(Self {
            store: DynamoStore::new(dynamodb.clone(), config.table_name.clone()),
            schedules: EventBridgeSchedules::new(scheduler, schedule_target(env)?),
            outbound: outbound::service(env, config, dynamodb, s3, credentials)?,
            signaling: signaling::Management::new(
                sdk,
                env.optional("SIGNALING_MANAGEMENT_URL")
                    .filter(|v| !v.is_empty()),
            ),
            public_base_url: public_base_url(env)?,
            signaling_url: signaling_url.trim_end_matches('/').to_owned(),
            stun_urls,
        })
    }
}

/// Handles one HTTP request. Never fails: every error is a response.
pub async fn handle_http(app: &App, req: Request) -> Response<Body> {
    if http::route_key(&req) == "GET /call/{token}" {
        return page::serve(app, &req).await;
    }
    http::serve("calls", &req, |req| route(app, req)).await
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, Error> {
    let principal = http::principal(req)?;
    let id = http::path_param(req, "id").unwrap_or_default();
    match http::route_key(req) {
        "POST /conversations/{id}/calls" => {
            let empty = match req.body() {
                Body::Empty => true,
                Body::Text(t) => t.trim().is_empty(),
                Body::Binary(b) => b.is_empty(),
                _ => false,
            };
            let body = if empty {
                Value::Null
            } else {
                http::json_value(req)?
            };
            let links = Links {
                public_base_url: &app.public_base_url,
                signaling_url: &app.signaling_url,
            };
            let created = calls::start(
                &app.store,
                &app.schedules,
                &app.outbound,
                &principal,
                id,
                body,
                links,
                Utc::now(),
            )
            .await?;
            Ok(json(StatusCode::CREATED, &created))
        }
        "GET /calls/{id}" => Ok(json(
            StatusCode::OK,
            &calls::get(&app.store, &principal, id).await?,
        )),
        _ => Err(Error::NotFound { what: "route" }),
    }
}

/// Handles one API Gateway WebSocket event (`$connect`, `$disconnect`, `signal`,
/// `$default`): the proxy response JSON (`statusCode` 200, or 403 for a refused
/// `$connect`; 500 when the store failed, so API Gateway reports it).
pub async fn handle_websocket(app: &App, event: Value) -> Value {
    let event: ApiGatewayWebsocketProxyRequest = match serde_json::from_value(event) {
        Ok(e) => e,
        Err(e) => {
            error!(error = %e, "not an API Gateway WebSocket event");
            return json!({"statusCode": 400});
        }
    };
    let context = &event.request_context;
    let connection = context.connection_id.clone().unwrap_or_default();
    let route = context.route_key.clone().unwrap_or_default();
    let span =
        info_span!("websocket", function = "calls", route = %route, connection = %connection);
    let endpoint = context
        .domain_name
        .as_deref()
        .zip(context.stage.as_deref())
        .map(|(domain, stage)| format!("https://{domain}/{stage}"));
    let signaling = app.signaling.for_endpoint(endpoint.as_deref());
    let now = Utc::now();
    let result = async {
        match route.as_str() {
            "$connect" => {
                let token = event
                    .query_string_parameters
                    .first("token")
                    .map(str::to_owned);
                let admitted = calls::connect(
                    &app.store,
                    &signaling,
                    token.as_deref(),
                    &connection,
                    chrono::DateTime::from_timestamp_millis(context.connected_at)
                        .filter(|at| *at <= now)
                        .unwrap_or(now),
                    now,
                )
                .await?;
                Ok(if admitted { 200 } else { 403 })
            }
            "$disconnect" => {
                calls::disconnect(&app.store, &signaling, &connection, now).await?;
                Ok(200)
            }
            _ => {
                let body = event.body.as_deref().unwrap_or_default();
                // The page's keep-alive (`{"action":"ping"}`, every 4 minutes, against API
                // Gateway's 10-minute idle timeout): nothing to read, nothing to answer.
                if route == "$default" && calls::is_ping(body) {
                    return Ok(200);
                }
                calls::signal(&app.store, &signaling, &connection, body, now).await?;
                Ok::<u16, Error>(200)
            }
        }
    }
    .instrument(span)
    .await;
    match result {
        Ok(status) => json!({"statusCode": status}),
        Err(e) => {
            error!(cause = %e, "signaling failed");
            json!({"statusCode": 500})
        }
    }
}
