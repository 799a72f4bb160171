//! Ports: what the use cases need from the outside world, one narrow trait per concern.
//!
//! Adapters in [`crate::adapters`] implement them over AWS; tests may implement them in
//! memory. Futures are `Send` so handlers can run on any Tokio runtime.

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::Error;
use crate::domain::channel::{Channel, Credentials};
use crate::domain::conversation::{ConversationFilter, ConversationState, Message};
use crate::domain::ids::{ChannelId, TenantId};
use crate::domain::inbound::{InboundMessage, StatusUpdate, Watermark};
use crate::domain::message::DeliveryError;
use crate::domain::page::{Page, PageRequest};

/// Storage of connected channels.
pub trait ChannelStore: Send + Sync {
    /// Stores a new channel with its credentials, atomically.
    ///
    /// Fails with [`Error::Conflict`] (`external_id_taken`) when any tenant already connected
    /// a channel with the same `external_id`; nothing is written in that case.
    fn create_channel(
        &self,
        channel: &Channel,
        credentials: &Credentials,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// One page of a tenant's channels, oldest first.
    fn list_channels(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Channel>, Error>> + Send;
}

/// A channel with its credentials: what webhooks and senders need to act for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedChannel {
    /// The channel (with its tenant).
    pub channel: Channel,
    /// Its provider credentials.
    pub credentials: Credentials,
}

/// Finding a channel from outside a tenant's context (webhooks).
pub trait ChannelDirectory: Send + Sync {
    /// The channel connected with a provider account id (phone_number_id, page id, ...).
    fn by_external_id(
        &self,
        external_id: &str,
    ) -> impl Future<Output = Result<Option<RoutedChannel>, Error>> + Send;

    /// The channel with our id (WeChat webhooks carry it in the path).
    fn by_id(
        &self,
        id: &ChannelId,
    ) -> impl Future<Output = Result<Option<RoutedChannel>, Error>> + Send;
}

/// Where a stored message lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    /// Message id.
    pub message_id: String,
    /// Its conversation.
    pub conversation_id: String,
}

/// Result of recording a provider message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Stored now.
    Stored(MessageRef),
    /// This provider message id was stored before: nothing written.
    Duplicate,
}

/// Result of applying a delivery status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusOutcome {
    /// The message moved forward to this status.
    Applied(MessageRef),
    /// The message is not recorded yet: the status is kept and applied when it is.
    Kept,
    /// The message already has this status or a later one: nothing changed.
    Stale,
}

/// Writing what webhooks bring in. Every write is idempotent.
pub trait InboundStore: Send + Sync {
    /// Stores a message with its customer and conversation updates, exactly once per
    /// provider message id (a conditional write settles races).
    fn record_message(
        &self,
        channel: &Channel,
        message: &InboundMessage,
        received_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Recorded, Error>> + Send;

    /// The status kept for a provider message id that arrived before the message was
    /// recorded, if any (see [`StatusOutcome::Kept`]).
    fn pending_status(
        &self,
        channel: &Channel,
        customer: &str,
        provider_message_id: &str,
    ) -> impl Future<Output = Result<Option<StatusUpdate>, Error>> + Send;

    /// Moves an outbound message's status forward (never back); a status for a message not
    /// recorded yet is kept until it is.
    fn apply_status(
        &self,
        channel: &Channel,
        update: &StatusUpdate,
    ) -> impl Future<Output = Result<StatusOutcome, Error>> + Send;

    /// Moves every outbound message to the customer up to the watermark forward.
    fn apply_watermark(
        &self,
        channel: &Channel,
        watermark: &Watermark,
    ) -> impl Future<Output = Result<Vec<MessageRef>, Error>> + Send;

    /// Adds an internal note to a conversation (never sent to the customer).
    fn record_system_message(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        text: &str,
        error: Option<&DeliveryError>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<MessageRef, Error>> + Send;
}

/// Reading conversations and messages for agents. Every read is scoped to one tenant.
pub trait ConversationReader: Send + Sync {
    /// One page of conversations matching the filter, most recent activity first.
    fn list_conversations(
        &self,
        tenant: &TenantId,
        filter: &ConversationFilter,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<ConversationState>, Error>> + Send;

    /// One conversation, or `None` (also for another tenant's id).
    fn get_conversation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<ConversationState>, Error>> + Send;

    /// One page of a conversation's messages, newest first.
    fn list_messages(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Message>, Error>> + Send;
}

/// A domain event for the event bus.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainEvent {
    /// `MessageReceived`, `MessageStatusChanged`, ...
    pub detail_type: &'static str,
    /// The event's fields (ids and states, never message text).
    pub detail: serde_json::Value,
}

/// Publishing domain events.
pub trait EventPublisher: Send + Sync {
    /// Publishes events (in batches the bus accepts).
    fn publish(&self, events: &[DomainEvent]) -> impl Future<Output = Result<(), Error>> + Send;
}
