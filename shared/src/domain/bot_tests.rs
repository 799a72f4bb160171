use chrono::TimeZone;

use super::*;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 10, minute, 0).unwrap()
}

fn input(json: serde_json::Value) -> BotInput {
    serde_json::from_value(json).unwrap()
}

fn bot(json: serde_json::Value) -> CompiledBot {
    let id = json["id"].as_str().unwrap_or("b1").to_owned();
    let b = input(json)
        .into_bot(&id, &ChannelType::ALL, None, "2026-11-30T10:00:00Z")
        .unwrap();
    CompiledBot::new(b).unwrap()
}

fn error_of(json: serde_json::Value, channels: &[ChannelType]) -> String {
    match input(json).into_bot("b1", channels, None, "2026-11-30T10:00:00Z") {
        Err(Error::Validation { code, message }) => format!("{code}: {message}"),
        other => panic!("expected a 422, got {other:?}"),
    }
}

fn menu() -> serde_json::Value {
    serde_json::json!({
        "name": "Menu",
        "trigger": {"type": "keyword", "keywords": ["menu", "Précio"], "match": "contains"},
        "steps": [
            {"id": "hello", "type": "reply", "text": "Hi!", "next": "ask"},
            {"id": "ask", "type": "ask", "text": "What do you need?", "options": [
                {"id": "hours", "title": "Opening hours", "next": "hours"},
                {"id": "human", "title": "Talk to us", "next": "bye"}
            ]},
            {"id": "hours", "type": "reply", "text": "9 to 6"},
            {"id": "bye", "type": "handover", "text": "Connecting you", "assign_to": "agent-1"}
        ]
    })
}

fn message<'a>(text: &'a str, minute: u32) -> InboundTurn<'a> {
    InboundTurn {
        channel: ChannelType::Whatsapp,
        channel_id: "ch1",
        customer_id: "cu1",
        text: Some(text),
        answer: None,
        at: at(minute),
        first_message: false,
        business_open: true,
        agent_caught_up: false,
    }
}

const OPEN: SendAllowance = SendAllowance {
    free_form: true,
    replies_left: usize::MAX,
};

fn turn(d: Decision) -> Turn {
    match d {
        Decision::Turn(t) => *t,
        Decision::Nothing => panic!("expected a turn"),
    }
}

fn texts(t: &Turn) -> Vec<&str> {
    t.sends.iter().filter_map(|m| m.text.as_deref()).collect()
}

#[test]
fn a_keyword_starts_the_bot_which_replies_then_asks() {
    let bots = [bot(menu())];
    let t = turn(decide(
        &bots,
        &BotRun::default(),
        &message("Show me the MENU please", 0),
        OPEN,
    ));
    assert!(t.starts);
    assert_eq!(texts(&t), ["Hi!", "What do you need?"]);
    let options = t.sends[1].options.as_ref().unwrap();
    assert_eq!(options[0].id, "hours");
    let waiting = t.waiting.unwrap();
    assert_eq!((waiting.step.as_str(), waiting.asked), ("ask", 1));
    assert_eq!(t.exit, None);
}

#[test]
fn keywords_ignore_case_and_accents() {
    let bots = [bot(menu())];
    for text in ["precio?", "PRÉCIO", "el precio por favor"] {
        assert!(matches!(
            decide(&bots, &BotRun::default(), &message(text, 0), OPEN),
            Decision::Turn(_)
        ));
    }
    assert_eq!(
        decide(&bots, &BotRun::default(), &message("hello", 0), OPEN),
        Decision::Nothing
    );
}

#[test]
fn exact_and_starts_with_match_the_whole_or_the_start() {
    let mut exact = menu();
    exact["trigger"]["match"] = "exact".into();
    let mut starts = menu();
    starts["trigger"]["match"] = "starts_with".into();
    let exact = [bot(exact)];
    let starts = [bot(starts)];
    let run = BotRun::default();
    let hit = |bots: &[CompiledBot], text: &str| {
        matches!(
            decide(bots, &run, &message(text, 0), OPEN),
            Decision::Turn(_)
        )
    };
    assert!(hit(&exact, " Menu! "));
    assert!(!hit(&exact, "menu please"));
    assert!(hit(&starts, "Menu please"));
    assert!(!hit(&starts, "the menu"));
}

fn waiting_run(step: &str, asked: u8) -> BotRun {
    BotRun {
        active: Some(ActiveBot {
            bot_id: "b1".into(),
            name: "Menu".into(),
            since: at(0),
            step: step.into(),
            asked,
            waiting_since: at(0),
            timeout_minutes: 30,
        }),
        blocked: false,
        version: 3,
    }
}

#[test]
fn a_button_answer_moves_to_its_next_step() {
    let bots = [bot(menu())];
    let mut m = message("Opening hours", 1);
    m.answer = Some("hours");
    let t = turn(decide(&bots, &waiting_run("ask", 1), &m, OPEN));
    assert!(!t.starts);
    assert_eq!(texts(&t), ["9 to 6"]);
    assert_eq!(t.exit.unwrap().reason, ExitReason::Completed);
}

#[test]
fn a_number_or_a_title_answers_too() {
    let bots = [bot(menu())];
    let by_number = turn(decide(
        &bots,
        &waiting_run("ask", 1),
        &message(" 2 ", 1),
        OPEN,
    ));
    let exit = by_number.exit.clone().unwrap();
    assert_eq!(exit.reason, ExitReason::Handover);
    assert_eq!(exit.assign_to.as_deref(), Some("agent-1"));
    assert_eq!(texts(&by_number), ["Connecting you"]);
    let by_title = turn(decide(
        &bots,
        &waiting_run("ask", 1),
        &message("opening HOURS", 1),
        OPEN,
    ));
    assert_eq!(texts(&by_title), ["9 to 6"]);
    let out_of_range = turn(decide(
        &bots,
        &waiting_run("ask", 1),
        &message("7", 1),
        OPEN,
    ));
    assert_eq!(texts(&out_of_range), ["What do you need?"]);
}

#[test]
fn anything_else_repeats_the_question_once_then_hands_over() {
    let bots = [bot(menu())];
    let again = turn(decide(
        &bots,
        &waiting_run("ask", 1),
        &message("huh?", 5),
        OPEN,
    ));
    assert_eq!(texts(&again), ["What do you need?"]);
    let waiting = again.waiting.unwrap();
    assert_eq!((waiting.asked, waiting.waiting_since), (2, at(5)));
    let gave_up = turn(decide(
        &bots,
        &waiting_run("ask", 2),
        &message("huh?", 6),
        OPEN,
    ));
    assert!(gave_up.sends.is_empty());
    assert_eq!(gave_up.exit.unwrap().reason, ExitReason::Unanswered);
}

#[test]
fn exit_keywords_timeouts_and_removed_bots_stop_it() {
    let bots = [bot(menu())];
    let exit = turn(decide(
        &bots,
        &waiting_run("ask", 1),
        &message("Human!", 1),
        OPEN,
    ))
    .exit
    .unwrap();
    assert_eq!(exit.reason, ExitReason::ExitKeyword);
    assert_eq!(exit.actor, Actor::Customer { id: "cu1".into() });
    let late = turn(decide(
        &bots,
        &waiting_run("ask", 1),
        &message("1", 30),
        OPEN,
    ))
    .exit
    .unwrap();
    assert_eq!((late.reason, late.at), (ExitReason::Timeout, at(30)));
    let gone = turn(decide::<CompiledBot>(
        &[],
        &waiting_run("ask", 1),
        &message("1", 1),
        OPEN,
    ))
    .exit
    .unwrap();
    assert_eq!(gone.reason, ExitReason::BotChanged);
}

#[test]
fn a_blocked_conversation_starts_no_bot() {
    let bots = [bot(menu())];
    let run = BotRun {
        blocked: true,
        ..BotRun::default()
    };
    assert_eq!(
        decide(&bots, &run, &message("menu", 0), OPEN),
        Decision::Nothing
    );
}

#[test]
fn the_highest_priority_wins_and_channels_limit_bots() {
    let mut low = menu();
    low["id"] = "low".into();
    let mut high = menu();
    high["id"] = "high".into();
    high["priority"] = 5.into();
    let mut elsewhere = menu();
    elsewhere["id"] = "elsewhere".into();
    elsewhere["priority"] = 9.into();
    elsewhere["channel_ids"] = serde_json::json!(["ch2"]);
    let bots = [bot(low), bot(high), bot(elsewhere)];
    let t = turn(decide(&bots, &BotRun::default(), &message("menu", 0), OPEN));
    assert_eq!(t.bot_id, "high");
}

#[test]
fn first_message_and_outside_hours_triggers() {
    let first = bot(serde_json::json!({"id": "first", "name": "Welcome",
        "trigger": {"type": "first_message"},
        "steps": [{"id": "w", "type": "reply", "text": "Welcome"}]}));
    let closed = bot(serde_json::json!({"id": "closed", "name": "After hours",
        "trigger": {"type": "outside_hours"},
        "steps": [{"id": "c", "type": "reply", "text": "We are closed"}]}));
    let bots = [first, closed];
    let run = BotRun::default();
    let mut m = message("hi", 0);
    assert_eq!(decide(&bots, &run, &m, OPEN), Decision::Nothing);
    m.first_message = true;
    assert_eq!(turn(decide(&bots, &run, &m, OPEN)).bot_id, "first");
    m.first_message = false;
    m.business_open = false;
    assert_eq!(turn(decide(&bots, &run, &m, OPEN)).bot_id, "closed");
}

#[test]
fn a_regex_trigger_ignores_case() {
    let bots = [bot(serde_json::json!({"name": "Orders",
        "trigger": {"type": "regex", "pattern": r"order\s*#?\d{4,}"},
        "steps": [{"id": "o", "type": "reply", "text": "Looking it up"}]}))];
    let run = BotRun::default();
    assert!(matches!(
        decide(&bots, &run, &message("ORDER #12345 late", 0), OPEN),
        Decision::Turn(_)
    ));
    assert_eq!(
        decide(&bots, &run, &message("order 12", 0), OPEN),
        Decision::Nothing
    );
}

#[test]
fn outside_the_window_the_bot_sends_nothing_and_says_why() {
    let bots = [bot(menu())];
    let closed = SendAllowance {
        free_form: false,
        replies_left: usize::MAX,
    };
    let t = turn(decide(
        &bots,
        &BotRun::default(),
        &message("menu", 0),
        closed,
    ));
    assert!(t.sends.is_empty());
    assert_eq!(t.waiting, None);
    assert_eq!(t.exit.unwrap().reason, ExitReason::WindowClosed);
    let one_left = SendAllowance {
        free_form: true,
        replies_left: 1,
    };
    let t = turn(decide(
        &bots,
        &BotRun::default(),
        &message("menu", 0),
        one_left,
    ));
    assert_eq!(t.exit.unwrap().reason, ExitReason::WindowClosed);
}

#[test]
fn validation_names_the_step() {
    let all = ChannelType::ALL;
    let mut dangling = menu();
    dangling["steps"][0]["next"] = "nowhere".into();
    assert!(error_of(dangling, &all).contains("step `hello`: next `nowhere`"));
    let mut unreachable = menu();
    unreachable["steps"][1]["options"][1]["next"] = "hours".into();
    assert!(error_of(unreachable, &all).contains("step `bye`"));
    let mut long = menu();
    long["steps"][1]["options"][0]["title"] = "Our opening hours today".into();
    let e = error_of(long.clone(), &[ChannelType::Whatsapp]);
    assert!(
        e.starts_with("invalid_bot: step `ask`: option `hours`"),
        "{e}"
    );
    assert!(
        input(long)
            .into_bot("b1", &[ChannelType::Wechat], None, "t")
            .is_ok()
    );
    let mut many = menu();
    many["steps"][1]["options"] = (0..11)
        .map(|i| serde_json::json!({"id": format!("o{i}"), "title": format!("T{i}"), "next": "hours"}))
        .collect();
    assert!(error_of(many, &all).contains("1-10 options"));
    let mut looping = menu();
    looping["steps"][2]["next"] = "hours".into();
    assert!(error_of(looping, &all).contains("without an ask"));
    let mut bad_regex = menu();
    bad_regex["trigger"] = serde_json::json!({"type": "regex", "pattern": "(unclosed"});
    assert!(error_of(bad_regex, &all).starts_with("invalid_bot: trigger: the pattern"));
    let mut costly = menu();
    costly["trigger"] = serde_json::json!({"type": "regex", "pattern": r"(\w{100}){100}"});
    assert!(error_of(costly, &all).contains("too costly"));
    let mut no_keywords = menu();
    no_keywords["trigger"] = serde_json::json!({"type": "keyword", "keywords": []});
    assert!(error_of(no_keywords, &all).contains("trigger"));
}

#[test]
fn an_echoed_get_is_accepted_but_not_another_id() {
    let mut echoed = menu();
    echoed["id"] = "b1".into();
    echoed["created_at"] = "2026-01-01T00:00:00Z".into();
    assert!(
        input(echoed.clone())
            .into_bot("b1", &ChannelType::ALL, None, "t")
            .is_ok()
    );
    let e = input(echoed)
        .into_bot("b2", &ChannelType::ALL, None, "t")
        .unwrap_err();
    assert_eq!(e.code(), "invalid_bot_id");
}

#[test]
fn a_bot_with_defaults_round_trips() {
    let b = input(
        serde_json::json!({"name": "X", "trigger": {"type": "first_message"},
        "steps": [{"id": "a", "type": "reply", "text": "hi"}]}),
    )
    .into_bot("x", &ChannelType::ALL, None, "2026-11-30T10:00:00Z")
    .unwrap();
    assert_eq!(b.exit_keywords, ["agent", "human"]);
    assert_eq!((b.timeout_minutes, b.enabled, b.priority), (30, true, 0));
    let json = serde_json::to_value(&b).unwrap();
    let back: Bot = serde_json::from_value(json).unwrap();
    assert_eq!(back, b);
}

#[test]
fn answers_are_read_from_whatsapp_messages_as_meta_documents_them() {
    // The `messages[]` objects of the Cloud API webhook (interactive and template button
    // replies): what the webhook stores as the message's `raw`.
    let button_reply = serde_json::json!({
        "context": {"from": "15550783881", "id": "wamid.HBgLMTU1NTA3ODM4ODEVAgARGBI"},
        "from": "16505551234",
        "id": "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ",
        "timestamp": "1795512600",
        "type": "interactive",
        "interactive": {
            "type": "button_reply",
            "button_reply": {"id": "returns", "title": "Returns and refunds"}
        }
    });
    assert_eq!(answer_of(&button_reply).as_deref(), Some("returns"));
    let list_reply = serde_json::json!({
        "from": "16505551234",
        "id": "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBR",
        "timestamp": "1795512600",
        "type": "interactive",
        "interactive": {
            "type": "list_reply",
            "list_reply": {"id": "slot-tue-9", "title": "Tue 9:00", "description": "Downtown"}
        }
    });
    assert_eq!(answer_of(&list_reply).as_deref(), Some("slot-tue-9"));
    let template_button = serde_json::json!({
        "from": "16505551234",
        "id": "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBS",
        "timestamp": "1795512600",
        "type": "button",
        "button": {"payload": "STOP_PROMOS", "text": "Stop promotions"}
    });
    assert_eq!(answer_of(&template_button).as_deref(), Some("STOP_PROMOS"));
    let typed = serde_json::json!({
        "from": "16505551234",
        "id": "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBT",
        "timestamp": "1795512600",
        "type": "text",
        "text": {"body": "Returns and refunds"}
    });
    assert_eq!(answer_of(&typed), None);
}

#[test]
fn answers_are_read_from_messenger_and_instagram_events_as_meta_documents_them() {
    // `entry[].messaging[]` events of the Messenger Platform webhook (Instagram's are the
    // same shape): what the webhook stores as the message's `raw`.
    let quick_reply = serde_json::json!({
        "sender": {"id": "24011234567890123"},
        "recipient": {"id": "106540352242922"},
        "timestamp": 1_795_512_600_000_i64,
        "message": {
            "mid": "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fp",
            "text": "My order",
            "quick_reply": {"payload": "orders"}
        }
    });
    assert_eq!(answer_of(&quick_reply).as_deref(), Some("orders"));
    let postback = serde_json::json!({
        "sender": {"id": "24011234567890123"},
        "recipient": {"id": "17841400000000000"},
        "timestamp": 1_795_512_600_000_i64,
        "postback": {"mid": "aWdfZAG1faXRlbToxOklH", "title": "Talk to a person", "payload": "person"}
    });
    assert_eq!(answer_of(&postback).as_deref(), Some("person"));
    let typed = serde_json::json!({
        "sender": {"id": "24011234567890123"},
        "recipient": {"id": "106540352242922"},
        "timestamp": 1_795_512_600_000_i64,
        "message": {"mid": "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM", "text": "orders"}
    });
    assert_eq!(answer_of(&typed), None);
}

#[test]
fn no_answer_is_read_from_empty_odd_or_truncated_fragments() {
    for raw in [
        serde_json::Value::Null,
        serde_json::json!({}),
        serde_json::json!("orders"),
        serde_json::json!({"truncated": true, "bytes": 90_000}),
        serde_json::json!({"interactive": {"type": "button_reply", "button_reply": {"id": ""}}}),
        serde_json::json!({"interactive": {"button_reply": {"id": {"nested": 1}}}}),
        serde_json::json!({"message": {"quick_reply": null}}),
        serde_json::json!({"interactive": {"type": "nfm_reply", "nfm_reply": {"body": "Sent"}}}),
    ] {
        assert_eq!(answer_of(&raw), None, "{raw}");
    }
}

#[test]
fn the_raw_the_webhook_parsers_store_carries_the_answer() {
    use crate::adapters::channels::{messenger, whatsapp};
    use crate::domain::inbound::{ParsedWebhook, WebhookItem};
    let render = |fixture: &str| {
        fixture
            .replace("{{WABA_ID}}", "102290129340398")
            .replace("{{PHONE_NUMBER_ID}}", "106540352242922")
            .replace("{{PAGE_ID}}", "106540352242922")
            .replace("{{IG_ID}}", "17841400000000000")
            .replace("{{SENDER}}", "16505551234")
            .replace("{{MSG_ID}}", "ABCDEF0123456789")
            .replace("{{TIMESTAMP_MS}}", "1795512600000")
            .replace("{{TIMESTAMP}}", "1795512600")
    };
    let answer = |parsed: ParsedWebhook| match &parsed.accounts[0].items[0] {
        WebhookItem::Message(m) => answer_of(&m.raw),
        other => panic!("expected a message, got {other:?}"),
    };
    let wa = |body: &str| whatsapp::webhook::parse_whatsapp(render(body).as_bytes()).unwrap();
    let meta =
        |body: &str| messenger::webhook::parse_messaging(render(body).as_bytes(), None).unwrap();
    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../../tests/fixtures/webhooks/", $name))
        };
    }
    for (body, id) in [
        (
            fixture!("whatsapp/interactive_button_reply.json"),
            Some("confirm_appointment_yes"),
        ),
        (
            fixture!("whatsapp/interactive_list_reply.json"),
            Some("slot_2024_06_13_1500"),
        ),
        (fixture!("whatsapp/button.json"), Some("TRACK_ORDER_48213")),
        (fixture!("whatsapp/text.json"), None),
    ] {
        assert_eq!(answer(wa(body)).as_deref(), id, "{body}");
    }
    for (body, id) in [
        (
            fixture!("messenger/quick_reply.json"),
            Some("QR_ORDER_STATUS"),
        ),
        (
            fixture!("messenger/postback.json"),
            Some("HANDOFF_HUMAN_AGENT"),
        ),
        (
            fixture!("instagram/postback.json"),
            Some("ICEBREAKER_TRACK_ORDER"),
        ),
        (fixture!("messenger/text.json"), None),
    ] {
        assert_eq!(answer(meta(body)).as_deref(), id, "{body}");
    }
}
