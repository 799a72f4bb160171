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

/// A label's color: `#rrggbb` (hex, stored lowercase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct LabelColor(String);

impl LabelColor {
    /// Parses `#rrggbb` (either case).
    ///
    /// # Errors
    /// `422 invalid_color`.
    pub fn parse(color: &str) -> Result<Self, Error> {
        let hex = color.strip_prefix('#').unwrap_or_default();
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::validation(
                "invalid_color",
                "a label color is '#rrggbb' (six hexadecimal digits)",
            ));
        }
        Ok(Self(format!("#{}", hex.to_ascii_lowercase())))
    }

    /// The color, `#rrggbb`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A label of the tenant's catalog (`GET /labels` items).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Label {
    /// Its name (unique in the tenant).
    pub name: LabelName,
    /// Its color.
    pub color: LabelColor,
    /// When it was created (RFC 3339, UTC, milliseconds).
    #[serde(serialize_with = "crate::domain::time::serialize_rfc3339")]
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The body of `POST /labels`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLabel {
    /// Name ([`LabelName`]).
    pub name: String,
    /// Color ([`LabelColor`]).
    pub color: String,
}

impl NewLabel {
    /// The label this body asks for, created at `now`.
    ///
    /// # Errors
    /// `422 invalid_label`, `422 invalid_color`.
    pub fn parse(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Label, Error> {
        Ok(Label {
            name: LabelName::parse(&self.name)?,
            color: LabelColor::parse(&self.color)?,
            created_at: now,
        })
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

    #[test]
    fn colors_are_six_hex_digits_after_a_hash_stored_lowercase() {
        assert_eq!(LabelColor::parse("#FFaa00").unwrap().as_str(), "#ffaa00");
        for bad in [
            "",
            "#fff",
            "ffaa00",
            "#ffaa0g",
            "#ffaa000",
            "##ffaa0",
            "#ｆｆａａ００",
        ] {
            assert_eq!(
                LabelColor::parse(bad).unwrap_err().code(),
                "invalid_color",
                "{bad:?}"
            );
        }
    }
}
