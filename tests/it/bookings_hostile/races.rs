//! Races: many callers released together on one slot, one booking or one invitation.
//! Exactly one wins, the losers are told why, and the calendar stays consistent (a slot is
//! held by its one confirmed booking, a deleted slot holds none).

use futures::future::join_all;
use integration_tests::{accepted_sends_to, post_json};
use serde_json::{Value, json};

use super::{Desk, choose, utc_at};

/// Statuses of many replies, for messages.
fn statuses<T>(replies: &[T], status: impl Fn(&T) -> u16) -> Vec<u16> {
    replies.iter().map(status).collect()
}

#[tokio::test]
async fn overlapping_slot_creations_at_once_land_once() {
    let desk = Desk::new("whatsapp").await;
    // Twenty agents mark the same hour, each a little shifted: every pair overlaps.
    let bodies: Vec<Value> = (0..20)
        .map(|i| json!({"start": utc_at(5, 9, i), "duration_minutes": 60}))
        .collect();
    let replies = join_all(bodies.iter().map(|b| desk.post("/calendar/slots", b))).await;
    let created: Vec<&super::Reply> = replies.iter().filter(|r| r.status == 201).collect();
    assert_eq!(created.len(), 1, "{:?}", statuses(&replies, |r| r.status));
    for r in replies.iter().filter(|r| r.status != 201) {
        assert_eq!(
            (r.status, r.code()),
            (422, "overlapping_slots"),
            "{}",
            r.text
        );
    }
    let listed = desk.all("/calendar/slots?limit=100").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], created[0].body["items"][0]["id"]);
}

#[tokio::test]
async fn repeats_that_overlap_only_on_their_last_day_at_once_land_once() {
    let desk = Desk::new("whatsapp").await;
    // Ten daily repeats at different hours, and one slot on the last day over all of them.
    let mut bodies: Vec<Value> = (0..10)
        .map(|h| {
            json!({"start": utc_at(3, 8 + h, 0), "duration_minutes": 30,
                   "repeat": {"freq": "daily", "until": utc_at(12, 23, 0)}})
        })
        .collect();
    bodies.push(json!({"start": utc_at(12, 7, 0), "end": utc_at(12, 19, 0)}));
    let replies = join_all(bodies.iter().map(|b| desk.post("/calendar/slots", b))).await;
    let listed = desk.all("/calendar/slots?limit=100").await;
    let times: Vec<(String, String)> = listed
        .iter()
        .map(|s| {
            (
                s["start"].as_str().unwrap().to_owned(),
                s["end"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (i, a) in times.iter().enumerate() {
        for b in &times[i + 1..] {
            let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap();
            let overlap = parse(&a.0) < parse(&b.1) && parse(&b.0) < parse(&a.1);
            assert!(!overlap, "{a:?} and {b:?} both landed");
        }
    }
    let landed: usize = replies
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| r.body["items"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        landed,
        listed.len(),
        "every slot answered 201 is listed, and no other"
    );
    for r in replies.iter().filter(|r| r.status != 201) {
        assert!(
            (r.status, r.code()) == (422, "overlapping_slots")
                || (r.status, r.code()) == (409, "conflict"),
            "{}",
            r.text
        );
    }
}

#[tokio::test]
async fn slot_creations_that_do_not_overlap_all_land_at_once() {
    let desk = Desk::new("whatsapp").await;
    let bodies: Vec<Value> = (0..10)
        .map(|h| json!({"start": utc_at(6, 8 + h, 0), "duration_minutes": 30}))
        .collect();
    let replies = join_all(bodies.iter().map(|b| desk.post("/calendar/slots", b))).await;
    assert!(
        replies.iter().all(|r| r.status == 201),
        "{:?}",
        replies
            .iter()
            .map(|r| format!("{} {}", r.status, r.code()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn agents_and_invited_customers_booking_one_slot_at_once_make_one_booking() {
    let desk = Desk::new("whatsapp").await;
    let slot = desk.slot(&utc_at(2, 14, 0), 30).await;
    let mut urls = Vec::new();
    for _ in 0..15 {
        urls.push(desk.invite(&json!({})).await);
    }
    let sent_before = accepted_sends_to(&desk.channel.external_id, &desk.wa_id).len();
    let body = json!({"customer_id": desk.customer, "slot_id": slot});
    let agents = join_all((0..15).map(|_| post_json("/bookings", Some(&desk.agent), &body)));
    let customers = join_all(urls.iter().map(|u| choose(u, &slot)));
    let (agents, customers) = futures::join!(agents, customers);
    let won = agents.iter().filter(|r| r.status == 201).count()
        + customers.iter().filter(|p| p.status == 200).count();
    assert_eq!(
        won,
        1,
        "agents {:?}, pages {:?}",
        statuses(&agents, |r| r.status),
        statuses(&customers, |p| p.status)
    );
    assert!(
        agents
            .iter()
            .all(|r| r.status == 201 || (r.status, r.code()) == (409, "slot_taken"))
    );
    assert!(customers.iter().all(|p| p.status == 200 || p.status == 409));
    let held = desk.bookings_of(&slot).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(desk.slot_view(&slot).await["booking_id"], held[0]["id"]);
    assert_eq!(desk.events("booking_created").await, 1);
    let sent = accepted_sends_to(&desk.channel.external_id, &desk.wa_id).len();
    assert_eq!(sent - sent_before, 1, "one confirmation");
}

#[tokio::test]
async fn two_tabs_of_one_invitation_book_once() {
    let desk = Desk::new("whatsapp").await;
    let mut slots = Vec::new();
    for hour in 8..18 {
        slots.push(desk.slot(&utc_at(3, hour, 0), 30).await);
    }
    let url = desk.invite(&json!({})).await;
    let pages = join_all(slots.iter().map(|s| choose(&url, s))).await;
    let booked = pages.iter().filter(|p| p.status == 200).count();
    assert_eq!(booked, 1, "{:?}", statuses(&pages, |p| p.status));
    for p in pages.iter().filter(|p| p.status != 200) {
        assert_eq!(
            p.status, 410,
            "a spent link shows the used page: {}",
            p.text
        );
        assert!(p.text.contains("This link has been used"), "{}", p.text);
    }
    let bookings = desk.all("/bookings?limit=100").await;
    assert_eq!(bookings.len(), 1, "{bookings:?}");
    let free = desk.all("/calendar/slots?available=true&limit=100").await;
    assert_eq!(free.len(), slots.len() - 1);
    assert_eq!(desk.events("booking_created").await, 1);
}

#[tokio::test]
async fn cancels_at_once_cancel_once_and_tell_the_customer_once() {
    let desk = Desk::new("whatsapp").await;
    let slot = desk.slot(&utc_at(2, 12, 0), 30).await;
    let booking = desk.book(&slot).await["id"].as_str().unwrap().to_owned();
    let sent_before = accepted_sends_to(&desk.channel.external_id, &desk.wa_id).len();
    let path = format!("/bookings/{booking}");
    let replies = join_all((0..20).map(|_| desk.delete(&path))).await;
    for r in &replies {
        assert_eq!(
            (r.status, r.body["status"].as_str()),
            (200, Some("cancelled")),
            "{}",
            r.text
        );
    }
    let notices = replies
        .iter()
        .filter(|r| r.body["notification"]["message_id"].is_string())
        .count();
    assert_eq!(notices, 1, "one answer carries the cancellation notice");
    assert_eq!(desk.events("booking_cancelled").await, 1);
    let sent = accepted_sends_to(&desk.channel.external_id, &desk.wa_id).len();
    assert_eq!(sent - sent_before, 1, "one cancellation message");
    assert_eq!(desk.slot_view(&slot).await["status"], "available");
}

#[tokio::test]
async fn a_cancel_racing_bookings_of_its_slot_leaves_it_with_at_most_one_holder() {
    let first = Desk::new("whatsapp").await;
    let second = Desk::on(first.channel.clone(), "whatsapp").await;
    for hour in [9, 11, 13] {
        let slot = first.slot(&utc_at(4, hour, 0), 30).await;
        let booking = first.book(&slot).await["id"].as_str().unwrap().to_owned();
        let body = json!({"customer_id": second.customer, "slot_id": slot});
        let path = format!("/bookings/{booking}");
        let cancel = first.delete(&path);
        let books = join_all((0..10).map(|_| second.post("/bookings", &body)));
        let (cancelled, books) = futures::join!(cancel, books);
        assert_eq!(cancelled.status, 200, "{}", cancelled.text);
        let won: Vec<&super::Reply> = books.iter().filter(|r| r.status == 201).collect();
        assert!(won.len() <= 1, "{:?}", statuses(&books, |r| r.status));
        let confirmed: Vec<Value> = first
            .bookings_of(&slot)
            .await
            .into_iter()
            .filter(|b| b["status"] == "confirmed")
            .collect();
        assert_eq!(confirmed.len(), won.len(), "{confirmed:?}");
        let holder = first.slot_view(&slot).await["booking_id"].clone();
        match won.first() {
            Some(w) => assert_eq!(holder, w.body["id"]),
            None => assert_eq!(holder, Value::Null),
        }
    }
}

#[tokio::test]
async fn deleting_a_slot_while_it_is_booked_never_leaves_a_booking_on_a_deleted_slot() {
    let desk = Desk::new("whatsapp").await;
    for hour in [8, 10, 12, 14, 16] {
        let slot = desk.slot(&utc_at(5, hour, 0), 30).await;
        let url = desk.invite(&json!({})).await;
        let body = json!({"customer_id": desk.customer, "slot_id": slot});
        let path = format!("/calendar/slots/{slot}");
        let (deleted, booked, chosen) = futures::join!(
            desk.delete(&path),
            desk.post("/bookings", &body),
            choose(&url, &slot)
        );
        let holders = desk.bookings_of(&slot).await;
        let view = desk.slot_view(&slot).await;
        let statuses = (deleted.status, booked.status, chosen.status);
        if deleted.status == 204 {
            assert!(holders.is_empty(), "{statuses:?}: {holders:?}");
            assert_eq!(view, Value::Null);
            assert_eq!(booked.status, 404, "{}", booked.text);
            assert_eq!(chosen.status, 409, "{}", chosen.text);
        } else {
            assert_eq!(
                (deleted.status, deleted.code()),
                (409, "slot_booked"),
                "{}",
                deleted.text
            );
            assert_eq!(holders.len(), 1, "{statuses:?}: {holders:?}");
            assert_eq!(view["booking_id"], holders[0]["id"]);
            assert_eq!(
                u8::from(booked.status == 201) + u8::from(chosen.status == 200),
                1,
                "{statuses:?}"
            );
        }
    }
}

/// Every item of a list walked `limit` at a time: the ids, in order.
async fn walk(desk: &Desk, path: &str, limit: u16) -> Vec<String> {
    desk.all(&format!("{path}limit={limit}"))
        .await
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn lists_page_through_every_item_once_whatever_the_page_size() {
    let desk = Desk::new("whatsapp").await;
    let mut slots = Vec::new();
    for hour in 6..20 {
        slots.push(desk.slot(&utc_at(3, hour, 0), 30).await);
    }
    // Book, cancel and book again the first three (two bookings with the same start each),
    // and book nine more: four slots stay free.
    for (i, slot) in slots.iter().enumerate().take(10) {
        let booking = desk.book(slot).await;
        if i < 3 {
            let id = booking["id"].as_str().unwrap();
            assert_eq!(desk.delete(&format!("/bookings/{id}")).await.status, 200);
            desk.book(slot).await;
        }
    }
    let all_bookings = walk(&desk, "/bookings?", 100).await;
    assert_eq!(all_bookings.len(), 13);
    let customer = format!("/customers/{}/bookings?", desk.customer);
    for limit in [1, 2, 3, 5] {
        assert_eq!(
            walk(&desk, "/bookings?", limit).await,
            all_bookings,
            "limit {limit}"
        );
        assert_eq!(
            walk(&desk, &customer, limit).await,
            all_bookings,
            "limit {limit}"
        );
        let free = walk(&desk, "/calendar/slots?available=true&", limit).await;
        assert_eq!(free, slots[10..], "free, limit {limit}");
        let held = walk(&desk, "/calendar/slots?available=false&", limit).await;
        assert_eq!(held, slots[..10], "held, limit {limit}");
        assert_eq!(
            walk(&desk, "/calendar/slots?", limit).await,
            slots,
            "all, limit {limit}"
        );
    }
}
