//! Scheduled messages under attack (SPEC §9): bad bodies, `send_at` edge cases, tampered
//! cursors, another tenant's ids on every route and in the fire input, fires of settled or
//! missing messages, and races (two cancels, 20 fires, the customer's reply against a
//! fire). Every bad input is a 4xx with an error code and writes nothing; nothing is sent
//! twice; another tenant sees nothing.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{FixedOffset, Utc};
use integration_tests::{
    FixtureVars, Reply, TestChannel, accepted_sends_to, all_messages, call, connect, connect_for,
    customer_wrote, customer_wrote_as, delete_as, deliver, fire_input, fixture, get, post_json,
    post_meta, schedule_message, scheduler_handler, system_events, token, unique_meta_id,
    unique_tenant,
};
use serde_json::{Value, json};

fn at(seconds: i64, offset_hours: i32) -> String {
    let offset = FixedOffset::east_opt(offset_hours * 3600).unwrap();
    (Utc::now() + chrono::Duration::seconds(seconds))
        .with_timezone(&offset)
        .to_rfc3339()
}

fn text(t: &str) -> Value {
    json!({"kind": "text", "text": t})
}

async fn schedule_id(channel: &TestChannel, conversation: &str, t: &str) -> String {
    let reply = schedule_message(
        channel,
        conversation,
        &json!({"send_at": at(300, 1), "message": text(t)}),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["id"].as_str().unwrap().to_owned()
}

async fn list(channel: &TestChannel, query: &str) -> Reply {
    get(
        &format!("/scheduled-messages?{query}"),
        Some(&token(&channel.tenant, "agent")),
    )
    .await
}

async fn listed(channel: &TestChannel, conversation: &str, id: &str) -> Value {
    let reply = list(
        channel,
        &format!("conversation_id={conversation}&limit=100"),
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

fn assert_4xx(reply: &Reply, what: &str) {
    assert!(
        (400..500).contains(&reply.status) && !reply.code().is_empty(),
        "{what}: {} {}",
        reply.status,
        reply.text
    );
}

/// Outbound messages sent by the schedule in one conversation (not its system notes).
async fn scheduled_sends(tenant: &str, conversation: &str) -> usize {
    all_messages(tenant, conversation)
        .await
        .iter()
        .filter(|m| m["actor"]["type"] == "schedule" && m["direction"] == "outbound")
        .count()
}

#[tokio::test]
async fn schedules_hostile_bad_bodies_are_4xx_and_write_nothing() {
    let waba = unique_meta_id();
    let channel = connect_for(&unique_tenant(), "whatsapp", json!({"waba_id": waba})).await;
    let template = post_json(
        "/templates",
        Some(&channel.admin()),
        &json!({"channel_id": channel.id, "name": "hostile_t", "language": "en_US",
                "category": "UTILITY", "components": [{"type": "BODY", "text": "Hi {{1}}."}]}),
    )
    .await;
    assert_eq!(template.body["status"], "APPROVED", "{}", template.text);
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let soon = at(120, 0);
    let huge = "a".repeat(60_000);
    let emoji = "\u{1F600}".repeat(5_000);
    let cases: Vec<(&str, Value)> = vec![
        ("null body", Value::Null),
        ("array body", json!([1, 2])),
        ("string body", json!("hello")),
        ("number body", json!(42)),
        ("empty object", json!({})),
        (
            "send_at number",
            json!({"send_at": 1_900_000_000, "message": text("x")}),
        ),
        (
            "send_at null",
            json!({"send_at": null, "message": text("x")}),
        ),
        ("send_at missing", json!({"message": text("x")})),
        ("message null", json!({"send_at": soon, "message": null})),
        ("message missing", json!({"send_at": soon})),
        ("message string", json!({"send_at": soon, "message": "hi"})),
        (
            "text number",
            json!({"send_at": soon, "message": {"kind": "text", "text": 5}}),
        ),
        (
            "text empty",
            json!({"send_at": soon, "message": {"kind": "text", "text": ""}}),
        ),
        (
            "text blank",
            json!({"send_at": soon, "message": {"kind": "text", "text": " \n\t "}}),
        ),
        (
            "unknown kind",
            json!({"send_at": soon, "message": {"kind": "sms", "text": "x"}}),
        ),
        (
            "kind null",
            json!({"send_at": soon, "message": {"kind": null, "text": "x"}}),
        ),
        (
            "huge text",
            json!({"send_at": soon, "message": text(&huge)}),
        ),
        (
            "huge emoji text",
            json!({"send_at": soon, "message": text(&emoji)}),
        ),
        (
            "cancel flag string",
            json!({"send_at": soon, "message": text("x"), "cancel_if_customer_replies": "yes"}),
        ),
        (
            "cancel flag null",
            json!({"send_at": soon, "message": text("x"), "cancel_if_customer_replies": null}),
        ),
        (
            "fallback string",
            json!({"send_at": soon, "message": text("x"), "fallback_template": "hostile_t"}),
        ),
        (
            "fallback name number",
            json!({"send_at": soon, "message": text("x"), "fallback_template": {"name": 5, "language": "en_US", "parameters": ["a"]}}),
        ),
        (
            "fallback unknown template",
            json!({"send_at": soon, "message": text("x"), "fallback_template": {"name": "nope", "language": "en_US", "parameters": ["a"]}}),
        ),
        (
            "fallback huge parameter",
            json!({"send_at": soon, "message": text("x"), "fallback_template": {"name": "hostile_t", "language": "en_US", "parameters": [huge]}}),
        ),
        (
            "fallback on a template message",
            json!({"send_at": soon, "message": {"kind": "template", "template": {"name": "hostile_t", "language": "en_US", "parameters": ["a"]}},
                   "fallback_template": {"name": "hostile_t", "language": "en_US", "parameters": ["a"]}}),
        ),
        (
            "template huge parameter",
            json!({"send_at": soon, "message": {"kind": "template", "template": {"name": "hostile_t", "language": "en_US", "parameters": [huge]}}}),
        ),
        (
            "template parameters null",
            json!({"send_at": soon, "message": {"kind": "template", "template": {"name": "hostile_t", "language": "en_US", "parameters": null}}}),
        ),
        (
            "send_at empty",
            json!({"send_at": "", "message": text("x")}),
        ),
        (
            "send_at now",
            json!({"send_at": "now", "message": text("x")}),
        ),
        (
            "send_at date only",
            json!({"send_at": "2027-01-01", "message": text("x")}),
        ),
        (
            "send_at +24:00",
            json!({"send_at": "2027-01-01T10:00:00+24:00", "message": text("x")}),
        ),
        (
            "send_at Feb 30",
            json!({"send_at": "2027-02-30T10:00:00Z", "message": text("x")}),
        ),
        (
            "send_at hour 24",
            json!({"send_at": "2027-01-01T24:00:00Z", "message": text("x")}),
        ),
        (
            "send_at year 9999",
            json!({"send_at": "9999-12-31T23:59:59Z", "message": text("x")}),
        ),
        (
            "send_at year 0",
            json!({"send_at": "0000-01-01T00:00:00Z", "message": text("x")}),
        ),
        (
            "send_at 365 days and a minute",
            json!({"send_at": (Utc::now() + chrono::Duration::days(365) + chrono::Duration::minutes(1)).to_rfc3339(), "message": text("x")}),
        ),
        (
            "send_at a second ago at +14:00",
            json!({"send_at": at(-1, 14), "message": text("x")}),
        ),
        (
            "send_at unicode digits",
            json!({"send_at": "２０２７-01-01T10:00:00Z", "message": text("x")}),
        ),
    ];
    for (what, body) in &cases {
        let reply = schedule_message(&channel, &conversation, body).await;
        assert_4xx(&reply, what);
    }
    let raw: Vec<(&str, Vec<u8>)> = vec![
        ("truncated JSON", b"{\"send_at\":".to_vec()),
        ("empty body", Vec::new()),
        ("not UTF-8", vec![0xff, 0xfe, 0x7b]),
        (
            "over the body limit",
            serde_json::to_vec(&json!({"send_at": soon, "message": text(&"b".repeat(200_000))}))
                .unwrap(),
        ),
    ];
    let path = format!("/conversations/{conversation}/scheduled-messages");
    for (what, bytes) in raw {
        let reply = call(
            "POST",
            &path,
            Some(&token(&channel.tenant, "agent")),
            Some(bytes),
        )
        .await;
        assert_4xx(&reply, what);
    }
    // Nothing was written.
    let all = list(&channel, "limit=100").await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.body["items"], json!([]), "no partial write");
    assert!(
        system_events(&channel.tenant, &conversation, "scheduled_sent")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn schedules_hostile_send_at_edges_are_accepted_and_normalised() {
    let channel = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    // +14:00 and -12:00: the same instant in UTC.
    for hours in [14, -12] {
        let when = Utc::now() + chrono::Duration::seconds(600);
        let local = when
            .with_timezone(&FixedOffset::east_opt(hours * 3600).unwrap())
            .to_rfc3339();
        let reply = schedule_message(
            &channel,
            &conversation,
            &json!({"send_at": local, "message": text("offset")}),
        )
        .await;
        assert_eq!(reply.status, 201, "{hours}: {}", reply.text);
        let stored =
            chrono::DateTime::parse_from_rfc3339(reply.body["send_at"].as_str().unwrap()).unwrap();
        assert!(reply.body["send_at"].as_str().unwrap().ends_with('Z'));
        assert!((stored.timestamp() - when.timestamp()).abs() <= 1);
    }
    // Just under 365 days ahead, with the widest offsets.
    for hours in [14, -12] {
        let reply = schedule_message(
            &channel,
            &conversation,
            &json!({"send_at": at(365 * 86_400 - 30, hours), "message": text("a year")}),
        )
        .await;
        assert_eq!(reply.status, 201, "{hours}: {}", reply.text);
    }
    // Lower-case separators and fractional seconds.
    let fraction = (Utc::now() + chrono::Duration::seconds(900))
        .format("%Y-%m-%dt%H:%M:%S%.9fz")
        .to_string();
    let reply = schedule_message(
        &channel,
        &conversation,
        &json!({"send_at": fraction, "message": text("fraction")}),
    )
    .await;
    assert!(reply.status == 201 || reply.status == 422, "{}", reply.text);
    let all = list(&channel, &format!("conversation_id={conversation}")).await;
    assert_eq!(all.status, 200, "{}", all.text);
}

#[tokio::test]
async fn schedules_hostile_leap_second_send_at_is_4xx_or_a_normal_schedule() {
    let channel = connect("whatsapp").await;
    let (conversation, customer) = customer_wrote(&channel, "whatsapp", 1).await;
    // A leap second inside the next 365 days, in UTC and at +14:00 (both are 23:59:60 UTC).
    let year = Utc::now().format("%Y").to_string().parse::<i32>().unwrap() + 1;
    for send_at in [
        format!("{year}-06-30T23:59:60Z"),
        format!("{year}-07-01T13:59:60+14:00"),
    ] {
        let reply = schedule_message(
            &channel,
            &conversation,
            &json!({"send_at": send_at, "message": text("leap")}),
        )
        .await;
        assert!(
            reply.status == 201 || (reply.status == 422 && !reply.code().is_empty()),
            "{send_at}: {} {}",
            reply.status,
            reply.text
        );
        if reply.status == 201 {
            let stored = reply.body["send_at"].as_str().unwrap();
            assert!(
                chrono::DateTime::parse_from_rfc3339(stored).is_ok(),
                "stored {stored}"
            );
            let id = reply.body["id"].as_str().unwrap();
            assert_eq!(
                deliver(&scheduler_handler(), fire_input(&channel.tenant, id)).await,
                Ok(())
            );
        }
    }
    let all = list(&channel, &format!("conversation_id={conversation}")).await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert!(accepted_sends_to(&channel.external_id, &customer).len() <= 2);
}

#[tokio::test]
async fn schedules_hostile_second_60_outside_a_leap_second_is_422() {
    let channel = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let year = Utc::now().format("%Y").to_string().parse::<i32>().unwrap() + 1;
    for send_at in [
        format!("{year}-03-01T10:15:60Z"),
        format!("{year}-03-01T10:15:60+14:00"),
    ] {
        let reply = schedule_message(
            &channel,
            &conversation,
            &json!({"send_at": send_at, "message": text("x")}),
        )
        .await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "invalid_send_at"),
            "{send_at}: {}",
            reply.text
        );
    }
    let all = list(&channel, "limit=100").await;
    assert_eq!(all.body["items"], json!([]), "no partial write");
}

#[tokio::test]
async fn schedules_hostile_tampered_cursors_are_400_and_leak_nothing() {
    let channel = connect("whatsapp").await;
    let other = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let (theirs, _) = customer_wrote(&other, "whatsapp", 1).await;
    let mut mine = Vec::new();
    for i in 0..3 {
        mine.push(schedule_id(&channel, &conversation, &format!("mine {i}")).await);
    }
    let their_id = schedule_id(&other, &theirs, "theirs").await;
    // A real cursor pages through all three, in both lists.
    for query in [String::new(), format!("conversation_id={conversation}&")] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..5 {
            let q = match &cursor {
                Some(c) => format!("{query}limit=1&cursor={c}"),
                None => format!("{query}limit=1"),
            };
            let page = list(&channel, &q).await;
            assert_eq!(page.status, 200, "{}", page.text);
            for m in page.body["items"].as_array().unwrap() {
                seen.push(m["id"].as_str().unwrap().to_owned());
            }
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        seen.sort();
        let mut want = mine.clone();
        want.sort();
        assert_eq!(seen, want, "{query}");
    }
    let enc = |s: &str| URL_SAFE_NO_PAD.encode(s.as_bytes());
    let far = (Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let cursors = vec![
        "garbage!!".to_owned(),
        "%00".to_owned(),
        enc("zzz"),
        enc("#"),
        enc("a\nb"),
        enc(&"9".repeat(512)),
        enc("\u{0}"),
        enc(&format!("{far}#{their_id}")),
        enc(&format!("1970-01-01T00:00:00Z#{}", mine[0])),
        enc(&format!("x#{}", "Z".repeat(500))),
        "A".repeat(5000),
    ];
    for cursor in &cursors {
        for query in [String::new(), format!("conversation_id={conversation}&")] {
            let reply = list(&channel, &format!("{query}limit=2&cursor={cursor}")).await;
            assert!(
                reply.status == 200 || (reply.status == 400 && reply.code() == "invalid_cursor"),
                "{cursor} {query}: {} {}",
                reply.status,
                reply.text
            );
            if reply.status == 200 {
                for m in reply.body["items"].as_array().unwrap() {
                    assert!(mine.iter().any(|id| m["id"] == id.as_str()), "{m}");
                }
            }
        }
    }
    // The other tenant's cursor on this tenant's list.
    let their_page = list(&other, "limit=1").await;
    if let Some(c) = their_page.body["next_cursor"].as_str() {
        let reply = list(&channel, &format!("limit=1&cursor={c}")).await;
        assert!(reply.status == 200 || reply.status == 400, "{}", reply.text);
    }
    for bad in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "status=SENT",
        "status=%00",
    ] {
        let reply = list(&channel, bad).await;
        assert_4xx(&reply, bad);
    }
}

#[tokio::test]
async fn schedules_hostile_another_tenant_sees_and_touches_nothing() {
    let channel = connect("whatsapp").await;
    let other = connect("whatsapp").await;
    let (conversation, customer) = customer_wrote(&channel, "whatsapp", 1).await;
    let id = schedule_id(&channel, &conversation, "private").await;
    let them = token(&other.tenant, "agent");
    let them_admin = other.admin();
    // POST on my conversation.
    let reply = post_json(
        &format!("/conversations/{conversation}/scheduled-messages"),
        Some(&them),
        &json!({"send_at": at(300, 0), "message": text("intruder")}),
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert!(!reply.text.contains(&conversation[..10]) || reply.code() == "not_found");
    // GET by conversation, by status, all.
    for q in [
        format!("conversation_id={conversation}"),
        "status=scheduled".to_owned(),
        String::new(),
    ] {
        for t in [&them, &them_admin] {
            let reply = get(&format!("/scheduled-messages?{q}"), Some(t)).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            assert_eq!(reply.body["items"], json!([]), "{q}");
        }
    }
    // DELETE my message.
    for t in [&them, &them_admin] {
        let reply = delete_as(&format!("/scheduled-messages/{id}"), t).await;
        assert_eq!(reply.status, 404, "{}", reply.text);
        assert!(!reply.text.contains("private"));
    }
    // Fire it as their tenant.
    assert_eq!(
        deliver(&scheduler_handler(), fire_input(&other.tenant, &id)).await,
        Ok(())
    );
    assert_eq!(
        listed(&channel, &conversation, &id).await["status"],
        "scheduled"
    );
    assert!(accepted_sends_to(&channel.external_id, &customer).is_empty());
    // No unauthenticated access.
    assert_eq!(get("/scheduled-messages", None).await.status, 401);
    assert_eq!(
        call("DELETE", &format!("/scheduled-messages/{id}"), None, None)
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn schedules_hostile_fires_of_settled_or_missing_messages_do_nothing() {
    let channel = connect("whatsapp").await;
    let (conversation, customer) = customer_wrote(&channel, "whatsapp", 24).await;
    let agent = token(&channel.tenant, "agent");
    let h = scheduler_handler();
    // Failed (window closed, no fallback), then fired again and cancelled.
    let failed = schedule_id(&channel, &conversation, "late").await;
    assert_eq!(
        deliver(&h, fire_input(&channel.tenant, &failed)).await,
        Ok(())
    );
    assert_eq!(
        listed(&channel, &conversation, &failed).await["status"],
        "failed"
    );
    for _ in 0..3 {
        assert_eq!(
            deliver(&h, fire_input(&channel.tenant, &failed)).await,
            Ok(())
        );
    }
    let cancel = delete_as(&format!("/scheduled-messages/{failed}"), &agent).await;
    assert_eq!((cancel.status, cancel.code()), (409, "already_failed"));
    assert_eq!(
        system_events(&channel.tenant, &conversation, "scheduled_failed")
            .await
            .len(),
        1
    );
    // Cancelled, then fired.
    let cancelled = schedule_id(&channel, &conversation, "never").await;
    assert_eq!(
        delete_as(&format!("/scheduled-messages/{cancelled}"), &agent)
            .await
            .status,
        200
    );
    assert_eq!(
        deliver(&h, fire_input(&channel.tenant, &cancelled)).await,
        Ok(())
    );
    assert_eq!(
        listed(&channel, &conversation, &cancelled).await["status"],
        "cancelled"
    );
    assert!(accepted_sends_to(&channel.external_id, &customer).is_empty());
    assert_eq!(scheduled_sends(&channel.tenant, &conversation).await, 0);
    // Missing or malformed ids and tenants.
    let long = "Z".repeat(3000);
    let odd_ids = [
        ulid::Ulid::new().to_string(),
        String::new(),
        "#".to_owned(),
        format!("{cancelled}#x"),
        "../../etc".to_owned(),
        long,
    ];
    for id in &odd_ids {
        assert_eq!(
            deliver(&h, fire_input(&channel.tenant, id)).await,
            Ok(()),
            "id {}",
            &id[..id.len().min(40)]
        );
    }
    for input in [
        json!({"kind": "scheduled_message", "tenant_id": "", "scheduled_id": failed}),
        json!({"kind": "scheduled_message", "tenant_id": "../x", "scheduled_id": failed}),
        json!({"kind": "scheduled_message", "tenant_id": null, "scheduled_id": failed}),
        json!({"kind": "scheduled_message", "tenant_id": channel.tenant}),
        json!({"kind": "nope"}),
        json!(null),
    ] {
        assert_eq!(h(input.clone()).await, Ok(()), "{input}");
    }
    // No `sending` row was created for a missing id.
    let all = list(&channel, "limit=100").await;
    assert_eq!(
        all.body["items"].as_array().unwrap().len(),
        2,
        "{}",
        all.text
    );
}

#[tokio::test]
async fn schedules_hostile_two_concurrent_cancels_write_one_note() {
    let channel = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let agent = token(&channel.tenant, "agent");
    let admin = channel.admin();
    for _ in 0..3 {
        let id = schedule_id(&channel, &conversation, "twice").await;
        let path = format!("/scheduled-messages/{id}");
        let (a, b) = tokio::join!(delete_as(&path, &agent), delete_as(&path, &admin));
        assert_eq!((a.status, b.status), (200, 200), "{} / {}", a.text, b.text);
        assert_eq!(a.body["status"], "cancelled");
        assert_eq!(b.body["status"], "cancelled");
    }
    assert_eq!(
        system_events(&channel.tenant, &conversation, "scheduled_cancelled")
            .await
            .len(),
        3
    );
}

#[tokio::test]
async fn schedules_hostile_twenty_concurrent_fires_send_once() {
    let channel = connect("whatsapp").await;
    let (conversation, customer) = customer_wrote(&channel, "whatsapp", 1).await;
    let id = schedule_id(&channel, &conversation, "twenty").await;
    let h = scheduler_handler();
    let fires = (0..20).map(|_| deliver(&h, fire_input(&channel.tenant, &id)));
    for result in futures::future::join_all(fires).await {
        assert_eq!(result, Ok(()));
    }
    assert_eq!(accepted_sends_to(&channel.external_id, &customer).len(), 1);
    assert_eq!(listed(&channel, &conversation, &id).await["status"], "sent");
    assert_eq!(scheduled_sends(&channel.tenant, &conversation).await, 1);
    assert_eq!(
        system_events(&channel.tenant, &conversation, "scheduled_sent")
            .await
            .len(),
        1
    );
    // Plus a cancel in the middle of more fires: still one.
    let agent = token(&channel.tenant, "agent");
    let path = format!("/scheduled-messages/{id}");
    let (_, cancel) = tokio::join!(
        futures::future::join_all((0..5).map(|_| deliver(&h, fire_input(&channel.tenant, &id)))),
        delete_as(&path, &agent)
    );
    assert_eq!((cancel.status, cancel.code()), (409, "already_sent"));
    assert_eq!(accepted_sends_to(&channel.external_id, &customer).len(), 1);
}

#[tokio::test]
async fn schedules_hostile_customer_reply_racing_a_fire_ends_one_way() {
    let channel = connect("whatsapp").await;
    let (conversation, vars) = customer_wrote_as(&channel, "whatsapp", 0).await;
    let customer = vars.sender.clone();
    for round in 0..4 {
        let label = format!("reply race {round}");
        let reply = schedule_message(
            &channel,
            &conversation,
            &json!({"send_at": at(300, 0), "message": text(&label), "cancel_if_customer_replies": true}),
        )
        .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let id = reply.body["id"].as_str().unwrap().to_owned();
        // The customer's message is strictly after the schedule's creation.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let again = FixtureVars {
            msg_id: ulid::Ulid::new().to_string(),
            timestamp: Utc::now().timestamp(),
            ..vars.clone()
        };
        let h = scheduler_handler();
        let body = again.render(&fixture("whatsapp/text.json"));
        let (fired, inbound) = tokio::join!(
            deliver(&h, fire_input(&channel.tenant, &id)),
            post_meta("whatsapp", &body)
        );
        assert_eq!(fired, Ok(()));
        assert_eq!(inbound.status, 200);
        let m = settled(&channel, &conversation, &id).await;
        let sent = accepted_sends_to(&channel.external_id, &customer)
            .iter()
            .filter(|s| s["body"]["text"]["body"] == label.as_str())
            .count();
        match m["status"].as_str().unwrap_or_default() {
            "sent" => assert_eq!(sent, 1, "{m}"),
            "cancelled" => {
                assert_eq!(sent, 0, "{m}");
                assert_eq!(m["cancel_reason"], "customer_replied");
            }
            other => panic!("round {round} ended {other}: {m}"),
        }
    }
}

#[tokio::test]
async fn schedules_hostile_a_resumed_fire_sends_what_its_dead_delivery_accepted() {
    use shared::ports::ScheduledStore;
    let channel = connect("whatsapp").await;
    let (conversation, vars) = customer_wrote_as(&channel, "whatsapp", 0).await;
    let label = format!("resumed {}", ulid::Ulid::new());
    let reply = schedule_message(
        &channel,
        &conversation,
        &json!({"send_at": at(300, 0), "message": text(&label), "cancel_if_customer_replies": true}),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    // A first delivery claimed the fire and accepted its send, then its invocation died.
    let tenant = shared::domain::ids::TenantId::parse(&channel.tenant).unwrap();
    let store = crate::channels_hostile::store();
    let (_, claimed) = store.claim_scheduled(&tenant, &id).await.unwrap().unwrap();
    assert!(claimed);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let message = crate::outbound::fire_accepted_then_ended(
        &channel,
        &conversation,
        &label,
        &id,
        chrono::Duration::minutes(2),
    )
    .await;
    // The customer writes after it was accepted (the schedule asked to be cancelled by a
    // reply, but its message was already on its way).
    let again = FixtureVars {
        msg_id: ulid::Ulid::new().to_string(),
        timestamp: Utc::now().timestamp(),
        ..vars.clone()
    };
    let body = again.render(&fixture("whatsapp/text.json"));
    assert_eq!(post_meta("whatsapp", &body).await.status, 200);
    // Lambda delivers the fire again: the accepted message goes, once, and the schedule
    // says so (not cancelled, not failed, not a second message).
    let h = scheduler_handler();
    assert_eq!(deliver(&h, fire_input(&channel.tenant, &id)).await, Ok(()));
    assert_eq!(deliver(&h, fire_input(&channel.tenant, &id)).await, Ok(()));
    let sent = accepted_sends_to(&channel.external_id, &vars.sender)
        .iter()
        .filter(|s| s["body"]["text"]["body"] == label.as_str())
        .count();
    assert_eq!(sent, 1);
    let m = listed(&channel, &conversation, &id).await;
    assert_eq!(m["status"], "sent", "{m}");
    assert_eq!(m["message_id"], message.as_str(), "{m}");
    assert!(
        system_events(&channel.tenant, &conversation, "scheduled_cancelled")
            .await
            .is_empty()
    );
}
