//! Delivery statuses: forward only, kept until the message appears, failures explained.

use chrono::Utc;
use integration_tests::{
    FixtureVars, all_conversations, all_messages, connect, fixture, post_meta, stack,
};
use serde_json::json;
use shared::adapters::dynamo::DynamoStore;
use shared::domain::channel::{Channel, ChannelType};
use shared::domain::ids::{ChannelId, TenantId};
use shared::domain::inbound::InboundMessage;
use shared::domain::inbound::WebhookItem;
use shared::domain::message::{Direction, MessageKind};
use shared::ports::{InboundStore, Recorded};
use shared::service::ingest::ingest_items;

fn store() -> DynamoStore {
    let sdk = stack().settings.sdk_config();
    DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        stack().template.local_name("ChatTable").unwrap(),
    )
}

fn channel_of(c: &integration_tests::TestChannel, kind: ChannelType) -> Channel {
    Channel {
        id: ChannelId::parse(&c.id).unwrap(),
        tenant_id: TenantId::parse(&c.tenant).unwrap(),
        channel_type: kind,
        external_id: c.external_id.clone(),
        name: "test".into(),
        waba_id: None,
        human_agent: true,
        window_hours: 24,
        created_at: Utc::now(),
    }
}

fn outbound(customer: &str, provider_id: &str) -> InboundMessage {
    InboundMessage {
        provider_message_id: provider_id.to_owned(),
        customer: customer.to_owned(),
        customer_name: None,
        direction: Direction::Outbound,
        kind: MessageKind::Text,
        text: Some("Your order has shipped".into()),
        media: None,
        reply_to: None,
        timestamp: Some(Utc::now()),
        opens_window: false,
        raw: json!({}),
        identity: Default::default(),
        standby: false,
    }
}

/// An outbound message recorded once the provider accepted it, through the same use case
/// as an echo (so a status that arrived first is applied).
async fn record_outbound(
    channel: &Channel,
    customer: &str,
    provider_id: &str,
) -> shared::ports::MessageRef {
    let item = WebhookItem::Message(outbound(customer, provider_id));
    let ingested = ingest_items(&store(), channel, vec![item], Utc::now()).await;
    assert!(ingested.error.is_none());
    assert_eq!(ingested.report.stored, 1);
    let conversation = shared::domain::conversation::conversation_id(&channel.id, customer);
    let messages = all_messages(channel.tenant_id.as_str(), &conversation).await;
    let m = messages
        .iter()
        .find(|m| m["provider_message_id"] == provider_id)
        .expect("recorded");
    shared::ports::MessageRef {
        message_id: m["id"].as_str().unwrap().to_owned(),
        conversation_id: conversation,
        cancels_scheduled: false,
    }
}

#[tokio::test]
async fn messenger_echo_moves_to_delivered_then_read_and_never_back() {
    let channel = connect("messenger").await;
    let vars = FixtureVars::new(&channel, false);
    let echo = post_meta(
        "messenger",
        &vars.render(&fixture("messenger/echo_other_app.json")),
    )
    .await;
    assert_eq!(echo.body["stored"], 1, "{}", echo.text);
    let conversation = all_conversations(&channel.tenant).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let status =
        || async { all_messages(&channel.tenant, &conversation).await[0]["status"].clone() };
    assert_eq!(status().await, "sent");

    let mut delivery = vars.clone();
    delivery.ref_id = format!("m_{}", vars.msg_id);
    delivery.timestamp += 1;
    let body = delivery.render(&fixture("messenger/delivery.json"));
    assert_eq!(post_meta("messenger", &body).await.status, 200);
    assert_eq!(status().await, "delivered");

    let mut read = vars.clone();
    read.timestamp += 2;
    assert_eq!(
        post_meta("messenger", &read.render(&fixture("messenger/read.json")))
            .await
            .status,
        200
    );
    assert_eq!(status().await, "read");

    // A late delivery never moves it back.
    assert_eq!(post_meta("messenger", &body).await.status, 200);
    assert_eq!(status().await, "read");
}

#[tokio::test]
async fn a_failure_before_the_send_is_recorded_is_kept_then_applied_with_a_hint() {
    let channel = connect("whatsapp").await;
    let c = channel_of(&channel, ChannelType::Whatsapp);
    let vars = FixtureVars::new(&channel, false);
    let failed = post_meta(
        "whatsapp",
        &vars.render(&fixture("whatsapp/status_failed.json")),
    )
    .await;
    assert_eq!(
        (failed.status, failed.body["statuses"].as_u64()),
        (200, Some(1))
    );
    assert!(
        all_conversations(&channel.tenant).await.is_empty(),
        "a status alone creates nothing"
    );

    let at = record_outbound(&c, &vars.sender, &vars.ref_id).await;
    let messages = all_messages(&channel.tenant, &at.conversation_id).await;
    let sent = messages
        .iter()
        .find(|m| m["id"] == at.message_id.as_str())
        .unwrap();
    assert_eq!(sent["status"], "failed");
    assert_eq!(sent["error"]["code"], "131047");
    assert!(sent["error"]["hint"].as_str().unwrap().contains("template"));
    let system = messages
        .iter()
        .find(|m| m["direction"] == "system")
        .expect("a system message");
    assert_eq!(system["kind"], "system");
    assert!(system["text"].as_str().unwrap().contains("not delivered"));

    // read beats failed; delivered after read changes nothing.
    assert_eq!(
        post_meta(
            "whatsapp",
            &vars.render(&fixture("whatsapp/status_read.json"))
        )
        .await
        .status,
        200
    );
    let late = post_meta(
        "whatsapp",
        &vars.render(&fixture("whatsapp/status_delivered.json")),
    )
    .await;
    assert_eq!(late.status, 200);
    let messages = all_messages(&channel.tenant, &at.conversation_id).await;
    let sent = messages
        .iter()
        .find(|m| m["id"] == at.message_id.as_str())
        .unwrap();
    assert_eq!(sent["status"], "read");
}

#[tokio::test]
async fn whatsapp_statuses_of_a_recorded_message_only_move_forward() {
    let channel = connect("whatsapp").await;
    let c = channel_of(&channel, ChannelType::Whatsapp);
    let vars = FixtureVars::new(&channel, false);
    let at = record_outbound(&c, &vars.sender, &vars.ref_id).await;
    let status = || async {
        let messages = all_messages(&channel.tenant, &at.conversation_id).await;
        messages
            .iter()
            .find(|m| m["id"] == at.message_id.as_str())
            .unwrap()["status"]
            .clone()
    };
    for (file, expected) in [
        ("whatsapp/status_delivered.json", "delivered"),
        ("whatsapp/status_sent.json", "delivered"),
        ("whatsapp/status_read.json", "read"),
        ("whatsapp/status_failed.json", "read"),
        ("whatsapp/status_delivered.json", "read"),
    ] {
        let reply = post_meta("whatsapp", &vars.render(&fixture(file))).await;
        assert_eq!(reply.status, 200, "{file}");
        assert_eq!(status().await, expected, "after {file}");
    }
    // A repeated recording of the same provider id is a duplicate.
    let again = store()
        .record_message(&c, &outbound(&vars.sender, &vars.ref_id), Utc::now())
        .await;
    assert_eq!(again.unwrap(), Recorded::Duplicate);
}

#[tokio::test]
async fn status_pricing_and_conversation_objects_are_kept_on_the_message() {
    let channel = connect("whatsapp").await;
    let c = channel_of(&channel, ChannelType::Whatsapp);
    let vars = FixtureVars::new(&channel, false);
    let at = record_outbound(&c, &vars.sender, &vars.ref_id).await;
    let reply = post_meta(
        "whatsapp",
        &vars.render(&fixture("whatsapp/status_sent.json")),
    )
    .await;
    assert_eq!(reply.status, 200);
    let messages = all_messages(&channel.tenant, &at.conversation_id).await;
    let m = messages
        .iter()
        .find(|m| m["id"] == at.message_id.as_str())
        .unwrap();
    assert_eq!(
        m["raw"]["pricing"],
        json!({"billable": true, "pricing_model": "PMP", "category": "utility", "type": "regular"})
    );
    assert_eq!(
        m["raw"]["conversation"]["id"],
        "6ceb9d929c0b9e7a8b2f5c1d3e4f6a7b"
    );
    assert_eq!(m["raw"]["conversation"]["origin"]["type"], "utility");
    assert_eq!(
        m["raw"]["conversation"]["expiration_timestamp"],
        "1749502800"
    );
}

#[tokio::test]
async fn pricing_that_comes_before_the_message_is_recorded_is_kept() {
    let channel = connect("whatsapp").await;
    let c = channel_of(&channel, ChannelType::Whatsapp);
    let vars = FixtureVars::new(&channel, false);
    let reply = post_meta(
        "whatsapp",
        &vars.render(&fixture("whatsapp/status_sent.json")),
    )
    .await;
    assert_eq!(reply.status, 200);
    let at = record_outbound(&c, &vars.sender, &vars.ref_id).await;
    let messages = all_messages(&channel.tenant, &at.conversation_id).await;
    let m = messages
        .iter()
        .find(|m| m["id"] == at.message_id.as_str())
        .unwrap();
    assert_eq!(m["status"], "sent");
    assert_eq!(m["raw"]["pricing"]["pricing_model"], "PMP");
}

#[tokio::test]
async fn a_played_voice_message_is_read_and_shows_when_it_was_played() {
    let channel = connect("whatsapp").await;
    let c = channel_of(&channel, ChannelType::Whatsapp);
    let vars = FixtureVars::new(&channel, false);
    let at = record_outbound(&c, &vars.sender, &vars.ref_id).await;
    let reply = post_meta(
        "whatsapp",
        &vars.render(&fixture("whatsapp/status_played.json")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let messages = all_messages(&channel.tenant, &at.conversation_id).await;
    assert_eq!(messages.len(), 1, "a play is not a message");
    let m = &messages[0];
    assert_eq!(m["status"], "read");
    assert!(m["raw"]["lifecycle"]["played_at"].is_string(), "{m}");
}
