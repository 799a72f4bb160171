//! `GET /conversations?bot=active` over the real table: the sparse bot view (`gsi10`)
//! lists the conversations a bot runs on, combined with the other filters. The bot state
//! is written straight into the conversation items, as the bot runner writes it.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, SecondsFormat, SubsecRound, Utc};
use integration_tests::{
    FixtureVars, TestChannel, connect, fixture, get, listed_ids, make_agent, patch_as, post_meta,
    put_as, stack, token,
};
use serde_json::{Value, json};
use shared::adapters::keys;
use shared::domain::conversation::conversation_id;
use shared::domain::ids::{ChannelId, TenantId};
use shared::domain::views::{self, View};

fn dynamo() -> (aws_sdk_dynamodb::Client, String) {
    let client = aws_sdk_dynamodb::Client::new(&stack().settings.sdk_config());
    let table = stack().template.local_name("ChatTable").unwrap();
    (client, table)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A new WhatsApp customer writes one text, `seconds_ago`: its conversation id.
async fn customer_writes(channel: &TestChannel, seconds_ago: i64) -> String {
    let mut vars = FixtureVars::new(channel, false);
    vars.timestamp -= seconds_ago;
    let reply = post_meta("whatsapp", &vars.render(&fixture("whatsapp/text.json"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    conversation_id(&ChannelId::parse(&channel.id).unwrap(), &vars.sender)
}

/// Writes a running bot onto a conversation item, waiting for an answer since
/// `waiting_since`, and puts it in the bot view (what the runner does when a bot starts).
async fn bot_runs(tenant: &str, conversation: &str, waiting_since: DateTime<Utc>, timeout: u32) {
    write_bot(tenant, conversation, waiting_since, timeout, true).await;
}

async fn write_bot(
    tenant: &str,
    conversation: &str,
    waiting_since: DateTime<Utc>,
    timeout: u32,
    in_view: bool,
) {
    let tenant = TenantId::parse(tenant).unwrap();
    let key = keys::conversation(&tenant, conversation);
    let partition = keys::view_partition(&tenant, &View::BotActive, views::shard(conversation));
    let (client, table) = dynamo();
    let view = if in_view { ", #view = :partition" } else { "" };
    let mut update = client
        .update_item()
        .table_name(table)
        .key(keys::PK, AttributeValue::S(key.pk))
        .key(keys::SK, AttributeValue::S(key.sk))
        .update_expression(format!(
            "SET bot_id = :id, bot_name = :name, bot_since = :since, bot_step = :step, \
             bot_asked = :one, bot_waiting_since = :waiting, bot_timeout_minutes = :timeout, \
             bot_version = :one{view}"
        ))
        .condition_expression("attribute_exists(pk)");
    if in_view {
        update = update
            .expression_attribute_names("#view", View::BotActive.index().attribute)
            .expression_attribute_values(":partition", AttributeValue::S(partition));
    }
    update
        .expression_attribute_values(":id", AttributeValue::S("welcome".into()))
        .expression_attribute_values(":name", AttributeValue::S("Welcome bot".into()))
        .expression_attribute_values(
            ":since",
            AttributeValue::S(rfc3339(waiting_since - Duration::seconds(5))),
        )
        .expression_attribute_values(":step", AttributeValue::S("menu".into()))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .expression_attribute_values(":waiting", AttributeValue::S(rfc3339(waiting_since)))
        .expression_attribute_values(":timeout", AttributeValue::N(timeout.to_string()))
        .send()
        .await
        .expect("the bot state is written");
}

/// Takes the bot off a conversation item and out of the bot view (a bot that stopped).
async fn bot_stops(tenant: &str, conversation: &str) {
    let tenant = TenantId::parse(tenant).unwrap();
    let key = keys::conversation(&tenant, conversation);
    let (client, table) = dynamo();
    client
        .update_item()
        .table_name(table)
        .key(keys::PK, AttributeValue::S(key.pk))
        .key(keys::SK, AttributeValue::S(key.sk))
        .update_expression(
            "SET bot_blocked = :yes, bot_version = :two REMOVE bot_id, bot_name, bot_since, \
             bot_step, bot_asked, bot_waiting_since, bot_timeout_minutes, #view",
        )
        .expression_attribute_names("#view", View::BotActive.index().attribute)
        .expression_attribute_values(":yes", AttributeValue::Bool(true))
        .expression_attribute_values(":two", AttributeValue::N("2".into()))
        .send()
        .await
        .expect("the bot state is removed");
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|id| (*id).clone()).collect()
}

async fn listed(tenant: &str, query: &str) -> BTreeSet<String> {
    listed_ids(tenant, query).await.into_iter().collect()
}

async fn conversation(tenant: &str, id: &str) -> Value {
    let reply = get(
        &format!("/conversations/{id}"),
        Some(&token(tenant, "agent")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

#[tokio::test]
async fn bot_active_lists_the_conversations_a_bot_runs_on_with_status_and_assignee() {
    let channel = connect("whatsapp").await;
    let tenant = channel.tenant.clone();
    let agent = token(&tenant, "agent"); // sub agent-1
    make_agent(&channel, "agent-1").await;

    let mine = customer_writes(&channel, 50).await;
    let snoozed = customer_writes(&channel, 40).await;
    let timed_out = customer_writes(&channel, 30).await;
    let no_bot = customer_writes(&channel, 20).await;
    let unassigned = customer_writes(&channel, 10).await;

    // The workspace changes first, then the bots start (as if their trigger matched).
    let reply = put_as(
        &format!("/conversations/{mine}/assignee"),
        &agent,
        Some(&json!({"agent_id": "agent-1"})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let until = rfc3339(Utc::now() + Duration::hours(2));
    let reply = patch_as(
        &format!("/conversations/{snoozed}"),
        &agent,
        &json!({"status": "snoozed", "snoozed_until": until}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let now = Utc::now().trunc_subsecs(3); // stored at millisecond precision
    for id in [&mine, &snoozed, &unassigned] {
        bot_runs(&tenant, id, now, 30).await;
    }
    // Asked two hours ago with a 30-minute timeout: still in the view (the runner has not
    // taken it out yet), but no longer running.
    bot_runs(&tenant, &timed_out, now - Duration::hours(2), 30).await;

    let running = set(&[&mine, &snoozed, &unassigned]);
    assert_eq!(listed(&tenant, "bot=active").await, running);
    let everything = listed(&tenant, "").await;
    assert!(everything.contains(&no_bot) && everything.contains(&timed_out));

    // What the list shows is what the conversation shows.
    let shown = conversation(&tenant, &mine).await;
    assert_eq!(shown["bot"]["active"], true, "{shown}");
    assert_eq!(shown["bot"]["bot_id"], "welcome");
    assert_eq!(shown["bot"]["name"], "Welcome bot");
    assert_eq!(shown["bot"]["step"], "menu");
    let since: DateTime<Utc> = shown["bot"]["since"].as_str().unwrap().parse().unwrap();
    assert_eq!(since, now - Duration::seconds(5));
    for id in [&timed_out, &no_bot] {
        let shown = conversation(&tenant, id).await;
        assert_eq!(
            shown["bot"],
            json!({"active": false, "bot_id": null, "name": null, "since": null, "step": null}),
            "{id}"
        );
    }

    // Combined with the other filters, checked on what the bot view gives.
    let by_channel_id = format!("bot=active&channel_id={}", channel.id);
    let cases = [
        ("bot=active&status=open", set(&[&mine, &unassigned])),
        ("bot=active&status=snoozed", set(&[&snoozed])),
        ("bot=active&status=closed", set(&[])),
        ("bot=active&assignee=agent-1", set(&[&mine])),
        ("bot=active&assignee=me", set(&[&mine])),
        ("bot=active&assignee=none", set(&[&snoozed, &unassigned])),
        ("bot=active&assignee=none&status=open", set(&[&unassigned])),
        ("bot=active&channel=whatsapp", running.clone()),
        (by_channel_id.as_str(), running.clone()),
        ("bot=active&channel=wechat", set(&[])),
    ];
    for (query, want) in cases {
        assert_eq!(listed(&tenant, query).await, want, "{query}");
    }

    // Pages of one, merged from the view's shards, newest first, each once.
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("/conversations?bot=active&limit=1&cursor={c}"),
            None => "/conversations?bot=active&limit=1".to_owned(),
        };
        let reply = get(&query, Some(&agent)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let items = reply.body["items"].as_array().unwrap().clone();
        assert!(items.len() <= 1);
        pages.extend(items.iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        match reply.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages.len() <= 4, "the pages end");
    }
    assert_eq!(
        pages,
        vec![unassigned.clone(), snoozed.clone(), mine.clone()]
    );

    // A bot that stops leaves the view.
    bot_stops(&tenant, &unassigned).await;
    assert_eq!(listed(&tenant, "bot=active").await, set(&[&mine, &snoozed]));
    assert_eq!(
        conversation(&tenant, &unassigned).await["bot"]["active"],
        false
    );

    // The list reads the bot view: a bot state without the view's key (the runner always
    // writes both) is not found by it.
    write_bot(&tenant, &no_bot, now, 30, false).await;
    assert_eq!(conversation(&tenant, &no_bot).await["bot"]["active"], true);
    assert_eq!(listed(&tenant, "bot=active").await, set(&[&mine, &snoozed]));

    for bad in ["bot=inactive", "bot=ACTIVE", "bot=true"] {
        let reply = get(&format!("/conversations?{bad}"), Some(&agent)).await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "invalid_filter"),
            "{bad}"
        );
    }
}
