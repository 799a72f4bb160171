//! Agents' changes to a conversation (SPEC §7): assignment, status, the customer's labels.
//! Each is decided here from the conversation as read; the store writes it with its system
//! message in one transaction, or nothing when it changes nothing.

use chrono::{DateTime, Duration, Utc};

use crate::Error;
use crate::domain::actor::Actor;
use crate::domain::conversation::{ConversationState, ConversationStatus};
use crate::domain::label::LabelName;
use crate::domain::system::SystemMessage;

/// Longest snooze (a year): beyond it a conversation is closed, not snoozed.
pub const MAX_SNOOZE_DAYS: i64 = 365;

/// Most labels on one customer: each is one membership item written with every message.
pub const MAX_LABELS_PER_CUSTOMER: usize = 20;

/// One change an agent asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `PUT /conversations/{id}/assignee`: an agent id, or `None` to unassign.
    Assign(Option<String>),
    /// `PATCH /conversations/{id}`.
    Status {
        /// The new status.
        status: ConversationStatus,
        /// When a snooze ends (only with `snoozed`).
        snoozed_until: Option<DateTime<Utc>>,
    },
    /// `PUT` (`add`) or `DELETE /customers/{id}/labels/{label}`.
    Label {
        /// The label.
        name: LabelName,
        /// Put on (`true`) or take off.
        add: bool,
    },
}

impl Change {
    /// A status change, checked.
    ///
    /// # Errors
    /// 422 `invalid_snooze`: `snoozed` without a future `snoozed_until` within
    /// [`MAX_SNOOZE_DAYS`], or `snoozed_until` with another status.
    pub fn status(
        status: ConversationStatus,
        snoozed_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Self, Error> {
        match (status, snoozed_until) {
            (ConversationStatus::Snoozed, Some(until))
                if until > now && until <= now + Duration::days(MAX_SNOOZE_DAYS) => {}
            (ConversationStatus::Snoozed, _) => {
                return Err(Error::validation(
                    "invalid_snooze",
                    format!(
                        "snoozed needs snoozed_until: a future time within {MAX_SNOOZE_DAYS} days"
                    ),
                ));
            }
            (_, Some(_)) => {
                return Err(Error::validation(
                    "invalid_snooze",
                    "snoozed_until goes only with status snoozed",
                ));
            }
            (_, None) => {}
        }
        Ok(Self::Status {
            status,
            snoozed_until,
        })
    }

    /// The conversation after this change and the system message recording it, or `None`
    /// when it changes nothing (a repeat writes nothing, and no second system message).
    ///
    /// # Errors
    /// 422 `too_many_labels` past [`MAX_LABELS_PER_CUSTOMER`].
    pub fn apply(
        &self,
        state: &ConversationState,
        actor: &Actor,
    ) -> Result<Option<(ConversationState, SystemMessage)>, Error> {
        let mut after = state.clone();
        let note = match self {
            Self::Assign(agent) => {
                if state.assignee == *agent {
                    return Ok(None);
                }
                after.assignee.clone_from(agent);
                SystemMessage::assignment(
                    agent.as_deref(),
                    state.assignee.as_deref(),
                    actor.clone(),
                )
            }
            Self::Status {
                status,
                snoozed_until,
            } => {
                if state.status == *status && state.snoozed_until == *snoozed_until {
                    return Ok(None);
                }
                after.status = *status;
                after.snoozed_until = *snoozed_until;
                SystemMessage::status_changed(*status, *snoozed_until, actor.clone())
            }
            Self::Label { name, add } => {
                let has = state.labels.iter().any(|l| l == name.as_str());
                if has == *add {
                    return Ok(None);
                }
                if *add {
                    if state.labels.len() >= MAX_LABELS_PER_CUSTOMER {
                        return Err(Error::validation(
                            "too_many_labels",
                            format!("a customer carries at most {MAX_LABELS_PER_CUSTOMER} labels"),
                        ));
                    }
                    after.labels.push(name.to_string());
                } else {
                    after.labels.retain(|l| l != name.as_str());
                }
                SystemMessage::label(name.as_str(), *add, actor.clone())
            }
        };
        after.views_version = state.views_version + 1;
        Ok(Some((after, note)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::channel::ChannelType;
    use crate::domain::conversation::CustomerRef;
    use crate::domain::system::SystemEvent;
    use crate::domain::window::WindowPolicy;

    fn state() -> ConversationState {
        ConversationState {
            id: "cv_ch_0123456789abcdef01234567".into(),
            channel_id: "ch".into(),
            policy: WindowPolicy {
                channel_type: ChannelType::Whatsapp,
                window_hours: 24,
                human_agent: false,
            },
            status: ConversationStatus::Open,
            snoozed_until: None,
            customer: CustomerRef {
                id: "cu_ch_0123456789abcdef01234567".into(),
                name: None,
                external_id: "155".into(),
                name_overridden: false,
            },
            assignee: None,
            labels: vec![],
            views_version: 3,
            activity: None,
            unread_count: 0,
            last_message_at: Utc::now(),
            last_inbound_at: None,
            replies_since_inbound: 0,
            last_inbound_provider_message_id: None,
            preview: String::new(),
            bot: Default::default(),
            reply_cancels: 0,
        }
    }

    #[test]
    fn a_repeat_changes_nothing_and_writes_no_second_note() {
        let actor = Actor::agent("a1");
        let vip = Change::Label {
            name: LabelName::parse("vip").unwrap(),
            add: true,
        };
        let (after, note) = vip.apply(&state(), &actor).unwrap().unwrap();
        assert_eq!(after.labels, vec!["vip"]);
        assert_eq!(after.views_version, 4);
        assert_eq!(note.event, SystemEvent::LabelAdded);
        assert_eq!(vip.apply(&after, &actor).unwrap(), None);
        let assign = Change::Assign(Some("a2".into()));
        let (after, note) = assign.apply(&state(), &actor).unwrap().unwrap();
        assert_eq!(note.event, SystemEvent::Assigned);
        assert_eq!(assign.apply(&after, &actor).unwrap(), None);
        let (_, note) = Change::Assign(None).apply(&after, &actor).unwrap().unwrap();
        assert_eq!(note.event, SystemEvent::Unassigned);
        assert!(note.text.contains("a2"));
    }

    #[test]
    fn snoozes_need_a_future_end_within_a_year() {
        let now = Utc::now();
        let snoozed = ConversationStatus::Snoozed;
        assert!(Change::status(snoozed, Some(now + Duration::hours(2)), now).is_ok());
        for bad in [
            None,
            Some(now - Duration::seconds(1)),
            Some(now + Duration::days(400)),
        ] {
            assert!(Change::status(snoozed, bad, now).is_err());
        }
        assert!(Change::status(ConversationStatus::Closed, Some(now), now).is_err());
        let closed = Change::status(ConversationStatus::Closed, None, now).unwrap();
        let (after, note) = closed.apply(&state(), &Actor::agent("a")).unwrap().unwrap();
        assert_eq!(after.status, ConversationStatus::Closed);
        assert_eq!(note.text, "Conversation marked closed");
    }

    #[test]
    fn labels_are_bounded_per_customer() {
        let mut s = state();
        s.labels = (0..MAX_LABELS_PER_CUSTOMER)
            .map(|i| format!("l{i}"))
            .collect();
        let add = Change::Label {
            name: LabelName::parse("one-more").unwrap(),
            add: true,
        };
        assert_eq!(
            add.apply(&s, &Actor::agent("a")).unwrap_err().code(),
            "too_many_labels"
        );
    }
}
