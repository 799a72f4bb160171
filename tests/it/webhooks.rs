//! Meta subscription handshake.

use integration_tests::{META_VERIFY_TOKEN, get};

#[tokio::test]
async fn meta_handshake_echoes_the_challenge_as_plain_text() {
    for provider in ["whatsapp", "messenger", "instagram"] {
        let path = format!(
            "/webhooks/{provider}?hub.mode=subscribe&hub.verify_token={META_VERIFY_TOKEN}&hub.challenge=1158201444"
        );
        let reply = get(&path, None).await;
        assert_eq!(reply.status, 200, "{provider}");
        assert_eq!(reply.text, "1158201444");
    }
}

#[tokio::test]
async fn meta_handshake_with_a_wrong_token_is_403() {
    let reply = get(
        "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        None,
    )
    .await;
    assert_eq!((reply.status, reply.code()), (403, "forbidden"));
    let reply = get("/webhooks/messenger", None).await;
    assert_eq!(reply.status, 403);
}

// ---- Customer identity, message lifecycle, standby and documented pushes (issue 11) ----

use chrono::Utc;
use integration_tests::{
    FixtureVars, TestChannel, all_conversations, all_messages, connect, fixture, post_meta,
    post_wechat, stack,
};
use serde_json::{Value, json};
use shared::adapters::dynamo::DynamoStore;
use shared::domain::channel::{Channel, ChannelType};
use shared::domain::ids::{ChannelId, TenantId};
use shared::domain::inbound::{InboundMessage, WebhookItem};
use shared::domain::message::{Direction, MessageKind};
use shared::ports::CustomerAliases;
use shared::service::ingest::ingest_items;

fn store() -> DynamoStore {
    let sdk = stack().settings.sdk_config();
    DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        stack().template.local_name("ChatTable").unwrap(),
    )
}

fn channel_of(c: &TestChannel, kind: ChannelType) -> Channel {
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

async fn post(provider: &str, vars: &FixtureVars, file: &str) -> Value {
    let reply = post_meta(provider, &vars.render(&fixture(file))).await;
    assert_eq!(reply.status, 200, "{file}: {}", reply.text);
    reply.body
}

/// The only conversation of a tenant and its messages.
async fn only_conversation(tenant: &str) -> (Value, Vec<Value>) {
    let conversations = all_conversations(tenant).await;
    assert_eq!(
        conversations.len(),
        1,
        "one conversation: {conversations:?}"
    );
    let c = conversations[0].clone();
    let messages = all_messages(tenant, c["id"].as_str().unwrap()).await;
    (c, messages)
}

#[tokio::test]
async fn a_whatsapp_user_with_only_a_username_id_is_stored_not_lost() {
    let channel = connect("whatsapp").await;
    let vars = FixtureVars::new(&channel, false);
    let body = post("whatsapp", &vars, "whatsapp/text_username_only.json").await;
    assert_eq!(
        (body["stored"].as_u64(), body["skipped"].as_u64()),
        (Some(1), Some(0))
    );
    let (c, messages) = only_conversation(&channel.tenant).await;
    assert_eq!(c["customer"]["external_id"], format!("US.{}", vars.sender));
    assert_eq!(c["customer"]["name"], "Sheena Nelson");
    assert_eq!(messages[0]["text"], "Hi, I have a username now");
}

#[tokio::test]
async fn a_username_customer_who_later_shares_the_number_stays_in_one_conversation() {
    let channel = connect("whatsapp").await;
    let vars = FixtureVars::new(&channel, false);
    post("whatsapp", &vars, "whatsapp/text_username_only.json").await;
    let mut later = vars.clone();
    later.msg_id = format!("{}B", vars.msg_id);
    later.timestamp += 5;
    post("whatsapp", &later, "whatsapp/text_with_user_id.json").await;
    // And a message with the number alone (the user id not sent) follows too.
    let mut bare = vars.clone();
    bare.msg_id = format!("{}C", vars.msg_id);
    bare.timestamp += 10;
    post("whatsapp", &bare, "whatsapp/text.json").await;
    let (c, messages) = only_conversation(&channel.tenant).await;
    assert_eq!(messages.len(), 3);
    assert_eq!(c["customer"]["external_id"], format!("US.{}", vars.sender));
}

#[tokio::test]
async fn the_number_and_its_username_id_land_in_the_same_conversation() {
    let channel = connect("whatsapp").await;
    let vars = FixtureVars::new(&channel, false);
    post("whatsapp", &vars, "whatsapp/text_with_user_id.json").await;
    let mut later = vars.clone();
    later.msg_id = format!("{}B", vars.msg_id);
    later.timestamp += 5;
    post("whatsapp", &later, "whatsapp/text_username_only.json").await;
    let (c, messages) = only_conversation(&channel.tenant).await;
    assert_eq!(messages.len(), 2);
    assert_eq!(c["customer"]["external_id"], vars.sender.as_str());
}

/// The send path's one call: Meta answered the template sent to `input` with another
/// `wa_id` (a Brazilian number without the ninth digit); the customer's reply and the
/// template's statuses come from that `wa_id`.
#[tokio::test]
async fn a_reply_from_the_wa_id_meta_answered_lands_in_the_started_conversation() {
    let channel = connect("whatsapp").await;
    let c = channel_of(&channel, ChannelType::Whatsapp);
    let input = format!("55119{}", &unique_digits()[..8]);
    let wa_id = format!("5511{}", &input[5..]);
    let answer = json!({"messaging_product": "whatsapp",
        "contacts": [{"input": input, "wa_id": wa_id}],
        "messages": [{"id": "wamid.TEMPLATE", "message_status": "accepted"}]});
    assert_eq!(
        shared::adapters::channels::whatsapp::webhook::whatsapp_answered_wa_id(&answer).as_deref(),
        Some(wa_id.as_str())
    );
    // The started conversation holds the template message (recorded under `input`).
    let template_id = format!("wamid.T{}", ulid::Ulid::new());
    let template = InboundMessage {
        provider_message_id: template_id.clone(),
        customer: input.clone(),
        customer_name: None,
        direction: Direction::Outbound,
        kind: MessageKind::Template,
        text: Some("Your order 42 has shipped".into()),
        media: None,
        reply_to: None,
        timestamp: Some(Utc::now()),
        opens_window: false,
        raw: json!({"template": {"name": "order_shipped"}}),
        identity: Default::default(),
        standby: false,
    };
    let ingested = ingest_items(
        &store(),
        &c,
        vec![WebhookItem::Message(template)],
        Utc::now(),
    )
    .await;
    assert!(ingested.error.is_none());
    let linked = store().alias_customer(&c, &wa_id, &input).await.unwrap();
    assert_eq!(linked, input);
    // Linking again (a retried send) changes nothing.
    assert_eq!(
        store().alias_customer(&c, &wa_id, &input).await.unwrap(),
        input
    );

    let mut vars = FixtureVars::new(&channel, false);
    vars.sender = wa_id.clone();
    vars.ref_id = template_id.clone();
    post("whatsapp", &vars, "whatsapp/status_delivered.json").await;
    post("whatsapp", &vars, "whatsapp/text.json").await;
    let (conversation, messages) = only_conversation(&channel.tenant).await;
    assert_eq!(conversation["customer"]["external_id"], input.as_str());
    assert_eq!(messages.len(), 2);
    let sent = messages
        .iter()
        .find(|m| m["provider_message_id"] == template_id.as_str())
        .unwrap();
    assert_eq!(sent["status"], "delivered");
    assert_eq!(conversation["window"]["mode"], "free_form");
}

fn unique_digits() -> String {
    format!("{:020}", ulid::Ulid::new().0 % 10u128.pow(20))
}

#[tokio::test]
async fn a_messenger_message_with_two_images_keeps_both_with_their_media() {
    let channel = connect("messenger").await;
    let vars = FixtureVars::new(&channel, false);
    let body = post("messenger", &vars, "messenger/attachments_two_images.json").await;
    assert_eq!(body["stored"], 2);
    let (_, messages) = only_conversation(&channel.tenant).await;
    let mut ids: Vec<&str> = messages
        .iter()
        .map(|m| m["provider_message_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mid = format!("m_{}", vars.msg_id);
    assert_eq!(ids, vec![mid.clone(), format!("{mid}#1")]);
    for m in &messages {
        assert_eq!(m["kind"], "image");
        assert!(m["media"].is_object(), "each attachment is fetched: {m}");
    }
    // A re-delivery stores neither again.
    assert_eq!(
        post("messenger", &vars, "messenger/attachments_two_images.json").await["stored"],
        0
    );
}

fn message_by_pid<'a>(messages: &'a [Value], pid: &str) -> &'a Value {
    messages
        .iter()
        .find(|m| m["provider_message_id"] == pid)
        .unwrap_or_else(|| panic!("{pid} in {messages:?}"))
}

#[tokio::test]
async fn a_whatsapp_edit_changes_the_original_message_and_keeps_its_history() {
    let channel = connect("whatsapp").await;
    let vars = FixtureVars::new(&channel, false);
    post("whatsapp", &vars, "whatsapp/text.json").await;
    let edit = post("whatsapp", &vars, "whatsapp/edit.json").await;
    assert_eq!(edit["stored"], 0, "an edit is not a new message");
    let (_, messages) = only_conversation(&channel.tenant).await;
    assert_eq!(messages.len(), 1);
    let m = message_by_pid(&messages, &format!("wamid.HBgL{}A", vars.msg_id));
    assert_eq!(m["text"], "Size 43, not 42, sorry!");
    assert_eq!(m["kind"], "text");
    let history = m["raw"]["lifecycle"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["event"], "edited");
    assert_eq!(history[0]["fragment"]["type"], "edit");
    assert!(m["raw"]["lifecycle"]["edited_at"].is_string());
    // The original fragment is still there for audit.
    assert_eq!(
        m["raw"]["text"]["body"],
        "Hi! Do you still have the blue running shoes in size 42?"
    );
    // A re-delivered edit adds nothing.
    post("whatsapp", &vars, "whatsapp/edit.json").await;
    let (_, messages) = only_conversation(&channel.tenant).await;
    assert_eq!(
        messages[0]["raw"]["lifecycle"]["history"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn an_edit_and_a_revoke_that_come_before_their_message_are_kept_until_it_is() {
    let channel = connect("whatsapp").await;
    let vars = FixtureVars::new(&channel, false);
    post("whatsapp", &vars, "whatsapp/edit.json").await;
    assert!(all_conversations(&channel.tenant).await.is_empty());
    post("whatsapp", &vars, "whatsapp/text.json").await;
    let (_, messages) = only_conversation(&channel.tenant).await;
    assert_eq!(messages[0]["text"], "Size 43, not 42, sorry!");

    post("whatsapp", &vars, "whatsapp/revoke.json").await;
    let (_, messages) = only_conversation(&channel.tenant).await;
    let m = &messages[0];
    assert!(m["text"].is_null(), "a revoked message shows no text: {m}");
    assert!(m["raw"]["lifecycle"]["deleted_at"].is_string());
    let events: Vec<&str> = m["raw"]["lifecycle"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, vec!["edited", "deleted"]);
}

#[tokio::test]
async fn a_whatsapp_reaction_and_its_removal_change_the_message_not_the_list() {
    let channel = connect("whatsapp").await;
    let vars = FixtureVars::new(&channel, false);
    // The reacted-to message: the fixture's target id, wamid.HBgL<id>T.
    let target = vars.render(&fixture("whatsapp/text.json")).replace(
        &format!("wamid.HBgL{}A", vars.msg_id),
        &format!("wamid.HBgL{}T", vars.msg_id),
    );
    assert_eq!(post_meta("whatsapp", &target).await.status, 200);
    post("whatsapp", &vars, "whatsapp/reaction.json").await;
    let (_, messages) = only_conversation(&channel.tenant).await;
    assert_eq!(messages.len(), 1, "a reaction is not a message");
    assert_eq!(
        messages[0]["raw"]["lifecycle"]["reactions"]["customer"],
        "\u{1f44d}"
    );

    post("whatsapp", &vars, "whatsapp/reaction_removed.json").await;
    let (_, messages) = only_conversation(&channel.tenant).await;
    let lifecycle = &messages[0]["raw"]["lifecycle"];
    assert!(lifecycle["reactions"].is_null(), "removed: {lifecycle}");
    assert_eq!(lifecycle["history"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_messenger_edit_and_an_instagram_unsend_change_their_messages() {
    let channel = connect("messenger").await;
    let vars = FixtureVars::new(&channel, false);
    post("messenger", &vars, "messenger/text.json").await;
    post("messenger", &vars, "messenger/message_edit.json").await;
    let (_, messages) = only_conversation(&channel.tenant).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0]["text"],
        "Is the Main Street store open on Saturdays?"
    );

    let ig = connect("instagram").await;
    let vars = FixtureVars::new(&ig, false);
    let text = vars.render(&fixture("instagram/text.json"));
    let mid = format!(
        "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA{}",
        vars.msg_id
    );
    let original: Value = serde_json::from_str(&text).unwrap();
    let text = text.replace(
        original["entry"][0]["messaging"][0]["message"]["mid"]
            .as_str()
            .unwrap(),
        &mid,
    );
    assert_eq!(post_meta("instagram", &text).await.status, 200);
    post("instagram", &vars, "instagram/deleted.json").await;
    let (_, messages) = only_conversation(&ig.tenant).await;
    assert_eq!(messages.len(), 1);
    assert!(messages[0]["text"].is_null());
    assert!(messages[0]["raw"]["lifecycle"]["deleted_at"].is_string());
}

#[tokio::test]
async fn a_standby_message_is_stored_while_another_app_owns_the_thread() {
    let channel = connect("messenger").await;
    let vars = FixtureVars::new(&channel, false);
    let body = post("messenger", &vars, "messenger/standby.json").await;
    assert_eq!(body["stored"], 1);
    let (_, messages) = only_conversation(&channel.tenant).await;
    assert_eq!(messages[0]["direction"], "inbound");
    assert_eq!(
        messages[0]["text"],
        "Is anyone there? I need to change my delivery address."
    );
}

#[tokio::test]
async fn a_reply_typed_in_the_whatsapp_business_app_is_an_outbound_message() {
    let channel = connect("whatsapp").await;
    let vars = FixtureVars::new(&channel, false);
    let body = post("whatsapp", &vars, "whatsapp/smb_message_echoes.json").await;
    assert_eq!(body["stored"], 1);
    let (c, messages) = only_conversation(&channel.tenant).await;
    assert_eq!(messages[0]["direction"], "outbound");
    assert_eq!(c["customer"]["external_id"], vars.sender.as_str());
    assert_eq!(c["unread_count"], 0);
}

#[tokio::test]
async fn every_documented_wechat_push_is_answered_success() {
    let channel = connect("wechat").await;
    for file in [
        "wechat/event_view.xml",
        "wechat/event_scancode_waitmsg.xml",
        "wechat/event_pic_sysphoto.xml",
        "wechat/event_location_select.xml",
        "wechat/event_view_miniprogram.xml",
        "wechat/event_kf_create_session.xml",
        "wechat/event_location.xml",
        "wechat/event_templatesendjobfinish.xml",
        "wechat/event_masssendjobfinish.xml",
        "wechat/file.xml",
    ] {
        let vars = FixtureVars::new(&channel, true);
        let reply = post_wechat(&channel, &vars.render(&fixture(file))).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (200, "success"),
            "{file}"
        );
    }
    let stored: usize = {
        let mut n = 0;
        for c in all_conversations(&channel.tenant).await {
            n += all_messages(&channel.tenant, c["id"].as_str().unwrap())
                .await
                .len();
        }
        n
    };
    assert_eq!(
        stored, 7,
        "job and location reports are acknowledged, not stored"
    );
}

#[tokio::test]
async fn a_status_naming_the_number_and_the_user_id_reaches_a_username_customers_message() {
    let channel = connect("whatsapp").await;
    let c = channel_of(&channel, ChannelType::Whatsapp);
    let vars = FixtureVars::new(&channel, false);
    post("whatsapp", &vars, "whatsapp/text_username_only.json").await;
    let user_id = format!("US.{}", vars.sender);
    let reply_id = format!("wamid.R{}", ulid::Ulid::new());
    let reply = InboundMessage {
        provider_message_id: reply_id.clone(),
        customer: user_id.clone(),
        customer_name: None,
        direction: Direction::Outbound,
        kind: MessageKind::Text,
        text: Some("Welcome back".into()),
        media: None,
        reply_to: None,
        timestamp: Some(Utc::now()),
        opens_window: false,
        raw: json!({}),
        identity: Default::default(),
        standby: false,
    };
    let ingested = ingest_items(&store(), &c, vec![WebhookItem::Message(reply)], Utc::now()).await;
    assert!(ingested.error.is_none());
    // Meta names the number (now shared) beside the user id.
    let status = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": channel.external_id},
        "statuses": [{"id": reply_id, "status": "read", "timestamp": vars.timestamp.to_string(),
            "recipient_id": vars.sender, "recipient_user_id": user_id}]}}]}]});
    let answer = post_meta("whatsapp", &status.to_string()).await;
    assert_eq!(answer.status, 200);
    let (_, messages) = only_conversation(&channel.tenant).await;
    assert_eq!(message_by_pid(&messages, &reply_id)["status"], "read");
}
