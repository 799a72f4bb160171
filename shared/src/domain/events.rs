//! What crosses the event bus, typed once: the producer (the webhook's ingest) writes these
//! structs and every consumer (the media fetcher, the bot runner, the scheduler) reads the
//! same ones, inside the EventBridge envelope [`EventBridgeEvent`].
//!
//! Events carry ids and states, never message text.

use serde::{Deserialize, Serialize};

use super::channel::ChannelType;
use super::message::{DeliveryStatus, Direction, MessageKind};

/// The `source` of our events on the bus.
pub const SOURCE: &str = "chatroom";

/// An EventBridge event as a target receives it (the envelope AWS documents for
/// "Amazon EventBridge events": `detail-type`, `source`, `detail`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBridgeEvent<T> {
    /// Envelope version (`"0"`).
    #[serde(default)]
    pub version: String,
    /// Event id (unique per event; a re-delivery keeps it).
    #[serde(default)]
    pub id: String,
    /// `MessageReceived`, `MessageStatusChanged`, `Object Created`, …
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// `chatroom` for ours, `aws.s3` for S3's.
    pub source: String,
    /// The AWS account.
    #[serde(default)]
    pub account: String,
    /// When it was put (RFC 3339).
    #[serde(default)]
    pub time: String,
    /// The region.
    #[serde(default)]
    pub region: String,
    /// ARNs of the resources involved.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The event's own fields.
    pub detail: T,
}

/// The media of a received message, as the provider described it (fetched at once by
/// the media function: provider URLs expire within minutes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMedia {
    /// WhatsApp/WeChat media id.
    #[serde(default)]
    pub provider_media_id: Option<String>,
    /// Messenger/Instagram attachment URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Declared MIME type.
    #[serde(default)]
    pub mime_type: Option<String>,
    /// WhatsApp's SHA-256 of the file.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Declared file name.
    #[serde(default)]
    pub filename: Option<String>,
}

/// `MessageReceived`: a message was stored (a customer's, or an echo of one the business
/// sent from elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageReceived {
    /// Tenant.
    pub tenant_id: String,
    /// Channel.
    pub channel_id: String,
    /// Channel type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelType>,
    /// Conversation.
    pub conversation_id: String,
    /// Our message id.
    pub message_id: String,
    /// inbound | outbound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Normalized kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<MessageKind>,
    /// The provider's message id (re-deliveries of one provider message share it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// Message time (RFC 3339; part of the message's key).
    pub created_at: String,
    /// Whether it carries media to fetch.
    #[serde(default)]
    pub has_media: bool,
    /// Received while another app owns the thread (Messenger/Instagram handover
    /// `standby`): stored, never answered automatically (bots skip it).
    #[serde(default)]
    pub standby: bool,
    /// The conversation has scheduled messages this customer message cancels
    /// (`cancel_if_customer_replies`): the scheduler's rule matches on it.
    #[serde(default)]
    pub cancels_scheduled: bool,
    /// The media (all fields `null` when it has none).
    #[serde(default, deserialize_with = "null_as_default")]
    pub media: EventMedia,
}

/// `null` reads as the default (older producers wrote `"media": null` without media).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `MessageStatusChanged`: an outbound message moved (sent, delivered, read, failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageStatusChanged {
    /// Tenant.
    pub tenant_id: String,
    /// Channel.
    pub channel_id: String,
    /// Conversation.
    pub conversation_id: String,
    /// Our message id.
    pub message_id: String,
    /// Always outbound.
    pub direction: Direction,
    /// The new status.
    pub status: DeliveryStatus,
    /// The provider's error code, for `failed`.
    pub error_code: Option<String>,
}

/// `MessageChanged`: a stored message was edited, deleted, reacted to (or the reaction
/// removed) or played, as the provider reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageChanged {
    /// Tenant.
    pub tenant_id: String,
    /// Channel.
    pub channel_id: String,
    /// Conversation.
    pub conversation_id: String,
    /// Our message id.
    pub message_id: String,
    /// `edited`, `deleted`, `reacted`, `unreacted` or `played`.
    pub change: String,
    /// `inbound`: the customer changed it; `outbound`: the business did.
    pub by: Direction,
}

/// One of our events, ready for the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEvent {
    /// A message was stored.
    MessageReceived(MessageReceived),
    /// An outbound message's status moved.
    MessageStatusChanged(MessageStatusChanged),
    /// A stored message changed (edit, deletion, reaction, play).
    MessageChanged(MessageChanged),
}

impl DomainEvent {
    /// The `detail-type` on the bus.
    pub fn detail_type(&self) -> &'static str {
        match self {
            Self::MessageReceived(_) => "MessageReceived",
            Self::MessageStatusChanged(_) => "MessageStatusChanged",
            Self::MessageChanged(_) => "MessageChanged",
        }
    }

    /// The `detail` as JSON.
    pub fn detail(&self) -> serde_json::Value {
        match self {
            Self::MessageReceived(e) => serde_json::to_value(e),
            Self::MessageStatusChanged(e) => serde_json::to_value(e),
            Self::MessageChanged(e) => serde_json::to_value(e),
        }
        .unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVED: &str =
        include_str!("../../../functions/fixtures/eventbridge-message-received.json");
    const STATUS: &str =
        include_str!("../../../functions/fixtures/eventbridge-message-status-changed.json");

    #[test]
    fn a_message_received_event_reads_from_its_eventbridge_envelope() {
        let e: EventBridgeEvent<MessageReceived> = serde_json::from_str(RECEIVED).unwrap();
        assert_eq!(e.source, SOURCE);
        assert_eq!(e.detail_type, "MessageReceived");
        assert!(e.detail.has_media);
        assert_eq!(e.detail.media.mime_type.as_deref(), Some("image/jpeg"));
        assert_eq!(e.detail.kind, Some(MessageKind::Image));
    }

    #[test]
    fn an_event_without_media_reads_with_empty_media() {
        let mut e: serde_json::Value = serde_json::from_str(RECEIVED).unwrap();
        e["detail"]["media"] = serde_json::Value::Null;
        e["detail"]["has_media"] = false.into();
        let e: EventBridgeEvent<MessageReceived> = serde_json::from_value(e).unwrap();
        assert_eq!(e.detail.media, EventMedia::default());
    }

    #[test]
    fn what_the_producer_writes_is_what_consumers_read() {
        let e: EventBridgeEvent<MessageReceived> = serde_json::from_str(RECEIVED).unwrap();
        let event = DomainEvent::MessageReceived(e.detail.clone());
        let back: MessageReceived = serde_json::from_value(event.detail()).unwrap();
        assert_eq!(back, e.detail);
        let s: EventBridgeEvent<MessageStatusChanged> = serde_json::from_str(STATUS).unwrap();
        assert_eq!(s.detail.status, DeliveryStatus::Failed);
        assert_eq!(s.detail.error_code.as_deref(), Some("131026"));
        let event = DomainEvent::MessageStatusChanged(s.detail.clone());
        assert_eq!(event.detail_type(), "MessageStatusChanged");
        assert_eq!(
            serde_json::from_value::<MessageStatusChanged>(event.detail()).unwrap(),
            s.detail
        );
    }
}
