//! Customers as agents see and edit them (SPEC §7): the view, the rules of
//! `PATCH /customers/{id}` and the shape of a search.
//!
//! The provider's profile name is written by every message; an agent's name is kept
//! beside it (`name_override`) and wins for display, so the next message does not undo it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use email_address::{EmailAddress, Options};
use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::domain::channel::ChannelType;
use crate::domain::label::LabelName;

/// Longest name an agent may give, in characters.
pub const NAME_MAX: usize = 200;
/// Longest email address, in characters (RFC 5321's 254-octet path limit).
pub const EMAIL_MAX: usize = 254;
/// Most attributes on a customer (SPEC §7).
pub const ATTRIBUTES_MAX: usize = 50;
/// Longest attribute key, in characters (SPEC §7).
pub const ATTRIBUTE_KEY_MAX: usize = 40;
/// Longest attribute value, in characters (SPEC §7).
pub const ATTRIBUTE_VALUE_MAX: usize = 500;
/// Longest search text `q`, in characters.
pub const QUERY_MAX: usize = 200;
/// Fewest and most digits of an E.164 number (ITU-T E.164 allows at most 15; 8 rules out
/// short codes and typing slips).
pub const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 8..=15;

/// A customer (`GET /customers/{id}`, and the items of `GET /customers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Customer {
    /// Our id (`cu_…`, derived from the channel and the provider's id).
    pub id: String,
    /// The name to show: the one an agent gave, else the provider's profile name.
    pub name: Option<String>,
    /// The provider's profile name, as its latest message gave it.
    pub profile_name: Option<String>,
    /// The provider's id of the customer (wa_id or WhatsApp user id, PSID, IGSID, OpenID).
    pub external_id: String,
    /// The channel type.
    pub channel: ChannelType,
    /// The channel.
    pub channel_id: String,
    /// E.164: the one an agent gave, else the WhatsApp number the customer writes from.
    pub phone: Option<String>,
    /// Given by an agent.
    pub email: Option<String>,
    /// Labels of the tenant's catalog.
    pub labels: Vec<String>,
    /// Free-form string attributes given by agents.
    pub attributes: BTreeMap<String, String>,
    /// When we first heard of the customer.
    #[serde(serialize_with = "crate::domain::time::serialize_optional_rfc3339")]
    pub created_at: Option<DateTime<Utc>>,
    /// When we last received a message from the customer.
    #[serde(serialize_with = "crate::domain::time::serialize_optional_rfc3339")]
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// The customer's conversations (one per channel and provider id).
    pub conversation_ids: Vec<String>,
}

/// Whether `id` can be a customer id (`cu_<channel id>_<hash>`, see
/// [`crate::domain::conversation::customer_id`]); anything else is unknown.
pub fn is_customer_id(id: &str) -> bool {
    crate::domain::conversation::conversation_of_customer(id).is_some()
}

/// The phone a WhatsApp id gives (`wa_id` is the number's digits), as E.164.
pub fn phone_of_wa_id(wa_id: &str) -> Option<Phone> {
    Phone::parse(&format!("+{wa_id}")).ok()
}

/// An E.164 phone number: `+`, then 8 to 15 digits, the first not 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    /// Parses a number written exactly so (no spaces or dashes).
    ///
    /// # Errors
    /// `422 invalid_phone`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let digits = value.strip_prefix('+').unwrap_or_default();
        let ok = PHONE_DIGITS.contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !ok {
            return Err(Error::validation(
                "invalid_phone",
                "a phone is E.164: '+' and 8-15 digits, the first not 0 (e.g. +85291234567)",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// `+85291234567`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without the `+` (what the phone index is keyed by).
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

/// An email address (checked with the `email_address` crate: a domain with a dot, no
/// display name, no IP literal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parses an address.
    ///
    /// # Errors
    /// `422 invalid_email`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let options = Options::default()
            .with_required_tld()
            .without_domain_literal()
            .without_display_text();
        if value.chars().count() > EMAIL_MAX
            || EmailAddress::parse_with_options(value, options).is_err()
        {
            return Err(Error::validation(
                "invalid_email",
                format!("not an email address one can write to (at most {EMAIL_MAX} characters)"),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a PATCH does to one field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Change<T> {
    /// Not in the body: left as it is.
    #[default]
    Keep,
    /// `null`: removed.
    Clear,
    /// A new value.
    Set(T),
}

/// The body of `PATCH /customers/{id}`, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerPatch {
    /// The agent's name for the customer (`null` goes back to the profile name).
    pub name: Change<String>,
    /// Email.
    pub email: Change<Email>,
    /// Phone.
    pub phone: Change<Phone>,
    /// Attributes to merge: a value sets the key, `None` (JSON `null`) removes it.
    pub attributes: BTreeMap<String, Option<String>>,
}

impl CustomerPatch {
    /// Parses a JSON object `{name?, email?, phone?, attributes?}`.
    ///
    /// # Errors
    /// 422: `unknown_field`, `invalid_name` (not a string of 1–200 characters after
    /// trimming, or with control characters), `invalid_email`, `invalid_phone` (see
    /// [`Phone::parse`]), `invalid_attributes` (not an object, a key of 0 or more than 40
    /// characters, a value that is not a string of at most 500 characters or `null`).
    pub fn parse(body: Value) -> Result<Self, Error> {
        let Value::Object(fields) = body else {
            return Err(Error::validation(
                "invalid_body",
                "the body must be a JSON object",
            ));
        };
        let mut patch = Self::default();
        for (field, value) in fields {
            match field.as_str() {
                "name" => patch.name = change(value, "invalid_name", parse_name)?,
                "email" => patch.email = change(value, "invalid_email", Email::parse)?,
                "phone" => patch.phone = change(value, "invalid_phone", Phone::parse)?,
                "attributes" => patch.attributes = parse_attributes(value)?,
                other => {
                    return Err(Error::validation(
                        "unknown_field",
                        format!(
                            "unknown field '{}': a customer takes name, email, phone and attributes",
                            other.chars().take(40).collect::<String>()
                        ),
                    ));
                }
            }
        }
        Ok(patch)
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name == Change::Keep
            && self.email == Change::Keep
            && self.phone == Change::Keep
            && self.attributes.is_empty()
    }

    /// The attributes after merging this patch into `current`.
    ///
    /// # Errors
    /// `422 invalid_attributes` when the result has more than 50 keys.
    pub fn merged_attributes(
        &self,
        current: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, Error> {
        let mut merged = current.clone();
        for (key, value) in &self.attributes {
            match value {
                Some(v) => merged.insert(key.clone(), v.clone()),
                None => merged.remove(key),
            };
        }
        if merged.len() > ATTRIBUTES_MAX {
            return Err(Error::validation(
                "invalid_attributes",
                format!("a customer has at most {ATTRIBUTES_MAX} attributes"),
            ));
        }
        Ok(merged)
    }
}

fn change<T>(
    value: Value,
    code: &'static str,
    parse: impl Fn(&str) -> Result<T, Error>,
) -> Result<Change<T>, Error> {
    match value {
        Value::Null => Ok(Change::Clear),
        Value::String(s) => parse(&s).map(Change::Set),
        _ => Err(Error::validation(code, "must be a string or null")),
    }
}

fn parse_name(value: &str) -> Result<String, Error> {
    let name = value.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > NAME_MAX || name.chars().any(char::is_control) {
        return Err(Error::validation(
            "invalid_name",
            format!("a name is 1-{NAME_MAX} characters, without control characters"),
        ));
    }
    Ok(name.to_owned())
}

fn parse_attributes(value: Value) -> Result<BTreeMap<String, Option<String>>, Error> {
    let invalid = |message: String| Error::validation("invalid_attributes", message);
    let Value::Object(entries) = value else {
        return Err(invalid("attributes must be a JSON object".into()));
    };
    let mut out = BTreeMap::new();
    for (key, value) in entries {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > ATTRIBUTE_KEY_MAX {
            return Err(invalid(format!(
                "an attribute key is 1-{ATTRIBUTE_KEY_MAX} characters"
            )));
        }
        let value = match value {
            Value::Null => None,
            Value::String(s) if s.chars().count() <= ATTRIBUTE_VALUE_MAX => Some(s),
            _ => {
                return Err(invalid(format!(
                    "attribute '{key}' must be a string of at most {ATTRIBUTE_VALUE_MAX} characters, or null to remove it"
                )));
            }
        };
        out.insert(key, value);
    }
    Ok(out)
}

/// `GET /customers?q=&label=`, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerQuery {
    /// The search text, trimmed (`None` when absent or blank): a name prefix (folded), a
    /// phone prefix (when it is digits, with or without `+`) or a provider id prefix.
    pub text: Option<String>,
    /// Only customers with this label.
    pub label: Option<LabelName>,
}

impl CustomerQuery {
    /// Parses the query values.
    ///
    /// # Errors
    /// `400 invalid_query` for a `q` over 200 characters; `422 invalid_label`.
    pub fn parse(q: Option<&str>, label: Option<&str>) -> Result<Self, Error> {
        let text = q.map(str::trim).filter(|t| !t.is_empty());
        if text.is_some_and(|t| t.chars().count() > QUERY_MAX) {
            return Err(Error::bad_request(
                "invalid_query",
                format!("q is at most {QUERY_MAX} characters"),
            ));
        }
        Ok(Self {
            text: text.map(str::to_owned),
            label: label
                .filter(|l| !l.is_empty())
                .map(LabelName::parse)
                .transpose()?,
        })
    }

    /// The phone digits the text is a prefix of, when it is one (`+852 9`: no, `+8529`:
    /// `8529`).
    pub fn phone_prefix(&self) -> Option<&str> {
        let text = self.text.as_deref()?;
        let digits = text.strip_prefix('+').unwrap_or(text);
        let ok = !digits.is_empty()
            && digits.len() <= *PHONE_DIGITS.end()
            && digits.bytes().all(|b| b.is_ascii_digit());
        ok.then_some(digits)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn code(body: Value) -> &'static str {
        CustomerPatch::parse(body).unwrap_err().code()
    }

    #[test]
    fn customer_ids_are_derived_ids() {
        let id = crate::domain::conversation::customer_id(
            &crate::domain::ids::ChannelId::parse("01J").unwrap(),
            "15551234567",
        );
        assert!(is_customer_id(&id));
        assert!(!is_customer_id("cu_1"));
        assert!(!is_customer_id(&id.replacen("cu_", "cv_", 1)));
        assert!(!is_customer_id(&format!("{id}#")));
        assert!(!is_customer_id("cu_a#b_0123456789abcdef01234567"));
    }

    #[test]
    fn phones_are_e164_with_eight_to_fifteen_digits() {
        let p = Phone::parse("+85291234567").unwrap();
        assert_eq!(p.digits(), "85291234567");
        assert!(Phone::parse("+12345678").is_ok());
        assert!(Phone::parse("+123456789012345").is_ok());
        for bad in [
            "85291234567",
            "+1234567",
            "+1234567890123456",
            "+0851234567",
            "+852 9123 4567",
            "+852-91234567",
            "++85291234567",
            "+８５２91234567",
            "",
            "+",
        ] {
            assert_eq!(
                Phone::parse(bad).unwrap_err().code(),
                "invalid_phone",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_whatsapp_id_is_a_phone_when_it_is_a_number() {
        assert_eq!(
            phone_of_wa_id("15551234567").unwrap().as_str(),
            "+15551234567"
        );
        assert!(phone_of_wa_id("US.13491208655302741918").is_none());
    }

    #[test]
    fn emails_need_a_local_part_and_a_domain_with_a_dot() {
        assert!(Email::parse("ana@example.com").is_ok());
        assert!(Email::parse("ana.maria+vip@mail.example.co.uk").is_ok());
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "ana",
            "ana@",
            "@example.com",
            "ana@localhost",
            "ana@[127.0.0.1]",
            "Ana <ana@example.com>",
            "ana @example.com",
            "",
            long.as_str(),
        ] {
            assert_eq!(
                Email::parse(bad).unwrap_err().code(),
                "invalid_email",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_patch_tells_absent_from_null() {
        let patch = CustomerPatch::parse(json!({"name": " Ana  ", "email": null})).unwrap();
        assert_eq!(patch.name, Change::Set("Ana".into()));
        assert_eq!(patch.email, Change::Clear);
        assert_eq!(patch.phone, Change::Keep);
        assert!(!patch.is_empty());
        assert!(CustomerPatch::parse(json!({})).unwrap().is_empty());
    }

    #[test]
    fn each_bad_field_has_its_own_code() {
        assert_eq!(code(json!({"nickname": "x"})), "unknown_field");
        assert_eq!(code(json!({"name": ""})), "invalid_name");
        assert_eq!(code(json!({"name": "   "})), "invalid_name");
        assert_eq!(code(json!({"name": "a".repeat(201)})), "invalid_name");
        assert_eq!(code(json!({"name": "a\u{0007}b"})), "invalid_name");
        assert_eq!(code(json!({"name": 5})), "invalid_name");
        assert_eq!(code(json!({"email": "nope"})), "invalid_email");
        assert_eq!(code(json!({"email": ["a@b.co"]})), "invalid_email");
        assert_eq!(code(json!({"phone": "12345"})), "invalid_phone");
        assert_eq!(code(json!({"phone": 85291234567u64})), "invalid_phone");
        assert_eq!(code(json!({"attributes": []})), "invalid_attributes");
        assert_eq!(code(json!({"attributes": null})), "invalid_attributes");
        assert_eq!(code(json!(["name"])), "invalid_body");
        assert!(CustomerPatch::parse(json!({"name": "é".repeat(200)})).is_ok());
    }

    #[test]
    fn attributes_are_short_keys_with_string_values() {
        let ok =
            json!({"attributes": {"tier": "gold", "k".repeat(40): "v".repeat(500), "old": null}});
        let patch = CustomerPatch::parse(ok).unwrap();
        assert_eq!(patch.attributes["old"], None);
        for bad in [
            json!({"": "x"}),
            json!({"k".repeat(41): "x"}),
            json!({"tier": "v".repeat(501)}),
            json!({"tier": 3}),
            json!({"tier": true}),
            json!({"tier": {"a": "b"}}),
        ] {
            assert_eq!(code(json!({ "attributes": bad })), "invalid_attributes");
        }
    }

    #[test]
    fn attributes_merge_and_null_removes_a_key() {
        let current = BTreeMap::from([
            ("tier".to_owned(), "silver".to_owned()),
            ("city".to_owned(), "Lyon".to_owned()),
        ]);
        let patch =
            CustomerPatch::parse(json!({"attributes": {"tier": "gold", "city": null, "x": "1"}}))
                .unwrap();
        let merged = patch.merged_attributes(&current).unwrap();
        assert_eq!(
            merged,
            BTreeMap::from([
                ("tier".to_owned(), "gold".to_owned()),
                ("x".to_owned(), "1".to_owned()),
            ])
        );
    }

    #[test]
    fn at_most_fifty_attributes_after_the_merge() {
        let current: BTreeMap<String, String> =
            (0..49).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        let one_more = CustomerPatch::parse(json!({"attributes": {"new": "v"}})).unwrap();
        assert_eq!(one_more.merged_attributes(&current).unwrap().len(), 50);
        let two_more = CustomerPatch::parse(json!({"attributes": {"a": "v", "b": "v"}})).unwrap();
        assert_eq!(
            two_more.merged_attributes(&current).unwrap_err().code(),
            "invalid_attributes"
        );
        let swap =
            CustomerPatch::parse(json!({"attributes": {"a": "v", "b": "v", "k0": null}})).unwrap();
        let full: BTreeMap<String, String> =
            (0..50).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert!(swap.merged_attributes(&full).is_err());
        let swap_one = CustomerPatch::parse(json!({"attributes": {"a": "v", "k0": null}})).unwrap();
        assert_eq!(swap_one.merged_attributes(&full).unwrap().len(), 50);
    }

    #[test]
    fn a_query_is_a_phone_prefix_only_when_it_is_digits() {
        let q = |t: &str| CustomerQuery::parse(Some(t), None).unwrap();
        assert_eq!(q("+8529").phone_prefix(), Some("8529"));
        assert_eq!(q(" 8529 ").phone_prefix(), Some("8529"));
        assert_eq!(q("ana").phone_prefix(), None);
        assert_eq!(q("+852 9").phone_prefix(), None);
        assert_eq!(q("+").phone_prefix(), None);
        assert_eq!(CustomerQuery::parse(Some("  "), None).unwrap().text, None);
        let long = "a".repeat(201);
        assert_eq!(
            CustomerQuery::parse(Some(&long), None).unwrap_err().code(),
            "invalid_query"
        );
        assert_eq!(
            CustomerQuery::parse(None, Some("VIP")).unwrap_err().code(),
            "invalid_label"
        );
    }
}
