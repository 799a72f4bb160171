//! Notes on a customer (SPEC §7): internal text by agents, never sent to the customer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::domain::auth::{Principal, Role};

/// Longest note, in characters (SPEC §7).
pub const TEXT_MAX: usize = 5000;

/// Who wrote a note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Author {
    /// The agent id (the token's `sub`).
    pub id: String,
    /// The agent's name in the tenant's agent directory, when it has one.
    pub name: Option<String>,
}

/// A note (`POST /customers/{id}/notes` answer, `GET` items).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// A ULID: notes sort by creation.
    pub id: String,
    /// The text, trimmed.
    pub text: String,
    /// Its author.
    pub author: Author,
    /// When it was written (RFC 3339, UTC, milliseconds).
    #[serde(serialize_with = "crate::domain::time::serialize_rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// The body of `POST /customers/{id}/notes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    /// 1–5000 characters once trimmed.
    pub text: String,
}

impl NewNote {
    /// The text to store: trimmed, 1 to [`TEXT_MAX`] characters.
    ///
    /// # Errors
    /// `422 invalid_note`.
    pub fn text(&self) -> Result<String, Error> {
        let text = self.text.trim();
        let chars = text.chars().count();
        if chars == 0 || chars > TEXT_MAX {
            return Err(Error::validation(
                "invalid_note",
                format!("a note is 1-{TEXT_MAX} characters of text"),
            ));
        }
        Ok(text.to_owned())
    }
}

/// Whether `principal` may delete a note written by `author_id`: its author or an admin.
///
/// # Errors
/// `403 forbidden`.
pub fn may_delete(principal: &Principal, author_id: &str) -> Result<(), Error> {
    if principal.role == Role::Admin || principal.agent_id.as_str() == author_id {
        return Ok(());
    }
    Err(Error::Forbidden(
        "only the note's author or an admin may delete it".into(),
    ))
}

/// Whether a path segment can be a note id (a ULID); anything else is unknown (404).
pub fn is_note_id(id: &str) -> bool {
    id.len() == 26 && ulid::Ulid::from_string(id).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{AgentId, TenantId};

    fn principal(sub: &str, role: Role) -> Principal {
        Principal {
            agent_id: AgentId::parse(sub).unwrap(),
            tenant_id: TenantId::parse("acme").unwrap(),
            role,
        }
    }

    #[test]
    fn notes_are_one_to_five_thousand_characters_once_trimmed() {
        let note = |t: &str| NewNote { text: t.into() }.text();
        assert_eq!(note("  call back Monday \n").unwrap(), "call back Monday");
        assert!(note(&"é".repeat(TEXT_MAX)).is_ok());
        for bad in ["", "   \n\t", &"a".repeat(TEXT_MAX + 1)] {
            assert_eq!(note(bad).unwrap_err().code(), "invalid_note");
        }
    }

    #[test]
    fn only_the_author_or_an_admin_may_delete_a_note() {
        assert!(may_delete(&principal("a1", Role::Agent), "a1").is_ok());
        assert!(may_delete(&principal("boss", Role::Admin), "a1").is_ok());
        assert_eq!(
            may_delete(&principal("a2", Role::Agent), "a1")
                .unwrap_err()
                .code(),
            "forbidden"
        );
    }

    #[test]
    fn note_ids_are_ulids() {
        assert!(is_note_id(&ulid::Ulid::new().to_string()));
        assert!(!is_note_id("note-1"));
        assert!(!is_note_id("01ARZ3NDEKTSV4RRFFQ69G5FA#"));
    }
}
