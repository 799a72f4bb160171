//! The Stripe secret key and the webhook secret: write-only, refused unless they look like
//! Stripe's, never in an answer, an error message or a log line.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use integration_tests::sandbox_fail;
use serde_json::json;

use super::{JSON, Shop, get, now, post_event, put_as, sign, v1_of};

/// Every JSON log line written in this process since [`capture`] installed the
/// subscriber (the functions' own format, `shared::telemetry`).
static LOGS: OnceLock<Option<Arc<Mutex<Vec<u8>>>>> = OnceLock::new();

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs a process-wide subscriber writing the functions' JSON lines to a buffer (at
/// `info`, the level template.yaml gives the functions). `None` when another test of
/// the binary installed one first (then the logs cannot be read here).
fn capture() -> Option<Arc<Mutex<Vec<u8>>>> {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(buffer.clone());
        let subscriber = shared::telemetry::json_subscriber("info", move || sink.clone());
        tracing::subscriber::set_global_default(subscriber)
            .ok()
            .map(|()| buffer)
    })
    .clone()
}

#[tokio::test]
async fn secrets_never_appear_in_answers_errors_or_logs() {
    let logs = capture();
    let (shop, _) = Shop::ready("whatsapp").await;
    let buyer = shop.buyer(1).await;
    let admin = shop.admin();
    let mut answers: Vec<String> = Vec::new();

    // Settings read back, by an admin and an agent; a PUT that changes only the currency.
    answers.push(get("/settings/payment", Some(&admin)).await.text);
    answers.push(get("/settings/payment", Some(&shop.agent())).await.text);
    let kept = put_as(
        "/settings/payment",
        &admin,
        Some(&json!({"provider": "stripe", "currency": "EUR"})),
    )
    .await;
    assert_eq!(kept.status, 200, "{}", kept.text);
    assert_eq!(
        kept.body["secret_key_last4"],
        shop.key[shop.key.len() - 4..]
    );
    answers.push(kept.text);
    // Refused PUTs that carry the secrets (in the wrong fields, or beside a bad one).
    for body in [
        json!({"provider": "stripe", "currency": "EUR", "secret_key": shop.secret}),
        json!({"provider": "stripe", "currency": "EUR", "webhook_secret": shop.key}),
        json!({"provider": "stripe", "currency": shop.key, "secret_key": shop.key}),
        json!({"provider": shop.key, "currency": "EUR"}),
        json!({"provider": "stripe", "currency": "EUR", "secret_key": [shop.key], "webhook_secret": shop.secret}),
    ] {
        let reply = put_as("/settings/payment", &admin, Some(&body)).await;
        assert_eq!(reply.status, 422, "{}", reply.text);
        answers.push(reply.text);
    }
    // Payments, Stripe refusing the key and the request, and the webhook, good and bad.
    let created = shop
        .request(
            &buyer.id,
            &json!({"amount": 1_500, "description": "Deposit"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    answers.push(created.text.clone());
    for (fault, times) in [
        (json!({"status": 401}), 1),
        (json!({"status": 400}), 1),
        (json!({"status": 500}), 3),
    ] {
        sandbox_fail(&shop.key, vec![fault; times]);
        let reply = shop
            .request(&buyer.id, &json!({"amount": 1_600, "description": "Again"}))
            .await;
        assert!(reply.status >= 400, "{}", reply.text);
        answers.push(reply.text);
    }
    answers.push(
        get(&format!("/customers/{}/payments", buyer.id), Some(&admin))
            .await
            .text,
    );
    let session = shop
        .session(created.body["session_id"].as_str().unwrap())
        .await;
    let event = shop.event(
        "checkout.session.completed",
        &session,
        json!({"status": "complete", "payment_status": "paid"}),
    );
    let good = sign(&shop.secret, now(), event.as_bytes());
    let (_, bad) = post_event(
        shop.tenant(),
        event.as_bytes(),
        Some(format!("t={},v1={}", now() - 400, v1_of(&good))),
        JSON,
    )
    .await;
    answers.push(bad);
    let (status, paid) =
        post_event(shop.tenant(), event.as_bytes(), Some(good.clone()), JSON).await;
    assert_eq!(status, 200, "{paid}");
    answers.push(paid);
    answers.push(
        integration_tests::all_messages(shop.tenant(), &buyer.conversation)
            .await
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    );

    let signature = v1_of(&good);
    let secrets = [
        shop.key.as_str(),
        shop.secret.as_str(),
        &shop.key[..shop.key.len() - 4],
        signature.as_str(),
    ];
    for answer in &answers {
        for secret in &secrets {
            assert!(!answer.contains(secret), "{secret} in an answer: {answer}");
        }
    }
    let Some(logs) = logs else {
        eprintln!("another subscriber was installed first: the log part is not checked");
        return;
    };
    let text = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(
        text.contains("payment link sent"),
        "the functions' lines are captured"
    );
    for line in text.lines().filter(|l| l.contains(shop.tenant())) {
        for secret in &secrets {
            assert!(!line.contains(secret), "{secret} in a log line: {line}");
        }
    }
    for line in text.lines() {
        assert!(!line.contains(&shop.key), "the key in a log line: {line}");
        assert!(
            !line.contains(&shop.secret),
            "the webhook secret in a log line: {line}"
        );
    }
}

#[tokio::test]
async fn secrets_that_are_not_stripes_are_refused_and_change_nothing() {
    let (shop, _) = Shop::ready("whatsapp").await;
    let admin = shop.admin();
    let before = get("/settings/payment", Some(&admin)).await;
    let long = format!("sk_test_{}", "a".repeat(248));
    let bad_keys = [
        "",
        "sk_",
        "sk_12345",
        "pk_test_abcdefgh1234",
        "SK_TEST_ABCDEFGH1234",
        "whsec_abcdefgh12345",
        "sk_test_abc def1234",
        "sk_test_abcdéfgh1234",
        "sk_test_abcdefgh\n1234",
        "sk_test_abcdefgh\u{0}1234",
        " sk_test_abcdefgh1234",
        long.as_str(),
    ];
    for key in bad_keys {
        let body = json!({"provider": "stripe", "currency": "USD", "secret_key": key});
        let reply = put_as("/settings/payment", &admin, Some(&body)).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "invalid_secret"),
            "{key:?}: {}",
            reply.text
        );
        assert!(key.len() < 9 || !reply.text.contains(key), "{}", reply.text);
    }
    for secret in [
        "",
        "whsec_",
        "whsec_1",
        "sk_test_abcdefgh1234",
        "whsec_abc def123",
    ] {
        let body = json!({"provider": "stripe", "currency": "USD", "secret_key": "sk_test_newnewnew9999", "webhook_secret": secret});
        let reply = put_as("/settings/payment", &admin, Some(&body)).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "invalid_secret"),
            "{secret:?}: {}",
            reply.text
        );
    }
    let after = get("/settings/payment", Some(&admin)).await;
    assert_eq!(after.body, before.body, "a refused PUT changes nothing");
    // The webhook still verifies with the secret stored before.
    let buyer = shop.buyer(1).await;
    let payment = shop.paid_link(&buyer, 900).await;
    let session = shop.session(payment["session_id"].as_str().unwrap()).await;
    let (status, text) = shop
        .deliver(&shop.event(
            "checkout.session.completed",
            &session,
            json!({"status": "complete", "payment_status": "paid"}),
        ))
        .await;
    assert_eq!(status, 200, "{text}");
    let longest = format!("sk_test_{}", "a".repeat(247));
    let body = json!({"provider": "stripe", "currency": "USD", "secret_key": longest, "webhook_secret": "whsec_rotated12345"});
    let stored = put_as("/settings/payment", &admin, Some(&body)).await;
    assert_eq!(stored.status, 200, "{}", stored.text);
    assert_eq!(stored.body["secret_key_last4"], "aaaa");
}
