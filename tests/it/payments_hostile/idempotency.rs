//! `Idempotency-Key` misused: another body, another customer, ten at once, a retry after
//! Stripe or the channel failed, keys that are not visible ASCII. One request, one
//! session, one message, one payment.

use integration_tests::sandbox_fail;
use serde_json::{Value, json};

use super::{Shop, accepted_to, events_of};

fn sessions_for(payment_id: &Value) -> u64 {
    integration_tests::sandbox()
        .stripe_stats()
        .sessions_per_idempotency_key
        .get(payment_id.as_str().unwrap_or_default())
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused_not_answered_with_the_first_payment() {
    let (shop, _) = Shop::ready("whatsapp").await;
    let buyer = shop.buyer(1).await;
    let first = shop
        .request_keyed(
            &buyer.id,
            &json!({"amount": 1_000, "description": "Deposit"}),
            b"pay-ana-1",
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let before = shop.snapshot(&buyer).await;
    let other = shop
        .request_keyed(
            &buyer.id,
            &json!({"amount": 5_000, "description": "Full treatment"}),
            b"pay-ana-1",
        )
        .await;
    assert!(
        matches!(other.status, 409 | 422),
        "an agent asking for 50.00 is told 201 with a link for {}: {}",
        other.body["amount"],
        other.text
    );
    assert_eq!(shop.snapshot(&buyer).await, before);
}

#[tokio::test]
async fn the_same_key_for_another_customer_or_tenant_is_another_payment() {
    let (shop, _) = Shop::ready("whatsapp").await;
    let (ana, bea) = (shop.buyer(1).await, shop.buyer(1).await);
    let body = json!({"amount": 1_000, "description": "Deposit"});
    let for_ana = shop.request_keyed(&ana.id, &body, b"deposit").await;
    let for_bea = shop.request_keyed(&bea.id, &body, b"deposit").await;
    assert_eq!((for_ana.status, for_bea.status), (201, 201));
    assert_ne!(for_ana.body["id"], for_bea.body["id"]);
    assert_ne!(for_ana.body["session_id"], for_bea.body["session_id"]);
    assert_eq!(accepted_to(&ana.sender).len(), 1);
    assert_eq!(accepted_to(&bea.sender).len(), 1);
    let (other, _) = Shop::ready("whatsapp").await;
    let cho = other.buyer(1).await;
    let for_cho = other.request_keyed(&cho.id, &body, b"deposit").await;
    assert_eq!(for_cho.status, 201, "{}", for_cho.text);
    assert_ne!(for_cho.body["id"], for_ana.body["id"]);
}

#[tokio::test]
async fn ten_requests_with_one_key_at_once_make_one_session_one_message_one_payment() {
    let (shop, _) = Shop::ready("whatsapp").await;
    let buyer = shop.buyer(1).await;
    let body = json!({"amount": 1_234, "description": "Deposit"});
    let replies = futures::future::join_all(
        (0..10).map(|_| shop.request_keyed(&buyer.id, &body, b"burst-1")),
    )
    .await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert!(
        statuses.iter().all(|s| matches!(s, 201 | 409)) && statuses.contains(&201),
        "{statuses:?}: {:?}",
        replies.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    let ids: Vec<&Value> = replies
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| &r.body["id"])
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(shop.history(&buyer.id).await.len(), 1);
    assert_eq!(accepted_to(&buyer.sender).len(), 1, "one link message");
    assert_eq!(events_of(&shop, &buyer, "payment_requested").await.len(), 1);
    assert_eq!(sessions_for(ids[0]), 1, "one Checkout Session");
}

/// Stripe answers too late three times (each attempt times out; the first still makes the
/// session, as Stripe does): the request fails. The agent retries with its key a moment
/// later and must get the payment, not a conflict: the retried request's `expires_at` (now
/// + the link's life) differs from the first's, and Stripe refuses a key reused with other
/// parameters (`idempotency_error`) for 24 hours.
#[tokio::test]
async fn a_key_retried_after_stripe_timed_out_makes_its_payment() {
    let (shop, _) = Shop::ready("whatsapp").await;
    let buyer = shop.buyer(1).await;
    let body = json!({"amount": 1_500, "description": "Deposit"});
    sandbox_fail(&shop.key, vec![json!({"delay_ms": 2_500}); 3]);
    let first = shop.request_keyed(&buyer.id, &body, b"slow-1").await;
    assert_eq!(first.status, 502, "{}", first.text);
    assert!(shop.history(&buyer.id).await.is_empty());
    // The late first attempt has made its session by now.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let retried = shop.request_keyed(&buyer.id, &body, b"slow-1").await;
    assert_eq!(retried.status, 201, "{}", retried.text);
    assert_eq!(sessions_for(&retried.body["id"]), 1);
    assert_eq!(accepted_to(&buyer.sender).len(), 1);
}

#[tokio::test]
async fn a_key_retried_after_stripe_refused_or_failed_makes_one_payment() {
    let (shop, _) = Shop::ready("whatsapp").await;
    let buyer = shop.buyer(1).await;
    let body = json!({"amount": 1_500, "description": "Deposit"});
    sandbox_fail(&shop.key, vec![json!({"status": 400})]);
    let refused = shop.request_keyed(&buyer.id, &body, b"again-1").await;
    assert_eq!(
        (refused.status, refused.code()),
        (422, "payment_rejected"),
        "{}",
        refused.text
    );
    sandbox_fail(&shop.key, vec![json!({"status": 500}); 3]);
    let failed = shop.request_keyed(&buyer.id, &body, b"again-1").await;
    assert_eq!(
        (failed.status, failed.code()),
        (502, "upstream_error"),
        "{}",
        failed.text
    );
    assert!(shop.history(&buyer.id).await.is_empty());
    let retried = shop.request_keyed(&buyer.id, &body, b"again-1").await;
    assert_eq!(retried.status, 201, "{}", retried.text);
    assert_eq!(sessions_for(&retried.body["id"]), 1);
    let again = shop.request_keyed(&buyer.id, &body, b"again-1").await;
    assert_eq!(
        (again.status, &again.body["id"]),
        (201, &retried.body["id"])
    );
    assert_eq!(accepted_to(&buyer.sender).len(), 1);
}

/// The channel refused the link (131026, not on WhatsApp): the request failed and the
/// payment was voided. The same request retried with its key answers as the first did, or
/// tries again; it never reports success with a link that was never sent.
#[tokio::test]
async fn a_key_retried_after_the_link_was_refused_never_answers_success() {
    let (shop, _) = Shop::ready("whatsapp").await;
    let buyer = shop.buyer(1).await;
    let body = json!({"amount": 1_500, "description": "Deposit"});
    sandbox_fail(
        &shop.channel.external_id,
        vec![json!({"status": 400, "code": 131026})],
    );
    let first = shop.request_keyed(&buyer.id, &body, b"refused-1").await;
    assert!(first.status >= 400, "{}", first.text);
    let retried = shop.request_keyed(&buyer.id, &body, b"refused-1").await;
    let ok = retried.status == first.status
        || (retried.status == 409 && retried.code() == "payment_link_not_sent")
        || (retried.status == 201
            && retried.body["status"] == "open"
            && accepted_to(&buyer.sender).len() == 1);
    assert!(
        ok,
        "first {} {}, retried {} {}",
        first.status, first.text, retried.status, retried.text
    );
}

/// A key with characters outside visible ASCII is a client's mistake to be told about
/// (400 `invalid_idempotency_key`, as for an empty or too long key), not silently dropped
/// so that each retry makes another payment.
#[tokio::test]
async fn keys_that_are_not_visible_ascii_are_refused_not_ignored() {
    let (shop, _) = Shop::ready("whatsapp").await;
    let buyer = shop.buyer(1).await;
    let body = json!({"amount": 1_500, "description": "Deposit"});
    for key in [&b""[..], "x".repeat(256).as_bytes(), &b"a b"[..]] {
        let reply = shop.request_keyed(&buyer.id, &body, key).await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "invalid_idempotency_key"),
            "{}",
            reply.text
        );
    }
    let max = "k".repeat(255);
    assert_eq!(
        shop.request_keyed(&buyer.id, &body, max.as_bytes())
            .await
            .status,
        201
    );
    let before = shop.history(&buyer.id).await.len();
    let first = shop
        .request_keyed(&buyer.id, &body, "clé-1".as_bytes())
        .await;
    let second = shop
        .request_keyed(&buyer.id, &body, "clé-1".as_bytes())
        .await;
    let made = shop.history(&buyer.id).await.len() - before;
    assert!(
        first.status == 400 || made == 1,
        "{} then {}: {made} payments for one key",
        first.status,
        second.status
    );
}
