//! The booking page in a real browser (headless Debian chromium through chromedriver): on a
//! 375×667 phone and a 1280×800 laptop, the invited customer sees the business and its free
//! slots by day, picks one by tapping it and books with the plain form post (no script on
//! the page); the page has no horizontal scrolling, labelled controls, tap targets of at
//! least 44 px and no policy violation. Screenshots go to `target/screenshots/`.

use std::time::Duration;

use chrono::Utc;
use integration_tests::browser::{Browser, Options, Viewport};
use integration_tests::{
    TestChannel, connect, customer_wrote, get, post_json, put_as, system_events, token,
};
use serde_json::{Value, json};

/// Slots on the next two days (09:00, 09:30, 14:00 UTC).
async fn make_slots(channel: &TestChannel) {
    let agent = token(&channel.tenant, "agent");
    for days in [1, 2] {
        let day = (Utc::now() + chrono::Duration::days(days)).date_naive();
        for time in ["09:00", "09:30", "14:00"] {
            let body = json!({"start": format!("{day}T{time}:00Z"), "duration_minutes": 30});
            let reply = post_json("/calendar/slots", Some(&agent), &body).await;
            assert_eq!(reply.status, 201, "{}", reply.text);
        }
    }
}

/// An invitation for the customer of `conversation`: its URL.
async fn invited(channel: &TestChannel, conversation: &str) -> String {
    let agent = token(&channel.tenant, "agent");
    let customer = shared::domain::conversation::customer_of_conversation(conversation).unwrap();
    let reply = post_json(
        &format!("/customers/{customer}/booking-invitations"),
        Some(&agent),
        &json!({}),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["url"].as_str().unwrap().to_owned()
}

/// The checks every state of the page passes.
async fn assert_usable(browser: &Browser, what: &str) {
    assert!(
        !browser.horizontal_overflow().await,
        "{what}: scrolls sideways"
    );
    let unlabelled = browser.unlabelled_controls().await;
    assert!(unlabelled.is_empty(), "{what}: unlabelled {unlabelled:?}");
    let small = browser.small_tap_targets(44).await;
    assert!(
        small.is_empty(),
        "{what}: tap targets under 44 px {small:?}"
    );
    let violations = browser.csp_violations().await;
    assert!(
        violations.is_empty(),
        "{what}: CSP violations {violations:?}"
    );
}

/// Books the first free slot by tapping it and submitting: the chosen slot's label.
async fn book_first(browser: &Browser) -> String {
    let label = browser.text(".slot span").await;
    browser.click(".slot").await;
    let checked = browser
        .eval("return document.querySelector('input[name=slot_id]:checked') !== null")
        .await;
    assert_eq!(
        checked,
        Value::Bool(true),
        "tapping the label picks the slot"
    );
    browser.submit("form").await;
    browser
        .wait_for(
            "return document.querySelector('h1')?.textContent.includes('booked') || null",
            Duration::from_secs(10),
        )
        .await;
    label
}

#[tokio::test]
async fn a_customer_books_from_a_phone_and_from_a_laptop() {
    let channel = connect("whatsapp").await;
    let reply = put_as(
        "/settings",
        &channel.admin(),
        Some(&json!({"business_name": "Acme Dental", "time_zone": "Europe/London"})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;

    make_slots(&channel).await;

    // A phone.
    let url = invited(&channel, &conversation).await;
    let browser = Browser::start(Options::phone()).await;
    browser.goto(&url).await;
    assert_eq!(browser.viewport().await, (375, 667));
    assert_eq!(browser.text(".business").await, "Acme Dental");
    assert_eq!(browser.text("h1").await, "Choose a time");
    let days = browser
        .eval("return [...document.querySelectorAll('legend')].map(l => l.textContent)")
        .await;
    assert_eq!(days.as_array().map(Vec::len), Some(2), "{days}");
    let slots = browser
        .eval("return document.querySelectorAll('input[type=radio]').length")
        .await;
    assert_eq!(slots, json!(6));
    assert_usable(&browser, "phone, choosing").await;
    let shot = browser.screenshot("booking-page-375").await;
    assert!(shot.exists());
    let chosen = book_first(&browser).await;
    assert_eq!(browser.text("h1").await, "You're booked");
    assert!(
        browser
            .text(".summary")
            .await
            .contains(&chosen.replace(" – ", "–"))
    );
    assert_usable(&browser, "phone, booked").await;
    browser.screenshot("booking-confirmed-375").await;
    // Reloading the link now shows the booking, not the slots.
    browser.goto(&url).await;
    assert_eq!(browser.text("h1").await, "This link has been used");
    browser.screenshot("booking-used-375").await;
    drop(browser);

    // A laptop, another invitation: the slot booked from the phone is gone.
    let url = invited(&channel, &conversation).await;
    let browser = Browser::start(Options::default()).await;
    browser.set_viewport(Viewport::DESKTOP).await;
    browser.goto(&url).await;
    assert_eq!(browser.viewport().await, (1280, 800));
    let slots = browser
        .eval("return document.querySelectorAll('input[type=radio]').length")
        .await;
    assert_eq!(slots, json!(5), "6 slots, 1 booked");
    assert_usable(&browser, "laptop, choosing").await;
    browser.screenshot("booking-page-1280").await;
    book_first(&browser).await;
    assert_usable(&browser, "laptop, booked").await;
    browser.screenshot("booking-confirmed-1280").await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors {errors:?}");

    let agent = token(&channel.tenant, "agent");
    let customer = shared::domain::conversation::customer_of_conversation(&conversation).unwrap();
    let bookings = get(&format!("/customers/{customer}/bookings"), Some(&agent)).await;
    assert_eq!(bookings.body["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        system_events(&channel.tenant, &conversation, "booking_created")
            .await
            .len(),
        2
    );
}
