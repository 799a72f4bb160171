//! Who did something: the acting party stored on every message and system message, and
//! shown in the API as `actor {type, id}` (SPEC §7).

use serde::{Deserialize, Serialize};

/// The party behind a message or a state change.
///
/// JSON: `{"type": "agent", "id": "…"}`; a schedule also names the agent it acts for
/// (`on_behalf_of`); the system has no id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// A person working in the chatroom (the token's `sub`).
    Agent {
        /// Agent id.
        id: String,
    },
    /// A chatbot of the tenant.
    Bot {
        /// Bot id.
        id: String,
    },
    /// A scheduled message firing, on behalf of the agent who created it.
    Schedule {
        /// Scheduled message id.
        id: String,
        /// The agent who scheduled it.
        on_behalf_of: String,
    },
    /// The customer (their provider id).
    Customer {
        /// The customer's id.
        id: String,
    },
    /// The product itself (delivery failures, window changes, timeouts).
    System,
}

impl Actor {
    /// An agent.
    pub fn agent(id: impl Into<String>) -> Self {
        Self::Agent { id: id.into() }
    }

    /// Whether a person is behind this send: Messenger's and Instagram's `HUMAN_AGENT` tag
    /// is for a human agent's replies only (Meta's Messenger Platform policy), so bots,
    /// schedules and the system never use it.
    pub fn is_human(&self) -> bool {
        matches!(self, Self::Agent { .. })
    }

    /// The API type name (`agent`, `bot`, `schedule`, `customer`, `system`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Agent { .. } => "agent",
            Self::Bot { .. } => "bot",
            Self::Schedule { .. } => "schedule",
            Self::Customer { .. } => "customer",
            Self::System => "system",
        }
    }

    /// The id, when the actor has one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Agent { id } | Self::Bot { id } | Self::Customer { id } => Some(id),
            Self::Schedule { id, .. } => Some(id),
            Self::System => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn actors_serialize_as_type_and_id() {
        assert_eq!(
            serde_json::to_value(Actor::agent("a1")).unwrap(),
            json!({"type": "agent", "id": "a1"})
        );
        assert_eq!(
            serde_json::to_value(Actor::Schedule {
                id: "s1".into(),
                on_behalf_of: "a1".into()
            })
            .unwrap(),
            json!({"type": "schedule", "id": "s1", "on_behalf_of": "a1"})
        );
        assert_eq!(
            serde_json::to_value(Actor::System).unwrap(),
            json!({"type": "system"})
        );
        let back: Actor = serde_json::from_value(json!({"type": "bot", "id": "b1"})).unwrap();
        assert_eq!(back, Actor::Bot { id: "b1".into() });
    }

    #[test]
    fn only_agents_are_human() {
        assert!(Actor::agent("a").is_human());
        assert!(!Actor::Bot { id: "b".into() }.is_human());
        assert!(
            !Actor::Schedule {
                id: "s".into(),
                on_behalf_of: "a".into()
            }
            .is_human()
        );
        assert!(!Actor::System.is_human());
    }
}
