//! Templates belong to the WhatsApp Business Account: created without naming a channel
//! when the tenant has one account, sendable from every phone number of the account.

use chrono::{Duration, Utc};
use integration_tests::{
    FixtureVars, Reply, TestChannel, connect_for, fixture, post_json, post_meta, sandbox_outbox,
    stack, token, unique_meta_id, unique_tenant,
};
use serde_json::{Value, json};
use shared::domain::conversation::conversation_id;
use shared::domain::ids::ChannelId;

fn template_body(channel_id: Option<&str>, name: &str) -> Value {
    let mut body = json!({
        "name": name, "language": "en_US", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hi {{1}}, your order ships today."}]
    });
    if let Some(id) = channel_id {
        body["channel_id"] = id.into();
    }
    body
}

async fn create(admin_of: &TestChannel, channel_id: Option<&str>, name: &str) -> Reply {
    post_json(
        "/templates",
        Some(&admin_of.admin()),
        &template_body(channel_id, name),
    )
    .await
}

/// A customer wrote two days ago (templates only): the conversation id.
async fn customer_wrote_days_ago(channel: &TestChannel) -> String {
    let mut vars = FixtureVars::new(channel, false);
    vars.timestamp = (Utc::now() - Duration::hours(48)).timestamp();
    let reply = post_meta("whatsapp", &vars.render(&fixture("whatsapp/text.json"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    conversation_id(&ChannelId::parse(&channel.id).unwrap(), &vars.sender)
}

async fn send_template(channel: &TestChannel, conversation: &str, name: &str) -> Reply {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/conversations/{conversation}/messages",
            stack().base_url
        ))
        .bearer_auth(token(&channel.tenant, "agent"))
        .json(&json!({"kind": "template", "template": {
            "name": name, "language": "en_US", "parameters": ["Ana"]}}))
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

#[tokio::test]
async fn two_phone_numbers_of_one_business_account_both_send_an_approved_template() {
    let tenant = unique_tenant();
    let waba = unique_meta_id();
    let first = connect_for(&tenant, "whatsapp", json!({"waba_id": waba})).await;
    let second = connect_for(&tenant, "whatsapp", json!({"waba_id": waba})).await;
    let created = create(&first, Some(&first.id), "order_update").await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["status"], "APPROVED");
    assert_eq!(created.body["waba_id"], waba.as_str());
    let again = create(&second, Some(&second.id), "order_update").await;
    assert_eq!(
        (again.status, again.code()),
        (409, "template_exists"),
        "one template per account, name and language"
    );

    for channel in [&first, &second] {
        let conversation = customer_wrote_days_ago(channel).await;
        let reply = send_template(channel, &conversation, "order_update").await;
        assert_eq!(reply.status, 202, "{}", reply.text);
        let sent: Vec<Value> = sandbox_outbox(&channel.external_id)
            .into_iter()
            .filter(|i| i["status"] == 200)
            .collect();
        assert_eq!(sent.len(), 1, "sent from its own number");
        assert_eq!(sent[0]["body"]["template"]["name"], "order_update");
    }
}

#[tokio::test]
async fn a_template_without_channel_id_goes_to_the_only_business_account_and_several_need_one() {
    let tenant = unique_tenant();
    // No WhatsApp channel yet (a WhatsApp channel always has its WABA: it is proven at
    // connection).
    let page = connect_for(&tenant, "messenger", json!({})).await;
    let reply = create(&page, None, "no_account").await;
    assert_eq!((reply.status, reply.code()), (422, "waba_id_required"));

    let waba = unique_meta_id();
    let first = connect_for(&tenant, "whatsapp", json!({"waba_id": waba})).await;
    connect_for(&tenant, "whatsapp", json!({"waba_id": waba})).await;
    let reply = create(&first, None, "welcome_back").await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["waba_id"], waba.as_str());

    let other = unique_meta_id();
    let second_account = connect_for(&tenant, "whatsapp", json!({"waba_id": other})).await;
    let reply = create(&first, None, "second_offer").await;
    assert_eq!((reply.status, reply.code()), (422, "channel_required"));
    let reply = create(&first, Some(&second_account.id), "second_offer").await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["waba_id"], other.as_str());
    assert_eq!(reply.body["channel_id"], second_account.id.as_str());
}
