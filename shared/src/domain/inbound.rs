//! What a provider webhook says, normalized: customer messages, delivery statuses and
//! read/delivery watermarks, grouped by the business account they were sent to.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::message::{DeliveryError, DeliveryStatus, Direction, MessageKind};

/// Media a provider message carries (fetched into S3 by the media pipeline).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboundMedia {
    /// The provider's media id (WhatsApp, WeChat), if any.
    pub provider_media_id: Option<String>,
    /// The provider's (short-lived) URL (Messenger, Instagram, WeChat PicUrl), if any.
    pub url: Option<String>,
    /// Declared MIME type.
    pub mime_type: Option<String>,
    /// Declared sha256 (WhatsApp).
    pub sha256: Option<String>,
    /// Declared file name (documents).
    pub filename: Option<String>,
}

/// One message, as stored in the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// The provider's id (wamid, mid, MsgId, or a stable synthetic id for id-less events):
    /// the idempotency key.
    pub provider_message_id: String,
    /// The customer's id at the provider (wa_id, PSID, IGSID, OpenID).
    pub customer: String,
    /// The customer's profile name, when the provider sends it.
    pub customer_name: Option<String>,
    /// Inbound, or outbound for replies typed in Meta's own inbox (echoes of other apps).
    pub direction: Direction,
    /// Normalized kind.
    pub kind: MessageKind,
    /// Text, caption, button title, emoji, ... when there is one.
    pub text: Option<String>,
    /// Media, when there is some.
    pub media: Option<InboundMedia>,
    /// The provider id of the message this one replies or reacts to.
    pub reply_to: Option<String>,
    /// The provider's timestamp; `None` when absent or unreadable (the receive time is used).
    pub timestamp: Option<DateTime<Utc>>,
    /// Whether it opens/refreshes the customer service window.
    pub opens_window: bool,
    /// The provider's own fragment, for audit.
    pub raw: Value,
}

/// How far ahead of our clock a provider timestamp may be before it is not believed.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 300;
/// Longest provider message id or user id stored (real ones are under 100 characters).
pub const MAX_PROVIDER_ID_LEN: usize = 256;

impl InboundMessage {
    /// The time the message counts from: the provider's timestamp, unless it is missing
    /// or in the future beyond clock skew (which would keep a window open or push every
    /// later message aside), in which case the receive time.
    pub fn effective_time(&self, received_at: DateTime<Utc>) -> DateTime<Utc> {
        match self.timestamp {
            Some(t) if t <= received_at + chrono::Duration::seconds(MAX_CLOCK_SKEW_SECONDS) => t,
            _ => received_at,
        }
    }
}

/// Whether ids taken from a webhook are short enough to store (and key) safely.
pub fn ids_storable(ids: &[&str]) -> bool {
    ids.iter()
        .all(|id| !id.is_empty() && id.len() <= MAX_PROVIDER_ID_LEN)
}

/// A delivery status of one of our outbound messages.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    /// The provider id of the outbound message.
    pub provider_message_id: String,
    /// The customer it was sent to.
    pub customer: String,
    /// New status.
    pub status: DeliveryStatus,
    /// The provider's timestamp.
    pub timestamp: Option<DateTime<Utc>>,
    /// For `failed`: what went wrong and what to do.
    pub error: Option<DeliveryError>,
    /// The provider's fragment (with `conversation` and `pricing` objects), for audit.
    pub raw: Value,
    /// Our own reference sent with the message (WhatsApp `biz_opaque_callback_data`): the
    /// message's time and id, which maps a status back to a message whose send had an
    /// unknown outcome (see [`parse_reference`]).
    pub reference: Option<(String, String)>,
}

/// Reads a reference we put on an outbound message: `<created_at>#<message id>`.
pub fn parse_reference(value: &str) -> Option<(String, String)> {
    let (at, id) = value.split_once('#')?;
    let at_ok = crate::domain::time::parse_rfc3339(at).is_some() && at.len() <= 40;
    let id_ok = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric());
    (at_ok && id_ok).then(|| (at.to_owned(), id.to_owned()))
}

/// Messenger/Instagram: everything sent to `customer` up to `watermark` is delivered/read.
#[derive(Debug, Clone, PartialEq)]
pub struct Watermark {
    /// The customer.
    pub customer: String,
    /// `Delivered` or `Read`.
    pub status: DeliveryStatus,
    /// Up to when.
    pub watermark: DateTime<Utc>,
    /// Message ids the provider named explicitly (Messenger deliveries).
    pub mids: Vec<String>,
}

/// One item of a webhook.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookItem {
    /// A message to store.
    Message(InboundMessage),
    /// A delivery status.
    Status(StatusUpdate),
    /// A delivery/read watermark.
    Watermark(Watermark),
}

/// The items addressed to one business account (phone_number_id, page id, IG id, WeChat id).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountItems {
    /// The account's external id: routes to a tenant's channel.
    pub external_id: String,
    /// Its items, in payload order.
    pub items: Vec<WebhookItem>,
}

/// Meta's review decision on a WhatsApp template (`message_template_status_update`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateStatusUpdate {
    /// Meta's template id.
    pub provider_template_id: String,
    /// `APPROVED`, `REJECTED`, `PAUSED`, `DISABLED`, …
    pub status: String,
    /// Meta's reason (`NONE` when there is none).
    pub reason: Option<String>,
}

/// A whole webhook, normalized.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedWebhook {
    /// Items grouped by account, in payload order.
    pub accounts: Vec<AccountItems>,
    /// Template review decisions (addressed to a business account, not a number).
    pub template_updates: Vec<TemplateStatusUpdate>,
    /// Items acknowledged without storing (our own echoes, other webhook fields, items
    /// without the ids needed to store them), with the reason, for the log.
    pub skipped: Vec<&'static str>,
}

impl ParsedWebhook {
    /// Adds an item for an account, keeping payload order.
    pub fn push(&mut self, external_id: &str, item: WebhookItem) {
        match self
            .accounts
            .iter_mut()
            .find(|a| a.external_id == external_id)
        {
            Some(account) => account.items.push(item),
            None => self.accounts.push(AccountItems {
                external_id: external_id.to_owned(),
                items: vec![item],
            }),
        }
    }

    /// Number of items of every account.
    pub fn item_count(&self) -> usize {
        self.accounts.iter().map(|a| a.items.len()).sum()
    }
}

/// Epoch seconds (number or numeric string) → time.
pub fn from_epoch_seconds(v: &Value) -> Option<DateTime<Utc>> {
    let secs = match v {
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    DateTime::from_timestamp(secs, 0).filter(|t| t.timestamp() >= 0)
}

/// Epoch milliseconds (number or numeric string) → time.
pub fn from_epoch_millis(v: &Value) -> Option<DateTime<Utc>> {
    let ms = match v {
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    DateTime::from_timestamp_millis(ms).filter(|t| t.timestamp() >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(timestamp: Option<DateTime<Utc>>) -> InboundMessage {
        InboundMessage {
            provider_message_id: "m".into(),
            customer: "c".into(),
            customer_name: None,
            direction: crate::domain::message::Direction::Inbound,
            kind: MessageKind::Text,
            text: None,
            media: None,
            reply_to: None,
            timestamp,
            opens_window: true,
            raw: Value::Null,
        }
    }

    #[test]
    fn future_or_missing_provider_times_fall_back_to_the_receive_time() {
        let now = Utc::now();
        let past = now - chrono::Duration::hours(2);
        assert_eq!(message(Some(past)).effective_time(now), past);
        assert_eq!(message(None).effective_time(now), now);
        let far = now + chrono::Duration::days(365 * 8000);
        assert_eq!(message(Some(far)).effective_time(now), now);
        let skew = now + chrono::Duration::seconds(60);
        assert_eq!(message(Some(skew)).effective_time(now), skew);
    }

    #[test]
    fn absurd_epoch_values_are_not_times() {
        assert!(from_epoch_seconds(&Value::String("-5".into())).is_none());
        assert!(from_epoch_seconds(&Value::String("99999999999999999".into())).is_none());
        assert!(from_epoch_millis(&serde_json::json!(1_795_512_600_000i64)).is_some());
    }

    #[test]
    fn oversize_ids_are_not_storable() {
        assert!(ids_storable(&["wamid.x", "15551234567"]));
        assert!(!ids_storable(&["", "x"]));
        assert!(!ids_storable(&[&"x".repeat(300)]));
    }
}
