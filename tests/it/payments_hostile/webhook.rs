//! Stripe's webhook under attack: malformed, stale, oversize and foreign signatures;
//! bodies that are not events; event types it does not act on; metadata naming unknown,
//! missing or another tenant's payments; another tenant's events. Every refusal is a 4xx
//! (never a 5xx: Stripe would retry it for days), and nothing moves.

use base64::Engine;
use serde_json::{Value, json};

use super::{Buyer, JSON, Shop, event_body, now, post_event, sign, v1_of};

/// A shop with a customer, an open payment and its session as Stripe holds it.
async fn open_payment() -> (Shop, Buyer, Value, Value) {
    let (shop, _) = Shop::ready("whatsapp").await;
    let buyer = shop.buyer(1).await;
    let payment = shop.paid_link(&buyer, 2_500).await;
    let session = shop.session(payment["session_id"].as_str().unwrap()).await;
    (shop, buyer, payment, session)
}

/// The payment is still open and nothing about it was written.
async fn still_open(shop: &Shop, buyer: &Buyer, payment: &Value) {
    let now = shop.payment(buyer, &payment["id"]).await;
    assert_eq!(now["status"], "open", "{now}");
    for event in ["payment_paid", "payment_failed", "payment_expired"] {
        assert!(
            super::events_of(shop, buyer, event).await.is_empty(),
            "{event}"
        );
    }
    assert_eq!(super::accepted_to(&buyer.sender).len(), 1, "only the link");
}

#[tokio::test]
async fn malformed_stale_and_foreign_signatures_are_400_and_move_nothing() {
    let (shop, buyer, payment, session) = open_payment().await;
    let body = shop.event(
        "checkout.session.completed",
        &session,
        json!({"status": "complete", "payment_status": "paid"}),
    );
    let bytes = body.as_bytes();
    let t = now();
    let good = v1_of(&sign(&shop.secret, t, bytes));
    let bare = shop.secret.trim_start_matches("whsec_").to_owned();
    let mut with_newline = body.clone();
    with_newline.push('\n');
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("blank", "   ".into()),
        ("only t", format!("t={t}")),
        ("no t", format!("v1={good}")),
        ("empty t", format!("t=,v1={good}")),
        ("t not a number", format!("t=now,v1={good}")),
        ("t with a fraction", format!("t={t}.0,v1={good}")),
        ("t twice", format!("t={t},t={t},v1={good}")),
        ("empty v1", format!("t={t},v1=")),
        ("v1 one digit short", format!("t={t},v1={}", &good[..63])),
        ("v1 one digit long", format!("t={t},v1={good}0")),
        ("v0 only", format!("t={t},v0={good}")),
        ("v2 only", format!("t={t},v2={good}")),
        ("semicolons", format!("t={t};v1={good}")),
        ("quoted", format!("t=\"{t}\",v1=\"{good}\"")),
        ("stale by 330 s", sign(&shop.secret, t - 330, bytes)),
        ("ahead by 330 s", sign(&shop.secret, t + 330, bytes)),
        ("milliseconds", sign(&shop.secret, t * 1000, bytes)),
        ("t = i64::MAX", format!("t={},v1={good}", i64::MAX)),
        ("t past i64", format!("t=99999999999999999999,v1={good}")),
        ("t negative", format!("t=-{t},v1={good}")),
        ("secret without whsec_", sign(&bare, t, bytes)),
        ("another secret", sign("whsec_attacker", t, bytes)),
        (
            "over the body and a newline",
            sign(&shop.secret, t, with_newline.as_bytes()),
        ),
        ("non-ASCII", format!("t={t},v1={good}é")),
    ];
    for (name, header) in cases {
        let (status, text) = post_event(shop.tenant(), bytes, Some(header), JSON).await;
        assert_eq!(status, 400, "{name}: {text}");
        assert!(text.contains("invalid_signature"), "{name}: {text}");
    }
    let (status, text) = post_event(shop.tenant(), bytes, None, JSON).await;
    assert_eq!(
        (status, text.contains("invalid_signature")),
        (400, true),
        "{text}"
    );
    // A header far larger than any Stripe sends: refused, by the server or the function.
    let huge = format!("t={t},v1={good},{}", "v1=".repeat(5_000));
    let (status, text) = post_event(shop.tenant(), bytes, Some(huge), JSON).await;
    assert!((400..500).contains(&status), "huge header: {status} {text}");
    still_open(&shop, &buyer, &payment).await;

    // The same body, signed well, in any order of its parts: it moves once.
    let reordered = format!("v1={good},t={t}");
    let (status, text) = post_event(shop.tenant(), bytes, Some(reordered), JSON).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(shop.payment(&buyer, &payment["id"]).await["status"], "paid");
}

/// `t` is read as an `i64` and subtracted from now unchecked: a `t` near `i64::MIN`
/// overflows. Debug builds (the dev server, the tests) panic and drop the connection;
/// release builds wrap, and for `t = i64::MIN + now` the tolerance check passes (the MAC
/// still protects, so only the panic is reachable without the secret).
#[tokio::test]
async fn a_timestamp_at_the_edge_of_i64_is_400_not_a_panic() {
    let (shop, buyer, payment, session) = open_payment().await;
    let body = shop.event(
        "checkout.session.completed",
        &session,
        json!({"payment_status": "paid"}),
    );
    let good = v1_of(&sign(&shop.secret, now(), body.as_bytes()));
    for t in [i64::MIN, i64::MIN + now(), i64::MIN + 1] {
        let header = format!("t={t},v1={good}");
        let (status, text) = post_event(shop.tenant(), body.as_bytes(), Some(header), JSON).await;
        assert_eq!(status, 400, "t={t}: {text}");
    }
    still_open(&shop, &buyer, &payment).await;
}

#[tokio::test]
async fn bodies_that_are_not_events_are_4xx_never_5xx() {
    let (shop, buyer, payment, session) = open_payment().await;
    let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let deep_object = format!(
        r#"{{"id": "evt_1", "type": "checkout.session.completed", "data": {{"object": {}}}}}"#,
        "{\"a\":".repeat(20_000) + "1" + &"}".repeat(20_000)
    );
    let big = shop.event(
        "checkout.session.completed",
        &session,
        json!({"payment_status": "paid", "padding": "x".repeat(300 * 1024)}),
    );
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not JSON", b"hello".to_vec()),
        ("null", b"null".to_vec()),
        ("an array", b"[]".to_vec()),
        ("a string", b"\"checkout.session.completed\"".to_vec()),
        ("no data", br#"{"id": "evt_1", "type": "checkout.session.completed"}"#.to_vec()),
        (
            "id a number",
            br#"{"id": 1, "type": "checkout.session.completed", "data": {"object": {"id": "cs_1"}}}"#.to_vec(),
        ),
        ("deep arrays", deep.into_bytes()),
        ("deep objects", deep_object.into_bytes()),
        ("not UTF-8", vec![0xff, 0xfe, b'{', 0x80, b'}']),
        ("over 256 KB", big.into_bytes()),
    ];
    for (name, bytes) in bodies {
        for content_type in [JSON, "application/octet-stream"] {
            let signature = sign(&shop.secret, now(), &bytes);
            let (status, text) =
                post_event(shop.tenant(), &bytes, Some(signature), content_type).await;
            // A signed event about no session of ours (the deep object has no id) is
            // acknowledged and ignored, as Stripe expects of events a handler skips.
            let ignored = name == "deep objects" && status == 200 && text.contains("ignored");
            assert!(
                (400..500).contains(&status) || ignored,
                "{name} as {content_type}: {status} {text}"
            );
        }
    }
    still_open(&shop, &buyer, &payment).await;
}

/// A Stripe account sends every event type an endpoint enabled (`*` here, as a tenant
/// may well choose); events the payments do not act on are acknowledged with a 2xx, or
/// Stripe retries them for three days and then disables the endpoint. A `balance.available`
/// event's object (a Balance) has no `id`.
#[tokio::test]
async fn event_types_it_does_not_act_on_are_acknowledged_whatever_their_object() {
    let (shop, buyer, payment, _) = open_payment().await;
    let balance = json!({
        "id": format!("evt_b{}", ulid::Ulid::new()), "object": "event", "type": "balance.available",
        "api_version": "2025-03-31.basil", "created": now(), "livemode": false,
        "data": {"object": {"object": "balance", "livemode": false,
            "available": [{"amount": 2500, "currency": "usd", "source_types": {"card": 2500}}],
            "pending": [{"amount": 0, "currency": "usd"}]}}
    })
    .to_string();
    let (status, text) = shop.deliver(&balance).await;
    assert_eq!(status, 200, "{text}");
    still_open(&shop, &buyer, &payment).await;
}

#[tokio::test]
async fn other_event_types_and_other_integrations_sessions_are_ignored() {
    let (shop, buyer, payment, session) = open_payment().await;
    let customer = json!({"id": "cus_1", "object": "customer", "metadata": {}, "email": "a@b.c"});
    let intent = json!({"id": "pi_1", "object": "payment_intent", "status": "succeeded",
        "amount": 2500, "currency": "usd", "metadata": session["metadata"].clone()});
    let foreign = json!({"id": "cs_other", "object": "checkout.session", "mode": "subscription",
        "payment_status": "paid", "status": "complete", "amount_total": 999, "currency": "usd",
        "metadata": {"order": "42"}});
    let cases = [
        ("customer.created", &customer),
        ("payment_intent.succeeded", &intent),
        ("checkout.session.completed", &foreign),
        ("checkout.session.async_payment_succeeded", &foreign),
        ("checkout.session.expired", &foreign),
        ("invoice.paid", &customer),
    ];
    for (kind, object) in cases {
        let body = event_body(
            &format!("evt_o{}", ulid::Ulid::new()),
            kind,
            object,
            json!({}),
        );
        let (status, text) = shop.deliver(&body).await;
        assert_eq!(status, 200, "{kind}: {text}");
        assert!(text.contains("ignored"), "{kind}: {text}");
    }
    still_open(&shop, &buyer, &payment).await;
}

#[tokio::test]
async fn metadata_naming_unknown_missing_or_malformed_payments_moves_nothing() {
    let (shop, buyer, payment, session) = open_payment().await;
    let real = session["metadata"].clone();
    let with = |key: &str, value: Value| {
        let mut m = real.clone();
        match value {
            Value::Null => {
                m.as_object_mut().unwrap().remove(key);
            }
            v => m[key] = v,
        }
        m
    };
    let unknown = format!("pay_{}", ulid::Ulid::new());
    let metadata = [
        with("payment_id", json!(unknown)),
        with("payment_id", json!(format!("pay_k{}", "0".repeat(32)))),
        with("payment_id", Value::Null),
        with("payment_id", json!("")),
        with("payment_id", json!("pay_../../x")),
        with(
            "payment_id",
            json!(format!("{}x", payment["id"].as_str().unwrap())),
        ),
        with("tenant_id", Value::Null),
        with("tenant_id", json!("t-someone-else")),
        with("tenant_id", json!(shop.tenant().to_uppercase())),
        with("conversation_id", Value::Null),
        json!({}),
    ];
    for m in metadata {
        let body = shop.event(
            "checkout.session.completed",
            &session,
            json!({"status": "complete", "payment_status": "paid", "metadata": m}),
        );
        let (status, text) = shop.deliver(&body).await;
        assert!(
            status == 200 || (400..500).contains(&status),
            "{m}: {status} {text}"
        );
        assert!(!text.contains("\"paid\""), "{m}: {text}");
    }
    still_open(&shop, &buyer, &payment).await;
}

#[tokio::test]
async fn another_tenants_events_never_move_a_payment() {
    let (a, a_buyer, a_payment, a_session) = open_payment().await;
    let (b, b_buyer, b_payment, b_session) = open_payment().await;
    let a_paid = a.event(
        "checkout.session.completed",
        &a_session,
        json!({"status": "complete", "payment_status": "paid"}),
    );
    // A's event, signed with A's secret, posted to B's URL; and to A's URL with B's.
    let (status, _) = post_event(
        b.tenant(),
        a_paid.as_bytes(),
        Some(sign(&a.secret, now(), a_paid.as_bytes())),
        JSON,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = post_event(
        a.tenant(),
        a_paid.as_bytes(),
        Some(sign(&b.secret, now(), a_paid.as_bytes())),
        JSON,
    )
    .await;
    assert_eq!(status, 400);
    // B's admin knows B's secret: A's event re-signed for B, and B's own events naming A's
    // payment or conversation.
    let (status, text) = b.deliver(&a_paid).await;
    assert_eq!(status, 200, "{text}");
    let mut meta = b_session["metadata"].clone();
    meta["payment_id"] = a_payment["id"].clone();
    let names_a_payment = b.event(
        "checkout.session.completed",
        &b_session,
        json!({"status": "complete", "payment_status": "paid", "metadata": meta}),
    );
    let (status, text) = b.deliver(&names_a_payment).await;
    assert_eq!(status, 200, "{text}");
    let mut meta = b_session["metadata"].clone();
    meta["conversation_id"] = json!(a_buyer.conversation);
    let names_a_conversation = b.event(
        "checkout.session.async_payment_failed",
        &b_session,
        json!({"metadata": meta}),
    );
    let (status, text) = b.deliver(&names_a_conversation).await;
    assert!(status < 500, "{text}");
    still_open(&a, &a_buyer, &a_payment).await;
    let a_messages = integration_tests::all_messages(a.tenant(), &a_buyer.conversation).await;
    assert!(
        a_messages.iter().all(|m| m["event"] != "payment_failed"),
        "{a_messages:?}"
    );
    // B's own payment moved by B's own event only.
    let b_now = b.payment(&b_buyer, &b_payment["id"]).await;
    assert!(
        matches!(b_now["status"].as_str(), Some("open" | "failed")),
        "{b_now}"
    );
}

#[tokio::test]
async fn a_base64_body_with_unicode_metadata_verifies_on_the_decoded_bytes() {
    let shop = Shop::open("whatsapp", "EUR").await;
    let product = shop
        .product("Café ☕ 東京 — Ñandú \"x\" 💸", 1_990, "EUR")
        .await;
    let buyer = shop.buyer(1).await;
    let created = shop
        .request(
            &buyer.id,
            &json!({"items": [{"product_id": product["id"], "quantity": 2}]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let session = created.body["session_id"].as_str().unwrap();
    let report = shop
        .pay(
            session,
            json!({"outcome": "paid", "deliveries": 3, "base64": true}),
        )
        .await;
    let statuses: Vec<u64> = report["events"][0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(statuses, [200, 200, 200], "{report}");
    assert_eq!(
        shop.payment(&buyer, &created.body["id"]).await["status"],
        "paid"
    );
    // A body whose text is itself base64 is not the event it encodes.
    let event = shop.event(
        "checkout.session.expired",
        &shop.session(session).await,
        json!({}),
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(&event);
    let (status, _) = post_event(
        shop.tenant(),
        encoded.as_bytes(),
        Some(sign(&shop.secret, now(), event.as_bytes())),
        "text/plain",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        shop.payment(&buyer, &created.body["id"]).await["status"],
        "paid"
    );
}

#[tokio::test]
async fn webhooks_of_unknown_or_unconfigured_tenants_are_400() {
    let body = br#"{"id": "evt_1", "type": "checkout.session.completed", "data": {"object": {"id": "cs_1"}}}"#;
    let signature = sign("whsec_guess", now(), body);
    let unconfigured = super::connect("whatsapp").await;
    for tenant in [
        unconfigured.tenant.as_str(),
        "t-nobody",
        "%2e%2e",
        "T-UPPER",
        &"t".repeat(3000),
    ] {
        let (status, text) = post_event(tenant, body, Some(signature.clone()), JSON).await;
        assert!(
            (400..500).contains(&status),
            "{}: {status} {text}",
            &tenant[..tenant.len().min(20)]
        );
    }
}
