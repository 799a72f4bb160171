//! The Stripe part over real loopback HTTP, as the payments function, a browser and the
//! tests reach it; webhooks go to a capturing axum server.

use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::*;

mod webhooks;

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
