//! Identifier newtypes. Each parses its input once; the rest of the code trusts it.
//!
//! Identifiers never contain `#`, which separates the parts of a DynamoDB key.

use std::fmt;

use crate::Error;

/// Longest identifier accepted from outside (token claims, path parameters).
const MAX_ID_LEN: usize = 64;

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@')
}

fn parse_external(value: &str) -> Option<String> {
    let ok = !value.is_empty() && value.len() <= MAX_ID_LEN && value.chars().all(is_id_char);
    ok.then(|| value.to_owned())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses an identifier: 1 to 64 characters from `A-Z a-z 0-9 - _ . : @`.
            pub fn parse(value: &str) -> Result<Self, Error> {
                parse_external(value).map(Self).ok_or_else(|| {
                    Error::bad_request(
                        concat!("invalid_", $what),
                        concat!("the ", $what, " is not a valid identifier"),
                    )
                })
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A business using the product. Comes only from the agent's token, never from a body.
    TenantId,
    "tenant_id"
);
string_id!(
    /// An agent (the token's `sub`).
    AgentId,
    "agent_id"
);
string_id!(
    /// A connected channel of a tenant (a ULID we generate).
    ChannelId,
    "channel_id"
);

string_id!(
    /// A conversation: `cv_<channel id>_<hash of the customer>`, derived so that parallel
    /// first messages make one.
    ConversationId,
    "conversation_id"
);
string_id!(
    /// A message (a ULID we generate).
    MessageId,
    "message_id"
);
string_id!(
    /// A media record (a ULID we generate).
    MediaId,
    "media_id"
);

impl ConversationId {
    /// The channel a conversation id names (`cv_<channel id>_<hash>`), or `None` for an id
    /// we did not make.
    pub fn channel(&self) -> Option<ChannelId> {
        crate::domain::conversation::channel_of_conversation(&self.0)
    }
}

impl ChannelId {
    /// A new, time-ordered channel id.
    pub fn generate() -> Self {
        Self(ulid::Ulid::new().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_with_key_separators_are_refused() {
        assert!(TenantId::parse("acme#1").is_err());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse(&"a".repeat(65)).is_err());
        assert!(TenantId::parse("acme corp").is_err());
    }

    #[test]
    fn plain_identifiers_parse() {
        assert_eq!(TenantId::parse("acme-1").unwrap().as_str(), "acme-1");
        assert_eq!(
            AgentId::parse("4f1c2a7e-0000-4000-8000-1234567890ab")
                .unwrap()
                .as_str(),
            "4f1c2a7e-0000-4000-8000-1234567890ab"
        );
    }

    #[test]
    fn generated_channel_ids_parse_back() {
        let id = ChannelId::generate();
        assert_eq!(ChannelId::parse(id.as_str()).unwrap(), id);
    }

    #[test]
    fn invalid_identifier_names_which_one() {
        assert_eq!(
            ChannelId::parse("x y").unwrap_err().code(),
            "invalid_channel_id"
        );
    }
}
