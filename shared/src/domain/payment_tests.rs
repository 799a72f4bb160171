use proptest::prelude::*;
use serde_json::json;

use super::*;

fn currency(code: &str) -> Currency {
    Currency::parse(code).unwrap()
}

fn product(id: &str, price: i64, code: &str) -> Product {
    Product {
        id: id.into(),
        name: format!("Product {id}"),
        price,
        currency: code.into(),
        created_at: "2026-12-01T00:00:00.000Z".into(),
        updated_at: "2026-12-01T00:00:00.000Z".into(),
    }
}

fn request(body: serde_json::Value) -> PaymentRequest {
    serde_json::from_value(body).unwrap()
}

#[test]
fn stripes_zero_decimal_list_wins_and_three_decimal_amounts_end_in_zero() {
    assert_eq!(
        currency("MGA").exponent(),
        0,
        "ISO says 2, Stripe charges whole ariary"
    );
    assert_eq!(currency("MGA").format(100_000), "100,000 MGA");
    assert_eq!(
        Currency::parse("ISK").unwrap_err().code(),
        "invalid_currency"
    );
    assert_eq!(currency("KWD").check(1250, "price").unwrap(), 1250);
    assert_eq!(
        currency("KWD").check(1255, "price").unwrap_err().code(),
        "invalid_amount"
    );
    assert_eq!(currency("USD").check(1255, "price").unwrap(), 1255);
}

#[test]
fn amounts_respect_the_iso_4217_exponent() {
    assert_eq!(currency("usd").format(1250), "12.50 USD");
    assert_eq!(currency("JPY").format(1250), "1,250 JPY");
    assert_eq!(currency("KWD").format(1250), "1.250 KWD");
    assert_eq!(currency("EUR").format(123_456_789), "1,234,567.89 EUR");
    assert_eq!(currency("USD").format(5), "0.05 USD");
    assert_eq!(currency("BHD").exponent(), 3);
    for bad in ["", "US", "usdx", "XAU", "XXX", "CLF", "ZZZ"] {
        assert_eq!(
            Currency::parse(bad).unwrap_err().code(),
            "invalid_currency",
            "{bad}"
        );
    }
}

#[test]
fn settings_keep_secrets_they_are_not_given_and_say_what_is_missing() {
    let empty = PaymentSettings::default();
    assert_eq!(
        empty.missing(),
        ["currency", "secret_key", "webhook_secret", "products"]
    );
    let put = |body| serde_json::from_value::<PaymentSettingsRequest>(body).unwrap();
    let set = empty
        .apply(&put(json!({"provider": "stripe", "currency": "usd",
                            "secret_key": "sk_test_51abcdEFGH", "webhook_secret": "whsec_abc123xyz"})))
        .unwrap();
    assert_eq!(set.missing(), ["products"]);
    let view = set.view();
    assert_eq!(view.secret_key_last4.as_deref(), Some("EFGH"));
    assert!(!view.ready);
    assert!(
        !format!("{set:?}").contains("sk_test"),
        "secrets never print"
    );
    let recurrency = PaymentSettings {
        product_count: 1,
        ..set.clone()
    }
    .apply(&put(json!({"provider": "stripe", "currency": "JPY"})))
    .unwrap();
    assert_eq!(recurrency.secret_key, set.secret_key);
    assert!(recurrency.view().ready);
    assert_eq!(recurrency.view().currency.as_deref(), Some("JPY"));
    let code = |body| empty.apply(&put(body)).unwrap_err().code();
    assert_eq!(
        code(json!({"provider": "paypal", "currency": "usd"})),
        "unsupported_provider"
    );
    assert_eq!(
        code(json!({"provider": "stripe", "currency": "usd", "secret_key": "pk_test_123456789"})),
        "invalid_secret"
    );
    assert_eq!(
        code(
            json!({"provider": "stripe", "currency": "usd", "webhook_secret": "sk_test_123456789"})
        ),
        "invalid_secret"
    );
    assert_eq!(
        code(json!({"provider": "stripe", "currency": "usd", "secret_key": "sk_test_ 12345"})),
        "invalid_secret"
    );
    assert!(
        serde_json::from_value::<PaymentSettingsRequest>(
            json!({"provider": "stripe", "currency": "usd", "extra": 1})
        )
        .is_err()
    );
}

#[test]
fn products_are_checked() {
    let make = |body| {
        serde_json::from_value::<ProductRequest>(body)
            .unwrap()
            .product("pr_1".into(), "c".into(), "n")
    };
    let p = make(json!({"name": "  Cleaning ", "price": 4500, "currency": "usd"})).unwrap();
    assert_eq!(
        (p.name.as_str(), p.price, p.currency.as_str()),
        ("Cleaning", 4500, "USD")
    );
    assert_eq!(
        make(json!({"name": "", "price": 1, "currency": "usd"}))
            .unwrap_err()
            .code(),
        "invalid_name"
    );
    assert_eq!(
        make(json!({"name": "x", "price": 0, "currency": "usd"}))
            .unwrap_err()
            .code(),
        "invalid_amount"
    );
    assert_eq!(
        make(json!({"name": "x", "price": 100_000_000, "currency": "usd"}))
            .unwrap_err()
            .code(),
        "invalid_amount"
    );
    assert_eq!(
        make(json!({"name": "x", "price": 1, "currency": "gold"}))
            .unwrap_err()
            .code(),
        "invalid_currency"
    );
    assert!(is_product_id(&product_id()));
    assert!(!is_product_id("pr_x") && !is_product_id("pay_01J"));
}

#[test]
fn a_request_is_priced_from_its_products() {
    let products = [product("pr_a", 4500, "USD"), product("pr_b", 1999, "USD")];
    let priced = request(json!({"items": [{"product_id": "pr_a", "quantity": 2}, {"product_id": "pr_b", "quantity": 1}]}))
        .price(&products, currency("EUR"))
        .unwrap();
    assert_eq!(priced.amount, 10_999);
    assert_eq!(priced.currency, currency("USD"));
    assert_eq!(priced.description, "2 × Product pr_a, Product pr_b");
    assert_eq!(priced.items[0].unit_amount, 4500);
    let custom = request(json!({"amount": 800, "description": "Deposit"}))
        .price(&[], currency("JPY"))
        .unwrap();
    assert_eq!(
        (custom.amount, custom.currency, custom.description.as_str()),
        (800, currency("JPY"), "Deposit")
    );
}

#[test]
fn bad_requests_are_refused_with_a_code() {
    let products = [
        product("pr_a", 4500, "USD"),
        product("pr_j", 500, "JPY"),
        product("pr_big", MAX_AMOUNT, "USD"),
    ];
    let code = |body| {
        request(body)
            .price(&products, currency("USD"))
            .unwrap_err()
            .code()
    };
    assert_eq!(code(json!({})), "invalid_items");
    assert_eq!(code(json!({"items": []})), "invalid_items");
    assert_eq!(
        code(json!({"items": [{"product_id": "pr_a", "quantity": 1}], "amount": 5})),
        "invalid_items"
    );
    assert_eq!(
        code(json!({"items": [{"product_id": "pr_a", "quantity": 0}]})),
        "invalid_items"
    );
    assert_eq!(
        code(json!({"items": [{"product_id": "pr_a", "quantity": 1000}]})),
        "invalid_items"
    );
    assert_eq!(
        code(
            json!({"items": [{"product_id": "pr_a", "quantity": 1}, {"product_id": "pr_a", "quantity": 1}]})
        ),
        "invalid_items"
    );
    assert_eq!(
        code(
            json!({"items": [{"product_id": "pr_a", "quantity": 1}, {"product_id": "pr_j", "quantity": 1}]})
        ),
        "mixed_currencies"
    );
    assert_eq!(
        code(json!({"items": [{"product_id": "pr_big", "quantity": 2}]})),
        "invalid_amount"
    );
    assert_eq!(
        code(json!({"items": [{"product_id": "pr_nope", "quantity": 1}]})),
        "unknown_product"
    );
    assert_eq!(
        code(json!({"items": [{"product_id": "pr_a", "quantity": 1}], "currency": "usd"})),
        "invalid_items"
    );
    assert_eq!(code(json!({"amount": 500})), "invalid_name");
    assert_eq!(
        code(json!({"amount": -5, "description": "x"})),
        "invalid_amount"
    );
    assert_eq!(
        code(json!({"amount": 5, "description": "x", "currency": "XAU"})),
        "invalid_currency"
    );
    let too_many: Vec<_> = (0..101)
        .map(|i| json!({"product_id": format!("pr_{i}"), "quantity": 1}))
        .collect();
    assert_eq!(code(json!({"items": too_many})), "invalid_items");
    assert_eq!(
        request(json!({"amount": 5, "description": "x", "expires_in_minutes": 29}))
            .link_minutes()
            .unwrap_err()
            .code(),
        "invalid_expiry"
    );
    assert_eq!(
        request(json!({"amount": 5, "description": "x", "expires_in_minutes": 1441}))
            .link_minutes()
            .unwrap_err()
            .code(),
        "invalid_expiry"
    );
    assert_eq!(
        request(json!({"amount": 5, "description": "x"}))
            .link_minutes()
            .unwrap(),
        1440
    );
}

#[test]
fn a_payment_moves_once_and_never_back() {
    use PaymentStatus::*;
    let after = |from: PaymentStatus, outcome: SessionOutcome| {
        let (to, allowed) = outcome.transition();
        allowed.contains(&from).then_some(to)
    };
    assert_eq!(after(Open, SessionOutcome::Paid), Some(Paid));
    assert_eq!(
        after(Paid, SessionOutcome::Paid),
        None,
        "a repeated completed"
    );
    assert_eq!(
        after(Paid, SessionOutcome::Expired),
        None,
        "a late expired never undoes paid"
    );
    assert_eq!(after(Open, SessionOutcome::Processing), Some(Processing));
    assert_eq!(after(Processing, SessionOutcome::Paid), Some(Paid));
    assert_eq!(after(Processing, SessionOutcome::Failed), Some(Failed));
    assert_eq!(after(Processing, SessionOutcome::Expired), None);
    assert_eq!(after(Failed, SessionOutcome::Paid), None);
    assert_eq!(after(Expired, SessionOutcome::Paid), None);
}

#[test]
fn payment_ids_from_a_client_key_are_stable_and_recognised() {
    let a = payment_id_for_key("acme", "cu_1", "key-1");
    assert_eq!(a, payment_id_for_key("acme", "cu_1", "key-1"));
    assert_ne!(a, payment_id_for_key("acme", "cu_2", "key-1"));
    assert!(is_payment_id(&a) && is_payment_id(&payment_id()));
    assert!(!is_payment_id("pay_") && !is_payment_id("pay_kxyz"));
}

proptest! {
    #[test]
    fn formatting_keeps_every_digit(amount in 0i64..=MAX_AMOUNT, code in prop::sample::select(vec!["USD", "JPY", "KWD"])) {
        let text = currency(code).format(amount);
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        let expected = amount.to_string();
        prop_assert_eq!(digits.trim_start_matches('0'), expected.trim_start_matches('0'));
    }
}
