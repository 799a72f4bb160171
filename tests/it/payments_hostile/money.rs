//! Money: ISO 4217 exponents end to end, Stripe's maximum, numbers that are not integers
//! of minor units, and products repriced or deleted between two requests.

use serde_json::json;

use super::{JSON, Shop, accepted_to, assert_refused, events_of, raw, text_of};

#[tokio::test]
async fn yen_and_dinar_keep_their_exponent_from_the_request_to_the_thank_you() {
    let shop = Shop::open("whatsapp", "USD").await;
    let yen = shop.product("Whitening", 12_000, "jpy").await;
    let dinar = shop.product("Crown", 1_250, "KWD").await;
    let buyer = shop.buyer(1).await;

    let created = shop
        .request(
            &buyer.id,
            &json!({"items": [{"product_id": yen["id"], "quantity": 3}]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        (
            created.body["amount"].clone(),
            created.body["currency"].clone()
        ),
        (json!(36_000), json!("JPY"))
    );
    let session = shop
        .session(created.body["session_id"].as_str().unwrap())
        .await;
    assert_eq!(
        (session["amount_total"].clone(), session["currency"].clone()),
        (json!(36_000), json!("jpy")),
        "{session}"
    );
    let link = text_of(&accepted_to(&buyer.sender)[0]);
    assert!(link.contains("(36,000 JPY)"), "{link}");
    shop.pay(
        created.body["session_id"].as_str().unwrap(),
        json!({"outcome": "paid"}),
    )
    .await;
    let thanks = text_of(&accepted_to(&buyer.sender)[1]);
    assert!(thanks.contains("36,000 JPY"), "{thanks}");
    let paid = events_of(&shop, &buyer, "payment_paid").await;
    assert!(
        paid[0]["text"].as_str().unwrap().contains("36,000 JPY"),
        "{paid:?}"
    );

    for (body, amount, shown) in [
        (
            json!({"items": [{"product_id": dinar["id"], "quantity": 2}]}),
            2_500,
            "(2.500 KWD)",
        ),
        (
            json!({"amount": 1_000, "description": "Deposit", "currency": "kwd"}),
            1_000,
            "(1.000 KWD)",
        ),
        (
            json!({"amount": 70, "description": "Stamp", "currency": "KWD"}),
            70,
            "(0.070 KWD)",
        ),
    ] {
        let created = shop.request(&buyer.id, &body).await;
        assert_eq!(created.status, 201, "{body}: {}", created.text);
        assert_eq!(created.body["amount"], amount);
        let session = shop
            .session(created.body["session_id"].as_str().unwrap())
            .await;
        assert_eq!(
            (session["amount_total"].clone(), session["currency"].clone()),
            (json!(amount), json!("kwd"))
        );
        let link = text_of(accepted_to(&buyer.sender).last().unwrap());
        assert!(link.contains(shown), "{link}");
    }
}

/// Stripe's API does not read every currency with its ISO 4217 exponent (Stripe docs,
/// "Supported currencies", zero-decimal list and special cases): ISK is two-decimal in the
/// API (an amount of 100 is 1 króna) though ISO gives it none, and MGA is zero-decimal
/// though ISO gives it two. A product of 5,000 ISK is charged 50 ISK, and one of
/// "10.00 MGA" is charged 1,000 MGA.
#[tokio::test]
async fn isk_and_mga_are_charged_what_the_link_says() {
    let shop = Shop::open("whatsapp", "USD").await;
    // ISK is refused rather than charged a hundredth of its price.
    let krona = integration_tests::post_json(
        "/products",
        Some(&shop.channel.admin()),
        &json!({"name": "Tour", "price": 5_000, "currency": "ISK"}),
    )
    .await;
    assert_eq!(
        (krona.status, krona.code()),
        (422, "invalid_currency"),
        "{}",
        krona.text
    );
    // MGA is zero-decimal at Stripe: the link and the charge say the same.
    let ariary = shop.product("Vanilla", 1_000, "MGA").await;
    let buyer = shop.buyer(1).await;
    let created = shop
        .request(
            &buyer.id,
            &json!({"items": [{"product_id": ariary["id"], "quantity": 1}]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let link = text_of(accepted_to(&buyer.sender).last().unwrap());
    let session = shop
        .session(created.body["session_id"].as_str().unwrap())
        .await;
    assert!(link.contains("(1,000 MGA)"), "{link}");
    assert_eq!(session["amount_total"], 1_000);
}

/// Stripe takes three-decimal amounts (KWD, BHD, JOD, OMR, TND) only with a last digit of
/// 0 (Stripe docs, "Three-decimal currencies"): a price of 1.255 KWD makes every payment
/// link of it fail at Stripe, so it is refused when the product is saved.
#[tokio::test]
async fn three_decimal_amounts_that_stripe_refuses_are_refused_at_the_door() {
    let shop = Shop::open("whatsapp", "KWD").await;
    let reply = super::post_json(
        "/products",
        Some(&shop.admin()),
        &json!({"name": "Crown", "price": 1_255, "currency": "KWD"}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "invalid_amount"),
        "{}",
        reply.text
    );
    shop.product("Bridge", 1_250, "KWD").await;
    let buyer = shop.buyer(1).await;
    let reply = shop
        .request(
            &buyer.id,
            &json!({"amount": 1_255, "description": "Deposit", "currency": "BHD"}),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "invalid_amount"),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn totals_at_stripes_maximum_pass_and_over_it_are_refused_before_stripe() {
    let shop = Shop::open("whatsapp", "USD").await;
    let top = shop.product("Top", 99_999_999, "USD").await;
    let half = shop.product("Half", 50_000_000, "USD").await;
    let cent = shop.product("Cent", 1, "USD").await;
    let buyer = shop.buyer(1).await;
    for body in [
        json!({"items": [{"product_id": top["id"], "quantity": 1}]}),
        json!({"amount": 99_999_999, "description": "Everything"}),
    ] {
        let reply = shop.request(&buyer.id, &body).await;
        assert_eq!(reply.status, 201, "{body}: {}", reply.text);
        assert_eq!(reply.body["amount"], 99_999_999);
    }
    let before = shop.snapshot(&buyer).await;
    for body in [
        json!({"items": [{"product_id": half["id"], "quantity": 2}]}),
        json!({"items": [{"product_id": top["id"], "quantity": 1}, {"product_id": cent["id"], "quantity": 1}]}),
        json!({"items": [{"product_id": top["id"], "quantity": 999}]}),
        json!({"amount": 100_000_000, "description": "Too much"}),
        json!({"amount": i64::MAX, "description": "Far too much"}),
    ] {
        let reply = shop.request(&buyer.id, &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "invalid_amount"),
            "{body}: {}",
            reply.text
        );
    }
    assert_eq!(shop.snapshot(&buyer).await, before, "nothing written");
}

#[tokio::test]
async fn numbers_that_are_not_integers_of_minor_units_are_422_and_write_nothing() {
    let (shop, product) = Shop::ready("whatsapp").await;
    let admin = shop.admin();
    for price in [
        "1.5",
        "1.0",
        "1e3",
        "\"1000\"",
        "-1",
        "0",
        "-9223372036854775808",
        "9223372036854775808",
        "1e300",
        "null",
        "true",
        "[1000]",
        "{\"amount\": 1000}",
    ] {
        let body = format!(r#"{{"name": "Odd", "price": {price}, "currency": "USD"}}"#);
        let reply = raw("POST", "/products", &admin, &body).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert!(
            matches!(reply.code(), "invalid_body" | "invalid_amount"),
            "{body}: {}",
            reply.text
        );
    }
    let listed = super::get("/products", Some(&admin)).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);

    let buyer = shop.buyer(1).await;
    let before = shop.snapshot(&buyer).await;
    let path = format!("/customers/{}/payments", buyer.id);
    let agent = shop.agent();
    let id = product["id"].as_str().unwrap();
    let mut bodies: Vec<String> = [
        "1.5",
        "\"2\"",
        "-1",
        "0",
        "1000",
        "9223372036854775807",
        "9223372036854775808",
        "1e2",
        "null",
    ]
    .iter()
    .map(|q| format!(r#"{{"items": [{{"product_id": "{id}", "quantity": {q}}}]}}"#))
    .collect();
    bodies.extend(
        [
            "12.5",
            "\"500\"",
            "-500",
            "0",
            "1e3",
            "18446744073709551616",
        ]
        .iter()
        .map(|a| format!(r#"{{"amount": {a}, "description": "Deposit"}}"#)),
    );
    bodies.extend([
        r#"{"items": {"product_id": "x", "quantity": 1}}"#.to_owned(),
        r#"{"items": [{"product_id": 5, "quantity": 1}]}"#.to_owned(),
        format!(r#"{{"items": [{{"product_id": "{id}"}}]}}"#),
        format!(r#"{{"items": [{{"product_id": "{id}", "quantity": 1, "price": 1}}]}}"#),
        r#"{"amount": 500, "description": "   "}"#.to_owned(),
        r#"{"amount": 500, "description": "line\u0000break"}"#.to_owned(),
        format!(r#"{{"amount": 500, "description": "{}"}}"#, "x".repeat(201)),
        r#"{"amount": 500, "description": "x", "currency": "XAU"}"#.to_owned(),
        r#"{"amount": 500, "description": "x", "currency": "usdollar"}"#.to_owned(),
        r#"{"amount": 500, "description": "x", "expires_in_minutes": 1441}"#.to_owned(),
        r#"{"amount": 500, "description": "x", "expires_in_minutes": 29.5}"#.to_owned(),
    ]);
    for body in &bodies {
        let reply = raw("POST", &path, &agent, body).await;
        assert_refused(&reply, body);
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
    }
    for (body, content_type) in [("", JSON), ("{", JSON), ("[]", JSON), ("\"x\"", JSON)] {
        let reply = super::reply_of(
            reqwest::Client::new()
                .post(format!("{}{path}", super::stack().base_url))
                .bearer_auth(&agent)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_refused(&reply, body);
    }
    assert_eq!(shop.snapshot(&buyer).await, before, "nothing written");
}

#[tokio::test]
async fn a_product_repriced_or_deleted_between_two_requests() {
    let (shop, product) = Shop::ready("whatsapp").await;
    let id = product["id"].as_str().unwrap();
    let buyer = shop.buyer(1).await;
    let items = json!({"items": [{"product_id": id, "quantity": 2}]});
    let first = shop.request(&buyer.id, &items).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.body["amount"], 9_000);

    let repriced = super::put_as(
        &format!("/products/{id}"),
        &shop.admin(),
        Some(&json!({"name": "Deep cleaning", "price": 6_000, "currency": "USD"})),
    )
    .await;
    assert_eq!(repriced.status, 200, "{}", repriced.text);
    let second = shop.request(&buyer.id, &items).await;
    assert_eq!(second.status, 201, "{}", second.text);
    assert_eq!(second.body["amount"], 12_000);
    assert_eq!(second.body["items"][0]["name"], "Deep cleaning");
    let history = shop.history(&buyer.id).await;
    let kept = history
        .iter()
        .find(|p| p["id"] == first.body["id"])
        .unwrap();
    assert_eq!(
        (
            kept["amount"].clone(),
            kept["items"][0]["unit_amount"].clone(),
            kept["items"][0]["name"].clone()
        ),
        (json!(9_000), json!(4_500), json!("Teeth cleaning")),
        "a payment keeps the price it was made with"
    );

    let floss = shop.product("Floss", 300, "USD").await;
    let deleted = super::delete_as(&format!("/products/{id}"), &shop.admin()).await;
    assert_eq!(deleted.status, 204);
    let before = shop.snapshot(&buyer).await;
    let gone = shop.request(&buyer.id, &items).await;
    assert_eq!(
        (gone.status, gone.code()),
        (422, "unknown_product"),
        "{}",
        gone.text
    );
    let floss_path = format!("/products/{}", floss["id"].as_str().unwrap());
    assert_eq!(
        super::delete_as(&floss_path, &shop.admin()).await.status,
        204
    );
    // The last product gone: payments are not configured any more, amounts included.
    let amount = shop
        .request(&buyer.id, &json!({"amount": 500, "description": "Deposit"}))
        .await;
    assert_eq!(
        (amount.status, amount.code()),
        (409, "payment_not_configured"),
        "{}",
        amount.text
    );
    assert_eq!(shop.snapshot(&buyer).await, before, "nothing written");
}

/// Ten admins delete one product at once: one 204, the others 404, and the count that
/// makes payments ready never goes below zero.
#[tokio::test]
async fn concurrent_deletes_of_one_product_count_it_once() {
    let (shop, product) = Shop::ready("whatsapp").await;
    let other = shop.product("Other", 100, "USD").await;
    let path = format!("/products/{}", product["id"].as_str().unwrap());
    let admin = shop.admin();
    let replies = futures::future::join_all((0..10).map(|_| super::delete_as(&path, &admin))).await;
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 404, 404, 404, 404, 404, 404, 404, 404, 404]);
    let view = super::get("/settings/payment", Some(&admin)).await;
    assert_eq!(view.body["ready"], true, "{}", view.text);
    let last = format!("/products/{}", other["id"].as_str().unwrap());
    assert_eq!(super::delete_as(&last, &admin).await.status, 204);
    let view = super::get("/settings/payment", Some(&admin)).await;
    assert_eq!(view.body["missing"], json!(["products"]), "{}", view.text);
    shop.product("Again", 100, "USD").await;
    let view = super::get("/settings/payment", Some(&admin)).await;
    assert_eq!(view.body["ready"], true, "{}", view.text);
}

/// `GET /products` is a list: `?limit=` pages it like every other list (house rule:
/// `{"items", "next_cursor"}` with `?limit=` up to 100).
#[tokio::test]
async fn the_product_list_pages_by_limit() {
    let shop = Shop::open("whatsapp", "USD").await;
    for i in 0..3 {
        shop.product(&format!("P{i}"), 100 + i, "USD").await;
    }
    let page = super::get("/products?limit=2", Some(&shop.agent())).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(
        page.body["items"].as_array().unwrap().len(),
        2,
        "{}",
        page.text
    );
    assert!(page.body["next_cursor"].is_string(), "{}", page.text);
    let bad = super::get("/products?limit=1000", Some(&shop.agent())).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
}
