//! Payments end to end (SPEC §11): settings and products make payment links available, a
//! link is a Checkout Session at the provider sandbox's Stripe, sent through the send path;
//! the sandbox "pays" it and posts Stripe's signed events to the dev server, which moves
//! the payment once however often and in whatever order they come.

use integration_tests::{
    TestChannel, accepted_sends_to, connect, connect_for, customer_wrote, delete_as, get,
    post_json, put_as, sandbox_fail, sandbox_url, stack, system_events, token, unique_meta_id,
    unique_tenant,
};
use serde_json::{Value, json};

/// A Stripe secret key of the tenant's own (the sandbox keeps sessions per key).
fn secret_key(channel: &TestChannel) -> String {
    format!("sk_test_{}", channel.tenant.replace('-', ""))
}

async fn sandbox_post(
    path: &str,
    key: Option<&str>,
    form: &[(&str, &str)],
    json_body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client.post(format!("{}{path}", sandbox_url()));
    if let Some(k) = key {
        request = request.bearer_auth(k);
    }
    request = match json_body {
        Some(body) => request.json(&body),
        None => request.form(form),
    };
    let response = request.send().await.expect("the sandbox answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Registers the dev server's webhook for the tenant at the sandbox's Stripe, and stores
/// the payment settings (with the endpoint's secret) and one product: the product and the
/// endpoint's signing secret.
pub(crate) async fn configure(
    channel: &TestChannel,
    currency: &str,
    price: i64,
) -> (Value, String) {
    let key = secret_key(channel);
    let url = format!("{}/webhooks/stripe/{}", stack().base_url, channel.tenant);
    let (status, endpoint) = sandbox_post(
        "/stripe/v1/webhook_endpoints",
        Some(&key),
        &[("url", &url), ("enabled_events[]", "*")],
        None,
    )
    .await;
    assert_eq!(status, 200, "{endpoint}");
    let secret = endpoint["secret"].as_str().unwrap();
    let reply = put_as(
        "/settings/payment",
        &channel.admin(),
        Some(&json!({"provider": "stripe", "currency": currency, "secret_key": key, "webhook_secret": secret})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let product = post_json(
        "/products",
        Some(&channel.admin()),
        &json!({"name": "Teeth cleaning", "price": price, "currency": currency}),
    )
    .await;
    assert_eq!(product.status, 201, "{}", product.text);
    (product.body, secret.to_owned())
}

fn customer_of(conversation: &str) -> String {
    shared::domain::conversation::customer_of_conversation(conversation).unwrap()
}

pub(crate) async fn request_payment(
    channel: &TestChannel,
    conversation: &str,
    body: &Value,
) -> integration_tests::Reply {
    post_json(
        &format!("/customers/{}/payments", customer_of(conversation)),
        Some(&token(&channel.tenant, "agent")),
        body,
    )
    .await
}

pub(crate) async fn history(channel: &TestChannel, conversation: &str) -> Vec<Value> {
    let reply = get(
        &format!("/customers/{}/payments", customer_of(conversation)),
        Some(&token(&channel.tenant, "agent")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["items"].as_array().unwrap().clone()
}

/// Pays a session at the sandbox (`outcome`, each event posted `deliveries` times at once):
/// the report.
async fn pay(session: &str, body: Value) -> Value {
    let (status, report) = sandbox_post(
        &format!("/sandbox/stripe/sessions/{session}/pay"),
        None,
        &[],
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    report
}

#[tokio::test]
async fn settings_and_products_make_payment_links_available() {
    let channel = connect("whatsapp").await;
    let agent = token(&channel.tenant, "agent");
    let view = get("/settings/payment", Some(&agent)).await;
    assert_eq!(view.status, 200, "{}", view.text);
    assert_eq!(view.body["ready"], false);
    assert_eq!(
        view.body["missing"],
        json!(["currency", "secret_key", "webhook_secret", "products"])
    );
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let refused = request_payment(
        &channel,
        &conversation,
        &json!({"amount": 500, "description": "Deposit"}),
    )
    .await;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "payment_not_configured")
    );

    // Agents read, admins write.
    let body = json!({"provider": "stripe", "currency": "usd", "secret_key": "sk_test_abcdefgh1234", "webhook_secret": "whsec_abcdefgh"});
    assert_eq!(
        put_as("/settings/payment", &agent, Some(&body))
            .await
            .status,
        403
    );
    for (bad, code) in [
        (
            json!({"provider": "paypal", "currency": "usd"}),
            "unsupported_provider",
        ),
        (
            json!({"provider": "stripe", "currency": "XAU"}),
            "invalid_currency",
        ),
        (
            json!({"provider": "stripe", "currency": "usd", "secret_key": "pk_test_123456789"}),
            "invalid_secret",
        ),
        (
            json!({"provider": "stripe", "currency": "usd", "colour": 1}),
            "invalid_body",
        ),
    ] {
        let reply = put_as("/settings/payment", &channel.admin(), Some(&bad)).await;
        assert_eq!((reply.status, reply.code()), (422, code), "{bad}");
    }
    let stored = put_as("/settings/payment", &channel.admin(), Some(&body)).await;
    assert_eq!(stored.status, 200, "{}", stored.text);
    assert_eq!(stored.body["missing"], json!(["products"]));
    assert_eq!(stored.body["secret_key_last4"], "1234");
    assert_eq!(stored.body["currency"], "USD");
    assert!(!stored.text.contains("sk_test_") && !stored.text.contains("whsec_"));

    // A product makes it ready; the secrets stay when a PUT leaves them out.
    assert_eq!(
        post_json(
            "/products",
            Some(&agent),
            &json!({"name": "x", "price": 1, "currency": "USD"})
        )
        .await
        .status,
        403
    );
    for (bad, code) in [
        (
            json!({"name": "", "price": 100, "currency": "USD"}),
            "invalid_name",
        ),
        (
            json!({"name": "Gold", "price": 0, "currency": "USD"}),
            "invalid_amount",
        ),
        (
            json!({"name": "Gold", "price": 100_000_000, "currency": "USD"}),
            "invalid_amount",
        ),
        (
            json!({"name": "Gold", "price": 1.5, "currency": "USD"}),
            "invalid_body",
        ),
    ] {
        let reply = post_json("/products", Some(&channel.admin()), &bad).await;
        assert_eq!((reply.status, reply.code()), (422, code), "{bad}");
    }
    let product = post_json(
        "/products",
        Some(&channel.admin()),
        &json!({"name": "Whitening", "price": 12_000, "currency": "jpy"}),
    )
    .await;
    assert_eq!(product.status, 201, "{}", product.text);
    assert_eq!(
        (
            product.body["price"].clone(),
            product.body["currency"].clone()
        ),
        (json!(12_000), json!("JPY"))
    );
    let id = product.body["id"].as_str().unwrap();
    let again = put_as(
        "/settings/payment",
        &channel.admin(),
        Some(&json!({"provider": "stripe", "currency": "eur"})),
    )
    .await;
    assert_eq!(again.body["ready"], true, "{}", again.text);
    assert_eq!(again.body["secret_key_last4"], "1234");
    let listed = get("/products", Some(&agent)).await;
    assert_eq!(listed.body["items"][0]["name"], "Whitening");
    let renamed = put_as(
        &format!("/products/{id}"),
        &channel.admin(),
        Some(&json!({"name": "Whitening (2 visits)", "price": 15_000, "currency": "JPY"})),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(renamed.body["created_at"], product.body["created_at"]);
    assert_eq!(
        delete_as(&format!("/products/{id}"), &channel.admin())
            .await
            .status,
        204
    );
    assert_eq!(
        delete_as(&format!("/products/{id}"), &channel.admin())
            .await
            .status,
        404
    );
    let view = get("/settings/payment", Some(&agent)).await;
    assert_eq!(view.body["missing"], json!(["products"]));
}

#[tokio::test]
async fn a_customer_pays_a_link_and_five_concurrent_deliveries_move_it_once() {
    let channel = connect("whatsapp").await;
    let put = put_as(
        "/settings",
        &channel.admin(),
        Some(&json!({"business_name": "Acme Dental"})),
    )
    .await;
    assert_eq!(put.status, 200);
    let (product, _) = configure(&channel, "USD", 4500).await;
    let (conversation, wa_id) = customer_wrote(&channel, "whatsapp", 1).await;
    let created = request_payment(
        &channel,
        &conversation,
        &json!({"items": [{"product_id": product["id"], "quantity": 2}]}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let payment = &created.body;
    assert_eq!(payment["status"], "open");
    assert_eq!(
        (payment["amount"].clone(), payment["currency"].clone()),
        (json!(9000), json!("USD"))
    );
    assert_eq!(payment["items"][0]["quantity"], 2);
    assert!(payment["message_id"].is_string());
    let url = payment["url"].as_str().unwrap();
    let session = payment["session_id"].as_str().unwrap().to_owned();
    let sent = accepted_sends_to(&channel.external_id, &wa_id);
    let text = sent[0]["body"]["text"]["body"].as_str().unwrap();
    assert!(
        text.starts_with(
            "Acme Dental: here is your payment link for 2 × Teeth cleaning (90.00 USD): "
        ),
        "{text}"
    );
    assert!(text.ends_with(url));
    assert_eq!(
        system_events(&channel.tenant, &conversation, "payment_requested")
            .await
            .len(),
        1
    );

    // Paid: Stripe's event delivered five times at once moves it once.
    let report = pay(&session, json!({"outcome": "paid", "deliveries": 5})).await;
    let statuses: Vec<u64> = report["events"][0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(statuses, [200; 5], "{report}");
    let paid = history(&channel, &conversation).await;
    assert_eq!(paid[0]["status"], "paid");
    assert!(paid[0]["paid_at"].is_string());
    assert_eq!(
        system_events(&channel.tenant, &conversation, "payment_paid")
            .await
            .len(),
        1
    );
    let sent = accepted_sends_to(&channel.external_id, &wa_id);
    assert_eq!(sent.len(), 2, "the link, then one thank-you");
    assert_eq!(
        sent[1]["body"]["text"]["body"],
        "Acme Dental: thank you, we received your payment of 90.00 USD."
    );

    // A late expired never undoes paid.
    let (status, report) = sandbox_post(
        &format!("/sandbox/stripe/sessions/{session}/events"),
        None,
        &[],
        Some(json!({"type": "checkout.session.expired"})),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(history(&channel, &conversation).await[0]["status"], "paid");
    assert!(
        system_events(&channel.tenant, &conversation, "payment_expired")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_delayed_payment_is_processing_then_failed_and_an_expired_link_expires() {
    let channel = connect("messenger").await;
    configure(&channel, "EUR", 1000).await;
    let (conversation, _) = customer_wrote(&channel, "messenger", 1).await;
    let first = request_payment(
        &channel,
        &conversation,
        &json!({"amount": 2500, "description": "Deposit"}),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.text);
    pay(
        first.body["session_id"].as_str().unwrap(),
        json!({"outcome": "delayed_then_failed"}),
    )
    .await;
    let second = request_payment(
        &channel,
        &conversation,
        &json!({"amount": 800, "description": "Parking", "expires_in_minutes": 30}),
    )
    .await;
    assert_eq!(second.status, 201, "{}", second.text);
    let (status, _) = sandbox_post(
        &format!(
            "/stripe/v1/checkout/sessions/{}/expire",
            second.body["session_id"].as_str().unwrap()
        ),
        Some(&secret_key(&channel)),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200);
    let items = history(&channel, &conversation).await;
    assert_eq!(items[0]["id"], second.body["id"], "newest first");
    assert_eq!(items[0]["status"], "expired");
    assert_eq!(items[1]["status"], "failed");
    assert_eq!(
        system_events(&channel.tenant, &conversation, "payment_failed")
            .await
            .len(),
        1
    );
    assert_eq!(
        system_events(&channel.tenant, &conversation, "payment_expired")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_retried_request_with_its_key_makes_one_session_and_one_payment() {
    let channel = connect("whatsapp").await;
    configure(&channel, "USD", 1000).await;
    let (conversation, wa_id) = customer_wrote(&channel, "whatsapp", 1).await;
    let path = format!("/customers/{}/payments", customer_of(&conversation));
    let body = json!({"amount": 1234, "description": "Deposit"}).to_string();
    let send = || async {
        reqwest::Client::new()
            .post(format!("{}{path}", stack().base_url))
            .bearer_auth(token(&channel.tenant, "agent"))
            .header("Idempotency-Key", "deposit-ana-1")
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap()
    };
    let first = send().await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let second: Value = send().await.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["session_id"], second["session_id"]);
    assert_eq!(history(&channel, &conversation).await.len(), 1);
    assert_eq!(
        accepted_sends_to(&channel.external_id, &wa_id).len(),
        1,
        "one link message"
    );
    // The same key with another body is refused, not answered with the first payment.
    let other = reqwest::Client::new()
        .post(format!("{}{path}", stack().base_url))
        .bearer_auth(token(&channel.tenant, "agent"))
        .header("Idempotency-Key", "deposit-ana-1")
        .header("content-type", "application/json")
        .body(json!({"amount": 7000, "description": "Bridge"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 422);
    assert!(
        other
            .text()
            .await
            .unwrap()
            .contains("idempotency_key_reused")
    );
    // Five copies at once, a new key: one payment, one session, one link.
    let copies = futures::future::join_all((0..5).map(|_| {
        reqwest::Client::new()
            .post(format!("{}{path}", stack().base_url))
            .bearer_auth(token(&channel.tenant, "agent"))
            .header("Idempotency-Key", "deposit-ana-2")
            .header("content-type", "application/json")
            .body(json!({"amount": 999, "description": "Parallel"}).to_string())
            .send()
    }))
    .await;
    let mut ids = Vec::new();
    for reply in copies {
        let reply = reply.unwrap();
        assert_eq!(reply.status(), 201);
        ids.push(reply.json::<Value>().await.unwrap()["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(history(&channel, &conversation).await.len(), 2);
    assert_eq!(
        accepted_sends_to(&channel.external_id, &wa_id).len(),
        2,
        "two link messages in all"
    );
    let stats = reqwest::get(format!("{}/sandbox/stripe/stats", sandbox_url()))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        stats["sessions_per_idempotency_key"][first["id"].as_str().unwrap()],
        1,
        "{stats}"
    );
}

/// Posts a Stripe event to the tenant's webhook with the given signature header: status and body.
async fn post_event(
    tenant: &str,
    body: &[u8],
    signature: Option<String>,
    base64: bool,
) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/webhooks/stripe/{tenant}", stack().base_url))
        .header(
            "content-type",
            if base64 {
                "application/octet-stream"
            } else {
                "application/json"
            },
        )
        .body(body.to_vec());
    if let Some(s) = signature {
        request = request.header("Stripe-Signature", s);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_webhook_checks_stripes_signature_over_the_raw_body() {
    let channel = connect("whatsapp").await;
    let (_, secret) = configure(&channel, "USD", 1000).await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let created = request_payment(
        &channel,
        &conversation,
        &json!({"amount": 500, "description": "Deposit"}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let view = get("/settings/payment", Some(&channel.admin())).await;
    assert_eq!(view.body["webhook_secret_set"], true);
    let now = chrono::Utc::now().timestamp();
    let event = json!({
        "id": format!("evt_test_{}", ulid::Ulid::new()), "object": "event", "type": "checkout.session.completed",
        "data": {"object": {"id": created.body["session_id"], "object": "checkout.session", "payment_status": "paid",
            "amount_total": 500, "currency": "usd",
            "metadata": {"tenant_id": channel.tenant, "payment_id": created.body["id"], "conversation_id": conversation}}}
    })
    .to_string();
    let body = event.as_bytes();
    let good = |t: i64| Some(shared::domain::stripe::sign(&secret, t, body));
    {
        let mut flipped = body.to_vec();
        let at = flipped.len() - 3;
        flipped[at] ^= 1;
        let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
            ("missing header", body.to_vec(), None),
            (
                "bad v1",
                body.to_vec(),
                Some(format!("t={now},v1={}", "0".repeat(64))),
            ),
            ("stale t", body.to_vec(), good(now - 301)),
            ("one byte changed", flipped, good(now)),
            (
                "another tenant's secret",
                body.to_vec(),
                Some(shared::domain::stripe::sign("whsec_someoneelse", now, body)),
            ),
        ];
        for (name, bytes, header) in cases {
            let (status, text) = post_event(&channel.tenant, &bytes, header, false).await;
            assert_eq!(status, 400, "{name}: {text}");
            assert!(text.contains("invalid_signature"), "{name}: {text}");
        }
        assert_eq!(
            history(&channel, &conversation).await[0]["status"],
            "open",
            "nothing written"
        );
        // Two v1, one valid; the body handed over base64-encoded: verified on the decoded bytes.
        let two = format!("{},v1={}", good(now).unwrap(), "1".repeat(64));
        let (status, text) = post_event(&channel.tenant, body, Some(two), true).await;
        assert_eq!((status, text.contains("\"paid\"")), (200, true), "{text}");
        assert_eq!(history(&channel, &conversation).await[0]["status"], "paid");
    }
    // An unknown tenant, or one without payments, answers like a bad signature.
    let (status, _) = post_event(
        &unique_tenant(),
        body,
        Some(format!("t={now},v1={}", "0".repeat(64))),
        false,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn outside_the_window_the_link_needs_a_template_and_stripes_refusals_are_explained() {
    let waba = unique_meta_id();
    let channel = connect_for(&unique_tenant(), "whatsapp", json!({"waba_id": waba})).await;
    configure(&channel, "USD", 1000).await;
    let template = post_json(
        "/templates",
        Some(&channel.admin()),
        &json!({"channel_id": channel.id, "name": "pay_link", "language": "en_US",
                "category": "UTILITY", "components": [{"type": "BODY", "text": "Hi {{1}}, pay here: {{2}}"}]}),
    )
    .await;
    assert_eq!(template.body["status"], "APPROVED", "{}", template.text);
    let (conversation, wa_id) = customer_wrote(&channel, "whatsapp", 30).await;
    let stats = || async {
        reqwest::get(format!("{}/sandbox/stripe/stats", sandbox_url()))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let before = stats().await["requests"][secret_key(&channel)]
        .as_u64()
        .unwrap_or(0);
    let refused = request_payment(
        &channel,
        &conversation,
        &json!({"amount": 500, "description": "Deposit"}),
    )
    .await;
    assert_eq!((refused.status, refused.code()), (422, "template_required"));
    assert_eq!(
        stats().await["requests"][secret_key(&channel)]
            .as_u64()
            .unwrap_or(0),
        before,
        "no session made"
    );
    let created = request_payment(
        &channel,
        &conversation,
        &json!({"amount": 500, "description": "Deposit", "template": {"name": "pay_link", "language": "en_US", "parameters": ["Ana"]}}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let sent = accepted_sends_to(&channel.external_id, &wa_id);
    assert_eq!(sent[0]["body"]["template"]["name"], "pay_link");
    assert!(
        sent[0]["body"]["template"]["components"][0]["parameters"]
            .to_string()
            .contains(created.body["url"].as_str().unwrap())
    );

    // Stripe failing twice, then answering: one payment. Refusing the request or the key: 422.
    let (fresh, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let key = secret_key(&channel);
    sandbox_fail(&key, vec![json!({"status": 500}), json!({"status": 429})]);
    let retried = request_payment(
        &channel,
        &fresh,
        &json!({"amount": 700, "description": "Retry"}),
    )
    .await;
    assert_eq!(retried.status, 201, "{}", retried.text);
    sandbox_fail(
        &key,
        vec![json!({"status": 400, "message": "Amount too small"})],
    );
    let rejected = request_payment(
        &channel,
        &fresh,
        &json!({"amount": 1, "description": "Tiny"}),
    )
    .await;
    assert_eq!(
        (rejected.status, rejected.code()),
        (422, "payment_rejected"),
        "{}",
        rejected.text
    );
    sandbox_fail(&key, vec![json!({"status": 401})]);
    let unauthorized = request_payment(
        &channel,
        &fresh,
        &json!({"amount": 700, "description": "Key"}),
    )
    .await;
    assert_eq!(
        (unauthorized.status, unauthorized.code()),
        (422, "payment_credentials_rejected")
    );
    assert_eq!(
        history(&channel, &fresh).await.len(),
        1,
        "only the retried one is stored"
    );
}

#[tokio::test]
async fn bad_payment_requests_are_refused_with_a_code_and_write_nothing() {
    let channel = connect("whatsapp").await;
    let (product, _) = configure(&channel, "USD", 1000).await;
    let other = post_json(
        "/products",
        Some(&channel.admin()),
        &json!({"name": "Yen thing", "price": 500, "currency": "JPY"}),
    )
    .await;
    let (conversation, wa_id) = customer_wrote(&channel, "whatsapp", 1).await;
    for (body, status, code) in [
        (json!({}), 422, "invalid_items"),
        (json!({"items": [], "amount": 5}), 422, "invalid_items"),
        (
            json!({"items": [{"product_id": product["id"], "quantity": 0}]}),
            422,
            "invalid_items",
        ),
        (
            json!({"items": [{"product_id": product["id"], "quantity": 1}, {"product_id": other.body["id"], "quantity": 1}]}),
            422,
            "mixed_currencies",
        ),
        (
            json!({"items": [{"product_id": "pr_01JZZZZZZZZZZZZZZZZZZZZZZZ", "quantity": 1}]}),
            422,
            "unknown_product",
        ),
        (json!({"amount": 500}), 422, "invalid_name"),
        (
            json!({"amount": 0, "description": "x"}),
            422,
            "invalid_amount",
        ),
        (
            json!({"amount": 500, "description": "x", "expires_in_minutes": 10}),
            422,
            "invalid_expiry",
        ),
        (
            json!({"amount": 500, "description": "x", "tip": 1}),
            422,
            "invalid_body",
        ),
    ] {
        let reply = request_payment(&channel, &conversation, &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{body}: {}",
            reply.text
        );
    }
    let unknown = post_json(
        "/customers/cu_nope/payments",
        Some(&token(&channel.tenant, "agent")),
        &json!({"amount": 500, "description": "x"}),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert!(history(&channel, &conversation).await.is_empty());
    assert!(accepted_sends_to(&channel.external_id, &wa_id).is_empty());
    assert!(
        system_events(&channel.tenant, &conversation, "payment_requested")
            .await
            .is_empty()
    );
}
