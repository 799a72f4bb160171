//! The agent workspace around a conversation: assignment, status (snooze), the customer's
//! labels, and the list filters served by the views, each change with its system message.

use futures::future::join_all;
use integration_tests::{
    FixtureVars, Reply, TestChannel, connect, connect_for, delete_as as delete, fixture, get,
    listed_ids as listed, make_agent, make_label, patch_as, post_meta, put_as,
    system_events as events, token,
};
use serde_json::{Value, json};
use shared::domain::conversation::{conversation_id, customer_id};
use shared::domain::ids::ChannelId;

/// A customer writes one WhatsApp text: (conversation id, customer id, the vars used).
async fn customer_writes(channel: &TestChannel) -> (String, String, FixtureVars) {
    customer_writes_on(channel, "whatsapp", 0).await
}

/// A customer writes one text on `provider` (`whatsapp` or `messenger`), `seconds_ago`.
async fn customer_writes_on(
    channel: &TestChannel,
    provider: &str,
    seconds_ago: i64,
) -> (String, String, FixtureVars) {
    let mut vars = FixtureVars::new(channel, false);
    vars.timestamp -= seconds_ago;
    write_on(provider, &vars, "").await;
    let ch = ChannelId::parse(&channel.id).unwrap();
    (
        conversation_id(&ch, &vars.sender),
        customer_id(&ch, &vars.sender),
        vars,
    )
}

/// The same WhatsApp customer writes again (a new message id with `suffix`, a second
/// later).
async fn write_again(_channel: &TestChannel, vars: &FixtureVars, suffix: &str) {
    let mut v = vars.clone();
    v.timestamp += 1;
    write_on("whatsapp", &v, suffix).await;
}

async fn write_on(provider: &str, vars: &FixtureVars, suffix: &str) {
    let mut v = vars.clone();
    v.msg_id = format!("{}{suffix}", vars.msg_id);
    let reply = post_meta(
        provider,
        &v.render(&fixture(&format!("{provider}/text.json"))),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

async fn put(path: &str, bearer: &str, body: Option<Value>) -> Reply {
    put_as(path, bearer, body.as_ref()).await
}

async fn patch(path: &str, bearer: &str, body: Value) -> Reply {
    patch_as(path, bearer, &body).await
}

#[tokio::test]
async fn assignment_takes_agents_of_the_tenant_and_writes_one_system_message_per_change() {
    let channel = connect("whatsapp").await;
    let agent = token(&channel.tenant, "agent");
    let (conversation, _, _) = customer_writes(&channel).await;
    let path = format!("/conversations/{conversation}/assignee");

    let reply = put(&path, &agent, Some(json!({"agent_id": "agent-1"}))).await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "unknown_agent"),
        "{}",
        reply.text
    );
    for bad in [
        json!({}),
        json!({"agent_id": 7}),
        json!({"agent_id": "a", "x": 1}),
    ] {
        let reply = put(&path, &agent, Some(bad)).await;
        assert_eq!(reply.status, 422, "{}", reply.text);
    }
    assert!(
        events(&channel.tenant, &conversation, "assigned")
            .await
            .is_empty()
    );

    make_agent(&channel, "agent-1").await;
    for _ in 0..2 {
        let reply = put(&path, &agent, Some(json!({"agent_id": "agent-1"}))).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["assignee"], "agent-1");
    }
    let assigned = events(&channel.tenant, &conversation, "assigned").await;
    assert_eq!(
        assigned.len(),
        1,
        "a repeat writes no second system message"
    );
    assert_eq!(
        assigned[0]["actor"],
        json!({"type": "agent", "id": "agent-1"})
    );
    assert_eq!(assigned[0]["text"], "Assigned to Agent agent-1 (agent-1)");

    assert_eq!(
        listed(&channel.tenant, "assignee=me").await,
        vec![conversation.clone()]
    );
    assert_eq!(
        listed(&channel.tenant, "assignee=agent-1&status=open").await,
        vec![conversation.clone()]
    );
    assert!(listed(&channel.tenant, "assignee=none").await.is_empty());

    let reply = put(&path, &agent, Some(json!({"agent_id": null}))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["assignee"], Value::Null);
    assert_eq!(
        events(&channel.tenant, &conversation, "unassigned")
            .await
            .len(),
        1
    );
    assert_eq!(
        listed(&channel.tenant, "assignee=none").await,
        vec![conversation.clone()]
    );
    assert!(listed(&channel.tenant, "assignee=agent-1").await.is_empty());

    let reply = put(
        "/conversations/cv_nope_0123456789abcdef01234567/assignee",
        &agent,
        Some(json!({"agent_id": null})),
    )
    .await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn close_snooze_and_the_customer_writing_reopens() {
    let channel = connect("whatsapp").await;
    let agent = token(&channel.tenant, "agent");
    let (conversation, _, vars) = customer_writes(&channel).await;
    let path = format!("/conversations/{conversation}");

    for (bad, code) in [
        (json!({"status": "archived"}), "invalid_status"),
        (json!({"status": "snoozed"}), "invalid_snooze"),
        (
            json!({"status": "snoozed", "snoozed_until": "2001-01-01T00:00:00Z"}),
            "invalid_snooze",
        ),
        (
            json!({"status": "snoozed", "snoozed_until": "tomorrow"}),
            "invalid_snooze",
        ),
        (
            json!({"status": "closed", "snoozed_until": "2099-01-01T00:00:00Z"}),
            "invalid_snooze",
        ),
        (json!({"status": "closed", "colour": "red"}), "invalid_body"),
    ] {
        let reply = patch(&path, &agent, bad.clone()).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, code),
            "{bad}: {}",
            reply.text
        );
    }

    let reply = patch(&path, &agent, json!({"status": "closed"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "closed");
    assert_eq!(
        listed(&channel.tenant, "status=closed").await,
        vec![conversation.clone()]
    );
    assert!(listed(&channel.tenant, "status=open").await.is_empty());
    assert_eq!(
        listed(&channel.tenant, "").await,
        vec![conversation.clone()]
    );

    write_again(&channel, &vars, "b").await;
    let reply = get(&path, Some(&agent)).await;
    assert_eq!(reply.body["status"], "open", "{}", reply.text);
    let changes = events(&channel.tenant, &conversation, "status_changed").await;
    assert_eq!(changes.len(), 2, "closed, then reopened by the customer");
    assert_eq!(changes[0]["actor"]["type"], "customer", "{changes:?}");
    assert_eq!(
        listed(&channel.tenant, "status=open").await,
        vec![conversation.clone()]
    );

    let until = (chrono::Utc::now() + chrono::Duration::hours(3)).to_rfc3339();
    let reply = patch(
        &path,
        &agent,
        json!({"status": "snoozed", "snoozed_until": until}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "snoozed");
    assert!(reply.body["snoozed_until"].is_string());
    assert_eq!(
        listed(&channel.tenant, "status=snoozed").await,
        vec![conversation.clone()]
    );
    let text = events(&channel.tenant, &conversation, "status_changed").await[0]["text"].clone();
    assert!(
        text.as_str()
            .unwrap()
            .starts_with("Conversation snoozed until"),
        "{text}"
    );
}

#[tokio::test]
async fn labels_sit_on_the_customer_once_under_concurrency_and_filter_the_list() {
    let channel = connect("whatsapp").await;
    let agent = token(&channel.tenant, "agent");
    let (conversation, customer, vars) = customer_writes(&channel).await;
    let (other, _, _) = customer_writes_on(&channel, "whatsapp", 10).await;
    let path = format!("/customers/{customer}/labels/vip");

    let reply = put(&path, &agent, None).await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "unknown_label"),
        "{}",
        reply.text
    );
    let reply = put(
        &format!("/customers/{customer}/labels/Not%20A%20Label"),
        &agent,
        None,
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "invalid_label"),
        "{}",
        reply.text
    );
    let reply = put(
        "/customers/cu_nope_0123456789abcdef01234567/labels/vip",
        &agent,
        None,
    )
    .await;
    assert_eq!(reply.status, 404);

    make_label(&channel, "vip").await;
    let replies = join_all((0..5).map(|_| put(&path, &agent, None))).await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["labels"], json!(["vip"]));
    }
    assert_eq!(
        events(&channel.tenant, &conversation, "label_added")
            .await
            .len(),
        1
    );
    let shown = get(&format!("/conversations/{conversation}"), Some(&agent)).await;
    assert_eq!(shown.body["labels"], json!(["vip"]));

    assert_eq!(
        listed(&channel.tenant, "label=vip").await,
        vec![conversation.clone()]
    );
    // Customers by label follow a rename.
    let reply = patch(
        &format!("/customers/{customer}"),
        &agent,
        json!({"name": "Zoë Ames"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let found = get("/customers?label=vip&q=zoe", Some(&agent)).await;
    assert_eq!(
        found.body["items"][0]["id"],
        customer.as_str(),
        "{}",
        found.text
    );
    assert_eq!(
        listed(&channel.tenant, "label=vip&status=open").await,
        vec![conversation.clone()]
    );
    assert!(
        listed(&channel.tenant, "label=vip&status=closed")
            .await
            .is_empty()
    );
    // The label's view follows the conversation: a new message keeps it listed, first.
    write_again(&channel, &vars, "c").await;
    assert_eq!(
        listed(&channel.tenant, "label=vip&assignee=none").await,
        vec![conversation.clone()]
    );
    let all = listed(&channel.tenant, "").await;
    assert_eq!(all, vec![conversation.clone(), other.clone()]);
    let reply = patch(
        &format!("/conversations/{conversation}"),
        &agent,
        json!({"status": "closed"}),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        listed(&channel.tenant, "label=vip&status=closed").await,
        vec![conversation.clone()]
    );

    let reply = delete(&path, &agent).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["labels"], json!([]));
    let reply = delete(&path, &agent).await;
    assert_eq!(
        reply.status, 200,
        "removing what is not there changes nothing"
    );
    assert_eq!(
        events(&channel.tenant, &conversation, "label_removed")
            .await
            .len(),
        1
    );
    assert!(listed(&channel.tenant, "label=vip").await.is_empty());
}

#[tokio::test]
async fn deleting_a_label_takes_it_off_every_customer() {
    let channel = connect("whatsapp").await;
    let agent = token(&channel.tenant, "agent");
    make_label(&channel, "lead").await;
    let mut conversations = Vec::new();
    for _ in 0..3 {
        let (conversation, customer, _) = customer_writes(&channel).await;
        let reply = put(&format!("/customers/{customer}/labels/lead"), &agent, None).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        conversations.push(conversation);
    }
    assert_eq!(listed(&channel.tenant, "label=lead").await.len(), 3);

    let reply = delete("/labels/lead", &agent).await;
    assert_eq!(reply.status, 403, "admins only");
    let reply = delete("/labels/lead", &channel.admin()).await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert!(listed(&channel.tenant, "label=lead").await.is_empty());
    for conversation in &conversations {
        let shown = get(&format!("/conversations/{conversation}"), Some(&agent)).await;
        assert_eq!(shown.body["labels"], json!([]));
        let removed = events(&channel.tenant, conversation, "label_removed").await;
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0]["actor"]["id"], "agent-1");
    }
    let reply = delete("/labels/lead", &channel.admin()).await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn list_filters_combine_across_channels_and_pages() {
    let tenant = integration_tests::unique_tenant();
    let whatsapp = connect_for(&tenant, "whatsapp", json!({})).await;
    let messenger = connect_for(&tenant, "messenger", json!({})).await;
    let mut on_whatsapp = Vec::new();
    for i in 0..5 {
        on_whatsapp.push(customer_writes_on(&whatsapp, "whatsapp", 10 - i).await.0);
    }
    let on_messenger = customer_writes_on(&messenger, "messenger", 0).await.0;
    on_whatsapp.reverse(); // newest first

    assert_eq!(listed(&tenant, "channel=whatsapp").await, on_whatsapp);
    assert_eq!(
        listed(&tenant, "channel=messenger").await,
        vec![on_messenger.clone()]
    );
    assert_eq!(
        listed(&tenant, &format!("channel_id={}", messenger.id)).await,
        vec![on_messenger.clone()]
    );
    assert!(
        listed(
            &tenant,
            &format!("channel=instagram&channel_id={}", messenger.id)
        )
        .await
        .is_empty()
    );

    // Pages of two through the merged shards: newest first, none twice, none lost.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=2&cursor={c}"),
            None => "limit=2".to_owned(),
        };
        let reply = get(
            &format!("/conversations?{query}"),
            Some(&token(&tenant, "agent")),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let items = reply.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        match reply.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut expected = vec![on_messenger];
    expected.extend(on_whatsapp);
    assert_eq!(seen, expected);

    for bad in [
        "status=archived",
        "channel=sms",
        "cursor=%%%",
        "label=Not%20A%20Label",
    ] {
        let reply = get(
            &format!("/conversations?{bad}"),
            Some(&token(&tenant, "agent")),
        )
        .await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text);
    }
}
