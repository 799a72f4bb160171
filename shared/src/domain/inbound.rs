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
    /// Every identifier the provider gave for the customer (WhatsApp: phone number,
    /// business-scoped user id, username); `customer` is the one the conversation is keyed by.
    pub identity: CustomerIdentity,
    /// Received while another app owns the thread (Messenger/Instagram handover `standby`):
    /// stored, but nothing may reply to it automatically.
    pub standby: bool,
}

/// What identifies a customer at the provider. WhatsApp users with a username may come
/// without a phone number, with only their business-scoped user id (BSUID, `user_id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerIdentity {
    /// The phone number (WhatsApp `wa_id` / `from`), when the provider shares it.
    pub phone: Option<String>,
    /// WhatsApp's business-scoped user id (`user_id` / `from_user_id`), e.g. `US.1349120865`.
    pub user_id: Option<String>,
    /// WhatsApp username (display only: users may change it).
    pub username: Option<String>,
}

impl CustomerIdentity {
    /// The id a conversation is keyed by when no alias says otherwise: the phone number
    /// when there is one (conversations keyed by it before usernames existed stay the
    /// same), else the business-scoped user id.
    pub fn key(&self) -> Option<&str> {
        self.phone.as_deref().or(self.user_id.as_deref())
    }

    /// Every identifier, key first.
    pub fn ids(&self) -> Vec<&str> {
        self.phone
            .iter()
            .chain(self.user_id.iter())
            .map(String::as_str)
            .collect()
    }
}

/// Picks the id a customer's conversation lives under, given the aliases already stored
/// (`alias id → canonical id`): the target of an alias of any of its ids, else its key.
/// Also returns the ids that need an alias to that canonical id (ids seen for the first
/// time beside it).
pub fn canonical_customer(
    ids: &[&str],
    aliases: &std::collections::HashMap<String, String>,
) -> Option<(String, Vec<String>)> {
    let canonical = ids
        .iter()
        .find_map(|id| aliases.get(*id))
        .cloned()
        .or_else(|| ids.first().map(|id| (*id).to_owned()))?;
    let missing = ids
        .iter()
        .filter(|id| **id != canonical && !aliases.contains_key(**id))
        .map(|id| (*id).to_owned())
        .collect();
    Some((canonical, missing))
}

/// The id to alias to a conversation after a send: the recipient the provider resolved
/// the address to (WhatsApp's `contacts[0].wa_id`, `Receipt::recipient`) when it is not
/// the number the conversation is keyed by (compared as digits). Brazilian numbers
/// answered without their ninth digit are the common case.
pub fn answered_alias(sent_to: &str, answered: Option<&str>) -> Option<String> {
    let digits = |v: &str| v.chars().filter(char::is_ascii_digit).collect::<String>();
    let answered = digits(answered?);
    (!answered.is_empty() && answered != digits(sent_to) && ids_storable(&[&answered]))
        .then_some(answered)
}

/// A change a provider reports to a message already sent (or not stored yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageChange {
    /// New text (or caption) for the message.
    Edited {
        /// The new text; `None` when the edit carries none.
        text: Option<String>,
    },
    /// Deleted / revoked / unsent by its author.
    Deleted,
    /// A reaction set (one per person per message: a new one replaces it).
    Reacted {
        /// The emoji.
        emoji: String,
    },
    /// The reaction removed.
    Unreacted,
    /// A voice message played by the customer (WhatsApp `played` status).
    Played,
}

impl MessageChange {
    /// The name used in the stored history and in events.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Edited { .. } => "edited",
            Self::Deleted => "deleted",
            Self::Reacted { .. } => "reacted",
            Self::Unreacted => "unreacted",
            Self::Played => "played",
        }
    }
}

/// A lifecycle event: a change to the message the provider names.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleEvent {
    /// The provider id of this event (or a stable synthetic one): dedupes re-deliveries.
    pub event_id: String,
    /// The provider id of the message it changes.
    pub target: String,
    /// The customer of the conversation.
    pub customer: String,
    /// Who made the change: `Inbound` the customer, `Outbound` the business.
    pub by: Direction,
    /// What changed.
    pub change: MessageChange,
    /// The provider's timestamp.
    pub timestamp: Option<DateTime<Utc>>,
    /// The provider's fragment, kept in the message's history.
    pub raw: Value,
}

/// Most lifecycle events kept in one message's history (each bounded by
/// [`MAX_HISTORY_ENTRY_BYTES`]); later ones still change the message, unrecorded.
pub const MAX_HISTORY: usize = 20;
/// Largest provider fragment kept per history entry.
pub const MAX_HISTORY_ENTRY_BYTES: usize = 4 * 1024;
/// How long changes for a message not stored yet are kept (TTL of the kept item).
pub const PENDING_CHANGE_TTL_DAYS: i64 = 7;

/// One history entry as stored: the change, who, when, and the provider's fragment
/// (replaced by its size when larger than [`MAX_HISTORY_ENTRY_BYTES`]).
pub fn history_entry(event: &LifecycleEvent, received_at: DateTime<Utc>) -> Value {
    let fragment = event.raw.to_string();
    let fragment = if fragment.len() > MAX_HISTORY_ENTRY_BYTES {
        serde_json::json!({"truncated": true, "bytes": fragment.len()})
    } else {
        event.raw.clone()
    };
    let mut entry = serde_json::json!({
        "event": event.change.as_str(),
        "by": if event.by == Direction::Inbound { "customer" } else { "business" },
        "at": crate::domain::time::rfc3339(&event.timestamp.unwrap_or(received_at)),
        "event_id": event.event_id,
        "fragment": fragment,
    });
    match &event.change {
        MessageChange::Edited { text: Some(t) } => entry["text"] = Value::String(t.clone()),
        MessageChange::Reacted { emoji } => entry["emoji"] = Value::String(emoji.clone()),
        _ => {}
    }
    entry
}

/// The `pricing` and `conversation` objects of a status webhook (SPEC §4), when present:
/// Meta's per-message pricing (`pricing_model`, `type`, `category`, `billable`) and the
/// conversation (`id`, `origin.type`, `expiration_timestamp`).
pub fn billing_of(raw: &Value) -> (Option<&Value>, Option<&Value>) {
    let pick = |k: &str| raw.get(k).filter(|v| v.is_object());
    (pick("pricing"), pick("conversation"))
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
    /// An edit, deletion, reaction or play of an earlier message.
    Lifecycle(LifecycleEvent),
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
            identity: CustomerIdentity::default(),
            standby: false,
        }
    }

    #[test]
    fn a_customer_lives_under_the_alias_of_any_of_its_ids() {
        use std::collections::HashMap;
        let none = HashMap::new();
        assert_eq!(
            canonical_customer(&["5511988887777", "BR.15025"], &none),
            Some(("5511988887777".into(), vec!["BR.15025".into()]))
        );
        assert_eq!(
            canonical_customer(&["BR.15025"], &none),
            Some(("BR.15025".into(), vec![]))
        );
        // Started by the agent as 55 11 9xxxx-xxxx, answered by Meta without the ninth digit.
        let started = HashMap::from([("551188887777".to_owned(), "5511988887777".to_owned())]);
        assert_eq!(
            canonical_customer(&["551188887777", "BR.15025"], &started),
            Some(("5511988887777".into(), vec!["BR.15025".into()]))
        );
        let by_user = HashMap::from([("BR.15025".to_owned(), "5511988887777".to_owned())]);
        assert_eq!(
            canonical_customer(&["BR.15025"], &by_user),
            Some(("5511988887777".into(), vec![]))
        );
        assert_eq!(canonical_customer(&[], &none), None);
    }

    #[test]
    fn a_resolved_number_other_than_the_one_sent_to_is_an_alias() {
        assert_eq!(
            answered_alias("5511988887777", Some("551188887777")).as_deref(),
            Some("551188887777")
        );
        assert_eq!(answered_alias("15551234567", Some("+1 555 123 4567")), None);
        assert_eq!(answered_alias("15551234567", None), None);
        assert_eq!(answered_alias("15551234567", Some("")), None);
    }

    #[test]
    fn the_phone_number_keys_a_customer_before_the_username_id() {
        let both = CustomerIdentity {
            phone: Some("155".into()),
            user_id: Some("US.1".into()),
            username: Some("@jane".into()),
        };
        assert_eq!(both.key(), Some("155"));
        assert_eq!(both.ids(), vec!["155", "US.1"]);
        let only_user = CustomerIdentity {
            user_id: Some("US.1".into()),
            ..CustomerIdentity::default()
        };
        assert_eq!(only_user.key(), Some("US.1"));
    }

    #[test]
    fn a_large_fragment_is_replaced_by_its_size_in_the_history() {
        let event = LifecycleEvent {
            event_id: "e".into(),
            target: "t".into(),
            customer: "c".into(),
            by: Direction::Inbound,
            change: MessageChange::Edited {
                text: Some("new".into()),
            },
            timestamp: None,
            raw: serde_json::json!({"big": "x".repeat(MAX_HISTORY_ENTRY_BYTES)}),
        };
        let entry = history_entry(&event, Utc::now());
        assert_eq!(entry["fragment"]["truncated"], true);
        assert_eq!(entry["event"], "edited");
        assert_eq!(entry["text"], "new");
        assert_eq!(entry["by"], "customer");
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
