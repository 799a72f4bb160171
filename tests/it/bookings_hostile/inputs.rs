//! Bad input on every agent route: bodies (types, nulls, huge numbers, unicode, 64 KB+,
//! not JSON), path ids (`#`, NUL, very long, another route's), list filters and cursors
//! (forged, another tenant's, another route's) and dates at the edge of the calendar.
//! Always a 4xx with an error code, never a 5xx, and nothing written.

use integration_tests::{call, get};
use serde_json::{Value, json};

use super::{Desk, absolute, assert_refused, utc_at};

#[tokio::test]
async fn bad_slot_bodies_are_refused_with_a_code_and_create_nothing() {
    let desk = Desk::new("whatsapp").await;
    let before = desk.state().await;
    let start = utc_at(3, 9, 0);
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({}), 422, "invalid_body"),
        (
            json!({"start": null, "duration_minutes": 30}),
            422,
            "invalid_body",
        ),
        (
            json!({"start": 5, "duration_minutes": 30}),
            422,
            "invalid_body",
        ),
        (
            json!({"start": start, "duration_minutes": null}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": start, "duration_minutes": 4}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": start, "duration_minutes": 1441}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": start, "duration_minutes": 0}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": start, "duration_minutes": -30}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": start, "duration_minutes": i64::MAX}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": start, "duration_minutes": i64::MIN}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": start, "duration_minutes": u64::MAX}),
            422,
            "invalid_body",
        ),
        (
            json!({"start": start, "duration_minutes": 1e300}),
            422,
            "invalid_body",
        ),
        (
            json!({"start": start, "duration_minutes": 30.5}),
            422,
            "invalid_body",
        ),
        (
            json!({"start": start, "duration_minutes": true}),
            422,
            "invalid_body",
        ),
        (
            json!({"start": start, "duration_minutes": [30]}),
            422,
            "invalid_body",
        ),
        (json!({"start": start, "end": start}), 422, "invalid_slot"),
        (
            json!({"start": start, "end": utc_at(3, 8, 0)}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": start, "end": utc_at(3, 9, 30), "duration_minutes": 30}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": start, "end": "9999-12-31T23:59:00Z"}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": start, "end": "0000-01-01T00:00:00Z"}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": "", "duration_minutes": 30}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": "tomorrow", "duration_minutes": 30}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": "２０２７-01-01T09:00:00Z", "duration_minutes": 30}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": "x".repeat(60_000), "duration_minutes": 30}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": "+262142-12-31T09:00", "duration_minutes": 30}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": "-262143-01-01T09:00", "duration_minutes": 30}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": "9999-12-31T23:00:00Z", "duration_minutes": 1440}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": "9999-12-31T23:00:00-23:59", "duration_minutes": 1440}),
            422,
            "invalid_slot",
        ),
        (
            json!({"start": start, "duration_minutes": 30, "colour": "red"}),
            422,
            "invalid_body",
        ),
        (
            json!({"start": start, "duration_minutes": 30, "repeat": {"freq": "hourly", "until": utc_at(9, 0, 0)}}),
            422,
            "invalid_body",
        ),
        (
            json!({"start": start, "duration_minutes": 30, "repeat": {"freq": "daily"}}),
            422,
            "invalid_body",
        ),
        (
            json!({"start": start, "duration_minutes": 30, "repeat": {"freq": "daily", "until": null}}),
            422,
            "invalid_body",
        ),
        (
            json!({"start": start, "duration_minutes": 30, "repeat": {"freq": "daily", "until": "soon"}}),
            422,
            "invalid_repeat",
        ),
        (
            json!({"start": start, "duration_minutes": 30, "repeat": {"freq": "daily", "until": utc_at(2, 9, 0)}}),
            422,
            "invalid_repeat",
        ),
        (
            json!({"start": start, "duration_minutes": 30, "repeat": {"freq": "daily", "by_day": ["mo"], "until": utc_at(9, 0, 0)}}),
            422,
            "invalid_repeat",
        ),
        (
            json!({"start": start, "duration_minutes": 30, "repeat": {"freq": "weekly", "by_day": [], "until": utc_at(30, 0, 0)}}),
            422,
            "invalid_repeat",
        ),
        (
            json!({"start": start, "duration_minutes": 30, "repeat": {"freq": "weekly", "by_day": ["<script>mo"], "until": utc_at(30, 0, 0)}}),
            422,
            "invalid_repeat",
        ),
        (
            json!({"start": start, "duration_minutes": 30, "repeat": {"freq": "weekly", "by_day": [1], "until": utc_at(30, 0, 0)}}),
            422,
            "invalid_body",
        ),
        (
            json!({"start": start, "duration_minutes": 30, "repeat": {"freq": "weekly", "by_day": vec!["mo"; 5000], "until": "9999-12-31"}}),
            422,
            "too_many_slots",
        ),
    ];
    for (body, status, code) in cases {
        let reply = desk.post("/calendar/slots", &body).await;
        let shown: String = body.to_string().chars().take(200).collect();
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{shown}: {}",
            reply.text
        );
    }
    // Not JSON, not an object, too large, not UTF-8, nested too deep, empty.
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let big = json!({"start": start, "duration_minutes": 30, "pad": "x".repeat(70_000)});
    for (body, status) in [
        (b"{".to_vec(), 400),
        (b"null".to_vec(), 422),
        (b"\"start\"".to_vec(), 422),
        (b"[]".to_vec(), 422),
        (big.to_string().into_bytes(), 413),
        (vec![0xff, 0xfe, b'{', b'}'], 400),
        (nested.into_bytes(), 400),
        (Vec::new(), 400),
        (b"   ".to_vec(), 400),
    ] {
        let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        let reply = call("POST", "/calendar/slots", Some(&desk.agent), Some(body)).await;
        assert_eq!(reply.status, status, "{shown}: {}", reply.text);
        assert_refused(&reply, &shown);
    }
    assert_eq!(
        desk.state().await,
        before,
        "a refused creation wrote something"
    );
}

#[tokio::test]
async fn bad_booking_bodies_are_refused_and_book_nothing() {
    let desk = Desk::new("whatsapp").await;
    let slot = desk.slot(&utc_at(2, 10, 0), 30).await;
    let before = desk.state().await;
    let customer = desk.customer.clone();
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"customer_id": customer, "slot_id": null}),
            422,
            "invalid_body",
        ),
        (
            json!({"customer_id": null, "slot_id": slot}),
            422,
            "invalid_body",
        ),
        (
            json!({"customer_id": 1, "slot_id": slot}),
            422,
            "invalid_body",
        ),
        (
            json!({"customer_id": customer, "slot_id": [slot]}),
            422,
            "invalid_body",
        ),
        (
            json!({"customer_id": customer, "slot_id": slot, "note": 5}),
            422,
            "invalid_body",
        ),
        (
            json!({"customer_id": customer, "slot_id": slot, "note": "a\u{0}b"}),
            422,
            "invalid_note",
        ),
        (
            json!({"customer_id": customer, "slot_id": slot, "note": "a\u{1b}[31m"}),
            422,
            "invalid_note",
        ),
        (
            json!({"customer_id": customer, "slot_id": slot, "note": "😀".repeat(1001)}),
            422,
            "invalid_note",
        ),
        (
            json!({"customer_id": customer, "slot_id": "", "note": "x"}),
            404,
            "not_found",
        ),
        (
            json!({"customer_id": customer, "slot_id": format!("{slot}#")}),
            404,
            "not_found",
        ),
        (
            json!({"customer_id": customer, "slot_id": slot.to_lowercase()}),
            404,
            "not_found",
        ),
        (
            json!({"customer_id": customer, "slot_id": format!(" {}", &slot)}),
            404,
            "not_found",
        ),
        (
            json!({"customer_id": customer, "slot_id": slot.replacen("sl_", "sl_ ", 1)}),
            404,
            "not_found",
        ),
        (
            json!({"customer_id": customer, "slot_id": "sl_".to_owned() + &"9".repeat(10_000)}),
            404,
            "not_found",
        ),
        (
            json!({"customer_id": customer, "slot_id": "sl_20270101T0900Z_ÀÀÀÀÀÀÀÀÀÀ"}),
            404,
            "not_found",
        ),
        (
            json!({"customer_id": customer, "slot_id": "SLOT#x"}),
            404,
            "not_found",
        ),
        (
            json!({"customer_id": "", "slot_id": slot}),
            404,
            "not_found",
        ),
        (
            json!({"customer_id": desk.conversation, "slot_id": slot}),
            404,
            "not_found",
        ),
        (
            json!({"customer_id": format!("{customer}x"), "slot_id": slot}),
            404,
            "not_found",
        ),
        (
            json!({"customer_id": customer.replace("cu_", "cu_../"), "slot_id": slot}),
            404,
            "not_found",
        ),
    ];
    for (body, status, code) in cases {
        let reply = desk.post("/bookings", &body).await;
        let shown: String = body.to_string().chars().take(200).collect();
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{shown}: {}",
            reply.text
        );
    }
    assert_eq!(
        desk.state().await,
        before,
        "a refused booking wrote something"
    );
    // A note of 1000 emoji and odd but printable text is a note.
    let reply = desk
        .post(
            "/bookings",
            &json!({"customer_id": customer, "slot_id": slot, "note": format!("  {}  ", "😀".repeat(1000))}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["note"], "😀".repeat(1000));
}

#[tokio::test]
async fn odd_path_ids_are_not_found_never_a_server_error() {
    let desk = Desk::new("messenger").await;
    let slot = desk.slot(&utc_at(2, 11, 0), 30).await;
    let booking = desk.book(&slot).await["id"].as_str().unwrap().to_owned();
    let before = desk.state().await;
    let long = "A".repeat(8_000);
    let odd = [
        "%23",
        "sl_%23",
        &format!("{slot}%23"),
        &format!("{slot}%00"),
        &slot.to_lowercase(),
        &format!("%20{slot}"),
        &slot.replacen("sl_", "sl_%20", 1),
        "..%2F..%2Fbookings",
        "%C3%80%C3%80",
        "%FF%FE",
        &long,
        &format!("{}%0A", booking),
        "bk_%2A",
    ];
    for id in odd {
        for path in [format!("/calendar/slots/{id}"), format!("/bookings/{id}")] {
            let reply = desk.delete(&path).await;
            let shown: String = path.chars().take(80).collect();
            assert_eq!(reply.status, 404, "{shown}: {}", reply.text);
            assert_refused(&reply, &shown);
        }
        for path in [
            format!("/customers/{id}/bookings"),
            format!("/customers/{id}/booking-invitations"),
        ] {
            let reply = if path.ends_with("invitations") {
                desk.post(&path, &json!({})).await
            } else {
                desk.get(&path).await
            };
            let shown: String = path.chars().take(80).collect();
            assert_eq!(reply.status, 404, "{shown}: {}", reply.text);
        }
    }
    assert_eq!(desk.state().await, before);
}

#[tokio::test]
async fn bad_list_filters_and_cursors_are_refused_never_a_server_error() {
    let desk = Desk::new("whatsapp").await;
    let other = Desk::new("whatsapp").await;
    for d in [&desk, &other] {
        for hour in [9, 10, 11] {
            let slot = d.slot(&utc_at(4, hour, 0), 30).await;
            d.book(&slot).await;
        }
    }
    let slot_cursor = |d: &Desk| {
        let d = d.agent.clone();
        async move {
            get("/calendar/slots?limit=1", Some(&d)).await.body["next_cursor"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let booking_cursor = |d: &Desk| {
        let d = d.agent.clone();
        async move {
            get("/bookings?limit=1", Some(&d)).await.body["next_cursor"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (my_slots, my_bookings) = (slot_cursor(&desk).await, booking_cursor(&desk).await);
    let (their_slots, their_bookings) = (slot_cursor(&other).await, booking_cursor(&other).await);
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let forged_slot = b64("SLOT#zzzz");
    let forged_booking = b64("x");
    let forged_booking_far = b64("9999-12-31T00:00:00.000Z#bk_01J00000000000000000000000");
    let bad = [
        "from=yesterday",
        "from=2026-02-30",
        "from=2026-12-01T25:00:00Z",
        "to=2026-12-01T09:00:00%2B24:00",
        "from=%F0%9F%98%80",
        "from=2027-01-02&to=2027-01-01",
        "from=2027-01-01T10:00:00Z&to=2027-01-01T09:59:59Z",
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=1e2",
        "limit=%00",
        "cursor=bad",
        "cursor=%00",
        "cursor=%2F%2F%2F",
    ];
    for route in [
        "/calendar/slots",
        "/bookings",
        &format!("/customers/{}/bookings", desk.customer),
    ] {
        for query in bad {
            let reply = desk.get(&format!("{route}?{query}")).await;
            assert_eq!(reply.status, 400, "{route}?{query}: {}", reply.text);
            assert_refused(&reply, query);
        }
        let long = desk
            .get(&format!("{route}?cursor={}", "A".repeat(5000)))
            .await;
        assert_eq!(long.status, 400, "{}", long.text);
        let available = desk.get(&format!("{route}?available=TRUE")).await;
        assert!(
            available.status == 400 || route != "/calendar/slots",
            "{}",
            available.text
        );
        // A repeated filter reaches the function as "a,b" (as API Gateway sends it): the
        // first is read.
        let twice = desk
            .get(&format!("{route}?from=2027-01-01&from=2027-02-01"))
            .await;
        assert_eq!(twice.status, 200, "{}", twice.text);
    }
    // Cursors of another route, of another tenant, forged: never a 5xx, never their data.
    let theirs: Vec<String> = other
        .all("/bookings?limit=100")
        .await
        .iter()
        .flat_map(|b| {
            [
                b["id"].as_str().unwrap().to_owned(),
                b["slot_id"].as_str().unwrap().to_owned(),
            ]
        })
        .collect();
    for (route, cursor) in [
        ("/calendar/slots", &my_bookings),
        ("/calendar/slots", &their_slots),
        ("/calendar/slots", &forged_slot),
        ("/bookings", &my_slots),
        ("/bookings", &their_bookings),
        ("/bookings", &forged_booking),
        ("/bookings", &forged_booking_far),
        (
            &format!("/customers/{}/bookings", desk.customer),
            &their_bookings,
        ),
        (&format!("/customers/{}/bookings", desk.customer), &my_slots),
    ] {
        let reply = desk.get(&format!("{route}?cursor={cursor}")).await;
        assert!(
            reply.status == 200 || reply.status == 400,
            "{route} with {cursor}: {} {}",
            reply.status,
            reply.text
        );
        for id in &theirs {
            assert!(
                !reply.text.contains(id.as_str()),
                "{route}: another tenant's {id}"
            );
        }
    }
}

/// Status of a request, or why no answer came (the handler died).
async fn try_status(
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> Result<u16, String> {
    let mut request = reqwest::Client::new()
        .request(method.parse().expect("a method"), absolute(path))
        .bearer_auth(bearer);
    if let Some(b) = body {
        request = request.json(&b);
    }
    match request.send().await {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => Err(format!("no answer: {e}")),
    }
}

#[tokio::test]
async fn far_future_filter_dates_are_refused_not_a_crash() {
    let desk = Desk::new("whatsapp").await;
    desk.settings("Far", "Asia/Tokyo").await;
    let before = desk.state().await;
    let invitations = format!("/customers/{}/booking-invitations", desk.customer);
    let mut failures = Vec::new();
    for (method, path, body) in [
        (
            "GET",
            "/calendar/slots?from=%2B262142-12-01".to_owned(),
            None,
        ),
        ("GET", "/bookings?from=%2B262142-12-01".to_owned(), None),
        (
            "GET",
            format!("/customers/{}/bookings?from=%2B262142-12-01", desk.customer),
            None,
        ),
        (
            "GET",
            "/calendar/slots?from=-262143-01-01&to=%2B262142-12-31".to_owned(),
            None,
        ),
        ("GET", "/bookings?to=-262143-01-02".to_owned(), None),
        (
            "POST",
            invitations.clone(),
            Some(json!({"from": "+262142-12-01"})),
        ),
        (
            "POST",
            invitations.clone(),
            Some(json!({"to": "+262142-12-31"})),
        ),
        (
            "POST",
            invitations.clone(),
            Some(json!({"from": "-262143-01-01"})),
        ),
        (
            "POST",
            "/calendar/slots".to_owned(),
            Some(
                json!({"start": utc_at(2, 9, 0), "duration_minutes": 30, "repeat": {"freq": "daily", "until": "+262142-12-31"}}),
            ),
        ),
    ] {
        match try_status(method, &path, &desk.agent, body.clone()).await {
            Ok(status) if (200..500).contains(&status) => {}
            other => failures.push(format!("{method} {path} {body:?}: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(desk.state().await.bookings, before.bookings);
}
