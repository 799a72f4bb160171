//! System messages: internal notes written into a conversation for every state change
//! (SPEC §7). They are never sent to the customer and never count as unread.

use serde::{Deserialize, Serialize};

use super::actor::Actor;
use super::conversation::ConversationStatus;
use super::message::DeliveryError;

/// The `event` code of a system message (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemEvent {
    /// A conversation was assigned to an agent.
    Assigned,
    /// A conversation's assignee was removed.
    Unassigned,
    /// A label was put on the customer.
    LabelAdded,
    /// A label was taken off the customer.
    LabelRemoved,
    /// Open, closed or snoozed.
    StatusChanged,
    /// A bot started on the conversation.
    BotStarted,
    /// A bot stopped (with the reason).
    BotExited,
    /// A scheduled message went out.
    ScheduledSent,
    /// A scheduled message could not go out (with the reason).
    ScheduledFailed,
    /// A scheduled message was cancelled (by an agent, or by the customer's reply).
    ScheduledCancelled,
    /// A booking was made.
    BookingCreated,
    /// A booking was cancelled.
    BookingCancelled,
    /// A payment link was sent.
    PaymentRequested,
    /// A payment was completed.
    PaymentPaid,
    /// A delayed payment failed.
    PaymentFailed,
    /// A payment link expired.
    PaymentExpired,
    /// Both parties joined a call.
    CallStarted,
    /// A call ended (with its duration).
    CallEnded,
    /// Nobody joined a call before it expired.
    CallMissed,
    /// A message could not be delivered (with the provider's code and the fix).
    DeliveryFailed,
    /// The customer service window closed: templates only (WhatsApp) or no sends.
    WindowClosed,
}

impl SystemEvent {
    /// The API code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assigned => "assigned",
            Self::Unassigned => "unassigned",
            Self::LabelAdded => "label_added",
            Self::LabelRemoved => "label_removed",
            Self::StatusChanged => "status_changed",
            Self::BotStarted => "bot_started",
            Self::BotExited => "bot_exited",
            Self::ScheduledSent => "scheduled_sent",
            Self::ScheduledFailed => "scheduled_failed",
            Self::ScheduledCancelled => "scheduled_cancelled",
            Self::BookingCreated => "booking_created",
            Self::BookingCancelled => "booking_cancelled",
            Self::PaymentRequested => "payment_requested",
            Self::PaymentPaid => "payment_paid",
            Self::PaymentFailed => "payment_failed",
            Self::PaymentExpired => "payment_expired",
            Self::CallStarted => "call_started",
            Self::CallEnded => "call_ended",
            Self::CallMissed => "call_missed",
            Self::DeliveryFailed => "delivery_failed",
            Self::WindowClosed => "window_closed",
        }
    }

    /// Parses a stored code.
    pub fn parse(code: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(code.to_owned())).ok()
    }
}

/// One system message: what happened, a readable text and who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemMessage {
    /// The event code.
    pub event: SystemEvent,
    /// Readable text for the agent.
    pub text: String,
    /// Who caused it.
    pub actor: Actor,
    /// The provider's failure, for `delivery_failed`.
    pub error: Option<DeliveryError>,
    /// A machine-readable reason (`bot_exited`: an
    /// [`ExitReason`](crate::domain::bot::ExitReason) code).
    pub reason: Option<String>,
}

impl SystemMessage {
    /// A message that could not be delivered: the reason and the fix, caused by the
    /// system (the provider's answer or a status webhook).
    pub fn delivery_failed(error: &DeliveryError) -> Self {
        Self {
            event: SystemEvent::DeliveryFailed,
            text: format!("Message not delivered: {}", error.reason),
            actor: Actor::System,
            error: Some(error.clone()),
            reason: None,
        }
    }

    /// A status change: `text` names the new status (and the snooze end).
    pub fn status_changed(
        to: ConversationStatus,
        snoozed_until: Option<chrono::DateTime<chrono::Utc>>,
        actor: Actor,
    ) -> Self {
        let text = match (to, snoozed_until, &actor) {
            (ConversationStatus::Open, _, Actor::Customer { .. }) => {
                "Conversation reopened by the customer's message".to_owned()
            }
            (ConversationStatus::Open, _, Actor::System) => {
                "Snooze ended: conversation open".to_owned()
            }
            (ConversationStatus::Snoozed, Some(until), _) => format!(
                "Conversation snoozed until {}",
                crate::domain::time::rfc3339(&until)
            ),
            (status, _, _) => format!("Conversation marked {}", status.as_str()),
        };
        Self {
            event: SystemEvent::StatusChanged,
            text,
            actor,
            error: None,
            reason: None,
        }
    }

    /// An assignment (`Some(agent)`) or its removal (`None`, naming who had it).
    pub fn assignment(to: Option<&str>, from: Option<&str>, actor: Actor) -> Self {
        let (event, text) = match (to, from) {
            (Some(to), _) => (SystemEvent::Assigned, format!("Assigned to {to}")),
            (None, Some(from)) => (SystemEvent::Unassigned, format!("Unassigned from {from}")),
            (None, None) => (SystemEvent::Unassigned, "Unassigned".to_owned()),
        };
        Self {
            event,
            text,
            actor,
            error: None,
            reason: None,
        }
    }

    /// A bot started on the conversation (the bot is the actor).
    pub fn bot_started(bot_id: &str, bot_name: &str) -> Self {
        Self {
            event: SystemEvent::BotStarted,
            text: format!("Bot “{bot_name}” started"),
            actor: Actor::Bot {
                id: bot_id.to_owned(),
            },
            error: None,
            reason: None,
        }
    }

    /// A bot stopped, why and by whom.
    pub fn bot_exited(
        bot_name: &str,
        reason: crate::domain::bot::ExitReason,
        actor: Actor,
    ) -> Self {
        Self {
            event: SystemEvent::BotExited,
            text: reason.text(bot_name),
            actor,
            error: None,
            reason: Some(reason.as_str().to_owned()),
        }
    }

    /// A scheduled message went out (`fallback`: its fallback template did, the window
    /// being closed); the schedule is the actor, on behalf of its creator.
    pub fn scheduled_sent(scheduled: &crate::domain::schedule::ScheduledMessage) -> Self {
        let text = if scheduled.used_fallback {
            "Scheduled message sent as its fallback template (the window was closed)"
        } else {
            "Scheduled message sent"
        };
        Self {
            event: SystemEvent::ScheduledSent,
            text: text.to_owned(),
            actor: scheduled.actor(),
            error: None,
            reason: None,
        }
    }

    /// A scheduled message could not go out: `reason` is its error code, the text says why.
    pub fn scheduled_failed(scheduled: &crate::domain::schedule::ScheduledMessage) -> Self {
        let (code, why) = scheduled
            .error
            .as_ref()
            .map_or(("failed", "it could not be sent"), |e| {
                (e.code.as_str(), e.reason.as_str())
            });
        Self {
            event: SystemEvent::ScheduledFailed,
            text: format!("Scheduled message not sent: {why}"),
            actor: scheduled.actor(),
            error: None,
            reason: Some(code.to_owned()),
        }
    }

    /// A scheduled message was cancelled, why and by whom.
    pub fn scheduled_cancelled(
        reason: crate::domain::schedule::CancelReason,
        actor: Actor,
    ) -> Self {
        use crate::domain::schedule::CancelReason;
        let (code, text) = match reason {
            CancelReason::Agent => ("agent", "Scheduled message cancelled"),
            CancelReason::CustomerReplied => (
                "customer_replied",
                "Scheduled message cancelled: the customer wrote first",
            ),
        };
        Self {
            event: SystemEvent::ScheduledCancelled,
            text: text.to_owned(),
            actor,
            error: None,
            reason: Some(code.to_owned()),
        }
    }

    /// A label put on (`added`) or taken off the customer.
    pub fn label(label: &str, added: bool, actor: Actor) -> Self {
        let (event, text) = if added {
            (SystemEvent::LabelAdded, format!("Label {label} added"))
        } else {
            (SystemEvent::LabelRemoved, format!("Label {label} removed"))
        };
        Self {
            event,
            text,
            actor,
            error: None,
            reason: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_codes_round_trip() {
        for event in [
            SystemEvent::Assigned,
            SystemEvent::LabelRemoved,
            SystemEvent::BotExited,
            SystemEvent::ScheduledFailed,
            SystemEvent::PaymentPaid,
            SystemEvent::CallMissed,
            SystemEvent::DeliveryFailed,
            SystemEvent::WindowClosed,
        ] {
            assert_eq!(SystemEvent::parse(event.as_str()), Some(event));
        }
        assert_eq!(SystemEvent::parse("teleported"), None);
    }

    #[test]
    fn a_delivery_failure_names_the_reason_and_keeps_the_code() {
        let error = DeliveryError::explain("131026", None);
        let m = SystemMessage::delivery_failed(&error);
        assert_eq!(m.event.as_str(), "delivery_failed");
        assert!(m.text.starts_with("Message not delivered: "));
        assert_eq!(m.actor, Actor::System);
        assert_eq!(m.error.as_ref().map(|e| e.code.as_str()), Some("131026"));
    }
}
