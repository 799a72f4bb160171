//! WhatsApp message templates: what a business may send outside the customer service window
//! and to start a conversation (SPEC §4–5).
//!
//! A template belongs to a WhatsApp Business Account (WABA), not to one phone number: it is
//! created at Meta through one of the account's channels and sendable from every phone
//! number of the account. Its `status` only ever comes from Meta (the creation answer,
//! status webhooks or a sync), never from the client. Only `APPROVED` templates are
//! sendable.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Error;
use crate::domain::ids::ChannelId;

/// Longest template name Meta accepts.
const MAX_NAME_LEN: usize = 512;
/// Longest body text Meta accepts.
const MAX_BODY_CHARS: usize = 1024;
/// Longest header or footer text.
const MAX_SHORT_TEXT_CHARS: usize = 60;
/// Most buttons on a template.
const MAX_BUTTONS: usize = 10;
/// Longest parameter value we send (Meta caps body parameters well below the body length).
const MAX_PARAMETER_CHARS: usize = 1024;

/// Meta's template categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateCategory {
    /// Promotions.
    Marketing,
    /// Updates about an existing transaction or account.
    Utility,
    /// One-time passcodes.
    Authentication,
}

/// Meta's review status of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateStatus {
    /// Under review.
    Pending,
    /// Sendable.
    Approved,
    /// Refused by review.
    Rejected,
    /// Paused for low quality (error 132015 when sent).
    Paused,
    /// Disabled (error 132016 when sent).
    Disabled,
    /// Appeal or other state not sendable.
    #[serde(other)]
    Other,
}

impl TemplateStatus {
    /// Parses Meta's name (`APPROVED`, …); anything unknown is [`Self::Other`].
    pub fn parse(value: &str) -> Self {
        serde_json::from_value(Value::String(value.to_ascii_uppercase())).unwrap_or(Self::Other)
    }

    /// The stored/API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::Paused => "PAUSED",
            Self::Disabled => "DISABLED",
            Self::Other => "OTHER",
        }
    }
}

/// `POST /templates`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTemplate {
    /// A WhatsApp channel of the business account that will hold the template; optional
    /// when the tenant has exactly one business account.
    #[serde(default)]
    pub channel_id: Option<String>,
    /// Lowercase letters, digits and underscores.
    pub name: String,
    /// Meta language code (`en_US`, `pt_BR`, `de`).
    pub language: String,
    /// Category.
    pub category: TemplateCategory,
    /// Header, body, footer and buttons, in Meta's component format.
    pub components: Vec<Value>,
}

/// A stored template (also the API shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Our id, derived from the business account, name and language (so a send from any
    /// phone number of the account finds it with one read).
    pub id: String,
    /// The WhatsApp channel it was created through.
    pub channel_id: String,
    /// The WhatsApp Business Account that holds it (absent on templates stored before
    /// templates were keyed by account: those are found by [`legacy_template_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waba_id: Option<String>,
    /// Name.
    pub name: String,
    /// Language code.
    pub language: String,
    /// Category (as Meta last reported it).
    pub category: TemplateCategory,
    /// Meta's review status.
    pub status: TemplateStatus,
    /// Components as created.
    pub components: Vec<Value>,
    /// Placeholders in the header text (`{{1}}`…), filled first.
    pub header_parameters: usize,
    /// Placeholders in the body text, filled after the header's.
    pub body_parameters: usize,
    /// Meta's template id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_template_id: Option<String>,
    /// Why Meta rejected or paused it, when it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Created.
    #[serde(serialize_with = "crate::domain::time::serialize_rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// Our id of a template: one per WhatsApp Business Account, name and language (Meta's own
/// uniqueness rule), whichever phone number of the account sends it.
pub fn template_id(waba_id: &str, name: &str, language: &str) -> String {
    crate::domain::conversation::derived_id("tp_", &["template", "waba", waba_id, name, language])
}

/// The id templates had when they were keyed by channel (still read, so templates stored
/// then stay sendable from the channel they were created through).
pub fn legacy_template_id(channel: &ChannelId, name: &str, language: &str) -> String {
    crate::domain::conversation::derived_id("tp_", &["template", channel.as_str(), name, language])
}

fn invalid(message: impl Into<String>) -> Error {
    Error::validation("invalid_template", message)
}

/// Checks a template name: `^[a-z0-9_]{1,512}$`.
pub fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "name must be 1-512 lowercase letters, digits or underscores",
        ))
    }
}

/// Checks a language code: `xx`, `xxx` or `xx_YY` style.
pub fn check_language(language: &str) -> Result<(), Error> {
    let mut parts = language.split('_');
    let lang = parts.next().unwrap_or_default();
    let region = parts.next();
    let ok = (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| {
            (2..=4).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        && parts.next().is_none();
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "language must be a code such as en, en_US or pt_BR",
        ))
    }
}

/// Counts the `{{n}}` placeholders of a text; they must be numbered 1..=n without gaps.
pub fn count_placeholders(text: &str) -> Result<usize, Error> {
    let mut seen = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| invalid("a placeholder is not closed with }}"))?;
        let n: usize = after[..end]
            .trim()
            .parse()
            .map_err(|_| invalid("placeholders must be numbers: {{1}}, {{2}}, …"))?;
        seen.push(n);
        rest = &after[end + 2..];
    }
    seen.sort_unstable();
    seen.dedup();
    if seen.iter().enumerate().any(|(i, n)| *n != i + 1) {
        return Err(invalid(
            "placeholders must be numbered {{1}}, {{2}}, … without gaps",
        ));
    }
    Ok(seen.len())
}

fn text_of<'a>(component: &'a Value, what: &str) -> Result<&'a str, Error> {
    component["text"]
        .as_str()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| invalid(format!("the {what} needs a text")))
}

fn check_length(text: &str, max: usize, what: &str) -> Result<(), Error> {
    if text.chars().count() > max {
        return Err(invalid(format!(
            "the {what} is longer than {max} characters"
        )));
    }
    Ok(())
}

/// Parameter counts of validated components: (header, body).
pub fn check_components(components: &[Value]) -> Result<(usize, usize), Error> {
    let (mut header, mut body, mut footer, mut buttons) = (None, None, false, false);
    for c in components {
        let kind = c["type"]
            .as_str()
            .map(str::to_ascii_uppercase)
            .ok_or_else(|| invalid("every component needs a type"))?;
        match kind.as_str() {
            "HEADER" if header.is_none() => {
                let format = c["format"].as_str().unwrap_or("TEXT").to_ascii_uppercase();
                header = Some(match format.as_str() {
                    "TEXT" => {
                        let text = text_of(c, "header")?;
                        check_length(text, MAX_SHORT_TEXT_CHARS, "header")?;
                        count_placeholders(text)?
                    }
                    "IMAGE" | "VIDEO" | "DOCUMENT" | "LOCATION" => {
                        return Err(Error::validation(
                            "template_unsupported",
                            "media and location headers are not supported yet; use a text header",
                        ));
                    }
                    _ => return Err(invalid("header format must be TEXT")),
                });
            }
            "BODY" if body.is_none() => {
                let text = text_of(c, "body")?;
                check_length(text, MAX_BODY_CHARS, "body")?;
                body = Some(count_placeholders(text)?);
            }
            "FOOTER" if !footer => {
                let text = text_of(c, "footer")?;
                check_length(text, MAX_SHORT_TEXT_CHARS, "footer")?;
                if text.contains("{{") {
                    return Err(invalid("the footer cannot have placeholders"));
                }
                footer = true;
            }
            "BUTTONS" if !buttons => {
                let list = c["buttons"]
                    .as_array()
                    .filter(|b| !b.is_empty() && b.len() <= MAX_BUTTONS)
                    .ok_or_else(|| invalid("buttons must list 1 to 10 buttons"))?;
                for b in list {
                    let t = b["type"].as_str().unwrap_or_default().to_ascii_uppercase();
                    if !matches!(t.as_str(), "QUICK_REPLY" | "URL" | "PHONE_NUMBER") {
                        return Err(invalid(
                            "button type must be QUICK_REPLY, URL or PHONE_NUMBER",
                        ));
                    }
                    let label = text_of(b, "button")?;
                    check_length(label, 25, "button text")?;
                    if b["url"].as_str().is_some_and(|u| u.contains("{{")) {
                        return Err(Error::validation(
                            "template_unsupported",
                            "URL buttons with placeholders are not supported yet; use a fixed URL",
                        ));
                    }
                }
                buttons = true;
            }
            "HEADER" | "BODY" | "FOOTER" | "BUTTONS" => {
                return Err(invalid(format!("only one {kind} component is allowed")));
            }
            other => return Err(invalid(format!("unknown component type {other}"))),
        }
    }
    let body = body.ok_or_else(|| invalid("a template needs a BODY component"))?;
    Ok((header.unwrap_or(0), body))
}

impl NewTemplate {
    /// Checks everything Meta would check before review, so a bad request is a 422 here.
    pub fn validate(&self) -> Result<(usize, usize), Error> {
        check_name(&self.name)?;
        check_language(&self.language)?;
        check_components(&self.components)
    }

    /// The request body of Graph `POST /{waba_id}/message_templates`.
    pub fn graph_body(&self) -> Value {
        json!({
            "name": self.name,
            "language": self.language,
            "category": self.category,
            "components": self.components,
        })
    }
}

/// `template` of a send: which template and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateCall {
    /// Template name.
    pub name: String,
    /// Language code.
    pub language: String,
    /// Values for the placeholders: the header's first, then the body's.
    #[serde(default)]
    pub parameters: Vec<String>,
}

impl Template {
    /// Whether it may be sent now.
    pub fn check_sendable(&self, call: &TemplateCall) -> Result<(), Error> {
        match self.status {
            TemplateStatus::Approved => {}
            other => {
                return Err(Error::validation(
                    "template_not_approved",
                    format!(
                        "template {} ({}) is {}; only APPROVED templates can be sent",
                        self.name,
                        self.language,
                        other.as_str()
                    ),
                ));
            }
        }
        let expected = self.header_parameters + self.body_parameters;
        if call.parameters.len() != expected {
            return Err(Error::validation(
                "template_parameters",
                format!(
                    "template {} takes {expected} parameter(s), {} given",
                    self.name,
                    call.parameters.len()
                ),
            ));
        }
        if call
            .parameters
            .iter()
            .any(|p| p.trim().is_empty() || p.chars().count() > MAX_PARAMETER_CHARS)
        {
            return Err(Error::validation(
                "template_parameters",
                "each parameter must be 1 to 1024 characters",
            ));
        }
        Ok(())
    }

    /// The `components` of a WhatsApp template send.
    pub fn send_components(&self, parameters: &[String]) -> Vec<Value> {
        let text = |p: &String| json!({"type": "text", "text": p});
        let (head, body) = parameters.split_at(self.header_parameters.min(parameters.len()));
        let mut components = Vec::new();
        if !head.is_empty() {
            components.push(
                json!({"type": "header", "parameters": head.iter().map(text).collect::<Vec<_>>()}),
            );
        }
        if !body.is_empty() {
            components.push(
                json!({"type": "body", "parameters": body.iter().map(text).collect::<Vec<_>>()}),
            );
        }
        components
    }

    /// The text the conversation shows for a send: the body with its placeholders filled.
    pub fn rendered_body(&self, parameters: &[String]) -> String {
        let body = self
            .components
            .iter()
            .find(|c| {
                c["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("BODY"))
            })
            .and_then(|c| c["text"].as_str())
            .unwrap_or_default();
        // One pass over the template's own text: a parameter is never read for placeholders.
        let values = parameters.get(self.header_parameters..).unwrap_or_default();
        let mut out = String::with_capacity(body.len());
        let mut rest = body;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                break;
            };
            let value = after[..end]
                .trim()
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| values.get(i));
            out.push_str(&rest[..start]);
            match value {
                Some(v) => out.push_str(v),
                None => out.push_str(&rest[start..start + 2 + end + 2]),
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> Value {
        json!({"type": "BODY", "text": text})
    }

    fn approved(header: usize, body_params: usize) -> Template {
        Template {
            id: "tp_1".into(),
            channel_id: "ch".into(),
            waba_id: Some("102290129340398".into()),
            name: "order_update".into(),
            language: "en_US".into(),
            category: TemplateCategory::Utility,
            status: TemplateStatus::Approved,
            components: vec![
                json!({"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"}),
                body("Hi {{1}}, your order ships {{2}}."),
            ],
            header_parameters: header,
            body_parameters: body_params,
            provider_template_id: None,
            reason: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_template_id_depends_on_the_business_account_not_the_phone_number() {
        let id = template_id("102290129340398", "order_update", "en_US");
        assert_eq!(id, template_id("102290129340398", "order_update", "en_US"));
        assert_ne!(id, template_id("102290129340399", "order_update", "en_US"));
        assert_ne!(id, template_id("102290129340398", "order_update", "pt_BR"));
        let channel = ChannelId::parse("01CHANNEL").unwrap();
        assert_ne!(
            id,
            legacy_template_id(&channel, "order_update", "en_US"),
            "account and channel ids never share a template id"
        );
    }

    #[test]
    fn a_new_template_may_omit_its_channel() {
        let new: NewTemplate = serde_json::from_value(json!({
            "name": "order_update", "language": "en_US", "category": "UTILITY",
            "components": [body("Hi")]
        }))
        .unwrap();
        assert_eq!(new.channel_id, None);
    }

    #[test]
    fn placeholders_are_counted_and_must_be_contiguous() {
        assert_eq!(
            count_placeholders("Hi {{1}}, {{2}} and {{1}} again").unwrap(),
            2
        );
        assert_eq!(count_placeholders("no params").unwrap(), 0);
        assert!(count_placeholders("{{2}} only").is_err());
        assert!(count_placeholders("{{name}}").is_err());
        assert!(count_placeholders("{{1}").is_err());
    }

    #[test]
    fn components_need_one_body_and_known_types() {
        assert_eq!(check_components(&[body("Hi {{1}}")]).unwrap(), (0, 1));
        assert!(check_components(&[]).is_err());
        assert!(check_components(&[body("a"), body("b")]).is_err());
        assert!(check_components(&[json!({"type": "CAROUSEL"}), body("a")]).is_err());
        let footer = json!({"type": "FOOTER", "text": "Reply {{1}}"});
        assert!(check_components(&[body("a"), footer]).is_err());
        let media = json!({"type": "HEADER", "format": "IMAGE"});
        assert_eq!(
            check_components(&[media, body("a")]).unwrap_err().code(),
            "template_unsupported"
        );
        let buttons =
            json!({"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Yes"}]});
        assert!(check_components(&[body("a"), buttons]).is_ok());
    }

    #[test]
    fn names_and_languages_follow_meta_rules() {
        assert!(check_name("order_update_2").is_ok());
        assert!(check_name("Order").is_err());
        assert!(check_name("").is_err());
        assert!(check_language("en_US").is_ok());
        assert!(check_language("pt_BR").is_ok());
        assert!(check_language("de").is_ok());
        assert!(check_language("english").is_err());
        assert!(check_language("en_US_x").is_err());
    }

    #[test]
    fn sends_need_approval_and_the_exact_parameter_count() {
        let t = approved(1, 2);
        let call = |n: usize| TemplateCall {
            name: t.name.clone(),
            language: t.language.clone(),
            parameters: (0..n).map(|i| format!("p{i}")).collect(),
        };
        assert!(t.check_sendable(&call(3)).is_ok());
        assert_eq!(
            t.check_sendable(&call(2)).unwrap_err().code(),
            "template_parameters"
        );
        let pending = Template {
            status: TemplateStatus::Pending,
            ..t.clone()
        };
        assert_eq!(
            pending.check_sendable(&call(3)).unwrap_err().code(),
            "template_not_approved"
        );
    }

    #[test]
    fn header_parameters_come_first() {
        let t = approved(1, 2);
        let params = vec!["A-1".to_owned(), "Ana".to_owned(), "today".to_owned()];
        let c = t.send_components(&params);
        assert_eq!(c[0]["type"], "header");
        assert_eq!(c[0]["parameters"][0]["text"], "A-1");
        assert_eq!(c[1]["parameters"][1]["text"], "today");
        assert_eq!(t.rendered_body(&params), "Hi Ana, your order ships today.");
    }

    #[test]
    fn a_parameter_that_spells_a_placeholder_is_shown_as_written_not_filled_again() {
        let t = approved(0, 2);
        let params = vec!["{{2}}".to_owned(), "today".to_owned()];
        assert_eq!(
            t.rendered_body(&params),
            "Hi {{2}}, your order ships today."
        );
        // Chained parameters must not multiply: 3 parameters of 1,024 characters made a
        // 42 MB text (an item DynamoDB refuses: a 500), each more one 200 times larger.
        let mut t = approved(0, 3);
        t.components = vec![body("{{1}} {{2}} {{3}}")];
        let chain = |n: usize| format!("{{{{{n}}}}}").repeat(1024 / 5);
        let params = vec![chain(2), chain(3), "x".repeat(1024)];
        assert!(t.rendered_body(&params).len() <= 3 * 1024 + 2);
    }

    #[test]
    fn status_names_parse_leniently() {
        assert_eq!(TemplateStatus::parse("approved"), TemplateStatus::Approved);
        assert_eq!(TemplateStatus::parse("IN_APPEAL"), TemplateStatus::Other);
    }
}
