//! Events and their deliveries: paying (by the control API and by the checkout page),
//! expiring, late events, and who receives what, checked at a capturing server with the
//! payments' own signature check.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn paying_posts_a_signed_completed_event_and_records_the_delivery() {
    let (sandbox, url) = start().await;
    let (target, mut rx) = receiver(200).await;
    let (endpoint_id, secret) = endpoint(&url, KEY, &target, &["checkout.session.completed"]).await;
    let id = create(&url, KEY, Some("pay_p")).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let reply = control(
        &url,
        &format!("/sandbox/stripe/sessions/{id}/pay"),
        json!({}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["session"]["status"], "complete");
    assert_eq!(reply.body["session"]["payment_status"], "paid");
    assert_eq!(reply.body["session"]["url"], Value::Null);
    let events = reply.body["events"].as_array().expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "checkout.session.completed");
    assert_eq!(events[0]["deliveries"][0]["status"], 200);
    assert_eq!(events[0]["deliveries"][0]["endpoint_id"], endpoint_id);

    let got = drain(&mut rx, Duration::from_millis(300)).await;
    assert_eq!(got.len(), 1);
    let c = &got[0];
    assert_eq!(
        c.headers.get("content-type").unwrap(),
        "application/json; charset=utf-8"
    );
    let event = verified(c, &secret);
    assert_eq!(event["id"], events[0]["id"]);
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(event["object"], "event");
    assert_eq!(event["type"], "checkout.session.completed");
    assert_eq!(event["livemode"], false);
    assert_eq!(event["pending_webhooks"], 1);
    assert_eq!(
        event["request"],
        json!({"id": null, "idempotency_key": null})
    );
    assert!(event["api_version"].as_str().is_some());
    assert_eq!(event["data"]["object"]["id"], id);
    assert_eq!(event["data"]["object"]["payment_status"], "paid");
    let typed: shared::domain::stripe::Event = serde_json::from_slice(&c.body).expect("typed");
    assert_eq!(
        typed.outcome(),
        Some(shared::domain::payment::SessionOutcome::Paid)
    );
    assert_eq!(
        typed.data.object.metadata.payment_id.as_deref(),
        Some("pay_01")
    );

    let recorded = sandbox.stripe_deliveries(Some(&id), None, None);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].event_type, "checkout.session.completed");
    assert_eq!(recorded[0].url, target);
    assert_eq!(recorded[0].status, Some(200));
    let over_http =
        send(client().get(format!("{url}/sandbox/stripe/deliveries?session={id}"))).await;
    assert_eq!(over_http.body["items"][0]["event_id"], events[0]["id"]);
    assert_eq!(
        over_http.body["items"][0]["type"],
        "checkout.session.completed"
    );

    let again = control(
        &url,
        &format!("/sandbox/stripe/sessions/{id}/pay"),
        json!({}),
    )
    .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["error"]["code"], "session_not_open");
}

#[tokio::test]
async fn n_deliveries_are_n_concurrent_posts_of_one_event() {
    let (sandbox, url) = start().await;
    let (target, mut rx) = receiver(200).await;
    let (_, secret) = endpoint(&url, KEY, &target, &["*"]).await;
    let id = create(&url, KEY, None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let report = sandbox
        .stripe_pay(
            &id,
            StripePay {
                deliveries: 5,
                ..StripePay::default()
            },
        )
        .await
        .expect("paid");
    assert_eq!(report.events[0].deliveries.len(), 5);
    let got = drain(&mut rx, Duration::from_millis(300)).await;
    assert_eq!(got.len(), 5);
    let ids: std::collections::BTreeSet<_> = got
        .iter()
        .map(|c| verified(c, &secret)["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "one event id");

    let too_many = control(
        &url,
        &format!("/sandbox/stripe/sessions/{id}/events"),
        json!({"type": "checkout.session.completed", "deliveries": 21}),
    )
    .await;
    assert_eq!(too_many.status, 400);
}

#[tokio::test]
async fn delayed_outcomes_complete_unpaid_then_settle() {
    let (_, url) = start().await;
    let (target, mut rx) = receiver(200).await;
    let (_, secret) = endpoint(&url, KEY, &target, &["*"]).await;
    for (outcome, second, last_status) in [
        (
            "delayed_then_succeeded",
            "checkout.session.async_payment_succeeded",
            "paid",
        ),
        (
            "delayed_then_failed",
            "checkout.session.async_payment_failed",
            "unpaid",
        ),
    ] {
        let id = create(&url, KEY, None).await.body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let reply = control(
            &url,
            &format!("/sandbox/stripe/sessions/{id}/pay"),
            json!({"outcome": outcome}),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["session"]["payment_status"], last_status);
        let got = drain(&mut rx, Duration::from_millis(300)).await;
        let events: Vec<Value> = got.iter().map(|c| verified(c, &secret)).collect();
        assert_eq!(events.len(), 2, "{outcome}");
        assert_eq!(events[0]["type"], "checkout.session.completed");
        assert_eq!(events[0]["data"]["object"]["status"], "complete");
        assert_eq!(events[0]["data"]["object"]["payment_status"], "unpaid");
        assert_eq!(events[1]["type"], second);
        assert_eq!(events[1]["data"]["object"]["payment_status"], last_status);
    }
}

#[tokio::test]
async fn expire_sends_expired_once_and_a_second_expire_is_400() {
    let (sandbox, url) = start().await;
    let (target, mut rx) = receiver(200).await;
    let (_, secret) = endpoint(&url, KEY, &target, &["checkout.session.expired"]).await;
    let id = create(&url, KEY, None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/checkout/sessions/{id}/expire");
    let reply = api(&url, &path, Some(KEY), Some("exp_1"), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "expired");
    assert_eq!(reply.body["url"], Value::Null);
    let got = drain(&mut rx, Duration::from_millis(500)).await;
    assert_eq!(got.len(), 1);
    let event = verified(&got[0], &secret);
    assert_eq!(event["type"], "checkout.session.expired");
    assert_eq!(event["data"]["object"]["status"], "expired");
    assert_eq!(event["request"]["idempotency_key"], "exp_1");

    let again = api(&url, &path, Some(KEY), None, &[]).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.body["error"]["type"], "invalid_request_error");
    let replayed = api(&url, &path, Some(KEY), Some("exp_1"), &[]).await;
    assert_eq!(replayed.status, 200);
    assert_eq!(replayed.headers.get("idempotent-replayed").unwrap(), "true");
    let cannot_pay = sandbox.stripe_pay(&id, StripePay::default()).await;
    assert!(matches!(
        cannot_pay,
        Err(StripeControlError::NotOpen("expired"))
    ));
    assert!(drain(&mut rx, Duration::from_millis(200)).await.is_empty());
}

#[tokio::test]
async fn a_late_expired_event_can_follow_paid() {
    let (_, url) = start().await;
    let (target, mut rx) = receiver(200).await;
    let (_, secret) = endpoint(&url, KEY, &target, &["*"]).await;
    let id = create(&url, KEY, None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    control(
        &url,
        &format!("/sandbox/stripe/sessions/{id}/pay"),
        json!({}),
    )
    .await;
    let reply = control(
        &url,
        &format!("/sandbox/stripe/sessions/{id}/events"),
        json!({"type": "checkout.session.expired", "deliveries": 2}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body["events"][0]["deliveries"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let got = drain(&mut rx, Duration::from_millis(300)).await;
    let events: Vec<Value> = got.iter().map(|c| verified(c, &secret)).collect();
    assert_eq!(events.len(), 3);
    assert_eq!(events[2]["type"], "checkout.session.expired");
    assert_eq!(events[2]["data"]["object"]["payment_status"], "paid");
    let bad = control(
        &url,
        &format!("/sandbox/stripe/sessions/{id}/events"),
        json!({"type": "Expired!"}),
    )
    .await;
    assert_eq!(bad.status, 400);
    let none = control(
        &url,
        "/sandbox/stripe/sessions/cs_test_nope/events",
        json!({"type": "checkout.session.expired"}),
    )
    .await;
    assert_eq!(none.status, 404);
}

#[tokio::test]
async fn the_checkout_page_renders_and_its_form_pays_then_redirects() {
    let (_, url) = start().await;
    let (target, mut rx) = receiver(200).await;
    let (_, secret) = endpoint(&url, KEY, &target, &["*"]).await;
    let session = create(&url, KEY, None).await.body;
    let page_url = session["url"].as_str().unwrap().to_owned();
    let id = session["id"].as_str().unwrap().to_owned();

    let page = send(client().get(&page_url)).await;
    assert_eq!(page.status, 200);
    let content_type = page.headers.get("content-type").unwrap().to_str().unwrap();
    assert!(content_type.starts_with("text/html"));
    assert!(page.headers.get("content-security-policy").is_some());
    assert!(page.text.contains("26.99 USD"), "{}", page.text);
    assert!(page.text.contains("Tea &lt;leaf&gt; &times; 2"));
    assert!(page.text.contains("25.00 USD"));
    let action = format!("action=\"/stripe/checkout/{id}/pay\"");
    assert!(page.text.contains(&action), "{}", page.text);
    assert!(page.text.contains("method=\"post\""));
    assert!(
        !page.text.contains("<script")
            && !page.text.contains("http://")
            && !page.text.contains("https://")
    );

    // The form post, as a browser sends it.
    let paid = send(
        client()
            .post(format!("{url}/stripe/checkout/{id}/pay"))
            .header("content-type", "application/x-www-form-urlencoded"),
    )
    .await;
    assert_eq!(paid.status, 303);
    assert_eq!(
        paid.headers.get("location").unwrap().to_str().unwrap(),
        format!("http://127.0.0.1:9/thanks?s={id}")
    );
    let got = drain(&mut rx, Duration::from_millis(300)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        verified(&got[0], &secret)["type"],
        "checkout.session.completed"
    );

    let after = send(client().get(&page_url)).await;
    assert_eq!(after.status, 200);
    assert!(after.text.contains("Paid") && !after.text.contains("<form"));
    let twice = send(client().post(format!("{url}/stripe/checkout/{id}/pay"))).await;
    assert_eq!(twice.status, 409);
    assert!(twice.text.contains("Paid"));
    assert!(drain(&mut rx, Duration::from_millis(200)).await.is_empty());

    let missing = send(client().get(format!("{url}/stripe/checkout/cs_test_nope"))).await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn an_expired_sessions_page_says_so() {
    let (_, url) = start().await;
    let session = create(&url, KEY, None).await.body;
    let id = session["id"].as_str().unwrap();
    api(
        &url,
        &format!("/v1/checkout/sessions/{id}/expire"),
        Some(KEY),
        None,
        &[],
    )
    .await;
    let page = send(client().get(session["url"].as_str().unwrap())).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("expired") && !page.text.contains("<form"));
}

#[tokio::test]
async fn a_session_past_its_expiry_reads_as_expired_and_sends_the_event() {
    let (sandbox, url) = start().await;
    let (target, mut rx) = receiver(200).await;
    let (_, secret) = endpoint(&url, KEY, &target, &["checkout.session.expired"]).await;
    let id = create(&url, KEY, None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sandbox
        .state()
        .stripe
        .sessions
        .get_mut(&id)
        .expect("stored")
        .session
        .expires_at = chrono::Utc::now().timestamp() - 1;
    let reply = retrieve(&url, KEY, &id).await;
    assert_eq!(reply.body["status"], "expired");
    let got = drain(&mut rx, Duration::from_millis(500)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        verified(&got[0], &secret)["type"],
        "checkout.session.expired"
    );
    // Read again: no second event.
    retrieve(&url, KEY, &id).await;
    assert!(drain(&mut rx, Duration::from_millis(200)).await.is_empty());
}

#[tokio::test]
async fn events_go_only_to_the_accounts_endpoints_that_want_them() {
    let (sandbox, url) = start().await;
    let (wants_expired, mut rx_expired) = receiver(200).await;
    let (other_account, mut rx_other) = receiver(200).await;
    let (failing, _rx_failing) = receiver(500).await;
    endpoint(&url, KEY, &wants_expired, &["checkout.session.expired"]).await;
    endpoint(&url, OTHER_KEY, &other_account, &["*"]).await;
    endpoint(&url, KEY, &failing, &["checkout.session.completed"]).await;
    endpoint(&url, KEY, "http://127.0.0.1:9/closed", &["*"]).await;
    let id = create(&url, KEY, None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let report = sandbox
        .stripe_pay(&id, StripePay::default())
        .await
        .expect("paid");
    let mut statuses: Vec<Option<u16>> = report.events[0]
        .deliveries
        .iter()
        .map(|d| d.status)
        .collect();
    statuses.sort();
    assert_eq!(statuses, vec![None, Some(500)]);
    assert!(
        report.events[0]
            .deliveries
            .iter()
            .any(|d| d.error.is_some())
    );
    assert!(
        drain(&mut rx_expired, Duration::from_millis(200))
            .await
            .is_empty()
    );
    assert!(
        drain(&mut rx_other, Duration::from_millis(100))
            .await
            .is_empty()
    );

    let listed = send(
        client()
            .get(format!("{url}/stripe/v1/webhook_endpoints"))
            .bearer_auth(KEY),
    )
    .await;
    let data = listed.body["data"].as_array().expect("list");
    assert_eq!(data.len(), 3);
    assert!(data.iter().all(|e| e.get("secret").is_none()));
    let gone = send(
        client()
            .delete(format!(
                "{url}/stripe/v1/webhook_endpoints/{}",
                data[0]["id"].as_str().unwrap()
            ))
            .bearer_auth(OTHER_KEY),
    )
    .await;
    assert_eq!(gone.status, 404, "another account's endpoint");
}

#[tokio::test]
async fn a_base64_delivery_goes_as_octet_stream_with_the_same_signature() {
    let (sandbox, url) = start().await;
    let (target, mut rx) = receiver(200).await;
    let (_, secret) = endpoint(&url, KEY, &target, &["*"]).await;
    let id = create(&url, KEY, None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let report = sandbox
        .stripe_pay(
            &id,
            StripePay {
                base64: true,
                ..StripePay::default()
            },
        )
        .await
        .expect("paid");
    assert_eq!(report.events.len(), 1);
    let got = drain(&mut rx, Duration::from_millis(300)).await;
    assert_eq!(
        got[0].headers.get("content-type").unwrap(),
        "application/octet-stream"
    );
    verified(&got[0], &secret);
    assert!(sandbox.stripe_deliveries(Some(&id), None, None)[0].base64);
}
