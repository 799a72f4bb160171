//! `media`: uploads validated by their content.
//!
//! - HTTP `POST /media` (declared checks, presigned POST into quarantine) and
//!   `GET /media/{id}` (status, reason, and a download link once valid).
//! - EventBridge: S3 "Object Created" in quarantine → validate by content, move to clean
//!   or delete; `MessageReceived` with media → fetch the customer's file from the provider
//!   (behind an SSRF guard) into quarantine, where the same validation follows.
//!
//! [`handle_http`] and [`handle_event`] are what Lambda runs and what the dev server, the
//! local event stand-in and the tests call.

use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::Value;
use shared::Error;
use shared::adapters::aws::{SharedCredentialsProvider, dynamodb_client, sdk_config};
use shared::adapters::cache::CachedDirectory;
use shared::adapters::channels::{CALL_TIMEOUT, Channels};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::fetch::GuardedFetcher;
use shared::adapters::s3::S3Media;
use shared::config::{Config, ConfigError, ProviderUrls, Source};
use shared::domain::events::SOURCE;
use shared::domain::events::{EventBridgeEvent, MessageReceived};
use shared::domain::fetch::FetchPolicy;
use shared::http::{self, json};
use shared::service::media::{self, FetchPorts, Validation};
use tracing::{Instrument, info_span, warn};

/// Clients and settings, built once per process.
#[derive(Debug)]
pub struct App {
    store: DynamoStore,
    directory: CachedDirectory<DynamoStore>,
    objects: S3Media,
    fetcher: GuardedFetcher,
    provider: Channels,
    bucket: String,
}

impl App {
    /// Builds the app from configuration (reads no environment itself).
    pub fn from_source(
        env: &impl Source,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ConfigError> {
        let config = Config::from_source(env)?;
        let sdk = sdk_config(&config.aws, credentials.clone());
        let s3 = shared::adapters::aws::s3_client(&sdk, &config.aws);
        Self::with_clients(env, &config, dynamodb_client(&sdk), s3, credentials)
    }

    /// Builds the app around given clients (measurements attach interceptors to them).
    pub fn with_clients(
        env: &impl Source,
        config: &Config,
        dynamo: shared::adapters::aws::DynamoDbClient,
        s3: aws_sdk_s3::Client,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ConfigError> {
        let bucket = env.required("MEDIA_BUCKET")?;
        let mut policy = FetchPolicy::default();
        if let Some(hosts) = env.optional("MEDIA_FETCH_ALLOWED_HOSTS") {
            policy.allowed_hosts = hosts
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect();
        }
        policy.allow_loopback = env
            .optional("MEDIA_FETCH_ALLOW_LOOPBACK")
            .is_some_and(|v| v == "true");
        let fetcher = GuardedFetcher::new(policy).map_err(|reason| ConfigError::Invalid {
            name: "MEDIA_FETCH_ALLOWED_HOSTS",
            reason,
        })?;
        let store = DynamoStore::new(dynamo, config.table_name.clone());
        let urls = ProviderUrls::from_source(env)?;
        // WeChat's media/get needs the account's token: the one the whole deployment shares.
        let provider = Channels::new(urls, CALL_TIMEOUT)
            .map_err(|reason| ConfigError::Invalid {
                name: "WECHAT_API_URL",
                reason,
            })?
            .with_wechat_tokens(store.clone());
        Ok(Self {
            provider,
            directory: CachedDirectory::new(store.clone()),
            store,
            objects: S3Media::new(
                s3,
                bucket.clone(),
                config.aws.region.clone(),
                config.aws.endpoint_url.as_deref(),
                credentials,
            ),
            fetcher,
            bucket,
        })
    }
}

/// Handles one API Gateway request. Never fails: every error is a response.
pub async fn handle_http(app: &App, req: Request) -> Response<Body> {
    http::serve("media", &req, |req| route(app, req)).await
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, Error> {
    match http::route_key(req) {
        "POST /media" => {
            let principal = http::principal(req)?;
            let body = http::json_body(req)?;
            let ticket =
                media::create_upload(&app.store, &app.objects, &principal, body, Utc::now())
                    .await?;
            Ok(json(StatusCode::CREATED, &ticket))
        }
        "GET /media/{id}" => {
            let principal = http::principal(req)?;
            let id = http::path_param(req, "id").unwrap_or_default();
            let view = media::get_media(&app.store, &app.objects, &principal, id).await?;
            Ok(json(StatusCode::OK, &view))
        }
        _ => Err(Error::NotFound { what: "route" }),
    }
}

/// Handles one EventBridge event: S3 "Object Created" (validate the upload) or
/// `MessageReceived` with media (fetch the customer's file). Returns the outcome; `Err`
/// only when a retry can help (storage unavailable). Other events are ignored.
pub async fn handle_event(app: &App, event: &Value) -> Result<&'static str, Error> {
    let Ok(envelope) = serde_json::from_value::<EventBridgeEvent<Value>>(event.clone()) else {
        warn!("not an EventBridge event; ignored");
        return Ok("ignored");
    };
    let span = info_span!("event", function = "media", id = %envelope.id);
    match (envelope.source.as_str(), envelope.detail_type.as_str()) {
        ("aws.s3", "Object Created") => validate_event(app, event)
            .instrument(span)
            .await
            .map(|v| v.outcome),
        (SOURCE, "MessageReceived") => {
            let Ok(detail) = serde_json::from_value::<MessageReceived>(envelope.detail) else {
                warn!("MessageReceived event without the expected fields; ignored");
                return Ok("ignored");
            };
            if !detail.has_media {
                return Ok("ignored");
            }
            let ports = FetchPorts {
                directory: &app.directory,
                media: &app.store,
                objects: &app.objects,
                fetcher: &app.fetcher,
                links: &app.store,
                provider: &app.provider,
            };
            media::fetch_inbound(ports, &detail, Utc::now())
                .instrument(span)
                .await
        }
        _ => Ok("ignored"),
    }
}

/// Validates the object an S3 "Object Created" event names (events for other buckets or
/// shapes are ignored).
pub async fn validate_event(app: &App, event: &Value) -> Result<Validation, Error> {
    let detail = &event["detail"];
    let ignored = Validation {
        outcome: "ignored",
        code: None,
        bytes_read: 0,
        reads: 0,
    };
    let (Some(bucket), Some(key)) = (
        detail["bucket"]["name"].as_str(),
        detail["object"]["key"].as_str(),
    ) else {
        warn!("event without bucket and key; ignored");
        return Ok(ignored);
    };
    if event["detail-type"] != "Object Created" || bucket != app.bucket {
        return Ok(ignored);
    }
    media::validate_upload(&app.store, &app.objects, key).await
}

pub use shared::http::to_api_gateway_response;

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVED: &str = include_str!("../../fixtures/eventbridge-message-received.json");

    /// An app whose AWS endpoint accepts no connections: these tests must not reach AWS.
    fn app() -> App {
        let (env, credentials) = shared::fakes::unreachable_aws(&[("MEDIA_BUCKET", "media")]);
        App::from_source(&env, credentials).expect("config")
    }

    #[tokio::test]
    async fn events_that_are_not_for_this_function_are_ignored_before_any_io() {
        let app = app();
        let mut event: Value = serde_json::from_str(RECEIVED).unwrap();
        event["detail"]["has_media"] = false.into();
        assert_eq!(handle_event(&app, &event).await.unwrap(), "ignored");
        event["detail"] = serde_json::json!({"tenant_id": 7});
        assert_eq!(handle_event(&app, &event).await.unwrap(), "ignored");
        event["detail-type"] = "MessageStatusChanged".into();
        assert_eq!(handle_event(&app, &event).await.unwrap(), "ignored");
        assert_eq!(
            handle_event(&app, &serde_json::json!({"hello": "world"}))
                .await
                .unwrap(),
            "ignored"
        );
    }

    #[tokio::test]
    async fn a_message_received_event_with_media_goes_to_the_store() {
        // The fixture names a channel: looking it up needs DynamoDB, which is unreachable
        // here, so the event fails in a way a retry can help.
        let event: Value = serde_json::from_str(RECEIVED).unwrap();
        let err = handle_event(&app(), &event).await.unwrap_err();
        assert_eq!(err.code(), "internal_error");
    }
}
