//! Customer messages and delivery statuses posted to the dev server as the providers post
//! them: the documented payloads, signed with the Meta app secret (`X-Hub-Signature-256`)
//! or the WeChat channel token (`signature`, `timestamp`, `nonce` in the query).

use axum::http::header;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::faults::graph_title;
use super::{Sandbox, SandboxError, now_epoch_seconds, unique};

/// A path segment: everything but unreserved characters is escaped.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A customer's text message to deliver as a webhook (`POST /sandbox/customer-message`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CustomerMessage {
    /// `whatsapp`, `messenger`, `instagram` or `wechat`.
    pub channel: String,
    /// The business account: phone_number_id, page id, Instagram account id, or the
    /// WeChat official account's original id (`gh_…`).
    pub account: String,
    /// The customer: WhatsApp id, PSID, IGSID or openid. WhatsApp: may be empty when
    /// `user_id` is given (a user with a username who does not share the number).
    pub from: String,
    /// WhatsApp: the business-scoped user id (`from_user_id`, `contacts[].user_id`).
    pub user_id: Option<String>,
    /// WhatsApp: the user's username (`contacts[].profile.username`).
    pub username: Option<String>,
    /// WhatsApp profile name (default `Customer`).
    pub name: Option<String>,
    /// The text (required).
    pub text: Option<String>,
    /// WhatsApp: the business account id of `entry[].id` (default `0`).
    pub waba_id: Option<String>,
    /// WhatsApp: `metadata.display_phone_number` (default `15550000000`).
    pub display_phone_number: Option<String>,
    /// WeChat: our channel id (the webhook path).
    pub channel_id: Option<String>,
    /// WeChat: the channel's token that signs the request.
    pub token: Option<String>,
    /// The provider's timestamp of the message, epoch seconds (default now; an older one
    /// tests the customer service window).
    pub timestamp: Option<i64>,
    /// The provider message id (default a fresh one; repeat one to test re-delivery).
    pub id: Option<String>,
}

/// A WhatsApp delivery status to deliver as a webhook (`POST /sandbox/status`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StatusWebhook {
    /// `whatsapp` (the only channel with status webhooks here).
    pub channel: String,
    /// The phone_number_id.
    pub account: String,
    /// The customer's WhatsApp id (`recipient_id`); may be empty when `user_id` is given.
    pub to: String,
    /// The customer's business-scoped user id (`recipient_user_id`).
    pub user_id: Option<String>,
    /// The `wamid…` the send answered with.
    pub provider_message_id: String,
    /// `sent`, `delivered`, `read`, `played` (a voice message) or `failed`.
    pub status: String,
    /// For `failed`: the error code (default 131026).
    pub error_code: Option<i64>,
    /// Echoed back as sent with the message.
    pub biz_opaque_callback_data: Option<String>,
    /// Pricing category of `sent`/`delivered` (default `service`; templates: `marketing`,
    /// `utility`, `authentication`).
    pub category: Option<String>,
    /// `entry[].id` (default `0`).
    pub waba_id: Option<String>,
    /// `metadata.display_phone_number` (default `15550000000`).
    pub display_phone_number: Option<String>,
    /// Epoch seconds (default now).
    pub timestamp: Option<i64>,
}

/// What the dev server answered to a posted webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookReply {
    /// HTTP status.
    pub status: u16,
    /// The body as text.
    pub body: String,
    /// The provider message id the webhook carried.
    pub provider_message_id: String,
}

fn required<'a>(value: &'a str, name: &str) -> Result<&'a str, SandboxError> {
    if value.is_empty() {
        Err(SandboxError::bad_request(
            "missing_field",
            format!("{name} is required"),
        ))
    } else {
        Ok(value)
    }
}

fn required_opt<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, SandboxError> {
    required(value.as_deref().unwrap_or_default(), name)
}

/// `sha256=<hex>`: HMAC-SHA256 of the raw body with the app secret, as Meta signs.
pub(super) fn meta_signature(app_secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// WeChat's query signature: sha1 of token, timestamp and nonce sorted and concatenated.
pub(super) fn wechat_signature(token: &str, timestamp: &str, nonce: &str) -> String {
    use sha1::Digest;
    let mut parts = [token, timestamp, nonce];
    parts.sort_unstable();
    hex::encode(sha1::Sha1::digest(parts.concat().as_bytes()))
}

fn whatsapp_metadata(display: &Option<String>, account: &str) -> Value {
    json!({
        "display_phone_number": display.as_deref().unwrap_or("15550000000"),
        "phone_number_id": account,
    })
}

/// A WhatsApp Cloud API `messages` webhook (one change) around `value`.
fn whatsapp_envelope(waba_id: &Option<String>, value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": waba_id.as_deref().unwrap_or("0"),
            "changes": [{"field": "messages", "value": value}],
        }],
    })
}

/// A WhatsApp text message webhook.
pub(super) fn whatsapp_text(m: &CustomerMessage, text: &str, id: &str, timestamp: i64) -> Value {
    let mut contact = json!({"profile": {"name": m.name.as_deref().unwrap_or("Customer")}});
    let mut message = json!({
        "id": id,
        "timestamp": timestamp.to_string(),
        "type": "text",
        "text": {"body": text},
    });
    // A user with a username may withhold the number: then only the user id is sent.
    if !m.from.is_empty() {
        contact["wa_id"] = json!(m.from);
        message["from"] = json!(m.from);
    }
    if let Some(user_id) = m.user_id.as_deref().filter(|u| !u.is_empty()) {
        contact["user_id"] = json!(user_id);
        message["from_user_id"] = json!(user_id);
    }
    if let Some(username) = &m.username {
        contact["profile"]["username"] = json!(username);
    }
    whatsapp_envelope(
        &m.waba_id,
        json!({
            "messaging_product": "whatsapp",
            "metadata": whatsapp_metadata(&m.display_phone_number, &m.account),
            "contacts": [contact],
            "messages": [message],
        }),
    )
}

/// A Messenger (`object: page`) or Instagram (`object: instagram`) text message webhook.
pub(super) fn messaging_text(
    object: &str,
    m: &CustomerMessage,
    text: &str,
    mid: &str,
    timestamp_ms: i64,
) -> Value {
    json!({
        "object": object,
        "entry": [{
            "id": m.account,
            "time": timestamp_ms,
            "messaging": [{
                "sender": {"id": m.from},
                "recipient": {"id": m.account},
                "timestamp": timestamp_ms,
                "message": {"mid": mid, "text": text},
            }],
        }],
    })
}

/// CDATA content; `]]>` inside is split across two sections.
fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

/// A WeChat plaintext-mode text message.
pub(super) fn wechat_text(
    to: &str,
    from: &str,
    text: &str,
    timestamp: i64,
    msg_id: &str,
) -> String {
    format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName>\
         <CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content>{}</Content><MsgId>{msg_id}</MsgId></xml>",
        cdata(to),
        cdata(from),
        cdata(text),
    )
}

/// A WhatsApp `statuses` webhook for one message.
pub(super) fn whatsapp_status(s: &StatusWebhook, timestamp: i64) -> Value {
    let mut status = json!({
        "id": s.provider_message_id,
        "status": s.status,
        "timestamp": timestamp.to_string(),
    });
    if !s.to.is_empty() {
        status["recipient_id"] = json!(s.to);
    }
    if let Some(user_id) = s.user_id.as_deref().filter(|u| !u.is_empty()) {
        status["recipient_user_id"] = json!(user_id);
    }
    if matches!(s.status.as_str(), "sent" | "delivered") {
        let category = s.category.as_deref().unwrap_or("service");
        let mut conversation = json!({
            "id": format!("{:032x}", ulid::Ulid::new().0),
            "origin": {"type": category},
        });
        if s.status == "sent" {
            conversation["expiration_timestamp"] =
                json!(timestamp.saturating_add(86_400).to_string());
        }
        status["conversation"] = conversation;
        status["pricing"] = json!({
            "billable": category != "service",
            "pricing_model": "PMP",
            "type": if category == "service" { "free_customer_service" } else { "regular" },
            "category": category,
        });
    }
    if s.status == "failed" {
        let code = s.error_code.unwrap_or(131026);
        let title = graph_title(code);
        status["errors"] = json!([{
            "code": code,
            "title": title,
            "message": title,
            "error_data": {"details": title},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
        }]);
    }
    if let Some(data) = &s.biz_opaque_callback_data {
        status["biz_opaque_callback_data"] = json!(data);
    }
    whatsapp_envelope(
        &s.waba_id,
        json!({
            "messaging_product": "whatsapp",
            "metadata": whatsapp_metadata(&s.display_phone_number, &s.account),
            "statuses": [status],
        }),
    )
}

impl Sandbox {
    /// Posts a customer's text message to the dev server as the provider's webhook, signed;
    /// answers what the dev server said. 400 for a bad request, 409 without a webhook target.
    pub async fn customer_message(&self, m: CustomerMessage) -> Result<WebhookReply, SandboxError> {
        let account = required(&m.account, "account")?;
        let whatsapp_user =
            m.channel == "whatsapp" && m.user_id.as_deref().is_some_and(|u| !u.is_empty());
        let from = if whatsapp_user {
            m.from.as_str()
        } else {
            required(&m.from, "from")?
        };
        let text = required_opt(&m.text, "text")?;
        let timestamp = m.timestamp.unwrap_or_else(now_epoch_seconds);
        let timestamp_ms = match m.timestamp {
            Some(t) => t.saturating_mul(1000),
            None => chrono::Utc::now().timestamp_millis(),
        };
        match m.channel.as_str() {
            "whatsapp" => {
                let id =
                    m.id.clone()
                        .unwrap_or_else(|| format!("wamid.{}", unique()));
                let body = whatsapp_text(&m, text, &id, timestamp).to_string();
                self.post_meta("whatsapp", body, id).await
            }
            "messenger" | "instagram" => {
                let object = if m.channel == "messenger" {
                    "page"
                } else {
                    "instagram"
                };
                let mid = m.id.clone().unwrap_or_else(|| format!("m_{}", unique()));
                let body = messaging_text(object, &m, text, &mid, timestamp_ms).to_string();
                self.post_meta(&m.channel, body, mid).await
            }
            "wechat" => {
                let channel_id = required_opt(&m.channel_id, "channel_id")?;
                let token = required_opt(&m.token, "token")?;
                let msg_id = match &m.id {
                    Some(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
                        id.clone()
                    }
                    Some(_) => {
                        return Err(SandboxError::bad_request(
                            "invalid_id",
                            "a WeChat MsgId is a decimal number",
                        ));
                    }
                    None => ((ulid::Ulid::new().0 as u64) >> 1).to_string(),
                };
                let xml = wechat_text(account, from, text, timestamp, &msg_id);
                // The signature covers the request time, not the message's (WeChat's clock).
                let now = now_epoch_seconds().to_string();
                let nonce = (ulid::Ulid::new().0 % 1_000_000_000).to_string();
                let signature = wechat_signature(token, &now, &nonce);
                let path = format!(
                    "/webhooks/wechat/{}?signature={signature}&timestamp={now}&nonce={nonce}",
                    utf8_percent_encode(channel_id, PATH_SEGMENT)
                );
                let (status, body) = self.post_webhook(&path, "text/xml", None, xml).await?;
                Ok(WebhookReply {
                    status,
                    body,
                    provider_message_id: msg_id,
                })
            }
            other => Err(SandboxError::bad_request(
                "unsupported_channel",
                format!("channel {other:?} is not whatsapp, messenger, instagram or wechat"),
            )),
        }
    }

    /// Posts a WhatsApp delivery status for a sent message to the dev server, signed.
    pub async fn status(&self, s: StatusWebhook) -> Result<WebhookReply, SandboxError> {
        if s.channel != "whatsapp" {
            return Err(SandboxError::bad_request(
                "unsupported_channel",
                "status webhooks are sent for whatsapp only",
            ));
        }
        required(&s.account, "account")?;
        if s.user_id.as_deref().is_none_or(str::is_empty) {
            required(&s.to, "to")?;
        }
        let id = required(&s.provider_message_id, "provider_message_id")?.to_owned();
        if !["sent", "delivered", "read", "played", "failed"].contains(&s.status.as_str()) {
            return Err(SandboxError::bad_request(
                "invalid_status",
                "status is sent, delivered, read, played or failed",
            ));
        }
        if s.error_code.is_some() && s.status != "failed" {
            return Err(SandboxError::bad_request(
                "invalid_status",
                "error_code goes with status failed only",
            ));
        }
        let timestamp = s.timestamp.unwrap_or_else(now_epoch_seconds);
        let body = whatsapp_status(&s, timestamp).to_string();
        self.post_meta("whatsapp", body, id).await
    }

    async fn post_meta(
        &self,
        provider: &str,
        body: String,
        provider_message_id: String,
    ) -> Result<WebhookReply, SandboxError> {
        let signature = meta_signature(&self.inner.meta_app_secret, body.as_bytes());
        let (status, body) = self
            .post_webhook(
                &format!("/webhooks/{provider}"),
                "application/json",
                Some(signature),
                body,
            )
            .await?;
        Ok(WebhookReply {
            status,
            body,
            provider_message_id,
        })
    }

    async fn post_webhook(
        &self,
        path: &str,
        content_type: &str,
        meta_signature: Option<String>,
        body: String,
    ) -> Result<(u16, String), SandboxError> {
        let base = self
            .state()
            .webhook_base
            .clone()
            .ok_or(SandboxError::NoWebhookTarget)?;
        let mut request = self
            .inner
            .http
            .post(format!("{base}{path}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(signature) = meta_signature {
            request = request.header("x-hub-signature-256", signature);
        }
        let unreachable = |e: reqwest::Error| SandboxError::WebhookUnreachable(e.to_string());
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(unreachable)?;
        Ok((status, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_signatures_verify_with_the_webhook_functions_check() {
        let body = br#"{"object":"page"}"#;
        let header = meta_signature("s3cret", body);
        assert!(
            shared::adapters::channels::graph::verify_signature("s3cret", body, Some(&header))
                .is_ok()
        );
        assert!(
            shared::adapters::channels::graph::verify_signature("other", body, Some(&header))
                .is_err()
        );
    }

    #[test]
    fn wechat_signatures_match_the_webhook_functions_check() {
        let now = chrono::Utc::now();
        let ts = now.timestamp().to_string();
        let sig = wechat_signature("tok", &ts, "123");
        assert_eq!(
            sig,
            shared::adapters::channels::wechat::webhook::signature("tok", &ts, "123")
        );
        assert!(
            shared::adapters::channels::wechat::webhook::verify_signature(
                "tok",
                Some(&ts),
                Some("123"),
                Some(&sig),
                now
            )
            .is_ok()
        );
    }

    #[test]
    fn a_whatsapp_user_without_a_shared_number_is_sent_by_user_id() {
        let m = CustomerMessage {
            channel: "whatsapp".into(),
            account: "10".into(),
            user_id: Some("US.13491208655302741918".into()),
            username: Some("@jane".into()),
            ..CustomerMessage::default()
        };
        let body = whatsapp_text(&m, "hi", "wamid.1", 1_700_000_000).to_string();
        let parsed = shared::adapters::channels::whatsapp::webhook::parse_whatsapp(body.as_bytes())
            .expect("parses");
        let shared::domain::inbound::WebhookItem::Message(got) = &parsed.accounts[0].items[0]
        else {
            panic!("a message: {parsed:?}");
        };
        assert_eq!(got.customer, "US.13491208655302741918");
        assert_eq!(got.identity.username.as_deref(), Some("@jane"));
        assert_eq!(got.identity.phone, None);
    }

    #[test]
    fn a_played_status_reads_as_a_play_of_the_message() {
        let s = StatusWebhook {
            channel: "whatsapp".into(),
            account: "10".into(),
            to: "155".into(),
            provider_message_id: "wamid.V".into(),
            status: "played".into(),
            ..StatusWebhook::default()
        };
        let body = whatsapp_status(&s, 1_700_000_000).to_string();
        let parsed = shared::adapters::channels::whatsapp::webhook::parse_whatsapp(body.as_bytes())
            .expect("parses");
        assert!(parsed.accounts[0].items.iter().any(|i| matches!(
            i,
            shared::domain::inbound::WebhookItem::Lifecycle(c)
                if c.change == shared::domain::inbound::MessageChange::Played
        )));
    }

    #[test]
    fn text_with_a_cdata_terminator_survives_the_xml() {
        let xml = wechat_text("gh_1", "o1", "a]]>b", 1_700_000_000, "42");
        let parsed = shared::adapters::channels::wechat::webhook::parse_fields(xml.as_bytes())
            .expect("parses");
        assert_eq!(parsed.get("Content").map(String::as_str), Some("a]]>b"));
        assert_eq!(parsed.get("MsgId").map(String::as_str), Some("42"));
    }
}
