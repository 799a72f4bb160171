//! The Graph API part: WhatsApp Cloud API and Messenger/Instagram Send API messages, and
//! media (templates are in [`super::templates`]).
//!
//! Validation follows Meta's documented request shapes strictly, so a request the sandbox
//! accepts is one Meta would accept; failures name the offending field in `details`
//! (WhatsApp: code 100, or 131009 for a value outside its limits) or the message
//! (Messenger), as Meta does. Answer options (buttons, lists, quick replies) are checked in
//! [`super::options`].

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::faults::{GraphError, graph_error};
use super::options::{Refusal, messenger_quick_replies, whatsapp_interactive};
use super::{Answer, Api, Fault, Sandbox, Sent, detached, query_map, unique};

/// The token the WhatsApp media lookup wants (the test channels' `access_token`).
const MEDIA_TOKEN: &str = "EAAG-test";

const WHATSAPP_TYPES: &[&str] = &[
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "template",
    "location",
    "contacts",
    "interactive",
    "reaction",
];
const WHATSAPP_MEDIA: &[&str] = &["image", "audio", "video", "document", "sticker"];
const WHATSAPP_ROOT_KEYS: &[&str] = &[
    "messaging_product",
    "recipient_type",
    "to",
    "type",
    "context",
    "biz_opaque_callback_data",
];
/// WhatsApp text body limit.
const MAX_WHATSAPP_TEXT: usize = 4096;
/// WhatsApp media caption limit.
const MAX_CAPTION: usize = 1024;
/// `biz_opaque_callback_data` limit.
const MAX_CALLBACK_DATA: usize = 512;

const MESSENGER_ROOT_KEYS: &[&str] = &[
    "recipient",
    "messaging_type",
    "tag",
    "message",
    "sender_action",
    "notification_type",
    "persona_id",
];
const MESSENGER_TAGS: &[&str] = &[
    "HUMAN_AGENT",
    "CONFIRMED_EVENT_UPDATE",
    "POST_PURCHASE_UPDATE",
    "ACCOUNT_UPDATE",
    "CUSTOMER_FEEDBACK",
];
const MESSENGER_ATTACHMENTS: &[&str] = &["image", "audio", "video", "file", "template"];
/// Messenger text limit.
const MAX_MESSENGER_TEXT: usize = 2000;
/// Messenger `message.metadata` limit.
const MAX_METADATA: usize = 1000;

/// What an accepted WhatsApp request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WhatsappSend {
    /// A message; templates are answered with `message_status: accepted`.
    Message {
        /// Whether it was a template.
        template: bool,
    },
    /// `status: read` for an inbound message.
    MarkRead,
}

/// What an accepted Messenger request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MessengerSend {
    /// A message.
    Message,
    /// A sender action (typing, seen).
    SenderAction,
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn non_empty_str<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    match v.as_str() {
        Some(s) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(format!("{what} must not be empty")),
        None => Err(format!("{what} is required and must be a string")),
    }
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{what} is required and must be an object"))
}

fn only_keys(o: &Map<String, Value>, allowed: &[&str], param: &str) -> Result<(), String> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("Unexpected key \"{k}\" on param \"{param}\"")),
        None => Ok(()),
    }
}

fn http_url(v: &Value, what: &str) -> Result<(), String> {
    let url = non_empty_str(v, what)?;
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(format!("{what} must be an http(s) URL"))
    }
}

/// Checks a WhatsApp Cloud API `POST /{phone_number_id}/messages` body; the code and
/// details of the first problem otherwise.
pub(super) fn validate_whatsapp(body: &Value) -> Result<WhatsappSend, Refusal> {
    let root = body.as_object().ok_or("the body must be a JSON object")?;
    if body["messaging_product"] != "whatsapp" {
        return Err("messaging_product must be \"whatsapp\"".into());
    }
    if root.contains_key("status") {
        only_keys(
            root,
            &[
                "messaging_product",
                "status",
                "message_id",
                "typing_indicator",
            ],
            "message",
        )?;
        if body["status"] != "read" {
            return Err("status must be \"read\"".into());
        }
        non_empty_str(&body["message_id"], "message_id")?;
        return Ok(WhatsappSend::MarkRead);
    }
    // Meta's default when `type` is left out.
    let kind = match root.get("type") {
        None => "text",
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err("type must be a string".into()),
    };
    if !WHATSAPP_TYPES.contains(&kind) {
        return Err(format!(
            "Invalid message type \"{kind}\": expected one of {}",
            WHATSAPP_TYPES.join(", ")
        )
        .into());
    }
    if let Some(k) = root
        .keys()
        .find(|k| !WHATSAPP_ROOT_KEYS.contains(&k.as_str()) && k.as_str() != kind)
    {
        return Err(format!("Unexpected key \"{k}\" on param \"message\"").into());
    }
    if let Some(t) = root.get("recipient_type") {
        if t != "individual" {
            return Err("recipient_type must be \"individual\"".into());
        }
    }
    let to = non_empty_str(&body["to"], "to")?;
    // `to` is a phone number (digits, an optional `+`, spaces and dashes as people write
    // them); a business-scoped user id such as `US.1349…` is not one.
    if !to
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'))
    {
        return Err(
            format!("(#100) Invalid parameter: to must be a phone number, not {to:?}").into(),
        );
    }
    if let Some(data) = root.get("biz_opaque_callback_data") {
        let data = data
            .as_str()
            .ok_or("biz_opaque_callback_data must be a string")?;
        if chars(data) > MAX_CALLBACK_DATA {
            return Err(format!(
                "biz_opaque_callback_data is at most {MAX_CALLBACK_DATA} characters"
            )
            .into());
        }
    }
    if let Some(context) = root.get("context") {
        let context = object(context, "context")?;
        only_keys(context, &["message_id"], "context")?;
        non_empty_str(&body["context"]["message_id"], "context.message_id")?;
    }
    // Index the `Value` (absent keys are `Null`), never the `Map` (absent keys panic).
    let value = &body[kind];
    if kind == "contacts" {
        whatsapp_contacts(value)?;
        return Ok(WhatsappSend::Message { template: false });
    }
    let payload = object(value, &format!("the \"{kind}\" object (type {kind})"))?;
    match kind {
        "text" => whatsapp_text(value, payload)?,
        "template" => whatsapp_template(value, payload)?,
        "location" => whatsapp_location(payload)?,
        "interactive" => whatsapp_interactive(value)?,
        "reaction" => {
            only_keys(payload, &["message_id", "emoji"], "reaction")?;
            non_empty_str(&value["message_id"], "reaction.message_id")?;
            // An empty emoji removes the reaction.
            value["emoji"]
                .as_str()
                .ok_or("reaction.emoji is required and must be a string")?;
        }
        media => whatsapp_media(media, payload)?,
    }
    Ok(WhatsappSend::Message {
        template: kind == "template",
    })
}

fn whatsapp_text(value: &Value, text: &Map<String, Value>) -> Result<(), String> {
    only_keys(text, &["body", "preview_url"], "text")?;
    let body = non_empty_str(&value["body"], "text.body")?;
    if chars(body) > MAX_WHATSAPP_TEXT {
        return Err(format!(
            "text.body is at most {MAX_WHATSAPP_TEXT} characters (it has {})",
            chars(body)
        ));
    }
    if text.get("preview_url").is_some_and(|p| !p.is_boolean()) {
        return Err("text.preview_url must be a boolean".into());
    }
    Ok(())
}

/// `link` or `id` of a media object, exactly one.
fn media_source(media: &Map<String, Value>, what: &str) -> Result<(), String> {
    match (media.get("link"), media.get("id")) {
        (Some(link), None) => http_url(link, &format!("{what}.link")),
        (None, Some(id)) => non_empty_str(id, &format!("{what}.id")).map(|_| ()),
        (Some(_), Some(_)) => Err(format!("{what}: only one of link and id may be set")),
        (None, None) => Err(format!("{what}: one of link or id is required")),
    }
}

fn whatsapp_media(kind: &str, media: &Map<String, Value>) -> Result<(), String> {
    debug_assert!(WHATSAPP_MEDIA.contains(&kind));
    only_keys(media, &["link", "id", "caption", "filename"], kind)?;
    media_source(media, kind)?;
    if let Some(caption) = media.get("caption") {
        if !matches!(kind, "image" | "video" | "document") {
            return Err(format!(
                "caption is not allowed on {kind} messages (only image, video and document)"
            ));
        }
        let caption = caption.as_str().ok_or("caption must be a string")?;
        if chars(caption) > MAX_CAPTION {
            return Err(format!("caption is at most {MAX_CAPTION} characters"));
        }
    }
    if let Some(filename) = media.get("filename") {
        if kind != "document" {
            return Err(format!("filename is not allowed on {kind} messages"));
        }
        non_empty_str(filename, "document.filename")?;
    }
    Ok(())
}

fn whatsapp_template(value: &Value, template: &Map<String, Value>) -> Result<(), String> {
    only_keys(template, &["name", "language", "components"], "template")?;
    non_empty_str(&value["name"], "template.name")?;
    object(&value["language"], "template.language")?;
    non_empty_str(&value["language"]["code"], "template.language.code")?;
    let Some(components) = template.get("components") else {
        return Ok(());
    };
    let components = components
        .as_array()
        .ok_or("template.components must be an array")?;
    for (i, component) in components.iter().enumerate() {
        let at = format!("template.components[{i}]");
        object(component, &at)?;
        let kind = component["type"].as_str().map(str::to_ascii_lowercase);
        match kind.as_deref() {
            Some("header" | "body") => {}
            Some("button") => {
                non_empty_str(&component["sub_type"], &format!("{at}.sub_type"))?;
                let index = &component["index"];
                if !(index.is_u64() || index.as_str().is_some_and(|s| s.parse::<u8>().is_ok())) {
                    return Err(format!("{at}.index is required (0..=9)"));
                }
            }
            _ => return Err(format!("{at}.type must be header, body or button")),
        }
        let Some(parameters) = component.get("parameters") else {
            continue;
        };
        let parameters = parameters
            .as_array()
            .ok_or_else(|| format!("{at}.parameters must be an array"))?;
        for (j, parameter) in parameters.iter().enumerate() {
            template_parameter(parameter, &format!("{at}.parameters[{j}]"))?;
        }
    }
    Ok(())
}

fn template_parameter(parameter: &Value, at: &str) -> Result<(), String> {
    object(parameter, at)?;
    let kind = non_empty_str(&parameter["type"], &format!("{at}.type"))?;
    match kind {
        "text" => non_empty_str(&parameter["text"], &format!("{at}.text")).map(|_| ()),
        "payload" => non_empty_str(&parameter["payload"], &format!("{at}.payload")).map(|_| ()),
        "coupon_code" => {
            non_empty_str(&parameter["coupon_code"], &format!("{at}.coupon_code")).map(|_| ())
        }
        "currency" => non_empty_str(
            &parameter["currency"]["fallback_value"],
            &format!("{at}.currency.fallback_value"),
        )
        .map(|_| ()),
        "date_time" => non_empty_str(
            &parameter["date_time"]["fallback_value"],
            &format!("{at}.date_time.fallback_value"),
        )
        .map(|_| ()),
        "image" | "document" | "video" => {
            let media = object(&parameter[kind], &format!("{at}.{kind}"))?;
            media_source(media, &format!("{at}.{kind}"))
        }
        "location" | "action" => object(&parameter[kind], &format!("{at}.{kind}")).map(|_| ()),
        other => Err(format!("{at}.type \"{other}\" is not a parameter type")),
    }
}

fn whatsapp_location(location: &Map<String, Value>) -> Result<(), String> {
    only_keys(
        location,
        &["latitude", "longitude", "name", "address"],
        "location",
    )?;
    for key in ["latitude", "longitude"] {
        let v = &location.get(key).cloned().unwrap_or_default();
        let number = v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()));
        if number.is_none() {
            return Err(format!("location.{key} is required and must be a number"));
        }
    }
    Ok(())
}

fn whatsapp_contacts(contacts: &Value) -> Result<(), String> {
    let contacts = contacts
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or("contacts must be a non-empty array")?;
    for (i, contact) in contacts.iter().enumerate() {
        non_empty_str(
            &contact["name"]["formatted_name"],
            &format!("contacts[{i}].name.formatted_name"),
        )?;
    }
    Ok(())
}

/// The recipient id of a Messenger request (`recipient.id`, a string or a number).
fn messenger_recipient(body: &Value) -> Option<String> {
    match &body["recipient"]["id"] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Checks a Messenger Platform Send API body (Messenger and Instagram); the message of
/// the first problem otherwise.
pub(super) fn validate_messenger(body: &Value) -> Result<MessengerSend, String> {
    let root = body.as_object().ok_or("the body must be a JSON object")?;
    if let Some(k) = root
        .keys()
        .find(|k| !MESSENGER_ROOT_KEYS.contains(&k.as_str()))
    {
        return Err(format!("Param {k} is not a valid parameter"));
    }
    if !root.contains_key("recipient") {
        return Err("The parameter recipient is required".into());
    }
    if messenger_recipient(body).is_none() {
        return Err("param recipient[id] must be a non-empty id".into());
    }
    if let Some(action) = root.get("sender_action") {
        const ACTIONS: &[&str] = &["typing_on", "typing_off", "mark_seen"];
        if !action.as_str().is_some_and(|a| ACTIONS.contains(&a)) {
            return Err(
                "param sender_action must be one of typing_on, typing_off, mark_seen".into(),
            );
        }
        if root.contains_key("message") {
            return Err("sender_action cannot be sent with a message".into());
        }
        return Ok(MessengerSend::SenderAction);
    }
    let messaging_type = match root.get("messaging_type") {
        None => return Err("The parameter messaging_type is required".into()),
        Some(t) => t.as_str().unwrap_or_default(),
    };
    match (messaging_type, root.get("tag")) {
        ("RESPONSE" | "UPDATE", None) => {}
        ("RESPONSE" | "UPDATE", Some(_)) => {
            return Err("param tag is only allowed with messaging_type MESSAGE_TAG".into());
        }
        ("MESSAGE_TAG", None) => {
            return Err("param tag is required when messaging_type is MESSAGE_TAG".into());
        }
        ("MESSAGE_TAG", Some(tag)) => {
            if !tag.as_str().is_some_and(|t| MESSENGER_TAGS.contains(&t)) {
                return Err(format!(
                    "param tag must be one of {}",
                    MESSENGER_TAGS.join(", ")
                ));
            }
        }
        _ => {
            return Err("param messaging_type must be one of RESPONSE, UPDATE, MESSAGE_TAG".into());
        }
    }
    if let Some(n) = root.get("notification_type") {
        if !n
            .as_str()
            .is_some_and(|n| ["REGULAR", "SILENT_PUSH", "NO_PUSH"].contains(&n))
        {
            return Err("param notification_type must be REGULAR, SILENT_PUSH or NO_PUSH".into());
        }
    }
    let Some(message) = root.get("message") else {
        return Err("The parameter message is required".into());
    };
    let message = message
        .as_object()
        .ok_or("param message must be an object")?;
    if let Some(k) = message
        .keys()
        .find(|k| !["text", "attachment", "quick_replies", "metadata"].contains(&k.as_str()))
    {
        return Err(format!("param message[{k}] is not a valid parameter"));
    }
    match (message.get("text"), message.get("attachment")) {
        (Some(text), None) => {
            let text = text
                .as_str()
                .filter(|t| !t.trim().is_empty())
                .ok_or("param message[text] must be a non-empty UTF-8 encoded string")?;
            if chars(text) > MAX_MESSENGER_TEXT {
                return Err(format!(
                    "Length of param message[text] must be less than or equal to {MAX_MESSENGER_TEXT}"
                ));
            }
        }
        (None, Some(attachment)) => messenger_attachment(attachment)?,
        (Some(_), Some(_)) => {
            return Err("Only one of message[text] and message[attachment] may be set".into());
        }
        (None, None) => return Err("param message must have text or attachment".into()),
    }
    if let Some(replies) = message.get("quick_replies") {
        messenger_quick_replies(replies)?;
    }
    if let Some(metadata) = message.get("metadata") {
        let metadata = metadata
            .as_str()
            .ok_or("param message[metadata] must be a string")?;
        if chars(metadata) > MAX_METADATA {
            return Err(format!(
                "Length of param message[metadata] must be less than or equal to {MAX_METADATA}"
            ));
        }
    }
    Ok(MessengerSend::Message)
}

fn messenger_attachment(attachment: &Value) -> Result<(), String> {
    let kind = attachment["type"].as_str().unwrap_or_default();
    if !MESSENGER_ATTACHMENTS.contains(&kind) {
        return Err(format!(
            "param message[attachment][type] must be one of {}",
            MESSENGER_ATTACHMENTS.join(", ")
        ));
    }
    let payload = attachment["payload"]
        .as_object()
        .ok_or("param message[attachment][payload] must be an object")?;
    if kind == "template" {
        non_empty_str(
            &attachment["payload"]["template_type"],
            "param message[attachment][payload][template_type]",
        )?;
        return Ok(());
    }
    match (payload.get("url"), payload.get("attachment_id")) {
        (Some(url), None) => http_url(url, "param message[attachment][payload][url]")?,
        (None, Some(id)) => {
            non_empty_str(id, "param message[attachment][payload][attachment_id]")?;
        }
        _ => {
            return Err(
                "param message[attachment][payload] needs exactly one of url and attachment_id"
                    .into(),
            );
        }
    }
    if payload.get("is_reusable").is_some_and(|r| !r.is_boolean()) {
        return Err("param message[attachment][payload][is_reusable] must be a boolean".into());
    }
    Ok(())
}

/// How a Graph call authenticated: `Authorization: Bearer` or `access_token=`.
pub(super) fn check_token(
    headers: &HeaderMap,
    query: Option<&str>,
    api: Api,
) -> Result<(), Answer> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_owned);
    let token = header.or_else(|| query_map(query).remove("access_token"));
    let unauthorized = |message: &str| {
        graph_error(
            api,
            StatusCode::UNAUTHORIZED,
            GraphError {
                code: 190,
                subcode: None,
                message,
                details: None,
            },
        )
    };
    match token.as_deref() {
        None | Some("") => Err(unauthorized(
            "An active access token must be used to query information about the current user.",
        )),
        Some(t) if t.starts_with("invalid") => Err(unauthorized(
            "Invalid OAuth access token - Cannot parse access token",
        )),
        Some(_) => Ok(()),
    }
}

/// `POST /graph/{account}/messages`.
pub(super) async fn send(
    State(sandbox): State<Sandbox>,
    Path(account): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    detached(sandbox.graph_send(account, headers, query, body)).await
}

impl Sandbox {
    async fn graph_send(
        self,
        account: String,
        headers: HeaderMap,
        query: Option<String>,
        raw: Bytes,
    ) -> Answer {
        let parsed = serde_json::from_slice::<Value>(&raw);
        let body = parsed
            .as_ref()
            .cloned()
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()));
        let api = if body["messaging_product"] == "whatsapp" {
            Api::Whatsapp
        } else {
            Api::Messenger
        };
        let to = match api {
            Api::Whatsapp => body["to"].as_str().unwrap_or_default().to_owned(),
            _ => messenger_recipient(&body).unwrap_or_default(),
        };
        let mut sent = Sent {
            api,
            account: account.clone(),
            to: to.clone(),
            body: body.clone(),
            answer: Answer::json(StatusCode::OK, Value::Null),
            provider_message_id: None,
            injected: false,
            delay_ms: None,
        };
        if let Err(answer) = check_token(&headers, query.as_deref(), api) {
            sent.answer = answer;
            return self.record(sent);
        }
        match self.next_fault(&account, api) {
            Some(Fault::Delay { ms }) => {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                sent.delay_ms = Some(ms);
            }
            Some(fault) => {
                sent.answer = fault.answer(api);
                sent.injected = true;
                return self.record(sent);
            }
            None => {}
        }
        // WhatsApp: Meta's title in the message, the reason in `error_data.details`;
        // Messenger: the reason in the message.
        let invalid = |refusal: Refusal| {
            let (message, details) = match api {
                Api::Whatsapp => (refusal.title().to_owned(), Some(refusal.details)),
                _ => (refusal.details, None),
            };
            graph_error(
                api,
                StatusCode::BAD_REQUEST,
                GraphError {
                    code: refusal.code,
                    subcode: None,
                    message: &message,
                    details: details.as_deref(),
                },
            )
        };
        let parsed = match parsed {
            Ok(v) => v,
            Err(e) => {
                sent.answer = invalid(format!("the body is not JSON: {e}").into());
                return self.record(sent);
            }
        };
        sent.answer = match api {
            Api::Whatsapp => match validate_whatsapp(&parsed) {
                Ok(WhatsappSend::MarkRead) => {
                    Answer::json(StatusCode::OK, json!({"success": true}))
                }
                Ok(WhatsappSend::Message { template }) => {
                    let id = format!("wamid.{}", unique());
                    let mut message = json!({ "id": id });
                    if template {
                        message["message_status"] = json!("accepted");
                    }
                    sent.provider_message_id = Some(id);
                    let wa_id: String = to.chars().filter(char::is_ascii_digit).collect();
                    Answer::json(
                        StatusCode::OK,
                        json!({
                            "messaging_product": "whatsapp",
                            "contacts": [{"input": to, "wa_id": if wa_id.is_empty() { &to } else { &wa_id }}],
                            "messages": [message],
                        }),
                    )
                }
                Err(details) => invalid(details),
            },
            _ => match validate_messenger(&parsed) {
                Ok(MessengerSend::SenderAction) => {
                    Answer::json(StatusCode::OK, json!({"recipient_id": to}))
                }
                Ok(MessengerSend::Message) => {
                    let id = format!("m_{}", unique());
                    sent.provider_message_id = Some(id.clone());
                    Answer::json(
                        StatusCode::OK,
                        json!({"recipient_id": to, "message_id": id}),
                    )
                }
                Err(message) => invalid(message.into()),
            },
        };
        self.record(sent)
    }
}

/// The `Host` the caller used, for URLs pointing back at the sandbox.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// `GET /graph/{media_id}`: WhatsApp's media URL lookup (needs the channel's token); an
/// Instagram account some token was granted is looked up as an account instead
/// ([`super::assets::account`]).
pub(super) async fn media_lookup(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if super::assets::is_account(&sandbox, &id, query.as_deref()) {
        return super::assets::account(&sandbox, &id, query.as_deref(), &headers);
    }
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {MEDIA_TOKEN}"));
    if !authorized {
        return graph_error(
            Api::Whatsapp,
            StatusCode::UNAUTHORIZED,
            GraphError {
                code: 190,
                subcode: None,
                message: "Invalid OAuth access token - Cannot parse access token",
                details: None,
            },
        )
        .into_response();
    }
    let found = sandbox
        .state()
        .files
        .get(&id)
        .map(|f| (sha256_hex(&f.bytes), f.bytes.len(), f.mime.clone()));
    match found {
        Some((sha256, size, mime)) => Answer::json(
            StatusCode::OK,
            json!({
                "url": format!("{}/files/{id}", base_url(&headers)),
                "mime_type": mime,
                "sha256": sha256,
                "file_size": size,
                "id": id,
                "messaging_product": "whatsapp",
            }),
        )
        .into_response(),
        None => Answer::json(
            StatusCode::NOT_FOUND,
            json!({"error": {
                "message": format!("Unsupported get request. Object with ID '{id}' does not exist"),
                "type": "GraphMethodException",
                "code": 100,
                "error_subcode": 33,
                "fbtrace_id": super::trace_id(),
            }}),
        )
        .into_response(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `GET /files/{id}`: the bytes of a stored file.
pub(super) async fn download(State(sandbox): State<Sandbox>, Path(id): Path<String>) -> Response {
    let found = sandbox.state().files.get(&id).cloned();
    match found {
        Some(file) => ([(header::CONTENT_TYPE, file.mime)], file.bytes).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wa(extra: Value) -> Value {
        let mut body = json!({"messaging_product": "whatsapp", "to": "15551234567"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    }

    #[test]
    fn whatsapp_messages_meta_documents_are_accepted() {
        for body in [
            wa(json!({"type": "text", "text": {"body": "hi 👋", "preview_url": false}})),
            wa(json!({"text": {"body": "type defaults to text"}})),
            wa(json!({"recipient_type": "individual", "type": "image",
                "image": {"link": "https://example.com/a.jpg", "caption": "look"}})),
            wa(json!({"type": "audio", "audio": {"id": "1234"}})),
            wa(
                json!({"type": "document", "document": {"id": "1", "filename": "a.pdf", "caption": "c"}}),
            ),
            wa(json!({"type": "sticker", "sticker": {"id": "1"}})),
            wa(
                json!({"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]},
                               {"type": "button", "sub_type": "quick_reply", "index": "0",
                                "parameters": [{"type": "payload", "payload": "yes"}]}]}}),
            ),
            wa(json!({"type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": "👍"}})),
            wa(json!({"type": "location", "location": {"latitude": 1.5, "longitude": -2}})),
            wa(
                json!({"type": "text", "text": {"body": "re"}, "context": {"message_id": "wamid.y"},
                "biz_opaque_callback_data": "tracking"}),
            ),
        ] {
            assert!(
                matches!(validate_whatsapp(&body), Ok(WhatsappSend::Message { .. })),
                "{body}: {:?}",
                validate_whatsapp(&body)
            );
        }
        assert_eq!(
            validate_whatsapp(&json!({"messaging_product": "whatsapp", "status": "read",
                "message_id": "wamid.z"})),
            Ok(WhatsappSend::MarkRead)
        );
    }

    #[test]
    fn whatsapp_messages_meta_would_refuse_are_refused_with_details() {
        let cases = [
            (
                wa(json!({"type": "audio", "audio": {"id": "1", "caption": "no"}})),
                "caption",
            ),
            (
                wa(json!({"type": "sticker", "sticker": {"id": "1", "caption": "no"}})),
                "caption",
            ),
            (
                wa(json!({"type": "image", "image": {"id": "1", "link": "https://x/y"}})),
                "only one",
            ),
            (
                wa(json!({"type": "image", "image": {}})),
                "one of link or id",
            ),
            (
                wa(json!({"type": "text", "text": {"body": ""}})),
                "text.body",
            ),
            (
                wa(json!({"type": "text", "text": {"body": "x".repeat(4097)}})),
                "4096",
            ),
            (wa(json!({"type": "text"})), "\"text\" object"),
            (
                wa(json!({"type": "fax", "fax": {}})),
                "Invalid message type",
            ),
            (
                wa(json!({"type": "template", "template": {"name": "t"}})),
                "language",
            ),
            (
                wa(
                    json!({"type": "template", "template": {"name": "t", "language": {"code": "en"},
                "components": [{"type": "body", "parameters": [{"type": "text"}]}]}}),
                ),
                "text",
            ),
            (
                wa(json!({"type": "text", "text": {"body": "x"}, "extra": 1})),
                "Unexpected key",
            ),
            (
                wa(json!({"type": "text", "text": {"body": "x"},
                "biz_opaque_callback_data": "x".repeat(513)})),
                "512",
            ),
            (
                json!({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}),
                "to",
            ),
        ];
        for (body, needle) in cases {
            let refused = validate_whatsapp(&body).expect_err(&body.to_string());
            assert!(refused.details.contains(needle), "{body}: {refused:?}");
        }
    }

    #[test]
    fn hollow_or_mistyped_objects_are_refused_never_a_panic() {
        for kind in WHATSAPP_TYPES {
            for hollow in [json!({}), json!([]), json!("x"), json!(null), json!([{}])] {
                let body = wa(json!({"type": kind, *kind: hollow}));
                assert!(validate_whatsapp(&body).is_err(), "{body}");
            }
        }
        for junk in [
            json!(null),
            json!([]),
            json!("x"),
            json!({"messaging_product": "whatsapp", "status": 1}),
        ] {
            assert!(validate_whatsapp(&junk).is_err(), "{junk}");
        }
        for message in [
            json!({}),
            json!([]),
            json!({"attachment": {}}),
            json!({"attachment": []}),
            json!({"attachment": {"type": "template", "payload": {}}}),
            json!({"text": 5}),
        ] {
            let body =
                json!({"recipient": {"id": "1"}, "messaging_type": "RESPONSE", "message": message});
            assert!(validate_messenger(&body).is_err(), "{body}");
        }
        for junk in [
            json!(null),
            json!([]),
            json!({"recipient": []}),
            json!({"recipient": {"id": {}}}),
        ] {
            assert!(validate_messenger(&junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn messenger_sends_follow_the_send_api_rules() {
        let ok = [
            json!({"recipient": {"id": "123"}, "messaging_type": "RESPONSE", "message": {"text": "hi"}}),
            json!({"recipient": {"id": 123}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT",
                "message": {"text": "later"}}),
            json!({"recipient": {"id": "1"}, "messaging_type": "UPDATE", "message": {"attachment":
                {"type": "image", "payload": {"url": "https://x/y.jpg", "is_reusable": true}}, "metadata": "m"}}),
            json!({"recipient": {"id": "1"}, "sender_action": "typing_on"}),
        ];
        for body in ok {
            assert!(validate_messenger(&body).is_ok(), "{body}");
        }
        let bad = [
            (
                json!({"messaging_type": "RESPONSE", "message": {"text": "hi"}}),
                "recipient",
            ),
            (
                json!({"recipient": {"id": "1"}, "message": {"text": "hi"}}),
                "messaging_type",
            ),
            (
                json!({"recipient": {"id": "1"}, "messaging_type": "MESSAGE_TAG", "message": {"text": "hi"}}),
                "tag is required",
            ),
            (
                json!({"recipient": {"id": "1"}, "messaging_type": "RESPONSE", "tag": "HUMAN_AGENT",
                "message": {"text": "hi"}}),
                "only allowed",
            ),
            (
                json!({"recipient": {"id": "1"}, "messaging_type": "MESSAGE_TAG", "tag": "SHIPPING",
                "message": {"text": "hi"}}),
                "tag must be",
            ),
            (
                json!({"recipient": {"id": "1"}, "messaging_type": "RESPONSE",
                "message": {"text": "hi", "attachment": {"type": "image", "payload": {"url": "https://x"}}}}),
                "Only one",
            ),
            (
                json!({"recipient": {"id": "1"}, "messaging_type": "RESPONSE", "message": {"text": "x".repeat(2001)}}),
                "2000",
            ),
            (
                json!({"recipient": {"id": "1"}, "messaging_type": "RESPONSE",
                "message": {"attachment": {"type": "sticker", "payload": {}}}}),
                "type",
            ),
            (
                json!({"recipient": {"id": "1"}, "messaging_type": "RESPONSE",
                "message": {"text": "x", "metadata": "m".repeat(1001)}}),
                "1000",
            ),
        ];
        for (body, needle) in bad {
            let message = validate_messenger(&body).expect_err(&body.to_string());
            assert!(message.contains(needle), "{body}: {message}");
        }
    }
}
