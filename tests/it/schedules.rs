//! Scheduled messages end to end (SPEC §9): created through the API, fired by the local
//! schedule stand-in (as EventBridge Scheduler would), sent through the send path and
//! recorded at the provider sandbox; cancels, races, the window at fire time, the
//! customer's reply, and the end of a snooze.

use std::time::{Duration, Instant};

use chrono::Utc;
use integration_tests::{
    FixtureVars, TestChannel, accepted_sends_to, connect, connect_for, conversation_view,
    customer_wrote, customer_wrote_as, delete_as, deliver, fire_input, fixture, get, patch_as,
    post_json, post_meta, schedule_message, scheduler_handler, stack, system_events, token,
    unique_meta_id, unique_tenant,
};
use serde_json::{Value, json};

/// A `send_at` `seconds` from now, with a +01:00 offset (as a UI in London in summer
/// would send it).
fn in_seconds(seconds: i64) -> String {
    let offset = chrono::FixedOffset::east_opt(3600).unwrap();
    (Utc::now() + chrono::Duration::seconds(seconds))
        .with_timezone(&offset)
        .to_rfc3339()
}

fn text(t: &str) -> Value {
    json!({"kind": "text", "text": t})
}

/// The scheduled message `id` as listed for its conversation.
async fn listed(channel: &TestChannel, conversation: &str, id: &str) -> Value {
    let reply = get(
        &format!("/scheduled-messages?conversation_id={conversation}"),
        Some(&token(&channel.tenant, "agent")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits (10 s at most) until the scheduled message leaves `scheduled`/`sending`.
async fn settled(channel: &TestChannel, conversation: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = listed(channel, conversation, id).await;
        let status = m["status"].as_str().unwrap_or_default();
        if !matches!(status, "scheduled" | "sending") || Instant::now() > deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_scheduled_message_fires_at_its_time_through_the_send_path() {
    let channel = connect("whatsapp").await;
    let (conversation, customer) = customer_wrote(&channel, "whatsapp", 1).await;
    let created = schedule_message(
        &channel,
        &conversation,
        &json!({"send_at": in_seconds(2), "message": text("Your table is ready")}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["status"], "scheduled");
    assert_eq!(created.body["created_by"], "agent-1");
    assert_eq!(created.body["conversation_id"], conversation.as_str());
    assert_eq!(
        created.body["window_at_send"],
        json!({"open": true, "mode": "free_form"})
    );
    assert!(created.body["send_at"].as_str().unwrap().ends_with('Z'));
    let id = created.body["id"].as_str().unwrap().to_owned();
    let done = settled(&channel, &conversation, &id).await;
    assert_eq!(done["status"], "sent", "{done}");
    let sent = accepted_sends_to(&channel.external_id, &customer);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["body"]["text"]["body"], "Your table is ready");
    let messages = integration_tests::all_messages(&channel.tenant, &conversation).await;
    let out = messages
        .iter()
        .find(|m| m["id"] == done["message_id"])
        .expect("the sent message");
    assert_eq!(
        out["actor"],
        json!({"type": "schedule", "id": id, "on_behalf_of": "agent-1"})
    );
    let notes = system_events(&channel.tenant, &conversation, "scheduled_sent").await;
    assert_eq!(notes.len(), 1);
    // Delivered again (Scheduler retries at least once): nothing more.
    let handler = scheduler_handler();
    assert_eq!(
        deliver(&handler, fire_input(&channel.tenant, &id)).await,
        Ok(())
    );
    assert_eq!(accepted_sends_to(&channel.external_id, &customer).len(), 1);
}

#[tokio::test]
async fn five_concurrent_deliveries_send_once() {
    let channel = connect("whatsapp").await;
    let (conversation, customer) = customer_wrote(&channel, "whatsapp", 1).await;
    let created = schedule_message(
        &channel,
        &conversation,
        &json!({"send_at": in_seconds(300), "message": text("Reminder: 3 pm today")}),
    )
    .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let handler = scheduler_handler();
    let fires = (0..5).map(|_| deliver(&handler, fire_input(&channel.tenant, &id)));
    for result in futures::future::join_all(fires).await {
        assert_eq!(result, Ok(()));
    }
    assert_eq!(
        accepted_sends_to(&channel.external_id, &customer).len(),
        1,
        "one provider send"
    );
    assert_eq!(listed(&channel, &conversation, &id).await["status"], "sent");
    assert_eq!(
        system_events(&channel.tenant, &conversation, "scheduled_sent")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn cancel_deletes_the_schedule_and_a_cancel_racing_a_fire_ends_one_way() {
    let channel = connect("whatsapp").await;
    let (conversation, customer) = customer_wrote(&channel, "whatsapp", 1).await;
    let agent = token(&channel.tenant, "agent");
    let body = json!({"send_at": in_seconds(300), "message": text("See you soon")});
    let id = schedule_message(&channel, &conversation, &body).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancelled = delete_as(&format!("/scheduled-messages/{id}"), &agent).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(cancelled.body["cancel_reason"], "agent");
    let again = delete_as(&format!("/scheduled-messages/{id}"), &agent).await;
    assert_eq!(
        (again.status, again.body["status"].clone()),
        (200, json!("cancelled"))
    );
    // Its schedule is gone from the emulator.
    let scheduler = aws_sdk_scheduler::Client::new(&stack().settings.sdk_config());
    let group = stack().template.local_name("ScheduleGroup").unwrap();
    assert!(
        scheduler
            .get_schedule()
            .group_name(&group)
            .name(&id)
            .send()
            .await
            .is_err()
    );
    // A late fire does nothing.
    assert_eq!(
        deliver(&scheduler_handler(), fire_input(&channel.tenant, &id)).await,
        Ok(())
    );
    assert!(accepted_sends_to(&channel.external_id, &customer).is_empty());
    let notes = system_events(&channel.tenant, &conversation, "scheduled_cancelled").await;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["actor"], json!({"type": "agent", "id": "agent-1"}));

    // Races: the fire and the cancel at once, several times.
    for round in 0..4 {
        let body = json!({"send_at": in_seconds(300), "message": text(&format!("race {round}"))});
        let id = schedule_message(&channel, &conversation, &body).await.body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let handler = scheduler_handler();
        let path = format!("/scheduled-messages/{id}");
        let (fired, cancel) = tokio::join!(
            deliver(&handler, fire_input(&channel.tenant, &id)),
            delete_as(&path, &agent)
        );
        assert_eq!(fired, Ok(()));
        let m = listed(&channel, &conversation, &id).await;
        let sent = accepted_sends_to(&channel.external_id, &customer)
            .iter()
            .filter(|s| s["body"]["text"]["body"] == format!("race {round}"))
            .count();
        match m["status"].as_str().unwrap() {
            "sent" => {
                assert_eq!(sent, 1);
                assert_eq!((cancel.status, cancel.code()), (409, "already_sent"));
            }
            "cancelled" => {
                assert_eq!(sent, 0);
                assert_eq!(cancel.status, 200);
            }
            other => panic!("ended {other}"),
        }
    }
}

#[tokio::test]
async fn outside_the_window_the_fallback_template_goes_or_the_message_fails_visibly() {
    let waba = unique_meta_id();
    let channel = connect_for(&unique_tenant(), "whatsapp", json!({"waba_id": waba})).await;
    let template = post_json(
        "/templates",
        Some(&channel.admin()),
        &json!({"channel_id": channel.id, "name": "table_ready", "language": "en_US",
                "category": "UTILITY", "components": [{"type": "BODY", "text": "Hi {{1}}, your table is ready."}]}),
    )
    .await;
    assert_eq!(template.body["status"], "APPROVED", "{}", template.text);
    // The customer wrote 24 hours ago: the window is closed (templates only).
    let (conversation, customer) = customer_wrote(&channel, "whatsapp", 24).await;
    let bare = schedule_message(
        &channel,
        &conversation,
        &json!({"send_at": in_seconds(2), "message": text("Your table is ready")}),
    )
    .await;
    assert_eq!(bare.status, 201, "{}", bare.text);
    assert_eq!(
        bare.body["window_at_send"],
        json!({"open": false, "mode": "template_only"})
    );
    let with_fallback = schedule_message(
        &channel,
        &conversation,
        &json!({"send_at": in_seconds(2), "message": text("Your table is ready"),
                "fallback_template": {"name": "table_ready", "language": "en_US", "parameters": ["Ana"]}}),
    )
    .await;
    assert_eq!(with_fallback.status, 201, "{}", with_fallback.text);
    let bare_id = bare.body["id"].as_str().unwrap();
    let fallback_id = with_fallback.body["id"].as_str().unwrap();
    let failed = settled(&channel, &conversation, bare_id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "template_required");
    let sent = settled(&channel, &conversation, fallback_id).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    assert_eq!(sent["used_fallback"], true);
    let out = accepted_sends_to(&channel.external_id, &customer);
    assert_eq!(out.len(), 1, "only the fallback went out");
    assert_eq!(out[0]["body"]["template"]["name"], "table_ready");
    let notes = system_events(&channel.tenant, &conversation, "scheduled_failed").await;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["reason"], "template_required");
    // A fallback with the wrong parameter count is refused at creation.
    let wrong = schedule_message(
        &channel,
        &conversation,
        &json!({"send_at": in_seconds(60), "message": text("x"),
                "fallback_template": {"name": "table_ready", "language": "en_US", "parameters": []}}),
    )
    .await;
    assert_eq!((wrong.status, wrong.code()), (422, "template_parameters"));
}

#[tokio::test]
async fn the_customer_writing_first_cancels_what_asks_for_it() {
    let channel = connect("whatsapp").await;
    let (conversation, vars) = customer_wrote_as(&channel, "whatsapp", 0).await;
    let asks = schedule_message(
        &channel,
        &conversation,
        &json!({"send_at": in_seconds(300), "message": text("Still interested?"),
                "cancel_if_customer_replies": true}),
    )
    .await;
    let keeps = schedule_message(
        &channel,
        &conversation,
        &json!({"send_at": in_seconds(300), "message": text("Your order ships Monday")}),
    )
    .await;
    let asks = asks.body["id"].as_str().unwrap().to_owned();
    let keeps = keeps.body["id"].as_str().unwrap().to_owned();
    let again = FixtureVars {
        msg_id: ulid::Ulid::new().to_string(),
        timestamp: Utc::now().timestamp() + 1,
        ..vars
    };
    assert_eq!(
        post_meta("whatsapp", &again.render(&fixture("whatsapp/text.json")))
            .await
            .status,
        200
    );
    let cancelled = settled(&channel, &conversation, &asks).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["cancel_reason"], "customer_replied");
    assert_eq!(
        listed(&channel, &conversation, &keeps).await["status"],
        "scheduled"
    );
    let notes = system_events(&channel.tenant, &conversation, "scheduled_cancelled").await;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["reason"], "customer_replied");
    assert_eq!(notes[0]["actor"]["type"], "customer");
}

#[tokio::test]
async fn scheduling_is_checked_like_a_send() {
    let channel = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let cases = [
        (
            json!({"send_at": "2026-01-01T10:00:00Z", "message": text("x")}),
            "send_at_in_past",
        ),
        (
            json!({"send_at": "2099-01-01T10:00:00", "message": text("x")}),
            "invalid_send_at",
        ),
        (
            json!({"send_at": (Utc::now() + chrono::Duration::days(366)).to_rfc3339(), "message": text("x")}),
            "send_at_too_far",
        ),
        (
            json!({"send_at": in_seconds(60), "message": {"kind": "text"}}),
            "invalid_message",
        ),
        (
            json!({"send_at": in_seconds(60), "message": {"kind": "image", "media_id": "01NOPE"}}),
            "unknown_media",
        ),
        (
            json!({"send_at": in_seconds(60), "message": {"kind": "template", "template": {"name": "nope", "language": "en"}}}),
            "unknown_template",
        ),
        (
            json!({"send_at": in_seconds(60), "message": text("x"), "extra": 1}),
            "invalid_body",
        ),
    ];
    for (body, code) in cases {
        let reply = schedule_message(&channel, &conversation, &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, code),
            "{body}: {}",
            reply.text
        );
    }
    let messenger = connect("messenger").await;
    let (other, _) = customer_wrote(&messenger, "messenger", 1).await;
    let reply = schedule_message(
        &messenger,
        &other,
        &json!({"send_at": in_seconds(60), "message": text("x"),
                "fallback_template": {"name": "t", "language": "en", "parameters": []}}),
    )
    .await;
    assert_eq!((reply.status, reply.code()), (422, "invalid_fallback"));
    // Another tenant's conversation is not found; another tenant's message not either.
    let reply = schedule_message(
        &messenger,
        &conversation,
        &json!({"send_at": in_seconds(60), "message": text("x")}),
    )
    .await;
    assert_eq!(reply.status, 404);
    let mine = schedule_message(
        &channel,
        &conversation,
        &json!({"send_at": in_seconds(300), "message": text("x")}),
    )
    .await;
    let id = mine.body["id"].as_str().unwrap();
    let theirs = delete_as(
        &format!("/scheduled-messages/{id}"),
        &token(&messenger.tenant, "agent"),
    )
    .await;
    assert_eq!(theirs.status, 404);
    let list = get(
        "/scheduled-messages?status=sideways",
        Some(&token(&channel.tenant, "agent")),
    )
    .await;
    assert_eq!((list.status, list.code()), (400, "invalid_filter"));
    let all = get(
        "/scheduled-messages?status=scheduled",
        Some(&token(&channel.tenant, "agent")),
    )
    .await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 1);
    let none = get(
        "/scheduled-messages",
        Some(&token(&messenger.tenant, "agent")),
    )
    .await;
    assert!(none.body["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_snooze_ends_by_itself_through_its_schedule() {
    let channel = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let agent = token(&channel.tenant, "agent");
    let until = (Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let snoozed = patch_as(
        &format!("/conversations/{conversation}"),
        &agent,
        &json!({"status": "snoozed", "snoozed_until": until}),
    )
    .await;
    assert_eq!(snoozed.status, 200, "{}", snoozed.text);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let notes = system_events(&channel.tenant, &conversation, "status_changed").await;
        if notes.len() >= 2 || Instant::now() > deadline {
            assert_eq!(
                notes.len(),
                2,
                "snoozed, then opened by the system: {notes:#?}"
            );
            assert_eq!(notes[0]["actor"], json!({"type": "system"}));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        conversation_view(&channel.tenant, &conversation).await["status"],
        "open"
    );
    assert_eq!(
        integration_tests::listed_ids(&channel.tenant, "status=open").await,
        vec![conversation.clone()]
    );
}
