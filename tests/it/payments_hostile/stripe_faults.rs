//! Stripe and the channel failing: bursts of 429/5xx, timeouts, 4xx refusals. Never a
//! payment stored `open` whose link was never sent, never two sessions for one request,
//! no 5xx for the client's mistakes, and no secret in any answer.

use integration_tests::sandbox_fail;
use serde_json::json;

use super::{Shop, accepted_to, sends_to};

#[tokio::test]
async fn stripe_failing_stores_nothing_and_never_makes_two_sessions() {
    let (shop, _) = Shop::ready("whatsapp").await;
    let buyer = shop.buyer(1).await;
    let body = json!({"amount": 1_500, "description": "Deposit"});
    let stats = || integration_tests::sandbox().stripe_stats();
    let without_key = stats().sessions_without_key;

    // Refusals and a burst longer than the retries: each an error with a code, nothing
    // stored, nothing sent, no key in the answer.
    let before = shop.snapshot(&buyer).await;
    for (faults, status, code) in [
        (vec![json!({"status": 500}); 3], 502, "upstream_error"),
        (vec![json!({"status": 429}); 3], 502, "upstream_error"),
        (
            vec![
                json!({"status": 503}),
                json!({"status": 429}),
                json!({"status": 502}),
            ],
            502,
            "upstream_error",
        ),
        (vec![json!({"status": 400})], 422, "payment_rejected"),
        (vec![json!({"status": 402})], 422, "payment_rejected"),
        (vec![json!({"status": 404})], 422, "payment_rejected"),
        (
            vec![json!({"status": 401})],
            422,
            "payment_credentials_rejected",
        ),
        (
            vec![json!({"status": 403})],
            422,
            "payment_credentials_rejected",
        ),
    ] {
        sandbox_fail(&shop.key, faults.clone());
        let reply = shop.request(&buyer.id, &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{faults:?}: {}",
            reply.text
        );
        assert!(!reply.text.contains(&shop.key), "{}", reply.text);
        assert!(!reply.text.contains("sk_test_"), "{}", reply.text);
    }
    let after = shop.snapshot(&buyer).await;
    assert_eq!(
        (after.payments.clone(), after.messages.clone(), after.sends),
        (
            before.payments.clone(),
            before.messages.clone(),
            before.sends
        ),
        "nothing stored or sent"
    );

    // Transient failures then an answer; an answer too late then one in time: one
    // session each, under the payment's key.
    for faults in [
        vec![json!({"status": 500}), json!({"status": 429})],
        vec![json!({"delay_ms": 2_500})],
    ] {
        sandbox_fail(&shop.key, faults.clone());
        let reply = shop.request(&buyer.id, &body).await;
        assert_eq!(reply.status, 201, "{faults:?}: {}", reply.text);
        let per_key = stats().sessions_per_idempotency_key;
        assert_eq!(
            per_key.get(reply.body["id"].as_str().unwrap()),
            Some(&1),
            "{faults:?}"
        );
    }
    assert_eq!(
        stats().sessions_without_key,
        without_key,
        "every create has a key"
    );
    assert_eq!(accepted_to(&buyer.sender).len(), 2);
}

#[tokio::test]
async fn a_link_the_channel_refuses_is_voided_and_its_session_expired() {
    let (shop, _) = Shop::ready("whatsapp").await;
    let buyer = shop.buyer(1).await;
    sandbox_fail(
        &shop.channel.external_id,
        vec![json!({"status": 400, "code": 131026})],
    );
    let reply = shop
        .request(
            &buyer.id,
            &json!({"amount": 1_500, "description": "Deposit"}),
        )
        .await;
    assert!(
        (400..600).contains(&reply.status) && reply.status != 500,
        "{}",
        reply.text
    );
    let history = shop.history(&buyer.id).await;
    assert!(
        history.iter().all(|p| p["status"] != "open"),
        "no open payment without a link: {history:?}"
    );
    for payment in &history {
        let session = shop.session(payment["session_id"].as_str().unwrap()).await;
        assert_eq!(session["status"], "expired", "{session}");
        assert!(payment["not_sent_reason"].is_string(), "{payment}");
    }
    assert!(accepted_to(&buyer.sender).is_empty());
}

/// The channel fails with 5xx longer than the send retries: the link did not go. The
/// payment is voided (its session expired), or it is not stored; never `open` without a
/// link, and the agent gets an error, not a 201.
#[tokio::test]
async fn a_channel_failing_with_5xx_leaves_no_open_payment_without_a_link() {
    let (shop, _) = Shop::ready("whatsapp").await;
    let buyer = shop.buyer(1).await;
    sandbox_fail(&shop.channel.external_id, vec![json!({"status": 500}); 8]);
    let reply = shop
        .request(
            &buyer.id,
            &json!({"amount": 1_500, "description": "Deposit"}),
        )
        .await;
    let history = shop.history(&buyer.id).await;
    let delivered = !accepted_to(&buyer.sender).is_empty();
    assert!(
        delivered || history.iter().all(|p| p["status"] != "open"),
        "{} {}; history {history:?}; sends {:?}",
        reply.status,
        reply.text,
        sends_to(&buyer.sender)
    );
    if !delivered {
        assert!(reply.status >= 400, "{}", reply.text);
    }
}

/// The channel answers too late (the outcome is unknown): the link may have gone, so the
/// payment stays open with its message; the request does not fail as if nothing was sent.
#[tokio::test]
async fn a_channel_timing_out_keeps_the_payment_with_its_message() {
    let (shop, _) = Shop::ready("whatsapp").await;
    let buyer = shop.buyer(1).await;
    sandbox_fail(&shop.channel.external_id, vec![json!({"delay_ms": 2_500})]);
    let reply = shop
        .request(
            &buyer.id,
            &json!({"amount": 1_500, "description": "Deposit"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let history = shop.history(&buyer.id).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["status"], "open");
    assert!(history[0]["message_id"].is_string(), "{}", history[0]);
}
