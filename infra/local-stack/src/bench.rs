//! What the `make bench` binaries share: API Gateway events as the handlers receive them,
//! WhatsApp webhook bodies, the events a handler published, the bots measured, and SDK
//! clients whose requests are counted.

use aws_config::SdkConfig;
use chrono::Utc;
use serde_json::{Value, json};

use crate::counter::RequestCounter;

/// An API Gateway HTTP API (payload 2.0) event; `agent` adds the JWT authorizer's claims of
/// an agent of tenant `bench`.
pub fn api_event(
    method: &str,
    route: &str,
    path: &str,
    path_params: Value,
    headers: Value,
    body: &str,
    agent: bool,
) -> Value {
    let route_key = format!("{method} {route}");
    let mut context = json!({
        "accountId": "123456789012", "apiId": "bench", "domainName": "bench", "domainPrefix": "bench",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
        "requestId": ulid::Ulid::new().to_string(), "routeKey": route_key,
        "stage": "$default", "time": "24/Nov/2026:00:00:00 +0000", "timeEpoch": 0
    });
    if agent {
        context["authorizer"] = json!({"jwt": {"claims": {"sub": "agent-1", "tenant_id": "bench", "role": "agent"}, "scopes": null}});
    }
    json!({
        "version": "2.0", "routeKey": route_key, "rawPath": path, "rawQueryString": "",
        "headers": headers, "pathParameters": path_params, "requestContext": context,
        "body": body, "isBase64Encoded": false
    })
}

/// An agent's JSON request (`POST /media`, `POST /conversations/{id}/messages`, …).
pub fn agent_event(method: &str, route: &str, path: &str, path_params: Value, body: &str) -> Value {
    let headers = json!({"content-type": "application/json"});
    api_event(method, route, path, path_params, headers, body, true)
}

/// A Meta webhook `POST` signed with `app_secret`.
pub fn meta_webhook_event(path: &str, body: &str, app_secret: &str) -> Value {
    let signature = shared::adapters::channels::graph::sign(app_secret, body.as_bytes());
    let headers = json!({"content-type": "application/json", "x-hub-signature-256": signature});
    api_event("POST", path, path, Value::Null, headers, body, false)
}

fn whatsapp_change(phone_number_id: &str, value: Value) -> String {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] =
        json!({"display_phone_number": "15550000000", "phone_number_id": phone_number_id});
    json!({"object": "whatsapp_business_account",
           "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]})
    .to_string()
}

/// A WhatsApp Cloud API webhook body with one customer text, timestamped now.
pub fn whatsapp_text(phone_number_id: &str, customer: &str, wamid: &str, text: &str) -> String {
    whatsapp_text_at(
        phone_number_id,
        customer,
        wamid,
        text,
        Utc::now().timestamp(),
    )
}

/// A WhatsApp Cloud API webhook body with one customer text sent at `timestamp` (Unix
/// seconds, as Meta gives it).
pub fn whatsapp_text_at(
    phone_number_id: &str,
    customer: &str,
    wamid: &str,
    text: &str,
    timestamp: i64,
) -> String {
    whatsapp_change(
        phone_number_id,
        json!({"contacts": [{"profile": {"name": "Bench"}, "wa_id": customer}],
               "messages": [{"from": customer, "id": wamid, "timestamp": timestamp.to_string(),
                             "type": "text", "text": {"body": text}}]}),
    )
}

/// A WhatsApp Cloud API webhook body with a customer's tap on a reply button (`reply_id`,
/// `title`) sent at `timestamp` (Unix seconds).
pub fn whatsapp_button_reply(
    phone_number_id: &str,
    customer: &str,
    wamid: &str,
    (reply_id, title): (&str, &str),
    timestamp: i64,
) -> String {
    whatsapp_change(
        phone_number_id,
        json!({"contacts": [{"profile": {"name": "Bench"}, "wa_id": customer}],
               "messages": [{"from": customer, "id": wamid, "timestamp": timestamp.to_string(),
                             "type": "interactive",
                             "interactive": {"type": "button_reply",
                                             "button_reply": {"id": reply_id, "title": title}}}]}),
    )
}

/// A WhatsApp Cloud API webhook body with one delivery status, timestamped now.
pub fn whatsapp_status(phone_number_id: &str, customer: &str, wamid: &str, status: &str) -> String {
    whatsapp_change(
        phone_number_id,
        json!({"statuses": [{"id": wamid, "status": status, "timestamp": Utc::now().timestamp().to_string(),
                             "recipient_id": customer}]}),
    )
}

/// The events a recorded invocation put on the bus (its `PutEvents` entries), each as
/// EventBridge hands it to a rule's target: the envelope (`version`, `id`, `detail-type`,
/// `source`, `account`, `time`, `region`, `resources`) around the parsed `detail`. Needs
/// a counter with a probe (it keeps the request bodies).
pub fn published_events(recorded: &crate::counter::Recorded) -> Vec<Value> {
    let entries = recorded
        .sent
        .iter()
        .filter(|s| s.operation == "PutEvents")
        .filter_map(|s| s.exchange.as_ref())
        .filter_map(|e| e.request.get("Entries").and_then(Value::as_array))
        .flatten();
    entries
        .map(|entry| {
            let detail = entry
                .get("Detail")
                .and_then(Value::as_str)
                .and_then(|d| serde_json::from_str::<Value>(d).ok())
                .unwrap_or(Value::Null);
            json!({
                "version": "0",
                "id": ulid::Ulid::new().to_string(),
                "detail-type": entry.get("DetailType").cloned().unwrap_or(Value::Null),
                "source": entry.get("Source").cloned().unwrap_or(Value::Null),
                "account": crate::template::LOCAL_ACCOUNT_ID,
                "time": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "region": crate::LOCAL_REGION,
                "resources": [],
                "detail": detail,
            })
        })
        .collect()
}

/// A keyword bot: a message containing `price` (any case or accents) gets one reply, and
/// the bot is done.
pub fn keyword_bot() -> Value {
    json!({
        "name": "Prices",
        "trigger": {"type": "keyword", "keywords": ["price"], "match": "contains"},
        "steps": [{"id": "reply", "type": "reply", "text": "Our prices: https://example.com/prices"}]
    })
}

/// A bot that asks: a message containing `appointment` gets a question with two reply
/// buttons (`yes` moves to a reply step, `no` hands over to agents).
pub fn ask_bot() -> Value {
    json!({
        "name": "Appointments",
        "trigger": {"type": "keyword", "keywords": ["appointment"], "match": "contains"},
        "steps": [
            {"id": "ask", "type": "ask", "text": "Monday at 10:00?", "options": [
                {"id": "yes", "title": "Yes", "next": "booked"},
                {"id": "no", "title": "No", "next": "human"}
            ]},
            {"id": "booked", "type": "reply", "text": "Booked: see you Monday at 10:00."},
            {"id": "human", "type": "handover", "text": "An agent will take it from here."}
        ]
    })
}

/// SDK clients of the emulator whose every request `counter` records.
pub struct CountedClients {
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// S3 (path-style, as for the emulator).
    pub s3: aws_sdk_s3::Client,
    /// EventBridge.
    pub eventbridge: aws_sdk_eventbridge::Client,
    /// EventBridge Scheduler.
    pub scheduler: aws_sdk_scheduler::Client,
}

impl CountedClients {
    /// Builds the clients from `sdk` with `counter` attached.
    pub fn new(sdk: &SdkConfig, counter: &RequestCounter) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(sdk)
                    .interceptor(counter.clone())
                    .build(),
            ),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(sdk)
                    .force_path_style(true)
                    .interceptor(counter.clone())
                    .build(),
            ),
            eventbridge: aws_sdk_eventbridge::Client::from_conf(
                aws_sdk_eventbridge::config::Builder::from(sdk)
                    .interceptor(counter.clone())
                    .build(),
            ),
            scheduler: aws_sdk_scheduler::Client::from_conf(
                aws_sdk_scheduler::config::Builder::from(sdk)
                    .interceptor(counter.clone())
                    .build(),
            ),
        }
    }
}

/// The environment template.yaml gives `binary`, resolved for the local stack, with what
/// Lambda itself adds.
pub fn function_env(
    template: &crate::template::Template,
    settings: &crate::LocalSettings,
    binary: &str,
) -> Result<std::collections::HashMap<String, String>, crate::BoxError> {
    let function = template
        .functions()?
        .into_iter()
        .find(|f| f.binary == binary)
        .ok_or_else(|| format!("no {binary} function in template.yaml"))?;
    let mut env = template.resolve_environment(&function, &settings.overrides)?;
    env.extend(settings.lambda_environment());
    Ok(env)
}

/// Connects a WhatsApp channel of tenant `bench` with phone number id `phone`.
pub async fn whatsapp_channel(
    store: &shared::adapters::dynamo::DynamoStore,
    phone: &str,
) -> Result<shared::domain::channel::Channel, crate::BoxError> {
    use shared::domain::channel::{Channel, ChannelType, Credentials, Secret};
    use shared::domain::ids::{ChannelId, TenantId};
    use shared::ports::ChannelStore;
    let channel = Channel {
        id: ChannelId::generate(),
        tenant_id: TenantId::parse("bench")?,
        channel_type: ChannelType::Whatsapp,
        external_id: phone.into(),
        name: "bench".into(),
        waba_id: None,
        human_agent: false,
        window_hours: 24,
        created_at: Utc::now(),
    };
    let credentials = Credentials {
        access_token: Some(Secret::new("bench-token")),
        ..Credentials::default()
    };
    store.create_channel(&channel, &credentials).await?;
    Ok(channel)
}

/// Counts the bytes and lines of the log output handlers write, formatted as the functions
/// format it in Lambda (`shared::telemetry`: JSON lines, level `INFO` as template.yaml's
/// `ApplicationLogLevel`).
#[derive(Debug, Clone, Default)]
pub struct LogMeter {
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl LogMeter {
    /// Installs the JSON subscriber writing here; false if one was installed already.
    pub fn install(&self) -> bool {
        let meter = self.clone();
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_current_span(true)
            .with_span_list(false)
            .with_target(false)
            .with_writer(move || meter.clone())
            .try_init()
            .is_ok()
    }

    /// Bytes written since the last call.
    pub fn take(&self) -> u64 {
        self.bytes.swap(0, std::sync::atomic::Ordering::Relaxed)
    }
}

impl std::io::Write for LogMeter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A customer's WhatsApp text sent at `at`, as the webhook parser gives it (it opens the
/// customer service window then).
pub fn customer_text(
    customer: &str,
    at: chrono::DateTime<Utc>,
) -> shared::domain::inbound::WebhookItem {
    use shared::domain::inbound::{CustomerIdentity, InboundMessage, WebhookItem};
    use shared::domain::message::{Direction, MessageKind};
    WebhookItem::Message(InboundMessage {
        provider_message_id: format!("wamid.bench.{}", ulid::Ulid::new()),
        customer: customer.to_owned(),
        customer_name: Some("Bench".into()),
        direction: Direction::Inbound,
        kind: MessageKind::Text,
        text: Some("hello".into()),
        media: None,
        reply_to: None,
        timestamp: Some(at),
        opens_window: true,
        raw: Value::Null,
        identity: CustomerIdentity {
            phone: Some(customer.to_owned()),
            ..CustomerIdentity::default()
        },
        standby: false,
    })
}

/// Each of `customers` wrote `channel` a minute ago (ingested as a webhook would be).
///
/// # Errors
/// The ingest failed.
pub async fn customers_wrote(
    store: &shared::adapters::dynamo::DynamoStore,
    channel: &shared::domain::channel::Channel,
    customers: &[&str],
) -> Result<(), crate::BoxError> {
    for customer in customers {
        let item = customer_text(customer, Utc::now() - chrono::Duration::minutes(1));
        let ingested =
            shared::service::ingest::ingest_items(store, channel, vec![item], Utc::now()).await;
        if let Some(e) = ingested.error {
            return Err(e.into());
        }
    }
    Ok(())
}

/// An HTTP client of a running stack: signed Meta webhooks, and paged lists as an agent.
pub struct StackClient {
    /// The HTTP client.
    pub http: reqwest::Client,
    /// `http://127.0.0.1:<port>` of the dev server.
    pub base: String,
    /// The agent's bearer token.
    pub agent: String,
    /// The Meta app secret webhooks are signed with.
    pub app_secret: String,
}

impl StackClient {
    /// Posts a WhatsApp webhook signed as Meta signs it: the status (0 without an answer)
    /// and the time to the answer.
    pub async fn webhook(&self, body: &str) -> (u16, std::time::Duration) {
        let started = std::time::Instant::now();
        let status = self
            .http
            .post(format!("{}/webhooks/whatsapp", self.base))
            .header("content-type", "application/json")
            .header(
                "x-hub-signature-256",
                shared::adapters::channels::graph::sign(&self.app_secret, body.as_bytes()),
            )
            .body(body.to_owned())
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        (status, started.elapsed())
    }

    /// Every item of a paged list (`{items, next_cursor}`), read as the agent.
    ///
    /// # Errors
    /// A page that does not answer 200.
    pub async fn all(&self, path: &str) -> Result<Vec<Value>, crate::BoxError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let page = match &cursor {
                Some(c) => format!("{path}{sep}limit=100&cursor={c}"),
                None => format!("{path}{sep}limit=100"),
            };
            let reply = self
                .http
                .get(format!("{}{page}", self.base))
                .bearer_auth(&self.agent)
                .send()
                .await?;
            let status = reply.status();
            let body: Value = reply.json().await?;
            if status != 200 {
                return Err(format!("GET {page} answered {status}: {body}").into());
            }
            items.extend(body["items"].as_array().cloned().unwrap_or_default());
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(items),
            }
        }
    }
}

/// The WABA of the benches' WhatsApp channels.
pub const BENCH_WABA: &str = "102290129340001";

/// A `POST /channels` body for a WhatsApp channel with `phone` under [`BENCH_WABA`], its
/// number granted to `token` in `sandbox` first (so the connection proves it).
pub fn proven_whatsapp_channel(
    sandbox: &crate::sandbox::Sandbox,
    phone: &str,
    token: &str,
    name: &str,
) -> Result<Value, crate::BoxError> {
    sandbox
        .grant_meta(crate::sandbox::MetaAssets {
            access_token: token.to_owned(),
            waba_id: Some(BENCH_WABA.to_owned()),
            phone_number_ids: vec![phone.to_owned()],
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
    Ok(serde_json::json!({
        "type": "whatsapp", "external_id": phone, "name": name, "waba_id": BENCH_WABA,
        "credentials": {"access_token": token},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::Exchange;
    use crate::counter::{ReadCount, Recorded, Sent};

    fn sent(operation: &str, request: Value) -> Sent {
        Sent {
            operation: operation.to_owned(),
            elapsed: std::time::Duration::ZERO,
            exchange: Some(Exchange {
                operation: operation.to_owned(),
                request,
                status: 200,
                response: Value::Null,
                before: Vec::new(),
                after: Vec::new(),
            }),
            read: ReadCount::default(),
        }
    }

    #[test]
    fn published_events_are_wrapped_as_eventbridge_delivers_them() {
        let detail = json!({
            "tenant_id": "bench", "channel_id": "01JDQ6S4V6ZK4Q1X3T5W8Y9ABC", "channel": "whatsapp",
            "conversation_id": "cv_01JDQ6S4V6ZK4Q1X3T5W8Y9ABC_0123456789abcdef01234567",
            "message_id": "01JDQ6W1J3E2R8C5T7K9M0P2QS", "direction": "inbound", "kind": "text",
            "provider_message_id": "wamid.1", "created_at": "2026-11-30T08:15:40.000Z",
            "has_media": false, "standby": false, "media": null
        });
        let recorded = Recorded {
            sent: vec![
                sent("TransactWriteItems", json!({})),
                sent(
                    "PutEvents",
                    json!({"Entries": [{"Source": "chatroom", "DetailType": "MessageReceived",
                                        "Detail": detail.to_string(), "EventBusName": "bus"}]}),
                ),
            ],
            ..Recorded::default()
        };
        let events = published_events(&recorded);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["detail"], detail);
        assert_eq!(events[0]["region"], crate::LOCAL_REGION);
        let parsed: shared::domain::events::EventBridgeEvent<
            shared::domain::events::MessageReceived,
        > = serde_json::from_value(events[0].clone()).expect("the envelope parses");
        assert_eq!(parsed.detail_type, "MessageReceived");
        assert_eq!(parsed.source, "chatroom");
    }
}
