//! Webhooks larger than what can be stored as it came: every field is bounded (cut and
//! marked), a message the store cannot take never holds back the others, and what is kept
//! for messages not seen yet is bounded and expires.

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{
    FixtureVars, TestChannel, all_messages, connect, fixture, post_meta, post_wechat, stack,
};
use serde_json::{Value, json};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::keys;
use shared::domain::channel::{Channel, ChannelType};
use shared::domain::conversation::conversation_id;
use shared::domain::ids::{ChannelId, TenantId};
use shared::domain::inbound::{InboundMessage, WebhookItem};
use shared::domain::limits::{
    MAX_FILENAME_BYTES, MAX_NAME_BYTES, MAX_RECEIPT_MIDS, MAX_TEXT_BYTES,
};
use shared::domain::message::{Direction, MessageKind};
use shared::service::ingest::ingest_items;

const KIB: usize = 1024;

fn conversation_of(channel: &TestChannel, customer: &str) -> String {
    conversation_id(&ChannelId::parse(&channel.id).unwrap(), customer)
}

/// Every stored item of a conversation's partition (messages and provider id items), read
/// straight from the table.
async fn partition(channel: &TestChannel, customer: &str) -> Vec<HashMap<String, AttributeValue>> {
    let sdk = stack().settings.sdk_config();
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let tenant = TenantId::parse(&channel.tenant).unwrap();
    let pk = keys::messages_pk(&tenant, &conversation_of(channel, customer));
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .query()
            .table_name(stack().template.local_name("ChatTable").unwrap())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
            .set_exclusive_start_key(start)
            .consistent_read(true)
            .send()
            .await
            .expect("query the partition");
        items.extend(out.items().iter().cloned());
        match out.last_evaluated_key {
            Some(k) => start = Some(k),
            None => return items,
        }
    }
}

fn stored_messages(
    items: &[HashMap<String, AttributeValue>],
) -> Vec<&HashMap<String, AttributeValue>> {
    items
        .iter()
        .filter(|i| {
            i.get(keys::ENTITY)
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                == Some("message")
        })
        .collect()
}

fn text_of<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn by_provider_id<'a>(messages: &'a [Value], id: &str) -> &'a Value {
    messages
        .iter()
        .find(|m| m["provider_message_id"] == id)
        .unwrap_or_else(|| panic!("message {id} stored"))
}

fn whatsapp_message(customer: &str, id: &str, ts: i64, kind: &str, content: Value) -> Value {
    let mut m = json!({"from": customer, "id": id, "timestamp": ts.to_string(), "type": kind});
    m[kind] = content;
    m
}

fn whatsapp_body(account: &str, contacts: Vec<Value>, messages: Vec<Value>) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": account},
            "contacts": contacts,
            "messages": messages,
        }}]}],
    })
    .to_string()
}

#[tokio::test]
async fn oversize_whatsapp_fields_are_stored_cut_and_marked_and_the_next_message_of_the_customer_too()
 {
    let channel = connect("whatsapp").await;
    let vars = FixtureVars::new(&channel, false);
    let ana = vars.sender.clone();
    let ben = format!("{}1", vars.sender);
    let ts = vars.timestamp;
    let id = |n: &str| format!("wamid.{}{n}", vars.msg_id);
    let big_url = format!("https://lookaside.fbsbx.com/x?{}", "u".repeat(KIB * KIB));
    let body = whatsapp_body(
        &channel.external_id,
        vec![
            json!({"profile": {"name": "N".repeat(500 * KIB)}, "wa_id": ana}),
            json!({"profile": {"name": "Ben"}, "wa_id": ben}),
        ],
        vec![
            whatsapp_message(
                &ana,
                &id("A1"),
                ts - 5,
                "text",
                json!({"body": "é".repeat(200 * KIB)}),
            ),
            whatsapp_message(
                &ana,
                &id("A2"),
                ts - 4,
                "text",
                json!({"body": "second message"}),
            ),
            whatsapp_message(
                &ben,
                &id("B1"),
                ts - 3,
                "image",
                json!({
                    "caption": "c".repeat(KIB * KIB), "mime_type": "image/jpeg",
                    "sha256": "mG4t8YzQe1Lp0Vb6cR2nJ7xK9sW3dF5hA1uE8iO0yTq=", "id": "1048593715822347",
                }),
            ),
            whatsapp_message(
                &ben,
                &id("B2"),
                ts - 2,
                "document",
                json!({
                    "caption": "Invoice", "filename": format!("{}.pdf", "f".repeat(KIB * KIB)),
                    "mime_type": "application/pdf", "id": "2048593715822347", "url": big_url,
                }),
            ),
        ],
    );
    assert!(body.len() > 3 * KIB * KIB, "the delivery is over 3 MiB");
    let reply = post_meta("whatsapp", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["stored"], 4, "{}", reply.text);
    // Both of Ana's messages carry her 500 KiB profile name.
    assert_eq!(reply.body["truncated"], 4, "{}", reply.text);

    let ana_messages = all_messages(&channel.tenant, &conversation_of(&channel, &ana)).await;
    let first = by_provider_id(&ana_messages, &id("A1"));
    let text = first["text"].as_str().unwrap();
    assert!(text.len() <= MAX_TEXT_BYTES && text.len() >= MAX_TEXT_BYTES - 1);
    assert!(
        text.chars().all(|c| c == 'é'),
        "cut at a character boundary"
    );
    assert_eq!(first["raw"]["truncated"], true);
    assert_eq!(
        by_provider_id(&ana_messages, &id("A2"))["text"],
        "second message"
    );

    let items = partition(&channel, &ana).await;
    let stored = stored_messages(&items);
    let cut = stored
        .iter()
        .find(|i| text_of(i, "provider_message_id") == Some(&id("A1")))
        .unwrap();
    assert_eq!(cut.get("truncated"), Some(&AttributeValue::Bool(true)));
    let fields = cut["truncated_fields"].as_l().unwrap();
    assert!(fields.contains(&AttributeValue::S("text".into())));
    assert!(fields.contains(&AttributeValue::S("customer_name".into())));

    let conversations = integration_tests::all_conversations(&channel.tenant).await;
    let ana_conversation = conversations
        .iter()
        .find(|c| c["id"] == conversation_of(&channel, &ana).as_str())
        .unwrap();
    let name = ana_conversation["customer"]["name"]
        .as_str()
        .or(ana_conversation["customer_name"].as_str())
        .unwrap_or_default();
    assert!(name.len() <= MAX_NAME_BYTES, "profile name cut");

    let ben_items = partition(&channel, &ben).await;
    let ben_stored = stored_messages(&ben_items);
    let image = ben_stored
        .iter()
        .find(|i| text_of(i, "provider_message_id") == Some(&id("B1")))
        .unwrap();
    assert_eq!(text_of(image, "text").unwrap().len(), MAX_TEXT_BYTES);
    assert_eq!(
        text_of(image, "media_provider_id"),
        Some("1048593715822347")
    );
    let document = ben_stored
        .iter()
        .find(|i| text_of(i, "provider_message_id") == Some(&id("B2")))
        .unwrap();
    assert_eq!(
        text_of(document, "media_filename").unwrap().len(),
        MAX_FILENAME_BYTES
    );
    assert_eq!(text_of(document, "media_url"), None, "a cut URL is dropped");
    assert_eq!(
        text_of(document, "media_provider_id"),
        Some("2048593715822347")
    );

    // A re-delivery stores nothing twice.
    let again = post_meta("whatsapp", &body).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["duplicates"], 4, "{}", again.text);
}

#[tokio::test]
async fn an_account_id_too_long_to_be_a_key_is_acknowledged_as_unrouted() {
    let channel = connect("whatsapp").await;
    let vars = FixtureVars::new(&channel, false);
    let mut body: Value =
        serde_json::from_str(&vars.render(&fixture("whatsapp/text.json"))).unwrap();
    body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] =
        json!("1".repeat(500 * KIB));
    let reply = post_meta("whatsapp", &body.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["unrouted"], 1, "{}", reply.text);
}

#[tokio::test]
async fn an_oversize_messenger_text_and_attachment_url_are_stored_cut_and_the_next_message_too() {
    let channel = connect("messenger").await;
    let vars = FixtureVars::new(&channel, false);
    let ms = vars.timestamp * 1000;
    let event = |mid: &str, message: Value, at: i64| {
        let mut message = message;
        message["mid"] = mid.into();
        json!({"sender": {"id": vars.sender}, "recipient": {"id": channel.external_id},
               "timestamp": at, "message": message})
    };
    let body = json!({"object": "page", "entry": [{"id": channel.external_id, "time": ms, "messaging": [
        event("m_big", json!({"text": "t".repeat(400 * KIB)}), ms - 3000),
        event("m_url", json!({"attachments": [{"type": "image", "payload": {
            "url": format!("https://scontent.xx.fbcdn.net/v/x.jpg?{}", "q".repeat(KIB * KIB))}}]}), ms - 2000),
        event("m_next", json!({"text": "still here"}), ms - 1000),
    ]}]})
    .to_string();
    let reply = post_meta("messenger", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["stored"], 3, "{}", reply.text);
    let messages = all_messages(&channel.tenant, &conversation_of(&channel, &vars.sender)).await;
    assert_eq!(
        by_provider_id(&messages, "m_big")["text"]
            .as_str()
            .unwrap()
            .len(),
        MAX_TEXT_BYTES
    );
    assert_eq!(by_provider_id(&messages, "m_next")["text"], "still here");
    let items = partition(&channel, &vars.sender).await;
    let url_item = stored_messages(&items)
        .into_iter()
        .find(|i| text_of(i, "provider_message_id") == Some("m_url"))
        .unwrap();
    assert_eq!(text_of(url_item, "media_url"), None);
    assert_eq!(url_item.get("truncated"), Some(&AttributeValue::Bool(true)));
}

#[tokio::test]
async fn a_wechat_text_over_the_text_limit_is_stored_cut_and_marked() {
    let channel = connect("wechat").await;
    let vars = FixtureVars::new(&channel, true);
    let xml = vars.render(&fixture("wechat/text.xml")).replacen(
        "<Content><![CDATA[",
        &format!("<Content><![CDATA[{}", "字".repeat(20 * KIB)),
        1,
    );
    assert!(
        xml.contains(&"字".repeat(10)),
        "the fixture has a CDATA content"
    );
    let reply = post_wechat(&channel, &xml).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let items = partition(&channel, &vars.sender).await;
    let stored = stored_messages(&items);
    assert_eq!(stored.len(), 1);
    let text = text_of(stored[0], "text").unwrap();
    assert!(text.len() <= MAX_TEXT_BYTES && text.starts_with('字'));
    assert_eq!(
        stored[0].get("truncated"),
        Some(&AttributeValue::Bool(true))
    );
}

#[tokio::test]
async fn a_delivery_receipt_naming_1000_unknown_messages_writes_a_bounded_number_of_expiring_items()
{
    let channel = connect("messenger").await;
    let vars = FixtureVars::new(&channel, false);
    let ms = vars.timestamp * 1000;
    let mids: Vec<String> = (0..1000)
        .map(|i| format!("m_unknown_{i}_{}", vars.msg_id))
        .collect();
    let body = json!({"object": "page", "entry": [{"id": channel.external_id, "time": ms, "messaging": [{
        "sender": {"id": vars.sender}, "recipient": {"id": channel.external_id}, "timestamp": ms,
        "delivery": {"mids": mids, "watermark": ms},
    }]}]})
    .to_string();
    let started = Instant::now();
    let reply = post_meta("messenger", &body).await;
    let took = started.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.text);
    let items = partition(&channel, &vars.sender).await;
    assert!(
        !items.is_empty() && items.len() <= MAX_RECEIPT_MIDS,
        "{} items for one receipt",
        items.len()
    );
    let now = chrono::Utc::now().timestamp();
    for item in &items {
        assert_eq!(text_of(item, keys::ENTITY), Some("provider_message"));
        let expires: i64 = item
            .get(keys::EXPIRES_AT)
            .and_then(|v| v.as_n().ok())
            .expect("every kept status expires")
            .parse()
            .unwrap();
        assert!(expires > now && expires <= now + 8 * 24 * 3600);
    }
    eprintln!("a 1,000-mid receipt was answered in {took:?}");
}

#[tokio::test]
async fn a_kept_status_loses_its_expiry_once_its_message_is_recorded() {
    let test_channel = connect("messenger").await;
    let vars = FixtureVars::new(&test_channel, false);
    let mid = format!("m_later_{}", vars.msg_id);
    let ms = vars.timestamp * 1000;
    let body = json!({"object": "page", "entry": [{"id": test_channel.external_id, "time": ms, "messaging": [{
        "sender": {"id": vars.sender}, "recipient": {"id": test_channel.external_id}, "timestamp": ms,
        "delivery": {"mids": [mid], "watermark": ms},
    }]}]})
    .to_string();
    assert_eq!(post_meta("messenger", &body).await.status, 200);
    let kept = partition(&test_channel, &vars.sender).await;
    assert_eq!(kept.len(), 1);
    assert!(kept[0].contains_key(keys::EXPIRES_AT));

    let channel = Channel {
        id: ChannelId::parse(&test_channel.id).unwrap(),
        tenant_id: TenantId::parse(&test_channel.tenant).unwrap(),
        channel_type: ChannelType::Messenger,
        external_id: test_channel.external_id.clone(),
        name: "test".into(),
        waba_id: None,
        human_agent: true,
        window_hours: 24,
        created_at: chrono::Utc::now(),
    };
    let outbound = InboundMessage {
        provider_message_id: mid.clone(),
        customer: vars.sender.clone(),
        customer_name: None,
        direction: Direction::Outbound,
        kind: MessageKind::Text,
        text: Some("Your order has shipped".into()),
        media: None,
        reply_to: None,
        timestamp: Some(chrono::Utc::now()),
        opens_window: false,
        raw: json!({}),
        identity: Default::default(),
        standby: false,
    };
    let sdk = stack().settings.sdk_config();
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        stack().template.local_name("ChatTable").unwrap(),
    );
    let ingested = ingest_items(
        &store,
        &channel,
        vec![WebhookItem::Message(outbound)],
        chrono::Utc::now(),
    )
    .await;
    assert!(ingested.error.is_none());
    assert_eq!(ingested.report.stored, 1);
    let items = partition(&test_channel, &vars.sender).await;
    let mapping = items
        .iter()
        .find(|i| text_of(i, keys::ENTITY) == Some("provider_message"))
        .unwrap();
    assert!(mapping.contains_key("message_id"));
    assert!(
        !mapping.contains_key(keys::EXPIRES_AT),
        "a recorded message's id item never expires"
    );
}
