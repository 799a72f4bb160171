//! Chatbots under hostile input and races (SPEC §8, issue 13): bad bodies on every bot
//! route, catalog limits, re-deliveries, tenancy, window rules and agents racing a bot
//! turn. The decision is also driven directly (`shared::domain::bot`) where that proves a
//! point without the stack.
//!
//! Several tests here first reproduced defects (a bot sending on after an agent's reply or
//! Exit Bot, punctuation keywords matching everything, keywords the runner could not
//! compile, captions and turns too long to send, numbers read before titles, a bot's reply
//! zeroing `unread_count`, a late event starting a bot, a catalog update over moto's size
//! rule); they now hold.

use std::time::{Duration, Instant};

use chrono::Utc;
use integration_tests::{
    FixtureVars, TestChannel, all_messages, connect, connect_for, delete_as, deliver, fixture, get,
    make_agent, patch_as, post_json, post_meta, post_wechat, put_as, put_bot, sandbox_fail,
    sandbox_outbox, stack, system_events, token, unique_tenant, wait_events, whatsapp_text,
};
use serde_json::{Value, json};
use shared::adapters::dynamo::DynamoStore;
use shared::domain::bot::{
    ActiveBot, BotInput, BotRun, CompiledBot, Decision, InboundTurn, SendAllowance, decide,
};
use shared::domain::channel::ChannelType;
use shared::domain::conversation::conversation_id;
use shared::domain::ids::{ChannelId, TenantId};
use shared::domain::media::{MediaKind, MediaRecord, MediaStatus, clean_key};
use shared::ports::MediaStore;

// ---- helpers ----

fn store() -> DynamoStore {
    let sdk = stack().settings.sdk_config();
    DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        stack().template.local_name("ChatTable").unwrap(),
    )
}

/// A media record of `tenant` with `status` (and, when valid, its file in `clean/`).
async fn media(tenant: &str, status: MediaStatus, kind: MediaKind, mime: &str) -> String {
    let id = ulid::Ulid::new().to_string();
    let tenant_id = TenantId::parse(tenant).unwrap();
    let bytes = format!("{kind:?} bytes").into_bytes();
    if status == MediaStatus::Valid {
        integration_tests::s3_client()
            .put_object()
            .bucket(stack().template.local_name("MediaBucket").unwrap())
            .key(clean_key(&tenant_id, &id, Some("v1")))
            .content_type(mime)
            .body(bytes.clone().into())
            .send()
            .await
            .expect("put clean object");
    }
    store()
        .create_media(&MediaRecord {
            id: id.clone(),
            tenant_id,
            status,
            filename: match kind {
                MediaKind::Audio => "v.mp3",
                _ => "p.jpg",
            }
            .to_owned(),
            mime_type: mime.to_owned(),
            kind,
            size: bytes.len() as u64,
            sha256: None,
            reason_code: None,
            reason: (status == MediaStatus::Rejected).then(|| "bad file".to_owned()),
            created_at: Utc::now(),
            inbound: false,
            version: Some("v1".into()),
        })
        .await
        .expect("media record");
    id
}

fn next(vars: &FixtureVars) -> FixtureVars {
    FixtureVars {
        msg_id: ulid::Ulid::new().to_string(),
        ..vars.clone()
    }
}

/// A WhatsApp customer of `channel` writes `text`: their vars and the conversation id.
async fn whatsapp_says(channel: &TestChannel, text: &str) -> (FixtureVars, String) {
    let vars = FixtureVars::new(channel, false);
    let reply = post_meta("whatsapp", &whatsapp_text(&vars, text)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let id = conversation_id(&ChannelId::parse(&channel.id).unwrap(), &vars.sender);
    (vars, id)
}

/// Everything the sandbox took for `customer` (accepted or not), oldest first.
fn outbox_to(account: &str, customer: &str) -> Vec<Value> {
    let mut items: Vec<Value> = sandbox_outbox(account)
        .into_iter()
        .filter(|i| i["to"] == customer && i["injected"] != true)
        .collect();
    items.sort_by_key(|i| i["seq"].as_u64());
    items
}

async fn wait_sent(account: &str, customer: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sent = outbox_to(account, customer);
        if sent.len() >= count || Instant::now() > deadline {
            return sent;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the conversation has an outbound message with `text` (accepted, maybe
/// not yet sent).
async fn wait_outbound(tenant: &str, conversation: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let found = all_messages(tenant, conversation)
            .await
            .iter()
            .any(|m| m["direction"] == "outbound" && m["text"] == text);
        if found {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no outbound message `{text}`");
}

async fn conversation(tenant: &str, id: &str) -> Value {
    let reply = get(
        &format!("/conversations/{id}"),
        Some(&token(tenant, "agent")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

/// The text a WhatsApp send carries (a text body or an interactive body).
fn sent_text(item: &Value) -> String {
    let body = &item["body"];
    body["text"]["body"]
        .as_str()
        .or_else(|| body["interactive"]["body"]["text"].as_str())
        .or_else(|| body["message"]["text"].as_str())
        .or_else(|| body["text"]["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn menu_bot() -> Value {
    json!({
        "name": "Appointments",
        "trigger": {"type": "keyword", "keywords": ["appointment"], "match": "contains"},
        "steps": [
            {"id": "ask", "type": "ask", "text": "Monday 10:00?", "options": [
                {"id": "yes", "title": "Yes, confirm", "next": "booked"},
                {"id": "no", "title": "No", "next": "human"}
            ]},
            {"id": "booked", "type": "reply", "text": "Booked."},
            {"id": "human", "type": "handover", "text": "An agent will take it from here."}
        ]
    })
}

/// A bot that says two things, then asks.
fn chatty_bot() -> Value {
    json!({
        "name": "Chatty",
        "trigger": {"type": "keyword", "keywords": ["menu"]},
        "steps": [
            {"id": "one", "type": "reply", "text": "bot line one", "next": "two"},
            {"id": "two", "type": "reply", "text": "bot line two", "next": "q"},
            {"id": "q", "type": "ask", "text": "bot question", "options": [
                {"id": "a", "title": "A"}, {"id": "b", "title": "B"}
            ]}
        ]
    })
}

fn bots_handler() -> local_stack::functions::EventHandler {
    local_stack::devserver::event_handler(&stack().template, &stack().settings, "bots")
        .expect("the bots function builds")
}

/// The `MessageReceived` event of a message, as EventBridge delivers it.
fn received_event(tenant: &str, channel: &str, conversation: &str, message: &Value) -> Value {
    json!({
        "version": "0",
        "id": ulid::Ulid::new().to_string(),
        "detail-type": "MessageReceived",
        "source": "chatroom",
        "account": "000000000000",
        "time": message["created_at"],
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "tenant_id": tenant,
            "channel_id": channel,
            "channel": "whatsapp",
            "conversation_id": conversation,
            "message_id": message["id"],
            "direction": "inbound",
            "kind": "text",
            "provider_message_id": message["provider_message_id"],
            "created_at": message["created_at"],
            "has_media": false,
            "standby": false,
            "media": null
        }
    })
}

async fn first_inbound(tenant: &str, conversation: &str) -> Value {
    all_messages(tenant, conversation)
        .await
        .into_iter()
        .find(|m| m["direction"] == "inbound")
        .expect("an inbound message")
}

// ---- the decision, without the stack ----

fn saved(bot: Value, channels: &[ChannelType]) -> Result<CompiledBot, shared::Error> {
    let input: BotInput = serde_json::from_value(bot).expect("a bot body");
    let bot = input.into_bot("b1", channels, None, "2025-01-06T09:00:00.000Z")?;
    Ok(CompiledBot::new(bot).expect("a saved bot compiles"))
}

fn whatsapp_turn(text: &str) -> InboundTurn<'_> {
    InboundTurn {
        channel: ChannelType::Whatsapp,
        channel_id: "ch1",
        customer_id: "cu1",
        text: Some(text),
        answer: None,
        at: Utc::now(),
        first_message: false,
        business_open: true,
        agent_caught_up: false,
    }
}

const OPEN: SendAllowance = SendAllowance {
    free_form: true,
    replies_left: usize::MAX,
};

fn texts(decision: &Decision) -> Vec<String> {
    match decision {
        Decision::Nothing => Vec::new(),
        Decision::Turn(t) => t
            .sends
            .iter()
            .map(|s| s.text.clone().or(s.caption.clone()).unwrap_or_default())
            .collect(),
    }
}

#[test]
fn a_keyword_bot_of_emoji_or_punctuation_does_not_answer_every_message() {
    for keywords in [json!(["👍"]), json!(["?!"]), json!(["🙂", "¿?"])] {
        for how in ["contains", "starts_with"] {
            let bot = saved(
                json!({"name": "Thumbs", "trigger": {"type": "keyword", "keywords": keywords, "match": how},
                       "steps": [{"id": "a", "type": "reply", "text": "Thanks for the thumbs up!"}]}),
                &ChannelType::ALL,
            );
            // Either refused at save (a keyword with no letter or digit never matches
            // as written) or it answers only a message holding the keyword.
            let Ok(bot) = bot else { continue };
            let decision = decide(
                &[bot],
                &BotRun::default(),
                &whatsapp_turn("Where is my order #1234?"),
                OPEN,
            );
            assert_eq!(
                decision,
                Decision::Nothing,
                "keywords {keywords} ({how}) started on an unrelated message"
            );
        }
    }
}

/// The bot waiting at step `q` since now.
fn waiting_at(step: &str) -> BotRun {
    BotRun {
        active: Some(ActiveBot {
            bot_id: "b1".into(),
            name: "Party".into(),
            since: Utc::now(),
            step: step.into(),
            asked: 1,
            waiting_since: Utc::now(),
            timeout_minutes: 30,
        }),
        blocked: false,
        version: 1,
    }
}

#[test]
fn an_option_titled_with_a_number_is_chosen_by_that_title() {
    let bot = saved(
        json!({"name": "Party", "trigger": {"type": "keyword", "keywords": ["table"]},
               "steps": [
                 {"id": "q", "type": "ask", "text": "How many people?", "options": [
                   {"id": "p1", "title": "1", "next": "r1"},
                   {"id": "p2", "title": "2", "next": "r2"},
                   {"id": "p4", "title": "4", "next": "r4"},
                   {"id": "p8", "title": "8", "next": "r8"}]},
                 {"id": "r1", "type": "reply", "text": "table for 1"},
                 {"id": "r2", "type": "reply", "text": "table for 2"},
                 {"id": "r4", "type": "reply", "text": "table for 4"},
                 {"id": "r8", "type": "reply", "text": "table for 8"}]}),
        &ChannelType::ALL,
    );
    // Refusing titles that read as another option's number at save would do too.
    let Ok(bot) = bot else { return };
    let decision = decide(&[bot], &waiting_at("q"), &whatsapp_turn("4"), OPEN);
    assert_eq!(
        texts(&decision),
        ["table for 4"],
        "the customer typed the title `4` and got another option"
    );
}

#[test]
fn a_tapped_button_titled_like_an_exit_keyword_follows_its_option() {
    let bot = saved(
        json!({"name": "Party", "trigger": {"type": "keyword", "keywords": ["help"]},
               "steps": [
                 {"id": "q", "type": "ask", "text": "Who do you want to talk to?", "options": [
                   {"id": "sales", "title": "Sales", "next": "s"},
                   {"id": "human", "title": "Human", "next": "h"}]},
                 {"id": "s", "type": "reply", "text": "Our catalog: ..."},
                 {"id": "h", "type": "handover", "text": "Connecting you to Ana", "assign_to": "ana"}]}),
        &ChannelType::ALL,
    );
    let Ok(bot) = bot else { return };
    let tap = InboundTurn {
        answer: Some("human"),
        ..whatsapp_turn("Human")
    };
    let decision = decide(&[bot], &waiting_at("q"), &tap, OPEN);
    let Decision::Turn(turn) = &decision else {
        panic!("a turn");
    };
    assert_eq!(
        (
            texts(&decision),
            turn.exit.as_ref().map(|e| e.reason.as_str())
        ),
        (vec!["Connecting you to Ana".to_owned()], Some("handover")),
        "the button's own step (message, assignment) was skipped for an exit keyword"
    );
}

#[test]
fn a_reply_chain_longer_than_a_turn_is_refused_or_still_reaches_its_question() {
    let mut steps: Vec<Value> = (1..=5)
        .map(|i| json!({"id": format!("r{i}"), "type": "reply", "text": format!("line {i}"), "next": format!("r{}", i + 1)}))
        .collect();
    steps[4]["next"] = json!("q");
    steps.push(
        json!({"id": "q", "type": "ask", "text": "Which one?", "options": [
        {"id": "a", "title": "A"}, {"id": "b", "title": "B"}]}),
    );
    let bot = saved(
        json!({"name": "Long", "trigger": {"type": "keyword", "keywords": ["info"]}, "steps": steps}),
        &ChannelType::ALL,
    );
    let Ok(bot) = bot else { return };
    let decision = decide(&[bot], &BotRun::default(), &whatsapp_turn("info"), OPEN);
    let sent = texts(&decision);
    assert!(
        sent.iter().any(|t| t == "Which one?"),
        "the question was dropped silently and the bot `completed`: {sent:?}"
    );
}

#[test]
fn a_media_reply_whose_text_cannot_be_a_whatsapp_caption_is_refused_at_save() {
    let caption = "x".repeat(2000);
    let bot = saved(
        json!({"name": "Catalog", "trigger": {"type": "keyword", "keywords": ["catalog"]},
               "steps": [{"id": "pic", "type": "reply", "media_id": "m1", "kind": "image", "text": caption}]}),
        &[ChannelType::Whatsapp],
    );
    let Ok(bot) = bot else { return };
    // Saved: then every turn's send is refused by the send path.
    let Decision::Turn(turn) = decide(&[bot], &BotRun::default(), &whatsapp_turn("catalog"), OPEN)
    else {
        panic!("the bot starts");
    };
    let parts = turn.sends[0].parts(ChannelType::Whatsapp);
    assert!(
        parts.is_ok(),
        "saved, but its only message can never be sent: {parts:?}"
    );
}

#[test]
fn keywords_at_the_documented_limits_compile_for_the_runner() {
    // 1000 keywords of 100 characters (MAX_KEYWORDS, MAX_KEYWORD_CHARS), and keywords
    // whose folded form is much longer than what was typed (NFKD of U+FDFA is 18 chars).
    let ascii: Vec<String> = (0..1000)
        .map(|i| format!("{i:04}{}", "k".repeat(96)))
        .collect();
    let wide: Vec<String> = (0..1000)
        .map(|i| format!("{i:04}{}", "\u{FDFA}".repeat(96)))
        .collect();
    for (what, keywords) in [("ascii", ascii), ("expanding", wide)] {
        for how in ["contains", "starts_with"] {
            let input: BotInput = serde_json::from_value(json!({
                "name": "Big", "trigger": {"type": "keyword", "keywords": keywords, "match": how},
                "steps": [{"id": "a", "type": "reply", "text": "hi"}]}))
            .unwrap();
            let Ok(bot) = input.into_bot("b1", &ChannelType::ALL, None, "2025-01-06T09:00:00Z")
            else {
                continue;
            };
            let started = Instant::now();
            let compiled = CompiledBot::new(bot);
            assert!(
                compiled.is_ok(),
                "{what} keywords ({how}) saved but the runner cannot compile them: {:?}",
                compiled.err()
            );
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{what} ({how}) took {:?} to compile",
                started.elapsed()
            );
        }
    }
}

// ---- the catalog routes: bad input ----

#[tokio::test]
async fn bad_bodies_and_ids_on_the_bot_routes_are_4xx_with_a_code_and_write_nothing() {
    let channel = connect("whatsapp").await;
    let admin = channel.admin();
    let raw = |body: &'static str| {
        let admin = admin.clone();
        async move {
            integration_tests::call(
                "PUT",
                "/bots/b1",
                Some(&admin),
                Some(body.as_bytes().to_vec()),
            )
            .await
        }
    };
    let mut answers = vec![
        ("not json", raw("{\"name\": ").await),
        ("an array", raw("[1, 2]").await),
        ("null", raw("null").await),
        ("empty", raw("").await),
        ("a string for steps", raw(r#"{"name":"x","trigger":{"type":"first_message"},"steps":"a"}"#).await),
        ("a float priority", raw(r#"{"name":"x","priority":1.5,"trigger":{"type":"first_message"},"steps":[{"id":"a","type":"reply","text":"hi"}]}"#).await),
        ("a priority over i32", raw(r#"{"name":"x","priority":99999999999,"trigger":{"type":"first_message"},"steps":[{"id":"a","type":"reply","text":"hi"}]}"#).await),
        ("a negative timeout", raw(r#"{"name":"x","timeout_minutes":-1,"trigger":{"type":"first_message"},"steps":[{"id":"a","type":"reply","text":"hi"}]}"#).await),
        ("an unknown trigger", raw(r#"{"name":"x","trigger":{"type":"moon"},"steps":[{"id":"a","type":"reply","text":"hi"}]}"#).await),
    ];
    let huge = json!({"name": "x", "trigger": {"type": "first_message"},
        "steps": [{"id": "a", "type": "reply", "text": "y".repeat(70_000)}]});
    answers.push((
        "a 70 KB body",
        put_as("/bots/b1", &admin, Some(&huge)).await,
    ));
    for (what, reply) in &answers {
        assert!(
            (400..500).contains(&reply.status) && !reply.code().is_empty(),
            "{what}: {} {}",
            reply.status,
            reply.text
        );
    }
    let ok = |f: &dyn Fn(&mut Value)| {
        let mut b = menu_bot();
        f(&mut b);
        b
    };
    // A bot of one ask with `n` options titled by `title`.
    let ask = |n: usize, title: &dyn Fn(usize) -> String| -> Value {
        let options: Vec<Value> = (0..n)
            .map(|i| json!({"id": format!("o{i}"), "title": title(i)}))
            .collect();
        json!({"name": "Ask", "trigger": {"type": "first_message"},
               "steps": [{"id": "q", "type": "ask", "text": "Pick one", "options": options}]})
    };
    // `n` characters: a letter (so titles differ), then emoji.
    let emoji =
        |n: usize| move |i: usize| format!("{}{}", char::from(b'a' + i as u8), "😀".repeat(n - 1));
    let cases: Vec<(&str, Value, u16)> = vec![
        ("11 options", ask(11, &|i| format!("o{i}")), 422),
        ("10 options, 24-char list titles", ask(10, &emoji(24)), 201),
        ("10 options, 25-char titles", ask(10, &emoji(25)), 422),
        ("3 buttons of 20 emoji-chars", ask(3, &emoji(20)), 201),
        ("3 buttons of 21 chars", ask(3, &emoji(21)), 422),
        (
            "a catastrophic-looking regex",
            json!({"name": "r", "trigger": {"type": "regex", "pattern": "(a+)+$"},
            "steps": [{"id": "a", "type": "reply", "text": "hi"}]}),
            201,
        ),
        (
            "a huge repetition",
            json!({"name": "r", "trigger": {"type": "regex", "pattern": "a{1000}{1000}"},
            "steps": [{"id": "a", "type": "reply", "text": "hi"}]}),
            422,
        ),
        (
            "a broken regex",
            json!({"name": "r", "trigger": {"type": "regex", "pattern": "(unclosed"},
            "steps": [{"id": "a", "type": "reply", "text": "hi"}]}),
            422,
        ),
        (
            "a 501-char regex",
            json!({"name": "r", "trigger": {"type": "regex", "pattern": "a".repeat(501)},
            "steps": [{"id": "a", "type": "reply", "text": "hi"}]}),
            422,
        ),
        (
            "a reply looping on itself",
            json!({"name": "l", "trigger": {"type": "first_message"},
            "steps": [{"id": "a", "type": "reply", "text": "hi", "next": "a"}]}),
            422,
        ),
        (
            "replies looping in two",
            json!({"name": "l", "trigger": {"type": "first_message"},
            "steps": [{"id": "a", "type": "reply", "text": "hi", "next": "b"},
                      {"id": "b", "type": "reply", "text": "ho", "next": "a"}]}),
            422,
        ),
        (
            "a cycle through an ask",
            json!({"name": "l", "trigger": {"type": "first_message"},
            "steps": [{"id": "a", "type": "reply", "text": "hi", "next": "q"},
                      {"id": "q", "type": "ask", "text": "again?", "options": [{"id": "y", "title": "Yes", "next": "a"}]}]}),
            201,
        ),
        (
            "an unreachable step",
            json!({"name": "l", "trigger": {"type": "first_message"},
            "steps": [{"id": "a", "type": "reply", "text": "hi"}, {"id": "b", "type": "reply", "text": "ho"}]}),
            422,
        ),
        (
            "an emoji step id",
            json!({"name": "l", "trigger": {"type": "first_message"},
            "steps": [{"id": "😀", "type": "reply", "text": "hi"}]}),
            422,
        ),
        (
            "no steps",
            json!({"name": "l", "trigger": {"type": "first_message"}, "steps": []}),
            422,
        ),
        (
            "51 steps",
            json!({"name": "l", "trigger": {"type": "first_message"},
            "steps": (0..51).map(|i| json!({"id": format!("s{i}"), "type": "reply", "text": "x", "next": if i < 50 { json!(format!("s{}", i + 1)) } else { Value::Null }})).collect::<Vec<_>>()}),
            422,
        ),
        (
            "a keyword trigger without keywords",
            json!({"name": "k", "trigger": {"type": "keyword", "keywords": []},
            "steps": [{"id": "a", "type": "reply", "text": "hi"}]}),
            422,
        ),
        (
            "a blank exit keyword",
            ok(&|b| b["exit_keywords"] = json!(["  ", "agent"])),
            422,
        ),
        ("timeout 0", ok(&|b| b["timeout_minutes"] = json!(0)), 422),
        (
            "a body id that differs",
            ok(&|b| b["id"] = json!("other")),
            422,
        ),
    ];
    let mut created = Vec::new();
    for (i, (what, body, want)) in cases.iter().enumerate() {
        let id = format!("case{i}");
        let reply = put_as(&format!("/bots/{id}"), &admin, Some(body)).await;
        assert_eq!(reply.status, *want, "{what}: {}", reply.text);
        if *want == 201 {
            created.push(id);
        } else {
            assert!(!reply.code().is_empty(), "{what}: {}", reply.text);
        }
    }
    // Ids in paths: unicode, emoji, too long, traversal.
    for id in [
        "%F0%9F%98%80",
        "caf%C3%A9",
        &"x".repeat(65),
        "..%2Fetc",
        "a%20b",
    ] {
        for reply in [
            put_as(&format!("/bots/{id}"), &admin, Some(&menu_bot())).await,
            get(&format!("/bots/{id}"), Some(&admin)).await,
            delete_as(&format!("/bots/{id}"), &admin).await,
        ] {
            assert!(
                (400..500).contains(&reply.status) && !reply.code().is_empty(),
                "id {id}: {} {}",
                reply.status,
                reply.text
            );
        }
    }
    let list = get("/bots", Some(&admin)).await;
    let mut listed: Vec<String> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    created.sort();
    assert_eq!(listed, created, "only the valid bots were written");
}

#[tokio::test]
async fn the_catalog_size_cap_is_a_422_too_many_bots_and_writes_nothing() {
    let channel = connect("whatsapp").await;
    let admin = channel.admin();
    // About 52 KB a bot (500 keywords of 99 characters, the most a bot takes; the body
    // limit is 64 KB): the 380 KB catalog holds seven.
    let big = |n: usize| {
        json!({"name": format!("Big {n}"), "trigger": {"type": "keyword", "match": "exact",
            "keywords": (0..500).map(|i| format!("{n}-{i:04}-{}", "k".repeat(92))).collect::<Vec<_>>()},
            "steps": [{"id": "a", "type": "reply", "text": "hi"}]})
    };
    let mut statuses = Vec::new();
    let mut refused = None;
    for n in 0..10 {
        let reply = put_as(&format!("/bots/big{n}"), &admin, Some(&big(n))).await;
        statuses.push(reply.status);
        if reply.status != 201 {
            refused = Some((n, reply));
            break;
        }
    }
    let (n, reply) = refused.expect("the catalog cap is reached");
    assert_eq!(
        (reply.status, reply.code()),
        (422, "too_many_bots"),
        "{statuses:?} {}",
        reply.text
    );
    let list = get("/bots", Some(&admin)).await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body["items"].as_array().unwrap().len(), n);
    // A keyword bot of 1000 keywords of 100 characters (the documented maximum) cannot
    // even be sent: the body limit (64 KB) answers first, still a 4xx with a code.
    let max = json!({"name": "Max", "trigger": {"type": "keyword",
        "keywords": (0..1000).map(|i| format!("{i:04}{}", "k".repeat(96))).collect::<Vec<_>>()},
        "steps": [{"id": "a", "type": "reply", "text": "hi"}]});
    let reply = put_as("/bots/max", &admin, Some(&max)).await;
    assert!(
        (400..500).contains(&reply.status) && !reply.code().is_empty(),
        "{} {}",
        reply.status,
        reply.text
    );
    // The runner still works with a full catalog.
    let (vars, id) = whatsapp_says(&channel, &format!("3-0042-{}", "k".repeat(92))).await;
    let sent = wait_sent(&channel.external_id, &vars.sender, 1).await;
    assert_eq!(sent.len(), 1, "the bot of a full catalog answers");
    assert_eq!(
        wait_events(&channel.tenant, &id, "bot_exited", 1).await[0]["reason"],
        "completed"
    );
}

#[tokio::test]
async fn media_steps_must_be_the_tenants_own_valid_media() {
    let channel = connect("whatsapp").await;
    let other = connect("whatsapp").await;
    let image = |id: &str| {
        json!({"name": "Pic", "trigger": {"type": "first_message"},
               "steps": [{"id": "p", "type": "reply", "media_id": id, "text": "our menu"}]})
    };
    let theirs = media(
        &other.tenant,
        MediaStatus::Valid,
        MediaKind::Image,
        "image/jpeg",
    )
    .await;
    let pending = media(
        &channel.tenant,
        MediaStatus::Pending,
        MediaKind::Image,
        "image/jpeg",
    )
    .await;
    let rejected = media(
        &channel.tenant,
        MediaStatus::Rejected,
        MediaKind::Image,
        "image/jpeg",
    )
    .await;
    for (id, code) in [
        (theirs.as_str(), "unknown_media"),
        (pending.as_str(), "media_not_ready"),
        (rejected.as_str(), "media_rejected"),
        ("not-a-media-id-😀", "unknown_media"),
    ] {
        let reply = put_as("/bots/pic", &channel.admin(), Some(&image(id))).await;
        assert_eq!((reply.status, reply.code()), (422, code), "{}", reply.text);
    }
    assert_eq!(get("/bots/pic", Some(&channel.admin())).await.status, 404);
}

#[tokio::test]
async fn a_media_reply_with_a_long_text_is_refused_at_save_not_at_every_turn() {
    let channel = connect("whatsapp").await;
    let image = media(
        &channel.tenant,
        MediaStatus::Valid,
        MediaKind::Image,
        "image/jpeg",
    )
    .await;
    let bot = json!({"name": "Catalog", "trigger": {"type": "keyword", "keywords": ["catalog"]},
        "steps": [{"id": "pic", "type": "reply", "media_id": image, "text": "c".repeat(1500)}]});
    let reply = put_as("/bots/catalog", &channel.admin(), Some(&bot)).await;
    if reply.status == 422 {
        return;
    }
    assert_eq!(reply.status, 201, "{}", reply.text);
    let (vars, id) = whatsapp_says(&channel, "send me the catalog").await;
    let exited = wait_events(&channel.tenant, &id, "bot_exited", 1).await;
    assert_eq!(exited.len(), 1);
    // Saved with a 1500-character caption (WhatsApp takes 1024): the send path refuses
    // the turn's only message, yet the conversation says the bot finished.
    assert_eq!(
        (
            exited[0]["reason"].as_str(),
            outbox_to(&channel.external_id, &vars.sender).len()
        ),
        (Some("completed"), 1),
        "{}",
        exited[0]
    );
}

#[tokio::test]
async fn a_handover_to_an_agent_deleted_since_still_hands_over_without_a_5xx() {
    let channel = connect("whatsapp").await;
    make_agent(&channel, "ana").await;
    let mut bot = menu_bot();
    bot["steps"][2]["assign_to"] = json!("ana");
    put_bot(&channel, "appointments", &bot).await;
    let deleted = delete_as("/agents/ana", &channel.admin()).await;
    assert!((200..300).contains(&deleted.status), "{}", deleted.text);
    let (vars, id) = whatsapp_says(&channel, "appointment").await;
    assert_eq!(
        wait_sent(&channel.external_id, &vars.sender, 1).await.len(),
        1
    );
    post_meta("whatsapp", &whatsapp_text(&next(&vars), "No")).await;
    let exited = wait_events(&channel.tenant, &id, "bot_exited", 1).await;
    assert_eq!(exited.len(), 1);
    assert_eq!(exited[0]["reason"], "handover");
    let c = conversation(&channel.tenant, &id).await;
    assert_eq!(c["bot"]["active"], false);
    assert_eq!(
        c["assignee"],
        Value::Null,
        "never assigned to a deleted agent"
    );
}

// ---- races ----

/// The bot's sends recorded after the agent's message at the provider.
fn bot_lines_after(account: &str, customer: &str, marker: &str) -> Vec<String> {
    let sent = outbox_to(account, customer);
    let at = sent
        .iter()
        .position(|i| sent_text(i) == marker)
        .unwrap_or(sent.len());
    sent[at + 1..].iter().map(sent_text).collect()
}

#[tokio::test]
async fn an_agent_reply_during_a_bot_turn_stops_the_rest_of_the_turn() {
    let channel = connect("whatsapp").await;
    put_bot(&channel, "chatty", &chatty_bot()).await;
    // The bot's first message is slow at the provider: the agent answers meanwhile.
    sandbox_fail(&channel.external_id, vec![json!({"delay_ms": 1500})]);
    let (vars, id) = whatsapp_says(&channel, "menu").await;
    wait_outbound(&channel.tenant, &id, "bot line one").await;
    let agent = post_json(
        &format!("/conversations/{id}/messages"),
        Some(&token(&channel.tenant, "agent")),
        &json!({"kind": "text", "text": "Ana here, I will help you."}),
    )
    .await;
    assert_eq!(agent.status, 202, "{}", agent.text);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let exited = system_events(&channel.tenant, &id, "bot_exited").await;
    assert_eq!(exited.len(), 1, "{exited:?}");
    assert_eq!(exited[0]["reason"], "agent_replied");
    assert_eq!(
        conversation(&channel.tenant, &id).await["bot"]["active"],
        false
    );
    let after = bot_lines_after(
        &channel.external_id,
        &vars.sender,
        "Ana here, I will help you.",
    );
    let bot_after: Vec<&String> = after.iter().filter(|t| t.starts_with("bot ")).collect();
    assert!(
        bot_after.is_empty() || bot_after == ["bot line one"],
        "the bot kept sending after the agent's message was accepted: {after:?}"
    );
}

#[tokio::test]
async fn exit_bot_during_a_bot_turn_stops_the_rest_of_the_turn() {
    let channel = connect("whatsapp").await;
    put_bot(&channel, "chatty", &chatty_bot()).await;
    sandbox_fail(&channel.external_id, vec![json!({"delay_ms": 1500})]);
    let (vars, id) = whatsapp_says(&channel, "menu").await;
    wait_outbound(&channel.tenant, &id, "bot line one").await;
    let exit = post_json(
        &format!("/conversations/{id}/bot/exit"),
        Some(&token(&channel.tenant, "agent")),
        &json!({}),
    )
    .await;
    assert_eq!(exit.status, 200, "{}", exit.text);
    assert_eq!(exit.body["bot"]["active"], false);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let exited = system_events(&channel.tenant, &id, "bot_exited").await;
    assert_eq!(exited.len(), 1, "{exited:?}");
    assert_eq!(exited[0]["reason"], "exit_bot");
    let sent: Vec<String> = outbox_to(&channel.external_id, &vars.sender)
        .iter()
        .map(sent_text)
        .collect();
    assert_eq!(
        sent,
        ["bot line one"],
        "after Exit Bot answered, the bot went on sending"
    );
}

#[tokio::test]
async fn exit_bot_clicked_five_times_with_an_agent_reply_stops_the_bot_once() {
    let channel = connect("whatsapp").await;
    put_bot(&channel, "appointments", &menu_bot()).await;
    let (vars, id) = whatsapp_says(&channel, "appointment").await;
    assert_eq!(
        wait_sent(&channel.external_id, &vars.sender, 1).await.len(),
        1
    );
    let agent = token(&channel.tenant, "agent");
    let path = format!("/conversations/{id}/bot/exit");
    let empty = json!({});
    let clicks = (0..5).map(|_| post_json(&path, Some(&agent), &empty));
    let send_path = format!("/conversations/{id}/messages");
    let text = json!({"kind": "text", "text": "Ana here."});
    let reply = post_json(&send_path, Some(&agent), &text);
    let (clicks, reply) = tokio::join!(futures::future::join_all(clicks), reply);
    assert_eq!(reply.status, 202, "{}", reply.text);
    for click in clicks {
        assert_eq!(click.status, 200, "{}", click.text);
        assert_eq!(click.body["bot"]["active"], false);
    }
    let exited = system_events(&channel.tenant, &id, "bot_exited").await;
    assert_eq!(exited.len(), 1, "{exited:?}");
    assert!(matches!(
        exited[0]["reason"].as_str(),
        Some("exit_bot" | "agent_replied")
    ));
}

#[tokio::test]
async fn a_late_event_does_not_start_a_bot_on_a_message_an_agent_already_answered() {
    let channel = connect("whatsapp").await;
    // Disabled when the message comes: its first delivery makes no turn (as a delivery
    // that failed and is retried later would not).
    let mut bot = menu_bot();
    bot["enabled"] = json!(false);
    put_bot(&channel, "appointments", &bot).await;
    let (vars, id) = whatsapp_says(&channel, "appointment").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let agent = post_json(
        &format!("/conversations/{id}/messages"),
        Some(&token(&channel.tenant, "agent")),
        &json!({"kind": "text", "text": "Ana here: what day suits you?"}),
    )
    .await;
    assert_eq!(agent.status, 202, "{}", agent.text);
    bot["enabled"] = json!(true);
    put_bot(&channel, "appointments", &bot).await;
    // EventBridge delivers the message's event again (a retry).
    let message = first_inbound(&channel.tenant, &id).await;
    let event = received_event(&channel.tenant, &channel.id, &id, &message);
    assert_eq!(deliver(&bots_handler(), event).await, Ok(()));
    let after = bot_lines_after(
        &channel.external_id,
        &vars.sender,
        "Ana here: what day suits you?",
    );
    assert!(
        after.is_empty(),
        "a bot started on a message the agent had already answered: {after:?}"
    );
}

#[tokio::test]
async fn admins_saving_bots_at_once_lose_no_write() {
    let channel = connect("whatsapp").await;
    let admin = channel.admin();
    let puts = (0..6).map(|i| {
        let admin = admin.clone();
        async move {
            let mut bot = menu_bot();
            bot["name"] = json!(format!("Bot {i}"));
            let reply = put_as(&format!("/bots/race{i}"), &admin, Some(&bot)).await;
            (i, reply)
        }
    });
    let mut won = Vec::new();
    for (i, reply) in futures::future::join_all(puts).await {
        assert!(
            matches!(reply.status, 201 | 409),
            "bot {i}: {} {}",
            reply.status,
            reply.text
        );
        if reply.status == 201 {
            won.push(format!("race{i}"));
        }
    }
    // Two admins writing the same bot: one version wins whole.
    let same = (0..2).map(|i| {
        let admin = admin.clone();
        async move {
            let mut bot = menu_bot();
            bot["name"] = json!(format!("Same {i}"));
            bot["priority"] = json!(i);
            put_as("/bots/same", &admin, Some(&bot)).await
        }
    });
    for reply in futures::future::join_all(same).await {
        assert!(matches!(reply.status, 200 | 201 | 409), "{}", reply.text);
    }
    let same = get("/bots/same", Some(&admin)).await;
    assert_eq!(same.status, 200);
    let name = same.body["name"].as_str().unwrap();
    let priority = same.body["priority"].as_i64().unwrap();
    assert_eq!(name, format!("Same {priority}"), "a mix of two writes");
    let list = get("/bots", Some(&admin)).await;
    let listed: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    for id in &won {
        assert!(
            listed.contains(&id.as_str()),
            "{id} answered 201 but is gone: {listed:?}"
        );
    }
    assert!(won.len() >= 2, "most concurrent saves succeed: {won:?}");
}

#[tokio::test]
async fn deleting_a_waiting_bot_stops_it_at_the_next_message() {
    let channel = connect("whatsapp").await;
    put_bot(&channel, "appointments", &menu_bot()).await;
    let (vars, id) = whatsapp_says(&channel, "appointment").await;
    assert_eq!(
        wait_sent(&channel.external_id, &vars.sender, 1).await.len(),
        1
    );
    let gone = delete_as("/bots/appointments", &channel.admin()).await;
    assert_eq!(gone.status, 204, "{}", gone.text);
    // Still shown as waiting until the next message (the conversation is not touched).
    post_meta("whatsapp", &whatsapp_text(&next(&vars), "Yes, confirm")).await;
    let exited = wait_events(&channel.tenant, &id, "bot_exited", 1).await;
    assert_eq!(exited.len(), 1);
    assert_eq!(exited[0]["reason"], "bot_changed");
    assert_eq!(exited[0]["actor"]["type"], "system");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(outbox_to(&channel.external_id, &vars.sender).len(), 1);
    assert_eq!(
        conversation(&channel.tenant, &id).await["bot"]["active"],
        false
    );
}

#[tokio::test]
async fn concurrent_customer_messages_on_a_waiting_bot_make_one_turn_each_at_most() {
    let channel = connect("whatsapp").await;
    put_bot(&channel, "appointments", &menu_bot()).await;
    let (vars, id) = whatsapp_says(&channel, "appointment").await;
    assert_eq!(
        wait_sent(&channel.external_id, &vars.sender, 1).await.len(),
        1
    );
    let messages = ["hmm", "what?", "Yes, confirm", "ok"].map(|t| {
        let v = next(&vars);
        async move { post_meta("whatsapp", &whatsapp_text(&v, t)).await }
    });
    for reply in futures::future::join_all(messages).await {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let sent = outbox_to(&channel.external_id, &vars.sender);
    assert!(
        sent.len() <= 5,
        "at most one bot message per customer message: {}",
        sent.len()
    );
    let exited = system_events(&channel.tenant, &id, "bot_exited").await;
    assert_eq!(exited.len(), 1, "the bot stopped exactly once: {exited:?}");
    assert_eq!(
        system_events(&channel.tenant, &id, "bot_started")
            .await
            .len(),
        1
    );
    assert_eq!(
        conversation(&channel.tenant, &id).await["bot"]["active"],
        false
    );
}

// ---- exactly one turn per inbound message ----

#[tokio::test]
async fn a_redelivered_webhook_or_event_makes_no_second_turn() {
    let channel = connect("whatsapp").await;
    put_bot(&channel, "appointments", &menu_bot()).await;
    let vars = FixtureVars::new(&channel, false);
    let body = whatsapp_text(&vars, "appointment");
    assert_eq!(post_meta("whatsapp", &body).await.status, 200);
    // Meta re-delivers the same webhook, three times at once and twice after.
    let again = (0..3).map(|_| post_meta("whatsapp", &body));
    for reply in futures::future::join_all(again).await {
        assert_eq!(reply.status, 200);
    }
    let id = conversation_id(&ChannelId::parse(&channel.id).unwrap(), &vars.sender);
    assert_eq!(
        wait_sent(&channel.external_id, &vars.sender, 1).await.len(),
        1
    );
    for _ in 0..2 {
        assert_eq!(post_meta("whatsapp", &body).await.status, 200);
    }
    // And EventBridge re-delivers the event, sequentially and concurrently.
    let message = first_inbound(&channel.tenant, &id).await;
    let event = received_event(&channel.tenant, &channel.id, &id, &message);
    let handler = bots_handler();
    for _ in 0..3 {
        assert_eq!(deliver(&handler, event.clone()).await, Ok(()));
    }
    for result in futures::future::join_all((0..5).map(|_| deliver(&handler, event.clone()))).await
    {
        assert_eq!(result, Ok(()));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        outbox_to(&channel.external_id, &vars.sender).len(),
        1,
        "one question"
    );
    let inbound = all_messages(&channel.tenant, &id)
        .await
        .iter()
        .filter(|m| m["direction"] == "inbound")
        .count();
    assert_eq!(inbound, 1, "one stored message");
    assert_eq!(
        system_events(&channel.tenant, &id, "bot_started")
            .await
            .len(),
        1
    );
    let bot = &conversation(&channel.tenant, &id).await["bot"];
    assert_eq!(
        (bot["active"].clone(), bot["step"].clone()),
        (json!(true), json!("ask"))
    );
}

#[tokio::test]
async fn events_naming_a_missing_message_or_another_tenants_conversation_do_nothing() {
    let a = connect("whatsapp").await;
    let b = connect("whatsapp").await;
    put_bot(&a, "appointments", &menu_bot()).await;
    put_bot(&b, "appointments", &menu_bot()).await;
    // B's customer: no trigger, no bot.
    let (b_vars, b_id) = whatsapp_says(&b, "hello there").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let b_message = first_inbound(&b.tenant, &b_id).await;
    let handler = bots_handler();
    // A's tenant id with B's conversation and message.
    let forged = received_event(&a.tenant, &a.id, &b_id, &b_message);
    assert_eq!(handler(forged).await, Ok(()));
    // B's own conversation, a message id that does not exist (and a malformed one).
    let mut missing = b_message.clone();
    missing["id"] = json!(ulid::Ulid::new().to_string());
    assert_eq!(
        handler(received_event(&b.tenant, &b.id, &b_id, &missing)).await,
        Ok(())
    );
    missing["id"] = json!("../../CONV");
    assert_eq!(
        handler(received_event(&b.tenant, &b.id, &b_id, &missing)).await,
        Ok(())
    );
    // A conversation id that is not one, and a tenant id that is not one.
    assert_eq!(
        handler(received_event(&a.tenant, &a.id, "cv_😀", &b_message)).await,
        Ok(())
    );
    assert_eq!(
        handler(received_event("T#1", &a.id, &b_id, &b_message)).await,
        Ok(())
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(outbox_to(&b.external_id, &b_vars.sender).is_empty());
    assert!(outbox_to(&a.external_id, &b_vars.sender).is_empty());
    assert!(
        system_events(&b.tenant, &b_id, "bot_started")
            .await
            .is_empty()
    );
    assert!(
        system_events(&b.tenant, &b_id, "bot_exited")
            .await
            .is_empty()
    );
    assert_eq!(conversation(&b.tenant, &b_id).await["bot"]["active"], false);
}

// ---- window rules ----

/// A customer of `channel` (`kind`) wrote `hours_ago`: their id and the conversation id.
async fn wrote_hours_ago(channel: &TestChannel, kind: &str, hours_ago: i64) -> (String, String) {
    let mut vars = FixtureVars::new(channel, false);
    vars.timestamp -= hours_ago * 3600;
    let reply = post_meta(kind, &vars.render(&fixture(&format!("{kind}/text.json")))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let id = conversation_id(&ChannelId::parse(&channel.id).unwrap(), &vars.sender);
    (vars.sender, id)
}

#[tokio::test]
async fn a_bot_never_sends_outside_the_free_form_window_nor_with_the_human_agent_tag() {
    let hello = json!({"name": "Hello", "trigger": {"type": "first_message"},
        "steps": [{"id": "hi", "type": "reply", "text": "Hi! How can we help?"}]});
    let messenger = connect("messenger").await;
    let instagram = connect_for(&unique_tenant(), "instagram", json!({"human_agent": true})).await;
    let whatsapp = connect("whatsapp").await;
    let mut cases = Vec::new();
    for (channel, kind, hours) in [
        (&messenger, "messenger", 30),
        (&messenger, "messenger", 24 * 6),
        (&instagram, "instagram", 30),
        (&whatsapp, "whatsapp", 25),
    ] {
        put_bot(channel, "hello", &hello).await;
        let (customer, id) = wrote_hours_ago(channel, kind, hours).await;
        cases.push((channel, kind, hours, customer, id));
    }
    for (channel, kind, hours, customer, id) in &cases {
        let notes = wait_events(&channel.tenant, id, "bot_exited", 1).await;
        assert_eq!(notes.len(), 1, "{kind} {hours} h: a note says why");
        assert_eq!(notes[0]["reason"], "window_closed", "{kind} {hours} h");
        assert!(
            system_events(&channel.tenant, id, "bot_started")
                .await
                .is_empty(),
            "{kind} {hours} h"
        );
        let sent = outbox_to(&channel.external_id, customer);
        assert!(sent.is_empty(), "{kind} {hours} h: the bot sent {sent:?}");
    }
    // Every bot send of these tenants, whatever happened: never tagged.
    for channel in [&messenger, &instagram, &whatsapp] {
        for item in sandbox_outbox(&channel.external_id) {
            assert!(!item["body"].to_string().contains("HUMAN_AGENT"), "{item}");
        }
    }
}

/// A WeChat channel with its own AppID (its sandbox records are its own).
async fn wechat_channel() -> (TestChannel, String) {
    let app = format!("wx{}", &ulid::Ulid::new().to_string().to_lowercase()[..14]);
    let wechat_token = format!("wx-token-{}", ulid::Ulid::new());
    let mut c = connect_for(
        &unique_tenant(),
        "wechat",
        json!({"credentials": {"app_id": app, "app_secret": "wx-secret", "token": wechat_token}}),
    )
    .await;
    c.wechat_token = wechat_token;
    (c, app)
}

#[tokio::test]
async fn a_wechat_turn_over_the_reply_quota_sends_all_or_nothing() {
    let (channel, app) = wechat_channel().await;
    let voice = media(
        &channel.tenant,
        MediaStatus::Valid,
        MediaKind::Audio,
        "audio/mpeg",
    )
    .await;
    // Three voice replies with a note each: six WeChat messages, one over the quota of 5.
    let step = |i: usize, next: Option<&str>| json!({"id": format!("v{i}"), "type": "reply", "media_id": voice, "text": format!("note {i}"), "next": next});
    put_bot(
        &channel,
        "voices",
        &json!({"name": "Voices", "trigger": {"type": "keyword", "keywords": ["voice"]},
                "steps": [step(1, Some("v2")), step(2, Some("v3")), step(3, None)]}),
    )
    .await;
    let vars = FixtureVars::new(&channel, true);
    let xml = vars
        .render(&fixture("wechat/text.xml"))
        .replace("你好，请问今天下单明天能发货吗？", "voice please");
    assert_eq!(post_wechat(&channel, &xml).await.status, 200);
    let id = conversation_id(&ChannelId::parse(&channel.id).unwrap(), &vars.sender);
    let exited = wait_events(&channel.tenant, &id, "bot_exited", 1).await;
    assert_eq!(exited.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent: Vec<Value> = sandbox_outbox(&app)
        .into_iter()
        .filter(|i| i["status"] == 200 && i["response"].get("errcode").is_none_or(|c| c == 0))
        .filter(|i| i["body"]["touser"] == vars.sender.as_str())
        .collect();
    let notes: Vec<String> = sent
        .iter()
        .map(sent_text)
        .filter(|t| t.starts_with("note"))
        .collect();
    let voices = sent
        .iter()
        .filter(|i| i["body"]["msgtype"] == "voice")
        .count();
    assert!(
        (notes.len(), voices) == (0, 0) || (notes.len(), voices) == (3, 3),
        "a turn the quota cannot hold went out in part: {notes:?} and {voices} voices, the bot `{}`",
        exited[0]["reason"]
    );
}

// ---- tenancy ----

#[tokio::test]
async fn another_tenant_cannot_read_change_delete_or_exit_a_bot() {
    let a = connect("whatsapp").await;
    let b = connect("whatsapp").await;
    put_bot(&a, "appointments", &menu_bot()).await;
    let (vars, a_conversation) = whatsapp_says(&a, "appointment").await;
    assert_eq!(wait_sent(&a.external_id, &vars.sender, 1).await.len(), 1);
    let b_admin = b.admin();
    assert_eq!(get("/bots/appointments", Some(&b_admin)).await.status, 404);
    assert_eq!(
        get("/bots", Some(&b_admin)).await.body["items"],
        json!([]),
        "B lists none of A's bots"
    );
    assert_eq!(delete_as("/bots/appointments", &b_admin).await.status, 404);
    let exit = post_json(
        &format!("/conversations/{a_conversation}/bot/exit"),
        Some(&b_admin),
        &json!({}),
    )
    .await;
    assert_eq!(exit.status, 404, "{}", exit.text);
    assert!(!exit.text.contains("Appointments"), "{}", exit.text);
    // B's PUT of the same id makes B's own bot; A's references are unknown to B.
    let mut theirs = menu_bot();
    theirs["channel_ids"] = json!([a.id]);
    let reply = put_as("/bots/appointments", &b_admin, Some(&theirs)).await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "unknown_channel"),
        "{}",
        reply.text
    );
    make_agent(&a, "ana").await;
    let mut assign = menu_bot();
    assign["steps"][2]["assign_to"] = json!("ana");
    let reply = put_as("/bots/appointments", &b_admin, Some(&assign)).await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "unknown_agent"),
        "{}",
        reply.text
    );
    let mut mine = menu_bot();
    mine["name"] = json!("B's own");
    assert_eq!(
        put_as("/bots/appointments", &b_admin, Some(&mine))
            .await
            .status,
        201
    );
    let a_bot = get("/bots/appointments", Some(&a.admin())).await;
    assert_eq!(a_bot.body["name"], "Appointments", "A's bot is untouched");
    let a_state = conversation(&a.tenant, &a_conversation).await;
    assert_eq!(a_state["bot"]["active"], true, "A's bot still runs");
    assert!(
        system_events(&a.tenant, &a_conversation, "bot_exited")
            .await
            .is_empty()
    );
}

// ---- shapes ----

fn assert_bot_shape(what: &str, c: &Value, active: bool) {
    let bot = &c["bot"];
    for key in ["active", "bot_id", "name", "since", "step"] {
        assert!(bot.get(key).is_some(), "{what}: bot.{key} missing in {bot}");
    }
    assert_eq!(bot["active"], active, "{what}: {bot}");
    if active {
        assert_eq!(bot["bot_id"], "appointments", "{what}");
        assert_eq!(bot["name"], "Appointments", "{what}");
        assert_eq!(bot["step"], "ask", "{what}");
        assert!(
            bot["since"].as_str().is_some_and(|s| s.ends_with('Z')),
            "{what}: since {}",
            bot["since"]
        );
    }
}

#[tokio::test]
async fn every_conversation_read_shows_the_bot_and_system_messages_say_why() {
    let channel = connect("whatsapp").await;
    make_agent(&channel, "agent-1").await;
    put_bot(&channel, "appointments", &menu_bot()).await;
    let (vars, id) = whatsapp_says(&channel, "appointment").await;
    assert_eq!(
        wait_sent(&channel.external_id, &vars.sender, 1).await.len(),
        1
    );
    let agent = token(&channel.tenant, "agent");
    let listed = get("/conversations", Some(&agent)).await;
    assert_bot_shape("list", &listed.body["items"][0], true);
    let filtered = get("/conversations?bot=active", Some(&agent)).await;
    assert_bot_shape("bot=active", &filtered.body["items"][0], true);
    assert_bot_shape("get", &conversation(&channel.tenant, &id).await, true);
    let assigned = put_as(
        &format!("/conversations/{id}/assignee"),
        &agent,
        Some(&json!({"agent_id": "agent-1"})),
    )
    .await;
    assert_eq!(assigned.status, 200, "{}", assigned.text);
    assert_bot_shape("assignee", &assigned.body, true);
    let exit = post_json(
        &format!("/conversations/{id}/bot/exit"),
        Some(&agent),
        &json!({}),
    )
    .await;
    assert_bot_shape("exit", &exit.body, false);
    let closed = patch_as(
        &format!("/conversations/{id}"),
        &agent,
        &json!({"status": "closed"}),
    )
    .await;
    assert_eq!(closed.status, 200, "{}", closed.text);
    assert_bot_shape("patch", &closed.body, false);
    let started = system_events(&channel.tenant, &id, "bot_started").await;
    assert_eq!(started.len(), 1);
    assert_eq!(
        started[0]["actor"],
        json!({"type": "bot", "id": "appointments"})
    );
    let exited = system_events(&channel.tenant, &id, "bot_exited").await;
    assert_eq!(exited.len(), 1);
    assert_eq!(exited[0]["reason"], "exit_bot");
    assert_eq!(
        exited[0]["actor"],
        json!({"type": "agent", "id": "agent-1"})
    );
    // An empty value is no filter; a repeated one is read once.
    for bad in ["bot=inactive", "bot=ACTIVE", "bot=", "bot=active&bot=none"] {
        let reply = get(&format!("/conversations?{bad}"), Some(&agent)).await;
        assert!(
            reply.status == 400
                || (reply.status == 200 && matches!(bad, "bot=" | "bot=active&bot=none")),
            "{bad}: {} {}",
            reply.status,
            reply.text
        );
    }
}

#[tokio::test]
async fn a_bot_reply_does_not_mark_the_customers_messages_read() {
    let channel = connect("whatsapp").await;
    put_bot(&channel, "appointments", &menu_bot()).await;
    let (vars, id) = whatsapp_says(&channel, "appointment").await;
    assert_eq!(
        wait_sent(&channel.external_id, &vars.sender, 1).await.len(),
        1
    );
    // The customer talks to the bot and asks for a person: no agent has read any of it.
    post_meta("whatsapp", &whatsapp_text(&next(&vars), "No")).await;
    assert_eq!(
        wait_events(&channel.tenant, &id, "bot_exited", 1).await[0]["reason"],
        "handover"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = conversation(&channel.tenant, &id).await;
    assert_eq!(
        c["unread_count"], 2,
        "two customer messages no agent has read (a bot's reply is not an agent reading)"
    );
}

#[tokio::test]
async fn the_longest_option_titles_a_save_allows_are_accepted_by_the_provider() {
    let channel = connect("whatsapp").await;
    let title =
        |n: usize, i: usize| format!("{}{}", char::from(b'a' + i as u8), "😀".repeat(n - 1));
    let options = |count: usize, n: usize| -> Vec<Value> {
        (0..count)
            .map(|i| json!({"id": format!("o{i}-{}", "é".repeat(150)), "title": title(n, i)}))
            .collect()
    };
    put_bot(
        &channel,
        "lists",
        &json!({"name": "Lists", "trigger": {"type": "keyword", "keywords": ["list"]},
                "steps": [{"id": "q", "type": "ask", "text": "q".repeat(1024), "options": options(10, 24)}]}),
    )
    .await;
    put_bot(
        &channel,
        "buttons",
        &json!({"name": "Buttons", "trigger": {"type": "keyword", "keywords": ["buttons"]},
                "steps": [{"id": "q", "type": "ask", "text": "Pick", "options": options(3, 20)}]}),
    )
    .await;
    for word in ["list", "buttons"] {
        let (vars, id) = whatsapp_says(&channel, word).await;
        let sent = wait_sent(&channel.external_id, &vars.sender, 1).await;
        assert_eq!(
            sent.len(),
            1,
            "{word}: {:?}",
            system_events(&channel.tenant, &id, "bot_exited").await
        );
        assert_eq!(
            sent[0]["status"], 200,
            "{word}: the provider refused {}",
            sent[0]
        );
    }
}

#[tokio::test]
async fn an_emoji_keyword_bot_does_not_hijack_every_conversation() {
    let channel = connect("whatsapp").await;
    put_bot(
        &channel,
        "thumbs",
        &json!({"name": "Thumbs", "trigger": {"type": "keyword", "keywords": ["👍"]},
                "steps": [{"id": "a", "type": "reply", "text": "Glad you liked it!"}]}),
    )
    .await;
    let (vars, id) = whatsapp_says(&channel, "My parcel never arrived, I want a refund").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let sent: Vec<String> = outbox_to(&channel.external_id, &vars.sender)
        .iter()
        .map(sent_text)
        .collect();
    assert!(
        sent.is_empty(),
        "a 👍 bot answered an unrelated complaint: {sent:?} {:?}",
        system_events(&channel.tenant, &id, "bot_started").await
    );
}

#[tokio::test]
async fn a_keyword_bot_the_save_accepts_is_one_the_runner_can_run() {
    let channel = connect("whatsapp").await;
    // 20 keywords of 100 characters (a 6 KB body): U+FDFA folds to 18 characters each,
    // so the runner's alternation is far bigger than what the save checked.
    let keywords: Vec<String> = (0..20)
        .map(|i| format!("{i:04}{}", "\u{FDFA}".repeat(96)))
        .collect();
    let reply = put_as(
        "/bots/blessing",
        &channel.admin(),
        Some(
            &json!({"name": "Blessing", "trigger": {"type": "keyword", "keywords": keywords},
                     "steps": [{"id": "a", "type": "reply", "text": "Thank you!"}]}),
        ),
    )
    .await;
    if reply.status == 422 {
        return;
    }
    assert_eq!(reply.status, 201, "{}", reply.text);
    let (vars, _) = whatsapp_says(&channel, &format!("hello {}", keywords[0])).await;
    let sent = wait_sent(&channel.external_id, &vars.sender, 1).await;
    assert_eq!(
        sent.len(),
        1,
        "saved (201) but the runner skips it: its keywords do not compile within the size limit"
    );
}
