//! `outbound`: agents' messages to customers.
//!
//! - `POST /conversations/{id}/messages`: window and template rules, then the channel's
//!   provider API; `202` with the accepted (`pending`) message, which the same invocation
//!   then moves to `sent` (with the provider's id) or `failed` (with the reason and fix).
//! - `POST /conversations`: a business-initiated WhatsApp conversation, started with a
//!   template.
//!
//! [`handle`] is what Lambda runs and what the dev server and tests call.

use std::time::Duration;

use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::Error;
use shared::adapters::aws::{
    DynamoDbClient, SharedCredentialsProvider, dynamodb_client, s3_client, sdk_config,
};
use shared::adapters::cache::CachedDirectory;
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::provider::{CALL_TIMEOUT, ProviderClient};
use shared::adapters::s3::S3Media;
use shared::config::{Config, ConfigError, DEFAULT_META_GRAPH_URL, DEFAULT_WECHAT_API_URL, Source};
use shared::domain::outbound::{RetryPolicy, SendMessage, Sender};
use shared::http::{self, json};
use shared::service::outbound::{self, SendPorts, SendRequest, StartConversation, digest};

/// How long one request may spend sending when `OUTBOUND_SEND_BUDGET_MS` is not set: the
/// function's 29 s timeout less time to record the outcome.
const DEFAULT_SEND_BUDGET: Duration = Duration::from_secs(25);

/// Clients and settings, built once per process.
#[derive(Debug)]
pub struct App {
    store: DynamoStore,
    directory: CachedDirectory<DynamoStore>,
    objects: S3Media,
    provider: ProviderClient,
    retry: RetryPolicy,
    budget: Duration,
    call_timeout: Duration,
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
        let bucket = env.required("MEDIA_BUCKET")?;
        let store = DynamoStore::new(dynamo, config.table_name.clone());
        let graph = env
            .optional("META_GRAPH_URL")
            .unwrap_or_else(|| DEFAULT_META_GRAPH_URL.to_owned());
        let wechat = env
            .optional("WECHAT_API_URL")
            .unwrap_or_else(|| DEFAULT_WECHAT_API_URL.to_owned());
        let millis = |name: &'static str| -> Result<Option<Duration>, ConfigError> {
            env.optional(name)
                .map(|v| {
                    v.parse()
                        .map(Duration::from_millis)
                        .map_err(|_| ConfigError::Invalid {
                            name,
                            reason: "must be a number of milliseconds".into(),
                        })
                })
                .transpose()
        };
        let timeout = millis("OUTBOUND_CALL_TIMEOUT_MS")?.unwrap_or(CALL_TIMEOUT);
        let provider = ProviderClient::new(&graph, &wechat, timeout).map_err(|reason| {
            ConfigError::Invalid {
                name: "META_GRAPH_URL",
                reason,
            }
        })?;
        let mut retry = RetryPolicy::default();
        if let Some(base) = millis("OUTBOUND_RETRY_BASE_MS")? {
            retry.base = base;
        }
        let budget = millis("OUTBOUND_SEND_BUDGET_MS")?.unwrap_or(DEFAULT_SEND_BUDGET);
        Ok(Self {
            directory: CachedDirectory::new(store.clone()),
            store,
            objects: S3Media::new(
                s3,
                bucket,
                config.aws.region.clone(),
                config.aws.endpoint_url.as_deref(),
                credentials,
            ),
            provider,
            retry,
            budget,
            call_timeout: timeout,
        })
    }

    fn ports(
        &self,
    ) -> SendPorts<'_, DynamoStore, CachedDirectory<DynamoStore>, ProviderClient, S3Media> {
        SendPorts {
            store: &self.store,
            directory: &self.directory,
            provider: &self.provider,
            objects: &self.objects,
            retry: self.retry,
            budget: self.budget,
            call_timeout: self.call_timeout,
        }
    }
}

/// Handles one API Gateway request. Never fails: every error is a response.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::serve("outbound", &req, |req| route(app, req)).await
}

/// The `Idempotency-Key` header, if any, and a hash of the body it must come with.
fn idempotency(req: &Request, body: &serde_json::Value) -> (Option<String>, String) {
    let key = req
        .headers()
        .get("idempotency-key")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    (key, digest(body.to_string().as_bytes()))
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
    match http::route_key(req) {
        "POST /conversations/{id}/messages" => {
            let principal = http::principal(req)?;
            let id = http::path_param(req, "id").unwrap_or_default();
            let value = http::json_value(req)?;
            let (idempotency_key, body_hash) = idempotency(req, &value);
            let message: SendMessage = http::from_json(value)?;
            let request = SendRequest {
                message,
                idempotency_key,
                body_hash,
            };
            let messages = outbound::send_message(
                &app.ports(),
                &principal,
                id,
                request,
                Sender::Agent,
                Utc::now(),
            )
            .await?;
            Ok(json(StatusCode::ACCEPTED, &accepted(&messages)?))
        }
        "POST /conversations" => {
            let principal = http::principal(req)?;
            let value = http::json_value(req)?;
            let idempotency = idempotency(req, &value);
            let start: StartConversation = http::from_json(value)?;
            let (conversation, messages) = outbound::start_conversation(
                &app.ports(),
                &principal,
                start,
                idempotency,
                Utc::now(),
            )
            .await?;
            let mut body =
                serde_json::to_value(&conversation).map_err(|e| Error::Internal(e.to_string()))?;
            body["message"] = accepted(&messages)?;
            Ok(json(StatusCode::ACCEPTED, &body))
        }
        _ => Err(Error::NotFound { what: "route" }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use shared::adapters::aws::{Credentials, SharedCredentialsProvider};

    use super::*;

    const SEND: &str = include_str!("../../fixtures/apigw-v2-send-message.json");

    /// An app whose AWS endpoint accepts no connections: these tests must not reach AWS.
    fn app() -> App {
        let env: HashMap<String, String> = [
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("TABLE_NAME", "chat"),
            ("MEDIA_BUCKET", "media"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let credentials =
            SharedCredentialsProvider::new(Credentials::new("k", "s", None, None, "test"));
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
