//! `media`: uploads validated by their content.
//!
//! - HTTP `POST /media` (declared checks, presigned POST into quarantine) and
//!   `GET /media/{id}` (status, reason, and a download link once valid).
//! - EventBridge: S3 "Object Created" in quarantine → validate by content, move to clean
//!   or delete.
//!
//! [`handle_http`] and [`handle_event`] are what Lambda runs and what the dev server, the
//! local event stand-in and the tests call.

use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::Value;
use shared::Error;
use shared::adapters::aws::{SharedCredentialsProvider, dynamodb_client, sdk_config};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::s3::S3Media;
use shared::config::{Config, ConfigError, Source};
use shared::http::{self, json, respond};
use shared::service::media::{self, Validation};
use tracing::{Instrument, info_span, warn};

/// Clients and settings, built once per process.
#[derive(Debug, Clone)]
pub struct App {
    store: DynamoStore,
    objects: S3Media,
    bucket: String,
}

impl App {
    /// Builds the app from configuration (reads no environment itself).
    pub fn from_source(
        env: &impl Source,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ConfigError> {
        let config = Config::from_source(env)?;
        let bucket = env.required("MEDIA_BUCKET")?;
        let sdk = sdk_config(&config.aws, credentials.clone());
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(config.aws.endpoint_url.is_some())
                .build(),
        );
        Ok(Self {
            store: DynamoStore::new(dynamodb_client(&sdk), config.table_name),
            objects: S3Media::new(
                s3,
                bucket.clone(),
                config.aws.region.clone(),
                config.aws.endpoint_url.as_deref(),
                credentials,
            ),
            bucket,
        })
    }
}

/// Handles one API Gateway request. Never fails: every error is a response.
pub async fn handle_http(app: &App, req: Request) -> Response<Body> {
    let span = info_span!(
        "request",
        function = "media",
        request_id = %http::request_id(&req),
        route = %http::route_key(&req),
    );
    async move { respond(route(app, &req).await) }
        .instrument(span)
        .await
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

/// Handles one EventBridge event (S3 "Object Created"). Returns `Err` only when a retry
/// can help (storage unavailable); events for other buckets or shapes are ignored.
pub async fn handle_event(app: &App, event: &Value) -> Result<Validation, Error> {
    let detail = &event["detail"];
    let (Some(bucket), Some(key)) = (
        detail["bucket"]["name"].as_str(),
        detail["object"]["key"].as_str(),
    ) else {
        warn!("event without bucket and key; ignored");
        return Ok(Validation {
            outcome: "ignored",
            code: None,
            bytes_read: 0,
            reads: 0,
        });
    };
    if event["detail-type"] != "Object Created" || bucket != app.bucket {
        return Ok(Validation {
            outcome: "ignored",
            code: None,
            bytes_read: 0,
            reads: 0,
        });
    }
    let span = info_span!("event", function = "media", id = %event["id"].as_str().unwrap_or("-"));
    media::validate_upload(&app.store, &app.objects, key)
        .instrument(span)
        .await
}

/// Turns an HTTP response into the API Gateway payload 2.0 response JSON.
pub fn to_api_gateway_response(response: Response<Body>) -> Value {
    let (parts, body) = response.into_parts();
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_owned(),
                Value::String(v.to_str().ok()?.to_owned()),
            ))
        })
        .collect();
    let text = match body {
        Body::Text(t) => t,
        Body::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    serde_json::json!({
        "statusCode": parts.status.as_u16(),
        "headers": headers,
        "body": text,
        "isBase64Encoded": false,
    })
}
