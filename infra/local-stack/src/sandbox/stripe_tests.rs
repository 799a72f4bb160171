//! The Stripe part over real loopback HTTP, as the payments function, a browser and the
//! tests reach it; webhooks go to a capturing axum server.

use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::*;

const KEY: &str = "sk_test_sandbox_tenant_a";
const OTHER_KEY: &str = "sk_test_sandbox_tenant_b";

async fn start() -> (Sandbox, String) {
    let sandbox = Sandbox::new(SandboxConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(sandbox.clone().serve(listener));
    (sandbox, url)
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("the sandbox answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A form-encoded API request with the key as bearer.
async fn api(
    url: &str,
    path: &str,
    key: Option<&str>,
    idempotency_key: Option<&str>,
    pairs: &[(String, String)],
) -> Reply {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let mut request = client()
        .post(format!("{url}/stripe{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(k) = idempotency_key {
        request = request.header("idempotency-key", k);
    }
    send(request).await
}

async fn retrieve(url: &str, key: &str, id: &str) -> Reply {
    send(
        client()
            .get(format!("{url}/stripe/v1/checkout/sessions/{id}"))
            .bearer_auth(key),
    )
    .await
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// One `expires_at` for every form, so that two forms are the same request.
static EXPIRES_AT: std::sync::LazyLock<i64> =
    std::sync::LazyLock::new(|| chrono::Utc::now().timestamp() + 3600);

/// A session form as the payments function sends it: two lines, 26.99 USD.
fn session_form() -> Vec<(String, String)> {
    let expires = EXPIRES_AT.to_string();
    let mut form = pairs(&[
        ("mode", "payment"),
        (
            "success_url",
            "http://127.0.0.1:9/thanks?s={CHECKOUT_SESSION_ID}",
        ),
        ("client_reference_id", "pay_01"),
        ("metadata[payment_id]", "pay_01"),
        ("metadata[tenant_id]", "t_a"),
        ("line_items[0][quantity]", "2"),
        ("line_items[0][price_data][currency]", "usd"),
        ("line_items[0][price_data][unit_amount]", "1250"),
        (
            "line_items[0][price_data][product_data][name]",
            "Tea <leaf>",
        ),
        ("line_items[1][quantity]", "1"),
        ("line_items[1][price_data][currency]", "usd"),
        ("line_items[1][price_data][unit_amount]", "199"),
        ("line_items[1][price_data][product_data][name]", "Cup"),
    ]);
    form.push(("expires_at".into(), expires));
    form
}

async fn create(url: &str, key: &str, idempotency_key: Option<&str>) -> Reply {
    api(
        url,
        "/v1/checkout/sessions",
        Some(key),
        idempotency_key,
        &session_form(),
    )
    .await
}

struct Captured {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A webhook receiver answering `status`; what it got comes out of the channel.
async fn receiver(status: u16) -> (String, mpsc::UnboundedReceiver<Captured>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let answer = std::sync::Arc::new(AtomicU16::new(status));
    let app = axum::Router::new()
        .fallback(
            async |State((tx, answer)): State<(
                mpsc::UnboundedSender<Captured>,
                std::sync::Arc<AtomicU16>,
            )>,
                   headers: HeaderMap,
                   body: axum::body::Bytes| {
                let _ = tx.send(Captured {
                    headers,
                    body: body.to_vec(),
                });
                axum::http::StatusCode::from_u16(answer.load(Ordering::Relaxed))
                    .unwrap_or(axum::http::StatusCode::OK)
            },
        )
        .with_state((tx, answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/webhooks/stripe/t_a",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// A webhook endpoint of `key` for `events`: its id and secret.
async fn endpoint(url: &str, key: &str, target: &str, events: &[&str]) -> (String, String) {
    let mut form = pairs(&[("url", target)]);
    for e in events {
        form.push(("enabled_events[]".into(), (*e).to_owned()));
    }
    let reply = api(url, "/v1/webhook_endpoints", Some(key), None, &form).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["object"], "webhook_endpoint");
    assert_eq!(reply.body["status"], "enabled");
    let secret = reply.body["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    (reply.body["id"].as_str().unwrap().to_owned(), secret)
}

/// Everything received within a short while.
async fn drain(rx: &mut mpsc::UnboundedReceiver<Captured>, wait: Duration) -> Vec<Captured> {
    let mut got = Vec::new();
    let deadline = Instant::now() + wait;
    while let Ok(Some(c)) = tokio::time::timeout_at(deadline.into(), rx.recv()).await {
        got.push(c);
    }
    got
}

/// The event of a captured post, after checking its signature with the secret.
fn verified(c: &Captured, secret: &str) -> Value {
    let header = c
        .headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    shared::domain::stripe::verify(header, &c.body, secret, now).expect("the signature verifies");
    assert!(
        shared::domain::stripe::verify(header, &c.body, "whsec_other", now).is_err(),
        "another secret does not verify"
    );
    serde_json::from_slice(&c.body).expect("JSON")
}

async fn control(url: &str, path: &str, body: Value) -> Reply {
    send(client().post(format!("{url}{path}")).body(body.to_string())).await
}

#[tokio::test]
async fn a_session_has_stripes_shape_and_a_page_url_on_the_sandbox() {
    let (_, url) = start().await;
    let reply = create(&url, KEY, Some("pay_01")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.headers.get("request-id").is_some());
    assert!(reply.headers.get("idempotent-replayed").is_none());
    let s = &reply.body;
    let id = s["id"].as_str().expect("id");
    assert!(id.starts_with("cs_test_") && id.len() > 40, "{id}");
    assert_eq!(s["object"], "checkout.session");
    assert_eq!(s["url"], format!("{url}/stripe/checkout/{id}"));
    assert_eq!(s["status"], "open");
    assert_eq!(s["payment_status"], "unpaid");
    assert_eq!(s["amount_total"], 2 * 1250 + 199);
    assert_eq!(s["currency"], "usd");
    assert_eq!(s["mode"], "payment");
    assert_eq!(s["livemode"], false);
    assert_eq!(s["client_reference_id"], "pay_01");
    assert_eq!(
        s["metadata"],
        json!({"payment_id": "pay_01", "tenant_id": "t_a"})
    );
    assert!(s["created"].as_i64().is_some());
    assert!(s["expires_at"].as_i64().unwrap() > s["created"].as_i64().unwrap());
    let parsed: shared::domain::stripe::Session =
        serde_json::from_value(s.clone()).expect("the payments' type reads it");
    assert_eq!(parsed.amount_total, Some(2699));

    let got = retrieve(&url, KEY, id).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, reply.body);
}

#[tokio::test]
async fn one_key_twice_makes_one_session_and_replays_the_first_answer() {
    let (sandbox, url) = start().await;
    let first = create(&url, KEY, Some("pay_twice")).await;
    let second = create(&url, KEY, Some("pay_twice")).await;
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 200);
    assert_eq!(second.body["id"], first.body["id"]);
    assert_eq!(
        second
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let stats = sandbox.stripe_stats();
    assert_eq!(stats.sessions_per_idempotency_key["pay_twice"], 1);
    assert_eq!(stats.replays_per_idempotency_key["pay_twice"], 1);

    // Keys belong to an account: another key makes its own session.
    let other = create(&url, OTHER_KEY, Some("pay_twice")).await;
    assert_eq!(other.status, 200);
    assert_ne!(other.body["id"], first.body["id"]);

    let over_http = send(client().get(format!("{url}/sandbox/stripe/stats"))).await;
    assert_eq!(
        over_http.body["sessions_per_idempotency_key"]["pay_twice"],
        2
    );
    assert_eq!(over_http.body["requests"][KEY], 2);
}

#[tokio::test]
async fn concurrent_creates_with_one_key_make_one_session() {
    let (sandbox, url) = start().await;
    let calls = (0..8).map(|_| create(&url, KEY, Some("pay_race")));
    let replies = futures::future::join_all(calls).await;
    let ids: std::collections::BTreeSet<_> = replies
        .iter()
        .map(|r| r.body["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        sandbox.stripe_stats().sessions_per_idempotency_key["pay_race"],
        1
    );
}

#[tokio::test]
async fn one_key_with_other_parameters_is_an_idempotency_error() {
    let (sandbox, url) = start().await;
    assert_eq!(create(&url, KEY, Some("pay_x")).await.status, 200);
    let mut changed = session_form();
    changed.retain(|(k, _)| k != "line_items[0][quantity]");
    changed.push(("line_items[0][quantity]".into(), "3".into()));
    let reply = api(
        &url,
        "/v1/checkout/sessions",
        Some(KEY),
        Some("pay_x"),
        &changed,
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.body["error"]["type"], "idempotency_error");
    assert!(reply.body["error"]["message"].as_str().is_some());
    // The same key on another endpoint too.
    let other = api(
        &url,
        "/v1/webhook_endpoints",
        Some(KEY),
        Some("pay_x"),
        &pairs(&[("url", "http://127.0.0.1:9/h"), ("enabled_events[]", "*")]),
    )
    .await;
    assert_eq!(other.body["error"]["type"], "idempotency_error");
    assert_eq!(
        sandbox.stripe_stats().sessions_per_idempotency_key["pay_x"],
        1
    );
}

#[tokio::test]
async fn no_or_a_bad_api_key_is_401_with_a_stripe_error_body() {
    let (_, url) = start().await;
    let none = api(&url, "/v1/checkout/sessions", None, None, &session_form()).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.body["error"]["type"], "invalid_request_error");
    assert!(none.body["error"]["message"].as_str().is_some());
    for key in ["pk_test_abc", "sk_live_abcdefghijklmnop", "sk_"] {
        let bad = create(&url, key, None).await;
        assert_eq!(bad.status, 401, "{key}");
        assert!(
            !bad.text.contains("abcdefghijklmnop"),
            "the key is redacted"
        );
    }
    assert_eq!(create(&url, "rk_test_restricted", None).await.status, 200);
    // Basic auth with the key as the user, as `curl -u sk_test_…:` sends it.
    let basic = send(
        client()
            .post(format!("{url}/stripe/v1/checkout/sessions"))
            .basic_auth(KEY, Some(""))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(session_form())
                    .finish(),
            ),
    )
    .await;
    assert_eq!(basic.status, 200, "{}", basic.text);
}

#[tokio::test]
async fn bad_fields_are_400_with_param_and_save_nothing_under_the_key() {
    let (sandbox, url) = start().await;
    let soon = (chrono::Utc::now().timestamp() + 60).to_string();
    let mut form = session_form();
    form.retain(|(k, _)| k != "expires_at");
    form.push(("expires_at".into(), soon));
    let reply = api(
        &url,
        "/v1/checkout/sessions",
        Some(KEY),
        Some("pay_v"),
        &form,
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.body["error"]["type"], "invalid_request_error");
    assert_eq!(reply.body["error"]["param"], "expires_at");

    let mut form = session_form();
    form.retain(|(k, _)| k != "line_items[1][price_data][unit_amount]");
    let reply = api(
        &url,
        "/v1/checkout/sessions",
        Some(KEY),
        Some("pay_v"),
        &form,
    )
    .await;
    assert_eq!(
        reply.body["error"]["param"],
        "line_items[1][price_data][unit_amount]"
    );

    let json_body = send(
        client()
            .post(format!("{url}/stripe/v1/checkout/sessions"))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(r#"{"mode":"payment"}"#),
    )
    .await;
    assert_eq!(json_body.status, 400);

    // The refused requests saved nothing: the key still creates.
    assert_eq!(create(&url, KEY, Some("pay_v")).await.status, 200);
    assert_eq!(
        sandbox.stripe_stats().sessions_per_idempotency_key["pay_v"],
        1
    );
}

#[tokio::test]
async fn another_accounts_session_is_a_stripe_404() {
    let (_, url) = start().await;
    let id = create(&url, KEY, None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (key, id) in [(OTHER_KEY, id.as_str()), (KEY, "cs_test_nope")] {
        let reply = retrieve(&url, key, id).await;
        assert_eq!(reply.status, 404);
        assert_eq!(reply.body["error"]["type"], "invalid_request_error");
        assert_eq!(reply.body["error"]["code"], "resource_missing");
        assert!(!reply.text.contains("amount_total"));
    }
    let expire = api(
        &url,
        &format!("/v1/checkout/sessions/{id}/expire"),
        Some(OTHER_KEY),
        None,
        &[],
    )
    .await;
    assert_eq!(expire.status, 404);
    assert_eq!(retrieve(&url, KEY, &id).await.body["status"], "open");

    let unknown = send(
        client()
            .get(format!("{url}/stripe/v1/charges"))
            .bearer_auth(KEY),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["error"]["type"], "invalid_request_error");
}

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

#[tokio::test]
async fn webhook_endpoints_check_their_fields() {
    let (_, url) = start().await;
    let cases = [
        (pairs(&[("enabled_events[]", "*")]), "url"),
        (
            pairs(&[("url", "ftp://x"), ("enabled_events[]", "*")]),
            "url",
        ),
        (pairs(&[("url", "http://127.0.0.1:9/h")]), "enabled_events"),
        (
            pairs(&[
                ("url", "http://127.0.0.1:9/h"),
                ("enabled_events[]", "Paid"),
            ]),
            "enabled_events[0]",
        ),
        (
            pairs(&[
                ("url", "http://127.0.0.1:9/h"),
                ("enabled_events[]", "*"),
                ("secret", "x"),
            ]),
            "secret",
        ),
    ];
    for (form, param) in cases {
        let reply = api(&url, "/v1/webhook_endpoints", Some(KEY), None, &form).await;
        assert_eq!(reply.status, 400, "{form:?}");
        assert_eq!(reply.body["error"]["param"], param, "{form:?}");
    }
    for i in 0..stripe::MAX_ENDPOINTS {
        let form = pairs(&[
            ("url", &format!("http://127.0.0.1:9/{i}")),
            ("enabled_events[]", "*"),
        ]);
        let reply = api(&url, "/v1/webhook_endpoints", Some(KEY), None, &form).await;
        assert_eq!(reply.status, 200);
    }
    let form = pairs(&[("url", "http://127.0.0.1:9/x"), ("enabled_events[]", "*")]);
    let reply = api(&url, "/v1/webhook_endpoints", Some(KEY), None, &form).await;
    assert_eq!(reply.status, 400, "past the limit");
}

#[tokio::test]
async fn injected_faults_answer_stripe_errors_and_save_nothing_under_the_key() {
    let (sandbox, url) = start().await;
    let queued = control(
        &url,
        "/sandbox/fail",
        json!({"account": KEY, "next": [{"status": 429}, {"status": 500}, {"status": 400, "message": "No such price"}]}),
    )
    .await;
    assert_eq!(queued.status, 200, "{}", queued.text);
    let rate = create(&url, KEY, Some("pay_f")).await;
    assert_eq!(rate.status, 429);
    assert_eq!(rate.body["error"]["type"], "invalid_request_error");
    assert_eq!(rate.body["error"]["code"], "rate_limit");
    let server = create(&url, KEY, Some("pay_f")).await;
    assert_eq!(server.status, 500);
    assert_eq!(server.body["error"]["type"], "api_error");
    let refused = create(&url, KEY, Some("pay_f")).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body["error"]["message"], "No such price");
    let ok = create(&url, KEY, Some("pay_f")).await;
    assert_eq!(ok.status, 200);
    assert!(ok.headers.get("idempotent-replayed").is_none());
    let stats = sandbox.stripe_stats();
    assert_eq!(stats.sessions_per_idempotency_key["pay_f"], 1);
    assert_eq!(stats.requests[KEY], 4);

    // Another account is not affected; a delay still answers.
    sandbox.fail_next(OTHER_KEY, [Fault::Delay { ms: 50 }]);
    let started = Instant::now();
    assert_eq!(create(&url, OTHER_KEY, None).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(50));
}
