use chrono::{DateTime, Duration as Hours, Utc};
use serde_json::json;

use super::*;
use crate::domain::window::WindowPolicy;

fn send(json: Value) -> Result<Vec<Part>, Error> {
    serde_json::from_value::<SendMessage>(json)
        .map_err(|e| Error::bad_request("invalid_json", e.to_string()))?
        .parts(ChannelType::Whatsapp)
}

fn agent() -> Actor {
    Actor::agent("a1")
}

fn bot() -> Actor {
    Actor::Bot { id: "b1".into() }
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
    actor: &Actor,
) -> Result<Delivery, &'static str> {
    let policy = WindowPolicy {
        channel_type: channel,
        window_hours: 24,
        human_agent,
    };
    let window = policy.window_at(Some(t0()), replies, t0() + Hours::hours(hours));
    authorize(channel, &window, replies, parts, actor).map_err(|e| e.code())
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
        decide(Whatsapp, false, 23, 0, &text(), &agent()),
        Ok(Delivery::Response)
    );
    assert_eq!(
        decide(Whatsapp, false, 24, 0, &text(), &agent()),
        Err("template_required")
    );
    assert_eq!(
        decide(Whatsapp, false, 200, 0, &text(), &agent()),
        Err("template_required")
    );
    assert_eq!(
        decide(Whatsapp, false, 200, 0, &template(), &agent()),
        Ok(Delivery::Template)
    );
    assert_eq!(
        decide(Whatsapp, false, 1, 0, &template(), &bot()),
        Ok(Delivery::Template)
    );
}

#[test]
fn messenger_has_the_human_agent_band_for_people_only() {
    use ChannelType::Messenger;
    assert_eq!(
        decide(Messenger, true, 23, 0, &text(), &bot()),
        Ok(Delivery::Response)
    );
    assert_eq!(
        decide(Messenger, true, 24, 0, &text(), &agent()),
        Ok(Delivery::HumanAgent)
    );
    assert_eq!(
        decide(Messenger, true, 167, 0, &text(), &agent()),
        Ok(Delivery::HumanAgent)
    );
    assert_eq!(
        decide(Messenger, true, 100, 0, &text(), &bot()),
        Err("window_closed")
    );
    assert_eq!(
        decide(Messenger, true, 168, 0, &text(), &agent()),
        Err("window_closed")
    );
    assert_eq!(
        decide(Messenger, true, 1, 0, &template(), &agent()),
        Err("template_not_supported")
    );
}

#[test]
fn instagram_needs_the_channel_flag_for_the_human_agent_band() {
    use ChannelType::Instagram;
    assert_eq!(
        decide(Instagram, false, 23, 0, &text(), &agent()),
        Ok(Delivery::Response)
    );
    assert_eq!(
        decide(Instagram, false, 30, 0, &text(), &agent()),
        Err("window_closed")
    );
    assert_eq!(
        decide(Instagram, true, 30, 0, &text(), &agent()),
        Ok(Delivery::HumanAgent)
    );
}

#[test]
fn wechat_allows_five_replies_per_customer_message() {
    use ChannelType::Wechat;
    assert_eq!(
        decide(Wechat, false, 1, 4, &text(), &agent()),
        Ok(Delivery::Response)
    );
    assert_eq!(
        decide(Wechat, false, 1, 5, &text(), &agent()),
        Err("window_closed")
    );
    let two = send(json!({"kind": "audio", "media_id": "m", "text": "t"})).unwrap();
    assert_eq!(
        decide(Wechat, false, 1, 4, &two, &agent()),
        Err("window_closed")
    );
    assert_eq!(
        decide(Wechat, false, 1, 3, &two, &agent()),
        Ok(Delivery::Response)
    );
    assert_eq!(
        decide(Wechat, false, 25, 0, &text(), &agent()),
        Err("window_closed")
    );
    let sticker = send(json!({"kind": "sticker", "media_id": "m"})).unwrap();
    assert_eq!(
        decide(Wechat, false, 1, 0, &sticker, &agent()),
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
        authorize(ChannelType::Whatsapp, &w, 0, &text(), &agent())
            .unwrap_err()
            .code(),
        "template_required"
    );
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
fn idempotency_keys_are_bounded() {
    assert_eq!(
        IdempotencyKey::parse("abc-123").unwrap().as_str(),
        "abc-123"
    );
    assert!(IdempotencyKey::parse("").is_err());
    assert!(IdempotencyKey::parse("has space").is_err());
    assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
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
