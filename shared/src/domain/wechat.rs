//! WeChat Official Account message push (plaintext mode): signatures and XML messages.

use std::collections::BTreeMap;

use quick_xml::Reader;
use quick_xml::events::Event;
use serde_json::Value;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::Error;
use crate::domain::inbound::{
    InboundMedia, InboundMessage, ParsedWebhook, WebhookItem, from_epoch_seconds,
};
use crate::domain::message::{Direction, MessageKind};

/// Most fields a WeChat message may have (real ones have about ten).
const MAX_FIELDS: usize = 64;
/// Deepest element nesting accepted (WeChat nests one level, e.g. `ScanCodeInfo`).
const MAX_DEPTH: usize = 4;

/// The signature WeChat puts in the query: sha1 of token, timestamp and nonce sorted and
/// concatenated, in lower-case hex.
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort_unstable();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}

/// How far a signed request's timestamp may be from our clock: a captured URL stops
/// working after this (the plaintext-mode signature does not cover the body).
pub const MAX_TIMESTAMP_SKEW_SECONDS: i64 = 300;

/// Checks `signature` against the channel's token (constant time) and that `timestamp` is
/// within [`MAX_TIMESTAMP_SKEW_SECONDS`] of `now`. Missing, wrong or stale → 401.
pub fn verify_signature(
    token: &str,
    timestamp: Option<&str>,
    nonce: Option<&str>,
    given: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    let unauthorized =
        || Error::Unauthorized("the WeChat signature is missing, wrong or stale".into());
    let (Some(timestamp), Some(nonce), Some(given)) = (timestamp, nonce, given) else {
        return Err(unauthorized());
    };
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (t - now.timestamp()).abs() <= MAX_TIMESTAMP_SKEW_SECONDS);
    let expected = signature(token, timestamp, nonce);
    if fresh
        && bool::from(
            expected
                .as_bytes()
                .ct_eq(given.to_ascii_lowercase().as_bytes()),
        )
    {
        Ok(())
    } else {
        Err(unauthorized())
    }
}

fn bad_xml(message: impl Into<String>) -> Error {
    Error::bad_request("invalid_xml", message)
}

/// Reads the flat `<xml>` document WeChat posts into field → text. Nested elements are
/// kept as `Parent.Child`. A DOCTYPE (the door to entity expansion) or any entity other
/// than the five predefined ones and character references is refused.
pub fn parse_fields(body: &[u8]) -> Result<BTreeMap<String, String>, Error> {
    let text = std::str::from_utf8(body).map_err(|_| bad_xml("the body is not UTF-8"))?;
    let mut reader = Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut fields = BTreeMap::new();
    let mut seen_root = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| bad_xml(format!("malformed XML: {e}")))?;
        match event {
            Event::DocType(_) => return Err(bad_xml("DOCTYPE is not accepted")),
            Event::Start(start) => {
                let name = start.name().as_ref().to_owned();
                if path.is_empty() {
                    if seen_root || name != "xml" {
                        return Err(bad_xml("the document must be one <xml> element"));
                    }
                    seen_root = true;
                }
                path.push(name);
                if path.len() > MAX_DEPTH {
                    return Err(bad_xml("elements are nested too deep"));
                }
            }
            Event::Empty(start) => {
                if path.is_empty() {
                    return Err(bad_xml("the document must be one <xml> element"));
                }
                let name = start.name().as_ref().to_owned();
                let key = path[1..]
                    .iter()
                    .chain(std::iter::once(&name))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(".");
                fields.entry(key).or_insert_with(String::new);
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                let t = t.xml10_content();
                if path.len() >= 2 {
                    push_text(&mut fields, &path, &t);
                } else if !t.trim().is_empty() {
                    return Err(bad_xml("text outside of a field"));
                }
            }
            Event::CData(c) => {
                if path.len() < 2 {
                    return Err(bad_xml("CDATA outside of a field"));
                }
                let c = c.xml10_content();
                push_text(&mut fields, &path, &c);
            }
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .ok()
                        .flatten()
                        .map(String::from)
                        .ok_or_else(|| bad_xml("bad character reference"))?
                } else {
                    match &*r {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "apos" => "'",
                        "quot" => "\"",
                        _ => {
                            return Err(bad_xml(
                                "entities other than the predefined ones are refused",
                            ));
                        }
                    }
                    .to_owned()
                };
                if path.len() >= 2 {
                    push_text(&mut fields, &path, &resolved);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
        if fields.len() > MAX_FIELDS {
            return Err(bad_xml("too many fields"));
        }
    }
    if !seen_root || !path.is_empty() {
        return Err(bad_xml("the <xml> element is missing or not closed"));
    }
    Ok(fields)
}

fn push_text(fields: &mut BTreeMap<String, String>, path: &[String], text: &str) {
    fields
        .entry(path[1..].join("."))
        .or_default()
        .push_str(text);
}

/// Parses one pushed message or event. Unknown `MsgType`s are stored as `unsupported`.
pub fn parse_message(body: &[u8]) -> Result<ParsedWebhook, Error> {
    let fields = parse_fields(body)?;
    let get = |k: &str| {
        fields
            .get(k)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let account = get("ToUserName").ok_or_else(|| bad_xml("ToUserName is missing"))?;
    let customer = get("FromUserName").ok_or_else(|| bad_xml("FromUserName is missing"))?;
    let create_time = get("CreateTime").ok_or_else(|| bad_xml("CreateTime is missing"))?;
    let msg_type = get("MsgType").ok_or_else(|| bad_xml("MsgType is missing"))?;
    let media = |id: Option<String>, url: Option<String>| {
        Some(InboundMedia {
            provider_media_id: id,
            url,
            ..InboundMedia::default()
        })
    };
    let mut opens_window = true;
    let (kind, text, media) = match msg_type.as_str() {
        "text" => (MessageKind::Text, get("Content"), None),
        "image" => (
            MessageKind::Image,
            None,
            media(get("MediaId"), get("PicUrl")),
        ),
        "voice" => (
            MessageKind::Audio,
            get("Recognition"),
            media(get("MediaId"), None),
        ),
        "video" | "shortvideo" => (MessageKind::Video, None, media(get("MediaId"), None)),
        "location" => (MessageKind::Location, get("Label"), None),
        "link" => (MessageKind::Link, get("Title").or_else(|| get("Url")), None),
        "event" => {
            let event = get("Event").unwrap_or_default();
            // Following, menu clicks and scans are customer actions that open the reply
            // window; unfollowing and periodic location reports are not.
            opens_window = matches!(
                event.to_ascii_lowercase().as_str(),
                "subscribe" | "click" | "scan" | "view"
            );
            (
                MessageKind::Event,
                Some(event).filter(|e| !e.is_empty()),
                None,
            )
        }
        _ => (MessageKind::Unsupported, None, None),
    };
    // Events carry no MsgId: the sender and CreateTime (and the event) identify them.
    let id = match get("MsgId") {
        Some(id) => id,
        None => format!(
            "{}:{customer}:{create_time}:{}",
            msg_type,
            get("Event").unwrap_or_default()
        ),
    };
    let raw = Value::Object(
        fields
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    );
    let message = InboundMessage {
        provider_message_id: id,
        customer,
        customer_name: None,
        direction: Direction::Inbound,
        kind,
        text,
        media,
        reply_to: None,
        timestamp: from_epoch_seconds(&Value::String(create_time)),
        opens_window,
        raw,
    };
    let mut out = ParsedWebhook::default();
    out.push(&account, WebhookItem::Message(message));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "<xml><ToUserName><![CDATA[gh_123]]></ToUserName>\
        <FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1348831860</CreateTime>\
        <MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好 &amp; hi]]></Content>\
        <MsgId>1234567890123456</MsgId></xml>";

    fn only_message(p: ParsedWebhook) -> InboundMessage {
        match p.accounts[0].items[0].clone() {
            WebhookItem::Message(m) => m,
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn signature_is_sha1_of_the_sorted_parts_and_must_be_fresh() {
        let now = chrono::Utc::now();
        let ts = now.timestamp().to_string();
        let sig = signature("token", &ts, "nonce");
        let mut parts = ["token", ts.as_str(), "nonce"];
        parts.sort();
        assert_eq!(sig, hex::encode(Sha1::digest(parts.concat())));
        assert!(verify_signature("token", Some(&ts), Some("nonce"), Some(&sig), now).is_ok());
        assert!(verify_signature("other", Some(&ts), Some("nonce"), Some(&sig), now).is_err());
        assert!(verify_signature("token", None, Some("nonce"), Some(&sig), now).is_err());
        let later = now + chrono::Duration::seconds(MAX_TIMESTAMP_SKEW_SECONDS + 1);
        assert!(verify_signature("token", Some(&ts), Some("nonce"), Some(&sig), later).is_err());
    }

    #[test]
    fn text_message_keeps_cdata_verbatim_and_the_msg_id() {
        let m = only_message(parse_message(TEXT.as_bytes()).unwrap());
        assert_eq!(m.kind, MessageKind::Text);
        assert_eq!(m.text.as_deref(), Some("你好 &amp; hi"));
        assert_eq!(m.provider_message_id, "1234567890123456");
        assert_eq!(m.customer, "oUser");
        assert_eq!(m.timestamp.unwrap().timestamp(), 1348831860);
    }

    #[test]
    fn events_get_an_id_from_sender_and_time_and_unsubscribe_does_not_open_the_window() {
        let xml = "<xml><ToUserName>gh_1</ToUserName><FromUserName>oU</FromUserName>\
            <CreateTime>123</CreateTime><MsgType>event</MsgType><Event>unsubscribe</Event></xml>";
        let m = only_message(parse_message(xml.as_bytes()).unwrap());
        assert_eq!(m.kind, MessageKind::Event);
        assert_eq!(m.provider_message_id, "event:oU:123:unsubscribe");
        assert!(!m.opens_window);
    }

    #[test]
    fn doctype_and_custom_entities_are_refused() {
        let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">]>\
            <xml><Content>&lol;</Content></xml>";
        assert_eq!(
            parse_fields(bomb.as_bytes()).unwrap_err().code(),
            "invalid_xml"
        );
        let custom = "<xml><Content>&lol;</Content></xml>";
        assert!(parse_fields(custom.as_bytes()).is_err());
    }

    #[test]
    fn truncated_or_foreign_documents_are_refused() {
        for bad in [
            "<xml><Content>hi</Content>",
            "<html></html>",
            "",
            "<xml></xml><xml></xml>",
            "plain",
        ] {
            assert!(parse_fields(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(parse_fields(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn unknown_msg_type_is_unsupported() {
        let xml = "<xml><ToUserName>gh_1</ToUserName><FromUserName>oU</FromUserName>\
            <CreateTime>123</CreateTime><MsgType>miniprogrampage</MsgType><MsgId>9</MsgId></xml>";
        let m = only_message(parse_message(xml.as_bytes()).unwrap());
        assert_eq!(m.kind, MessageKind::Unsupported);
    }
}
