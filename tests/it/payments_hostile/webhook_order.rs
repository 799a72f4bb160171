//! Stripe's events out of order, repeated and concurrent: each payment moves once per
//! outcome and never back, with one system message per move and one thank-you.

use serde_json::{Value, json};

use super::{Buyer, Shop, accepted_to, events_of};

/// A new open payment of `amount` for `buyer`, and its session as Stripe holds it.
async fn open(shop: &Shop, buyer: &Buyer, amount: i64) -> (Value, Value) {
    let payment = shop.paid_link(buyer, amount).await;
    let session = shop.session(payment["session_id"].as_str().unwrap()).await;
    (payment, session)
}

fn completed(paid: bool) -> Value {
    json!({"status": "complete", "payment_status": if paid { "paid" } else { "unpaid" }})
}

/// Delivers events one after the other, each answered 200: the outcomes.
async fn in_turn(shop: &Shop, events: &[String]) -> Vec<String> {
    let mut outcomes = Vec::new();
    for body in events {
        let (status, text) = shop.deliver(body).await;
        assert_eq!(status, 200, "{text}");
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        outcomes.push(answer["outcome"].as_str().unwrap_or_default().to_owned());
    }
    outcomes
}

async fn count(shop: &Shop, buyer: &Buyer, event: &str) -> usize {
    events_of(shop, buyer, event).await.len()
}

#[tokio::test]
async fn events_out_of_order_move_a_payment_once_and_never_back() {
    let (shop, _) = Shop::ready("whatsapp").await;

    // Succeeded before its completed; then failed, processing and expired come late.
    let buyer = shop.buyer(1).await;
    let (payment, session) = open(&shop, &buyer, 1_000).await;
    let outcomes = in_turn(
        &shop,
        &[
            shop.event(
                "checkout.session.async_payment_succeeded",
                &session,
                completed(true),
            ),
            shop.event("checkout.session.completed", &session, completed(false)),
            shop.event(
                "checkout.session.async_payment_failed",
                &session,
                completed(false),
            ),
            shop.event(
                "checkout.session.expired",
                &session,
                json!({"status": "expired"}),
            ),
            shop.event("checkout.session.completed", &session, completed(true)),
        ],
    )
    .await;
    assert_eq!(
        outcomes,
        ["paid", "ignored", "ignored", "ignored", "ignored"]
    );
    assert_eq!(shop.payment(&buyer, &payment["id"]).await["status"], "paid");
    assert_eq!(count(&shop, &buyer, "payment_paid").await, 1);
    assert_eq!(count(&shop, &buyer, "payment_failed").await, 0);
    assert_eq!(count(&shop, &buyer, "payment_expired").await, 0);
    assert_eq!(
        accepted_to(&buyer.sender).len(),
        2,
        "the link and one thank-you"
    );

    // Processing, then expired (ignored: a delayed payment is not expired), then failed;
    // a late succeeded never undoes failed.
    let buyer = shop.buyer(1).await;
    let (payment, session) = open(&shop, &buyer, 2_000).await;
    let outcomes = in_turn(
        &shop,
        &[
            shop.event("checkout.session.completed", &session, completed(false)),
            shop.event(
                "checkout.session.expired",
                &session,
                json!({"status": "expired"}),
            ),
            shop.event(
                "checkout.session.async_payment_failed",
                &session,
                completed(false),
            ),
            shop.event(
                "checkout.session.async_payment_succeeded",
                &session,
                completed(true),
            ),
        ],
    )
    .await;
    assert_eq!(outcomes, ["processing", "ignored", "failed", "ignored"]);
    assert_eq!(
        shop.payment(&buyer, &payment["id"]).await["status"],
        "failed"
    );
    assert_eq!(count(&shop, &buyer, "payment_failed").await, 1);
    assert_eq!(count(&shop, &buyer, "payment_paid").await, 0);
    assert_eq!(accepted_to(&buyer.sender).len(), 1, "no thank-you");
}

#[tokio::test]
async fn a_repeated_event_is_answered_repeated_and_thanks_once() {
    let (shop, _) = Shop::ready("whatsapp").await;
    let buyer = shop.buyer(1).await;
    let (first, first_session) = open(&shop, &buyer, 1_000).await;
    let body = shop.event(
        "checkout.session.completed",
        &first_session,
        completed(true),
    );
    assert_eq!(
        in_turn(&shop, &[body.clone(), body.clone()]).await,
        ["paid", "repeated"]
    );
    assert_eq!(shop.payment(&buyer, &first["id"]).await["status"], "paid");
    assert_eq!(accepted_to(&buyer.sender).len(), 2, "one thank-you");
}

/// Twenty and more posts at once, of several events about three payments: each payment
/// ends where its events lead, with one system message per move and one thank-you.
#[tokio::test]
async fn concurrent_deliveries_of_different_events_settle_each_payment_once() {
    let (shop, _) = Shop::ready("whatsapp").await;
    let (paid_buyer, failed_buyer, raced_buyer) = (
        shop.buyer(1).await,
        shop.buyer(1).await,
        shop.buyer(1).await,
    );
    let (paid, paid_session) = open(&shop, &paid_buyer, 1_000).await;
    let (failed, failed_session) = open(&shop, &failed_buyer, 2_000).await;
    let (raced, raced_session) = open(&shop, &raced_buyer, 3_000).await;
    let mut bodies = Vec::new();
    let mut copies = |body: String, n: usize| bodies.extend(std::iter::repeat_n(body, n));
    copies(
        shop.event("checkout.session.completed", &paid_session, completed(true)),
        7,
    );
    copies(
        shop.event(
            "checkout.session.completed",
            &paid_session,
            completed(false),
        ),
        7,
    );
    copies(
        shop.event(
            "checkout.session.async_payment_succeeded",
            &paid_session,
            completed(true),
        ),
        7,
    );
    copies(
        shop.event(
            "checkout.session.completed",
            &failed_session,
            completed(false),
        ),
        10,
    );
    copies(
        shop.event(
            "checkout.session.async_payment_failed",
            &failed_session,
            completed(false),
        ),
        10,
    );
    copies(
        shop.event(
            "checkout.session.expired",
            &raced_session,
            json!({"status": "expired"}),
        ),
        10,
    );
    copies(
        shop.event(
            "checkout.session.async_payment_failed",
            &raced_session,
            completed(false),
        ),
        10,
    );
    let answers = futures::future::join_all(bodies.iter().map(|b| shop.deliver(b))).await;
    let refused: Vec<&(u16, String)> = answers.iter().filter(|(s, _)| *s != 200).collect();
    assert!(refused.is_empty(), "{refused:?}");

    assert_eq!(
        shop.payment(&paid_buyer, &paid["id"]).await["status"],
        "paid"
    );
    assert_eq!(count(&shop, &paid_buyer, "payment_paid").await, 1);
    assert_eq!(accepted_to(&paid_buyer.sender).len(), 2, "one thank-you");

    assert_eq!(
        shop.payment(&failed_buyer, &failed["id"]).await["status"],
        "failed"
    );
    assert_eq!(count(&shop, &failed_buyer, "payment_failed").await, 1);

    let end = shop.payment(&raced_buyer, &raced["id"]).await;
    let terminal = count(&shop, &raced_buyer, "payment_failed").await
        + count(&shop, &raced_buyer, "payment_expired").await;
    assert!(
        matches!(end["status"].as_str(), Some("failed" | "expired")),
        "{end}"
    );
    assert_eq!(terminal, 1, "one move, one system message");
}

/// A payment paid while the WhatsApp window is closed: the thank-you cannot go; the
/// conversation says so once, however often Stripe delivers the event.
#[tokio::test]
async fn a_thank_you_the_window_refuses_is_said_once_in_the_conversation() {
    let waba = integration_tests::unique_meta_id();
    let channel = integration_tests::connect_for(
        &integration_tests::unique_tenant(),
        "whatsapp",
        json!({"waba_id": waba}),
    )
    .await;
    let shop = Shop::configure(channel, "whatsapp", "USD").await;
    shop.product("Cleaning", 4_500, "USD").await;
    let template = super::post_json(
        "/templates",
        Some(&shop.admin()),
        &json!({"channel_id": shop.channel.id, "name": "pay_link", "language": "en_US",
                "category": "UTILITY", "components": [{"type": "BODY", "text": "Pay here: {{1}}"}]}),
    )
    .await;
    assert_eq!(template.body["status"], "APPROVED", "{}", template.text);
    let buyer = shop.buyer(30).await;
    let created = shop
        .request(
            &buyer.id,
            &json!({"amount": 900, "description": "Deposit",
                    "template": {"name": "pay_link", "language": "en_US", "parameters": []}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let report = shop
        .pay(
            created.body["session_id"].as_str().unwrap(),
            json!({"outcome": "paid", "deliveries": 4}),
        )
        .await;
    let statuses: Vec<u64> = report["events"][0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(statuses, [200; 4], "{report}");
    assert_eq!(
        shop.payment(&buyer, &created.body["id"]).await["status"],
        "paid"
    );
    assert_eq!(accepted_to(&buyer.sender).len(), 1, "only the template");
    assert_eq!(count(&shop, &buyer, "payment_paid").await, 1);
    assert_eq!(count(&shop, &buyer, "delivery_failed").await, 1);
}

/// One event id carried by events about two payments (only a holder of the secret can
/// sign that): each payment moves once on its own, and a repeat about either is
/// `repeated`. The applied event is recorded per payment, not per event id.
#[tokio::test]
async fn one_event_id_about_two_payments_moves_each_once() {
    let (shop, _) = Shop::ready("whatsapp").await;
    let buyer = shop.buyer(1).await;
    let (first, first_session) = open(&shop, &buyer, 1_000).await;
    let (second, second_session) = open(&shop, &buyer, 2_000).await;
    let id = format!("evt_same{}", ulid::Ulid::new());
    let about_first = super::event_body(
        &id,
        "checkout.session.completed",
        &first_session,
        completed(true),
    );
    let about_second = super::event_body(
        &id,
        "checkout.session.completed",
        &second_session,
        completed(true),
    );
    let outcomes = in_turn(
        &shop,
        &[
            about_first.clone(),
            about_second.clone(),
            about_first,
            about_second,
        ],
    )
    .await;
    assert_eq!(outcomes, ["paid", "paid", "repeated", "repeated"]);
    for payment in [&first, &second] {
        assert_eq!(shop.payment(&buyer, &payment["id"]).await["status"], "paid");
    }
    assert_eq!(count(&shop, &buyer, "payment_paid").await, 2);
}
