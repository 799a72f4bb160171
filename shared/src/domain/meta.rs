//! Meta (WhatsApp, Messenger, Instagram) webhook rules that need no I/O.

use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::Error;
use crate::domain::inbound::{
    CustomerIdentity, InboundMedia, InboundMessage, LifecycleEvent, MessageChange, ParsedWebhook,
    StatusUpdate, Watermark, WebhookItem, from_epoch_millis, from_epoch_seconds, ids_storable,
};
use crate::domain::message::{DeliveryError, DeliveryStatus, Direction, MessageKind};

/// Longest `hub.challenge` echoed back (Meta sends a short number).
const MAX_CHALLENGE_LEN: usize = 1024;

/// The subscription handshake: Meta calls `GET` with `hub.mode=subscribe`, the verify token
/// configured in the app dashboard and a challenge to echo.
///
/// Returns the challenge to answer with (200, plain text). A wrong mode or token is a 403;
/// the token comparison takes the same time wherever the first difference is.
pub fn verify_subscription(
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&str>,
    expected_token: &str,
) -> Result<String, Error> {
    let token_ok = verify_token
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected_token.as_bytes())));
    if mode != Some("subscribe") || !token_ok {
        return Err(Error::Forbidden(
            "hub.mode must be subscribe and hub.verify_token must match".into(),
        ));
    }
    match challenge {
        Some(c) if !c.is_empty() && c.len() <= MAX_CHALLENGE_LEN => Ok(c.to_owned()),
        _ => Err(Error::bad_request(
            "invalid_challenge",
            "hub.challenge is missing or too long",
        )),
    }
}

/// Verifies `X-Hub-Signature-256: sha256=<hex>`: the HMAC-SHA256 of the raw body with the
/// app secret, compared in constant time. Missing, malformed or wrong → 401.
pub fn verify_signature(app_secret: &str, body: &[u8], header: Option<&str>) -> Result<(), Error> {
    use hmac::{Hmac, Mac};
    let unauthorized = || Error::Unauthorized("X-Hub-Signature-256 is missing or wrong".into());
    let hex_sig = header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .ok_or_else(unauthorized)?;
    let expected = hex::decode(hex_sig).map_err(|_| unauthorized())?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes())
        .map_err(|_| Error::Internal("HMAC key".into()))?;
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| unauthorized())
}

/// `sha256=<hex>` for a body: what Meta sends (used by tests and the provider sandbox).
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn text_of(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

fn parse_root(body: &[u8]) -> Result<Value, Error> {
    let root: Value = serde_json::from_slice(body).map_err(|e| {
        Error::bad_request("invalid_json", format!("the webhook body is not JSON: {e}"))
    })?;
    if !root.is_object() {
        return Err(Error::bad_request(
            "invalid_json",
            "the webhook body is not a JSON object",
        ));
    }
    Ok(root)
}

fn entries(root: &Value) -> &[Value] {
    root["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Parses a WhatsApp Cloud API webhook (`object: whatsapp_business_account`): every entry,
/// change, message and status, and template review decisions. Unknown message types become
/// `unsupported`; other change fields (account alerts, …) are skipped.
pub fn parse_whatsapp(body: &[u8]) -> Result<ParsedWebhook, Error> {
    let root = parse_root(body)?;
    let mut out = ParsedWebhook::default();
    for entry in entries(&root) {
        for change in entry["changes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if change["field"] == "message_template_status_update" {
                let value = &change["value"];
                let id = text_of(&value["message_template_id"])
                    .or_else(|| value["message_template_id"].as_u64().map(|n| n.to_string()));
                match (id, text_of(&value["event"])) {
                    (Some(provider_template_id), Some(status))
                        if ids_storable(&[&provider_template_id]) =>
                    {
                        out.template_updates
                            .push(crate::domain::inbound::TemplateStatusUpdate {
                                provider_template_id,
                                status,
                                reason: text_of(&value["reason"]).filter(|r| r != "NONE"),
                            });
                    }
                    _ => out.skipped.push("template update without id or event"),
                }
                continue;
            }
            if !carries_messages(&change["field"]) {
                out.skipped.push("not a messages change");
                continue;
            }
            let value = &change["value"];
            let Some(account) = value["metadata"]["phone_number_id"].as_str() else {
                out.skipped.push("no metadata.phone_number_id");
                continue;
            };
            let contacts = value["contacts"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            for m in value["messages"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                match whatsapp_message(m, contacts, Direction::Inbound) {
                    Some(item) => out.push(account, item),
                    None => out.skipped.push("message without id or sender"),
                }
            }
            // Replies typed in the WhatsApp Business app (coexistence): outbound messages.
            for m in value["message_echoes"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                match whatsapp_message(m, contacts, Direction::Outbound) {
                    Some(item) => out.push(account, item),
                    None => out.skipped.push("echo without id or recipient"),
                }
            }
            for s in value["statuses"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let items = whatsapp_status(s);
                if items.is_empty() {
                    out.skipped
                        .push("status without id, recipient or known status");
                }
                for item in items {
                    out.push(account, item);
                }
            }
        }
    }
    Ok(out)
}

/// The change fields whose `value` carries messages, echoes or statuses.
fn carries_messages(field: &Value) -> bool {
    matches!(field.as_str(), Some("messages" | "smb_message_echoes"))
}

/// The `contacts[]` entry of a customer: matched by phone number or business-scoped user id.
fn whatsapp_contact<'a>(
    contacts: &'a [Value],
    phone: Option<&str>,
    user_id: Option<&str>,
) -> Option<&'a Value> {
    contacts.iter().find(|c| {
        phone.is_some_and(|p| c["wa_id"] == p) || user_id.is_some_and(|u| c["user_id"] == u)
    })
}

/// Who a WhatsApp message is from (inbound) or to (an echo): the phone number when shared,
/// the business-scoped user id, and the username from the matching `contacts[]` entry; and
/// the profile name there.
fn whatsapp_identity(
    m: &Value,
    contacts: &[Value],
    direction: Direction,
) -> (CustomerIdentity, Option<String>) {
    let (phone_field, user_field) = match direction {
        Direction::Inbound => ("from", "from_user_id"),
        _ => ("to", "to_user_id"),
    };
    let phone = text_of(&m[phone_field]);
    let user_id = text_of(&m[user_field]);
    let contact = whatsapp_contact(contacts, phone.as_deref(), user_id.as_deref());
    let identity = CustomerIdentity {
        user_id: user_id.or_else(|| contact.and_then(|c| text_of(&c["user_id"]))),
        username: contact.and_then(|c| text_of(&c["profile"]["username"])),
        phone,
    };
    (
        identity,
        contact.and_then(|c| text_of(&c["profile"]["name"])),
    )
}

fn whatsapp_message(m: &Value, contacts: &[Value], direction: Direction) -> Option<WebhookItem> {
    let id = text_of(&m["id"])?;
    let (identity, customer_name) = whatsapp_identity(m, contacts, direction);
    let customer = identity.key()?.to_owned();
    let kind_name = m["type"].as_str().unwrap_or("");
    let timestamp = from_epoch_seconds(&m["timestamp"]);
    let change = |target: Option<String>, change: MessageChange| {
        Some(WebhookItem::Lifecycle(LifecycleEvent {
            event_id: id.clone(),
            target: target?,
            customer: customer.clone(),
            by: direction,
            change,
            timestamp,
            raw: m.clone(),
        }))
    };
    match kind_name {
        // A reaction changes the message it names; an empty emoji removes it.
        "reaction" => {
            let target = text_of(&m["reaction"]["message_id"]);
            return match text_of(&m["reaction"]["emoji"]) {
                Some(emoji) => change(target, MessageChange::Reacted { emoji }),
                None => change(target, MessageChange::Unreacted),
            };
        }
        "edit" => {
            let e = &m["edit"];
            let inner = &e["message"];
            let inner_type = inner["type"].as_str().unwrap_or("text");
            let text = text_of(&inner["text"]["body"])
                .or_else(|| text_of(&inner[inner_type]["caption"]))
                .or_else(|| text_of(&inner[inner_type]["body"]));
            return change(
                text_of(&e["original_message_id"]),
                MessageChange::Edited { text },
            );
        }
        "revoke" => {
            return change(
                text_of(&m["revoke"]["original_message_id"]),
                MessageChange::Deleted,
            );
        }
        _ => {}
    }
    let media = |part: &Value| InboundMedia {
        provider_media_id: text_of(&part["id"]),
        url: None,
        mime_type: text_of(&part["mime_type"]),
        sha256: text_of(&part["sha256"]),
        filename: text_of(&part["filename"]),
    };
    let (kind, text, media) = match kind_name {
        "text" => (MessageKind::Text, text_of(&m["text"]["body"]), None),
        "image" | "video" | "audio" | "document" | "sticker" => {
            let part = &m[kind_name];
            let kind = match kind_name {
                "image" => MessageKind::Image,
                "video" => MessageKind::Video,
                "audio" => MessageKind::Audio,
                "document" => MessageKind::File,
                _ => MessageKind::Sticker,
            };
            (kind, text_of(&part["caption"]), Some(media(part)))
        }
        "location" => {
            let l = &m["location"];
            let label = [text_of(&l["name"]), text_of(&l["address"])]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            (
                MessageKind::Location,
                Some(label).filter(|s| !s.is_empty()),
                None,
            )
        }
        "contacts" => {
            let names = m["contacts"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|c| text_of(&c["name"]["formatted_name"]))
                .collect::<Vec<_>>()
                .join(", ");
            (
                MessageKind::Contacts,
                Some(names).filter(|s| !s.is_empty()),
                None,
            )
        }
        "interactive" => {
            let i = &m["interactive"];
            let title = text_of(&i["button_reply"]["title"])
                .or_else(|| text_of(&i["list_reply"]["title"]))
                .or_else(|| text_of(&i["nfm_reply"]["body"]));
            (MessageKind::Interactive, title, None)
        }
        "button" => (MessageKind::Button, text_of(&m["button"]["text"]), None),
        "order" => (MessageKind::Order, text_of(&m["order"]["text"]), None),
        "system" => (MessageKind::System, text_of(&m["system"]["body"]), None),
        _ => (MessageKind::Unsupported, None, None),
    };
    Some(WebhookItem::Message(InboundMessage {
        provider_message_id: id,
        customer_name: customer_name.filter(|_| direction == Direction::Inbound),
        customer,
        direction,
        kind,
        text,
        media,
        reply_to: text_of(&m["context"]["id"]),
        timestamp,
        // A system notice (e.g. number changed) is not the customer writing, nor is a
        // reply typed in the business app.
        opens_window: direction == Direction::Inbound && kind != MessageKind::System,
        raw: m.clone(),
        identity,
        standby: false,
    }))
}

/// A WhatsApp status: a delivery status, or `played` (a voice message the customer
/// played: a change to that message, and read). The customer is `recipient_id` (phone) or,
/// for a username without a shared number, `recipient_user_id`.
fn whatsapp_status(s: &Value) -> Vec<WebhookItem> {
    let (Some(id), Some(customer)) = (
        text_of(&s["id"]),
        text_of(&s["recipient_id"]).or_else(|| text_of(&s["recipient_user_id"])),
    ) else {
        return Vec::new();
    };
    let name = s["status"].as_str().unwrap_or("");
    let timestamp = from_epoch_seconds(&s["timestamp"]);
    let played = name == "played";
    let status = if played {
        Some(DeliveryStatus::Read)
    } else {
        DeliveryStatus::parse(name).filter(|st| *st != DeliveryStatus::Pending)
    };
    let Some(status) = status else {
        return Vec::new();
    };
    let error = s["errors"].as_array().and_then(|e| e.first()).map(|e| {
        let code = match &e["code"] {
            Value::Number(n) => n.to_string(),
            Value::String(c) => c.clone(),
            _ => "unknown".to_owned(),
        };
        DeliveryError::explain(&code, e["title"].as_str().or(e["message"].as_str()))
    });
    let error = match (status, error) {
        (DeliveryStatus::Failed, None) => Some(DeliveryError::explain("unknown", None)),
        (_, e) => e,
    };
    let mut items = vec![WebhookItem::Status(StatusUpdate {
        provider_message_id: id.clone(),
        customer: customer.clone(),
        status,
        timestamp,
        error,
        raw: s.clone(),
        reference: s["biz_opaque_callback_data"]
            .as_str()
            .and_then(crate::domain::inbound::parse_reference),
    })];
    if played {
        items.push(WebhookItem::Lifecycle(LifecycleEvent {
            event_id: format!("played:{id}"),
            target: id,
            customer,
            by: Direction::Inbound,
            change: MessageChange::Played,
            timestamp,
            raw: s.clone(),
        }));
    }
    items
}

/// What the Graph API answered to a send: `contacts: [{input, wa_id}]`. Returns the
/// `wa_id` when it differs from the number we sent to (`input`, compared as digits): then
/// the customer will write (and statuses come) from that `wa_id`, which must be linked to
/// the conversation started under `input` (see `CustomerAliases::alias_customer`).
/// Brazilian numbers answered without the ninth digit are the common case.
pub fn whatsapp_answered_wa_id(answer: &Value) -> Option<String> {
    let contact = answer["contacts"].as_array()?.first()?;
    crate::domain::inbound::answered_alias(
        contact["input"].as_str().unwrap_or_default(),
        contact["wa_id"].as_str(),
    )
}

/// Parses a Messenger (`object: page`) or Instagram (`object: instagram`) webhook: every
/// entry and messaging event, and `standby` events (another app owns the thread through
/// the handover protocol: the customer's messages are stored, marked `standby`, and never
/// answered automatically). Echoes sent by `own_app_id` are skipped (we stored them when
/// we sent them); echoes of other apps (Meta's own inbox) are stored as outbound.
pub fn parse_messaging(body: &[u8], own_app_id: Option<&str>) -> Result<ParsedWebhook, Error> {
    let root = parse_root(body)?;
    let mut out = ParsedWebhook::default();
    for entry in entries(&root) {
        let Some(account) =
            text_of(&entry["id"]).or_else(|| entry["id"].as_u64().map(|n| n.to_string()))
        else {
            out.skipped.push("entry without id");
            continue;
        };
        for (field, standby) in [("messaging", false), ("standby", true)] {
            for event in entry[field]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                match messaging_event(event, own_app_id, standby) {
                    Ok(items) => {
                        for item in items {
                            out.push(&account, item);
                        }
                    }
                    Err(reason) => out.skipped.push(reason),
                }
            }
        }
    }
    Ok(out)
}

fn attachment_kind(a: &Value) -> MessageKind {
    match a["type"].as_str().unwrap_or("") {
        "image" => MessageKind::Image,
        "video" | "ig_reel" | "reel" => MessageKind::Video,
        "audio" => MessageKind::Audio,
        "file" => MessageKind::File,
        "story_mention" => MessageKind::StoryMention,
        "share" => MessageKind::Link,
        "sticker" => MessageKind::Sticker,
        "location" => MessageKind::Location,
        _ => MessageKind::Unsupported,
    }
}

/// The provider id of the `index`th attachment of a message: the message's own id for the
/// first (so replies, reactions and edits naming it find it), `<mid>#<index>` for the
/// others (stable, so a re-delivery stores none of them twice).
pub fn attachment_message_id(mid: &str, index: usize) -> String {
    if index == 0 {
        mid.to_owned()
    } else {
        format!("{mid}#{index}")
    }
}

fn messaging_event(
    ev: &Value,
    own_app_id: Option<&str>,
    standby: bool,
) -> Result<Vec<WebhookItem>, &'static str> {
    let sender = text_of(&ev["sender"]["id"]).ok_or("event without sender")?;
    let recipient = text_of(&ev["recipient"]["id"]).unwrap_or_default();
    let timestamp = from_epoch_millis(&ev["timestamp"]);
    let stamp = ev["timestamp"].to_string();
    let message = |id: String, customer: String, direction, kind, text, media, reply_to| {
        WebhookItem::Message(InboundMessage {
            provider_message_id: id,
            customer,
            customer_name: None,
            direction,
            kind,
            text,
            media,
            reply_to,
            timestamp,
            opens_window: direction == Direction::Inbound,
            raw: ev.clone(),
            identity: CustomerIdentity::default(),
            standby,
        })
    };
    let change = |event_id: String, target: String, customer: String, by, change| {
        WebhookItem::Lifecycle(LifecycleEvent {
            event_id,
            target,
            customer,
            by,
            change,
            timestamp,
            raw: ev.clone(),
        })
    };
    if let Some(m) = ev.get("message").filter(|m| m.is_object()) {
        let mid = text_of(&m["mid"]).ok_or("message without mid")?;
        let echo = m["is_echo"] == true;
        if echo {
            let app = match &m["app_id"] {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) => Some(s.clone()),
                _ => None,
            };
            // Our own sends carry our reference in `metadata`: the echo is the provider
            // confirming it (which also settles a send whose outcome was unknown).
            let reference = m["metadata"]
                .as_str()
                .and_then(crate::domain::inbound::parse_reference);
            if let Some(reference) = reference
                && !recipient.is_empty()
            {
                return Ok(vec![WebhookItem::Status(StatusUpdate {
                    provider_message_id: mid,
                    customer: recipient,
                    status: DeliveryStatus::Sent,
                    timestamp,
                    error: None,
                    raw: ev.clone(),
                    reference: Some(reference),
                })]);
            }
            if own_app_id.is_some() && app.as_deref() == own_app_id {
                return Err("echo of our own message");
            }
        }
        let (direction, customer) = if echo {
            (Direction::Outbound, recipient)
        } else {
            (Direction::Inbound, sender)
        };
        if customer.is_empty() {
            return Err("echo without recipient");
        }
        // Instagram reports an unsent message with the original mid and `is_deleted`.
        if m["is_deleted"] == true {
            return Ok(vec![change(
                format!("deleted:{mid}"),
                mid,
                customer,
                direction,
                MessageChange::Deleted,
            )]);
        }
        let reply_to =
            text_of(&m["reply_to"]["mid"]).or_else(|| text_of(&m["reply_to"]["story"]["id"]));
        let attachments = m["attachments"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if m["is_unsupported"] == true || (attachments.is_empty() && m.get("text").is_none()) {
            return Ok(vec![message(
                mid,
                customer,
                direction,
                MessageKind::Unsupported,
                None,
                None,
                reply_to,
            )]);
        }
        if attachments.is_empty() {
            return Ok(vec![message(
                mid,
                customer,
                direction,
                MessageKind::Text,
                text_of(&m["text"]),
                None,
                reply_to,
            )]);
        }
        // Every attachment is a message of its own (each with its media to fetch); the
        // text, if any, goes with the first.
        return Ok(attachments
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let media = InboundMedia {
                    url: text_of(&a["payload"]["url"]),
                    ..InboundMedia::default()
                };
                message(
                    attachment_message_id(&mid, i),
                    customer.clone(),
                    direction,
                    attachment_kind(a),
                    if i == 0 { text_of(&m["text"]) } else { None },
                    Some(media).filter(|m| m.url.is_some()),
                    reply_to.clone(),
                )
            })
            .collect());
    }
    if let Some(e) = ev.get("message_edit").filter(|e| e.is_object()) {
        let mid = text_of(&e["mid"]).ok_or("edit without mid")?;
        let n = e["num_edit"].to_string();
        return Ok(vec![change(
            format!("edit:{mid}:{n}"),
            mid,
            sender,
            Direction::Inbound,
            MessageChange::Edited {
                text: text_of(&e["text"]),
            },
        )]);
    }
    if let Some(p) = ev.get("postback").filter(|p| p.is_object()) {
        // Messenger postbacks may have no mid: sender + timestamp identify a tap.
        let id = text_of(&p["mid"]).unwrap_or_else(|| format!("postback:{sender}:{stamp}"));
        let text = text_of(&p["title"]).or_else(|| text_of(&p["payload"]));
        return Ok(vec![message(
            id,
            sender,
            Direction::Inbound,
            MessageKind::Postback,
            text,
            None,
            None,
        )]);
    }
    if let Some(r) = ev.get("reaction").filter(|r| r.is_object()) {
        let target = text_of(&r["mid"]).ok_or("reaction without mid")?;
        let action = r["action"].as_str().unwrap_or("react");
        let id = format!("reaction:{target}:{sender}:{action}:{stamp}");
        let emoji = text_of(&r["emoji"]).or_else(|| text_of(&r["reaction"]));
        let what = match (action, emoji) {
            ("unreact", _) | (_, None) => MessageChange::Unreacted,
            (_, Some(emoji)) => MessageChange::Reacted { emoji },
        };
        return Ok(vec![change(id, target, sender, Direction::Inbound, what)]);
    }
    if let Some(r) = ev.get("referral").filter(|r| r.is_object()) {
        let id = format!("referral:{sender}:{stamp}");
        return Ok(vec![message(
            id,
            sender,
            Direction::Inbound,
            MessageKind::Referral,
            text_of(&r["ref"]),
            None,
            None,
        )]);
    }
    for (field, status) in [
        ("delivery", DeliveryStatus::Delivered),
        ("read", DeliveryStatus::Read),
    ] {
        if let Some(d) = ev.get(field).filter(|d| d.is_object()) {
            let watermark = from_epoch_millis(&d["watermark"])
                .or(timestamp)
                .ok_or("watermark without time")?;
            // Messenger names delivered messages in `mids`; Instagram's read names one `mid`.
            let mut mids: Vec<String> = d["mids"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(text_of)
                .collect();
            mids.extend(text_of(&d["mid"]));
            return Ok(vec![WebhookItem::Watermark(Watermark {
                customer: sender,
                status,
                watermark,
                mids,
            })]);
        }
    }
    // Handover notices (pass/take thread control) and other documented events carry no
    // message: acknowledged.
    Err("messaging event of an unhandled type")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_review_decisions_are_read_with_their_reason() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1020","time":1,"changes":[
            {"field":"message_template_status_update","value":{"event":"REJECTED","message_template_id":1689556908129832,
             "message_template_name":"promo","message_template_language":"en_US","reason":"INVALID_FORMAT"}},
            {"field":"message_template_status_update","value":{"event":"APPROVED","message_template_id":"77","reason":"NONE"}},
            {"field":"message_template_status_update","value":{"reason":"NONE"}}]}]}"#;
        let parsed = parse_whatsapp(body).unwrap();
        assert_eq!(parsed.template_updates.len(), 2);
        assert_eq!(
            parsed.template_updates[0].provider_template_id,
            "1689556908129832"
        );
        assert_eq!(
            parsed.template_updates[0].reason.as_deref(),
            Some("INVALID_FORMAT")
        );
        assert_eq!(parsed.template_updates[1].reason, None);
        assert_eq!(parsed.skipped.len(), 1);
    }

    #[test]
    fn an_echo_of_our_own_send_is_a_sent_status_with_our_reference() {
        let body = br#"{"object":"page","entry":[{"id":"PAGE","time":1,"messaging":[{"sender":{"id":"PAGE"},
            "recipient":{"id":"PSID"},"timestamp":1795512600000,"message":{"mid":"m_1","is_echo":true,
            "app_id":123,"metadata":"2026-11-24T09:00:00.000Z#01JABC","text":"hi"}}]}]}"#;
        let parsed = parse_messaging(body, None).unwrap();
        let WebhookItem::Status(s) = &parsed.accounts[0].items[0] else {
            panic!("a status, not a stored message")
        };
        assert_eq!(
            (s.status, s.customer.as_str()),
            (DeliveryStatus::Sent, "PSID")
        );
        assert!(s.reference.is_some());
    }

    #[test]
    fn a_status_carries_our_reference_back() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
            "metadata":{"phone_number_id":"10"},"statuses":[{"id":"wamid.A","status":"sent","timestamp":"1",
            "recipient_id":"155","biz_opaque_callback_data":"2026-11-24T09:00:00.000Z#01JABC"}]}}]}]}"#;
        let parsed = parse_whatsapp(body).unwrap();
        let WebhookItem::Status(s) = &parsed.accounts[0].items[0] else {
            panic!("a status")
        };
        assert_eq!(
            s.reference,
            Some(("2026-11-24T09:00:00.000Z".to_owned(), "01JABC".to_owned()))
        );
        assert_eq!(crate::domain::inbound::parse_reference("not#a ref"), None);
    }

    fn whatsapp_value(value: &str) -> Vec<u8> {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"10"}},{value}}}}}]}}]}}"#
        )
        .into_bytes()
    }

    fn items(parsed: &ParsedWebhook) -> &[WebhookItem] {
        &parsed.accounts[0].items
    }

    #[test]
    fn a_whatsapp_user_with_a_username_and_no_number_is_keyed_by_the_user_id() {
        let body = whatsapp_value(
            r#""contacts":[{"profile":{"name":"Jane","username":"@jane"},"user_id":"US.13491208655302741918"}],
            "messages":[{"from_user_id":"US.13491208655302741918","id":"wamid.U1","timestamp":"1795512600","type":"text","text":{"body":"hi"}}]"#,
        );
        let parsed = parse_whatsapp(&body).unwrap();
        assert!(parsed.skipped.is_empty());
        let WebhookItem::Message(m) = &items(&parsed)[0] else {
            panic!("a message")
        };
        assert_eq!(m.customer, "US.13491208655302741918");
        assert_eq!(m.customer_name.as_deref(), Some("Jane"));
        assert_eq!(m.identity.phone, None);
        assert_eq!(m.identity.username.as_deref(), Some("@jane"));
    }

    #[test]
    fn a_whatsapp_number_and_its_user_id_are_kept_together() {
        let body = whatsapp_value(
            r#""contacts":[{"profile":{"name":"Ana","username":"@ana"},"wa_id":"5511988887777","user_id":"BR.1502576394655843"}],
            "messages":[{"from":"5511988887777","from_user_id":"BR.1502576394655843","id":"wamid.P1","timestamp":"1795512600","type":"text","text":{"body":"oi"}}]"#,
        );
        let parsed = parse_whatsapp(&body).unwrap();
        let WebhookItem::Message(m) = &items(&parsed)[0] else {
            panic!("a message")
        };
        assert_eq!(m.customer, "5511988887777");
        assert_eq!(
            m.identity,
            CustomerIdentity {
                phone: Some("5511988887777".into()),
                user_id: Some("BR.1502576394655843".into()),
                username: Some("@ana".into()),
            }
        );
    }

    #[test]
    fn a_status_to_a_username_without_a_number_names_the_user_id() {
        let body = whatsapp_value(
            r#""statuses":[{"id":"wamid.S","status":"delivered","timestamp":"1","recipient_user_id":"US.1349"}]"#,
        );
        let parsed = parse_whatsapp(&body).unwrap();
        let WebhookItem::Status(st) = &items(&parsed)[0] else {
            panic!("a status")
        };
        assert_eq!(st.customer, "US.1349");
    }

    #[test]
    fn the_send_answer_names_a_wa_id_to_link_when_it_differs_from_the_input() {
        let answer = serde_json::json!({"messaging_product":"whatsapp",
            "contacts":[{"input":"5511988887777","wa_id":"551188887777"}],
            "messages":[{"id":"wamid.T","message_status":"accepted"}]});
        assert_eq!(
            whatsapp_answered_wa_id(&answer).as_deref(),
            Some("551188887777")
        );
        let same =
            serde_json::json!({"contacts":[{"input":"+1 555 123 4567","wa_id":"15551234567"}]});
        assert_eq!(whatsapp_answered_wa_id(&same), None);
        assert_eq!(whatsapp_answered_wa_id(&serde_json::json!({})), None);
    }

    #[test]
    fn whatsapp_edits_revokes_and_reactions_change_the_message_they_name() {
        let body = whatsapp_value(
            r#""contacts":[{"profile":{"name":"A"},"wa_id":"155"}],"messages":[
            {"from":"155","id":"wamid.E","timestamp":"2","type":"edit","edit":{"original_message_id":"wamid.O","message":{"type":"text","text":{"body":"fixed"}}}},
            {"from":"155","id":"wamid.R","timestamp":"3","type":"revoke","revoke":{"original_message_id":"wamid.O"}},
            {"from":"155","id":"wamid.X","timestamp":"4","type":"reaction","reaction":{"message_id":"wamid.B","emoji":"\ud83d\udc4d"}},
            {"from":"155","id":"wamid.Y","timestamp":"5","type":"reaction","reaction":{"message_id":"wamid.B","emoji":""}}]"#,
        );
        let parsed = parse_whatsapp(&body).unwrap();
        let changes: Vec<(&str, &MessageChange)> = items(&parsed)
            .iter()
            .map(|i| match i {
                WebhookItem::Lifecycle(c) => (c.target.as_str(), &c.change),
                other => panic!("a change, not {other:?}"),
            })
            .collect();
        assert_eq!(
            changes,
            vec![
                (
                    "wamid.O",
                    &MessageChange::Edited {
                        text: Some("fixed".into())
                    }
                ),
                ("wamid.O", &MessageChange::Deleted),
                (
                    "wamid.B",
                    &MessageChange::Reacted {
                        emoji: "\u{1f44d}".into()
                    }
                ),
                ("wamid.B", &MessageChange::Unreacted),
            ]
        );
    }

    #[test]
    fn a_played_status_reads_and_changes_the_voice_message() {
        let body = whatsapp_value(
            r#""statuses":[{"id":"wamid.V","status":"played","timestamp":"9","recipient_id":"155"}]"#,
        );
        let parsed = parse_whatsapp(&body).unwrap();
        let got = items(&parsed);
        assert!(matches!(&got[0], WebhookItem::Status(s) if s.status == DeliveryStatus::Read));
        assert!(
            matches!(&got[1], WebhookItem::Lifecycle(c) if c.change == MessageChange::Played && c.target == "wamid.V")
        );
    }

    #[test]
    fn replies_typed_in_the_business_app_are_outbound_messages() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"smb_message_echoes","value":{
            "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"10"},
            "message_echoes":[{"from":"15550783881","to":"16505551234","id":"wamid.ECHO","timestamp":"1795512600","type":"text","text":{"body":"On its way"}}]}}]}]}"#;
        let parsed = parse_whatsapp(body).unwrap();
        let WebhookItem::Message(m) = &items(&parsed)[0] else {
            panic!("a message")
        };
        assert_eq!(
            (m.direction, m.customer.as_str(), m.opens_window),
            (Direction::Outbound, "16505551234", false)
        );
        assert_eq!(m.text.as_deref(), Some("On its way"));
    }

    #[test]
    fn every_messenger_attachment_is_a_message_with_its_media() {
        let body = br#"{"object":"page","entry":[{"id":"PAGE","time":1,"messaging":[{"sender":{"id":"PSID"},
            "recipient":{"id":"PAGE"},"timestamp":1795512600000,"message":{"mid":"m_1","attachments":[
            {"type":"image","payload":{"url":"https://cdn.example/a.png"}},
            {"type":"image","payload":{"url":"https://cdn.example/b.png"}},
            {"type":"file","payload":{"url":"https://cdn.example/c.pdf"}}]}}]}]}"#;
        let parsed = parse_messaging(body, None).unwrap();
        let got: Vec<(String, MessageKind, Option<String>)> = items(&parsed)
            .iter()
            .map(|i| match i {
                WebhookItem::Message(m) => (
                    m.provider_message_id.clone(),
                    m.kind,
                    m.media.as_ref().and_then(|x| x.url.clone()),
                ),
                other => panic!("a message, not {other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "m_1".into(),
                    MessageKind::Image,
                    Some("https://cdn.example/a.png".into())
                ),
                (
                    "m_1#1".into(),
                    MessageKind::Image,
                    Some("https://cdn.example/b.png".into())
                ),
                (
                    "m_1#2".into(),
                    MessageKind::File,
                    Some("https://cdn.example/c.pdf".into())
                ),
            ]
        );
    }

    #[test]
    fn messenger_edits_unsends_and_unreactions_are_changes() {
        let body = br#"{"object":"page","entry":[{"id":"PAGE","time":1,"messaging":[
            {"sender":{"id":"PSID"},"recipient":{"id":"PAGE"},"timestamp":1795512600000,"message_edit":{"mid":"m_1","text":"new","num_edit":1}},
            {"sender":{"id":"PSID"},"recipient":{"id":"PAGE"},"timestamp":1795512600001,"reaction":{"mid":"m_2","action":"unreact"}},
            {"sender":{"id":"PSID"},"recipient":{"id":"PAGE"},"timestamp":1795512600002,"message":{"mid":"m_3","is_deleted":true}}]}]}"#;
        let parsed = parse_messaging(body, None).unwrap();
        let got: Vec<(&str, &MessageChange)> = items(&parsed)
            .iter()
            .map(|i| match i {
                WebhookItem::Lifecycle(c) => (c.target.as_str(), &c.change),
                other => panic!("a change, not {other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "m_1",
                    &MessageChange::Edited {
                        text: Some("new".into())
                    }
                ),
                ("m_2", &MessageChange::Unreacted),
                ("m_3", &MessageChange::Deleted),
            ]
        );
    }

    #[test]
    fn standby_messages_are_stored_and_marked() {
        let body = br#"{"object":"page","entry":[{"id":"PAGE","time":1,"standby":[{"sender":{"id":"PSID"},
            "recipient":{"id":"PAGE"},"timestamp":1795512600000,"message":{"mid":"m_s","text":"still there?"}}]}]}"#;
        let parsed = parse_messaging(body, None).unwrap();
        let WebhookItem::Message(m) = &items(&parsed)[0] else {
            panic!("a message")
        };
        assert!(m.standby);
        assert_eq!(m.direction, Direction::Inbound);
        assert_eq!(m.text.as_deref(), Some("still there?"));
    }

    #[test]
    fn matching_handshake_echoes_the_challenge() {
        let got = verify_subscription(Some("subscribe"), Some("tok"), Some("1158201444"), "tok");
        assert_eq!(got.unwrap(), "1158201444");
    }

    #[test]
    fn wrong_token_or_mode_is_forbidden() {
        for (mode, token) in [
            (Some("subscribe"), Some("nope")),
            (Some("subscribe"), None),
            (Some("unsubscribe"), Some("tok")),
            (None, Some("tok")),
            (Some("subscribe"), Some("to")),
        ] {
            let err = verify_subscription(mode, token, Some("1"), "tok").unwrap_err();
            assert_eq!(err.code(), "forbidden");
        }
    }

    #[test]
    fn missing_challenge_is_a_bad_request() {
        let err = verify_subscription(Some("subscribe"), Some("tok"), None, "tok").unwrap_err();
        assert_eq!(err.code(), "invalid_challenge");
    }
}
