use chrono::TimeZone;

use super::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn whatsapp() -> WindowPolicy {
    WindowPolicy {
        channel_type: ChannelType::Whatsapp,
        window_hours: 24,
        human_agent: false,
    }
}

fn text(t: &str) -> SendMessage {
    SendMessage {
        kind: OutboundKind::Text,
        text: Some(t.into()),
        media_id: None,
        caption: None,
        template: None,
        options: None,
    }
}

fn scheduled(created_at: &str) -> ScheduledMessage {
    ScheduledMessage {
        id: "01SCHED".into(),
        conversation_id: "cv_1".into(),
        send_at: "2026-03-29T08:30:00Z".into(),
        status: ScheduleStatus::Scheduled,
        message: text("Your appointment is tomorrow"),
        fallback_template: None,
        cancel_if_customer_replies: false,
        created_by: "agent-1".into(),
        created_at: created_at.into(),
        message_id: None,
        used_fallback: false,
        error: None,
        cancel_reason: None,
        settled_at: None,
    }
}

#[test]
fn send_at_needs_an_offset_and_a_future_within_a_year() {
    let now = utc(2026, 3, 1, 12, 0);
    assert_eq!(
        parse_send_at("2026-03-29T09:00:00+01:00", now).unwrap(),
        utc(2026, 3, 29, 8, 0)
    );
    for (bad, code) in [
        ("2026-03-29T09:00:00", "invalid_send_at"),
        ("29/03/2026 09:00", "invalid_send_at"),
        ("2026-03-01T11:59:59Z", "send_at_in_past"),
        ("2026-03-01T12:00:00Z", "send_at_in_past"),
        ("2027-03-02T12:00:00Z", "send_at_too_far"),
        ("2026-06-30T23:59:60Z", "invalid_send_at"),
        ("2026-03-29T10:15:60+01:00", "invalid_send_at"),
    ] {
        assert_eq!(parse_send_at(bad, now).unwrap_err().code(), code, "{bad}");
    }
    assert!(parse_send_at("2027-03-01T12:00:00Z", now).is_ok());
}

#[test]
fn london_offsets_around_the_clock_changes_name_the_right_instants() {
    let now = utc(2026, 1, 1, 0, 0);
    // Last Sunday of March 2026: 01:00 GMT becomes 02:00 BST.
    assert_eq!(
        parse_send_at("2026-03-29T00:30:00+00:00", now).unwrap(),
        utc(2026, 3, 29, 0, 30)
    );
    assert_eq!(
        parse_send_at("2026-03-29T02:30:00+01:00", now).unwrap(),
        utc(2026, 3, 29, 1, 30)
    );
    // Last Sunday of October 2026: 01:30 happens twice, once in BST, once in GMT.
    let first = parse_send_at("2026-10-25T01:30:00+01:00", now).unwrap();
    let second = parse_send_at("2026-10-25T01:30:00+00:00", now).unwrap();
    assert_eq!(second - first, Duration::hours(1));
}

#[test]
fn the_window_at_send_counts_real_hours_across_a_clock_change() {
    // The customer wrote on Saturday 09:00 GMT; the window ends 24 real hours later,
    // Sunday 09:00 UTC = 10:00 BST.
    let wrote = utc(2026, 3, 28, 9, 0);
    let policy = whatsapp();
    let now = utc(2026, 3, 28, 9, 5);
    let inside = parse_send_at("2026-03-29T09:59:00+01:00", now).unwrap();
    let at_end = parse_send_at("2026-03-29T10:00:00+01:00", now).unwrap();
    let w: WindowAtSend = policy.window_at(Some(wrote), 0, inside).into();
    assert_eq!((w.open, w.mode), (true, WindowMode::FreeForm));
    let w: WindowAtSend = policy.window_at(Some(wrote), 0, at_end).into();
    assert_eq!((w.open, w.mode), (false, WindowMode::TemplateOnly));
}

#[test]
fn a_fire_inside_the_window_sends_the_message() {
    let s = scheduled("2026-03-28T10:00:00Z");
    let d = decide_fire(
        &s,
        &whatsapp(),
        Some(utc(2026, 3, 28, 9, 0)),
        0,
        utc(2026, 3, 29, 8, 30),
    );
    assert_eq!(
        d,
        FireDecision::Send {
            message: text("Your appointment is tomorrow"),
            fallback: false
        }
    );
}

#[test]
fn outside_a_whatsapp_window_the_fallback_goes_or_it_fails_visibly() {
    let wrote = Some(utc(2026, 3, 27, 9, 0));
    let at = utc(2026, 3, 29, 8, 30);
    let mut s = scheduled("2026-03-27T10:00:00Z");
    match decide_fire(&s, &whatsapp(), wrote, 0, at) {
        FireDecision::Fail(e) => assert_eq!(e.code, "template_required"),
        other => panic!("{other:?}"),
    }
    s.fallback_template = Some(TemplateCall {
        name: "appointment_reminder".into(),
        language: "en_US".into(),
        parameters: vec!["Ana".into()],
    });
    match decide_fire(&s, &whatsapp(), wrote, 0, at) {
        FireDecision::Send { message, fallback } => {
            assert!(fallback);
            assert_eq!(message.kind, OutboundKind::Template);
            assert_eq!(message.template.unwrap().name, "appointment_reminder");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_resumed_fire_looks_for_the_message_then_its_fallback_as_decide_fire_would_send_them() {
    let wrote = Some(utc(2026, 3, 27, 9, 0));
    let mut s = scheduled("2026-03-27T10:00:00Z");
    assert_eq!(fire_candidates(&s), vec![(s.message.clone(), false)]);
    s.fallback_template = Some(TemplateCall {
        name: "appointment_reminder".into(),
        language: "en_US".into(),
        parameters: vec!["Ana".into()],
    });
    let candidates = fire_candidates(&s);
    assert_eq!(candidates.len(), 2);
    // Each is exactly what a fire decides to send, inside and outside the window.
    let inside = decide_fire(&s, &whatsapp(), wrote, 0, utc(2026, 3, 27, 12, 0));
    let outside = decide_fire(&s, &whatsapp(), wrote, 0, utc(2026, 3, 29, 8, 30));
    for (decision, (message, fallback)) in [inside, outside].into_iter().zip(candidates) {
        assert_eq!(decision, FireDecision::Send { message, fallback });
    }
    // A template is never replaced by the fallback.
    s.message = SendMessage {
        kind: OutboundKind::Template,
        text: None,
        media_id: None,
        caption: None,
        template: s.fallback_template.clone(),
        options: None,
    };
    assert_eq!(fire_candidates(&s).len(), 1);
}

#[test]
fn a_template_goes_whatever_the_window() {
    let mut s = scheduled("2026-03-27T10:00:00Z");
    s.message = SendMessage {
        kind: OutboundKind::Template,
        text: None,
        media_id: None,
        caption: None,
        template: Some(TemplateCall {
            name: "hello".into(),
            language: "en".into(),
            parameters: vec![],
        }),
        options: None,
    };
    assert!(matches!(
        decide_fire(&s, &whatsapp(), None, 0, utc(2026, 3, 29, 8, 30)),
        FireDecision::Send {
            fallback: false,
            ..
        }
    ));
}

#[test]
fn messenger_after_24_hours_fails_a_schedule_is_not_a_person() {
    let policy = WindowPolicy {
        channel_type: ChannelType::Messenger,
        window_hours: 24,
        human_agent: true,
    };
    let s = scheduled("2026-03-27T10:00:00Z");
    match decide_fire(
        &s,
        &policy,
        Some(utc(2026, 3, 27, 9, 0)),
        0,
        utc(2026, 3, 29, 8, 30),
    ) {
        FireDecision::Fail(e) => assert_eq!(e.code, "window_closed"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_customers_reply_cancels_only_when_asked_and_only_after_scheduling() {
    let mut s = scheduled("2026-03-28T10:00:00Z");
    let at = utc(2026, 3, 29, 8, 30);
    let before = Some(utc(2026, 3, 28, 9, 0));
    let after = Some(utc(2026, 3, 28, 11, 0));
    assert!(matches!(
        decide_fire(&s, &whatsapp(), after, 0, at),
        FireDecision::Send { .. }
    ));
    s.cancel_if_customer_replies = true;
    assert_eq!(
        decide_fire(&s, &whatsapp(), after, 0, at),
        FireDecision::CancelCustomerReplied
    );
    assert!(matches!(
        decide_fire(&s, &whatsapp(), before, 0, at),
        FireDecision::Send { .. }
    ));
}

#[test]
fn fallbacks_are_whatsapp_templates_for_free_form_messages() {
    let request = |kind: OutboundKind| ScheduleRequest {
        send_at: "2026-03-29T09:00:00+01:00".into(),
        message: SendMessage { kind, ..text("hi") },
        fallback_template: Some(TemplateCall {
            name: "x".into(),
            language: "en".into(),
            parameters: vec![],
        }),
        cancel_if_customer_replies: false,
    };
    assert!(check_fallback(&request(OutboundKind::Text), ChannelType::Whatsapp).is_ok());
    assert_eq!(
        check_fallback(&request(OutboundKind::Text), ChannelType::Messenger)
            .unwrap_err()
            .code(),
        "invalid_fallback"
    );
    assert_eq!(
        check_fallback(&request(OutboundKind::Template), ChannelType::Whatsapp)
            .unwrap_err()
            .code(),
        "invalid_fallback"
    );
}

#[test]
fn schedule_inputs_and_names_are_what_scheduler_carries() {
    let input = ScheduleInput::ScheduledMessage {
        tenant_id: "acme".into(),
        scheduled_id: "01J".into(),
    };
    assert_eq!(
        serde_json::to_value(&input).unwrap(),
        serde_json::json!({"kind": "scheduled_message", "tenant_id": "acme", "scheduled_id": "01J"})
    );
    let name = snooze_schedule_name("cv_01A_0123456789abcdef01234567", &utc(2026, 3, 29, 8, 0));
    assert!(name.len() <= 64 && name.starts_with("snooze-"), "{name}");
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    );
}

#[test]
fn the_human_agent_band_is_closed_to_a_schedule() {
    let policy = WindowPolicy {
        channel_type: ChannelType::Messenger,
        window_hours: 24,
        human_agent: true,
    };
    let wrote = utc(2026, 3, 27, 9, 0);
    let w: WindowAtSend = policy
        .window_at(Some(wrote), 0, utc(2026, 3, 29, 9, 0))
        .into();
    assert_eq!((w.open, w.mode), (false, WindowMode::HumanAgent));
}
