//! Messenger and Instagram webhooks (`page`, `instagram`): messaging events, echoes,
//! receipts, changes and standby events.

use serde_json::Value;

use crate::Error;
use crate::adapters::channels::graph::{entries, parse_root, text_of};
use crate::domain::inbound::{
    CustomerIdentity, InboundMedia, InboundMessage, LifecycleEvent, MessageChange, ParsedWebhook,
    StatusUpdate, Watermark, WebhookItem, from_epoch_millis,
};
use crate::domain::message::{DeliveryStatus, Direction, MessageKind};

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

    fn items(parsed: &ParsedWebhook) -> &[WebhookItem] {
        &parsed.accounts[0].items
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
}
