//! The tenant's agent directory (SPEC §7): who works in the chatroom, by the JWT `sub`.
//!
//! An agent is an agent of the tenant once an admin has `PUT /agents/{id}` it. The
//! directory's `role` is what the workspace shows; what a request may do still comes
//! from its token's `role` claim.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::Error;
use crate::domain::auth::Role;
use crate::domain::time::serialize_rfc3339;

/// Longest agent name, in characters (a display name; sane bound of ours).
pub const NAME_MAX: usize = 100;

/// The id of an agent in the directory: the JWT `sub`, by the same rule as a token's
/// ([`crate::domain::ids::AgentId`]: 1–64 characters of `A-Z a-z 0-9 - _ . : @`; a
/// Cognito `sub` is a 36-character UUID), so every agent in the directory can sign in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AgentRef(String);

impl AgentRef {
    /// Parses an id.
    ///
    /// # Errors
    /// `422 invalid_agent_id` naming the rule.
    pub fn parse(id: &str) -> Result<Self, Error> {
        crate::domain::ids::AgentId::parse(id)
            .map(|valid| Self(valid.as_str().to_owned()))
            .map_err(|_| {
                Error::validation(
                    "invalid_agent_id",
                    "an agent id is the token's sub: 1-64 characters of A-Z a-z 0-9 - _ . : @",
                )
            })
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AgentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An agent's name and role, as an admin sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentProfile {
    /// Display name, trimmed, 1–100 characters.
    pub name: String,
    /// `agent` or `admin`.
    pub role: Role,
}

/// `PUT /agents/{id}` body: `{"name": "…", "role": "agent" | "admin"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutAgent {
    /// Display name.
    pub name: String,
    /// `agent` or `admin`.
    pub role: String,
}

impl PutAgent {
    /// Checks the body.
    ///
    /// # Errors
    /// `422 invalid_name` (not 1–100 characters without control characters, once
    /// trimmed), `422 invalid_role` (not `agent` or `admin`).
    pub fn parse(self) -> Result<AgentProfile, Error> {
        let name = self.name.trim();
        let count = name.chars().count();
        if count == 0 || count > NAME_MAX || name.chars().any(char::is_control) {
            return Err(Error::validation(
                "invalid_name",
                format!("name must be 1-{NAME_MAX} characters without control characters"),
            ));
        }
        let role = Role::parse(&self.role).ok_or_else(|| {
            Error::validation("invalid_role", "role must be \"agent\" or \"admin\"")
        })?;
        Ok(AgentProfile {
            name: name.to_owned(),
            role,
        })
    }
}

/// An agent of the tenant: `{id, name, role, created_at}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    /// The JWT `sub`.
    pub id: AgentRef,
    /// Display name.
    pub name: String,
    /// `agent` or `admin`.
    #[serde(serialize_with = "serialize_role")]
    pub role: Role,
    /// When an admin first added it.
    #[serde(serialize_with = "serialize_rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// The API (and stored) name of a role.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Agent => "agent",
        Role::Admin => "admin",
    }
}

fn serialize_role<S: Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(role_name(*role))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(name: &str, role: &str) -> Result<AgentProfile, Error> {
        PutAgent {
            name: name.into(),
            role: role.into(),
        }
        .parse()
    }

    #[test]
    fn ids_are_token_subjects_without_separators_or_control_characters() {
        assert!(AgentRef::parse("4f1c2a7e-0000-4000-8000-1234567890ab").is_ok());
        assert!(AgentRef::parse("auth0|5f7c8ec7c33c6c004bbafe82").is_err());
        assert!(AgentRef::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "a#b", "a\nb", "a\u{7f}", "é", &"a".repeat(65)] {
            assert_eq!(
                AgentRef::parse(bad).unwrap_err().code(),
                "invalid_agent_id",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded_and_roles_known() {
        assert_eq!(put("  Ana  ", "admin").unwrap().name, "Ana");
        assert_eq!(put("Ana", "agent").unwrap().role, Role::Agent);
        assert!(put(&"名".repeat(NAME_MAX), "agent").is_ok());
        for bad in ["", "   ", "a\tb", &"a".repeat(NAME_MAX + 1)] {
            assert_eq!(put(bad, "agent").unwrap_err().code(), "invalid_name");
        }
        assert_eq!(put("Ana", "owner").unwrap_err().code(), "invalid_role");
        assert_eq!(put("Ana", "Admin").unwrap_err().code(), "invalid_role");
    }

    #[test]
    fn an_agent_shows_its_role_by_name() {
        let agent = Agent {
            id: AgentRef::parse("a1").unwrap(),
            name: "Ana".into(),
            role: Role::Admin,
            created_at: DateTime::parse_from_rfc3339("2026-11-24T09:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        };
        assert_eq!(
            serde_json::to_value(&agent).unwrap(),
            serde_json::json!({"id": "a1", "name": "Ana", "role": "admin",
                               "created_at": "2026-11-24T09:00:00.000Z"})
        );
    }
}
