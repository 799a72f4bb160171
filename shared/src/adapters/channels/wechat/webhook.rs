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
/// Deepest element nesting accepted, counting `<xml>`: WeChat nests up to four levels
/// below it (`SendPicsInfo/PicList/item/PicMd5Sum`, `CopyrightCheckResult/ResultList/item/…`).
const MAX_DEPTH: usize = 6;

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

/// Event types that report on the account's own jobs, not on a follower: acknowledged
/// (WeChat retries anything else, then tells the follower the account cannot serve), not
/// stored in a conversation.
const ACCOUNT_EVENTS: [&str; 2] = ["templatesendjobfinish", "masssendjobfinish"];

/// Whether an event opens WeChat's reply window: a follower writing, following, scanning a
/// QR code, or a menu click of the kinds WeChat names (click, scancode_push,
/// scancode_waitmsg). Unfollowing, opening a menu link (VIEW), location reports and
/// customer-service session changes do not.
pub fn event_opens_window(event: &str) -> bool {
    matches!(
        event.to_ascii_lowercase().as_str(),
        "subscribe" | "scan" | "click" | "scancode_push" | "scancode_waitmsg"
    )
}

/// Parses one pushed message or event. Every documented `MsgType` (text, image, voice,
/// video, shortvideo, location, link, file) and every event (subscribe, unsubscribe, SCAN,
/// CLICK, VIEW, scancode_*, pic_*, location_select, view_miniprogram, kf_*_session, …) is
/// stored; account job reports (TEMPLATESENDJOBFINISH, MASSSENDJOBFINISH) and periodic
/// LOCATION reports are acknowledged without storing. Unknown `MsgType`s are stored as
/// `unsupported`.
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
    let mut out = ParsedWebhook::default();
    let event = get("Event").unwrap_or_default();
    if msg_type == "event" {
        let lower = event.to_ascii_lowercase();
        if ACCOUNT_EVENTS.contains(&lower.as_str()) {
            out.skipped.push("WeChat account job report");
            return Ok(out);
        }
        if lower == "location" {
            out.skipped.push("WeChat periodic location report");
            return Ok(out);
        }
    }
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
        // A file has no MediaId to fetch: its title and key are kept.
        "file" => (MessageKind::File, get("Title"), None),
        "event" => {
            opens_window = event_opens_window(&event);
            let detail = get("ScanCodeInfo.ScanResult")
                .or_else(|| get("SendLocationInfo.Label"))
                .or_else(|| get("EventKey"));
            let text = match detail {
                Some(d) => format!("{event}: {d}"),
                None => event.clone(),
            };
            (
                MessageKind::Event,
                Some(text).filter(|e| !e.is_empty()),
                None,
            )
        }
        _ => (MessageKind::Unsupported, None, None),
    };
    // Events carry no MsgId: the sender, CreateTime and the event (and its key, hashed,
    // when there is one: two menu taps in one second are two events) identify them.
    let id = match get("MsgId").or_else(|| get("MsgID")) {
        Some(id) => id,
        None => {
            let key = get("EventKey")
                .map(|k| format!(":{}", &hex::encode(Sha1::digest(k.as_bytes()))[..12]))
                .unwrap_or_default();
            format!("{msg_type}:{customer}:{create_time}:{event}{key}")
        }
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
        identity: crate::domain::inbound::CustomerIdentity::default(),
        standby: false,
    };
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

    fn event(name: &str, extra: &str) -> String {
        format!(
            "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oU]]></FromUserName>\
             <CreateTime>1348831860</CreateTime><MsgType><![CDATA[event]]></MsgType>\
             <Event><![CDATA[{name}]]></Event>{extra}</xml>"
        )
    }

    #[test]
    fn every_documented_wechat_event_is_stored_or_acknowledged() {
        let stored = [
            event(
                "subscribe",
                "<EventKey><![CDATA[qrscene_123]]></EventKey><Ticket><![CDATA[T]]></Ticket>",
            ),
            event("unsubscribe", ""),
            event(
                "SCAN",
                "<EventKey><![CDATA[123]]></EventKey><Ticket><![CDATA[T]]></Ticket>",
            ),
            event("CLICK", "<EventKey><![CDATA[MENU_1]]></EventKey>"),
            event(
                "VIEW",
                "<EventKey><![CDATA[https://example.com/page]]></EventKey><MenuId>1</MenuId>",
            ),
            event(
                "scancode_push",
                "<EventKey><![CDATA[k]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo>",
            ),
            event(
                "scancode_waitmsg",
                "<EventKey><![CDATA[k]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[2]]></ScanResult></ScanCodeInfo>",
            ),
            event(
                "pic_sysphoto",
                "<EventKey><![CDATA[k]]></EventKey><SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum><![CDATA[1b5f7c23b5bf75682a53e7b6d163e185]]></PicMd5Sum></item></PicList></SendPicsInfo>",
            ),
            event(
                "pic_photo_or_album",
                "<EventKey><![CDATA[k]]></EventKey><SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum><![CDATA[5a75aaca956d97be686719218f275c6b]]></PicMd5Sum></item></PicList></SendPicsInfo>",
            ),
            event(
                "pic_weixin",
                "<EventKey><![CDATA[k]]></EventKey><SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum><![CDATA[5a75aaca956d97be686719218f275c6b]]></PicMd5Sum></item></PicList></SendPicsInfo>",
            ),
            event(
                "location_select",
                "<EventKey><![CDATA[k]]></EventKey><SendLocationInfo><Location_X><![CDATA[23]]></Location_X><Location_Y><![CDATA[113]]></Location_Y><Scale><![CDATA[15]]></Scale><Label><![CDATA[Guangzhou]]></Label><Poiname><![CDATA[]]></Poiname></SendLocationInfo>",
            ),
            event(
                "view_miniprogram",
                "<EventKey><![CDATA[pages/index/index]]></EventKey><MenuId>1</MenuId>",
            ),
            event(
                "kf_create_session",
                "<KfAccount><![CDATA[test1@test]]></KfAccount>",
            ),
            event(
                "kf_close_session",
                "<KfAccount><![CDATA[test1@test]]></KfAccount>",
            ),
            event(
                "kf_switch_session",
                "<FromKfAccount><![CDATA[a@test]]></FromKfAccount><ToKfAccount><![CDATA[b@test]]></ToKfAccount>",
            ),
        ];
        for xml in &stored {
            let m = only_message(parse_message(xml.as_bytes()).unwrap());
            assert_eq!(m.kind, MessageKind::Event, "{xml}");
        }
        let acknowledged = [
            event(
                "LOCATION",
                "<Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>",
            ),
            event(
                "TEMPLATESENDJOBFINISH",
                "<MsgID>200163836</MsgID><Status><![CDATA[success]]></Status>",
            ),
            event(
                "MASSSENDJOBFINISH",
                "<MsgID>1000001625</MsgID><Status><![CDATA[send success]]></Status><TotalCount>100</TotalCount><FilterCount>80</FilterCount><SentCount>75</SentCount><ErrorCount>5</ErrorCount><CopyrightCheckResult><Count>1</Count><ResultList><item><ArticleIdx>1</ArticleIdx><UserDeclareState>0</UserDeclareState><AuditState>2</AuditState><OriginalArticleUrl><![CDATA[Url_1]]></OriginalArticleUrl><OriginalArticleType>1</OriginalArticleType><CanReprint>1</CanReprint><NeedReplaceContent>1</NeedReplaceContent><NeedShowReprintSource>1</NeedShowReprintSource></item></ResultList><CheckState>2</CheckState></CopyrightCheckResult><ArticleUrlResult><Count>1</Count><ResultList><item><ArticleIdx>1</ArticleIdx><ArticleUrl><![CDATA[Url]]></ArticleUrl></item></ResultList></ArticleUrlResult>",
            ),
        ];
        for xml in &acknowledged {
            let parsed = parse_message(xml.as_bytes()).unwrap();
            assert_eq!(parsed.item_count(), 0, "{xml}");
            assert_eq!(parsed.skipped.len(), 1, "{xml}");
        }
    }

    #[test]
    fn only_the_customer_actions_wechat_names_open_the_reply_window() {
        for opens in [
            "subscribe",
            "SCAN",
            "CLICK",
            "scancode_push",
            "scancode_waitmsg",
        ] {
            assert!(event_opens_window(opens), "{opens}");
        }
        for not in [
            "unsubscribe",
            "VIEW",
            "LOCATION",
            "kf_close_session",
            "view_miniprogram",
        ] {
            assert!(!event_opens_window(not), "{not}");
        }
    }

    #[test]
    fn two_menu_taps_in_one_second_are_two_events() {
        let a = only_message(
            parse_message(event("CLICK", "<EventKey>A</EventKey>").as_bytes()).unwrap(),
        );
        let b = only_message(
            parse_message(event("CLICK", "<EventKey>B</EventKey>").as_bytes()).unwrap(),
        );
        assert_ne!(a.provider_message_id, b.provider_message_id);
        assert!(a.provider_message_id.len() < 100);
    }

    #[test]
    fn a_file_message_is_stored_as_a_file() {
        let xml = "<xml><ToUserName>gh_1</ToUserName><FromUserName>oU</FromUserName>\
            <CreateTime>123</CreateTime><MsgType>file</MsgType><Title>report.pdf</Title>\
            <Description>d</Description><FileKey>k</FileKey><FileMd5>m</FileMd5>\
            <FileTotalLen>10</FileTotalLen><MsgId>77</MsgId></xml>";
        let m = only_message(parse_message(xml.as_bytes()).unwrap());
        assert_eq!(
            (m.kind, m.text.as_deref()),
            (MessageKind::File, Some("report.pdf"))
        );
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
