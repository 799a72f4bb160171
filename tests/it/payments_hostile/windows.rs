//! The window rules decide whether a link may go (SPEC §4): WhatsApp outside 24 h only as
//! a template, Messenger and Instagram tagged by a human up to 7 days where allowed,
//! WeChat within its window hours and 5 replies per customer message. A link the channel
//! will not take is refused before Stripe is asked, and nothing is written.

use integration_tests::{connect_for, unique_meta_id, unique_tenant};
use serde_json::{Value, json};

use super::{Buyer, Shop, accepted_to, post_json};

/// A shop on a new channel of `kind` with `extra` connection fields, and one product.
async fn shop_on(kind: &str, extra: Value) -> Shop {
    let channel = connect_for(&unique_tenant(), kind, extra).await;
    let shop = Shop::configure(channel, kind, "USD").await;
    shop.product("Cleaning", 4_500, "USD").await;
    shop
}

/// Asserts a payment request is a 422 with `code` that leaves everything as it was,
/// Stripe not asked.
async fn refused_before_stripe(shop: &Shop, buyer: &Buyer, body: &Value, code: &str) {
    let before = shop.snapshot(buyer).await;
    let reply = shop.request(&buyer.id, body).await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, code),
        "{body}: {}",
        reply.text
    );
    let after = shop.snapshot(buyer).await;
    assert_eq!(
        after.stripe_requests, before.stripe_requests,
        "{body}: Stripe was asked for a session"
    );
    assert_eq!(after, before, "{body}: something was written");
}

#[tokio::test]
async fn a_template_that_cannot_go_is_refused_before_stripe_and_writes_nothing() {
    let shop = shop_on("whatsapp", json!({"waba_id": unique_meta_id()})).await;
    let template = post_json(
        "/templates",
        Some(&shop.admin()),
        &json!({"channel_id": shop.channel.id, "name": "pay_link", "language": "en_US",
                "category": "UTILITY", "components": [{"type": "BODY", "text": "Hi {{1}}, pay here: {{2}}"}]}),
    )
    .await;
    assert_eq!(template.body["status"], "APPROVED", "{}", template.text);
    let buyer = shop.buyer(30).await;
    let with =
        |template: Value| json!({"amount": 500, "description": "Deposit", "template": template});
    refused_before_stripe(
        &shop,
        &buyer,
        &with(json!({"name": "no_such", "language": "en_US", "parameters": ["Ana"]})),
        "unknown_template",
    )
    .await;
    refused_before_stripe(
        &shop,
        &buyer,
        &with(json!({"name": "pay_link", "language": "en_US", "parameters": ["Ana", "extra"]})),
        "template_parameters",
    )
    .await;
    refused_before_stripe(
        &shop,
        &buyer,
        &with(json!({"name": "pay_link", "language": "en_US", "parameters": []})),
        "template_parameters",
    )
    .await;
    assert!(accepted_to(&buyer.sender).is_empty());
}

#[tokio::test]
async fn messenger_instagram_and_wechat_outside_their_window_refuse_before_stripe() {
    let amount = json!({"amount": 500, "description": "Deposit"});
    let messenger = shop_on("messenger", json!({})).await;
    let week_ago = messenger.buyer(8 * 24).await;
    refused_before_stripe(&messenger, &week_ago, &amount, "window_closed").await;

    let instagram = shop_on("instagram", json!({})).await;
    let day_ago = instagram.buyer(30).await;
    refused_before_stripe(&instagram, &day_ago, &amount, "window_closed").await;

    let wechat = shop_on("wechat", json!({})).await;
    let day_ago = wechat.buyer(30).await;
    refused_before_stripe(&wechat, &day_ago, &amount, "window_closed").await;
}

/// WeChat takes 5 customer-service messages per customer message: the sixth is refused,
/// a payment link included, before Stripe is asked.
#[tokio::test]
async fn wechat_past_its_reply_quota_refuses_the_link_before_stripe() {
    let shop = shop_on("wechat", json!({})).await;
    let buyer = shop.buyer(1).await;
    for i in 0..5 {
        let sent = post_json(
            &format!("/conversations/{}/messages", buyer.conversation),
            Some(&shop.agent()),
            &json!({"kind": "text", "text": format!("reply {i}")}),
        )
        .await;
        assert_eq!(sent.status, 202, "{}", sent.text);
    }
    refused_before_stripe(
        &shop,
        &buyer,
        &json!({"amount": 500, "description": "Deposit"}),
        "window_closed",
    )
    .await;
}

#[tokio::test]
async fn the_link_goes_where_the_channel_allows_it() {
    // Messenger between a day and a week: an agent's link goes tagged HUMAN_AGENT.
    let messenger = shop_on("messenger", json!({})).await;
    let buyer = messenger.buyer(30).await;
    let created = messenger
        .request(&buyer.id, &json!({"amount": 500, "description": "Deposit"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let sent = accepted_to(&buyer.sender);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["body"]["tag"], "HUMAN_AGENT", "{}", sent[0]);
    assert!(
        super::text_of(&sent[0]).ends_with(created.body["url"].as_str().unwrap()),
        "{}",
        sent[0]
    );

    // Instagram with the human-agent permission: the same.
    let instagram = shop_on("instagram", json!({"human_agent": true})).await;
    let buyer = instagram.buyer(30).await;
    let created = instagram
        .request(&buyer.id, &json!({"amount": 500, "description": "Deposit"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(accepted_to(&buyer.sender)[0]["body"]["tag"], "HUMAN_AGENT");

    // WeChat with a 48-hour window, 30 hours on.
    let wechat = shop_on("wechat", json!({"window_hours": 48})).await;
    let buyer = wechat.buyer(30).await;
    let created = wechat
        .request(&buyer.id, &json!({"amount": 500, "description": "Deposit"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(accepted_to(&buyer.sender).len(), 1);

    // WhatsApp inside the window: a template given is not needed, the text goes.
    let whatsapp = shop_on("whatsapp", json!({})).await;
    let buyer = whatsapp.buyer(23).await;
    let created = whatsapp
        .request(
            &buyer.id,
            &json!({"amount": 500, "description": "Deposit",
                    "template": {"name": "whatever", "language": "en_US", "parameters": []}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert!(accepted_to(&buyer.sender)[0]["body"]["text"]["body"].is_string());
}

/// A link text longer than the channel takes (Instagram: 1000 bytes; WhatsApp: 4096
/// characters) is a legitimate request with long product names: the link still goes (the
/// text shortened), or the request is refused before Stripe, never after.
#[tokio::test]
async fn a_link_text_over_the_channels_limit_is_not_found_out_after_stripe() {
    let shop = shop_on("instagram", json!({})).await;
    let mut long: Vec<Value> = Vec::new();
    for i in 0..5 {
        let name = format!("{i} {}", "Ünïcödé ñame ".repeat(14));
        long.push(shop.product(&name, 1_000, "USD").await);
    }
    let buyer = shop.buyer(1).await;
    let before = shop.snapshot(&buyer).await;
    let items: Vec<Value> = long
        .iter()
        .map(|p| json!({"product_id": p["id"], "quantity": 2}))
        .collect();
    let reply = shop.request(&buyer.id, &json!({"items": items})).await;
    if reply.status == 201 {
        let sent = accepted_to(&buyer.sender);
        assert_eq!(sent.len(), 1, "the link went");
        assert!(super::text_of(&sent[0]).contains(reply.body["url"].as_str().unwrap()));
    } else {
        assert_eq!(reply.status, 422, "{}", reply.text);
        assert_eq!(shop.snapshot(&buyer).await, before, "{}", reply.text);
    }
}

/// A WhatsApp customer known only by a username id (no phone number shared) cannot be
/// answered yet (`422 recipient_without_phone`, README): a payment link to them is
/// refused before Stripe is asked, and nothing is written.
#[tokio::test]
async fn a_whatsapp_customer_without_a_number_is_refused_before_stripe() {
    let shop = shop_on("whatsapp", json!({})).await;
    let vars = integration_tests::FixtureVars::new(&shop.channel, false);
    let body = vars.render(&integration_tests::fixture(
        "whatsapp/text_username_only.json",
    ));
    let ingested = integration_tests::post_meta("whatsapp", &body).await;
    assert_eq!(ingested.status, 200, "{}", ingested.text);
    let conversation = integration_tests::all_conversations(shop.tenant()).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let buyer = Buyer {
        id: shared::domain::conversation::customer_of_conversation(&conversation).unwrap(),
        conversation,
        sender: format!("US.{}", vars.sender),
    };
    refused_before_stripe(
        &shop,
        &buyer,
        &json!({"amount": 500, "description": "Deposit"}),
        "recipient_without_phone",
    )
    .await;
}
