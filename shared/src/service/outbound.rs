//! Sending to customers: check the window and the kind, accept the messages as `pending`
//! (once per `Idempotency-Key`), send each through the channel's provider with bounded
//! retries, and record `sent` with the provider id or `failed` with the reason and fix.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as Span, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::domain::auth::Principal;
use crate::domain::channel::ChannelType;
use crate::domain::conversation::{
    Conversation, MediaRef, Message, channel_of_conversation, conversation_id,
};
use crate::domain::ids::{ChannelId, TenantId};
use crate::domain::media::{MediaRecord, MediaStatus};
use crate::domain::message::{DeliveryError, DeliveryStatus, Direction};
use crate::domain::outbound::{
    Attempt, Content, Delivery, Part, RetryPolicy, SendMessage, Sender, authorize,
    check_idempotency_key, check_media, messenger_body, wechat_body, wechat_media_type,
    whatsapp_body,
};
use crate::domain::sniff::Blob;
use crate::domain::template::{Template, TemplateCall, template_id};
use crate::domain::time::rfc3339;
use crate::domain::window::WECHAT_REPLIES_PER_MESSAGE;
use crate::ports::{
    Acceptance, ChannelDirectory, ConversationReader, MediaStore, ObjectStore, OutboundBatch,
    OutboundStore, PendingMessage, ProviderApi, RoutedChannel, SendOutcome, TemplateStore,
};

/// How long a presigned media link given to Meta stays valid (it fetches at send time).
const MEDIA_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// What sending needs from the outside world.
pub struct SendPorts<'a, S, D, P, O> {
    /// Conversations, messages, media records and templates.
    pub store: &'a S,
    /// Channels with credentials.
    pub directory: &'a D,
    /// The providers' APIs.
    pub provider: &'a P,
    /// The media bucket.
    pub objects: &'a O,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// The time a whole send may take, and the cap on one provider call.
    pub budget: Duration,
    /// The cap on one provider call (as the provider client enforces it).
    pub call_timeout: Duration,
}

impl<S, D, P, O> SendPorts<'_, S, D, P, O> {
    fn deadline(&self) -> Deadline {
        Deadline {
            at: Instant::now() + self.budget,
            call: self.call_timeout,
        }
    }
}

/// A send request with what identifies it for idempotency.
#[derive(Debug, Clone)]
pub struct SendRequest {
    /// The message.
    pub message: SendMessage,
    /// `Idempotency-Key`, if given.
    pub idempotency_key: Option<String>,
    /// A hash of the request body (a reused key with another body is refused).
    pub body_hash: String,
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

fn jitter() -> f64 {
    f64::from(ulid::Ulid::new().random() as u16) / 65536.0
}

/// The message as accepted, before the provider answered.
fn pending_view(conversation_id: &str, m: &PendingMessage) -> Message {
    Message {
        id: m.id.clone(),
        conversation_id: conversation_id.to_owned(),
        direction: Direction::Outbound,
        kind: m.kind,
        text: m.text.clone(),
        media: m.media.as_ref().map(|(id, mime, size)| MediaRef {
            media_id: Some(id.clone()),
            mime_type: Some(mime.clone()),
            size: Some(*size),
            status: None,
            reason: None,
        }),
        status: DeliveryStatus::Pending,
        provider_message_id: None,
        reply_to: None,
        error: None,
        created_at: crate::domain::time::parse_rfc3339(&m.created_at).unwrap_or_default(),
        raw: m.raw.clone(),
    }
}

/// The channel of a conversation, with its credentials; it must still be the tenant's.
async fn routed_channel(
    directory: &impl ChannelDirectory,
    tenant: &TenantId,
    channel_id: &str,
) -> Result<RoutedChannel, Error> {
    let id = ChannelId::parse(channel_id)?;
    match directory.by_id(&id).await? {
        Some(r) if r.channel.tenant_id == *tenant => Ok(r),
        _ => Err(Error::NotFound { what: "channel" }),
    }
}

/// Resolved media and template of the parts, checked before anything is written.
struct Resolved {
    media: Option<MediaRecord>,
    template: Option<Template>,
}

async fn resolve<S>(
    store: &S,
    tenant: &TenantId,
    channel: &RoutedChannel,
    request: &SendMessage,
    parts: &[Part],
) -> Result<Resolved, Error>
where
    S: MediaStore + TemplateStore,
{
    let mut resolved = Resolved {
        media: None,
        template: None,
    };
    for part in parts {
        match part {
            Part::Media { kind, .. } => {
                let id = request.media_id.as_deref().unwrap_or_default().trim();
                let record = store
                    .get_media(tenant, id)
                    .await?
                    .filter(|r| !r.inbound || r.status == MediaStatus::Valid)
                    .ok_or_else(|| {
                        Error::validation("unknown_media", "no media with this media_id")
                    })?;
                match record.status {
                    MediaStatus::Valid => {}
                    MediaStatus::Pending => {
                        return Err(Error::validation(
                            "media_not_ready",
                            "the media is still being uploaded or checked; send it once GET /media/{id} says valid",
                        ));
                    }
                    MediaStatus::Rejected => {
                        return Err(Error::validation(
                            "media_rejected",
                            format!(
                                "the media was rejected: {}",
                                record.reason.as_deref().unwrap_or("invalid file")
                            ),
                        ));
                    }
                }
                check_media(channel.channel.channel_type, *kind, &record)?;
                resolved.media = Some(record);
            }
            Part::Template(call) => {
                let id = template_id(
                    channel.channel.waba_id.as_deref().unwrap_or_default(),
                    &call.name,
                    &call.language,
                );
                let template = store.get_template(tenant, &id).await?.ok_or_else(|| {
                    Error::validation(
                        "unknown_template",
                        format!(
                            "no template {} in language {} for this channel",
                            call.name, call.language
                        ),
                    )
                })?;
                template.check_sendable(call)?;
                resolved.template = Some(template);
            }
            Part::Text(_) => {}
        }
    }
    Ok(resolved)
}

/// The pending messages of a send: ids, and times 1 ms apart so the parts keep their order.
fn pending_messages(
    parts: &[Part],
    resolved: &Resolved,
    now: DateTime<Utc>,
) -> Vec<PendingMessage> {
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let at = now + Span::milliseconds(i64::try_from(i).unwrap_or(0));
            let (text, raw) = match part {
                Part::Template(call) => (
                    resolved
                        .template
                        .as_ref()
                        .map(|t| t.rendered_body(&call.parameters)),
                    serde_json::json!({"template": call}),
                ),
                other => (other.text().map(str::to_owned), serde_json::Value::Null),
            };
            PendingMessage {
                id: ulid::Ulid::new().to_string(),
                created_at: rfc3339(&at),
                kind: part.message_kind(),
                text,
                media: match part {
                    Part::Media { .. } => resolved
                        .media
                        .as_ref()
                        .map(|m| (m.id.clone(), m.mime_type.clone(), m.size)),
                    _ => None,
                },
                raw,
            }
        })
        .collect()
}

/// How long a send may take in all, and one provider call at most: retries and later parts
/// start only while a whole call still fits, so every message is settled before the
/// function's own timeout.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// When the last provider call must have ended.
    pub at: Instant,
    /// The cap on one provider call.
    pub call: Duration,
}

impl Deadline {
    fn fits(&self, wait: Duration) -> bool {
        Instant::now() + wait + self.call <= self.at
    }
}

/// Runs `call` with bounded, jittered retries of transient failures within the deadline.
async fn with_retries<T, F, Fut>(
    mut call: F,
    retry: RetryPolicy,
    deadline: Deadline,
) -> Result<T, SendOutcome>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt>>,
{
    let mut retries = 0;
    if !deadline.fits(Duration::ZERO) {
        return Err(SendOutcome::Failed(DeliveryError::explain(
            "send_timeout",
            None,
        )));
    }
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(Attempt::Accepted(_)) => {
                return Err(SendOutcome::Failed(DeliveryError::explain(
                    "unexpected_answer",
                    None,
                )));
            }
            Err(Attempt::Failed(error)) => return Err(SendOutcome::Failed(error)),
            Err(Attempt::Unknown) => return Err(SendOutcome::Unknown),
            Err(Attempt::RefreshToken) => {
                return Err(SendOutcome::Failed(DeliveryError::explain("42001", None)));
            }
            Err(Attempt::Retry { code, after }) => {
                match retry
                    .delay(retries, after, jitter())
                    .filter(|w| deadline.fits(*w))
                {
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        retries += 1;
                    }
                    None => return Err(SendOutcome::Failed(exhausted(&code, retries + 1))),
                }
            }
        }
    }
}

/// Sends one provider request with bounded, jittered retries of transient failures.
pub async fn deliver(
    provider: &impl ProviderApi,
    channel: &RoutedChannel,
    body: &serde_json::Value,
    retry: RetryPolicy,
    deadline: Deadline,
) -> SendOutcome {
    let call = || async {
        match provider.send(channel, body).await {
            Attempt::Accepted(id) => Ok(id),
            other => Err(other),
        }
    };
    match with_retries(call, retry, deadline).await {
        Ok(id) => SendOutcome::Sent(id),
        Err(outcome) => outcome,
    }
}

fn exhausted(code: &str, attempts: u32) -> DeliveryError {
    let base = DeliveryError::explain("retries_exhausted", None);
    DeliveryError {
        code: code.to_owned(),
        reason: format!("{} ({attempts} attempts)", base.reason),
        hint: base.hint,
    }
}

/// Where and how the accepted messages of one send go.
struct Plan<'a> {
    channel: &'a RoutedChannel,
    conversation_id: &'a str,
    customer: &'a str,
    resolved: &'a Resolved,
    delivery: Delivery,
}

/// The wire body of one part; media is linked (Meta) or uploaded first (WeChat).
async fn wire_body<P, O>(
    provider: &P,
    objects: &O,
    plan: &Plan<'_>,
    part: &Part,
    reference: &str,
    (retry, deadline): (RetryPolicy, Deadline),
) -> Result<serde_json::Value, SendOutcome>
where
    P: ProviderApi,
    O: ObjectStore,
{
    let (channel, resolved, customer) = (plan.channel, plan.resolved, plan.customer);
    let channel_type = channel.channel.channel_type;
    let source;
    let components;
    let content = match part {
        Part::Text(t) => Content::Text(t),
        Part::Template(call) => {
            let template = resolved
                .template
                .as_ref()
                .ok_or_else(|| SendOutcome::Failed(DeliveryError::explain("132001", None)))?;
            components = template.send_components(&call.parameters);
            Content::Template {
                name: &call.name,
                language: &call.language,
                components: components.clone(),
            }
        }
        Part::Media { kind, caption } => {
            let media = resolved
                .media
                .as_ref()
                .ok_or_else(|| SendOutcome::Failed(DeliveryError::explain("131053", None)))?;
            let key = media.clean_key();
            source = if channel_type == ChannelType::Wechat {
                let bytes = read_all(objects, &key).await?;
                // An upload reaches no customer: any failure short of a refusal is retried.
                let upload = || async {
                    provider
                        .upload_wechat_media(
                            channel,
                            wechat_media_type(*kind),
                            &media.filename,
                            &media.mime_type,
                            bytes.clone(),
                        )
                        .await
                        .map_err(|a| match a {
                            Attempt::Unknown => Attempt::Retry {
                                code: "upload".into(),
                                after: None,
                            },
                            other => other,
                        })
                };
                with_retries(upload, retry, deadline).await?
            } else {
                objects
                    .presign_download(&key, MEDIA_LINK_TTL)
                    .await
                    .map_err(|_| SendOutcome::Failed(DeliveryError::explain("131053", None)))?
            };
            Content::Media {
                kind: *kind,
                source: &source,
                caption: caption.as_deref(),
                filename: &media.filename,
            }
        }
    };
    Ok(match channel_type {
        ChannelType::Whatsapp => whatsapp_body(customer, &content, reference),
        ChannelType::Messenger | ChannelType::Instagram => {
            messenger_body(customer, &content, plan.delivery, reference)
        }
        ChannelType::Wechat => wechat_body(customer, &content),
    })
}

async fn read_all(objects: &impl ObjectStore, key: &str) -> Result<Vec<u8>, SendOutcome> {
    let unreachable = || SendOutcome::Failed(DeliveryError::explain("131053", None));
    let mut blob = objects
        .open(key, None)
        .await
        .map_err(|_| unreachable())?
        .ok_or_else(unreachable)?
        .blob;
    let len = blob.len();
    blob.read_at(0, len).await.map_err(|_| unreachable())
}

/// Sends the accepted messages one after the other and settles each.
async fn send_accepted<S, D, P, O>(
    ports: &SendPorts<'_, S, D, P, O>,
    plan: &Plan<'_>,
    parts: &[Part],
    pending: &[PendingMessage],
) -> Result<(), Error>
where
    S: OutboundStore,
    P: ProviderApi,
    O: ObjectStore,
{
    let tenant = &plan.channel.channel.tenant_id;
    let deadline = ports.deadline();
    let mut first_error = None;
    for (part, message) in parts.iter().zip(pending) {
        let reference = format!("{}#{}", message.created_at, message.id);
        let limits = (ports.retry, deadline);
        let outcome = match wire_body(
            ports.provider,
            ports.objects,
            plan,
            part,
            &reference,
            limits,
        )
        .await
        {
            Ok(body) => deliver(ports.provider, plan.channel, &body, ports.retry, deadline).await,
            Err(outcome) => outcome,
        };
        tracing::info!(
            message_id = %message.id,
            outcome = match &outcome {
                SendOutcome::Sent(_) => "sent",
                SendOutcome::Failed(_) => "failed",
                SendOutcome::Unknown => "outcome_unknown",
            },
            "outbound message settled"
        );
        // A part that could not be recorded does not stop the next one.
        if let Err(e) = ports
            .store
            .settle(tenant, plan.conversation_id, message, &outcome, Utc::now())
            .await
        {
            tracing::error!(message_id = %message.id, error = %e, "settling a sent message failed");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// `POST /conversations/{id}/messages`: the accepted messages (`pending`) in send order,
/// or the earlier ones for a repeated `Idempotency-Key`.
pub async fn send_message<S, D, P, O>(
    ports: &SendPorts<'_, S, D, P, O>,
    principal: &Principal,
    conversation_id: &str,
    request: SendRequest,
    sender: Sender,
    now: DateTime<Utc>,
) -> Result<Vec<Message>, Error>
where
    S: OutboundStore + ConversationReader + MediaStore + TemplateStore,
    D: ChannelDirectory,
    P: ProviderApi,
    O: ObjectStore,
{
    // The body is checked before any read; it is split again for the channel once known.
    request.message.parts(ChannelType::Whatsapp)?;
    let tenant = &principal.tenant_id;
    let key_hash = idempotency_hash(request.idempotency_key.as_deref())?;
    // A repeat is answered before any rule is checked again: the window may have closed
    // since, but the message was accepted then.
    if let Some(hash) = &key_hash
        && let Some(refs) = ports
            .store
            .find_replay(tenant, conversation_id, hash, &request.body_hash)
            .await?
    {
        return ports.store.messages(tenant, conversation_id, &refs).await;
    }
    let not_found = || Error::NotFound {
        what: "conversation",
    };
    // The id names the channel: the conversation and (unless cached) the channel's routing
    // record come in one request.
    let channel_id = channel_of_conversation(conversation_id).ok_or_else(not_found)?;
    let known = ports.directory.known_by_id(&channel_id);
    let (conversation, fetched) = ports
        .store
        .conversation_for_send(
            tenant,
            conversation_id,
            known.is_none().then_some(&channel_id),
        )
        .await?;
    let conversation = conversation.ok_or_else(not_found)?;
    if let Some(routed) = &fetched {
        ports.directory.remember(routed);
    }
    let channel = known
        .or(fetched)
        .filter(|r| {
            r.channel.tenant_id == *tenant && r.channel.id.as_str() == conversation.channel_id
        })
        .ok_or(Error::NotFound { what: "channel" })?;
    let parts = request.message.parts(channel.channel.channel_type)?;
    let window = conversation.policy.window_at(
        conversation.last_inbound_at,
        conversation.replies_since_inbound,
        now,
    );
    let delivery = authorize(
        channel.channel.channel_type,
        &window,
        conversation.replies_since_inbound,
        &parts,
        sender,
    )?;
    let resolved = resolve(ports.store, tenant, &channel, &request.message, &parts).await?;
    let pending = pending_messages(&parts, &resolved, now);
    let customer = conversation.customer.external_id.clone();
    let batch = OutboundBatch {
        channel: channel.channel.clone(),
        conversation_id: conversation.id.clone(),
        customer: customer.clone(),
        agent_id: principal.agent_id.to_string(),
        messages: pending.clone(),
        idempotency: key_hash.map(|k| (k, request.body_hash.clone())),
        reply_budget: (channel.channel.channel_type == ChannelType::Wechat
            && delivery != Delivery::Template)
            .then(|| {
                WECHAT_REPLIES_PER_MESSAGE
                    .saturating_sub(u32::try_from(pending.len()).unwrap_or(u32::MAX))
            }),
        start: false,
    };
    if let Acceptance::Replay(refs) = ports.store.accept(&batch).await? {
        return ports.store.messages(tenant, &conversation.id, &refs).await;
    }
    let plan = Plan {
        channel: &channel,
        conversation_id: &conversation.id,
        customer: &customer,
        resolved: &resolved,
        delivery,
    };
    send_accepted(ports, &plan, &parts, &pending).await?;
    Ok(pending
        .iter()
        .map(|m| pending_view(&conversation.id, m))
        .collect())
}

/// The stored form of an `Idempotency-Key` (checked), if one was given.
fn idempotency_hash(key: Option<&str>) -> Result<Option<String>, Error> {
    key.map(|k| {
        check_idempotency_key(k)?;
        Ok(digest(k.as_bytes())[..32].to_owned())
    })
    .transpose()
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

/// `POST /conversations`: starts (or resumes) a conversation with a template. Returns the
/// conversation and the accepted template message.
pub async fn start_conversation<S, D, P, O>(
    ports: &SendPorts<'_, S, D, P, O>,
    principal: &Principal,
    request: StartConversation,
    idempotency: (Option<String>, String),
    now: DateTime<Utc>,
) -> Result<(Conversation, Vec<Message>), Error>
where
    S: OutboundStore + ConversationReader + MediaStore + TemplateStore,
    D: ChannelDirectory,
    P: ProviderApi,
    O: ObjectStore,
{
    let Some(call) = request.template.clone() else {
        return Err(Error::validation(
            "template_required",
            "a business-initiated conversation starts only with a template",
        ));
    };
    let key_hash = idempotency_hash(idempotency.0.as_deref())?;
    let tenant = &principal.tenant_id;
    let channel = routed_channel(ports.directory, tenant, &request.channel_id).await?;
    if channel.channel.channel_type != ChannelType::Whatsapp {
        return Err(Error::validation(
            "template_not_supported",
            "message templates exist only for WhatsApp: other channels wait for the customer to write",
        ));
    }
    let customer = whatsapp_number(&request.to)?;
    let parts = vec![Part::Template(call)];
    let message = SendMessage {
        kind: crate::domain::outbound::OutboundKind::Template,
        text: None,
        media_id: None,
        caption: None,
        template: request.template,
    };
    let id = conversation_id(&channel.channel.id, &customer);
    let replayed = match &key_hash {
        Some(hash) => {
            ports
                .store
                .find_replay(tenant, &id, hash, &idempotency.1)
                .await?
        }
        None => None,
    };
    let resolved = match replayed {
        // A repeat is answered without checking the template again.
        Some(_) => Resolved {
            media: None,
            template: None,
        },
        None => resolve(ports.store, tenant, &channel, &message, &parts).await?,
    };
    let pending = pending_messages(&parts, &resolved, now);
    let batch = OutboundBatch {
        channel: channel.channel.clone(),
        conversation_id: id.clone(),
        customer: customer.clone(),
        agent_id: principal.agent_id.to_string(),
        messages: pending.clone(),
        idempotency: key_hash.map(|k| (k, idempotency.1.clone())),
        reply_budget: None,
        start: true,
    };
    let accepted = match replayed {
        Some(refs) => Acceptance::Replay(refs),
        None => ports.store.accept(&batch).await?,
    };
    let messages = match accepted {
        Acceptance::Replay(refs) => ports.store.messages(tenant, &id, &refs).await?,
        Acceptance::Accepted => {
            let plan = Plan {
                channel: &channel,
                conversation_id: &id,
                customer: &customer,
                resolved: &resolved,
                delivery: Delivery::Template,
            };
            send_accepted(ports, &plan, &parts, &pending).await?;
            pending.iter().map(|m| pending_view(&id, m)).collect()
        }
    };
    let conversation = ports
        .store
        .get_conversation(tenant, &id)
        .await?
        .ok_or_else(|| Error::Internal("started conversation is missing".into()))?
        .view(now);
    Ok((conversation, messages))
}
