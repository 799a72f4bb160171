//! `GET /conversations?bot=active` over the real table: the sparse bot view (`gsi10`)
//! lists the conversations a bot runs on, combined with the other filters. Bots are
//! started by the runner (a customer's message through the event stand-in); the table is
//! touched directly only to age a bot past its timeout and to show that the list reads
//! the view.

use std::collections::BTreeSet;
use std::time::{Duration as Wait, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use integration_tests::{
    FixtureVars, TestChannel, connect, conversation_view, fixture, get, listed_ids, make_agent,
    patch_as, post_json, post_meta, put_as, sandbox_outbox, stack, token,
};
use serde_json::{Value, json};
use shared::adapters::keys;
use shared::domain::conversation::conversation_id;
use shared::domain::ids::{ChannelId, TenantId};
use shared::domain::views::View;

/// Updates a conversation item straight in the table: `SET`/`REMOVE` clauses with
/// `#view` naming the bot view's key and `:v` bound to `value` when given.
async fn update_conversation(
    tenant: &str,
    conversation: &str,
    expression: &str,
    value: Option<AttributeValue>,
) {
    let key = keys::conversation(&TenantId::parse(tenant).unwrap(), conversation);
    let client = aws_sdk_dynamodb::Client::new(&stack().settings.sdk_config());
    let mut update = client
        .update_item()
        .table_name(stack().template.local_name("ChatTable").unwrap())
        .key(keys::PK, AttributeValue::S(key.pk))
        .key(keys::SK, AttributeValue::S(key.sk))
        .update_expression(expression)
        .condition_expression("attribute_exists(bot_id)");
    if expression.contains("#view") {
        update = update.expression_attribute_names("#view", View::BotActive.index().attribute);
    }
    if let Some(value) = value {
        update = update.expression_attribute_values(":v", value);
    }
    update.send().await.expect("the conversation is updated");
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A new WhatsApp customer writes `text`, `seconds_ago`: its conversation id and the
/// customer's WhatsApp id.
async fn customer_says(channel: &TestChannel, text: &str, seconds_ago: i64) -> (String, String) {
    let mut vars = FixtureVars::new(channel, false);
    vars.timestamp -= seconds_ago;
    let mut body: Value =
        serde_json::from_str(&vars.render(&fixture("whatsapp/text.json"))).unwrap();
    body["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = json!(text);
    let reply = post_meta("whatsapp", &body.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let id = conversation_id(&ChannelId::parse(&channel.id).unwrap(), &vars.sender);
    (id, vars.sender)
}

/// Waits until the runner has started the bot on the conversation and its question has
/// reached the provider sandbox: the turn is over, nothing else writes the conversation.
async fn wait_bot_asked(channel: &TestChannel, id: &str, customer: &str) {
    let deadline = Instant::now() + Wait::from_secs(15);
    loop {
        let asked = sandbox_outbox(&channel.external_id)
            .iter()
            .any(|i| i["to"] == customer && i["status"] == 200);
        if asked && conversation_view(&channel.tenant, id).await["bot"]["active"] == true {
            return;
        }
        assert!(Instant::now() < deadline, "the bot starts on {id}");
        tokio::time::sleep(Wait::from_millis(100)).await;
    }
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|id| (*id).clone()).collect()
}

async fn listed(tenant: &str, query: &str) -> BTreeSet<String> {
    listed_ids(tenant, query).await.into_iter().collect()
}

#[tokio::test]
async fn bot_active_lists_the_conversations_a_bot_runs_on_with_status_and_assignee() {
    let channel = connect("whatsapp").await;
    let tenant = channel.tenant.clone();
    let agent = token(&tenant, "agent"); // sub agent-1
    make_agent(&channel, "agent-1").await;
    let bot = json!({
        "name": "Opening hours",
        "trigger": {"type": "keyword", "keywords": ["hours"]},
        "steps": [{"id": "which", "type": "ask", "text": "Which shop?", "options": [
            {"id": "centre", "title": "Centre"}, {"id": "harbour", "title": "Harbour"}]}]
    });
    let reply = put_as("/bots/hours", &channel.admin(), Some(&bot)).await;
    assert_eq!(reply.status, 201, "{}", reply.text);

    let (mine, a) = customer_says(&channel, "Your hours?", 50).await;
    let (snoozed, b) = customer_says(&channel, "hours please", 40).await;
    let (timed_out, c) = customer_says(&channel, "Opening hours?", 30).await;
    let (no_bot, _) = customer_says(&channel, "Hello", 20).await;
    let (unassigned, d) = customer_says(&channel, "hours", 10).await;
    for (id, customer) in [
        (&mine, &a),
        (&snoozed, &b),
        (&timed_out, &c),
        (&unassigned, &d),
    ] {
        wait_bot_asked(&channel, id, customer).await;
    }

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
    // Asked two hours ago with a 30-minute timeout: still in the view (nothing has
    // stopped it yet), but no longer running.
    update_conversation(
        &tenant,
        &timed_out,
        "SET bot_waiting_since = :v",
        Some(AttributeValue::S(rfc3339(Utc::now() - Duration::hours(2)))),
    )
    .await;

    let running = set(&[&mine, &snoozed, &unassigned]);
    assert_eq!(listed(&tenant, "bot=active").await, running);
    let everything = listed(&tenant, "").await;
    assert!(everything.contains(&no_bot) && everything.contains(&timed_out));

    // What the list keeps is what the conversation shows.
    let shown = conversation_view(&tenant, &mine).await;
    assert_eq!(shown["bot"]["active"], true, "{shown}");
    assert_eq!(shown["bot"]["bot_id"], "hours");
    assert_eq!(shown["bot"]["name"], "Opening hours");
    assert_eq!(shown["bot"]["step"], "which");
    assert!(
        shown["bot"]["since"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .is_ok()
    );
    for id in [&timed_out, &no_bot] {
        let shown = conversation_view(&tenant, id).await;
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

    // Pages of one, merged from the view's shards: newest activity first, each once.
    let mut pages: Vec<(String, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("/conversations?bot=active&limit=1&cursor={c}"),
            None => "/conversations?bot=active&limit=1".to_owned(),
        };
        let reply = get(&query, Some(&agent)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        for c in reply.body["items"].as_array().unwrap() {
            let at = c["last_message_at"].as_str().unwrap().to_owned();
            pages.push((at, c["id"].as_str().unwrap().to_owned()));
        }
        match reply.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages.len() <= 4, "the pages end");
    }
    let ids: BTreeSet<String> = pages.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!((ids, pages.len()), (running.clone(), 3), "{pages:?}");
    let mut newest_first = pages.clone();
    newest_first.sort_by(|x, y| y.cmp(x));
    assert_eq!(pages, newest_first);

    // Exit Bot takes the conversation out of the view.
    let reply = post_json(
        &format!("/conversations/{unassigned}/bot/exit"),
        Some(&agent),
        &json!({}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["bot"]["active"], false);
    assert_eq!(listed(&tenant, "bot=active").await, set(&[&mine, &snoozed]));

    // The list reads the bot view: a running bot without the view's key (the runner
    // always writes both) is not found by it.
    update_conversation(&tenant, &mine, "REMOVE #view", None).await;
    assert_eq!(
        conversation_view(&tenant, &mine).await["bot"]["active"],
        true
    );
    assert_eq!(listed(&tenant, "bot=active").await, set(&[&snoozed]));

    for bad in ["bot=inactive", "bot=ACTIVE", "bot=true"] {
        let reply = get(&format!("/conversations?{bad}"), Some(&agent)).await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "invalid_filter"),
            "{bad}"
        );
    }
}
