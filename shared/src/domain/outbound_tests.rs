use chrono::{DateTime, Duration as Hours, Utc};

use super::*;
use crate::domain::window::WindowPolicy;

fn send(json: Value) -> Result<Vec<Part>, Error> {
    serde_json::from_value::<SendMessage>(json)
        .map_err(|e| Error::bad_request("invalid_json", e.to_string()))?
        .parts(ChannelType::Whatsapp)
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn text() -> Vec<Part> {
    vec![Part::Text("hi".into())]
}

fn template() -> Vec<Part> {
    vec![Part::Template(TemplateCall {
        name: "hello".into(),
        language: "en".into(),
        parameters: vec![],
    })]
}

/// The decision for a send `hours` after the customer's last message.
fn decide(
    channel: ChannelType,
    human_agent: bool,
    hours: i64,
    replies: u32,
    parts: &[Part],
    sender: Sender,
) -> Result<Delivery, &'static str> {
    let policy = WindowPolicy {
        channel_type: channel,
        window_hours: 24,
        human_agent,
    };
    let window = policy.window_at(Some(t0()), replies, t0() + Hours::hours(hours));
    authorize(channel, &window, replies, parts, sender).map_err(|e| e.code())
}

#[test]
fn text_needs_text_and_nothing_else() {
    assert_eq!(
        send(json!({"kind": "text", "text": "hola 👋"})).unwrap(),
        vec![Part::Text("hola 👋".into())]
    );
    assert_eq!(
        send(json!({"kind": "text", "text": "  "}))
            .unwrap_err()
            .code(),
        "invalid_message"
    );
    assert!(send(json!({"kind": "text", "text": "x", "media_id": "m"})).is_err());
    assert!(send(json!({"kind": "text", "text": "x".repeat(4097)})).is_err());
    assert!(send(json!({"kind": "text", "body": "x"})).is_err());
    assert!(send(json!({"kind": "gif", "text": "x"})).is_err());
}

#[test]
fn audio_and_sticker_text_goes_out_second() {
    let parts = send(json!({"kind": "audio", "media_id": "m1", "text": "listen"})).unwrap();
    assert_eq!(
        parts,
        vec![
            Part::Media {
                kind: OutboundKind::Audio,
                caption: None
            },
            Part::Text("listen".into())
        ]
    );
    assert_eq!(
        send(json!({"kind": "sticker", "media_id": "m1", "caption": "x"}))
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        send(json!({"kind": "audio", "media_id": "m1"}))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn captions_travel_with_images_videos_and_files() {
    let parts = send(json!({"kind": "image", "media_id": "m1", "caption": "look"})).unwrap();
    assert_eq!(
        parts,
        vec![Part::Media {
            kind: OutboundKind::Image,
            caption: Some("look".into())
        }]
    );
    assert!(send(json!({"kind": "file", "media_id": "m1", "caption": "a", "text": "b"})).is_err());
    assert!(send(json!({"kind": "video"})).is_err());
    assert!(send(json!({"kind": "image", "media_id": "m", "caption": "x".repeat(1025)})).is_err());
}

#[test]
fn templates_take_only_the_template() {
    assert!(send(json!({"kind": "template", "template": {"name": "a", "language": "en"}})).is_ok());
    assert!(send(json!({"kind": "template"})).is_err());
    assert!(
        send(json!({"kind": "template", "text": "x", "template": {"name": "a", "language": "en"}}))
            .is_err()
    );
}

#[test]
fn whatsapp_is_free_form_for_24_hours_then_templates_only() {
    use ChannelType::Whatsapp;
    assert_eq!(
        decide(Whatsapp, false, 23, 0, &text(), Sender::Agent),
        Ok(Delivery::Response)
    );
    assert_eq!(
        decide(Whatsapp, false, 24, 0, &text(), Sender::Agent),
        Err("template_required")
    );
    assert_eq!(
        decide(Whatsapp, false, 200, 0, &text(), Sender::Agent),
        Err("template_required")
    );
    assert_eq!(
        decide(Whatsapp, false, 200, 0, &template(), Sender::Agent),
        Ok(Delivery::Template)
    );
    assert_eq!(
        decide(Whatsapp, false, 1, 0, &template(), Sender::Bot),
        Ok(Delivery::Template)
    );
}

#[test]
fn messenger_has_the_human_agent_band_for_people_only() {
    use ChannelType::Messenger;
    assert_eq!(
        decide(Messenger, true, 23, 0, &text(), Sender::Bot),
        Ok(Delivery::Response)
    );
    assert_eq!(
        decide(Messenger, true, 24, 0, &text(), Sender::Agent),
        Ok(Delivery::HumanAgent)
    );
    assert_eq!(
        decide(Messenger, true, 167, 0, &text(), Sender::Agent),
        Ok(Delivery::HumanAgent)
    );
    assert_eq!(
        decide(Messenger, true, 100, 0, &text(), Sender::Bot),
        Err("window_closed")
    );
    assert_eq!(
        decide(Messenger, true, 168, 0, &text(), Sender::Agent),
        Err("window_closed")
    );
    assert_eq!(
        decide(Messenger, true, 1, 0, &template(), Sender::Agent),
        Err("template_not_supported")
    );
}

#[test]
fn instagram_needs_the_channel_flag_for_the_human_agent_band() {
    use ChannelType::Instagram;
    assert_eq!(
        decide(Instagram, false, 23, 0, &text(), Sender::Agent),
        Ok(Delivery::Response)
    );
    assert_eq!(
        decide(Instagram, false, 30, 0, &text(), Sender::Agent),
        Err("window_closed")
    );
    assert_eq!(
        decide(Instagram, true, 30, 0, &text(), Sender::Agent),
        Ok(Delivery::HumanAgent)
    );
}

#[test]
fn wechat_allows_five_replies_per_customer_message() {
    use ChannelType::Wechat;
    assert_eq!(
        decide(Wechat, false, 1, 4, &text(), Sender::Agent),
        Ok(Delivery::Response)
    );
    assert_eq!(
        decide(Wechat, false, 1, 5, &text(), Sender::Agent),
        Err("window_closed")
    );
    let two = send(json!({"kind": "audio", "media_id": "m", "text": "t"})).unwrap();
    assert_eq!(
        decide(Wechat, false, 1, 4, &two, Sender::Agent),
        Err("window_closed")
    );
    assert_eq!(
        decide(Wechat, false, 1, 3, &two, Sender::Agent),
        Ok(Delivery::Response)
    );
    assert_eq!(
        decide(Wechat, false, 25, 0, &text(), Sender::Agent),
        Err("window_closed")
    );
    let sticker = send(json!({"kind": "sticker", "media_id": "m"})).unwrap();
    assert_eq!(
        decide(Wechat, false, 1, 0, &sticker, Sender::Agent),
        Err("kind_not_supported")
    );
}

#[test]
fn no_inbound_message_means_templates_only_or_closed() {
    let policy = WindowPolicy {
        channel_type: ChannelType::Whatsapp,
        window_hours: 24,
        human_agent: false,
    };
    let w = policy.window_at(None, 0, t0());
    assert_eq!(
        authorize(ChannelType::Whatsapp, &w, 0, &text(), Sender::Agent)
            .unwrap_err()
            .code(),
        "template_required"
    );
}

#[test]
fn whatsapp_bodies_follow_the_cloud_api() {
    let b = whatsapp_body("15551234567", &Content::Text("hi 😀"), "ref");
    assert_eq!(b["messaging_product"], "whatsapp");
    assert_eq!(b["type"], "text");
    assert_eq!(b["text"]["body"], "hi 😀");
    assert_eq!(b["biz_opaque_callback_data"], "ref");
    let doc = Content::Media {
        kind: OutboundKind::File,
        source: "https://s3/x",
        caption: Some("invoice"),
        filename: "inv.pdf",
    };
    let b = whatsapp_body("1", &doc, "r");
    assert_eq!(b["type"], "document");
    assert_eq!(b["document"]["link"], "https://s3/x");
    assert_eq!(b["document"]["filename"], "inv.pdf");
    let audio = Content::Media {
        kind: OutboundKind::Audio,
        source: "https://s3/a",
        caption: None,
        filename: "a.ogg",
    };
    assert!(
        whatsapp_body("1", &audio, "r")["audio"]
            .get("caption")
            .is_none()
    );
    let t = Content::Template {
        name: "hello",
        language: "en_US",
        components: vec![],
    };
    assert_eq!(
        whatsapp_body("1", &t, "r")["template"]["language"]["code"],
        "en_US"
    );
}

#[test]
fn messenger_bodies_tag_human_agent_replies() {
    let b = messenger_body("psid", &Content::Text("hi"), Delivery::Response, "r");
    assert_eq!(b["messaging_type"], "RESPONSE");
    assert!(b.get("tag").is_none());
    assert_eq!(b["recipient"]["id"], "psid");
    let b = messenger_body("psid", &Content::Text("hi"), Delivery::HumanAgent, "r");
    assert_eq!(b["messaging_type"], "MESSAGE_TAG");
    assert_eq!(b["tag"], "HUMAN_AGENT");
    let img = Content::Media {
        kind: OutboundKind::Sticker,
        source: "https://s3/s",
        caption: None,
        filename: "s.webp",
    };
    let b = messenger_body("psid", &img, Delivery::Response, "r");
    assert_eq!(b["message"]["attachment"]["type"], "image");
    assert_eq!(b["message"]["attachment"]["payload"]["url"], "https://s3/s");
}

#[test]
fn wechat_bodies_use_uploaded_media_ids() {
    let b = wechat_body("openid", &Content::Text("你好"));
    assert_eq!(b["msgtype"], "text");
    assert_eq!(b["text"]["content"], "你好");
    let voice = Content::Media {
        kind: OutboundKind::Audio,
        source: "MEDIA1",
        caption: None,
        filename: "a.amr",
    };
    let b = wechat_body("openid", &voice);
    assert_eq!(b["msgtype"], "voice");
    assert_eq!(b["voice"]["media_id"], "MEDIA1");
}

#[test]
fn graph_answers_are_classified() {
    let ok = br#"{"messaging_product":"whatsapp","contacts":[{"input":"1","wa_id":"1"}],"messages":[{"id":"wamid.X"}]}"#;
    assert_eq!(
        classify_graph(200, ok, None),
        Attempt::Accepted(Some("wamid.X".into()))
    );
    let ok = br#"{"recipient_id":"1","message_id":"m_1"}"#;
    assert_eq!(
        classify_graph(200, ok, None),
        Attempt::Accepted(Some("m_1".into()))
    );
    assert_eq!(classify_graph(200, b"{}", None), Attempt::Unknown);
    let after = Some(Duration::from_secs(2));
    assert!(matches!(
        classify_graph(429, b"{}", after),
        Attempt::Retry { after: Some(_), .. }
    ));
    assert!(matches!(
        classify_graph(503, b"oops", None),
        Attempt::Retry { .. }
    ));
    let limited = br#"{"error":{"message":"(#131056) pair rate limit","code":131056}}"#;
    assert!(matches!(
        classify_graph(400, limited, None),
        Attempt::Retry { .. }
    ));
    let gone = br#"{"error":{"message":"(#131026) Message undeliverable","code":131026,"error_data":{"details":"Message Undeliverable."}}}"#;
    let Attempt::Failed(e) = classify_graph(400, gone, None) else {
        panic!("permanent")
    };
    assert_eq!(e.code, "131026");
    assert!(e.hint.contains("wa.me"));
}

#[test]
fn wechat_answers_are_classified() {
    assert_eq!(
        classify_wechat(200, br#"{"errcode":0,"errmsg":"ok"}"#),
        Attempt::Accepted(None)
    );
    assert_eq!(
        classify_wechat(200, br#"{"errcode":42001}"#),
        Attempt::RefreshToken
    );
    assert_eq!(
        classify_wechat(200, br#"{"errcode":40001}"#),
        Attempt::RefreshToken
    );
    assert!(matches!(
        classify_wechat(200, br#"{"errcode":-1}"#),
        Attempt::Retry { .. }
    ));
    let Attempt::Failed(e) = classify_wechat(
        200,
        br#"{"errcode":45047,"errmsg":"out of response count limit"}"#,
    ) else {
        panic!("permanent")
    };
    assert_eq!(e.code, "45047");
}

#[test]
fn backoff_grows_is_capped_and_honours_retry_after() {
    let p = RetryPolicy::default();
    let d0 = p.delay(0, None, 0.0).unwrap();
    let d1 = p.delay(1, None, 0.0).unwrap();
    assert!(d1 > d0);
    assert!(p.delay(0, None, 0.999).unwrap() < p.base);
    assert_eq!(
        p.delay(0, Some(Duration::from_secs(3)), 0.5),
        Some(Duration::from_secs(3))
    );
    assert_eq!(p.delay(0, Some(Duration::from_secs(60)), 0.5), None);
    assert_eq!(p.delay(p.attempts - 1, None, 0.5), None);
    let far = RetryPolicy { attempts: 40, ..p };
    assert!(far.delay(35, None, 0.99).unwrap() <= far.cap);
}

#[test]
fn retry_after_reads_seconds_and_dates() {
    assert_eq!(parse_retry_after("3", t0()), Some(Duration::from_secs(3)));
    assert_eq!(
        parse_retry_after("Tue, 24 Nov 2026 09:00:05 GMT", t0()),
        Some(Duration::from_secs(5))
    );
    assert_eq!(parse_retry_after("soon", t0()), None);
}

#[test]
fn idempotency_keys_are_bounded() {
    assert!(check_idempotency_key("abc-123").is_ok());
    assert!(check_idempotency_key("").is_err());
    assert!(check_idempotency_key("has space").is_err());
    assert!(check_idempotency_key(&"k".repeat(256)).is_err());
}

#[test]
fn captions_go_as_a_second_message_where_the_channel_has_none() {
    let m: SendMessage =
        serde_json::from_value(json!({"kind": "image", "media_id": "m", "caption": "look"}))
            .unwrap();
    assert_eq!(m.parts(ChannelType::Whatsapp).unwrap().len(), 1);
    for channel in [
        ChannelType::Messenger,
        ChannelType::Instagram,
        ChannelType::Wechat,
    ] {
        let parts = m.parts(channel).unwrap();
        assert_eq!(parts.len(), 2, "{channel}");
        assert_eq!(parts[1], Part::Text("look".into()));
    }
}

#[test]
fn instagram_texts_are_counted_in_bytes_and_take_no_stickers() {
    let long = [Part::Text("é".repeat(501))];
    assert_eq!(
        check_supported(ChannelType::Instagram, &long[0])
            .unwrap_err()
            .code(),
        "invalid_message"
    );
    assert!(check_supported(ChannelType::Messenger, &long[0]).is_ok());
    let sticker = Part::Media {
        kind: OutboundKind::Sticker,
        caption: None,
    };
    assert_eq!(
        check_supported(ChannelType::Instagram, &sticker)
            .unwrap_err()
            .code(),
        "kind_not_supported"
    );
}
