//! Chatbots end to end (SPEC §8): a customer's webhook message reaches the bot runner
//! through the event bus stand-in, the bot answers through the send path (recorded at the
//! provider sandbox), and agents see and stop it.

use std::time::{Duration, Instant};

use integration_tests::{
    FixtureVars, TestChannel, accepted_sends_to, connect, conversation_view, deliver, fixture, get,
    post_json, post_meta, post_wechat, put_as, put_bot, stack, system_events, token, wait_events,
    whatsapp_text,
};
use serde_json::{Value, json};

/// A fresh message id (and time) for the same customer.
fn next(vars: &FixtureVars) -> FixtureVars {
    FixtureVars {
        msg_id: ulid::Ulid::new().to_string(),
        ..vars.clone()
    }
}

/// Waits until `account` has `count` accepted sends to `customer` (10 s at most).
async fn wait_sent(account: &str, customer: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sent = accepted_sends_to(account, customer);
        if sent.len() >= count || Instant::now() > deadline {
            return sent;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The one conversation of a tenant.
async fn only_conversation(tenant: &str) -> Value {
    let list = get("/conversations", Some(&token(tenant, "agent"))).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", list.text);
    items[0].clone()
}

fn menu_bot() -> Value {
    json!({
        "name": "Appointments",
        "trigger": {"type": "keyword", "keywords": ["appointment", "cita"], "match": "contains"},
        "steps": [
            {"id": "ask", "type": "ask", "text": "Shall I book you in for Monday 10:00?", "options": [
                {"id": "confirm_appointment_yes", "title": "Yes, confirm", "next": "booked"},
                {"id": "no", "title": "No", "next": "human"}
            ]},
            {"id": "booked", "type": "reply", "text": "Booked: see you Monday at 10:00."},
            {"id": "human", "type": "handover", "text": "An agent will take it from here."}
        ]
    })
}

#[tokio::test]
async fn a_keyword_bot_replies_as_the_bot_and_finishes() {
    let channel = connect("whatsapp").await;
    put_bot(
        &channel,
        "shoes",
        &json!({
            "name": "Stock",
            "trigger": {"type": "keyword", "keywords": ["running shoes"]},
            "steps": [{"id": "a", "type": "reply", "text": "Yes! Size 42 is in stock."}]
        }),
    )
    .await;
    let vars = FixtureVars::new(&channel, false);
    let reply = post_meta(
        "whatsapp",
        &whatsapp_text(&vars, "Do you have the Running Shoes?"),
    )
    .await;
    assert_eq!(reply.status, 200);
    let sent = wait_sent(&channel.external_id, &vars.sender, 1).await;
    assert_eq!(sent.len(), 1, "one bot reply");
    assert_eq!(sent[0]["body"]["text"]["body"], "Yes! Size 42 is in stock.");
    let c = only_conversation(&channel.tenant).await;
    let id = c["id"].as_str().unwrap();
    let exited = wait_events(&channel.tenant, id, "bot_exited", 1).await;
    assert_eq!(exited[0]["reason"], "completed");
    let started = system_events(&channel.tenant, id, "bot_started").await;
    assert_eq!(started[0]["actor"], json!({"type": "bot", "id": "shoes"}));
    let messages = integration_tests::all_messages(&channel.tenant, id).await;
    let out: Vec<&Value> = messages
        .iter()
        .filter(|m| m["direction"] == "outbound")
        .collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["actor"], json!({"type": "bot", "id": "shoes"}));
    // Started, replied, finished: in that order (newest first).
    let order: Vec<&str> = messages
        .iter()
        .filter(|m| m["direction"] != "inbound")
        .map(|m| m["event"].as_str().unwrap_or("reply"))
        .collect();
    assert_eq!(order, ["bot_exited", "reply", "bot_started"]);
    assert_eq!(
        conversation_view(&channel.tenant, id).await["bot"]["active"],
        false
    );
}

#[tokio::test]
async fn an_ask_goes_out_as_buttons_and_the_button_reply_moves_the_bot_on() {
    let channel = connect("whatsapp").await;
    put_bot(&channel, "appointments", &menu_bot()).await;
    let vars = FixtureVars::new(&channel, false);
    post_meta("whatsapp", &whatsapp_text(&vars, "I'd like an appointment")).await;
    let sent = wait_sent(&channel.external_id, &vars.sender, 1).await;
    assert_eq!(sent.len(), 1);
    let interactive = &sent[0]["body"]["interactive"];
    assert_eq!(sent[0]["body"]["type"], "interactive");
    assert_eq!(interactive["type"], "button");
    assert_eq!(
        interactive["action"]["buttons"][0],
        json!({"type": "reply", "reply": {"id": "confirm_appointment_yes", "title": "Yes, confirm"}})
    );
    let c = only_conversation(&channel.tenant).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let bot = &conversation_view(&channel.tenant, &id).await["bot"];
    assert_eq!(bot["active"], true, "{bot}");
    assert_eq!(bot["bot_id"], "appointments");
    assert_eq!(bot["name"], "Appointments");
    assert_eq!(bot["step"], "ask");
    assert!(bot["since"].is_string());
    // The customer taps "Yes, confirm" (Meta's button reply webhook).
    let answer = next(&vars).render(&fixture("whatsapp/interactive_button_reply.json"));
    post_meta("whatsapp", &answer).await;
    let sent = wait_sent(&channel.external_id, &vars.sender, 2).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1]["body"]["text"]["body"],
        "Booked: see you Monday at 10:00."
    );
    let exited = wait_events(&channel.tenant, &id, "bot_exited", 1).await;
    assert_eq!(exited[0]["reason"], "completed");
    assert_eq!(
        conversation_view(&channel.tenant, &id).await["bot"]["active"],
        false
    );
}

#[tokio::test]
async fn wechat_gets_a_numbered_menu_and_the_number_answers() {
    let channel = connect("wechat").await;
    put_bot(&channel, "appointments", &menu_bot()).await;
    let vars = FixtureVars::new(&channel, true);
    let xml = vars
        .render(&fixture("wechat/text.xml"))
        .replace("你好，请问今天下单明天能发货吗？", "我想预约 appointment");
    assert_eq!(post_wechat(&channel, &xml).await.status, 200);
    let account = "wx123";
    let sent = wait_sent(account, &vars.sender, 1).await;
    assert_eq!(sent.len(), 1);
    let menu = sent[0]["body"]["text"]["content"].as_str().unwrap();
    assert!(
        menu.contains("1. Yes, confirm") && menu.contains("2. No"),
        "{menu}"
    );
    let answer = next(&vars);
    let answer = FixtureVars {
        msg_id: format!("{}", ulid::Ulid::new().0 % 10u128.pow(18)),
        ..answer
    };
    let xml = answer
        .render(&fixture("wechat/text.xml"))
        .replace("你好，请问今天下单明天能发货吗？", " 2 ");
    post_wechat(&channel, &xml).await;
    let sent = wait_sent(account, &vars.sender, 2).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1]["body"]["text"]["content"],
        "An agent will take it from here."
    );
    let c = only_conversation(&channel.tenant).await;
    let exited = wait_events(&channel.tenant, c["id"].as_str().unwrap(), "bot_exited", 1).await;
    assert_eq!(exited[0]["reason"], "handover");
}

/// The `MessageReceived` event of the conversation's latest inbound message, as
/// EventBridge delivers it.
async fn received_event(channel: &TestChannel, conversation_id: &str) -> Value {
    let messages = integration_tests::all_messages(&channel.tenant, conversation_id).await;
    let m = messages
        .iter()
        .find(|m| m["direction"] == "inbound")
        .expect("an inbound message");
    json!({
        "version": "0",
        "id": ulid::Ulid::new().to_string(),
        "detail-type": "MessageReceived",
        "source": "chatroom",
        "account": "000000000000",
        "time": m["created_at"],
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "tenant_id": channel.tenant,
            "channel_id": channel.id,
            "channel": "whatsapp",
            "conversation_id": conversation_id,
            "message_id": m["id"],
            "direction": "inbound",
            "kind": "text",
            "provider_message_id": m["provider_message_id"],
            "created_at": m["created_at"],
            "has_media": false,
            "standby": false,
            "media": null
        }
    })
}

#[tokio::test]
async fn five_concurrent_redeliveries_make_one_turn() {
    let channel = connect("whatsapp").await;
    put_bot(&channel, "appointments", &menu_bot()).await;
    let vars = FixtureVars::new(&channel, false);
    post_meta("whatsapp", &whatsapp_text(&vars, "appointment please")).await;
    assert_eq!(
        wait_sent(&channel.external_id, &vars.sender, 1).await.len(),
        1
    );
    let c = only_conversation(&channel.tenant).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let event = received_event(&channel, &id).await;
    let handler =
        local_stack::devserver::event_handler(&stack().template, &stack().settings, "bots")
            .expect("the bots function builds");
    let runs = (0..5).map(|_| deliver(&handler, event.clone()));
    for result in futures::future::join_all(runs).await {
        assert_eq!(result, Ok(()));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        accepted_sends_to(&channel.external_id, &vars.sender).len(),
        1,
        "still one question"
    );
    assert_eq!(
        system_events(&channel.tenant, &id, "bot_started")
            .await
            .len(),
        1
    );
    let bot = &conversation_view(&channel.tenant, &id).await["bot"];
    assert_eq!(
        (bot["active"].clone(), bot["step"].clone()),
        (json!(true), json!("ask"))
    );
}

#[tokio::test]
async fn exit_bot_stops_it_and_the_next_messages_get_no_bot_reply() {
    let channel = connect("whatsapp").await;
    put_bot(&channel, "appointments", &menu_bot()).await;
    let vars = FixtureVars::new(&channel, false);
    post_meta("whatsapp", &whatsapp_text(&vars, "appointment")).await;
    assert_eq!(
        wait_sent(&channel.external_id, &vars.sender, 1).await.len(),
        1
    );
    let id = only_conversation(&channel.tenant).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent = token(&channel.tenant, "agent");
    let exit = post_json(
        &format!("/conversations/{id}/bot/exit"),
        Some(&agent),
        &json!({}),
    )
    .await;
    assert_eq!(exit.status, 200, "{}", exit.text);
    assert_eq!(exit.body["bot"]["active"], false);
    let exited = system_events(&channel.tenant, &id, "bot_exited").await;
    assert_eq!(exited.len(), 1);
    assert_eq!(exited[0]["reason"], "exit_bot");
    assert_eq!(
        exited[0]["actor"],
        json!({"type": "agent", "id": "agent-1"})
    );
    // A second click changes nothing.
    let again = post_json(
        &format!("/conversations/{id}/bot/exit"),
        Some(&agent),
        &json!({}),
    )
    .await;
    assert_eq!(again.status, 200);
    // Three more customer messages, one of them the trigger again and one a valid answer.
    let mut last = vars.clone();
    for text in ["appointment", "Yes, confirm", "hello?"] {
        last = next(&last);
        assert_eq!(
            post_meta("whatsapp", &whatsapp_text(&last, text))
                .await
                .status,
            200
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while integration_tests::all_messages(&channel.tenant, &id)
        .await
        .iter()
        .filter(|m| m["direction"] == "inbound")
        .count()
        < 4
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Time for the event stand-in to deliver all three.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        accepted_sends_to(&channel.external_id, &vars.sender).len(),
        1,
        "no bot reply"
    );
    assert_eq!(
        system_events(&channel.tenant, &id, "bot_exited")
            .await
            .len(),
        1
    );
    assert_eq!(
        system_events(&channel.tenant, &id, "bot_started")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn an_agent_reply_stops_the_bot() {
    let channel = connect("whatsapp").await;
    put_bot(&channel, "appointments", &menu_bot()).await;
    let vars = FixtureVars::new(&channel, false);
    post_meta("whatsapp", &whatsapp_text(&vars, "appointment")).await;
    assert_eq!(
        wait_sent(&channel.external_id, &vars.sender, 1).await.len(),
        1
    );
    let id = only_conversation(&channel.tenant).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent = token(&channel.tenant, "agent");
    let sent = post_json(
        &format!("/conversations/{id}/messages"),
        Some(&agent),
        &json!({"kind": "text", "text": "Hi, Ana here. Let me help you."}),
    )
    .await;
    assert_eq!(sent.status, 202, "{}", sent.text);
    let exited = system_events(&channel.tenant, &id, "bot_exited").await;
    assert_eq!(exited.len(), 1);
    assert_eq!(exited[0]["reason"], "agent_replied");
    assert_eq!(
        exited[0]["actor"],
        json!({"type": "agent", "id": "agent-1"})
    );
    assert_eq!(
        conversation_view(&channel.tenant, &id).await["bot"]["active"],
        false
    );
    // The customer's answer to the old question gets no bot reply.
    post_meta("whatsapp", &whatsapp_text(&next(&vars), "Yes, confirm")).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        accepted_sends_to(&channel.external_id, &vars.sender).len(),
        2,
        "the question and the agent's reply"
    );
}

#[tokio::test]
async fn a_messenger_message_older_than_24_hours_gets_no_bot_message() {
    let channel = connect("messenger").await;
    put_bot(
        &channel,
        "hello",
        &json!({"name": "Hello", "trigger": {"type": "first_message"},
                "steps": [{"id": "hi", "type": "reply", "text": "Hi! How can we help?"}]}),
    )
    .await;
    let mut vars = FixtureVars::new(&channel, false);
    // Delivered late: the customer wrote 25 hours ago (Meta's own timestamp).
    vars.timestamp -= 25 * 3600;
    let body = vars.render(&fixture("messenger/text.json"));
    assert_eq!(post_meta("messenger", &body).await.status, 200);
    let c = only_conversation(&channel.tenant).await;
    let id = c["id"].as_str().unwrap();
    let notes = wait_events(&channel.tenant, id, "bot_exited", 1).await;
    assert_eq!(notes.len(), 1, "a note says why the bot did not answer");
    assert_eq!(notes[0]["reason"], "window_closed");
    assert!(
        accepted_sends_to(&channel.external_id, &vars.sender).is_empty(),
        "nothing sent"
    );
    assert!(
        system_events(&channel.tenant, id, "bot_started")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn bots_are_managed_by_admins_and_validated_as_a_whole() {
    let channel = connect("whatsapp").await;
    let agent = token(&channel.tenant, "agent");
    let refused = put_as("/bots/b1", &agent, Some(&menu_bot())).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let created = put_as("/bots/b1", &channel.admin(), Some(&menu_bot())).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["exit_keywords"], json!(["agent", "human"]));
    assert_eq!(created.body["timeout_minutes"], 30);
    let mut changed = created.body.clone();
    changed["priority"] = json!(3);
    let updated = put_as("/bots/b1", &channel.admin(), Some(&changed)).await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["created_at"], created.body["created_at"]);
    let list = get("/bots", Some(&agent)).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["items"][0]["priority"], 3);
    let mut dangling = menu_bot();
    dangling["steps"][0]["options"][0]["next"] = json!("nowhere");
    let bad = put_as("/bots/b2", &channel.admin(), Some(&dangling)).await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["error"]["code"], "invalid_bot");
    assert!(bad.text.contains("step `ask`"), "{}", bad.text);
    let mut long = menu_bot();
    long["steps"][0]["options"][0]["title"] = json!("Yes, please confirm it");
    let bad = put_as("/bots/b2", &channel.admin(), Some(&long)).await;
    assert_eq!(bad.status, 422, "a 22-character button title on WhatsApp");
    let mut unknown = menu_bot();
    unknown["channel_ids"] = json!(["01NOTACHANNEL"]);
    let bad = put_as("/bots/b2", &channel.admin(), Some(&unknown)).await;
    assert_eq!(bad.body["error"]["code"], "unknown_channel");
    let mut stranger = menu_bot();
    stranger["steps"][2]["assign_to"] = json!("nobody-here");
    let bad = put_as("/bots/b2", &channel.admin(), Some(&stranger)).await;
    assert_eq!(bad.body["error"]["code"], "unknown_agent");
    let mut extra = menu_bot();
    extra["colour"] = json!("red");
    assert_eq!(
        put_as("/bots/b2", &channel.admin(), Some(&extra))
            .await
            .status,
        422
    );
    assert_eq!(get("/bots/b2", Some(&agent)).await.status, 404);
    // Another tenant sees none of it.
    let other = connect("whatsapp").await;
    assert_eq!(
        get("/bots/b1", Some(&token(&other.tenant, "admin")))
            .await
            .status,
        404
    );
    let gone = integration_tests::delete_as("/bots/b1", &channel.admin()).await;
    assert_eq!(gone.status, 204);
    assert_eq!(
        integration_tests::delete_as("/bots/b1", &channel.admin())
            .await
            .status,
        404
    );
}
