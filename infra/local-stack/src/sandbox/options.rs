//! Answer options checked as Meta checks them: WhatsApp Cloud API interactive reply buttons
//! and lists, and Messenger/Instagram Send API quick replies.
//!
//! Limits (Meta's developer documentation): reply buttons 1–3, a title 1–20 characters and
//! unique, an id 1–256 characters without surrounding spaces and unique, the body 1–1024;
//! a list's `action.button` 1–20, 1–10 sections (a title up to 24, required with more than
//! one), at most 10 rows in total, a row id 1–200 and unique, a row title 1–24, a
//! description up to 72, the body 1–4096; quick replies 1–13, `content_type` one of
//! `text`, `user_phone_number`, `user_email`, a text quick reply with a title of 1–20
//! characters and a payload of up to 1000 (empty only beside an `image_url`).
//!
//! WhatsApp answers a missing or mistyped parameter with `(#100) Invalid parameter` and a
//! value out of its limits with `(#131009) Parameter value is not valid`, the reason in
//! `error_data.details` (e.g. "Button title length invalid. Min length: 1, Max length: 20").
//! Messenger answers `(#100)` with the reason in the message. Meta shortens a quick reply
//! title over 20 characters instead of refusing it; the sandbox refuses it, so a title that
//! customers would see cut is caught in tests.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// `(#100) Invalid parameter`: a parameter missing, mistyped or unknown.
pub(super) const INVALID_PARAMETER: i64 = 100;
/// `(#131009) Parameter value is not valid`: a value outside its limits.
pub(super) const PARAMETER_VALUE_NOT_VALID: i64 = 131_009;

/// Why WhatsApp refuses a message: the Graph error code and `error_data.details`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    /// 100 or 131009.
    pub(super) code: i64,
    /// What is wrong, naming the parameter.
    pub(super) details: String,
}

impl Refusal {
    fn value(details: impl Into<String>) -> Self {
        Self {
            code: PARAMETER_VALUE_NOT_VALID,
            details: details.into(),
        }
    }

    /// Meta's error title for the code.
    pub(super) fn title(&self) -> &'static str {
        if self.code == PARAMETER_VALUE_NOT_VALID {
            "Parameter value is not valid"
        } else {
            "Invalid parameter"
        }
    }
}

impl From<String> for Refusal {
    fn from(details: String) -> Self {
        Self {
            code: INVALID_PARAMETER,
            details,
        }
    }
}

impl From<&str> for Refusal {
    fn from(details: &str) -> Self {
        details.to_owned().into()
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// A required string parameter (`(#100)` when missing or not a string).
fn string<'a>(v: &'a Value, param: &str) -> Result<&'a str, Refusal> {
    v.as_str()
        .ok_or_else(|| format!("The parameter {param} is required and must be a string.").into())
}

/// A string of `min..=max` characters (`(#131009)` otherwise).
fn length(s: &str, what: &str, min: usize, max: usize) -> Result<(), Refusal> {
    if (min..=max).contains(&chars(s.trim())) && chars(s) <= max {
        Ok(())
    } else {
        Err(Refusal::value(format!(
            "{what} length invalid. Min length: {min}, Max length: {max}"
        )))
    }
}

fn only_keys(o: &Map<String, Value>, allowed: &[&str], param: &str) -> Result<(), Refusal> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("Unexpected key \"{k}\" on param \"{param}\"").into()),
        None => Ok(()),
    }
}

fn object<'a>(v: &'a Value, param: &str) -> Result<&'a Map<String, Value>, Refusal> {
    v.as_object()
        .ok_or_else(|| format!("The parameter {param} is required and must be an object.").into())
}

/// Checks the `interactive` object of a `button` or `list` message (other interactive
/// types pass through).
pub(super) fn whatsapp_interactive(interactive: &Value) -> Result<(), Refusal> {
    const KINDS: &[&str] = &[
        "button",
        "list",
        "cta_url",
        "product",
        "product_list",
        "catalog_message",
        "flow",
        "location_request_message",
        "call_permission_request",
    ];
    let kind = string(&interactive["type"], "interactive['type']")?;
    if !KINDS.contains(&kind) {
        return Err(format!("interactive.type \"{kind}\" is not supported").into());
    }
    let root = object(interactive, "interactive")?;
    object(&interactive["action"], "interactive['action']")?;
    match kind {
        "button" => {
            only_keys(
                root,
                &["type", "header", "body", "footer", "action"],
                "interactive",
            )?;
            body_text(interactive, 1024)?;
            reply_buttons(&interactive["action"])
        }
        "list" => {
            only_keys(
                root,
                &["type", "header", "body", "footer", "action"],
                "interactive",
            )?;
            body_text(interactive, 4096)?;
            list_action(&interactive["action"])
        }
        _ => Ok(()),
    }
}

fn body_text(interactive: &Value, max: usize) -> Result<(), Refusal> {
    object(&interactive["body"], "interactive['body']")?;
    let text = string(&interactive["body"]["text"], "interactive['body']['text']")?;
    length(text, "Body text", 1, max)
}

fn reply_buttons(action: &Value) -> Result<(), Refusal> {
    let buttons = action["buttons"].as_array().ok_or(
        "The parameter interactive['action']['buttons'] is required and must be an array.",
    )?;
    if !(1..=3).contains(&buttons.len()) {
        return Err(Refusal::value(
            "Invalid buttons count. Min allowed buttons: 1, Max allowed buttons: 3",
        ));
    }
    let (mut ids, mut titles) = (HashSet::new(), HashSet::new());
    for (i, button) in buttons.iter().enumerate() {
        let at = format!("interactive['action']['buttons'][{i}]");
        let fields = object(button, &at)?;
        only_keys(fields, &["type", "reply"], &at)?;
        if string(&button["type"], &format!("{at}['type']"))? != "reply" {
            return Err(format!("{at}['type'] must be \"reply\"").into());
        }
        let reply = object(&button["reply"], &format!("{at}['reply']"))?;
        only_keys(reply, &["id", "title"], &format!("{at}['reply']"))?;
        let id = string(&button["reply"]["id"], &format!("{at}['reply']['id']"))?;
        length(id, "Button id", 1, 256)?;
        if id.trim() != id {
            return Err(Refusal::value(
                "Button id cannot have leading or trailing spaces",
            ));
        }
        let title = string(
            &button["reply"]["title"],
            &format!("{at}['reply']['title']"),
        )?;
        length(title, "Button title", 1, 20)?;
        if !ids.insert(id) {
            return Err(Refusal::value(format!("Duplicate button id: {id}")));
        }
        if !titles.insert(title) {
            return Err(Refusal::value(format!("Duplicate button title: {title}")));
        }
    }
    Ok(())
}

fn list_action(action: &Value) -> Result<(), Refusal> {
    let fields = object(action, "interactive['action']")?;
    only_keys(fields, &["button", "sections"], "interactive['action']")?;
    let button = string(&action["button"], "interactive['action']['button']")?;
    length(button, "Button text", 1, 20)?;
    let sections = action["sections"].as_array().ok_or(
        "The parameter interactive['action']['sections'] is required and must be an array.",
    )?;
    if !(1..=10).contains(&sections.len()) {
        return Err(Refusal::value(
            "interactive.action.sections must hold 1 to 10 sections",
        ));
    }
    let mut ids = HashSet::new();
    let mut total = 0;
    for (s, section) in sections.iter().enumerate() {
        let at = format!("interactive['action']['sections'][{s}]");
        let fields = object(section, &at)?;
        only_keys(fields, &["title", "rows"], &at)?;
        match &section["title"] {
            Value::Null if sections.len() > 1 => {
                return Err(format!(
                    "The parameter {at}['title'] is required when there is more than one section."
                )
                .into());
            }
            Value::Null => {}
            title => length(
                string(title, &format!("{at}['title']"))?,
                "Section title",
                1,
                24,
            )?,
        }
        let rows = section["rows"].as_array().ok_or_else(|| {
            Refusal::from(format!(
                "The parameter {at}['rows'] is required and must be an array."
            ))
        })?;
        if rows.is_empty() {
            return Err(Refusal::value(format!(
                "{at}['rows'] must hold at least 1 row"
            )));
        }
        total += rows.len();
        if total > 10 {
            return Err(Refusal::value(
                "Total row count exceed max allowed count: 10",
            ));
        }
        for (r, row) in rows.iter().enumerate() {
            let at = format!("{at}['rows'][{r}]");
            let fields = object(row, &at)?;
            only_keys(fields, &["id", "title", "description"], &at)?;
            let id = string(&row["id"], &format!("{at}['id']"))?;
            length(id, "Row id", 1, 200)?;
            length(
                string(&row["title"], &format!("{at}['title']"))?,
                "Row title",
                1,
                24,
            )?;
            if let Some(d) = fields.get("description") {
                let d = string(d, &format!("{at}['description']"))?;
                if chars(d) > 72 {
                    return Err(Refusal::value(
                        "Row description length invalid. Min length: 0, Max length: 72",
                    ));
                }
            }
            if !ids.insert(id) {
                return Err(Refusal::value(format!("Duplicate row id: {id}")));
            }
        }
    }
    Ok(())
}

/// Most quick replies in one message.
const MAX_QUICK_REPLIES: usize = 13;
/// Longest quick reply title, in characters.
const MAX_QUICK_REPLY_TITLE: usize = 20;
/// Longest quick reply payload, in characters.
const MAX_QUICK_REPLY_PAYLOAD: usize = 1000;

/// Checks `message.quick_replies` of a Send API body (Messenger and Instagram); the message
/// of Meta's `(#100)` otherwise.
pub(super) fn messenger_quick_replies(replies: &Value) -> Result<(), String> {
    let replies = replies
        .as_array()
        .ok_or("param message[quick_replies] must be an array")?;
    if replies.is_empty() || replies.len() > MAX_QUICK_REPLIES {
        return Err(format!(
            "param message[quick_replies] must have 1 to {MAX_QUICK_REPLIES} items"
        ));
    }
    for (i, reply) in replies.iter().enumerate() {
        let at = format!("param message[quick_replies][{i}]");
        let fields = reply
            .as_object()
            .ok_or_else(|| format!("{at} must be an object"))?;
        if let Some(k) = fields
            .keys()
            .find(|k| !["content_type", "title", "payload", "image_url"].contains(&k.as_str()))
        {
            return Err(format!("{at}[{k}] is not a valid parameter"));
        }
        let content_type = match fields.get("content_type") {
            None => return Err(format!("{at}[content_type] is required")),
            Some(t) => t.as_str().unwrap_or_default(),
        };
        match content_type {
            "text" => text_quick_reply(fields, &at)?,
            "user_phone_number" | "user_email" => {}
            _ => {
                return Err(format!(
                    "{at}[content_type] must be one of text, user_phone_number, user_email"
                ));
            }
        }
    }
    Ok(())
}

fn text_quick_reply(fields: &Map<String, Value>, at: &str) -> Result<(), String> {
    let image = match fields.get("image_url") {
        None => false,
        Some(url) => {
            let url = url.as_str().unwrap_or_default();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!("{at}[image_url] must be an http(s) URL"));
            }
            true
        }
    };
    let title = fields
        .get("title")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| format!("{at}[title] is required for a text quick reply"))?;
    if chars(title) > MAX_QUICK_REPLY_TITLE {
        return Err(format!(
            "{at}[title] has a {MAX_QUICK_REPLY_TITLE} character limit (Meta would cut it short)"
        ));
    }
    let payload = match fields.get("payload") {
        Some(Value::String(p)) => p.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(format!("{at}[payload] must be a string or a number")),
        None => return Err(format!("{at}[payload] is required for a text quick reply")),
    };
    if payload.is_empty() && !image {
        return Err(format!("{at}[payload] may be empty only with an image_url"));
    }
    if chars(&payload) > MAX_QUICK_REPLY_PAYLOAD {
        return Err(format!(
            "{at}[payload] has a {MAX_QUICK_REPLY_PAYLOAD} character limit"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "options_tests.rs"]
mod tests;
