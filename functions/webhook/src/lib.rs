//! `webhook`: what channel providers call.
//!
//! - Meta (WhatsApp, Messenger, Instagram): `GET` subscription handshake; `POST` signed
//!   with `X-Hub-Signature-256`, every entry/change/event ingested.
//! - WeChat: `GET` `echostr` handshake and `POST` XML messages on
//!   `/webhooks/wechat/{channel_id}`, signed with the channel's token.
//!
//! [`handle`] is what Lambda runs and what the dev server and tests call.

use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::Error;
use shared::adapters::aws::{
    DynamoDbClient, EventBridgeClient, SharedCredentialsProvider, dynamodb_client,
    eventbridge_client, sdk_config,
};
use shared::adapters::cache::CachedDirectory;
use shared::adapters::channels::wechat::webhook as wechat;
use shared::adapters::channels::{graph, messenger, whatsapp};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::eventbridge::EventBridgePublisher;
use shared::config::{Config, ConfigError, MetaSettings, Source};
use shared::domain::channel::ChannelType;
use shared::domain::ids::ChannelId;
use shared::http;
use shared::ports::ChannelDirectory;
use shared::service::ingest::{self, IngestPorts, IngestReport};
use shared::service::templates;
use tracing::{info, warn};

/// Largest Meta webhook accepted (Meta batches up to 1000 updates in one POST).
pub const MAX_META_BODY: usize = 4 * 1024 * 1024;
/// Largest WeChat message accepted (real ones are well under 4 KB).
pub const MAX_WECHAT_BODY: usize = 64 * 1024;

/// Settings and clients, built once per process.
#[derive(Debug)]
pub struct App {
    meta: MetaSettings,
    directory: CachedDirectory<DynamoStore>,
    store: DynamoStore,
    publisher: EventBridgePublisher,
}

impl App {
    /// Builds the app from configuration (reads no environment itself).
    pub fn from_source(
        env: &impl Source,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ConfigError> {
        let config = Config::from_source(env)?;
        let sdk = sdk_config(&config.aws, credentials);
        Self::with_clients(
            env,
            &config,
            dynamodb_client(&sdk),
            eventbridge_client(&sdk),
        )
    }

    /// Builds the app around given clients (measurements attach interceptors to them).
    pub fn with_clients(
        env: &impl Source,
        config: &Config,
        dynamo: DynamoDbClient,
        events: EventBridgeClient,
    ) -> Result<Self, ConfigError> {
        let meta = MetaSettings::from_source(env)?;
        let bus = env.required("EVENT_BUS_NAME")?;
        let store = DynamoStore::new(dynamo, config.table_name.clone());
        Ok(Self {
            meta,
            directory: CachedDirectory::new(store.clone()),
            publisher: EventBridgePublisher::new(events, bus),
            store,
        })
    }

    fn ports(
        &self,
    ) -> IngestPorts<'_, CachedDirectory<DynamoStore>, DynamoStore, EventBridgePublisher> {
        IngestPorts {
            directory: &self.directory,
            store: &self.store,
            publisher: &self.publisher,
        }
    }
}

/// Handles one API Gateway request. Never fails: every error is a response.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::serve("webhook", &req, |req| route(app, req)).await
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, Error> {
    let provider = match http::route_key(req) {
        "GET /webhooks/whatsapp" | "GET /webhooks/messenger" | "GET /webhooks/instagram" => {
            let challenge = graph::verify_subscription(
                http::query(req, "hub.mode"),
                http::query(req, "hub.verify_token"),
                http::query(req, "hub.challenge"),
                &app.meta.verify_token,
            )?;
            info!("meta subscription verified");
            return Ok(http::text(StatusCode::OK, challenge));
        }
        "POST /webhooks/whatsapp" => ChannelType::Whatsapp,
        "POST /webhooks/messenger" => ChannelType::Messenger,
        "POST /webhooks/instagram" => ChannelType::Instagram,
        "GET /webhooks/wechat/{channel_id}" => return wechat_handshake(app, req).await,
        "POST /webhooks/wechat/{channel_id}" => return wechat_message(app, req).await,
        _ => return Err(Error::NotFound { what: "route" }),
    };
    meta_message(app, req, provider).await
}

fn report_body(report: &IngestReport) -> serde_json::Value {
    serde_json::json!({
        "status": "received",
        "stored": report.stored,
        "duplicates": report.duplicates,
        "statuses": report.statuses_applied + report.statuses_kept + report.statuses_stale,
        "unrouted": report.unrouted,
        "skipped": report.skipped,
        "truncated": report.truncated,
        "rejected": report.rejected,
    })
}

/// A Meta webhook: the signature is checked on the raw body before anything is parsed.
async fn meta_message(
    app: &App,
    req: &Request,
    provider: ChannelType,
) -> Result<Response<Body>, Error> {
    let body: &[u8] = req.body().as_ref();
    if body.len() > MAX_META_BODY {
        return Err(Error::PayloadTooLarge {
            limit: MAX_META_BODY,
        });
    }
    let signature = req
        .headers()
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    graph::verify_signature(&app.meta.app_secret, body, signature)?;
    let parsed = match provider {
        ChannelType::Whatsapp => whatsapp::webhook::parse_whatsapp(body)?,
        _ => messenger::webhook::parse_messaging(body, app.meta.app_id.as_deref())?,
    };
    let mut parsed = parsed;
    let template_updates = std::mem::take(&mut parsed.template_updates);
    // Every part is tried; a passing failure of any answers 5xx after (Meta retries the
    // whole delivery; what was stored is deduplicated).
    let ingested = ingest::ingest_webhook(app.ports(), provider, parsed, Utc::now()).await;
    let applied = if template_updates.is_empty() {
        None
    } else {
        Some(templates::apply_status_updates(&app.store, &template_updates).await)
    };
    let mut body = report_body(&ingested?);
    if let Some(applied) = applied {
        body["templates"] = serde_json::json!(applied?);
    }
    Ok(http::json(StatusCode::OK, &body))
}

async fn wechat_channel(
    app: &App,
    req: &Request,
) -> Result<(shared::ports::RoutedChannel, String), Error> {
    let not_found = Error::NotFound { what: "channel" };
    let Some(id) = http::path_param(req, "channel_id").and_then(|id| ChannelId::parse(id).ok())
    else {
        return Err(not_found);
    };
    let routed = app
        .directory
        .by_id(&id)
        .await?
        .filter(|r| r.channel.channel_type == ChannelType::Wechat)
        .ok_or(not_found)?;
    let token = routed
        .credentials
        .token
        .as_ref()
        .map(|t| t.expose().to_owned())
        .ok_or_else(|| Error::Internal("WeChat channel without a token".into()))?;
    wechat::verify_signature(
        &token,
        http::query(req, "timestamp"),
        http::query(req, "nonce"),
        http::query(req, "signature"),
        Utc::now(),
    )?;
    Ok((routed, token))
}

/// WeChat's server check: echo `echostr` when the signature matches.
async fn wechat_handshake(app: &App, req: &Request) -> Result<Response<Body>, Error> {
    wechat_channel(app, req).await?;
    let echo = http::query(req, "echostr")
        .filter(|e| !e.is_empty() && e.len() <= 1024)
        .ok_or_else(|| Error::bad_request("invalid_echostr", "echostr is missing or too long"))?;
    Ok(http::text(StatusCode::OK, echo))
}

/// A pushed WeChat message: stored, then `success` (WeChat waits at most 5 s).
async fn wechat_message(app: &App, req: &Request) -> Result<Response<Body>, Error> {
    let (routed, _) = wechat_channel(app, req).await?;
    if http::query(req, "encrypt_type").is_some_and(|t| t.eq_ignore_ascii_case("aes")) {
        return Err(Error::bad_request(
            "wechat_encryption_unsupported",
            "switch the account's message encryption to plaintext mode",
        ));
    }
    let body: &[u8] = req.body().as_ref();
    if body.len() > MAX_WECHAT_BODY {
        return Err(Error::PayloadTooLarge {
            limit: MAX_WECHAT_BODY,
        });
    }
    let parsed = wechat::parse_message(body)?;
    let channel = &routed.channel;
    let mut items = Vec::new();
    for account in parsed.accounts {
        if account.external_id != channel.external_id {
            warn!(channel_id = %channel.id, "WeChat ToUserName differs from the channel's external_id");
        }
        items.extend(account.items);
    }
    let ingested = ingest::ingest_items(&app.store, channel, items, Utc::now()).await;
    ingest::publish(&app.publisher, &ingested.events).await;
    if let Some(e) = ingested.error {
        return Err(e);
    }
    info!(
        stored = ingested.report.stored,
        duplicates = ingested.report.duplicates,
        "wechat message ingested"
    );
    Ok(http::text(StatusCode::OK, "success"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use shared::adapters::aws::Credentials;

    use super::*;

    const HANDSHAKE: &str = include_str!("../../fixtures/apigw-v2-meta-handshake.json");

    /// An app whose AWS endpoint accepts no connections: these tests must not reach AWS.
    fn app() -> App {
        let env: HashMap<String, String> = [
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("TABLE_NAME", "chat"),
            ("EVENT_BUS_NAME", "bus"),
            ("META_APP_SECRET", "fixture-app-secret"),
            ("META_VERIFY_TOKEN", "fixture-verify-token"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let credentials =
            SharedCredentialsProvider::new(Credentials::new("k", "s", None, None, "test"));
        App::from_source(&env, credentials).expect("config")
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

    use shared::fakes::CapturedLogs as Captured;

    fn signed_post(provider: &str, body: &str) -> Request {
        let mut event: serde_json::Value = serde_json::from_str(HANDSHAKE).unwrap();
        let route = format!("POST /webhooks/{provider}");
        event["routeKey"] = route.clone().into();
        event["requestContext"]["routeKey"] = route.into();
        event["requestContext"]["http"]["method"] = "POST".into();
        event["headers"]["x-hub-signature-256"] =
            graph::sign("fixture-app-secret", body.as_bytes()).into();
        event["body"] = body.into();
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[tokio::test]
    async fn an_internal_error_with_aws_unreachable_is_logged_with_request_id_route_and_function() {
        let captured = Captured::default();
        let sink = captured.clone();
        let _guard = tracing::subscriber::set_default(shared::telemetry::json_subscriber(
            "info",
            move || sink.clone(),
        ));
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"A"},"wa_id":"15551234567"}],"messages":[{"from":"15551234567","id":"wamid.log1","timestamp":"1700000000","type":"text","text":{"body":"hi"}}]}}]}]}"#;
        let response = handle(&app(), signed_post("whatsapp", body)).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let lines = captured.lines();
        let line = lines
            .iter()
            .find(|l| l["fields"]["message"] == "internal error")
            .expect("the internal error is logged");
        let request_id = serde_json::from_str::<serde_json::Value>(HANDSHAKE).unwrap()
            ["requestContext"]["requestId"]
            .clone();
        assert_eq!(line["span"]["request_id"], request_id);
        assert_eq!(line["span"]["route"], "POST /webhooks/whatsapp");
        assert_eq!(line["span"]["function"], "webhook");
    }

    #[tokio::test]
    async fn a_signed_body_of_20000_junk_entries_writes_one_log_line_not_one_per_entry() {
        let captured = Captured::default();
        let sink = captured.clone();
        let _guard = tracing::subscriber::set_default(shared::telemetry::json_subscriber(
            "info",
            move || sink.clone(),
        ));
        let junk = vec!["{}"; 20_000].join(",");
        let bodies = [
            (
                "whatsapp",
                format!(
                    r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{junk}]}}]}}"#
                ),
            ),
            (
                "messenger",
                format!(r#"{{"object":"page","entry":[{junk}]}}"#),
            ),
        ];
        for (provider, body) in bodies {
            assert!(body.len() < 64 * 1024, "a small body");
            let response = handle(&app(), signed_post(provider, &body)).await;
            assert_eq!(response.status(), StatusCode::OK, "{provider}");
            let reply: serde_json::Value =
                serde_json::from_slice(response.body().as_ref()).unwrap();
            assert_eq!(reply["skipped"], 20_000, "{provider}");
        }
        let lines = captured.lines();
        assert!(
            lines.len() <= 4,
            "{} log lines for two junk bodies",
            lines.len()
        );
        let summary = lines
            .iter()
            .find(|l| l["fields"]["message"] == "webhook items skipped")
            .expect("one summary line");
        assert_eq!(summary["fields"]["skipped"], 20_000);
        assert!(
            summary["fields"]["reasons"]
                .as_str()
                .unwrap()
                .contains("20000")
        );
    }

    #[tokio::test]
    async fn unsigned_post_is_refused_before_any_aws_call() {
        let mut event: serde_json::Value = serde_json::from_str(HANDSHAKE).unwrap();
        event["routeKey"] = "POST /webhooks/whatsapp".into();
        event["requestContext"]["routeKey"] = "POST /webhooks/whatsapp".into();
        event["requestContext"]["http"]["method"] = "POST".into();
        event["body"] = r#"{"object":"whatsapp_business_account","entry":[]}"#.into();
        let req = lambda_http::request::from_str(&event.to_string()).unwrap();
        assert_eq!(handle(&app(), req).await.status(), StatusCode::UNAUTHORIZED);
    }
}
