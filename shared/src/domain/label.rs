//! Labels: a tenant's catalog of tags that agents put on customers (SPEC §7).

use serde::Serialize;

use crate::Error;

/// Longest label name, in characters (SPEC §7).
pub const NAME_MAX: usize = 40;

/// A label name: 1–40 characters of lowercase ASCII letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LabelName(String);

impl LabelName {
    /// Parses a name.
    ///
    /// # Errors
    /// `422 invalid_label` naming the rule it breaks.
    pub fn parse(name: &str) -> Result<Self, Error> {
        let ok_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if name.is_empty() || name.chars().count() > NAME_MAX || !name.chars().all(ok_char) {
            return Err(Error::validation(
                "invalid_label",
                format!(
                    "a label name is 1-{NAME_MAX} characters of lowercase letters, digits, '-' and '_'"
                ),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LabelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lowercase_slugs() {
        assert!(LabelName::parse("vip").is_ok());
        assert!(LabelName::parse("follow-up_2").is_ok());
        assert!(LabelName::parse(&"a".repeat(40)).is_ok());
        for bad in ["", "VIP", "a b", "é", "x#y", &"a".repeat(41)] {
            assert!(LabelName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
