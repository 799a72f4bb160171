//! Scheduled messages (SPEC §9): create (checked like a send, with the window expected at
//! `send_at`), list, cancel; the fire (claimed once, the window checked again, sent through
//! the one send path as the schedule on behalf of its creator, settled with a system
//! message); the customer's reply cancelling the ones that ask for it; and the end of a
//! conversation's snooze, which rides on the same one-time schedules.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::Error;
use crate::domain::actor::Actor;
use crate::domain::auth::Principal;
use crate::domain::changes::Change;
use crate::domain::conversation::{ConversationStatus, customer_of_conversation};
use crate::domain::events::MessageReceived;
use crate::domain::ids::{ConversationId, TenantId};
use crate::domain::message::{DeliveryStatus, Direction};
use crate::domain::outbound::{IdempotencyKey, SendMessage};
use crate::domain::page::{Page, PageRequest};
use crate::domain::schedule::{
    CancelReason, FireDecision, ScheduleError, ScheduleInput, ScheduleRequest, ScheduleStatus,
    ScheduledMessage, WindowAtSend, check_fallback, decide_fire, fire_candidates, parse_send_at,
    snooze_schedule_name,
};
use crate::domain::system::SystemMessage;
use crate::domain::time::{parse_rfc3339, rfc3339};
use crate::ports::{
    CancelOutcome, ChannelDirectory, ChannelSender, ConversationChanges, ConversationReader,
    CustomerAliases, MediaStore, ObjectStore, OutboundStore, ScheduledStore, Schedules,
    TemplateStore,
};
use crate::service::outbound::{Outbound, SendRequest};

/// A scheduled message as the API shows it: the stored fields, and at creation the window
/// expected at `send_at`.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduledView {
    /// The message.
    #[serde(flatten)]
    pub scheduled: ScheduledMessage,
    /// The window at `send_at` if the customer writes nothing before (creation only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_at_send: Option<WindowAtSend>,
}

fn conversation_id(id: &str) -> Result<ConversationId, Error> {
    ConversationId::parse(id).map_err(|_| Error::NotFound {
        what: "conversation",
    })
}

/// `POST /conversations/{id}/scheduled-messages`: checks the message as a send would
/// (kind, media valid, template approved with the right parameter count; the fallback as
/// a template send), creates its one-time schedule, stores it `scheduled`.
///
/// # Errors
/// 422 `invalid_body`, `invalid_send_at`, `send_at_in_past`, `send_at_too_far`,
/// `invalid_fallback`, `too_many_scheduled`, and the send's validation errors; 404 for an
/// unknown conversation; 502 when Scheduler fails (nothing is stored).
#[allow(clippy::too_many_arguments)]
pub async fn create<S, Z, OS, D, C, O>(
    store: &S,
    schedules: &Z,
    outbound: &Outbound<OS, D, C, O>,
    principal: &Principal,
    conversation: &str,
    body: Value,
    now: DateTime<Utc>,
) -> Result<ScheduledView, Error>
where
    S: ScheduledStore,
    Z: Schedules,
    OS: OutboundStore + ConversationReader + MediaStore + TemplateStore + CustomerAliases,
    D: ChannelDirectory,
    C: ChannelSender,
    O: ObjectStore,
{
    let request: ScheduleRequest = crate::http::from_json(body)?;
    let send_at = parse_send_at(&request.send_at, now)?;
    let tenant = &principal.tenant_id;
    let id = conversation_id(conversation)?;
    let (state, channel_type) = outbound.check(tenant, &id, &request.message).await?;
    check_fallback(&request, channel_type)?;
    if let Some(call) = &request.fallback_template {
        outbound
            .check(tenant, &id, &SendMessage::of_template(call.clone()))
            .await?;
    }
    let window_at_send: WindowAtSend = state
        .policy
        .window_at(state.last_inbound_at, state.replies_since_inbound, send_at)
        .into();
    let scheduled = ScheduledMessage {
        id: ulid::Ulid::new().to_string(),
        conversation_id: id.as_str().to_owned(),
        send_at: rfc3339(&send_at),
        status: ScheduleStatus::Scheduled,
        message: request.message,
        fallback_template: request.fallback_template,
        cancel_if_customer_replies: request.cancel_if_customer_replies,
        created_by: principal.agent_id.as_str().to_owned(),
        created_at: rfc3339(&now),
        message_id: None,
        used_fallback: false,
        error: None,
        cancel_reason: None,
        settled_at: None,
    };
    // The schedule first: if storing then fails, it fires, finds nothing, and is gone.
    let input = ScheduleInput::ScheduledMessage {
        tenant_id: tenant.to_string(),
        scheduled_id: scheduled.id.clone(),
    };
    schedules
        .create_schedule(&scheduled.id, send_at, &input)
        .await?;
    if let Err(e) = store.put_scheduled(tenant, &scheduled).await {
        if let Err(cleanup) = schedules.delete_schedule(&scheduled.id).await {
            warn!(scheduled_id = %scheduled.id, error = %cleanup, "orphan schedule left (it fires and finds nothing)");
        }
        return Err(e);
    }
    info!(
        tenant = %tenant,
        conversation_id = %scheduled.conversation_id,
        scheduled_id = %scheduled.id,
        send_at = %scheduled.send_at,
        window_open_at_send = window_at_send.open,
        "message scheduled"
    );
    Ok(ScheduledView {
        scheduled,
        window_at_send: Some(window_at_send),
    })
}

/// `GET /scheduled-messages?conversation_id=&status=`: by send time.
///
/// # Errors
/// 400 `invalid_filter` for an unknown status, `invalid_cursor`.
pub async fn list(
    store: &impl ScheduledStore,
    principal: &Principal,
    conversation: Option<&str>,
    status: Option<&str>,
    page: &PageRequest,
) -> Result<Page<ScheduledMessage>, Error> {
    let status = match status.filter(|s| !s.is_empty()) {
        Some(s) => Some(ScheduleStatus::parse(s).ok_or_else(|| {
            Error::bad_request(
                "invalid_filter",
                "status must be one of scheduled, sending, sent, failed, cancelled",
            )
        })?),
        None => None,
    };
    let conversation = match conversation.filter(|c| !c.is_empty()) {
        Some(c) => match ConversationId::parse(c) {
            Ok(id) => Some(id),
            // No conversation has such an id: nothing is scheduled on it.
            Err(_) => {
                return Ok(Page {
                    items: Vec::new(),
                    next_cursor: None,
                });
            }
        },
        None => None,
    };
    store
        .list_scheduled(
            &principal.tenant_id,
            conversation.as_ref().map(ConversationId::as_str),
            status,
            page,
        )
        .await
}

/// `DELETE /scheduled-messages/{id}`: cancels a message that has not fired (with a
/// `scheduled_cancelled` system message) and deletes its schedule. Cancelling a cancelled
/// one again answers it as it is.
///
/// # Errors
/// 404 for an unknown id; 409 `already_sent` once it fired (sending or sent),
/// `already_failed` when it failed.
pub async fn cancel(
    store: &impl ScheduledStore,
    schedules: &impl Schedules,
    principal: &Principal,
    id: &str,
    now: DateTime<Utc>,
) -> Result<ScheduledMessage, Error> {
    let not_found = || Error::NotFound {
        what: "scheduled message",
    };
    let valid = id.len() == 26 && id.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid {
        return Err(not_found());
    }
    let actor = Actor::agent(principal.agent_id.as_str());
    match store
        .cancel_scheduled(&principal.tenant_id, id, CancelReason::Agent, &actor, now)
        .await?
    {
        CancelOutcome::Cancelled(m) => {
            if let Err(e) = schedules.delete_schedule(id).await {
                // Harmless: the fire finds it cancelled.
                warn!(scheduled_id = id, error = %e, "schedule of a cancelled message left");
            }
            info!(tenant = %principal.tenant_id, scheduled_id = id, "scheduled message cancelled");
            Ok(m)
        }
        CancelOutcome::NotScheduled(m) => match m.status {
            ScheduleStatus::Cancelled | ScheduleStatus::Scheduled => Ok(m),
            ScheduleStatus::Sending | ScheduleStatus::Sent => Err(Error::conflict(
                "already_sent",
                "the message was already sent (or is being sent)",
            )),
            ScheduleStatus::Failed => Err(Error::conflict(
                "already_failed",
                "the message already fired and failed",
            )),
        },
        CancelOutcome::Missing => Err(not_found()),
    }
}

/// What a fire came to (logged, and returned to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FireOutcome {
    /// Sent (the message or its fallback).
    Sent,
    /// Failed, with a system message saying why.
    Failed,
    /// Cancelled at fire time: the customer wrote first.
    Cancelled,
    /// Nothing to do: fired before, cancelled, or not found.
    Nothing,
}

/// The customer id of a conversation (both ids share their suffix).
fn customer_of(conversation: &str) -> String {
    customer_of_conversation(conversation).unwrap_or_default()
}

/// Fires a due scheduled message (SPEC §9), exactly once however often it is delivered:
/// the claim (`scheduled` → `sending`) admits one fire; a delivery that finds it `sending`
/// (a fire that failed midway, or one in flight) resumes the send an earlier delivery
/// accepted under the fire's idempotency key (the message or its fallback), without
/// deciding again, or decides afresh when none was accepted; the settle is conditional on
/// `sending`, so one system message is written.
///
/// # Errors
/// `Internal` when the store fails or an earlier delivery's send has no outcome yet (the
/// delivery is retried and the fire resumes).
pub async fn fire<S, OS, D, C, O>(
    store: &S,
    outbound: &Outbound<OS, D, C, O>,
    tenant: &TenantId,
    scheduled_id: &str,
    now: DateTime<Utc>,
) -> Result<FireOutcome, Error>
where
    S: ScheduledStore + ConversationReader,
    OS: OutboundStore + ConversationReader + MediaStore + TemplateStore + CustomerAliases,
    D: ChannelDirectory,
    C: ChannelSender,
    O: ObjectStore,
{
    let Some((m, claimed)) = store.claim_scheduled(tenant, scheduled_id).await? else {
        warn!(tenant = %tenant, scheduled_id, "fire of an unknown scheduled message");
        return Ok(FireOutcome::Nothing);
    };
    if !claimed && m.status != ScheduleStatus::Sending {
        return Ok(FireOutcome::Nothing);
    }
    let conversation = conversation_id(&m.conversation_id)?;
    let settle = |after: ScheduledMessage, note: SystemMessage| async move {
        store.settle_scheduled(tenant, &after, &note, now).await
    };
    let Some(state) = store
        .get_conversation(tenant, conversation.as_str())
        .await?
    else {
        let after = failed(
            &m,
            "conversation_gone",
            "the conversation no longer exists",
            now,
        );
        let note = SystemMessage::scheduled_failed(&after);
        settle(after, note).await?;
        return Ok(FireOutcome::Failed);
    };
    // A delivery that finds the fire `sending` resumes what an earlier one accepted,
    // whatever the customer or the window did since (deciding again could cancel a
    // message that went, or pick the fallback under the key the message holds).
    let resumed = if claimed {
        None
    } else {
        resumed_send(outbound, &m, tenant, &conversation, now).await?
    };
    // What was accepted before, or what to do now.
    let decision = match resumed {
        Some(accepted) => Ok(accepted),
        None => Err(decide_fire(
            &m,
            &state.policy,
            state.last_inbound_at,
            state.replies_since_inbound,
            now,
        )),
    };
    let (after, outcome) = match decision {
        Ok((messages, fallback)) => sent_or_failed(&m, &messages, fallback, now),
        Err(FireDecision::CancelCustomerReplied) => {
            let after = ScheduledMessage {
                status: ScheduleStatus::Cancelled,
                cancel_reason: Some(CancelReason::CustomerReplied),
                settled_at: Some(rfc3339(&now)),
                ..m.clone()
            };
            let actor = Actor::Customer {
                id: customer_of(&m.conversation_id),
            };
            let note = SystemMessage::scheduled_cancelled(CancelReason::CustomerReplied, actor);
            settle(after, note).await?;
            return Ok(FireOutcome::Cancelled);
        }
        Err(FireDecision::Fail(error)) => (
            ScheduledMessage {
                status: ScheduleStatus::Failed,
                error: Some(error),
                settled_at: Some(rfc3339(&now)),
                ..m.clone()
            },
            FireOutcome::Failed,
        ),
        Err(FireDecision::Send { message, fallback }) => {
            let request = SendRequest::new(message, fire_key(&m));
            match outbound
                .send_settled(&m.actor(), tenant, &conversation, request, now)
                .await
            {
                Ok(messages) => sent_or_failed(&m, &messages, fallback, now),
                Err(e) if e.is_client_error() => (
                    failed(&m, e.code(), &e.to_string(), now),
                    FireOutcome::Failed,
                ),
                Err(e) => return Err(e),
            }
        }
    };
    let note = match outcome {
        FireOutcome::Sent => SystemMessage::scheduled_sent(&after),
        _ => SystemMessage::scheduled_failed(&after),
    };
    let settled = settle(after, note).await?;
    info!(tenant = %tenant, scheduled_id, outcome = ?outcome, settled, "scheduled message fired");
    Ok(outcome)
}

/// The `Idempotency-Key` of a fire's send: every delivery of the fire makes the same one.
fn fire_key(m: &ScheduledMessage) -> Option<IdempotencyKey> {
    IdempotencyKey::parse(&format!("scheduled-{}", m.id)).ok()
}

/// What an earlier delivery of this fire accepted (the message or its fallback), as
/// settled now, with whether it was the fallback; `None` when none was accepted (that
/// delivery ended before its send).
///
/// # Errors
/// `Internal` when the store fails or that send has no outcome yet (delivered again).
async fn resumed_send<OS, D, C, O>(
    outbound: &Outbound<OS, D, C, O>,
    m: &ScheduledMessage,
    tenant: &TenantId,
    conversation: &ConversationId,
    now: DateTime<Utc>,
) -> Result<Option<(Vec<crate::domain::conversation::Message>, bool)>, Error>
where
    OS: OutboundStore + ConversationReader + MediaStore + TemplateStore + CustomerAliases,
    D: ChannelDirectory,
    C: ChannelSender,
    O: ObjectStore,
{
    for (message, fallback) in fire_candidates(m) {
        let request = SendRequest::new(message, fire_key(m));
        match outbound
            .replayed(&m.actor(), tenant, conversation, request, now)
            .await
        {
            Ok(Some(messages)) => return Ok(Some((messages, fallback))),
            Ok(None) => return Ok(None),
            // The key holds the other candidate.
            Err(e) if e.code() == "idempotency_key_reused" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

fn failed(m: &ScheduledMessage, code: &str, reason: &str, now: DateTime<Utc>) -> ScheduledMessage {
    ScheduledMessage {
        status: ScheduleStatus::Failed,
        error: Some(ScheduleError {
            code: code.to_owned(),
            reason: reason.to_owned(),
        }),
        settled_at: Some(rfc3339(&now)),
        ..m.clone()
    }
}

/// The settled state after a send: `sent` with the (first) message's id, or `failed` with
/// the provider's error when a part failed for good.
fn sent_or_failed(
    m: &ScheduledMessage,
    messages: &[crate::domain::conversation::Message],
    fallback: bool,
    now: DateTime<Utc>,
) -> (ScheduledMessage, FireOutcome) {
    if let Some(error) = messages
        .iter()
        .filter(|x| x.status == DeliveryStatus::Failed)
        .find_map(|x| x.error.as_ref())
    {
        let mut after = failed(m, &error.code, &error.reason, now);
        after.message_id = messages.first().map(|x| x.id.clone());
        after.used_fallback = fallback;
        return (after, FireOutcome::Failed);
    }
    let after = ScheduledMessage {
        status: ScheduleStatus::Sent,
        message_id: messages.first().map(|x| x.id.clone()),
        used_fallback: fallback,
        settled_at: Some(rfc3339(&now)),
        ..m.clone()
    };
    (after, FireOutcome::Sent)
}

/// Cancels the conversation's scheduled messages that the customer's reply cancels
/// (`cancel_if_customer_replies`, scheduled before the message): on `MessageReceived`
/// events the webhook flagged `cancels_scheduled`. Returns how many it cancelled.
///
/// # Errors
/// `Internal` when the store fails (the event is delivered again).
pub async fn cancel_on_reply(
    store: &impl ScheduledStore,
    schedules: &impl Schedules,
    event: &MessageReceived,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    if !event.cancels_scheduled || event.direction != Some(Direction::Inbound) {
        return Ok(0);
    }
    let (Ok(tenant), Some(wrote)) = (
        TenantId::parse(&event.tenant_id),
        parse_rfc3339(&event.created_at),
    ) else {
        return Ok(0);
    };
    let page = PageRequest {
        limit: 100,
        cursor: None,
    };
    let waiting = store
        .list_scheduled(
            &tenant,
            Some(&event.conversation_id),
            Some(ScheduleStatus::Scheduled),
            &page,
        )
        .await?;
    let actor = Actor::Customer {
        id: customer_of(&event.conversation_id),
    };
    let mut cancelled = 0;
    for m in waiting.items {
        let scheduled_before = parse_rfc3339(&m.created_at).is_some_and(|c| c < wrote);
        if !m.cancel_if_customer_replies || !scheduled_before {
            continue;
        }
        if let CancelOutcome::Cancelled(_) = store
            .cancel_scheduled(&tenant, &m.id, CancelReason::CustomerReplied, &actor, now)
            .await?
        {
            cancelled += 1;
            if let Err(e) = schedules.delete_schedule(&m.id).await {
                warn!(scheduled_id = %m.id, error = %e, "schedule of a cancelled message left");
            }
        }
    }
    if cancelled > 0 {
        info!(tenant = %tenant, conversation_id = %event.conversation_id, cancelled, "scheduled messages cancelled by the customer's reply");
    }
    Ok(cancelled)
}

/// Creates the one-time schedule that ends a snooze at `until` (a repeat finds it made).
///
/// # Errors
/// 502 when Scheduler fails.
pub async fn schedule_snooze_end(
    schedules: &impl Schedules,
    tenant: &TenantId,
    conversation: &str,
    until: DateTime<Utc>,
) -> Result<(), Error> {
    let input = ScheduleInput::SnoozeEnd {
        tenant_id: tenant.to_string(),
        conversation_id: conversation.to_owned(),
        snoozed_until: rfc3339(&until),
    };
    match schedules
        .create_schedule(&snooze_schedule_name(conversation, &until), until, &input)
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if e.code() == "schedule_exists" => Ok(()),
        Err(e) => Err(e),
    }
}

/// Ends a snooze (its schedule fired): the conversation opens, with a `status_changed`
/// system message by the system, if it is still snoozed until that time (a later snooze,
/// or the customer's message, made this one moot).
///
/// # Errors
/// `Internal` when the store fails.
pub async fn end_snooze(
    store: &(impl ConversationChanges + ConversationReader),
    tenant: &TenantId,
    conversation: &str,
    snoozed_until: &str,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let Some(until) = parse_rfc3339(snoozed_until) else {
        return Ok(false);
    };
    let Some(state) = store.get_conversation(tenant, conversation).await? else {
        return Ok(false);
    };
    if state.status != ConversationStatus::Snoozed || state.snoozed_until != Some(until) {
        return Ok(false);
    }
    let change = Change::Status {
        status: ConversationStatus::Open,
        snoozed_until: None,
    };
    store
        .change_conversation(tenant, conversation, &change, &Actor::System, now)
        .await?;
    info!(tenant = %tenant, conversation_id = conversation, "snooze ended");
    Ok(true)
}
