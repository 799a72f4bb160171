//! The one way to reach a customer: [`Outbound`], built once per process and held by every
//! function that sends (agents' messages, bots, schedules, invitations, payment and call
//! links).
//!
//! A send is checked (kind, media, template, window, quota), accepted as `pending` once per
//! `Idempotency-Key` in one transaction, sent part by part through the channel's provider
//! with bounded retries inside a deadline, and settled: `sent` with the provider id,
//! `failed` with the reason, the fix and a `delivery_failed` system message, or left
//! `pending` when the provider may have it (status webhooks reconcile it). Every message
//! records its [`Actor`].

mod accept;
mod deliver;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::domain::actor::Actor;
use crate::domain::channel::ChannelType;
use crate::domain::conversation::{Conversation, ConversationState, Message, conversation_id};
use crate::domain::ids::{ChannelId, ConversationId, TenantId};
use crate::domain::outbound::{
    Delivery, IdempotencyKey, OutboundKind, Part, RetryPolicy, SendMessage, authorize,
    check_supported,
};
use crate::domain::template::TemplateCall;
use crate::domain::window::WECHAT_REPLIES_PER_MESSAGE;
use crate::ports::{
    Acceptance, ChannelDirectory, ChannelSender, ConversationReader, CustomerAliases,
    IdempotencyRecord, MediaStore, MessageKey, ObjectStore, OutboundBatch, OutboundStore,
    PendingMessage, RoutedChannel, SendOutcome, TemplateStore,
};

pub(crate) use accept::pending_view;
use accept::{Resolved, pending_messages, resolve};
use deliver::Plan;

pub use deliver::Deadline;

/// How sends are paced: retries, the cap on one provider call, and the time a whole send
/// may take (read from the environment by `OutboundSettings::from_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundSettings {
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// The cap on one provider call (the provider client enforces it).
    pub call_timeout: Duration,
    /// The time one send may spend sending: retries and later parts start only while a
    /// whole call still fits, so every message is settled before the function times out.
    pub budget: Duration,
}

/// How long after the budget an accepted message may stay without an outcome before a
/// repeat of its send takes it over: its invocation ended without settling it (killed,
/// crashed). A live send settles every part within its budget, plus the settle itself.
const TAKE_OVER_MARGIN: Duration = Duration::from_secs(60);

impl OutboundSettings {
    /// The time before which a message still without an outcome at `now` must have been
    /// accepted to count as left by its send: `now` less the budget and
    /// [`TAKE_OVER_MARGIN`] (85 s with the default budget).
    fn stale_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let wait = chrono::Duration::from_std(self.budget + TAKE_OVER_MARGIN)
            .unwrap_or(chrono::Duration::MAX);
        now.checked_sub_signed(wait)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            call_timeout: Duration::from_secs(10),
            // The outbound function's 29 s timeout (API Gateway's limit) less time to
            // record the outcome.
            budget: Duration::from_secs(25),
        }
    }
}

/// A send: the message, and what identifies it for idempotency.
#[derive(Debug, Clone)]
pub struct SendRequest {
    /// The message (the body of `POST /conversations/{id}/messages`).
    pub message: SendMessage,
    /// `Idempotency-Key`, if given: a repeat is answered with the first answer.
    pub idempotency_key: Option<IdempotencyKey>,
    /// A hash of the request ([`digest`]): the same key with another request is refused.
    pub body_hash: String,
    /// A bot's send: the bot state version its turn left; refused (`409 bot_stopped`)
    /// once the bot was stopped or moved on meanwhile.
    pub bot_version: Option<u64>,
}

impl SendRequest {
    /// A request whose body hash is the message's own JSON (for senders without an HTTP
    /// body, such as bots and schedules).
    pub fn new(message: SendMessage, idempotency_key: Option<IdempotencyKey>) -> Self {
        let body_hash = digest(&serde_json::to_vec(&message).unwrap_or_default());
        Self {
            message,
            idempotency_key,
            body_hash,
            bot_version: None,
        }
    }

    /// The same request, made by a bot's turn that left the bot state at `version`.
    pub fn for_bot_turn(mut self, version: u64) -> Self {
        self.bot_version = Some(version);
        self
    }
}

/// `POST /conversations`: a business-initiated conversation, started with a template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartConversation {
    /// The WhatsApp channel.
    pub channel_id: String,
    /// The customer's phone number (digits, optional `+`).
    pub to: String,
    /// The template.
    pub template: Option<TemplateCall>,
}

/// SHA-256 hex of a request body or key.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether a message's send has not settled it: `pending` with neither an outcome
/// (`outcome_unknown` is one) nor a provider id. Its send is running, or its invocation
/// ended before settling it.
fn unsettled(m: &Message) -> bool {
    m.status == crate::domain::message::DeliveryStatus::Pending
        && m.error.is_none()
        && m.provider_message_id.is_none()
}

/// A message view as its send was settled.
fn as_settled(mut view: Message, outcome: &SendOutcome) -> Message {
    match outcome {
        SendOutcome::Sent(provider_id) => {
            view.status = crate::domain::message::DeliveryStatus::Sent;
            view.provider_message_id.clone_from(provider_id);
        }
        SendOutcome::Failed(error) => {
            view.status = crate::domain::message::DeliveryStatus::Failed;
            view.error = Some(error.clone());
        }
        SendOutcome::Unknown => {}
    }
    view
}

/// Why a link's message did not reach the customer, if it did not: a send refused
/// (a 4xx, such as a closed window) or a first message the provider failed, as
/// [`Outbound::send_settled`] answered. `None` when it went, or when the outcome is not
/// known (a 5xx: the caller's error stands).
pub fn link_refusal(sent: &Result<Vec<Message>, Error>) -> Option<String> {
    match sent {
        Ok(messages) => messages
            .first()
            .filter(|m| m.status == crate::domain::message::DeliveryStatus::Failed)
            .map(|m| {
                m.error
                    .as_ref()
                    .map(|e| format!("{} ({})", e.reason, e.code))
                    .unwrap_or_default()
            }),
        Err(e) if e.is_client_error() => Some(e.to_string()),
        Err(_) => None,
    }
}

/// The stored form of an `Idempotency-Key`.
fn key_record(key: Option<&IdempotencyKey>, body_hash: &str) -> Option<IdempotencyRecord> {
    key.map(|k| IdempotencyRecord {
        key_hash: digest(k.as_str().as_bytes())[..32].to_owned(),
        body_hash: body_hash.to_owned(),
    })
}

/// A WhatsApp number as the Cloud API takes it: digits only, 6 to 20 of them.
fn whatsapp_number(to: &str) -> Result<String, Error> {
    let digits = to.trim().trim_start_matches('+');
    if (6..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(digits.to_owned())
    } else {
        Err(Error::validation(
            "invalid_recipient",
            "to must be a phone number in international format, digits only (e.g. 15551234567)",
        ))
    }
}

/// The time as the service reads it to judge how long ago a send was accepted: the wall
/// clock ([`Clock::default`]), or a clock a test moves.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    /// A clock reading `now`.
    pub fn new(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new(Utc::now)
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// The send service: its ports and settings, built once per process.
#[derive(Debug)]
pub struct Outbound<S, D, C, O> {
    store: S,
    directory: D,
    channels: C,
    objects: O,
    settings: OutboundSettings,
    clock: Clock,
}

impl<S, D, C, O> Outbound<S, D, C, O>
where
    S: OutboundStore + ConversationReader + MediaStore + TemplateStore + CustomerAliases,
    D: ChannelDirectory,
    C: ChannelSender,
    O: ObjectStore,
{
    /// The service over its ports: the store (conversations, messages, media records,
    /// templates), the channel directory (credentials), the providers and the media bucket.
    pub fn new(
        store: S,
        directory: D,
        channels: C,
        objects: O,
        settings: OutboundSettings,
    ) -> Self {
        Self {
            store,
            directory,
            channels,
            objects,
            settings,
            clock: Clock::default(),
        }
    }

    /// The same service reading the time from `clock` (tests move it).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The time now: the clock's, or the request's `now` when later. A request's `now` is
    /// the time its messages are stamped with, which may be earlier than the clock's (a
    /// resumed bot turn sends with its turn's time), so it never tells alone how long ago
    /// an earlier send was accepted.
    fn time(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.max((self.clock.0)())
    }

    /// The providers (for calls that are not sends, such as template management).
    pub fn channels(&self) -> &C {
        &self.channels
    }

    /// Sends a message into a conversation of `tenant` as `actor`: the accepted messages
    /// (`pending`, in send order: a caption the channel cannot carry is a second message),
    /// or the earlier ones for a repeated `Idempotency-Key`. Each is settled before this
    /// returns.
    ///
    /// # Errors
    /// - 400 `invalid_idempotency_key`; 422 `invalid_message`, `kind_not_supported`,
    ///   `template_not_supported`, `media_kind_mismatch`, `media_not_supported`,
    ///   `media_not_ready`, `media_rejected`, `unknown_media`, `unknown_template`,
    ///   `template_not_approved`, `template_parameters`, `recipient_without_phone` (a
    ///   WhatsApp customer known only by a business-scoped user id);
    /// - 422 `window_closed` (outside the window, a bot in Messenger's human-agent band, or
    ///   WeChat's 5-replies quota spent), `template_required` (WhatsApp outside 24 h),
    ///   `idempotency_key_reused`;
    /// - 404 `conversation`/`channel` not found for this tenant;
    /// - `Internal` when the store fails.
    pub async fn send(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        conversation: &ConversationId,
        request: SendRequest,
        now: DateTime<Utc>,
    ) -> Result<Vec<Message>, Error> {
        self.send_as(actor, tenant, conversation, request, now, false)
            .await
    }

    /// [`Outbound::send`], answering with each message as it was settled (`sent` with the
    /// provider's id, `failed` with the error, or still `pending` when the outcome is
    /// unknown) rather than as accepted: for senders that record the outcome (scheduled
    /// messages).
    ///
    /// # Errors
    /// Those of [`Outbound::send`].
    pub async fn send_settled(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        conversation: &ConversationId,
        request: SendRequest,
        now: DateTime<Utc>,
    ) -> Result<Vec<Message>, Error> {
        self.send_as(actor, tenant, conversation, request, now, true)
            .await
    }

    /// The messages an earlier send with this request's `Idempotency-Key` and body
    /// accepted, as [`Outbound::send_settled`] answers a repeat (taken over and sent if its
    /// invocation died), or `None` when no send with this key was accepted: for a sender
    /// that must resume exactly what an earlier attempt accepted rather than decide again
    /// (a resumed scheduled fire), without sending anything new.
    ///
    /// # Errors
    /// 422 `idempotency_key_reused` (the key was accepted with another body), and those of
    /// a repeat of [`Outbound::send_settled`] (`Internal` while that send has no outcome
    /// yet: deliver again later).
    pub async fn replayed(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        conversation: &ConversationId,
        request: SendRequest,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<Message>>, Error> {
        self.replay_resumed(actor, tenant, conversation, &request, now, true)
            .await
    }

    /// A repeat's answer ([`Outbound::resume`]), or `None` when no earlier request with
    /// this key was accepted.
    ///
    /// # Errors
    /// 422 `idempotency_key_reused`, and those of [`Outbound::resume`].
    async fn replay_resumed(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        conversation: &ConversationId,
        request: &SendRequest,
        now: DateTime<Utc>,
        retried: bool,
    ) -> Result<Option<Vec<Message>>, Error> {
        let key = key_record(request.idempotency_key.as_ref(), &request.body_hash);
        let Some(messages) = self
            .replay(tenant, conversation.as_str(), key.as_ref())
            .await?
        else {
            return Ok(None);
        };
        self.resume(actor, tenant, conversation, request, messages, now, retried)
            .await
            .map(Some)
    }

    /// Checks a message as a send by `actor` at `now` would, without sending or writing
    /// anything: [`Outbound::check`], and the recipient and the window's rules too (so a
    /// sender that must make something first, such as a payment link, knows the message
    /// can go before it makes it).
    ///
    /// # Errors
    /// The validation and window errors of [`Outbound::send`]; 404 `conversation` /
    /// `channel`.
    pub async fn preflight(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        conversation: &ConversationId,
        message: &SendMessage,
        now: DateTime<Utc>,
    ) -> Result<(ConversationState, ChannelType), Error> {
        let (state, channel_type) = self.check(tenant, conversation, message).await?;
        if channel_type == ChannelType::Whatsapp
            && whatsapp_number(&state.customer.external_id).is_err()
        {
            return Err(Error::validation(
                "recipient_without_phone",
                "this WhatsApp customer shares no phone number (a username customer): replies by business-scoped user id are not supported yet",
            ));
        }
        let parts = message.parts(channel_type)?;
        let window =
            state
                .policy
                .window_at(state.last_inbound_at, state.replies_since_inbound, now);
        authorize(
            channel_type,
            &window,
            state.replies_since_inbound,
            &parts,
            actor,
        )?;
        Ok((state, channel_type))
    }

    /// Checks a message as a send would, without sending or writing anything: the
    /// conversation and its channel, the body for the channel, the media and the template.
    /// The window is not checked (it is the send's, at send time). Returns the conversation
    /// as read and its channel's type.
    ///
    /// # Errors
    /// The validation errors of [`Outbound::send`] (not the window's); 404 `conversation` /
    /// `channel`.
    pub async fn check(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        message: &SendMessage,
    ) -> Result<(ConversationState, ChannelType), Error> {
        message.parts(ChannelType::Wechat)?;
        let (state, channel) = self.target(tenant, conversation).await?;
        let channel_type = channel.channel.channel_type;
        let parts = message.parts(channel_type)?;
        for part in &parts {
            check_supported(channel_type, part)?;
        }
        resolve(&self.store, tenant, &channel, message, &parts).await?;
        Ok((state, channel_type))
    }

    /// The conversation (consistent) and its channel with credentials: one request, or
    /// none for the channel when the directory has it cached.
    async fn target(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<(ConversationState, RoutedChannel), Error> {
        let not_found = || Error::NotFound {
            what: "conversation",
        };
        let channel_id = conversation.channel().ok_or_else(not_found)?;
        let known = self.directory.known_by_id(&channel_id);
        let (state, fetched) = self
            .store
            .conversation_for_send(
                tenant,
                conversation.as_str(),
                known.is_none().then_some(&channel_id),
            )
            .await?;
        let state = state.ok_or_else(not_found)?;
        if let Some(routed) = &fetched {
            self.directory.remember(routed);
        }
        let channel = known
            .or(fetched)
            .filter(|r| r.channel.tenant_id == *tenant && r.channel.id.as_str() == state.channel_id)
            .ok_or(Error::NotFound { what: "channel" })?;
        Ok((state, channel))
    }

    async fn send_as(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        conversation: &ConversationId,
        request: SendRequest,
        now: DateTime<Utc>,
        settled: bool,
    ) -> Result<Vec<Message>, Error> {
        // The body is checked before any read, by the most lenient channel's rules (a
        // caption sent as a text may be longer than WhatsApp's, WeChat's option titles
        // longer than buttons'); it is split again for the channel once known.
        request.message.parts(ChannelType::Wechat)?;
        let key = key_record(request.idempotency_key.as_ref(), &request.body_hash);
        // Senders that record the outcome or are retried on failure (a schedule's fire, a
        // bot turn) must not take a send still running, or left by a dead invocation, for
        // a settled one.
        let retried = settled || request.bot_version.is_some();
        // A repeat is answered before any rule is checked again: the window may have closed
        // since, but the message was accepted then. A bot turn's send skips the look-up (a
        // repeat is rare: a turn resumed after a failure), as the acceptance's conditional
        // write answers a repeat anyway, and a refusal looks again below.
        if request.bot_version.is_none()
            && let Some(messages) = self
                .replay_resumed(actor, tenant, conversation, &request, now, retried)
                .await?
        {
            return Ok(messages);
        }
        let (state, channel) = self.target(tenant, conversation).await?;
        let channel_type = channel.channel.channel_type;
        if channel_type == ChannelType::Whatsapp
            && whatsapp_number(&state.customer.external_id).is_err()
        {
            // A customer with a username who shares no number is known by a business-scoped
            // user id, which the send API's `to` does not take.
            return Err(Error::validation(
                "recipient_without_phone",
                "this WhatsApp customer shares no phone number (a username customer): replies by business-scoped user id are not supported yet",
            ));
        }
        let parts = request.message.parts(channel_type)?;
        let window =
            state
                .policy
                .window_at(state.last_inbound_at, state.replies_since_inbound, now);
        let delivery = match authorize(
            channel_type,
            &window,
            state.replies_since_inbound,
            &parts,
            actor,
        ) {
            Ok(delivery) => delivery,
            // A repeat racing its first request: the first may have been accepted (and
            // spent the last WeChat reply) after the look-up above.
            Err(refused) => {
                if let Some(messages) = self
                    .replay_resumed(actor, tenant, conversation, &request, now, retried)
                    .await?
                {
                    return Ok(messages);
                }
                return Err(refused);
            }
        };
        let resolved = resolve(&self.store, tenant, &channel, &request.message, &parts).await?;
        let pending = pending_messages(&parts, &resolved, now);
        let customer = state.customer.external_id.clone();
        let batch = OutboundBatch {
            channel: channel.channel.clone(),
            conversation_id: state.id.clone(),
            customer: customer.clone(),
            actor: actor.clone(),
            messages: pending.clone(),
            idempotency: key,
            reply_budget: (channel_type == ChannelType::Wechat && delivery != Delivery::Template)
                .then(|| {
                    WECHAT_REPLIES_PER_MESSAGE
                        .saturating_sub(u32::try_from(pending.len()).unwrap_or(u32::MAX))
                }),
            start: false,
            seen: Some(state.clone()),
            bot_version: request.bot_version,
            accepted_at: self.time(now),
        };
        if let Acceptance::Replay(refs) = self.store.accept(&batch).await? {
            let messages = self.store.messages(tenant, &state.id, &refs).await?;
            return self
                .resume(
                    actor,
                    tenant,
                    conversation,
                    &request,
                    messages,
                    now,
                    retried,
                )
                .await;
        }
        let plan = Plan {
            channel: &channel,
            conversation_id: &state.id,
            customer: &customer,
            resolved: &resolved,
            delivery,
        };
        let outcomes = self.deliver_all(&plan, &parts, &pending).await?;
        Ok(pending
            .iter()
            .zip(&outcomes)
            .map(|(m, outcome)| {
                let view = pending_view(&state.id, m, actor);
                if settled {
                    as_settled(view, outcome)
                } else {
                    view
                }
            })
            .collect())
    }

    /// Starts (or resumes) a WhatsApp conversation from the business side with a template
    /// (SPEC §4: a business may start a conversation only with one). Returns the
    /// conversation and the accepted template message.
    ///
    /// # Errors
    /// - 422 `template_required` (no template), `template_not_supported` (not WhatsApp),
    ///   `invalid_recipient`, and the template errors of [`Outbound::send`];
    /// - 404 `channel` not found for this tenant; `Internal` when the store fails.
    pub async fn start(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        request: StartConversation,
        idempotency: (Option<IdempotencyKey>, String),
        now: DateTime<Utc>,
    ) -> Result<(Conversation, Vec<Message>), Error> {
        let Some(call) = request.template.clone() else {
            return Err(Error::validation(
                "template_required",
                "a business-initiated conversation starts only with a template",
            ));
        };
        let key = key_record(idempotency.0.as_ref(), &idempotency.1);
        let channel = self.routed_channel(tenant, &request.channel_id).await?;
        if channel.channel.channel_type != ChannelType::Whatsapp {
            return Err(Error::validation(
                "template_not_supported",
                "message templates exist only for WhatsApp: other channels wait for the customer to write",
            ));
        }
        let customer = whatsapp_number(&request.to)?;
        let parts = vec![Part::Template(call)];
        let message = SendMessage {
            kind: OutboundKind::Template,
            text: None,
            media_id: None,
            caption: None,
            template: request.template,
            options: None,
        };
        let id = conversation_id(&channel.channel.id, &customer);
        let replayed = match &key {
            Some(k) => {
                self.store
                    .find_replay(tenant, &id, &k.key_hash, &k.body_hash)
                    .await?
            }
            None => None,
        };
        let resolved = match replayed {
            // A repeat is answered without checking the template again.
            Some(_) => Resolved::default(),
            None => resolve(&self.store, tenant, &channel, &message, &parts).await?,
        };
        let pending = pending_messages(&parts, &resolved, now);
        let batch = OutboundBatch {
            channel: channel.channel.clone(),
            conversation_id: id.clone(),
            customer: customer.clone(),
            actor: actor.clone(),
            messages: pending.clone(),
            idempotency: key,
            reply_budget: None,
            start: true,
            seen: None,
            bot_version: None,
            accepted_at: self.time(now),
        };
        let accepted = match replayed {
            Some(refs) => Acceptance::Replay(refs),
            None => self.store.accept(&batch).await?,
        };
        let messages = match accepted {
            Acceptance::Replay(refs) => self.store.messages(tenant, &id, &refs).await?,
            Acceptance::Accepted => {
                let plan = Plan {
                    channel: &channel,
                    conversation_id: &id,
                    customer: &customer,
                    resolved: &resolved,
                    delivery: Delivery::Template,
                };
                self.deliver_all(&plan, &parts, &pending).await?;
                pending
                    .iter()
                    .map(|m| pending_view(&id, m, actor))
                    .collect()
            }
        };
        let conversation = self
            .store
            .get_conversation(tenant, &id)
            .await?
            .ok_or_else(|| Error::Internal("started conversation is missing".into()))?
            .view(now);
        Ok((conversation, messages))
    }

    /// A repeat's answer: [`Outbound::take_over_unsettled`]. For a sender that is `retried`
    /// on failure (a schedule's fire, a bot turn), a message still without an outcome (its
    /// send is running, or its invocation ended less than the take-over wait ago) is an
    /// error rather than an answer: such a sender records the answer as the outcome and
    /// would never repeat the send, so a send left by a dead invocation would be lost. Its
    /// next delivery (Lambda retries a failed asynchronous invocation after about 1 and 3
    /// minutes) finds it settled or takes it over.
    ///
    /// # Errors
    /// Those of [`Outbound::take_over_unsettled`]; `Internal` (deliver again later) for a
    /// `retried` sender while a message is still without an outcome.
    #[allow(clippy::too_many_arguments)]
    async fn resume(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        conversation: &ConversationId,
        request: &SendRequest,
        messages: Vec<Message>,
        now: DateTime<Utc>,
        retried: bool,
    ) -> Result<Vec<Message>, Error> {
        let messages = self
            .take_over_unsettled(actor, tenant, conversation, request, messages, now)
            .await?;
        if retried && messages.iter().any(unsettled) {
            return Err(Error::Internal(format!(
                "an earlier send with this idempotency key is not settled yet (it is taken over {} s after it was accepted); deliver again later",
                (self.settings.budget + TAKE_OVER_MARGIN).as_secs()
            )));
        }
        Ok(messages)
    }

    /// The messages a repeat's first request accepted, after taking over and
    /// sending those that request never settled because its invocation ended first
    /// (pending, no outcome, accepted before [`OutboundSettings::stale_before`] by the
    /// clock: a repeat's `now` may be its turn's time, as old as the first's). Each is
    /// taken over by one conditional write, so of repeats racing, one sends it, as the
    /// actor that first sent it and by the window as it is now (one it no longer allows
    /// fails with a `delivery_failed` system message, without a provider call). A message
    /// whose outcome is unknown (the provider may have it) is never sent again; a bot
    /// turn's message whose bot was stopped since is failed, not sent.
    ///
    /// # Errors
    /// Those of the conversation and channel look-up; `Internal` when the store fails.
    async fn take_over_unsettled(
        &self,
        actor: &Actor,
        tenant: &TenantId,
        conversation: &ConversationId,
        request: &SendRequest,
        messages: Vec<Message>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Message>, Error> {
        let clock = self.time(now);
        let stale_before = self.settings.stale_before(clock);
        // The first message's `created_at` is the request's `now`, never later than the
        // send's `accepted_at` (which the take-over's condition checks): a cheap first test.
        let recent = messages
            .first()
            .is_none_or(|m| m.created_at >= stale_before);
        if recent || !messages.iter().any(unsettled) {
            return Ok(messages);
        }
        let (state, channel) = self.target(tenant, conversation).await?;
        let channel_type = channel.channel.channel_type;
        let parts = request.message.parts(channel_type)?;
        if parts.len() != messages.len() {
            // Not the parts this body makes for this channel now (the rules that split a
            // message changed since): it cannot be resumed, so it fails visibly rather than
            // staying pending for good.
            tracing::warn!(conversation_id = %state.id, "an interrupted send's parts differ from its body's; failed");
            let mut taken = Vec::new();
            for message in messages.iter().filter(|m| unsettled(m)) {
                let pending = accept::pending_of(message);
                if self
                    .store
                    .take_over(tenant, &state.id, &pending, stale_before, clock)
                    .await?
                {
                    taken.push(pending);
                }
            }
            let refused = Error::validation(
                "send_not_resumable",
                "its parts differ from those its body makes now",
            );
            self.fail_interrupted(tenant, &state.id, &taken, &refused, now)
                .await?;
            return self.reread(tenant, &state.id, &messages).await;
        }
        let mut taken = Vec::new();
        for (part, message) in parts.iter().zip(&messages).filter(|(_, m)| unsettled(m)) {
            let pending = accept::pending_of(message);
            if self
                .store
                .take_over(tenant, &state.id, &pending, stale_before, clock)
                .await?
            {
                taken.push((part.clone(), pending));
            }
        }
        if taken.is_empty() {
            return Ok(messages);
        }
        tracing::warn!(conversation_id = %state.id, messages = taken.len(), "taking over a send its invocation left unsettled");
        let (parts, pending): (Vec<Part>, Vec<PendingMessage>) = taken.into_iter().unzip();
        // The window as it is now, when the provider gets it and judges it (WhatsApp and
        // Meta refuse a free-form send past 24 h whenever it was accepted; a Messenger
        // agent's reply then needs the human-agent tag); the WeChat replies the send
        // reserved are not counted against it a second time.
        let replies = state
            .replies_since_inbound
            .saturating_sub(u32::try_from(messages.len()).unwrap_or(u32::MAX));
        let window = state
            .policy
            .window_at(state.last_inbound_at, replies, clock);
        // The rules of the actor that sent it (a bot's send stays a bot's).
        let sender = messages
            .first()
            .and_then(|m| m.actor.as_ref())
            .unwrap_or(actor);
        // A bot turn's send goes only while the bot state is the one its turn left (an
        // agent's reply, Exit Bot or another turn moved it: the accept would refuse it).
        let authorized = match request.bot_version {
            Some(version) if version != state.bot.version => Err(Error::conflict(
                "bot_stopped",
                "the bot was stopped (or moved on) since its turn accepted this message",
            )),
            _ => authorize(channel_type, &window, replies, &parts, sender),
        };
        let ready = match authorized {
            Ok(delivery) => resolve(&self.store, tenant, &channel, &request.message, &parts)
                .await
                .map(|resolved| (delivery, resolved)),
            Err(refused) => Err(refused),
        };
        match ready {
            Ok((delivery, resolved)) => {
                let plan = Plan {
                    channel: &channel,
                    conversation_id: &state.id,
                    customer: &state.customer.external_id,
                    resolved: &resolved,
                    delivery,
                };
                self.deliver_all(&plan, &parts, &pending).await?;
            }
            Err(refused) if refused.is_client_error() => {
                self.fail_interrupted(tenant, &state.id, &pending, &refused, now)
                    .await?;
            }
            Err(other) => return Err(other),
        }
        self.reread(tenant, &state.id, &messages).await
    }

    /// Settles taken-over messages that cannot go as `failed` with `refused`'s code (and
    /// each its `delivery_failed` system message).
    ///
    /// # Errors
    /// `Internal` when the store fails.
    async fn fail_interrupted(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        pending: &[PendingMessage],
        refused: &Error,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let error = crate::domain::message::DeliveryError {
            code: refused.code().to_owned(),
            reason: format!("The send was interrupted and cannot go now: {refused}"),
            hint: "Send it again once the customer can be reached.".into(),
        };
        for m in pending {
            self.store
                .settle(
                    tenant,
                    conversation_id,
                    m,
                    &SendOutcome::Failed(error.clone()),
                    now,
                )
                .await?;
        }
        Ok(())
    }

    /// `messages` as stored now.
    ///
    /// # Errors
    /// `Internal` when the store fails.
    async fn reread(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        messages: &[Message],
    ) -> Result<Vec<Message>, Error> {
        let refs: Vec<MessageKey> = messages
            .iter()
            .map(|m| MessageKey {
                created_at: crate::domain::time::rfc3339(&m.created_at),
                id: m.id.clone(),
            })
            .collect();
        self.store.messages(tenant, conversation_id, &refs).await
    }

    /// The messages an earlier request with this key created, when there was one.
    async fn replay(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        key: Option<&IdempotencyRecord>,
    ) -> Result<Option<Vec<Message>>, Error> {
        let Some(k) = key else {
            return Ok(None);
        };
        match self
            .store
            .find_replay(tenant, conversation_id, &k.key_hash, &k.body_hash)
            .await?
        {
            Some(refs) => Ok(Some(
                self.store.messages(tenant, conversation_id, &refs).await?,
            )),
            None => Ok(None),
        }
    }

    /// The channel with its credentials; it must be the tenant's.
    async fn routed_channel(
        &self,
        tenant: &TenantId,
        channel_id: &str,
    ) -> Result<RoutedChannel, Error> {
        let id = ChannelId::parse(channel_id)?;
        match self.directory.by_id(&id).await? {
            Some(r) if r.channel.tenant_id == *tenant => Ok(r),
            _ => Err(Error::NotFound { what: "channel" }),
        }
    }
}

#[cfg(test)]
mod tests;
