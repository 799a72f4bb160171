//! Calendar, bookings and invitations end to end (SPEC §10): slots in the tenant's zone
//! (repeats across a clock change), bookings with exactly one winner per slot however many
//! ask at once, cancels that free the slot, confirmations through the send path (and a
//! system message when the window keeps one from going out), invitation links and the
//! public booking page's form post.

use chrono::{Datelike, Duration, NaiveDate, Utc, Weekday};
use integration_tests::{
    TestChannel, accepted_sends_to, connect, connect_for, customer_wrote, delete_as, get,
    post_json, put_as, stack, system_events, token, unique_meta_id, unique_tenant,
};
use serde_json::{Value, json};

/// An agent token of the channel's tenant.
fn agent(channel: &TestChannel) -> String {
    token(&channel.tenant, "agent")
}

/// Sets the tenant's name and zone.
async fn settings(channel: &TestChannel, name: &str, zone: &str) {
    let reply = put_as(
        "/settings",
        &channel.admin(),
        Some(&json!({"business_name": name, "time_zone": zone})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// A whole hour `days` from now, RFC 3339 UTC.
fn hour_in_days(days: i64, hour: u32) -> String {
    let day = (Utc::now() + Duration::days(days)).date_naive();
    format!("{day}T{hour:02}:00:00Z")
}

/// Creates slots, asserting 201: the slots.
async fn create_slots(channel: &TestChannel, body: &Value) -> Vec<Value> {
    let reply = post_json("/calendar/slots", Some(&agent(channel)), body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["items"].as_array().unwrap().clone()
}

/// One 30-minute slot `days` from now at `hour` UTC: its id.
async fn one_slot(channel: &TestChannel, days: i64, hour: u32) -> String {
    let slots = create_slots(
        channel,
        &json!({"start": hour_in_days(days, hour), "duration_minutes": 30}),
    )
    .await;
    slots[0]["id"].as_str().unwrap().to_owned()
}

fn customer_of(conversation: &str) -> String {
    shared::domain::conversation::customer_of_conversation(conversation).unwrap()
}

/// The next Sunday the clocks go forward in London (the last Sunday of March) at least a
/// week away.
fn next_london_spring_forward() -> NaiveDate {
    let today = Utc::now().date_naive();
    let mut year = today.year();
    loop {
        let mut day = NaiveDate::from_ymd_opt(year, 3, 31).unwrap();
        while day.weekday() != Weekday::Sun {
            day = day.pred_opt().unwrap();
        }
        if day > today + Duration::days(7) {
            return day;
        }
        year += 1;
    }
}

#[tokio::test]
async fn slots_repeat_at_the_same_local_time_across_the_clock_change_and_list_in_the_zone() {
    let channel = connect("whatsapp").await;
    settings(&channel, "Acme Dental", "Europe/London").await;
    let change = next_london_spring_forward();
    let first = change - Duration::days(2);
    let slots = create_slots(
        &channel,
        &json!({"start": format!("{first}T09:00"), "duration_minutes": 30,
                "repeat": {"freq": "daily", "until": (change + Duration::days(1)).to_string()}}),
    )
    .await;
    let starts: Vec<&str> = slots.iter().map(|s| s["start"].as_str().unwrap()).collect();
    assert_eq!(
        starts,
        [
            format!("{first}T09:00:00+00:00"),
            format!("{}T09:00:00+00:00", first + Duration::days(1)),
            format!("{change}T09:00:00+01:00"),
            format!("{}T09:00:00+01:00", change + Duration::days(1)),
        ]
    );
    assert!(slots.iter().all(|s| s["status"] == "available"
        && s["time_zone"] == "Europe/London"
        && s["duration_minutes"] == 30
        && s["created_by"] == "agent-1"));

    // The hour the clocks skip does not exist.
    let skipped = post_json(
        "/calendar/slots",
        Some(&agent(&channel)),
        &json!({"start": format!("{change}T01:30"), "duration_minutes": 30}),
    )
    .await;
    assert_eq!(
        (skipped.status, skipped.code()),
        (422, "nonexistent_local_time")
    );

    // Overlapping an existing slot is refused, naming it; touching it is fine.
    let overlap = post_json(
        "/calendar/slots",
        Some(&agent(&channel)),
        &json!({"start": format!("{first}T09:15"), "duration_minutes": 30}),
    )
    .await;
    assert_eq!((overlap.status, overlap.code()), (422, "overlapping_slots"));
    assert!(
        overlap.text.contains(slots[0]["id"].as_str().unwrap()),
        "{}",
        overlap.text
    );
    create_slots(
        &channel,
        &json!({"start": format!("{first}T09:30"), "end": format!("{first}T10:00")}),
    )
    .await;

    // Listed in the zone, by day (a date as `to` includes its day).
    let listed = get(
        &format!("/calendar/slots?from={first}&to={first}"),
        Some(&agent(&channel)),
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            format!("{first}T09:00:00+00:00"),
            format!("{first}T09:30:00+00:00")
        ]
    );
    let page = get("/calendar/slots?limit=2", Some(&agent(&channel))).await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let rest = get(
        &format!("/calendar/slots?limit=100&cursor={cursor}"),
        Some(&agent(&channel)),
    )
    .await;
    assert_eq!(
        rest.body["items"].as_array().unwrap().len(),
        3,
        "{}",
        rest.text
    );

    // A free slot is deleted; then it is gone.
    let id = slots[3]["id"].as_str().unwrap();
    let deleted = delete_as(&format!("/calendar/slots/{id}"), &agent(&channel)).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let again = delete_as(&format!("/calendar/slots/{id}"), &agent(&channel)).await;
    assert_eq!((again.status, again.code()), (404, "not_found"));
}

#[tokio::test]
async fn a_booking_confirms_to_the_customer_and_its_cancel_frees_the_slot() {
    let channel = connect("whatsapp").await;
    settings(&channel, "Acme Dental", "Europe/London").await;
    let (conversation, wa_id) = customer_wrote(&channel, "whatsapp", 1).await;
    let customer = customer_of(&conversation);
    let slot = one_slot(&channel, 3, 10).await;

    let booked = post_json(
        "/bookings",
        Some(&agent(&channel)),
        &json!({"customer_id": customer, "slot_id": slot, "note": "First visit"}),
    )
    .await;
    assert_eq!(booked.status, 201, "{}", booked.text);
    let booking = &booked.body;
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["slot_id"], slot.as_str());
    assert_eq!(booking["customer_id"], customer.as_str());
    assert_eq!(booking["note"], "First visit");
    assert_eq!(
        booking["booked_by"],
        json!({"type": "agent", "id": "agent-1"})
    );
    assert_eq!(booking["time_zone"], "Europe/London");
    assert_eq!(booking["confirmation"]["status"], "sent", "{}", booked.text);
    let booking_id = booking["id"].as_str().unwrap().to_owned();

    // The confirmation reached the customer through the send path, as the agent.
    let sent = accepted_sends_to(&channel.external_id, &wa_id);
    assert_eq!(sent.len(), 1);
    let text = sent[0]["body"]["text"]["body"].as_str().unwrap();
    assert!(
        text.starts_with("Acme Dental: your booking is confirmed for "),
        "{text}"
    );
    assert!(text.contains(" London time (GMT"), "{text}");
    let created = system_events(&channel.tenant, &conversation, "booking_created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0]["actor"],
        json!({"type": "agent", "id": "agent-1"})
    );

    // Listed for the customer and the tenant; the slot shows it.
    let mine = get(
        &format!("/customers/{customer}/bookings"),
        Some(&agent(&channel)),
    )
    .await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    assert_eq!(mine.body["items"][0]["id"], booking_id.as_str());
    let all = get("/bookings", Some(&agent(&channel))).await;
    assert_eq!(
        all.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        all.text
    );
    let slots = get("/calendar/slots?available=false", Some(&agent(&channel))).await;
    assert_eq!(slots.body["items"][0]["booking_id"], booking_id.as_str());
    let free = get("/calendar/slots?available=true", Some(&agent(&channel))).await;
    assert_eq!(free.body["items"], json!([]));

    // A booked slot cannot be deleted, nor booked again.
    let delete = delete_as(&format!("/calendar/slots/{slot}"), &agent(&channel)).await;
    assert_eq!((delete.status, delete.code()), (409, "slot_booked"));
    let twice = post_json(
        "/bookings",
        Some(&agent(&channel)),
        &json!({"customer_id": customer, "slot_id": slot}),
    )
    .await;
    assert_eq!((twice.status, twice.code()), (409, "slot_taken"));

    // Cancel: the slot is free again, the customer is told, once.
    let cancelled = delete_as(&format!("/bookings/{booking_id}"), &agent(&channel)).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(
        cancelled.body["notification"]["status"], "sent",
        "{}",
        cancelled.text
    );
    assert_eq!(
        cancelled.body["cancelled_by"],
        json!({"type": "agent", "id": "agent-1"})
    );
    let again = delete_as(&format!("/bookings/{booking_id}"), &agent(&channel)).await;
    assert_eq!(
        (again.status, again.body["status"].clone()),
        (200, json!("cancelled"))
    );
    let sent = accepted_sends_to(&channel.external_id, &wa_id);
    assert_eq!(sent.len(), 2, "one confirmation, one cancellation");
    assert!(
        sent[1]["body"]["text"]["body"]
            .as_str()
            .unwrap()
            .contains("was cancelled")
    );
    assert_eq!(
        system_events(&channel.tenant, &conversation, "booking_cancelled")
            .await
            .len(),
        1
    );
    let free = get("/calendar/slots?available=true", Some(&agent(&channel))).await;
    assert_eq!(free.body["items"][0]["id"], slot.as_str());
    let rebooked = post_json(
        "/bookings",
        Some(&agent(&channel)),
        &json!({"customer_id": customer, "slot_id": slot}),
    )
    .await;
    assert_eq!(rebooked.status, 201, "{}", rebooked.text);
    let history = get(
        &format!("/customers/{customer}/bookings"),
        Some(&agent(&channel)),
    )
    .await;
    let statuses: Vec<&str> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 2);
    assert!(statuses.contains(&"cancelled") && statuses.contains(&"confirmed"));
}

#[tokio::test]
async fn a_hundred_agents_booking_one_slot_at_once_make_one_booking() {
    let channel = connect("whatsapp").await;
    let (conversation, wa_id) = customer_wrote(&channel, "whatsapp", 1).await;
    let customer = customer_of(&conversation);
    let slot = one_slot(&channel, 2, 15).await;
    let agent = agent(&channel);
    let body = json!({"customer_id": customer, "slot_id": slot});
    let replies =
        futures::future::join_all((0..100).map(|_| post_json("/bookings", Some(&agent), &body)))
            .await;
    let won = replies.iter().filter(|r| r.status == 201).count();
    let taken = replies
        .iter()
        .filter(|r| r.status == 409 && r.code() == "slot_taken")
        .count();
    assert_eq!(
        (won, taken),
        (1, 99),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(
        system_events(&channel.tenant, &conversation, "booking_created")
            .await
            .len(),
        1
    );
    assert_eq!(accepted_sends_to(&channel.external_id, &wa_id).len(), 1);
    let list = get(&format!("/customers/{customer}/bookings"), Some(&agent)).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_confirmation_the_window_keeps_from_going_out_leaves_a_system_message() {
    let channel = connect("whatsapp").await;
    // The customer wrote 30 hours ago: free-form messages cannot go out on WhatsApp.
    let (conversation, wa_id) = customer_wrote(&channel, "whatsapp", 30).await;
    let slot = one_slot(&channel, 2, 9).await;
    let booked = post_json(
        "/bookings",
        Some(&agent(&channel)),
        &json!({"customer_id": customer_of(&conversation), "slot_id": slot}),
    )
    .await;
    assert_eq!(booked.status, 201, "{}", booked.text);
    assert_eq!(booked.body["status"], "confirmed");
    assert_eq!(
        booked.body["confirmation"]["error"]["code"],
        "template_required"
    );
    assert!(accepted_sends_to(&channel.external_id, &wa_id).is_empty());
    let failed = system_events(&channel.tenant, &conversation, "delivery_failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["error"]["code"], "template_required");
    assert!(
        failed[0]["text"]
            .as_str()
            .unwrap()
            .contains("Booking confirmation not sent"),
        "{failed:?}"
    );
}

#[tokio::test]
async fn outside_the_window_an_agent_confirms_with_a_template_carrying_the_time() {
    let waba = unique_meta_id();
    let channel = connect_for(&unique_tenant(), "whatsapp", json!({"waba_id": waba})).await;
    let template = post_json(
        "/templates",
        Some(&channel.admin()),
        &json!({"channel_id": channel.id, "name": "booking_confirmed", "language": "en_US",
                "category": "UTILITY", "components": [{"type": "BODY", "text": "Hi {{1}}, you are booked for {{2}}."}]}),
    )
    .await;
    assert_eq!(template.body["status"], "APPROVED", "{}", template.text);
    let (conversation, wa_id) = customer_wrote(&channel, "whatsapp", 30).await;
    let slot = one_slot(&channel, 2, 9).await;
    let booked = post_json(
        "/bookings",
        Some(&agent(&channel)),
        &json!({"customer_id": customer_of(&conversation), "slot_id": slot,
                "template": {"name": "booking_confirmed", "language": "en_US", "parameters": ["Ana", "{{time}}"]}}),
    )
    .await;
    assert_eq!(booked.status, 201, "{}", booked.text);
    assert_eq!(
        booked.body["confirmation"]["status"], "sent",
        "{}",
        booked.text
    );
    let sent = accepted_sends_to(&channel.external_id, &wa_id);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["body"]["template"]["name"], "booking_confirmed");
    let parameters = sent[0]["body"]["template"]["components"][0]["parameters"].to_string();
    assert!(parameters.contains("09:00–09:30 UTC"), "{parameters}");
    assert!(
        system_events(&channel.tenant, &conversation, "delivery_failed")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn bad_bookings_and_slots_are_refused_with_a_code_and_write_nothing() {
    let channel = connect("messenger").await;
    let (conversation, _) = customer_wrote(&channel, "messenger", 1).await;
    let customer = customer_of(&conversation);
    let slot = one_slot(&channel, 2, 11).await;
    let agent = agent(&channel);
    let cases = [
        (json!({"customer_id": customer}), 422, "invalid_body"),
        (
            json!({"customer_id": customer, "slot_id": slot, "extra": 1}),
            422,
            "invalid_body",
        ),
        (
            json!({"customer_id": customer, "slot_id": "sl_nope"}),
            404,
            "not_found",
        ),
        (
            json!({"customer_id": "cu_nope", "slot_id": slot}),
            404,
            "not_found",
        ),
        (
            json!({"customer_id": customer, "slot_id": slot, "note": "x".repeat(1001)}),
            422,
            "invalid_note",
        ),
        (json!([1, 2]), 422, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let reply = post_json("/bookings", Some(&agent), &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{body}: {}",
            reply.text
        );
    }
    let slot_cases = [
        (
            json!({"start": "2020-01-01T09:00:00Z", "duration_minutes": 30}),
            "invalid_slot",
        ),
        (
            json!({"start": hour_in_days(2, 9), "duration_minutes": 30, "repeat": {"freq": "daily", "until": hour_in_days(200, 9)}}),
            "too_many_slots",
        ),
        (json!({"start": hour_in_days(2, 9)}), "invalid_slot"),
        (
            json!({"start": hour_in_days(2, 9), "duration_minutes": "30"}),
            "invalid_body",
        ),
    ];
    for (body, code) in slot_cases {
        let reply = post_json("/calendar/slots", Some(&agent), &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, code),
            "{body}: {}",
            reply.text
        );
    }
    for query in [
        "from=yesterday",
        "available=maybe",
        "from=2026-12-02&to=2026-12-01",
        "cursor=bad",
    ] {
        let reply = get(&format!("/calendar/slots?{query}"), Some(&agent)).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.text);
    }
    let bad_json =
        integration_tests::call("POST", "/bookings", Some(&agent), Some(b"{".to_vec())).await;
    assert_eq!(bad_json.status, 400, "{}", bad_json.text);
    let no_token = post_json("/bookings", None, &json!({})).await;
    assert_eq!(no_token.status, 401);
    let bookings = get(&format!("/customers/{customer}/bookings"), Some(&agent)).await;
    assert_eq!(bookings.body["items"], json!([]));
    let slots = get("/calendar/slots", Some(&agent)).await;
    assert_eq!(
        slots.body["items"].as_array().unwrap().len(),
        1,
        "only the good slot"
    );
}

#[tokio::test]
async fn another_tenants_slots_and_bookings_are_not_found() {
    let mine = connect("whatsapp").await;
    let theirs = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&theirs, "whatsapp", 1).await;
    let their_customer = customer_of(&conversation);
    let their_slot = one_slot(&theirs, 2, 12).await;
    let booked = post_json(
        "/bookings",
        Some(&agent(&theirs)),
        &json!({"customer_id": their_customer, "slot_id": their_slot}),
    )
    .await;
    assert_eq!(booked.status, 201);
    let their_booking = booked.body["id"].as_str().unwrap();
    let me = agent(&mine);
    let my_slot = one_slot(&mine, 2, 12).await;
    // Their customer with my slot, my customer-less tenant with their slot: 404 both.
    let cross = post_json(
        "/bookings",
        Some(&me),
        &json!({"customer_id": their_customer, "slot_id": my_slot}),
    )
    .await;
    assert_eq!(cross.status, 404, "{}", cross.text);
    assert_eq!(
        delete_as(&format!("/bookings/{their_booking}"), &me)
            .await
            .status,
        404
    );
    assert_eq!(
        delete_as(&format!("/calendar/slots/{their_slot}"), &me)
            .await
            .status,
        404
    );
    let listed = get(&format!("/customers/{their_customer}/bookings"), Some(&me)).await;
    assert_eq!((listed.status, listed.code()), (404, "not_found"));
    let invite = post_json(
        &format!("/customers/{their_customer}/booking-invitations"),
        Some(&me),
        &json!({}),
    )
    .await;
    assert_eq!(invite.status, 404, "{}", invite.text);
    // Their booking is still theirs.
    let still = get("/bookings", Some(&agent(&theirs))).await;
    assert_eq!(still.body["items"][0]["status"], "confirmed");
}

/// A form post to the booking page: status and HTML.
async fn choose(url: &str, slot: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("slot_id={slot}"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Opens the booking page: status, headers and HTML.
async fn open_page(url: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// Sends an invitation to the customer of `conversation`, asserting 201.
async fn invite(channel: &TestChannel, conversation: &str, body: &Value) -> Value {
    let reply = post_json(
        &format!(
            "/customers/{}/booking-invitations",
            customer_of(conversation)
        ),
        Some(&agent(channel)),
        body,
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body
}

#[tokio::test]
async fn an_invited_customer_books_from_the_link_once() {
    let channel = connect("whatsapp").await;
    settings(&channel, "Acme <Dental> & Sons", "Asia/Hong_Kong").await;
    let (conversation, wa_id) = customer_wrote(&channel, "whatsapp", 1).await;
    let slot = one_slot(&channel, 2, 2).await;
    let later = one_slot(&channel, 3, 2).await;
    let invitation = invite(&channel, &conversation, &json!({"expires_in_hours": 24})).await;
    let url = invitation["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{}/b/", stack().base_url)),
        "{url}"
    );
    let token = url.rsplit('/').next().unwrap();
    assert_eq!(token.len(), 43, "256 random bits, base64url");
    assert!(invitation["message_id"].is_string());
    assert_eq!(invitation["sent_as_template"], false);
    let sent = accepted_sends_to(&channel.external_id, &wa_id);
    assert!(
        sent[0]["body"]["text"]["body"]
            .as_str()
            .unwrap()
            .ends_with(&url)
    );

    // The page: the business, its slots by day in its zone, a form.
    let (status, headers, html) = open_page(&url).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Acme &#60;Dental&#62; &#38; Sons"),
        "escaped: {html}"
    );
    assert!(!html.contains("<Dental>"));
    assert!(
        html.contains(&format!("value=\"{slot}\"")) && html.contains(&format!("value=\"{later}\""))
    );
    assert!(
        html.contains("10:00 – 10:30"),
        "02:00 UTC is 10:00 in Hong Kong: {html}"
    );
    assert!(html.contains("Hong Kong time (GMT+8)"), "{html}");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");

    // The choice books it, confirms it and uses the link.
    let (status, html) = choose(&url, &slot).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("You&#39;re booked") || html.contains("You're booked"),
        "{html}"
    );
    let bookings = get(
        &format!("/customers/{}/bookings", customer_of(&conversation)),
        Some(&agent(&channel)),
    )
    .await;
    let booking = &bookings.body["items"][0];
    assert_eq!(booking["slot_id"], slot.as_str());
    assert_eq!(booking["invitation_id"], invitation["id"]);
    assert_eq!(booking["booked_by"]["type"], "customer");
    let sent = accepted_sends_to(&channel.external_id, &wa_id);
    assert_eq!(sent.len(), 2, "the link, then the confirmation");
    assert!(
        sent[1]["body"]["text"]["body"]
            .as_str()
            .unwrap()
            .contains("confirmed")
    );
    let created = system_events(&channel.tenant, &conversation, "booking_created").await;
    assert_eq!(created[0]["actor"]["type"], "customer");

    // Used: the page shows the booking (410), a second choice books nothing.
    let (status, _, html) = open_page(&url).await;
    assert_eq!(status, 410);
    assert!(
        html.contains("This link has been used") && html.contains("10:00–10:30"),
        "{html}"
    );
    let (status, _) = choose(&url, &later).await;
    assert_eq!(status, 410);
    let free = get("/calendar/slots?available=true", Some(&agent(&channel))).await;
    assert_eq!(free.body["items"][0]["id"], later.as_str());
}

#[tokio::test]
async fn a_hundred_invited_customers_choosing_one_slot_at_once_make_one_booking() {
    let channel = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let slot = one_slot(&channel, 2, 16).await;
    let mut urls = Vec::new();
    for _ in 0..100 {
        let invitation = invite(&channel, &conversation, &json!({})).await;
        urls.push(invitation["url"].as_str().unwrap().to_owned());
    }
    let replies = futures::future::join_all(urls.iter().map(|url| choose(url, &slot))).await;
    let won = replies.iter().filter(|(s, _)| *s == 200).count();
    let taken = replies
        .iter()
        .filter(|(s, html)| *s == 409 && html.contains("just taken"))
        .count();
    assert_eq!(
        (won, taken),
        (1, 99),
        "{:?}",
        replies.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert_eq!(
        system_events(&channel.tenant, &conversation, "booking_created")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn the_page_answers_unknown_expired_and_bad_posts_with_their_own_pages() {
    let channel = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let slot = one_slot(&channel, 2, 8).await;
    let base = &stack().base_url;
    let (status, _, html) = open_page(&format!("{base}/b/{}", "A".repeat(43))).await;
    assert_eq!(status, 404);
    assert!(html.contains("Link not found"));
    let (status, _, _) = open_page(&format!("{base}/b/short")).await;
    assert_eq!(status, 404);
    let (status, _) = choose(&format!("{base}/b/{}", "A".repeat(43)), &slot).await;
    assert_eq!(status, 404);

    let invitation = invite(&channel, &conversation, &json!({})).await;
    let url = invitation["url"].as_str().unwrap();
    // No choice, or a slot the page does not offer: the page again, nothing booked.
    let (status, html) = choose(url, "").await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("Please choose a time"));
    let (status, html) = choose(url, "sl_20200101T0000Z_0000000000").await;
    assert_eq!(status, 409, "{html}");
    let oversized = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("slot_id={slot}&pad={}", "x".repeat(8000)))
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status().as_u16(), 413);

    // Expired: the link's time ran out (set in the table: the API allows 1 minute at least).
    let hash = shared::domain::booking::token_hash(url.rsplit('/').next().unwrap());
    let dynamo = aws_sdk_dynamodb::Client::new(&stack().settings.sdk_config());
    dynamo
        .update_item()
        .table_name(stack().template.local_name("ChatTable").unwrap())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("INVITE#{hash}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("INVITE".into()),
        )
        .update_expression("SET invite_expires_at = :past")
        .expression_attribute_values(
            ":past",
            aws_sdk_dynamodb::types::AttributeValue::S("2020-01-01T00:00:00.000Z".into()),
        )
        .send()
        .await
        .unwrap();
    let (status, _, html) = open_page(url).await;
    assert_eq!(status, 410);
    assert!(html.contains("expired"), "{html}");
    let (status, _) = choose(url, &slot).await;
    assert_eq!(status, 410);
    let free = get("/calendar/slots?available=true", Some(&agent(&channel))).await;
    assert_eq!(free.body["items"][0]["id"], slot.as_str(), "nothing booked");
}

#[tokio::test]
async fn whatsapp_outside_the_window_sends_the_link_in_a_template_or_refuses() {
    let waba = unique_meta_id();
    let channel = connect_for(&unique_tenant(), "whatsapp", json!({"waba_id": waba})).await;
    let template = post_json(
        "/templates",
        Some(&channel.admin()),
        &json!({"channel_id": channel.id, "name": "booking_link", "language": "en_US",
                "category": "UTILITY", "components": [{"type": "BODY", "text": "Hi {{1}}, choose your time: {{2}}"}]}),
    )
    .await;
    assert_eq!(template.body["status"], "APPROVED", "{}", template.text);
    let (conversation, wa_id) = customer_wrote(&channel, "whatsapp", 30).await;
    let path = format!(
        "/customers/{}/booking-invitations",
        customer_of(&conversation)
    );
    let refused = post_json(&path, Some(&agent(&channel)), &json!({})).await;
    assert_eq!((refused.status, refused.code()), (422, "template_required"));
    assert!(accepted_sends_to(&channel.external_id, &wa_id).is_empty());
    let wrong = post_json(
        &path,
        Some(&agent(&channel)),
        &json!({"template": {"name": "booking_link", "language": "en_US", "parameters": []}}),
    )
    .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (422, "template_parameters"),
        "{}",
        wrong.text
    );
    let invitation = invite(
        &channel,
        &conversation,
        &json!({"template": {"name": "booking_link", "language": "en_US", "parameters": ["Ana"]}}),
    )
    .await;
    assert_eq!(invitation["sent_as_template"], true);
    let sent = accepted_sends_to(&channel.external_id, &wa_id);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["body"]["template"]["name"], "booking_link");
    let parameters = sent[0]["body"]["template"]["components"][0]["parameters"].to_string();
    assert!(
        parameters.contains(invitation["url"].as_str().unwrap()),
        "{parameters}"
    );
    // The refused attempts left no working link: only the sent one opens.
    let (status, _, _) = open_page(invitation["url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn invitation_terms_are_checked() {
    let channel = connect("instagram").await;
    let (conversation, _) = customer_wrote(&channel, "instagram", 1).await;
    let path = format!(
        "/customers/{}/booking-invitations",
        customer_of(&conversation)
    );
    for (body, code) in [
        (json!({"expires_in_hours": 0}), "invalid_expiry"),
        (
            json!({"expires_at": "2020-01-01T00:00:00Z"}),
            "invalid_expiry",
        ),
        (
            json!({"from": "2030-01-02", "to": "2030-01-01"}),
            "invalid_range",
        ),
        (json!({"colour": "red"}), "invalid_body"),
    ] {
        let reply = post_json(&path, Some(&agent(&channel)), &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, code),
            "{body}: {}",
            reply.text
        );
    }
    let none = post_json(
        "/customers/cu_nope/booking-invitations",
        Some(&agent(&channel)),
        &json!({}),
    )
    .await;
    assert_eq!(none.status, 404);
    // An empty body takes the defaults: 72 hours.
    let reply = integration_tests::call("POST", &path, Some(&agent(&channel)), None).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let expires =
        chrono::DateTime::parse_from_rfc3339(reply.body["expires_at"].as_str().unwrap()).unwrap();
    let hours = (expires.with_timezone(&Utc) - Utc::now()).num_minutes() as f64 / 60.0;
    assert!((71.9..=72.0).contains(&hours), "{hours}");
}

#[tokio::test]
async fn an_invitation_the_provider_refuses_leaves_no_link_and_says_why() {
    let channel = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    integration_tests::sandbox_fail(
        &channel.external_id,
        vec![json!({"status": 400, "code": 131026, "message": "Message undeliverable"})],
    );
    let reply = post_json(
        &format!(
            "/customers/{}/booking-invitations",
            customer_of(&conversation)
        ),
        Some(&agent(&channel)),
        &json!({}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (502, "upstream_error"),
        "{}",
        reply.text
    );
    let failed = system_events(&channel.tenant, &conversation, "delivery_failed").await;
    assert_eq!(failed[0]["error"]["code"], "131026");
    // The failed message holds the link: it does not open.
    let messages = integration_tests::all_messages(&channel.tenant, &conversation).await;
    let url = messages
        .iter()
        .filter_map(|m| m["text"].as_str())
        .find_map(|t| t.split_whitespace().find(|w| w.contains("/b/")))
        .expect("the refused message is recorded with its link")
        .to_owned();
    let (status, _, _) = open_page(&url).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_booking_that_has_begun_is_not_cancelled_and_cursors_of_another_range_do_not_fail() {
    let channel = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let customer = customer_of(&conversation);
    let slot = one_slot(&channel, 2, 7).await;
    for days in 3..6 {
        one_slot(&channel, days, 7).await;
    }
    let booked = post_json(
        "/bookings",
        Some(&agent(&channel)),
        &json!({"customer_id": customer, "slot_id": slot}),
    )
    .await;
    assert_eq!(booked.status, 201, "{}", booked.text);
    let id = booked.body["id"].as_str().unwrap();
    // Its time has come (moved in the table: nothing in the API makes a past booking).
    let dynamo = aws_sdk_dynamodb::Client::new(&stack().settings.sdk_config());
    dynamo
        .update_item()
        .table_name(stack().template.local_name("ChatTable").unwrap())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!(
                "TENANT#{}#BOOKING#{id}",
                channel.tenant
            )),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("BOOKING".into()),
        )
        .update_expression("SET #start = :past")
        .expression_attribute_names("#start", "start")
        .expression_attribute_values(
            ":past",
            aws_sdk_dynamodb::types::AttributeValue::S("2020-01-01T09:00:00.000Z".into()),
        )
        .condition_expression("attribute_exists(pk)")
        .send()
        .await
        .unwrap();
    let cancel = delete_as(&format!("/bookings/{id}"), &agent(&channel)).await;
    assert_eq!(
        (cancel.status, cancel.code()),
        (409, "booking_started"),
        "{}",
        cancel.text
    );

    // A cursor carried into another range: the right page, never an error.
    let first = get("/calendar/slots?limit=2", Some(&agent(&channel))).await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let later = hour_in_days(10, 0);
    for query in [
        format!("limit=2&cursor={cursor}&from={later}"),
        format!("limit=2&cursor={cursor}&to={}", hour_in_days(1, 0)),
    ] {
        let reply = get(&format!("/calendar/slots?{query}"), Some(&agent(&channel))).await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.text);
        assert_eq!(reply.body["items"], json!([]), "{query}");
    }
}
