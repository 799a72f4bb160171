//! Meta (WhatsApp, Messenger, Instagram) webhook rules that need no I/O.

use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::Error;
use crate::domain::inbound::{
    InboundMedia, InboundMessage, ParsedWebhook, StatusUpdate, Watermark, WebhookItem,
    from_epoch_millis, from_epoch_seconds, ids_storable,
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
            if change["field"] != "messages" {
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
            let name_of = |wa_id: &str| {
                contacts
                    .iter()
                    .find(|c| c["wa_id"] == wa_id)
                    .and_then(|c| text_of(&c["profile"]["name"]))
            };
            for m in value["messages"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                match whatsapp_message(m, &name_of) {
                    Some(msg) => out.push(account, WebhookItem::Message(msg)),
                    None => out.skipped.push("message without id or sender"),
                }
            }
            for s in value["statuses"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                match whatsapp_status(s) {
                    Some(st) => out.push(account, WebhookItem::Status(st)),
                    None => out
                        .skipped
                        .push("status without id, recipient or known status"),
                }
            }
        }
    }
    Ok(out)
}

fn whatsapp_message(m: &Value, name_of: &dyn Fn(&str) -> Option<String>) -> Option<InboundMessage> {
    let id = text_of(&m["id"])?;
    let from = text_of(&m["from"])?;
    let kind_name = m["type"].as_str().unwrap_or("");
    let media = |part: &Value| InboundMedia {
        provider_media_id: text_of(&part["id"]),
        url: None,
        mime_type: text_of(&part["mime_type"]),
        sha256: text_of(&part["sha256"]),
        filename: text_of(&part["filename"]),
    };
    let (kind, text, media, reply_to) = match kind_name {
        "text" => (MessageKind::Text, text_of(&m["text"]["body"]), None, None),
        "image" | "video" | "audio" | "document" | "sticker" => {
            let part = &m[kind_name];
            let kind = match kind_name {
                "image" => MessageKind::Image,
                "video" => MessageKind::Video,
                "audio" => MessageKind::Audio,
                "document" => MessageKind::File,
                _ => MessageKind::Sticker,
            };
            (kind, text_of(&part["caption"]), Some(media(part)), None)
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
                None,
            )
        }
        "interactive" => {
            let i = &m["interactive"];
            let title = text_of(&i["button_reply"]["title"])
                .or_else(|| text_of(&i["list_reply"]["title"]))
                .or_else(|| text_of(&i["nfm_reply"]["body"]));
            (MessageKind::Interactive, title, None, None)
        }
        "button" => (
            MessageKind::Button,
            text_of(&m["button"]["text"]),
            None,
            None,
        ),
        "reaction" => (
            MessageKind::Reaction,
            text_of(&m["reaction"]["emoji"]),
            None,
            text_of(&m["reaction"]["message_id"]),
        ),
        "order" => (MessageKind::Order, text_of(&m["order"]["text"]), None, None),
        "system" => (
            MessageKind::System,
            text_of(&m["system"]["body"]),
            None,
            None,
        ),
        _ => (MessageKind::Unsupported, None, None, None),
    };
    Some(InboundMessage {
        provider_message_id: id,
        customer_name: name_of(&from),
        customer: from,
        direction: Direction::Inbound,
        kind,
        text,
        media,
        reply_to: reply_to.or_else(|| text_of(&m["context"]["id"])),
        timestamp: from_epoch_seconds(&m["timestamp"]),
        // A system notice (e.g. number changed) is not the customer writing.
        opens_window: kind != MessageKind::System,
        raw: m.clone(),
    })
}

fn whatsapp_status(s: &Value) -> Option<StatusUpdate> {
    let status = DeliveryStatus::parse(s["status"].as_str()?)?;
    if status == DeliveryStatus::Pending {
        return None;
    }
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
    Some(StatusUpdate {
        provider_message_id: text_of(&s["id"])?,
        customer: text_of(&s["recipient_id"])?,
        status,
        timestamp: from_epoch_seconds(&s["timestamp"]),
        error,
        raw: s.clone(),
        reference: s["biz_opaque_callback_data"]
            .as_str()
            .and_then(crate::domain::inbound::parse_reference),
    })
}

/// Parses a Messenger (`object: page`) or Instagram (`object: instagram`) webhook: every
/// entry and messaging event. Echoes sent by `own_app_id` are skipped (we stored them when
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
        for event in entry["messaging"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            match messaging_event(event, own_app_id) {
                Ok(item) => out.push(&account, item),
                Err(reason) => out.skipped.push(reason),
            }
        }
    }
    Ok(out)
}

fn messaging_event(ev: &Value, own_app_id: Option<&str>) -> Result<WebhookItem, &'static str> {
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
                return Ok(WebhookItem::Status(StatusUpdate {
                    provider_message_id: mid,
                    customer: recipient,
                    status: DeliveryStatus::Sent,
                    timestamp,
                    error: None,
                    raw: ev.clone(),
                    reference: Some(reference),
                }));
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
        let attachments = m["attachments"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let (kind, media) = if m["is_deleted"] == true || m["is_unsupported"] == true {
            (MessageKind::Unsupported, None)
        } else if let Some(first) = attachments.first() {
            let kind = match first["type"].as_str().unwrap_or("") {
                "image" => MessageKind::Image,
                "video" | "ig_reel" | "reel" => MessageKind::Video,
                "audio" => MessageKind::Audio,
                "file" => MessageKind::File,
                "story_mention" => MessageKind::StoryMention,
                "share" => MessageKind::Link,
                _ => MessageKind::Unsupported,
            };
            let media = InboundMedia {
                url: text_of(&first["payload"]["url"]),
                ..InboundMedia::default()
            };
            (kind, Some(media).filter(|m| m.url.is_some()))
        } else if m.get("text").is_some() {
            (MessageKind::Text, None)
        } else {
            (MessageKind::Unsupported, None)
        };
        let reply_to =
            text_of(&m["reply_to"]["mid"]).or_else(|| text_of(&m["reply_to"]["story"]["id"]));
        return Ok(message(
            mid,
            customer,
            direction,
            kind,
            text_of(&m["text"]),
            media,
            reply_to,
        ));
    }
    if let Some(p) = ev.get("postback").filter(|p| p.is_object()) {
        // Messenger postbacks may have no mid: sender + timestamp identify a tap.
        let id = text_of(&p["mid"]).unwrap_or_else(|| format!("postback:{sender}:{stamp}"));
        let text = text_of(&p["title"]).or_else(|| text_of(&p["payload"]));
        return Ok(message(
            id,
            sender,
            Direction::Inbound,
            MessageKind::Postback,
            text,
            None,
            None,
        ));
    }
    if let Some(r) = ev.get("reaction").filter(|r| r.is_object()) {
        let target = text_of(&r["mid"]);
        let action = r["action"].as_str().unwrap_or("react");
        let id = format!(
            "reaction:{}:{sender}:{action}:{stamp}",
            target.as_deref().unwrap_or("-")
        );
        let text = match action {
            "unreact" => None,
            _ => text_of(&r["emoji"]).or_else(|| text_of(&r["reaction"])),
        };
        return Ok(message(
            id,
            sender,
            Direction::Inbound,
            MessageKind::Reaction,
            text,
            None,
            target,
        ));
    }
    if let Some(r) = ev.get("referral").filter(|r| r.is_object()) {
        let id = format!("referral:{sender}:{stamp}");
        return Ok(message(
            id,
            sender,
            Direction::Inbound,
            MessageKind::Referral,
            text_of(&r["ref"]),
            None,
            None,
        ));
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
            return Ok(WebhookItem::Watermark(Watermark {
                customer: sender,
                status,
                watermark,
                mids,
            }));
        }
    }
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
