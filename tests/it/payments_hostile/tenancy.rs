//! Another tenant's ids (customers, products, payments) on every id route, and the roles:
//! 404 with no data, nothing changed on either side.

use serde_json::json;

use super::{Shop, delete_as, get, post_json, put_as};

#[tokio::test]
async fn another_tenants_customers_and_products_are_404_and_change_nothing() {
    let (a, a_product) = Shop::ready("whatsapp").await;
    let (b, _) = Shop::ready("whatsapp").await;
    let a_buyer = a.buyer(1).await;
    let payment = a.paid_link(&a_buyer, 700).await;
    let before = a.snapshot(&a_buyer).await;
    let b_requests = b.stripe_requests();
    let a_product_id = a_product["id"].as_str().unwrap();

    // B's agent on A's customer.
    let path = format!("/customers/{}/payments", a_buyer.id);
    let read = get(&path, Some(&b.agent())).await;
    assert_eq!(read.status, 404, "{}", read.text);
    assert!(!read.text.contains(payment["id"].as_str().unwrap()));
    for body in [
        json!({"amount": 500, "description": "Deposit"}),
        json!({"items": [{"product_id": a_product_id, "quantity": 1}]}),
    ] {
        let reply = post_json(&path, Some(&b.agent()), &body).await;
        assert_eq!(reply.status, 404, "{body}: {}", reply.text);
    }
    // B's agent retrying with the key A's agent might use: still 404.
    let keyed = b
        .request_keyed(
            &a_buyer.id,
            &json!({"amount": 500, "description": "Deposit"}),
            b"deposit-1",
        )
        .await;
    assert_eq!(keyed.status, 404, "{}", keyed.text);

    // B's admin on A's product; B's agent pricing with it.
    let product_path = format!("/products/{a_product_id}");
    let replaced = put_as(
        &product_path,
        &b.admin(),
        Some(&json!({"name": "Mine now", "price": 1, "currency": "USD"})),
    )
    .await;
    assert_eq!(replaced.status, 404, "{}", replaced.text);
    assert_eq!(delete_as(&product_path, &b.admin()).await.status, 404);
    let b_buyer = b.buyer(1).await;
    let b_before = b.snapshot(&b_buyer).await;
    let priced = b
        .request(
            &b_buyer.id,
            &json!({"items": [{"product_id": a_product_id, "quantity": 1}]}),
        )
        .await;
    assert_eq!(
        (priced.status, priced.code()),
        (422, "unknown_product"),
        "{}",
        priced.text
    );
    let listed = get("/products", Some(&b.agent())).await;
    assert!(!listed.text.contains(a_product_id), "{}", listed.text);

    // Nothing changed on either side.
    assert_eq!(a.snapshot(&a_buyer).await, before);
    assert_eq!(b.snapshot(&b_buyer).await, b_before);
    assert_eq!(b.stripe_requests(), b_requests, "no session on B's key");
    let a_products = get("/products", Some(&a.agent())).await;
    assert_eq!(a_products.body["items"][0]["name"], "Teeth cleaning");
    assert_eq!(a_products.body["items"][0]["price"], 4_500);
}

#[tokio::test]
async fn ids_that_are_not_ids_are_404_never_5xx() {
    let (shop, _) = Shop::ready("whatsapp").await;
    let agent = shop.agent();
    let admin = shop.admin();
    let long = "a".repeat(2000);
    for id in [
        "cu_nope",
        "x",
        "%00",
        "..%2F..%2Fsettings",
        "cu_01JZZZZZZZZZZZZZZZZZZZZZZZ",
        long.as_str(),
        "%F0%9F%92%B8",
    ] {
        let path = format!("/customers/{id}/payments");
        let read = get(&path, Some(&agent)).await;
        assert_eq!(read.status, 404, "{id}: {}", read.text);
        let write = post_json(
            &path,
            Some(&agent),
            &json!({"amount": 500, "description": "x"}),
        )
        .await;
        assert_eq!(write.status, 404, "{id}: {}", write.text);
        let product = format!("/products/{id}");
        let put = put_as(
            &product,
            &admin,
            Some(&json!({"name": "x", "price": 1, "currency": "USD"})),
        )
        .await;
        assert_eq!(put.status, 404, "{id}: {}", put.text);
        assert_eq!(delete_as(&product, &admin).await.status, 404, "{id}");
    }
}

#[tokio::test]
async fn agents_cannot_change_settings_or_products_and_strangers_nothing() {
    let (shop, product) = Shop::ready("whatsapp").await;
    let agent = shop.agent();
    let before = get("/settings/payment", Some(&shop.admin())).await;
    let product_path = format!("/products/{}", product["id"].as_str().unwrap());
    for (method, path, body) in [
        (
            "PUT",
            "/settings/payment",
            r#"{"provider": "stripe", "currency": "EUR", "secret_key": "sk_test_agentagent"}"#,
        ),
        ("PUT", "/settings/payment", "not json at all"),
        (
            "POST",
            "/products",
            r#"{"name": "x", "price": 1, "currency": "USD"}"#,
        ),
        (
            "PUT",
            product_path.as_str(),
            r#"{"name": "x", "price": 1, "currency": "USD"}"#,
        ),
        ("DELETE", product_path.as_str(), ""),
    ] {
        let reply = super::raw(method, path, &agent, body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (403, "forbidden"),
            "{method} {path}: {}",
            reply.text
        );
        let stranger = integration_tests::call(method, path, None, Some(body.into())).await;
        assert_eq!(stranger.status, 401, "{method} {path}: {}", stranger.text);
    }
    let after = get("/settings/payment", Some(&shop.admin())).await;
    assert_eq!(after.body, before.body);
    let products = get("/products", Some(&agent)).await;
    assert_eq!(products.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(products.body["items"][0]["price"], 4_500);
}

/// The history's cursors and limits: forged, foreign or malformed ones are a 400 or an
/// honest page of this customer's payments, never another customer's, never a 5xx.
#[tokio::test]
async fn history_cursors_and_limits_cannot_reach_other_payments() {
    use base64::Engine;
    let (a, _) = Shop::ready("whatsapp").await;
    let (ana, bea) = (a.buyer(1).await, a.buyer(1).await);
    let mut ana_ids = Vec::new();
    for amount in [100, 200, 300] {
        ana_ids.push(a.paid_link(&ana, amount).await["id"].clone());
    }
    let bea_payment = a.paid_link(&bea, 400).await;
    let first = get(
        &format!("/customers/{}/payments?limit=1", ana.id),
        Some(&a.agent()),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(first.body["items"][0]["id"], ana_ids[2], "newest first");

    let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    let forged = [
        cursor.clone(),
        encode("x"),
        encode("#"),
        encode(&format!("9999#{}", bea_payment["id"].as_str().unwrap())),
        encode(&format!("0000#{}", bea_payment["id"].as_str().unwrap())),
        encode(&"z".repeat(512)),
        encode("a\nb"),
        encode("2026-01-01T00:00:00.000Z#pay_\u{0}"),
        "not base64!".to_owned(),
        "A".repeat(1025),
    ];
    let (b, _) = Shop::ready("whatsapp").await;
    for cursor in &forged {
        for (shop, customer) in [(&a, &bea.id), (&a, &ana.id), (&b, &ana.id)] {
            let reply = get(
                &format!("/customers/{customer}/payments?limit=2&cursor={cursor}"),
                Some(&shop.agent()),
            )
            .await;
            assert!(
                matches!(reply.status, 200 | 400 | 404),
                "{cursor}: {} {}",
                reply.status,
                reply.text
            );
            let items = reply.body["items"].as_array().cloned().unwrap_or_default();
            assert!(
                items.iter().all(|p| p["customer_id"] == json!(customer)),
                "{cursor}: another customer's payment: {}",
                reply.text
            );
            if shop.tenant() != a.tenant() {
                assert_ne!(reply.status, 200, "{cursor}: {}", reply.text);
            }
        }
    }
    for limit in ["0", "101", "-1", "abc", "1.5", "99999999999"] {
        let reply = get(
            &format!("/customers/{}/payments?limit={limit}", ana.id),
            Some(&a.agent()),
        )
        .await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "invalid_limit"),
            "{limit}: {}",
            reply.text
        );
    }
}
