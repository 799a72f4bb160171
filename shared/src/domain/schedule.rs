//! Scheduled messages (SPEC §9): what an agent schedules, its life (`scheduled` →
//! `sending` → `sent` | `failed`, or `cancelled`), and the decision at fire time. Pure:
//! the service in [`crate::service::schedules`] reads, claims, sends and settles.
//!
//! The window is what makes scheduled sends fail in practice: a WhatsApp message scheduled
//! for tomorrow goes out after the 24-hour window closed, and Meta refuses it (131047)
//! hours later where nobody looks. So the creation answer says whether the window is
//! expected to be open at `send_at` (`window_at_send`), and the fire checks it again: on
//! WhatsApp outside the window the `fallback_template` goes instead, else the message
//! fails visibly with a system message.

use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::domain::actor::Actor;
use crate::domain::channel::ChannelType;
use crate::domain::outbound::{OutboundKind, SendMessage};
use crate::domain::template::TemplateCall;
use crate::domain::window::{Window, WindowMode, WindowPolicy};

/// Furthest ahead a message may be scheduled (SPEC §9).
pub const MAX_DAYS_AHEAD: i64 = 365;
/// Most scheduled messages waiting on one conversation (a product limit: the customer's
/// reply cancels them in one pass).
pub const MAX_PENDING_PER_CONVERSATION: usize = 100;

/// Where a scheduled message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleStatus {
    /// Waiting for `send_at`.
    Scheduled,
    /// Claimed by a fire: being sent.
    Sending,
    /// Sent (accepted by the send path; its delivery is the message's own status).
    Sent,
    /// Could not go out (window closed without fallback, template gone, …).
    Failed,
    /// Cancelled by an agent or by the customer's reply.
    Cancelled,
}

impl ScheduleStatus {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the API name.
    pub fn parse(v: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(v.to_owned())).ok()
    }
}

/// Why a scheduled message was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// `DELETE /scheduled-messages/{id}`.
    Agent,
    /// The customer wrote first (`cancel_if_customer_replies`).
    CustomerReplied,
}

/// `POST /conversations/{id}/scheduled-messages`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// When to send: RFC 3339 with an explicit offset (`Z` or `±hh:mm`).
    pub send_at: String,
    /// The message, as `POST /conversations/{id}/messages` takes it.
    pub message: SendMessage,
    /// A WhatsApp template to send instead when the window is closed at `send_at`.
    #[serde(default)]
    pub fallback_template: Option<TemplateCall>,
    /// Cancel it when the customer writes before it is sent (default false).
    #[serde(default)]
    pub cancel_if_customer_replies: bool,
}

/// The window as it will be at `send_at`, if the customer writes nothing before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowAtSend {
    /// Whether the scheduled message may go free-form then: only in `free_form` mode (a
    /// schedule is not a person answering, so Messenger's `human_agent` band is closed to
    /// it).
    pub open: bool,
    /// The mode then (`free_form`, `human_agent`, `template_only`, `closed`).
    pub mode: WindowMode,
}

impl From<Window> for WindowAtSend {
    fn from(w: Window) -> Self {
        Self {
            open: w.mode == WindowMode::FreeForm,
            mode: w.mode,
        }
    }
}

/// Parses `send_at`: RFC 3339 with an offset, not in the past, at most 365 days ahead.
///
/// # Errors
/// 422 `invalid_send_at` (not RFC 3339 with an offset), `send_at_in_past`,
/// `send_at_too_far`.
pub fn parse_send_at(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
    let at: DateTime<FixedOffset> = DateTime::parse_from_rfc3339(value.trim()).map_err(|_| {
        Error::validation(
            "invalid_send_at",
            "send_at must be RFC 3339 with an offset, e.g. 2026-03-29T09:00:00+01:00",
        )
    })?;
    // chrono reads second 60 (a leap second, real or not) as a nanosecond past 1e9:
    // Scheduler's `at(…)` has no such second, so it is refused rather than stored.
    if at.timestamp_subsec_nanos() >= 1_000_000_000 {
        return Err(Error::validation(
            "invalid_send_at",
            "send_at has second 60: give the next second instead",
        ));
    }
    let at = at.with_timezone(&Utc);
    if at <= now {
        return Err(Error::validation(
            "send_at_in_past",
            "send_at must be in the future",
        ));
    }
    if at > now + Duration::days(MAX_DAYS_AHEAD) {
        return Err(Error::validation(
            "send_at_too_far",
            format!("send_at must be at most {MAX_DAYS_AHEAD} days ahead"),
        ));
    }
    Ok(at)
}

/// Checks the request's shape beyond the message itself: a fallback is a WhatsApp
/// template for a non-template message.
///
/// # Errors
/// 422 `invalid_fallback`.
pub fn check_fallback(request: &ScheduleRequest, channel: ChannelType) -> Result<(), Error> {
    let Some(_) = &request.fallback_template else {
        return Ok(());
    };
    if channel != ChannelType::Whatsapp {
        return Err(Error::validation(
            "invalid_fallback",
            "fallback_template is a WhatsApp template: other channels have none",
        ));
    }
    if request.message.kind == OutboundKind::Template {
        return Err(Error::validation(
            "invalid_fallback",
            "a template message needs no fallback: it goes whatever the window",
        ));
    }
    Ok(())
}

/// A scheduled message as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledMessage {
    /// Id (a ULID; also the name of its schedule).
    pub id: String,
    /// Conversation.
    pub conversation_id: String,
    /// When it goes (RFC 3339 UTC).
    pub send_at: String,
    /// Where it is in its life.
    pub status: ScheduleStatus,
    /// The message.
    pub message: SendMessage,
    /// The WhatsApp template sent instead when the window is closed.
    #[serde(default)]
    pub fallback_template: Option<TemplateCall>,
    /// Cancelled when the customer writes first.
    #[serde(default)]
    pub cancel_if_customer_replies: bool,
    /// The agent who scheduled it (it is sent on their behalf).
    pub created_by: String,
    /// When it was scheduled (RFC 3339 UTC).
    pub created_at: String,
    /// The message sent, once `sent`.
    #[serde(default)]
    pub message_id: Option<String>,
    /// Whether the fallback template went instead of the message.
    #[serde(default)]
    pub used_fallback: bool,
    /// Why it failed: `{code, reason}`.
    #[serde(default)]
    pub error: Option<ScheduleError>,
    /// Why it was cancelled.
    #[serde(default)]
    pub cancel_reason: Option<CancelReason>,
    /// When it was sent, failed or cancelled (RFC 3339 UTC).
    #[serde(default)]
    pub settled_at: Option<String>,
}

/// Why a scheduled message failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleError {
    /// A code (`window_closed`, `template_required`, or the send path's refusal code).
    pub code: String,
    /// Words for the agent.
    pub reason: String,
}

impl ScheduledMessage {
    /// The actor its send and system messages carry: the schedule, on behalf of its
    /// creator.
    pub fn actor(&self) -> Actor {
        Actor::Schedule {
            id: self.id.clone(),
            on_behalf_of: self.created_by.clone(),
        }
    }
}

/// What a fire does, decided from the scheduled message and the conversation as read at
/// fire time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireDecision {
    /// Send this message (the original, or the fallback template).
    Send {
        /// The message.
        message: SendMessage,
        /// Whether it is the fallback.
        fallback: bool,
    },
    /// Fail it, saying why.
    Fail(ScheduleError),
    /// The customer wrote after it was scheduled: cancel it.
    CancelCustomerReplied,
}

/// Decides a fire at `now` (SPEC §9): the customer's reply cancels it when asked; outside a
/// WhatsApp window the fallback template goes (or it fails); a free-form message outside
/// any other channel's window fails. A schedule never uses Messenger's `HUMAN_AGENT` tag
/// (it is not a person answering now).
pub fn decide_fire(
    scheduled: &ScheduledMessage,
    policy: &WindowPolicy,
    last_inbound_at: Option<DateTime<Utc>>,
    replies_since_inbound: u32,
    now: DateTime<Utc>,
) -> FireDecision {
    let created = crate::domain::time::parse_rfc3339(&scheduled.created_at);
    if scheduled.cancel_if_customer_replies
        && let (Some(wrote), Some(created)) = (last_inbound_at, created)
        && wrote > created
    {
        return FireDecision::CancelCustomerReplied;
    }
    let send = |message: &SendMessage, fallback| FireDecision::Send {
        message: message.clone(),
        fallback,
    };
    if scheduled.message.kind == OutboundKind::Template {
        return send(&scheduled.message, false);
    }
    let window = policy.window_at(last_inbound_at, replies_since_inbound, now);
    if window.mode == WindowMode::FreeForm {
        return send(&scheduled.message, false);
    }
    if let Some(message) = fallback_message(scheduled) {
        return FireDecision::Send {
            message,
            fallback: true,
        };
    }
    FireDecision::Fail(match policy.channel_type {
        ChannelType::Whatsapp => ScheduleError {
            code: "template_required".into(),
            reason: "the customer service window was closed at send time and no fallback_template was given".into(),
        },
        _ => ScheduleError {
            code: "window_closed".into(),
            reason: "the customer service window was closed at send time".into(),
        },
    })
}

/// The fallback template as a message, when the scheduled message has one.
fn fallback_message(scheduled: &ScheduledMessage) -> Option<SendMessage> {
    let template = scheduled.fallback_template.as_ref()?;
    Some(SendMessage {
        kind: OutboundKind::Template,
        text: None,
        media_id: None,
        caption: None,
        template: Some(template.clone()),
        options: None,
    })
}

/// Every message a fire of `scheduled` may send, each with whether it is the fallback: the
/// message, then the fallback template when there is one (a free-form message outside a
/// WhatsApp window). A resumed fire looks for the one an earlier delivery accepted.
pub fn fire_candidates(scheduled: &ScheduledMessage) -> Vec<(SendMessage, bool)> {
    let mut candidates = vec![(scheduled.message.clone(), false)];
    if scheduled.message.kind != OutboundKind::Template
        && let Some(fallback) = fallback_message(scheduled)
    {
        candidates.push((fallback, true));
    }
    candidates
}

/// What the scheduler's target receives: EventBridge Scheduler invokes the `scheduler`
/// function with the schedule's `Input`, this JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScheduleInput {
    /// A scheduled message is due.
    ScheduledMessage {
        /// Tenant.
        tenant_id: String,
        /// The scheduled message.
        scheduled_id: String,
    },
    /// A snoozed conversation's snooze ends.
    SnoozeEnd {
        /// Tenant.
        tenant_id: String,
        /// The conversation.
        conversation_id: String,
        /// The snooze's end it was made for (RFC 3339): a later snooze makes it moot.
        snoozed_until: String,
    },
    /// A video call's links expire: a call still ringing is missed.
    CallExpiry {
        /// Tenant.
        tenant_id: String,
        /// The call.
        call_id: String,
    },
}

/// The name of a snooze's schedule: unique per conversation and end, within the 64
/// characters (letters, digits, `-`, `_`, `.`) Scheduler allows.
pub fn snooze_schedule_name(conversation_id: &str, until: &DateTime<Utc>) -> String {
    crate::domain::conversation::derived_id(
        "snooze-",
        &[conversation_id, &crate::domain::time::rfc3339(until)],
    )
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
