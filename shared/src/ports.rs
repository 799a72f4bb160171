//! Ports: what the use cases need from the outside world, one narrow trait per concern.
//!
//! Adapters in [`crate::adapters`] implement them over AWS; tests may implement them in
//! memory. Futures are `Send` so handlers can run on any Tokio runtime.

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::Error;
use crate::domain::channel::{Channel, Credentials};
use crate::domain::conversation::{ConversationFilter, ConversationState, Message};
use crate::domain::customer::{Customer, CustomerPatch, CustomerQuery};
use crate::domain::ids::{AgentId, ChannelId, TenantId};
use crate::domain::inbound::{InboundMessage, LifecycleEvent, StatusUpdate, Watermark};
use crate::domain::label::{Label, LabelName};
use crate::domain::media::{Claim, MediaRecord, Settlement};
use crate::domain::message::DeliveryError;
use crate::domain::note::Note;
use crate::domain::page::{Page, PageRequest};
use crate::domain::sniff::Blob;

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

    /// The channel with our id if it is at hand without a request (a cache).
    fn known_by_id(&self, _id: &ChannelId) -> Option<RoutedChannel> {
        None
    }

    /// Keeps a channel read along with something else (a cache).
    fn remember(&self, _channel: &RoutedChannel) {}
}

/// Where a stored message lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    /// Message id.
    pub message_id: String,
    /// Its conversation.
    pub conversation_id: String,
    /// The conversation had scheduled messages the customer's reply cancels (as read
    /// before this message).
    pub cancels_scheduled: bool,
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

    /// Maps a kept status's provider id to our message named by the reference it carried
    /// (a send whose outcome was unknown): the message gets its provider id and `sent`.
    /// `None` when the reference names no message of the conversation, or one already
    /// mapped.
    fn link_outbound(
        &self,
        channel: &Channel,
        update: &StatusUpdate,
    ) -> impl Future<Output = Result<Option<MessageRef>, Error>> + Send;

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
        message: &crate::domain::system::SystemMessage,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<MessageRef, Error>> + Send;
}

/// Result of applying a lifecycle change (edit, deletion, reaction, play) to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// The message it names now shows the change.
    Applied(MessageRef),
    /// The message is not stored yet: the change is kept (bounded, with a TTL) and shows
    /// once it is.
    Kept,
    /// This change was applied before (a re-delivery): nothing changed.
    Duplicate,
}

/// The several ids a provider may use for one customer (WhatsApp: phone number,
/// business-scoped user id, and the `wa_id` the Graph API answered for a number we
/// started a conversation with). An alias points at the id the conversation is keyed by.
pub trait CustomerAliases: Send + Sync {
    /// The aliases among `ids` on a channel: alias id → the id its conversation is keyed
    /// by (one consistent read; ids without an alias are absent).
    fn customer_aliases(
        &self,
        channel: &Channel,
        ids: &[String],
    ) -> impl Future<Output = Result<std::collections::HashMap<String, String>, Error>> + Send;

    /// Links `alias` to the customer whose conversation is keyed by `canonical`, with a
    /// conditional put: the first link of an alias wins. Returns the id in force for
    /// `alias` afterwards (`canonical`, or the earlier link's target).
    ///
    /// The send path calls it when the Graph API answers a business-initiated send with a
    /// `contacts[0].wa_id` other than the number sent to (see
    /// [`crate::domain::inbound::answered_alias`]): the customer's reply and the
    /// statuses, which come from that `wa_id`, then land in the started conversation.
    ///
    /// # Errors
    /// `internal` when the store fails.
    fn alias_customer(
        &self,
        channel: &Channel,
        alias: &str,
        canonical: &str,
    ) -> impl Future<Output = Result<String, Error>> + Send;
}

/// The tenant's label catalog, as whatever puts labels on customers reads it.
pub trait LabelCatalog: Send + Sync {
    /// One label of the tenant's catalog, read consistently; `None` when the tenant has
    /// no label so named.
    ///
    /// # Errors
    /// `internal` when the store fails.
    fn get_label(
        &self,
        tenant: &TenantId,
        name: &LabelName,
    ) -> impl Future<Output = Result<Option<Label>, Error>> + Send;
}

/// Creating and listing the label catalog.
pub trait LabelStore: Send + Sync {
    /// Adds a label to the tenant's catalog (conditional put).
    ///
    /// # Errors
    /// `409 duplicate_label` when the tenant has one so named (nothing written).
    fn create_label(
        &self,
        tenant: &TenantId,
        label: &Label,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// One page of the catalog, by name.
    fn list_labels(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Label>, Error>> + Send;
}

/// Customers as agents read, edit and search them. Every call is scoped to one tenant:
/// another tenant's id is unknown.
pub trait CustomerStore: Send + Sync {
    /// One customer, read consistently, or `None`.
    fn get_customer(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<Customer>, Error>> + Send;

    /// Applies a PATCH atomically with the conversation's copy of the agent's name, and
    /// returns the customer as it is now; `None` for an unknown customer (nothing written).
    ///
    /// # Errors
    /// `422 invalid_attributes` when the merged attributes would be over 50.
    fn patch_customer(
        &self,
        tenant: &TenantId,
        id: &str,
        patch: &CustomerPatch,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Customer>, Error>> + Send;

    /// One page of the customers a query matches, each read back fresh; every page is
    /// served by an index.
    ///
    /// # Errors
    /// `400 invalid_cursor`.
    fn search_customers(
        &self,
        tenant: &TenantId,
        query: &CustomerQuery,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Customer>, Error>> + Send;
}

/// Notes on customers.
pub trait NoteStore: Send + Sync {
    /// Stores a note by `author` (its name read from the agent directory); `None` when the
    /// tenant has no such customer (nothing written).
    fn add_note(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        author: &AgentId,
        text: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Note>, Error>> + Send;

    /// One page of a customer's notes, newest first, with their authors' current names;
    /// `None` when the tenant has no such customer.
    ///
    /// # Errors
    /// `400 invalid_cursor`.
    fn list_notes(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Option<Page<Note>>, Error>> + Send;

    /// One note, read consistently, or `None`.
    fn get_note(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        note_id: &str,
    ) -> impl Future<Output = Result<Option<Note>, Error>> + Send;

    /// Deletes a note; `false` when it was gone already.
    fn delete_note(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        note_id: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

/// Changes to messages reported after they were sent: edits, deletions, reactions, plays.
pub trait MessageLifecycle: Send + Sync {
    /// Applies a change to the message it names (kept on its provider id item, where the
    /// message view reads it, with the provider's fragment appended to its history), once
    /// per event id. A change for a message not stored yet is kept there until it is.
    fn apply_change(
        &self,
        channel: &Channel,
        event: &LifecycleEvent,
        received_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<ChangeOutcome, Error>> + Send;
}

/// Reading conversations and messages for agents. Every read is scoped to one tenant.
pub trait ConversationReader: Send + Sync {
    /// One page of conversations matching the filter as they read at `now` (a snooze that
    /// has ended reads as open), most recent activity first. `assignee=me` must be
    /// resolved to an agent id first.
    fn list_conversations(
        &self,
        tenant: &TenantId,
        filter: &ConversationFilter,
        page: &PageRequest,
        now: DateTime<Utc>,
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

pub use crate::domain::events::DomainEvent;

/// Publishing domain events.
pub trait EventPublisher: Send + Sync {
    /// Publishes events (in batches the bus accepts).
    fn publish(&self, events: &[DomainEvent]) -> impl Future<Output = Result<(), Error>> + Send;
}

/// A presigned browser upload that the object store itself enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedUpload {
    /// Where to POST.
    pub url: String,
    /// `POST`.
    pub method: &'static str,
    /// Form fields to send before the file.
    pub fields: Vec<(String, String)>,
    /// When the signature stops working.
    pub expires_at: DateTime<Utc>,
}

/// An agent reading conversations.
pub trait ReadMarker: Send + Sync {
    /// Sets a conversation's `unread_count` to 0 with one conditional write and returns
    /// the conversation as it is afterwards; `None` when the tenant has no such
    /// conversation (another tenant's id too), in which case nothing is written.
    fn mark_conversation_read(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<ConversationState>, Error>> + Send;
}

/// Media records.
pub trait MediaStore: Send + Sync {
    /// Stores a new record.
    fn create_media(&self, record: &MediaRecord) -> impl Future<Output = Result<(), Error>> + Send;

    /// A record of the tenant, or `None` (also for another tenant's id).
    fn get_media(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<MediaRecord>, Error>> + Send;

    /// Settles a pending record (valid or rejected) in one conditional write; `false`
    /// when it was not pending any more (a re-delivered event), is gone, or declares
    /// other than the settlement's claim, in which case nothing changes.
    fn settle_media(
        &self,
        settlement: &Settlement,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

/// What a copy left at its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// SHA-256 (hex) of the object at the destination.
    pub sha256: String,
    /// Whether this copy wrote it (`false`: it was there already, and is not ours to
    /// remove).
    pub created: bool,
}

/// An object opened for reading, with what it says about itself.
#[derive(Debug)]
pub struct OpenedObject<B> {
    /// Ranged reads; the bytes asked for at opening come with it.
    pub blob: B,
    /// Its `Content-Type` (pinned by the upload form's policy, or written by us).
    pub content_type: Option<String>,
    /// Marked as fetched from a provider (only our own writer sets it).
    pub inbound: bool,
}

/// The media bucket.
pub trait ObjectStore: Send + Sync {
    /// Ranged reader over one object.
    type Blob: Blob;

    /// Part-by-part writer of one object.
    type Writer: ObjectWriter;

    /// A presigned POST for exactly `key`, of `content_type`, 1 to `max_size` bytes.
    fn presign_upload(
        &self,
        key: &str,
        content_type: &str,
        max_size: u64,
        ttl: std::time::Duration,
    ) -> impl Future<Output = Result<PresignedUpload, Error>> + Send;

    /// Opens an object, reading its first `first` bytes (all of it for `None`) in the
    /// same request; `None` when it does not exist.
    fn open(
        &self,
        key: &str,
        first: Option<u64>,
    ) -> impl Future<Output = Result<Option<OpenedObject<Self::Blob>>, Error>> + Send;

    /// Copies `from` (only if still at `version`, when given) to `to`, unless `to` exists
    /// already, and returns the SHA-256 the store keeps for what is at `to`. A replaced
    /// source is a `Conflict`.
    fn copy_with_sha256(
        &self,
        from: &str,
        to: &str,
        version: Option<&str>,
    ) -> impl Future<Output = Result<Copied, Error>> + Send;

    /// Deletes an object (absent is fine).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// A writer for a new object at `key`, labelled with the claim's type and origin.
    fn writer(&self, key: &str, claim: &Claim) -> Self::Writer;

    /// A short-lived download URL.
    fn presign_download(
        &self,
        key: &str,
        ttl: std::time::Duration,
    ) -> impl Future<Output = Result<String, Error>> + Send;
}

/// A response body read in chunks.
pub trait FetchBody: Send {
    /// The `Content-Type` the server sent.
    fn content_type(&self) -> Option<&str>;

    /// The `Content-Length` the server sent.
    fn declared_len(&self) -> Option<u64>;

    /// The next chunk, `None` at the end; `Err` is a reason for the agent.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, String>> + Send;
}

/// Fetching provider media (behind an SSRF guard).
pub trait MediaFetcher: Send + Sync {
    /// The body type.
    type Body: FetchBody;

    /// A GET; `Err` is a reason the media is unavailable.
    fn get(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> impl Future<Output = Result<Self::Body, String>> + Send;
}

/// Writes one object in parts, never holding more than a part in memory.
pub trait ObjectWriter: Send {
    /// Appends bytes.
    fn write(&mut self, chunk: &[u8]) -> impl Future<Output = Result<(), Error>> + Send;

    /// Completes the object; returns its size.
    fn finish(self) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Gives up (best effort).
    fn abort(self) -> impl Future<Output = ()> + Send;
}

/// What became of a message's media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaLink {
    /// Fetched into the bucket as this media record (validated next).
    Fetched {
        /// The media record.
        media_id: String,
    },
    /// Could not be fetched; the agent sees why.
    Unavailable {
        /// Why.
        reason: String,
    },
}

/// Linking a stored message to its media.
pub trait MessageMedia: Send + Sync {
    /// Records what became of a message's media.
    fn link_media(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        created_at: &str,
        message_id: &str,
        link: &MediaLink,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// One outbound message being accepted (`pending`), before it goes to the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingMessage {
    /// Message id.
    pub id: String,
    /// Its time (RFC 3339 with milliseconds): orders the parts of one send.
    pub created_at: String,
    /// Stored kind.
    pub kind: crate::domain::message::MessageKind,
    /// Text or caption shown in the conversation.
    pub text: Option<String>,
    /// The media record sent.
    pub media: Option<MediaSummary>,
    /// Template name, language and parameters (kept in `raw` for audit).
    pub raw: serde_json::Value,
}

/// The media of an outbound message, as shown in its `media`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSummary {
    /// Our media id.
    pub media_id: String,
    /// Its validated MIME type.
    pub mime_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Where a message is stored: its time (RFC 3339 with milliseconds) and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageKey {
    /// `created_at`, as stored.
    pub created_at: String,
    /// Message id.
    pub id: String,
}

/// An `Idempotency-Key` as stored: its hash and the hash of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Hash of the key.
    pub key_hash: String,
    /// Hash of the request body.
    pub body_hash: String,
}

/// Everything the pending write needs, decided before any write.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundBatch {
    /// The channel sending.
    pub channel: Channel,
    /// Conversation id.
    pub conversation_id: String,
    /// The customer's provider id.
    pub customer: String,
    /// Who sends, recorded on the messages.
    pub actor: crate::domain::actor::Actor,
    /// The messages, in send order.
    pub messages: Vec<PendingMessage>,
    /// `Idempotency-Key` and a hash of the request it came with.
    pub idempotency: Option<IdempotencyRecord>,
    /// WeChat: the most replies the conversation may have had before these (quota).
    pub reply_budget: Option<u32>,
    /// Business-initiated: create the conversation (and customer) when absent, reopen it.
    pub start: bool,
    /// The conversation as the sender read it (its list views are moved from it); `None`:
    /// the store reads it.
    pub seen: Option<ConversationState>,
    /// A bot's send: the bot state version its turn left (the accept is refused with
    /// `409 bot_stopped` once an agent, Exit Bot or another turn moved it).
    pub bot_version: Option<u64>,
    /// When the send is accepted by the clock (recorded on each message as `accepted_at`):
    /// the messages' `created_at` may be earlier (a resumed bot turn's time), so a repeat
    /// judges whether the send was left by this, not by `created_at`.
    pub accepted_at: DateTime<Utc>,
}

/// The result of accepting a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// Stored as pending: send them now.
    Accepted,
    /// The `Idempotency-Key` was used before for the same request: these messages
    /// (`created_at`, id) are the answer and nothing is sent again.
    Replay(Vec<MessageKey>),
}

/// What one provider call came to, for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted by the provider, with its id when it gives one.
    Sent(Option<String>),
    /// Failed for good (also after retries ran out).
    Failed(DeliveryError),
    /// The provider may have it; status webhooks will tell.
    Unknown,
}

/// Storing outbound messages: accepted as pending, then settled once.
pub trait OutboundStore: Send + Sync {
    /// Stores pending messages with the conversation's activity (and WeChat reply count),
    /// atomically, once per `Idempotency-Key`.
    fn accept(
        &self,
        batch: &OutboundBatch,
    ) -> impl Future<Output = Result<Acceptance, Error>> + Send;

    /// Records what the provider said about one message: `sent` with its provider id
    /// (mapped back for status webhooks), or `failed` with a system message.
    fn settle(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        message: &PendingMessage,
        outcome: &SendOutcome,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Takes over one accepted message whose send ended before settling it (its
    /// invocation died): `true` when the caller now owns its delivery and must settle it.
    /// `false` when it is no longer `pending`, has an outcome (sent, failed, or
    /// `outcome_unknown`: the provider may have it), was accepted at or after
    /// `stale_before` (its `accepted_at`; `created_at` for a message stored without one),
    /// or was taken over at or after `stale_before` by another caller. One conditional
    /// write; `now` is recorded as `taken_over_at`.
    fn take_over(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        message: &PendingMessage,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// The messages an earlier request with this `Idempotency-Key` (hashed) created, or
    /// `None`; the same key with another body (`body_hash`) is a 422.
    fn find_replay(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        key_hash: &str,
        body_hash: &str,
    ) -> impl Future<Output = Result<Option<Vec<MessageKey>>, Error>> + Send;

    /// A conversation and, when `route` is given, its channel's routing record, in one
    /// request (each `None` when absent).
    fn conversation_for_send(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        route: Option<&ChannelId>,
    ) -> impl Future<Output = Result<(Option<ConversationState>, Option<RoutedChannel>), Error>> + Send;

    /// Messages by (`created_at`, id), with their current status.
    fn messages(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        refs: &[MessageKey],
    ) -> impl Future<Output = Result<Vec<Message>, Error>> + Send;
}

/// Stored WhatsApp templates.
pub trait TemplateStore: Send + Sync {
    /// Stores a template (replacing one with the same id).
    fn put_template(
        &self,
        tenant: &TenantId,
        template: &crate::domain::template::Template,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// One template, or `None`.
    fn get_template(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<crate::domain::template::Template>, Error>> + Send;

    /// One page of the tenant's templates.
    fn list_templates(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<crate::domain::template::Template>, Error>> + Send;

    /// Applies Meta's review decision to the template with Meta's id `provider_template_id`;
    /// `false` when no tenant has such a template.
    fn set_template_status(
        &self,
        provider_template_id: &str,
        status: crate::domain::template::TemplateStatus,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Deletes a template (absent is fine).
    fn delete_template(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// One message for a channel's send API, in provider-neutral terms; the provider module
/// writes the wire body.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing<'a> {
    /// The customer's provider id (WhatsApp number or user id, PSID, IGSID, OpenID).
    pub to: &'a str,
    /// What is sent.
    pub content: crate::domain::outbound::Content<'a>,
    /// How the window lets it go (Messenger's `messaging_type` and tag).
    pub delivery: crate::domain::outbound::Delivery,
    /// Our reference, echoed back by the provider where it can (status reconciliation).
    pub reference: &'a str,
}

/// A file a channel takes by upload rather than by link (WeChat temporary media).
#[derive(Debug, Clone, Copy)]
pub struct MediaUpload<'a> {
    /// The outbound kind it is sent as.
    pub kind: crate::domain::outbound::OutboundKind,
    /// File name.
    pub filename: &'a str,
    /// Its MIME type (as validated).
    pub mime_type: &'a str,
    /// The bytes.
    pub bytes: &'a [u8],
}

/// A template as Meta created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTemplate {
    /// Meta's template id.
    pub id: String,
    /// Meta's status (`APPROVED`, `PENDING`, `REJECTED`).
    pub status: String,
    /// The category Meta assigned, when it says.
    pub category: Option<String>,
}

/// What marking a customer's messages read came to at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadReceipt {
    /// The provider took it (WhatsApp `status: read`, Messenger/Instagram `mark_seen`).
    Sent,
    /// The channel has no read receipts (WeChat): nothing was called.
    NotSupported,
    /// The provider refused it or could not be reached.
    Failed {
        /// The provider's error code, `http_<status>`, `timeout` or `connect` (for the
        /// log; never the answer's text).
        code: String,
    },
}

/// The channels' provider APIs (Graph API, WeChat API): the one port every sender uses.
pub trait ChannelSender: Send + Sync {
    /// One send call; the answer classified (never retried here).
    fn send(
        &self,
        channel: &RoutedChannel,
        message: &Outgoing<'_>,
    ) -> impl Future<Output = crate::domain::outbound::Attempt> + Send;

    /// Marks the customer's messages read up to `provider_message_id` (their latest, the
    /// one the conversation keeps): WhatsApp `status: read` of that wamid, Messenger and
    /// Instagram a `mark_seen` sender action to `customer` (PSID / IGSID; it marks the
    /// latest message seen), WeChat nothing ([`ReadReceipt::NotSupported`]). One call,
    /// never retried: a receipt is a courtesy to the customer, not our state.
    fn mark_read(
        &self,
        channel: &RoutedChannel,
        customer: &str,
        provider_message_id: &str,
    ) -> impl Future<Output = ReadReceipt> + Send;

    /// Uploads a file for channels that take media by id (WeChat); its media id.
    fn upload_media(
        &self,
        channel: &RoutedChannel,
        file: &MediaUpload<'_>,
    ) -> impl Future<Output = Result<String, crate::domain::outbound::Attempt>> + Send;

    /// Creates a template at Meta through the WhatsApp Business Account.
    fn create_template(
        &self,
        channel: &RoutedChannel,
        waba_id: &str,
        body: &serde_json::Value,
    ) -> impl Future<Output = Result<CreatedTemplate, Error>> + Send;

    /// Deletes a template at Meta: the one with Meta's id `hsm_id` when given, else every
    /// language of the name.
    fn delete_template(
        &self,
        channel: &RoutedChannel,
        waba_id: &str,
        name: &str,
        hsm_id: Option<&str>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Provider media protocols that need the provider's client (WeChat's `media/get` with
/// the account's access token); the bytes always come through the guarded fetcher.
pub trait ProviderMedia: Send + Sync {
    /// A customer's file as the message described it: WhatsApp by media id (the Graph
    /// lookup, then its URL with the channel's token), Messenger/Instagram by attachment
    /// URL, WeChat by media id (`media/get` with the account's token; for a video, the file
    /// behind the `video_url` WeChat answers with). The bytes come through `fetcher` (the
    /// SSRF guard). `Err` is why it is unavailable, in words for the agent.
    fn open_media<F: MediaFetcher>(
        &self,
        fetcher: &F,
        channel: &RoutedChannel,
        media: &crate::domain::events::EventMedia,
    ) -> impl Future<Output = Result<OpenedMedia<F::Body>, String>> + Send;
}

/// A customer's file being downloaded, with what the provider said about it.
#[derive(Debug)]
pub struct OpenedMedia<B> {
    /// The bytes.
    pub body: B,
    /// The MIME type the provider gave (WhatsApp's lookup), if any.
    pub mime_type: Option<String>,
    /// The SHA-256 the provider gave for the file (WhatsApp's lookup), if any.
    pub sha256: Option<String>,
}

/// Agents' changes to conversations (SPEC §7): each is written with its system message in
/// one transaction, placed in the list views from the conversation as read.
pub trait ConversationChanges: Send + Sync {
    /// Applies `change` to the conversation as it is now and returns it after. A change
    /// that changes nothing (a repeat) writes nothing.
    ///
    /// # Errors
    /// 404 for an unknown conversation (or another tenant's); 422 `unknown_agent` when an
    /// assignment names no agent of the tenant, `unknown_label` when a label is not in the
    /// catalog; the errors of [`crate::domain::changes::Change::apply`]; `Internal` when
    /// the store fails or keeps conflicting.
    fn change_conversation(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        change: &crate::domain::changes::Change,
        actor: &crate::domain::actor::Actor,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<ConversationState, Error>> + Send;

    /// Ids of conversations whose customer carries `label` (from its membership items,
    /// through the index: may lag a write by a moment), at most `limit`.
    fn labelled_conversations(
        &self,
        tenant: &TenantId,
        label: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, Error>> + Send;

    /// Removes a label from the tenant's catalog; `true` when it was there.
    fn delete_catalog_label(
        &self,
        tenant: &TenantId,
        label: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

// ---- The agent workspace (SPEC §7): settings, agents, FAQ ----

/// Reading a tenant's settings: what bots (outside-hours trigger), the calendar and FAQ
/// rendering need to know about the business.
pub trait SettingsReader: Send + Sync {
    /// The tenant's settings, read consistently; the defaults
    /// ([`crate::domain::settings::TenantSettings::default`]) when none were saved.
    ///
    /// # Errors
    /// `internal` when the store fails or the stored item does not parse.
    fn settings(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<crate::domain::settings::TenantSettings, Error>> + Send;
}

/// Saving a tenant's settings.
pub trait SettingsWriter: Send + Sync {
    /// Replaces the tenant's settings (last writer wins).
    fn put_settings(
        &self,
        tenant: &TenantId,
        settings: &crate::domain::settings::TenantSettings,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// The tenant's agent directory, as assignment reads it.
pub trait AgentDirectory: Send + Sync {
    /// The agent with this id (the JWT `sub`), read consistently; `None` when it is not an
    /// agent of the tenant, including for an id that could not be one (empty, over 128
    /// characters, with `#` or control characters), which is answered without a read.
    fn get_agent(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<crate::domain::agent::Agent>, Error>> + Send;
}

/// Managing the agent directory.
pub trait AgentStore: AgentDirectory {
    /// Creates or replaces an agent's name and role; `created_at` is kept from its first
    /// creation (`at` when new). Returns the agent as stored.
    fn put_agent(
        &self,
        tenant: &TenantId,
        id: &crate::domain::agent::AgentRef,
        profile: &crate::domain::agent::AgentProfile,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<crate::domain::agent::Agent, Error>> + Send;

    /// One page of the tenant's agents, by id.
    fn list_agents(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<crate::domain::agent::Agent>, Error>> + Send;

    /// Removes an agent; `false` when it was not one (nothing written).
    fn delete_agent(
        &self,
        tenant: &TenantId,
        id: &crate::domain::agent::AgentRef,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

/// A tenant's FAQ catalog. Shortcuts are unique per tenant and the catalog holds at most
/// [`crate::domain::faq::CATALOG_MAX`] entries, both settled by conditional writes.
pub trait FaqStore: Send + Sync {
    /// Stores a new entry.
    ///
    /// # Errors
    /// `409 duplicate_shortcut` (another entry has its shortcut), `409 faq_limit_reached`
    /// (the catalog is full); nothing is written then.
    fn create_faq(
        &self,
        tenant: &TenantId,
        faq: &crate::domain::faq::Faq,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Replaces an entry's title, text and shortcut (its `created_at` kept); `None` when
    /// the tenant has no entry with this id.
    ///
    /// # Errors
    /// `409 duplicate_shortcut`; nothing is written then.
    fn replace_faq(
        &self,
        tenant: &TenantId,
        id: &str,
        draft: &crate::domain::faq::FaqDraft,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<crate::domain::faq::Faq>, Error>> + Send;

    /// Removes an entry (and frees its shortcut); `false` when there was none.
    fn delete_faq(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// One entry, read consistently, or `None`.
    fn get_faq(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<crate::domain::faq::Faq>, Error>> + Send;

    /// One page of entries, oldest first, matching `query` when given.
    fn search_faqs(
        &self,
        tenant: &TenantId,
        query: Option<&crate::domain::faq::FaqQuery>,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<crate::domain::faq::Faq>, Error>> + Send;
}

/// Reading what FAQ rendering needs of a customer's own item (name, phone, WhatsApp
/// number, provider id, channel type).
pub trait CustomerContacts: Send + Sync {
    /// The customer's contact attributes, read consistently, or `None`.
    fn customer_contact(
        &self,
        tenant: &TenantId,
        customer_id: &str,
    ) -> impl Future<Output = Result<Option<crate::domain::faq::CustomerContact>, Error>> + Send;
}

// ---- Chatbots (SPEC §8) ----

/// A tenant's bots, kept together as one catalog item so a bot turn reads them with its
/// other inputs in one request. Writes replace the catalog conditionally on its version.
pub trait BotCatalog: Send + Sync {
    /// The tenant's bots (by id) and the catalog's version (0: never saved).
    fn bots(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<(Vec<crate::domain::bot::Bot>, u64), Error>> + Send;

    /// Replaces the catalog if its version is still `version`: `false` when another write
    /// came first (nothing written).
    ///
    /// # Errors
    /// `422 too_many_bots` when the catalog would exceed the item size limit (DynamoDB's
    /// 400 KB); `internal` when the store fails.
    fn save_bots(
        &self,
        tenant: &TenantId,
        bots: &[crate::domain::bot::Bot],
        version: u64,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

/// What one bot turn reads, in one request: the conversation, the message, the tenant's
/// settings and bots.
#[derive(Debug, Clone)]
pub struct TurnInputs {
    /// The conversation.
    pub conversation: ConversationState,
    /// When the conversation was created (its first message's time).
    pub conversation_created_at: Option<DateTime<Utc>>,
    /// The inbound message.
    pub message: Message,
    /// The tenant's settings (defaults when never saved).
    pub settings: crate::domain::settings::TenantSettings,
    /// The tenant's bots.
    pub bots: Vec<crate::domain::bot::Bot>,
    /// The message's turn, when it was claimed before (a re-delivery).
    pub claimed: Option<ClaimedSends>,
}

/// A turn to claim: the bot state after it, its system messages and the sends it makes,
/// written once per inbound message.
#[derive(Debug, Clone)]
pub struct TurnClaim {
    /// Tenant.
    pub tenant: TenantId,
    /// Conversation.
    pub conversation_id: String,
    /// The inbound message the turn answers (the claim's key).
    pub message_id: String,
    /// The bot state version the decision was made on.
    pub seen_version: u64,
    /// The turn's base time: its system messages and sends are placed from it.
    pub at: DateTime<Utc>,
    /// The decision.
    pub turn: crate::domain::bot::Turn,
}

/// A claimed turn's sends, as stored with the claim (so a re-delivery after a crash
/// finishes them with the same idempotency keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedSends {
    /// The bot.
    pub bot_id: String,
    /// The turn's base time.
    pub at: DateTime<Utc>,
    /// The messages, in order.
    pub sends: Vec<crate::domain::outbound::SendMessage>,
    /// Whether they were all sent (the turn settled).
    pub settled: bool,
    /// The agent a handover assigns.
    pub assign_to: Option<String>,
    /// The bot state version the turn left (its sends are conditional on it).
    pub version: u64,
}

/// What claiming a turn came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// Claimed: this invocation makes the turn.
    Claimed,
    /// The message's turn was claimed before (a re-delivery), with its sends.
    Taken(ClaimedSends),
    /// The conversation's bot state moved since it was read: read again and decide again.
    Moved,
    /// The conversation is gone.
    Gone,
}

/// The bot state of conversations: turns claimed once per inbound message, and stops.
pub trait BotTurns: Send + Sync {
    /// The inputs of a turn for the message at (`created_at`, `message_id`), its claim if
    /// it was claimed before included, read consistently in one request; `None` when the
    /// conversation or the message is missing.
    fn turn_inputs(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        created_at: &str,
        message_id: &str,
    ) -> impl Future<Output = Result<Option<TurnInputs>, Error>> + Send;

    /// Claims the turn of a message in one transaction: the claim item (once per message),
    /// the conversation's bot state (conditional on `seen_version`) and the turn's system
    /// messages (`bot_started`, `bot_exited`).
    fn claim_turn(
        &self,
        claim: &TurnClaim,
    ) -> impl Future<Output = Result<ClaimOutcome, Error>> + Send;

    /// The conversation's bot state, read consistently; `None` when it does not exist.
    fn conversation_bot(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
    ) -> impl Future<Output = Result<Option<crate::domain::bot::BotRun>, Error>> + Send;

    /// Marks a claimed turn's sends done.
    fn settle_turn(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        message_id: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Stops the running bot (conditional on the bot state version `seen`), writing the
    /// `bot_exited` system message in the same transaction; `false` when the state moved
    /// since it was read (nothing written).
    fn stop_bot(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        seen: &crate::domain::bot::BotRun,
        exit: &crate::domain::bot::Exit,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

// ---- Scheduled messages (SPEC §9) ----

/// What cancelling a scheduled message came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Cancelled now (with its system message).
    Cancelled(crate::domain::schedule::ScheduledMessage),
    /// It was no longer `scheduled` (being sent, sent, failed or cancelled before).
    NotScheduled(crate::domain::schedule::ScheduledMessage),
    /// No such scheduled message for the tenant.
    Missing,
}

/// Scheduled messages in the store. Every status change is conditional on the status read,
/// so a cancel racing a fire ends one way only, and writes its system message with it.
pub trait ScheduledStore: Send + Sync {
    /// Stores a new scheduled message (and, when the customer's reply cancels it, counts
    /// it on the conversation so the webhook's event says so).
    ///
    /// # Errors
    /// 404 `conversation` when it is gone; 422 `too_many_scheduled` over
    /// [`crate::domain::schedule::MAX_PENDING_PER_CONVERSATION`]; `Internal` otherwise.
    fn put_scheduled(
        &self,
        tenant: &TenantId,
        scheduled: &crate::domain::schedule::ScheduledMessage,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// One scheduled message of the tenant, read consistently.
    fn get_scheduled(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<crate::domain::schedule::ScheduledMessage>, Error>> + Send;

    /// A page of the tenant's scheduled messages (of one conversation when given), by
    /// `send_at`, optionally of one status.
    fn list_scheduled(
        &self,
        tenant: &TenantId,
        conversation_id: Option<&str>,
        status: Option<crate::domain::schedule::ScheduleStatus>,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<crate::domain::schedule::ScheduledMessage>, Error>> + Send;

    /// Claims a due message for sending (`scheduled` → `sending`), in one request: the
    /// message as claimed, or as it was when it was not `scheduled` (a fire already made
    /// or resumed, a cancel); `None` when there is no such message.
    fn claim_scheduled(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<
        Output = Result<Option<(crate::domain::schedule::ScheduledMessage, bool)>, Error>,
    > + Send;

    /// Settles a claimed message (`sending` → `after.status`: sent, failed or cancelled)
    /// with its system message, once: `false` when it was settled before.
    fn settle_scheduled(
        &self,
        tenant: &TenantId,
        after: &crate::domain::schedule::ScheduledMessage,
        note: &crate::domain::system::SystemMessage,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Cancels a `scheduled` message with its system message.
    fn cancel_scheduled(
        &self,
        tenant: &TenantId,
        id: &str,
        reason: crate::domain::schedule::CancelReason,
        actor: &crate::domain::actor::Actor,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<CancelOutcome, Error>> + Send;
}

/// One-time schedules (EventBridge Scheduler): each invokes the `scheduler` function with
/// its input at its time, once, and is then deleted.
pub trait Schedules: Send + Sync {
    /// Creates the schedule `name` at `at` (UTC, to the second) with `input`.
    ///
    /// # Errors
    /// 409 `schedule_exists` when `name` is taken; `Upstream` when Scheduler fails.
    fn create_schedule(
        &self,
        name: &str,
        at: DateTime<Utc>,
        input: &crate::domain::schedule::ScheduleInput,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Deletes the schedule `name`; one already gone (fired, or deleted) is fine.
    ///
    /// # Errors
    /// `Upstream` when Scheduler fails.
    fn delete_schedule(&self, name: &str) -> impl Future<Output = Result<(), Error>> + Send;
}

/// What a booking request reads first, in one request: the slot, whether the customer
/// exists, and the tenant's settings (its zone and name, for the confirmation).
#[derive(Debug, Clone)]
pub struct BookingInputs {
    /// The slot, when it exists.
    pub slot: Option<crate::domain::calendar::StoredSlot>,
    /// Whether the customer exists.
    pub customer_exists: bool,
    /// The tenant's settings.
    pub settings: crate::domain::settings::TenantSettings,
}

/// How a booking's transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookOutcome {
    /// Written: the slot is the booking's.
    Booked,
    /// Another booking holds the slot (nothing written).
    SlotTaken,
    /// The slot is gone (nothing written).
    SlotGone,
    /// The invitation was used meanwhile, or ran out (nothing written).
    InvitationSpent,
}

/// How a slot deletion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotDeletion {
    /// Deleted.
    Deleted,
    /// A booking holds it: kept.
    Booked,
    /// No such slot.
    Missing,
}

/// Calendar slots, bookings and invitations in the store. A slot is held by at most one
/// booking: the booking's transaction is conditional on the slot being free, and the
/// cancel frees it in the same transaction that cancels the booking.
pub trait BookingStore: Send + Sync {
    /// The tenant's slots starting in `[from, to)`, earliest first, one page; `available`
    /// keeps only free (`true`) or only booked (`false`) ones.
    ///
    /// # Errors
    /// 400 `invalid_cursor`; `Internal` when the store fails.
    fn slots(
        &self,
        tenant: &TenantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        available: Option<bool>,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<crate::domain::calendar::StoredSlot>, Error>> + Send;

    /// The calendar's version and every slot starting in `[from, to)`, read consistently
    /// after the version (for the overlap check of a creation).
    fn calendar_snapshot(
        &self,
        tenant: &TenantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Future<Output = Result<(Option<u64>, Vec<crate::domain::calendar::StoredSlot>), Error>>
    + Send;

    /// Writes new slots, all or none, if the calendar's version is still `version`:
    /// `false` when it moved (read and check again).
    fn create_slots(
        &self,
        tenant: &TenantId,
        slots: &[crate::domain::calendar::StoredSlot],
        version: Option<u64>,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Deletes a free slot.
    fn delete_slot(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<SlotDeletion, Error>> + Send;

    /// One consistent read of the slot, the customer and the settings.
    fn booking_inputs(
        &self,
        tenant: &TenantId,
        slot_id: &str,
        customer_id: &str,
    ) -> impl Future<Output = Result<BookingInputs, Error>> + Send;

    /// Writes a booking in one transaction: the slot taken (conditional on it existing and
    /// being free), the booking, its system message, and, through an invitation (by its
    /// token hash), the invitation used (conditional on it being unused and unexpired).
    fn book(
        &self,
        tenant: &TenantId,
        booking: &crate::domain::booking::Booking,
        note: &crate::domain::system::SystemMessage,
        invitation: Option<&str>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<BookOutcome, Error>> + Send;

    /// One booking, read consistently.
    fn get_booking(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<crate::domain::booking::Booking>, Error>> + Send;

    /// Cancels a confirmed booking and frees its slot in one transaction, with its system
    /// message: `false` when it was cancelled before (nothing written).
    fn cancel_booking(
        &self,
        tenant: &TenantId,
        after: &crate::domain::booking::Booking,
        note: &crate::domain::system::SystemMessage,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// A page of the tenant's bookings (of one customer when given) starting in
    /// `[from, to)`, earliest first.
    ///
    /// # Errors
    /// 400 `invalid_cursor`; `Internal` when the store fails.
    fn list_bookings(
        &self,
        tenant: &TenantId,
        customer_id: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<crate::domain::booking::Booking>, Error>> + Send;

    /// Stores a new invitation under its token's hash (kept until 30 days after it
    /// expires, for the "expired" page).
    fn put_invitation(
        &self,
        token_hash: &str,
        invitation: &crate::domain::booking::Invitation,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The invitation of a token's hash, read consistently.
    fn get_invitation(
        &self,
        token_hash: &str,
    ) -> impl Future<Output = Result<Option<crate::domain::booking::Invitation>, Error>> + Send;

    /// Removes an invitation whose link could not be sent.
    fn delete_invitation(&self, token_hash: &str)
    -> impl Future<Output = Result<(), Error>> + Send;
}

/// What a payment request reads first, in one request: the payment settings, the tenant's
/// settings (its name, for the messages) and the products it names.
#[derive(Debug, Clone)]
pub struct PaymentInputs {
    /// The payment settings (secrets inside).
    pub payment: crate::domain::payment::PaymentSettings,
    /// The tenant's settings.
    pub settings: crate::domain::settings::TenantSettings,
    /// The products found (of those named).
    pub products: Vec<crate::domain::payment::Product>,
    /// The payment of the request's id, when it exists (a retried request).
    pub existing: Option<crate::domain::payment::Payment>,
}

/// How a Stripe event's transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentSettlement {
    /// The payment moved (once: this event).
    Moved,
    /// This event was applied before (a re-delivery).
    Repeated,
    /// The payment is not where the event could move it from (a late `expired` after
    /// `paid`, a second outcome), or there is no such payment: nothing written.
    NotApplicable,
}

/// Payment settings, products and payments in the store.
pub trait PaymentStore: Send + Sync {
    /// The tenant's payment settings (the defaults when never set).
    fn payment_settings(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<crate::domain::payment::PaymentSettings, Error>> + Send;

    /// Stores provider, currency and secrets (the product count is the products' own).
    fn put_payment_settings(
        &self,
        tenant: &TenantId,
        settings: &crate::domain::payment::PaymentSettings,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// A page of the tenant's products, oldest first.
    ///
    /// # Errors
    /// 400 `invalid_cursor`.
    fn products(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<crate::domain::payment::Product>, Error>> + Send;

    /// Adds a product and counts it, in one transaction.
    ///
    /// # Errors
    /// 422 `too_many_products` over [`crate::domain::payment::MAX_PRODUCTS`].
    fn create_product(
        &self,
        tenant: &TenantId,
        product: &crate::domain::payment::Product,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Replaces a product (`false`: no such product; nothing written).
    fn replace_product(
        &self,
        tenant: &TenantId,
        product: &crate::domain::payment::Product,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// One product, read consistently.
    fn get_product(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<crate::domain::payment::Product>, Error>> + Send;

    /// Deletes a product and uncounts it (`false`: no such product).
    fn delete_product(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// One consistent read of the payment settings, the settings, the named products and
    /// the payment `payment_id` names (a retried request finds it).
    fn payment_inputs(
        &self,
        tenant: &TenantId,
        product_ids: &[String],
        payment_id: &str,
    ) -> impl Future<Output = Result<PaymentInputs, Error>> + Send;

    /// Stores a new payment with its `payment_requested` system message, in one
    /// transaction: `false` when a payment with its id exists (a retried request).
    fn create_payment(
        &self,
        tenant: &TenantId,
        payment: &crate::domain::payment::Payment,
        note: &crate::domain::system::SystemMessage,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// One payment, read consistently.
    fn get_payment(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<crate::domain::payment::Payment>, Error>> + Send;

    /// Reserves a client's `Idempotency-Key` (the payment id it names) for a request
    /// (`request_hash`) with the link's expiry: the reservation as it is, new or made by an
    /// earlier request, so a retry sends Stripe the same parameters.
    fn reserve_payment(
        &self,
        tenant: &TenantId,
        id: &str,
        request_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(String, DateTime<Utc>), Error>> + Send;

    /// Records the message that carried the link.
    fn set_payment_message(
        &self,
        tenant: &TenantId,
        id: &str,
        message_id: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Marks a payment whose link could not be sent `expired` with why (only from `open`).
    fn void_payment(
        &self,
        tenant: &TenantId,
        id: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// A page of a customer's payments, newest first.
    ///
    /// # Errors
    /// 400 `invalid_cursor`.
    fn list_payments(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<crate::domain::payment::Payment>, Error>> + Send;

    /// Applies a Stripe event in one transaction: the event's id recorded (once), the
    /// payment moved to `to` if it is in one of `from`, and the system message (if any).
    #[allow(clippy::too_many_arguments)]
    fn settle_payment(
        &self,
        tenant: &TenantId,
        payment_id: &str,
        conversation_id: &str,
        event_id: &str,
        transition: (
            crate::domain::payment::PaymentStatus,
            &[crate::domain::payment::PaymentStatus],
        ),
        note: Option<&crate::domain::system::SystemMessage>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<PaymentSettlement, Error>> + Send;
}

/// A call with who is connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRoom {
    /// The call.
    pub call: crate::domain::call::Call,
    /// The agent's connection id, while connected.
    pub agent_connection: Option<String>,
    /// The customer's.
    pub customer_connection: Option<String>,
}

impl CallRoom {
    /// The connection of `role`, while connected.
    pub fn connection(&self, role: crate::domain::call::Role) -> Option<&str> {
        match role {
            crate::domain::call::Role::Agent => self.agent_connection.as_deref(),
            crate::domain::call::Role::Customer => self.customer_connection.as_deref(),
        }
    }
}

/// Proves with the provider that credentials control a channel's account, before the
/// channel is stored.
pub trait ChannelVerifier: Send + Sync {
    /// `Ok` when the provider vouches for it.
    ///
    /// # Errors
    /// `Validation` `channel_not_verified` (422) with the provider's reason, or
    /// `waba_id_required` for a WhatsApp channel without its WABA; `Upstream` (502) when
    /// the provider failed or could not be reached.
    fn verify(
        &self,
        channel: &crate::domain::channel::Channel,
        credentials: &crate::domain::channel::Credentials,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Who a token or a connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallParty {
    /// The tenant.
    pub tenant_id: String,
    /// The call.
    pub call_id: String,
    /// The party.
    pub role: crate::domain::call::Role,
}

/// A signaling connection: who it is and, once the other party has joined, the other
/// party's connection (kept on the connection's own item, so a relayed frame costs one
/// read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallConnection {
    /// Who the connection is.
    pub party: CallParty,
    /// The other party's connection, as last known (`None`: alone so far, or not yet seen).
    pub peer: Option<String>,
    /// When API Gateway accepted the connection (`connectedAt` of its `$connect`).
    pub connected_at: Option<DateTime<Utc>>,
}

/// How a `$connect` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    /// Joined; the other party's connection when it is there too (the call is then active).
    Joined {
        /// The other party's connection.
        peer: Option<String>,
        /// Whether this join made the call active (its `call_started` was written).
        started: bool,
    },
    /// Refused: the role is taken, or the call is over or expired.
    Refused,
}

/// Video calls, their tokens and signaling connections in the store.
pub trait CallStore: Send + Sync {
    /// Stores a new call with its two role tokens (by hash), in one transaction.
    fn create_call(
        &self,
        tenant: &TenantId,
        call: &crate::domain::call::Call,
        tokens: &[(String, crate::domain::call::Role)],
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Records the message that carried the customer's link.
    fn set_call_message(
        &self,
        tenant: &TenantId,
        id: &str,
        message_id: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// A call with its connections, read consistently.
    fn call_room(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<CallRoom>, Error>> + Send;

    /// Who a role token (by hash) is.
    fn call_token(
        &self,
        token_hash: &str,
    ) -> impl Future<Output = Result<Option<CallParty>, Error>> + Send;

    /// Who a connection is, and its peer's connection when known (one read).
    fn connection(
        &self,
        connection_id: &str,
    ) -> impl Future<Output = Result<Option<CallConnection>, Error>> + Send;

    /// Connects `party` as `connection_id` (once per role, while the call is ringing or
    /// active and not expired); the second party makes the call active with its
    /// `call_started` system message, and each party's connection learns the other's.
    fn join(
        &self,
        party: &CallParty,
        connection_id: &str,
        connected_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<JoinOutcome, Error>> + Send;

    /// `party` (connected as `connection_id`) left or hung up: an active call ends with its
    /// `call_ended` system message; a ringing one only loses the connection; the other
    /// party's connection forgets this one. The ended call when this ended it.
    fn leave(
        &self,
        party: &CallParty,
        connection_id: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<crate::domain::call::Call>, Error>> + Send;

    /// A call still ringing at its expiry becomes missed, with its `call_missed` system
    /// message (`false`: it was not ringing).
    fn miss_call(
        &self,
        tenant: &TenantId,
        id: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

/// The signaling connections' management API (API Gateway's `@connections`).
pub trait Signaling: Send + Sync {
    /// Sends `data` to a connection: `false` when it is gone (`GoneException`).
    ///
    /// # Errors
    /// `Upstream` for any other failure.
    fn post(
        &self,
        connection_id: &str,
        data: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}
