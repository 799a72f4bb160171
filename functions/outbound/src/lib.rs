//! `outbound`: agents' messages to customers.
//!
//! - `POST /conversations/{id}/messages`: window and template rules, then the channel's
//!   provider API; `202` with the accepted (`pending`) message, which the same invocation
//!   then moves to `sent` (with the provider's id) or `failed` (with the reason and fix).
//! - `POST /conversations`: a business-initiated WhatsApp conversation, started with a
//!   template.
//!
//! [`handle`] is what Lambda runs and what the dev server and tests call. The sending is
//! the shared [`Outbound`] service, the same one every other sender holds.

use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::Error;
use shared::adapters::aws::{
    DynamoDbClient, SharedCredentialsProvider, dynamodb_client, s3_client, sdk_config,
};
use shared::adapters::cache::CachedDirectory;
use shared::adapters::channels::Channels;
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::s3::S3Media;
use shared::config::{Config, ConfigError, OutboundSettings, ProviderUrls, Source};
use shared::domain::actor::Actor;
use shared::domain::auth::Principal;
use shared::domain::ids::ConversationId;
use shared::domain::outbound::{IdempotencyKey, SendMessage};
use shared::http::{self, json};
use shared::service::outbound::{Outbound, SendRequest, StartConversation, digest};

/// The send service as deployed: DynamoDB, the cached channel directory, the providers'
/// APIs and the media bucket.
pub type Service = Outbound<DynamoStore, CachedDirectory<DynamoStore>, Channels, S3Media>;

/// Clients and settings, built once per process.
#[derive(Debug)]
pub struct App {
    outbound: Service,
}

/// Builds the send service from configuration around given AWS clients: any function that
/// sends holds one of these.
///
/// # Errors
/// A [`ConfigError`] naming the variable that is missing or wrong (`MEDIA_BUCKET`,
/// `META_GRAPH_URL`, `WECHAT_API_URL`, `OUTBOUND_*`).
pub fn service(
    env: &impl Source,
    config: &Config,
    dynamo: DynamoDbClient,
    s3: aws_sdk_s3::Client,
    credentials: SharedCredentialsProvider,
) -> Result<Service, ConfigError> {
    let bucket = env.required("MEDIA_BUCKET")?;
    let settings = OutboundSettings::from_source(env)?;
    let store = DynamoStore::new(dynamo, config.table_name.clone());
    // WeChat tokens: one per account for the whole deployment, kept in the table.
    let channels = Channels::new(ProviderUrls::from_source(env)?, settings.call_timeout)
        .map_err(|reason| ConfigError::Invalid {
            name: "META_GRAPH_URL",
            reason,
        })?
        .with_wechat_tokens(store.clone());
    let objects = S3Media::new(
        s3,
        bucket,
        config.aws.region.clone(),
        config.aws.endpoint_url.as_deref(),
        credentials,
    );
    Ok(Outbound::new(
        store.clone(),
        CachedDirectory::new(store),
        channels,
        objects,
        settings,
    ))
}

impl App {
    /// Builds the app from configuration (reads no environment itself).
    pub fn from_source(
        env: &impl Source,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ConfigError> {
        let config = Config::from_source(env)?;
        let sdk = sdk_config(&config.aws, credentials.clone());
        Self::with_clients(
            env,
            &config,
            dynamodb_client(&sdk),
            s3_client(&sdk, &config.aws),
            credentials,
        )
    }

    /// Builds the app around given clients (measurements attach interceptors to them).
    pub fn with_clients(
        env: &impl Source,
        config: &Config,
        dynamo: DynamoDbClient,
        s3: aws_sdk_s3::Client,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            outbound: service(env, config, dynamo, s3, credentials)?,
        })
    }
}

/// Handles one API Gateway request. Never fails: every error is a response.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::serve("outbound", &req, |req| route(app, req)).await
}

/// One parsed request of this function.
enum Call {
    Send {
        principal: Principal,
        conversation: ConversationId,
        request: SendRequest,
    },
    Start {
        principal: Principal,
        start: StartConversation,
        idempotency: (Option<IdempotencyKey>, String),
    },
}

/// The `Idempotency-Key` header (checked), if any, and a hash of the body it must come with.
fn idempotency(
    req: &Request,
    body: &serde_json::Value,
) -> Result<(Option<IdempotencyKey>, String), Error> {
    let key = req
        .headers()
        .get("idempotency-key")
        .map(|v| IdempotencyKey::parse(&String::from_utf8_lossy(v.as_bytes())))
        .transpose()?;
    Ok((key, digest(body.to_string().as_bytes())))
}

/// Reads the route, the caller, the path and the body once.
fn parse(req: &Request) -> Result<Call, Error> {
    match http::route_key(req) {
        "POST /conversations/{id}/messages" => {
            let principal = http::principal(req)?;
            let id = http::path_param(req, "id").unwrap_or_default();
            let conversation = ConversationId::parse(id).map_err(|_| Error::NotFound {
                what: "conversation",
            })?;
            let value = http::json_value(req)?;
            let (idempotency_key, body_hash) = idempotency(req, &value)?;
            let message: SendMessage = http::from_json(value)?;
            Ok(Call::Send {
                principal,
                conversation,
                request: SendRequest {
                    message,
                    idempotency_key,
                    body_hash,
                    bot_version: None,
                },
            })
        }
        "POST /conversations" => {
            let principal = http::principal(req)?;
            let value = http::json_value(req)?;
            let idempotency = idempotency(req, &value)?;
            let start: StartConversation = http::from_json(value)?;
            Ok(Call::Start {
                principal,
                start,
                idempotency,
            })
        }
        _ => Err(Error::NotFound { what: "route" }),
    }
}

/// The answer to a send: the (first) message, and every message when a send was split.
fn accepted(
    messages: &[shared::domain::conversation::Message],
) -> Result<serde_json::Value, Error> {
    let first = messages
        .first()
        .ok_or_else(|| Error::Internal("a send produced no message".into()))?;
    let mut body = serde_json::to_value(first).map_err(|e| Error::Internal(e.to_string()))?;
    body["messages"] = json!(messages);
    Ok(body)
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, Error> {
    match parse(req)? {
        Call::Send {
            principal,
            conversation,
            request,
        } => {
            let actor = Actor::agent(principal.agent_id.as_str());
            let messages = app
                .outbound
                .send(
                    &actor,
                    &principal.tenant_id,
                    &conversation,
                    request,
                    Utc::now(),
                )
                .await?;
            Ok(json(StatusCode::ACCEPTED, &accepted(&messages)?))
        }
        Call::Start {
            principal,
            start,
            idempotency,
        } => {
            let actor = Actor::agent(principal.agent_id.as_str());
            let (conversation, messages) = app
                .outbound
                .start(&actor, &principal.tenant_id, start, idempotency, Utc::now())
                .await?;
            let mut body =
                serde_json::to_value(&conversation).map_err(|e| Error::Internal(e.to_string()))?;
            body["message"] = accepted(&messages)?;
            Ok(json(StatusCode::ACCEPTED, &body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEND: &str = include_str!("../../fixtures/apigw-v2-send-message.json");

    /// An app whose AWS endpoint accepts no connections: these tests must not reach AWS.
    fn app() -> App {
        let (env, credentials) = shared::fakes::unreachable_aws(&[("MEDIA_BUCKET", "media")]);
        App::from_source(&env, credentials).expect("config")
    }

    async fn send(body: &str) -> (StatusCode, serde_json::Value) {
        let mut event: serde_json::Value = serde_json::from_str(SEND).unwrap();
        event["body"] = json!(body);
        let req = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response = handle(&app(), req).await;
        let body = serde_json::from_slice(response.body().as_ref()).unwrap();
        (response.status(), body)
    }

    #[tokio::test]
    async fn bad_messages_are_refused_before_any_io() {
        let (status, body) = send(r#"{"kind":"text"}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["code"], "invalid_message");
        let (status, body) = send(r#"{"kind":"hologram","text":"x"}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["code"], "invalid_body");
        let (status, _) = send("{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
