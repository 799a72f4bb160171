//! FAQ entries (canned replies, SPEC §7): their bounds, their search, and the
//! placeholders they are filled with for a conversation.
//!
//! Bounds (ours, sized for a reply an agent sends as one chat message): `title` 1–200
//! characters (trimmed, one line), `text` 1–4,096 characters (not blank; line breaks and
//! tabs allowed, no other control characters), `shortcut` 1–40 of `a-z 0-9 _ -`, unique
//! within the tenant. A tenant holds at most [`CATALOG_MAX`] entries, so its whole catalog
//! is one partition query (search reads it with a filter).
//!
//! Placeholders are exactly `{{customer.name}}`, `{{customer.phone}}`, `{{agent.name}}`
//! and `{{business.name}}`, with optional whitespace inside the braces
//! (`{{ customer.name }}`), names case-sensitive. Anything else between `{{` and the next
//! `}}`, a `{{` never closed, or a `{{` inside a placeholder is refused at save time with
//! `422 unknown_placeholder`. A single `{`, `}` or a lone `}}` is plain text.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::domain::channel::ChannelType;
use crate::domain::text::fold;
use crate::domain::time::serialize_rfc3339;

/// Longest title, in characters.
pub const TITLE_MAX: usize = 200;
/// Longest text, in characters.
pub const TEXT_MAX: usize = 4096;
/// Longest shortcut, in characters.
pub const SHORTCUT_MAX: usize = 40;
/// Most FAQ entries per tenant: keeps a search to one bounded partition query.
pub const CATALOG_MAX: u32 = 1000;
/// Longest search query (`?q=`), in characters.
pub const QUERY_MAX: usize = 200;
/// Longest piece of an unknown placeholder quoted back in an error, in characters.
const QUOTE_MAX: usize = 40;

/// A value an FAQ text can be filled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `{{customer.name}}`: the conversation's customer name.
    CustomerName,
    /// `{{customer.phone}}`: the customer's phone (see [`CustomerContact::display_phone`]).
    CustomerPhone,
    /// `{{agent.name}}`: the calling agent's name in the directory.
    AgentName,
    /// `{{business.name}}`: the tenant settings' business name.
    BusinessName,
}

impl Placeholder {
    /// Every placeholder.
    pub const ALL: [Self; 4] = [
        Self::CustomerName,
        Self::CustomerPhone,
        Self::AgentName,
        Self::BusinessName,
    ];

    /// The name between the braces.
    pub fn name(self) -> &'static str {
        match self {
            Self::CustomerName => "customer.name",
            Self::CustomerPhone => "customer.phone",
            Self::AgentName => "agent.name",
            Self::BusinessName => "business.name",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// A piece of an FAQ text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Text(&'a str),
    Placeholder(Placeholder),
    /// `{{…}}` naming no placeholder (the whole thing, braces included).
    Unknown(&'a str),
    /// A `{{` with no `}}` after it (from the braces to the end).
    Unclosed(&'a str),
}

/// Splits a text into plain text and placeholders. `{` is ASCII, so byte offsets found
/// by searching for `{{`/`}}` are always character boundaries.
fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(Token::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push(Token::Unclosed(&rest[open..]));
            return out;
        };
        let inner = &after[..close];
        let whole = &rest[open..open + 2 + close + 2];
        let token = match Placeholder::parse(inner.trim()) {
            Some(p) if !inner.contains("{{") => Token::Placeholder(p),
            _ => Token::Unknown(whole),
        };
        out.push(token);
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        out.push(Token::Text(rest));
    }
    out
}

fn quote(fragment: &str) -> String {
    let mut q: String = fragment.chars().take(QUOTE_MAX).collect();
    if fragment.chars().nth(QUOTE_MAX).is_some() {
        q.push('…');
    }
    q
}

/// Checks that every `{{…}}` of `text` is a known placeholder.
///
/// # Errors
/// `422 unknown_placeholder` quoting the first offending `{{…}}` (or unclosed `{{…`).
pub fn check_placeholders(text: &str) -> Result<(), Error> {
    let allowed = Placeholder::ALL
        .iter()
        .map(|p| format!("{{{{{}}}}}", p.name()))
        .collect::<Vec<_>>()
        .join(", ");
    for token in tokens(text) {
        match token {
            Token::Unknown(raw) => {
                return Err(Error::validation(
                    "unknown_placeholder",
                    format!("unknown placeholder {}; known: {allowed}", quote(raw)),
                ));
            }
            Token::Unclosed(raw) => {
                return Err(Error::validation(
                    "unknown_placeholder",
                    format!(
                        "unclosed placeholder {}; close it with }}}} (known: {allowed})",
                        quote(raw)
                    ),
                ));
            }
            Token::Text(_) | Token::Placeholder(_) => {}
        }
    }
    Ok(())
}

/// What placeholders are filled with; `None` renders as empty text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderValues {
    /// `{{customer.name}}`.
    pub customer_name: Option<String>,
    /// `{{customer.phone}}`.
    pub customer_phone: Option<String>,
    /// `{{agent.name}}`.
    pub agent_name: Option<String>,
    /// `{{business.name}}`.
    pub business_name: Option<String>,
}

impl RenderValues {
    fn get(&self, p: Placeholder) -> &str {
        let value = match p {
            Placeholder::CustomerName => &self.customer_name,
            Placeholder::CustomerPhone => &self.customer_phone,
            Placeholder::AgentName => &self.agent_name,
            Placeholder::BusinessName => &self.business_name,
        };
        value.as_deref().unwrap_or("")
    }
}

/// `text` with its placeholders filled. A missing value is empty text; anything that is
/// not a placeholder (only in texts saved before a rule changed) is dropped, never shown
/// as raw braces. Values are inserted as they are: a value containing `{{…}}` is not
/// filled again.
pub fn render(text: &str, values: &RenderValues) -> String {
    let mut out = String::with_capacity(text.len());
    for token in tokens(text) {
        match token {
            Token::Text(t) => out.push_str(t),
            Token::Placeholder(p) => out.push_str(values.get(p)),
            Token::Unknown(_) | Token::Unclosed(_) => {}
        }
    }
    out
}

/// A shortcut: 1–40 characters of `a-z 0-9 _ -` (typed after `/` in the composer).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Shortcut(String);

impl Shortcut {
    /// Parses a shortcut.
    ///
    /// # Errors
    /// `422 invalid_shortcut`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        if value.is_empty() || value.len() > SHORTCUT_MAX || !value.chars().all(ok) {
            return Err(Error::validation(
                "invalid_shortcut",
                format!(
                    "shortcut must be 1-{SHORTCUT_MAX} characters of lowercase letters, digits, '_' and '-'"
                ),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The shortcut.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `POST /faqs` and `PUT /faqs/{id}` body: `{"title", "text", "shortcut"?}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaqInput {
    /// Title.
    pub title: String,
    /// Text with placeholders.
    pub text: String,
    /// Optional shortcut (`null` or left out: none).
    #[serde(default)]
    pub shortcut: Option<String>,
}

/// A checked FAQ body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaqDraft {
    /// Trimmed title.
    pub title: String,
    /// Text, as written.
    pub text: String,
    /// Shortcut.
    pub shortcut: Option<Shortcut>,
}

impl FaqInput {
    /// Checks the body.
    ///
    /// # Errors
    /// All `422`: `invalid_title`, `invalid_text`, `invalid_shortcut` (see the module
    /// bounds), `unknown_placeholder` (see [`check_placeholders`]).
    pub fn parse(self) -> Result<FaqDraft, Error> {
        let title = self.title.trim();
        let count = title.chars().count();
        if count == 0 || count > TITLE_MAX || title.chars().any(char::is_control) {
            return Err(Error::validation(
                "invalid_title",
                format!("title must be 1-{TITLE_MAX} characters on one line"),
            ));
        }
        let text_ok = |c: char| !c.is_control() || matches!(c, '\n' | '\r' | '\t');
        if self.text.trim().is_empty()
            || self.text.chars().count() > TEXT_MAX
            || !self.text.chars().all(text_ok)
        {
            return Err(Error::validation(
                "invalid_text",
                format!(
                    "text must be 1-{TEXT_MAX} characters, not blank, without control characters other than line breaks and tabs"
                ),
            ));
        }
        check_placeholders(&self.text)?;
        let shortcut = self.shortcut.as_deref().map(Shortcut::parse).transpose()?;
        Ok(FaqDraft {
            title: title.to_owned(),
            text: self.text,
            shortcut,
        })
    }
}

/// An FAQ entry: `{id, title, text, shortcut, created_at, updated_at}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Faq {
    /// A ULID (entries list oldest first).
    pub id: String,
    /// Title.
    pub title: String,
    /// Text with placeholders.
    pub text: String,
    /// Shortcut, or `null`.
    pub shortcut: Option<Shortcut>,
    /// Created.
    #[serde(serialize_with = "serialize_rfc3339")]
    pub created_at: DateTime<Utc>,
    /// Last replaced.
    #[serde(serialize_with = "serialize_rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl Faq {
    /// What a search looks in: title, shortcut and text, each [`fold`]ed, joined by a
    /// line break (which folded text and queries never contain, so no match spans two
    /// fields).
    pub fn search_text(&self) -> String {
        let shortcut = self.shortcut.as_ref().map_or("", Shortcut::as_str);
        [fold(&self.title), fold(shortcut), fold(&self.text)].join("\n")
    }
}

/// A search (`?q=`), folded like the text it is looked for in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaqQuery(String);

impl FaqQuery {
    /// `None` when there is nothing to search for (absent or blank: list everything).
    ///
    /// # Errors
    /// `400 invalid_query` when longer than [`QUERY_MAX`] characters.
    pub fn parse(q: Option<&str>) -> Result<Option<Self>, Error> {
        let Some(q) = q else { return Ok(None) };
        if q.chars().count() > QUERY_MAX {
            return Err(Error::bad_request(
                "invalid_query",
                format!("q must be at most {QUERY_MAX} characters"),
            ));
        }
        let folded = fold(q);
        Ok((!folded.is_empty()).then_some(Self(folded)))
    }

    /// The folded query: a substring of [`Faq::search_text`] when it matches.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the entry matches.
    pub fn matches(&self, faq: &Faq) -> bool {
        faq.search_text().contains(&self.0)
    }
}

/// What rendering reads of a customer's own item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerContact {
    /// Profile or edited name.
    pub name: Option<String>,
    /// A phone an agent recorded (E.164).
    pub phone: Option<String>,
    /// WhatsApp: the number the provider gave (digits, no `+`).
    pub wa_id: Option<String>,
    /// The provider's id of the customer.
    pub external_id: Option<String>,
    /// The channel the customer wrote on.
    pub channel_type: Option<ChannelType>,
}

impl CustomerContact {
    /// `{{customer.phone}}`: the recorded `phone`, else for WhatsApp `+<wa_id>` (or the
    /// provider id when it is a number); `None` otherwise (Messenger, Instagram and
    /// WeChat ids are not phone numbers).
    pub fn display_phone(&self) -> Option<String> {
        fn present(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        if let Some(phone) = present(&self.phone) {
            return Some(phone.to_owned());
        }
        if self.channel_type != Some(ChannelType::Whatsapp) {
            return None;
        }
        let number = |v: &str| v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit());
        present(&self.wa_id)
            .or(present(&self.external_id))
            .filter(|v| number(v))
            .map(|v| format!("+{v}"))
    }
}

#[cfg(test)]
#[path = "faq_tests.rs"]
mod tests;
