//! In-memory fakes of the ports (feature `test-util`, and this crate's own tests), so that
//! services can be unit-tested as sentences without the emulator: [`InMemoryStore`]
//! (conversations, messages, media records, templates, channels), [`RecordingSender`]
//! (records what would reach a provider, read receipts too, and answers as scripted) and [`MemoryObjects`]
//! (the media bucket).
//!
//! They keep the adapters' contracts where a service depends on them: the accept of a
//! send is atomic, a repeated `Idempotency-Key` answers the first messages, WeChat's reply
//! quota is a condition of the accept, a failed settle writes a `delivery_failed` system
//! message.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::Error;
use crate::domain::channel::Channel;
use crate::domain::conversation::{
    ConversationFilter, ConversationState, ConversationStatus, CustomerRef, Message, preview,
};
use crate::domain::ids::{ChannelId, TenantId};
use crate::domain::label::{Label, LabelName};
use crate::domain::media::{Claim, MediaRecord, Settlement};
use crate::domain::message::{DeliveryStatus, Direction, MessageKind};
use crate::domain::outbound::{Attempt, Content, Delivery, OutboundKind};
use crate::domain::page::{Page, PageRequest};
use crate::domain::sniff::MemoryBlob;
use crate::domain::system::SystemMessage;
use crate::domain::template::{Template, TemplateStatus};
use crate::domain::window::WindowPolicy;
use crate::ports::{
    Acceptance, ChannelDirectory, ChannelSender, ConversationReader, Copied, CreatedTemplate,
    CustomerAliases, LabelCatalog, LabelStore, MediaStore, MediaUpload, MessageKey, ObjectStore,
    ObjectWriter, OpenedObject, OutboundBatch, OutboundStore, Outgoing, PendingMessage,
    PresignedUpload, ReadMarker, ReadReceipt, RoutedChannel, SendOutcome, TemplateStore,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Message key within a tenant: conversation, time, id.
type MessageSlot = (String, String, String, String);

#[derive(Debug, Default)]
struct State {
    channels: HashMap<ChannelId, RoutedChannel>,
    conversations: HashMap<(String, String), ConversationState>,
    messages: BTreeMap<MessageSlot, Message>,
    /// When an outbound message was accepted, by the service's clock.
    accepted: HashMap<MessageSlot, DateTime<Utc>>,
    /// When an interrupted send's message was last taken over.
    taken_over: HashMap<MessageSlot, DateTime<Utc>>,
    /// Settles still to refuse (a store that fails after the provider answered).
    settle_failures: u32,
    idempotency: HashMap<(String, String, String), (String, Vec<MessageKey>)>,
    media: HashMap<(String, String), MediaRecord>,
    templates: HashMap<(String, String), Template>,
    labels: BTreeMap<(String, String), Label>,
    aliases: HashMap<(ChannelId, String), String>,
}

/// Every store port in memory, behind one lock (so each call is atomic, as the
/// adapters' conditional writes and transactions are).
#[derive(Debug, Clone, Default)]
pub struct InMemoryStore {
    state: Arc<Mutex<State>>,
    workspace: Arc<Mutex<workspace::Workspace>>,
}

impl InMemoryStore {
    /// Connects a channel.
    pub fn add_channel(&self, channel: RoutedChannel) {
        lock(&self.state)
            .channels
            .insert(channel.channel.id.clone(), channel);
    }

    /// Stores (or replaces) a conversation.
    pub fn put_conversation(&self, tenant: &TenantId, conversation: ConversationState) {
        lock(&self.state)
            .conversations
            .insert((tenant.to_string(), conversation.id.clone()), conversation);
    }

    /// Stores a media record.
    pub fn put_media(&self, record: MediaRecord) {
        lock(&self.state)
            .media
            .insert((record.tenant_id.to_string(), record.id.clone()), record);
    }

    /// Stores a template.
    pub fn put_template_now(&self, tenant: &TenantId, template: Template) {
        lock(&self.state)
            .templates
            .insert((tenant.to_string(), template.id.clone()), template);
    }

    /// A conversation's messages, oldest first (system messages included).
    pub fn messages_of(&self, tenant: &TenantId, conversation_id: &str) -> Vec<Message> {
        lock(&self.state)
            .messages
            .iter()
            .filter(|((t, c, _, _), _)| t == tenant.as_str() && c == conversation_id)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Lists each message of `conversation_id`'s idempotency records twice, as a record a
    /// release that split bodies into more parts would have written.
    pub fn double_idempotency_refs(&self, conversation_id: &str) {
        for ((_, c, _), (_, refs)) in lock(&self.state).idempotency.iter_mut() {
            if c == conversation_id {
                *refs = refs.iter().flat_map(|r| [r.clone(), r.clone()]).collect();
            }
        }
    }

    /// Makes the next settle fail, as a store error would, writing nothing.
    pub fn fail_next_settle(&self) {
        lock(&self.state).settle_failures += 1;
    }

    /// A conversation as stored.
    pub fn conversation(&self, tenant: &TenantId, id: &str) -> Option<ConversationState> {
        lock(&self.state)
            .conversations
            .get(&(tenant.to_string(), id.to_owned()))
            .cloned()
    }
}

fn system_message(
    conversation_id: &str,
    id: &str,
    note: &SystemMessage,
    at: DateTime<Utc>,
) -> Message {
    Message {
        id: id.to_owned(),
        conversation_id: conversation_id.to_owned(),
        direction: Direction::System,
        kind: MessageKind::System,
        text: Some(note.text.clone()),
        media: None,
        status: DeliveryStatus::Delivered,
        provider_message_id: None,
        reply_to: None,
        error: note.error.clone(),
        created_at: at,
        actor: Some(note.actor.clone()),
        event: Some(note.event),
        reason: note.reason.clone(),
        raw: serde_json::Value::Null,
    }
}

impl OutboundStore for InMemoryStore {
    async fn accept(&self, b: &OutboundBatch) -> Result<Acceptance, Error> {
        let tenant = b.channel.tenant_id.to_string();
        let mut state = lock(&self.state);
        if let Some(k) = &b.idempotency {
            let slot = (
                tenant.clone(),
                b.conversation_id.clone(),
                k.key_hash.clone(),
            );
            if let Some((hash, refs)) = state.idempotency.get(&slot) {
                if *hash != k.body_hash {
                    return Err(Error::validation(
                        "idempotency_key_reused",
                        "this Idempotency-Key was used for a different message",
                    ));
                }
                return Ok(Acceptance::Replay(refs.clone()));
            }
        }
        let conversation_slot = (tenant.clone(), b.conversation_id.clone());
        let last = b.messages.last();
        match state.conversations.get_mut(&conversation_slot) {
            Some(c) => {
                if let Some(budget) = b.reply_budget
                    && c.replies_since_inbound > budget
                {
                    return Err(Error::validation(
                        "window_closed",
                        "WeChat allows 5 replies per customer message; they were used by other sends",
                    ));
                }
                if b.reply_budget.is_some() {
                    c.replies_since_inbound += u32::try_from(b.messages.len()).unwrap_or(u32::MAX);
                }
                if let Some(m) = last {
                    c.preview = preview(m.kind, m.text.as_deref());
                }
                if b.start {
                    c.status = ConversationStatus::Open;
                }
            }
            None if b.start => {
                let now = last
                    .and_then(|m| crate::domain::time::parse_rfc3339(&m.created_at))
                    .unwrap_or_else(Utc::now);
                state.conversations.insert(
                    conversation_slot,
                    ConversationState {
                        id: b.conversation_id.clone(),
                        channel_id: b.channel.id.to_string(),
                        policy: WindowPolicy {
                            channel_type: b.channel.channel_type,
                            window_hours: b.channel.window_hours,
                            human_agent: b.channel.human_agent,
                        },
                        status: ConversationStatus::Open,
                        snoozed_until: None,
                        views_version: 0,
                        activity: None,
                        customer: CustomerRef {
                            id: b.customer.clone(),
                            name: None,
                            external_id: b.customer.clone(),
                            name_overridden: false,
                        },
                        assignee: None,
                        labels: Vec::new(),
                        unread_count: 0,
                        last_message_at: now,
                        last_inbound_at: None,
                        replies_since_inbound: 0,
                        last_inbound_provider_message_id: None,
                        preview: String::new(),
                        bot: Default::default(),
                        reply_cancels: 0,
                    },
                );
            }
            None => {
                return Err(Error::NotFound {
                    what: "conversation",
                });
            }
        }
        let mut refs = Vec::new();
        for m in &b.messages {
            refs.push(MessageKey {
                created_at: m.created_at.clone(),
                id: m.id.clone(),
            });
            let slot = (
                tenant.clone(),
                b.conversation_id.clone(),
                m.created_at.clone(),
                m.id.clone(),
            );
            state.accepted.insert(slot.clone(), b.accepted_at);
            state.messages.insert(
                slot,
                crate::service::outbound::pending_view(&b.conversation_id, m, &b.actor),
            );
        }
        if let Some(k) = &b.idempotency {
            state.idempotency.insert(
                (tenant, b.conversation_id.clone(), k.key_hash.clone()),
                (k.body_hash.clone(), refs),
            );
        }
        Ok(Acceptance::Accepted)
    }

    async fn settle(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        m: &PendingMessage,
        outcome: &SendOutcome,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut state = lock(&self.state);
        if state.settle_failures > 0 {
            state.settle_failures -= 1;
            return Err(Error::Internal("settle message: the store failed".into()));
        }
        let slot = (
            tenant.to_string(),
            conversation_id.to_owned(),
            m.created_at.clone(),
            m.id.clone(),
        );
        let message = state
            .messages
            .get_mut(&slot)
            .ok_or_else(|| Error::Internal("settling an unknown message".into()))?;
        match outcome {
            SendOutcome::Sent(id) => {
                message.status = DeliveryStatus::Sent;
                message.provider_message_id.clone_from(id);
            }
            SendOutcome::Failed(error) => {
                message.status = DeliveryStatus::Failed;
                message.error = Some(error.clone());
                let note = SystemMessage::delivery_failed(error);
                let id = ulid::Ulid::new().to_string();
                let when = crate::domain::time::rfc3339(&at).max(m.created_at.clone());
                let at = crate::domain::time::parse_rfc3339(&when).unwrap_or(at);
                state.messages.insert(
                    (
                        tenant.to_string(),
                        conversation_id.to_owned(),
                        when,
                        id.clone(),
                    ),
                    system_message(conversation_id, &id, &note, at),
                );
            }
            SendOutcome::Unknown => {
                message.error = Some(crate::domain::message::DeliveryError::explain(
                    "outcome_unknown",
                    None,
                ));
            }
        }
        Ok(())
    }

    async fn take_over(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        m: &PendingMessage,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let mut state = lock(&self.state);
        let slot = (
            tenant.to_string(),
            conversation_id.to_owned(),
            m.created_at.clone(),
            m.id.clone(),
        );
        let open = state.messages.get(&slot).is_some_and(|message| {
            message.status == DeliveryStatus::Pending
                && message.error.is_none()
                && message.provider_message_id.is_none()
                && state
                    .accepted
                    .get(&slot)
                    .map_or(message.created_at < stale_before, |at| *at < stale_before)
        });
        let free = state
            .taken_over
            .get(&slot)
            .is_none_or(|at| *at < stale_before);
        if open && free {
            state.taken_over.insert(slot, now);
        }
        Ok(open && free)
    }

    async fn find_replay(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        key_hash: &str,
        body_hash: &str,
    ) -> Result<Option<Vec<MessageKey>>, Error> {
        let state = lock(&self.state);
        let slot = (
            tenant.to_string(),
            conversation_id.to_owned(),
            key_hash.to_owned(),
        );
        match state.idempotency.get(&slot) {
            Some((hash, _)) if hash != body_hash => Err(Error::validation(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different message",
            )),
            Some((_, refs)) => Ok(Some(refs.clone())),
            None => Ok(None),
        }
    }

    async fn conversation_for_send(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        route: Option<&ChannelId>,
    ) -> Result<(Option<ConversationState>, Option<RoutedChannel>), Error> {
        let state = lock(&self.state);
        let conversation = state
            .conversations
            .get(&(tenant.to_string(), conversation_id.to_owned()))
            .cloned();
        let routed = route.and_then(|id| state.channels.get(id).cloned());
        Ok((conversation, routed))
    }

    async fn messages(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        refs: &[MessageKey],
    ) -> Result<Vec<Message>, Error> {
        let state = lock(&self.state);
        Ok(refs
            .iter()
            .filter_map(|r| {
                state
                    .messages
                    .get(&(
                        tenant.to_string(),
                        conversation_id.to_owned(),
                        r.created_at.clone(),
                        r.id.clone(),
                    ))
                    .cloned()
            })
            .collect())
    }
}

impl ConversationReader for InMemoryStore {
    async fn list_conversations(
        &self,
        tenant: &TenantId,
        filter: &ConversationFilter,
        _page: &PageRequest,
        now: DateTime<Utc>,
    ) -> Result<Page<ConversationState>, Error> {
        let state = lock(&self.state);
        let mut items: Vec<_> = state
            .conversations
            .iter()
            .filter(|((t, _), c)| t == tenant.as_str() && filter.matches(c, now))
            .map(|(_, c)| c.clone())
            .collect();
        items.sort_by_key(|c| std::cmp::Reverse(c.last_message_at));
        Ok(Page {
            items,
            next_cursor: None,
        })
    }

    async fn get_conversation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ConversationState>, Error> {
        Ok(self.conversation(tenant, id))
    }

    async fn list_messages(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        _page: &PageRequest,
    ) -> Result<Page<Message>, Error> {
        let mut items = self.messages_of(tenant, conversation_id);
        items.reverse();
        Ok(Page {
            items,
            next_cursor: None,
        })
    }
}

impl ReadMarker for InMemoryStore {
    async fn mark_conversation_read(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ConversationState>, Error> {
        let mut state = lock(&self.state);
        Ok(state
            .conversations
            .get_mut(&(tenant.to_string(), id.to_owned()))
            .map(|c| {
                c.unread_count = 0;
                c.clone()
            }))
    }
}

impl MediaStore for InMemoryStore {
    async fn create_media(&self, record: &MediaRecord) -> Result<(), Error> {
        self.put_media(record.clone());
        Ok(())
    }

    async fn get_media(&self, tenant: &TenantId, id: &str) -> Result<Option<MediaRecord>, Error> {
        Ok(lock(&self.state)
            .media
            .get(&(tenant.to_string(), id.to_owned()))
            .cloned())
    }

    async fn settle_media(&self, settlement: &Settlement) -> Result<bool, Error> {
        let mut state = lock(&self.state);
        let slot = (settlement.tenant_id.to_string(), settlement.id.clone());
        match state.media.get_mut(&slot) {
            Some(r) if r.status == crate::domain::media::MediaStatus::Pending => {
                r.status = settlement.status;
                r.size = settlement.size;
                r.sha256.clone_from(&settlement.sha256);
                r.reason.clone_from(&settlement.reason);
                r.reason_code.clone_from(&settlement.reason_code);
                r.version.clone_from(&settlement.version);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl TemplateStore for InMemoryStore {
    async fn put_template(&self, tenant: &TenantId, template: &Template) -> Result<(), Error> {
        self.put_template_now(tenant, template.clone());
        Ok(())
    }

    async fn get_template(&self, tenant: &TenantId, id: &str) -> Result<Option<Template>, Error> {
        Ok(lock(&self.state)
            .templates
            .get(&(tenant.to_string(), id.to_owned()))
            .cloned())
    }

    async fn list_templates(
        &self,
        tenant: &TenantId,
        _page: &PageRequest,
    ) -> Result<Page<Template>, Error> {
        let items = lock(&self.state)
            .templates
            .iter()
            .filter(|((t, _), _)| t == tenant.as_str())
            .map(|(_, t)| t.clone())
            .collect();
        Ok(Page {
            items,
            next_cursor: None,
        })
    }

    async fn set_template_status(
        &self,
        provider_template_id: &str,
        status: TemplateStatus,
        reason: Option<&str>,
    ) -> Result<bool, Error> {
        let mut state = lock(&self.state);
        let mut found = false;
        for t in state.templates.values_mut() {
            if t.provider_template_id.as_deref() == Some(provider_template_id) {
                t.status = status;
                t.reason = reason.map(str::to_owned);
                found = true;
            }
        }
        Ok(found)
    }

    async fn delete_template(&self, tenant: &TenantId, id: &str) -> Result<(), Error> {
        lock(&self.state)
            .templates
            .remove(&(tenant.to_string(), id.to_owned()));
        Ok(())
    }
}

impl LabelCatalog for InMemoryStore {
    async fn get_label(&self, tenant: &TenantId, name: &LabelName) -> Result<Option<Label>, Error> {
        Ok(lock(&self.state)
            .labels
            .get(&(tenant.to_string(), name.to_string()))
            .cloned())
    }
}

impl LabelStore for InMemoryStore {
    async fn create_label(&self, tenant: &TenantId, label: &Label) -> Result<(), Error> {
        let mut state = lock(&self.state);
        let key = (tenant.to_string(), label.name.to_string());
        if state.labels.contains_key(&key) {
            return Err(Error::conflict(
                "duplicate_label",
                "the tenant has a label so named already",
            ));
        }
        state.labels.insert(key, label.clone());
        Ok(())
    }

    /// By name; the cursor is the last name of the page.
    async fn list_labels(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<Label>, Error> {
        let state = lock(&self.state);
        let after = page.cursor.clone().unwrap_or_default();
        let mut items: Vec<Label> = state
            .labels
            .iter()
            .filter(|((t, name), _)| t == tenant.as_str() && *name > after)
            .map(|(_, l)| l.clone())
            .take(usize::from(page.limit) + 1)
            .collect();
        let more = items.len() > usize::from(page.limit);
        items.truncate(usize::from(page.limit));
        let next_cursor = more
            .then(|| items.last().map(|l| l.name.to_string()))
            .flatten();
        Ok(Page { items, next_cursor })
    }
}

impl CustomerAliases for InMemoryStore {
    async fn customer_aliases(
        &self,
        channel: &Channel,
        ids: &[String],
    ) -> Result<HashMap<String, String>, Error> {
        let state = lock(&self.state);
        Ok(ids
            .iter()
            .filter_map(|id| {
                state
                    .aliases
                    .get(&(channel.id.clone(), id.clone()))
                    .map(|c| (id.clone(), c.clone()))
            })
            .collect())
    }

    async fn alias_customer(
        &self,
        channel: &Channel,
        alias: &str,
        canonical: &str,
    ) -> Result<String, Error> {
        let mut state = lock(&self.state);
        Ok(state
            .aliases
            .entry((channel.id.clone(), alias.to_owned()))
            .or_insert_with(|| canonical.to_owned())
            .clone())
    }
}

impl InMemoryStore {
    /// The id an alias points at on a channel, if linked.
    pub fn alias_of(&self, channel: &ChannelId, alias: &str) -> Option<String> {
        lock(&self.state)
            .aliases
            .get(&(channel.clone(), alias.to_owned()))
            .cloned()
    }
}

impl ChannelDirectory for InMemoryStore {
    async fn by_external_id(&self, external_id: &str) -> Result<Option<RoutedChannel>, Error> {
        Ok(lock(&self.state)
            .channels
            .values()
            .find(|r| r.channel.external_id == external_id)
            .cloned())
    }

    async fn by_id(&self, id: &ChannelId) -> Result<Option<RoutedChannel>, Error> {
        Ok(lock(&self.state).channels.get(id).cloned())
    }
}

/// What a [`RecordingSender`] was asked to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Our channel id.
    pub channel_id: String,
    /// The recipient.
    pub to: String,
    /// `text`, `template:<name>` or `<kind>:<source>` (media).
    pub content: String,
    /// The delivery decided from the window.
    pub delivery: Delivery,
}

/// A read receipt a [`RecordingSender`] was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadCall {
    /// Our channel id.
    pub channel_id: String,
    /// The customer's provider id.
    pub customer: String,
    /// The provider id of the message marked read.
    pub provider_message_id: String,
}

/// Records every send and answers from a script (then `Accepted` with a new id).
#[derive(Debug, Clone, Default)]
pub struct RecordingSender {
    sent: Arc<Mutex<Vec<Sent>>>,
    script: Arc<Mutex<VecDeque<Attempt>>>,
    uploads: Arc<Mutex<Vec<String>>>,
    reads: Arc<Mutex<Vec<ReadCall>>>,
    read_script: Arc<Mutex<VecDeque<ReadReceipt>>>,
    /// Counts down the sends before the one held (0: none is held).
    held: Arc<std::sync::atomic::AtomicUsize>,
}

impl RecordingSender {
    /// Makes the next send wait for ever before it reaches the provider (a caller that
    /// gives up on it stands for an invocation that ended there).
    pub fn hold_next(&self) {
        self.hold_nth(1);
    }

    /// [`RecordingSender::hold_next`] for the `n`th next send (1: the next one).
    pub fn hold_nth(&self, n: usize) {
        self.held.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Answers the next sends with these attempts, in order.
    pub fn answer(&self, attempts: impl IntoIterator<Item = Attempt>) {
        lock(&self.script).extend(attempts);
    }

    /// Every send call so far, retries included.
    pub fn sent(&self) -> Vec<Sent> {
        lock(&self.sent).clone()
    }

    /// File names uploaded (channels that take media by id).
    pub fn uploads(&self) -> Vec<String> {
        lock(&self.uploads).clone()
    }

    /// Answers the next read receipts with these, in order (then `Sent`).
    pub fn answer_reads(&self, receipts: impl IntoIterator<Item = ReadReceipt>) {
        lock(&self.read_script).extend(receipts);
    }

    /// Every read receipt asked for so far (WeChat's, which have no call, are not).
    pub fn reads(&self) -> Vec<ReadCall> {
        lock(&self.reads).clone()
    }
}

impl ChannelSender for RecordingSender {
    async fn send(&self, channel: &RoutedChannel, message: &Outgoing<'_>) -> Attempt {
        let countdown = self.held.fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        );
        if countdown == Ok(1) {
            std::future::pending::<()>().await;
        }
        let content = match &message.content {
            Content::Text(t) | Content::Ask { text: t, .. } => (*t).to_owned(),
            Content::Template { name, .. } => format!("template:{name}"),
            Content::Media { kind, source, .. } => {
                format!("{}:{source}", kind_name(*kind))
            }
        };
        lock(&self.sent).push(Sent {
            channel_id: channel.channel.id.to_string(),
            to: message.to.to_owned(),
            content,
            delivery: message.delivery,
        });
        lock(&self.script).pop_front().unwrap_or_else(|| {
            Attempt::Accepted(crate::domain::outbound::Receipt::id(format!(
                "pm.{}",
                ulid::Ulid::new()
            )))
        })
    }

    async fn mark_read(
        &self,
        channel: &RoutedChannel,
        customer: &str,
        provider_message_id: &str,
    ) -> ReadReceipt {
        if channel.channel.channel_type == crate::domain::channel::ChannelType::Wechat {
            return ReadReceipt::NotSupported;
        }
        lock(&self.reads).push(ReadCall {
            channel_id: channel.channel.id.to_string(),
            customer: customer.to_owned(),
            provider_message_id: provider_message_id.to_owned(),
        });
        lock(&self.read_script)
            .pop_front()
            .unwrap_or(ReadReceipt::Sent)
    }

    async fn upload_media(
        &self,
        _channel: &RoutedChannel,
        file: &MediaUpload<'_>,
    ) -> Result<String, Attempt> {
        lock(&self.uploads).push(file.filename.to_owned());
        Ok(format!("upload-{}", file.filename))
    }

    async fn create_template(
        &self,
        _channel: &RoutedChannel,
        _waba_id: &str,
        _body: &serde_json::Value,
    ) -> Result<CreatedTemplate, Error> {
        Ok(CreatedTemplate {
            id: ulid::Ulid::new().to_string(),
            status: "PENDING".into(),
            category: None,
        })
    }

    async fn delete_template(
        &self,
        _channel: &RoutedChannel,
        _waba_id: &str,
        _name: &str,
        _hsm_id: Option<&str>,
    ) -> Result<(), Error> {
        Ok(())
    }
}

fn kind_name(kind: OutboundKind) -> &'static str {
    kind.message_kind().as_str()
}

/// The media bucket in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryObjects {
    objects: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl MemoryObjects {
    /// Stores an object.
    pub fn put(&self, key: &str, bytes: Vec<u8>) {
        lock(&self.objects).insert(key.to_owned(), bytes);
    }
}

/// A writer into [`MemoryObjects`].
#[derive(Debug)]
pub struct MemoryWriter {
    key: String,
    bytes: Vec<u8>,
    objects: MemoryObjects,
}

impl ObjectWriter for MemoryWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), Error> {
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    async fn finish(self) -> Result<u64, Error> {
        let len = self.bytes.len() as u64;
        self.objects.put(&self.key, self.bytes);
        Ok(len)
    }

    async fn abort(self) {}
}

impl ObjectStore for MemoryObjects {
    type Blob = MemoryBlob;
    type Writer = MemoryWriter;

    async fn presign_upload(
        &self,
        key: &str,
        content_type: &str,
        _max_size: u64,
        ttl: Duration,
    ) -> Result<PresignedUpload, Error> {
        Ok(PresignedUpload {
            url: "https://objects.test/".into(),
            method: "POST",
            fields: vec![
                ("key".into(), key.to_owned()),
                ("Content-Type".into(), content_type.to_owned()),
            ],
            expires_at: Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default(),
        })
    }

    async fn open(
        &self,
        key: &str,
        _first: Option<u64>,
    ) -> Result<Option<OpenedObject<MemoryBlob>>, Error> {
        Ok(lock(&self.objects).get(key).map(|b| OpenedObject {
            blob: MemoryBlob(b.clone()),
            content_type: None,
            inbound: false,
        }))
    }

    async fn copy_with_sha256(
        &self,
        from: &str,
        to: &str,
        _version: Option<&str>,
    ) -> Result<Copied, Error> {
        use sha2::Digest;
        let mut objects = lock(&self.objects);
        let source = objects
            .get(from)
            .cloned()
            .ok_or(Error::NotFound { what: "object" })?;
        let created = !objects.contains_key(to);
        let bytes = objects.entry(to.to_owned()).or_insert(source).clone();
        Ok(Copied {
            sha256: hex::encode(sha2::Sha256::digest(&bytes)),
            created,
        })
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        lock(&self.objects).remove(key);
        Ok(())
    }

    fn writer(&self, key: &str, _claim: &Claim) -> MemoryWriter {
        MemoryWriter {
            key: key.to_owned(),
            bytes: Vec::new(),
            objects: self.clone(),
        }
    }

    async fn presign_download(&self, key: &str, _ttl: Duration) -> Result<String, Error> {
        Ok(format!("https://objects.test/{key}"))
    }
}

/// A channel of `tenant` for tests, with credentials.
pub fn channel(
    tenant: &TenantId,
    channel_type: crate::domain::channel::ChannelType,
    human_agent: bool,
) -> RoutedChannel {
    RoutedChannel {
        channel: Channel {
            id: ChannelId::generate(),
            tenant_id: tenant.clone(),
            channel_type,
            external_id: format!("ext-{}", ulid::Ulid::new()),
            name: "Test".into(),
            waba_id: Some("waba-1".into()),
            human_agent,
            window_hours: 24,
            created_at: Utc::now(),
        },
        credentials: crate::domain::channel::Credentials {
            access_token: Some(crate::domain::channel::Secret::new("token")),
            app_id: Some(crate::domain::channel::Secret::new("wx-app")),
            app_secret: Some(crate::domain::channel::Secret::new("wx-secret")),
            ..Default::default()
        },
    }
}

/// A conversation on `channel` whose customer last wrote at `last_inbound_at`.
pub fn conversation(
    channel: &RoutedChannel,
    customer: &str,
    last_inbound_at: Option<DateTime<Utc>>,
    replies_since_inbound: u32,
) -> ConversationState {
    ConversationState {
        id: crate::domain::conversation::conversation_id(&channel.channel.id, customer),
        channel_id: channel.channel.id.to_string(),
        policy: WindowPolicy {
            channel_type: channel.channel.channel_type,
            window_hours: channel.channel.window_hours,
            human_agent: channel.channel.human_agent,
        },
        status: ConversationStatus::Open,
        snoozed_until: None,
        views_version: 0,
        activity: None,
        customer: CustomerRef {
            id: format!("cu-{customer}"),
            name: None,
            external_id: customer.to_owned(),
            name_overridden: false,
        },
        assignee: None,
        labels: Vec::new(),
        unread_count: 0,
        last_message_at: last_inbound_at.unwrap_or_else(Utc::now),
        last_inbound_at,
        replies_since_inbound,
        last_inbound_provider_message_id: None,
        preview: String::new(),
        bot: Default::default(),
        reply_cancels: 0,
    }
}

/// An environment whose AWS endpoint accepts no connections (the discard port on
/// loopback), with `extra` variables, and static credentials: a handler built on it that
/// answers shows it decided before any AWS call.
pub fn unreachable_aws(
    extra: &[(&str, &str)],
) -> (
    HashMap<String, String>,
    crate::adapters::aws::SharedCredentialsProvider,
) {
    let env = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("TABLE_NAME", "chat"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let credentials = crate::adapters::aws::SharedCredentialsProvider::new(
        crate::adapters::aws::Credentials::new("k", "s", None, None, "test"),
    );
    (env, credentials)
}

/// Log output kept in memory (a `tracing` writer): tests read back the JSON lines the
/// functions' subscriber wrote.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Every line written so far, parsed as JSON (a line that is not JSON is `Null`).
    pub fn lines(&self) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&lock(&self.0))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or(serde_json::Value::Null))
            .collect()
    }
}

// The agent workspace (SPEC §7): settings, agents, FAQ, customer contacts.
mod workspace;
