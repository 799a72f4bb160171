//! `POST /conversations/{id}/read`: the unread count goes to 0 and the customer's latest
//! message is marked read at the provider; a provider failure never undoes the read.

use integration_tests::{
    FixtureVars, Reply, TestChannel, connect, connect_for, fixture, get, post_json, post_meta,
    post_wechat, sandbox_fail, sandbox_outbox, token, unique_tenant,
};
use serde_json::{Value, json};
use shared::domain::conversation::conversation_id;
use shared::domain::ids::ChannelId;

/// What a customer wrote.
struct Written {
    conversation: String,
    /// The provider id of the latest message.
    latest: String,
    /// The customer's provider id.
    customer: String,
}

/// The customer writes `count` messages, one second apart.
async fn customer_writes(channel: &TestChannel, provider: &str, count: u32) -> Written {
    let first = FixtureVars::new(channel, false);
    let mut latest = String::new();
    for i in 0..count {
        let mut vars = first.clone();
        vars.msg_id = format!("{}{i}", first.msg_id);
        vars.timestamp = first.timestamp - i64::from(count - i);
        let body = vars.render(&fixture(&format!("{provider}/text.json")));
        let reply = post_meta(provider, &body).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        latest = match provider {
            "whatsapp" => format!("wamid.HBgL{}A", vars.msg_id),
            _ => format!("m_{}", vars.msg_id),
        };
    }
    Written {
        conversation: conversation_id(&ChannelId::parse(&channel.id).unwrap(), &first.sender),
        latest,
        customer: first.sender,
    }
}

async fn read(tenant: &str, conversation: &str) -> Reply {
    post_json(
        &format!("/conversations/{conversation}/read"),
        Some(&token(tenant, "agent")),
        &Value::Null,
    )
    .await
}

async fn unread(tenant: &str, conversation: &str) -> Value {
    let reply = get(
        &format!("/conversations/{conversation}"),
        Some(&token(tenant, "agent")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["unread_count"].clone()
}

#[tokio::test]
async fn reading_a_whatsapp_conversation_zeroes_it_and_marks_the_latest_wamid_read() {
    let channel = connect("whatsapp").await;
    let Written {
        conversation,
        latest,
        ..
    } = customer_writes(&channel, "whatsapp", 2).await;
    assert_eq!(unread(&channel.tenant, &conversation).await, 2);

    let reply = read(&channel.tenant, &conversation).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body,
        json!({"unread_count": 0, "provider_receipt": "sent"})
    );
    assert_eq!(unread(&channel.tenant, &conversation).await, 0);

    let receipts: Vec<Value> = sandbox_outbox(&channel.external_id);
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(
        receipts[0]["body"],
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": latest})
    );
    assert_eq!(receipts[0]["status"], 200);

    let messages = get(
        &format!("/conversations/{conversation}/messages"),
        Some(&token(&channel.tenant, "agent")),
    )
    .await;
    assert!(
        messages.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["direction"] != "system"),
        "reading writes no system message: {}",
        messages.text
    );
}

#[tokio::test]
async fn reading_a_messenger_conversation_sends_mark_seen_to_the_customer() {
    let channel = connect("messenger").await;
    let written = customer_writes(&channel, "messenger", 1).await;
    let conversation = written.conversation;
    assert_eq!(unread(&channel.tenant, &conversation).await, 1);

    let reply = read(&channel.tenant, &conversation).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["provider_receipt"], "sent");
    let receipts = sandbox_outbox(&channel.external_id);
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(
        receipts[0]["body"],
        json!({"recipient": {"id": written.customer}, "sender_action": "mark_seen"})
    );
    assert_eq!(receipts[0]["to"], written.customer.as_str());
    assert_eq!(unread(&channel.tenant, &conversation).await, 0);
}

#[tokio::test]
async fn a_provider_answering_500_still_reads_the_conversation() {
    let channel = connect("whatsapp").await;
    let conversation = customer_writes(&channel, "whatsapp", 1).await.conversation;
    sandbox_fail(&channel.external_id, vec![json!({"status": 500})]);

    let reply = read(&channel.tenant, &conversation).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body,
        json!({"unread_count": 0, "provider_receipt": "failed"})
    );
    assert_eq!(unread(&channel.tenant, &conversation).await, 0);
    let receipts = sandbox_outbox(&channel.external_id);
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0]["injected"], true);
}

#[tokio::test]
async fn wechat_is_read_without_a_receipt() {
    let channel = connect("wechat").await;
    let vars = FixtureVars::new(&channel, true);
    let reply = post_wechat(&channel, &vars.render(&fixture("wechat/text.xml"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let conversation = conversation_id(&ChannelId::parse(&channel.id).unwrap(), &vars.sender);
    assert_eq!(unread(&channel.tenant, &conversation).await, 1);

    let reply = read(&channel.tenant, &conversation).await;
    assert_eq!(
        (reply.status, &reply.body),
        (
            200,
            &json!({"unread_count": 0, "provider_receipt": "not_supported"})
        )
    );
    assert_eq!(unread(&channel.tenant, &conversation).await, 0);
}

#[tokio::test]
async fn another_tenants_conversation_is_404_and_stays_unread() {
    let channel = connect_for(&unique_tenant(), "whatsapp", json!({})).await;
    let conversation = customer_writes(&channel, "whatsapp", 2).await.conversation;
    let other = unique_tenant();

    for id in [conversation.as_str(), "cv_unknown", "not-a-conversation"] {
        let reply = read(&other, id).await;
        assert_eq!((reply.status, reply.code()), (404, "not_found"), "{id}");
        assert!(!reply.text.contains(&channel.external_id), "{}", reply.text);
    }
    let reply = read(&channel.tenant, "cv_unknown").await;
    assert_eq!(reply.status, 404);
    assert_eq!(unread(&channel.tenant, &conversation).await, 2);
    assert!(sandbox_outbox(&channel.external_id).is_empty());
}
