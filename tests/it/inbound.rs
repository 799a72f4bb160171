//! Webhooks into conversations: the fixture corpus, exactly-once storage, statuses,
//! windows, WeChat, and the agent read API.

use std::collections::BTreeMap;
use std::sync::Arc;

use integration_tests::{
    FixtureVars, TestChannel, all_conversations, all_messages, all_tenant_messages, connect,
    connect_for, fixture, fixtures_dir, get, post_meta, post_wechat, stack, token, unique_tenant,
    wechat_query,
};
use serde_json::{Value, json};
use tokio::sync::Barrier;

fn provider_of(file: &str) -> &str {
    file.split('/').next().expect("provider folder")
}

/// Every fixture of every provider: stored with the expected kinds and direction, and a
/// re-delivery stores nothing new.
#[tokio::test]
async fn every_fixture_is_stored_once_with_its_normalized_kind() {
    let manifest: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(fixtures_dir().join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert!(manifest.len() >= 50);
    let mut channels: BTreeMap<String, TestChannel> = BTreeMap::new();
    for entry in &manifest {
        let file = entry["file"].as_str().unwrap();
        let provider = provider_of(file);
        if !channels.contains_key(provider) {
            channels.insert(provider.to_owned(), connect(provider).await);
        }
        let channel = &channels[provider];
        let vars = FixtureVars::new(channel, provider == "wechat");
        let body = vars.render(&fixture(file));
        let before = all_tenant_messages(&channel.tenant).await.len();
        let post = || async {
            if provider == "wechat" {
                post_wechat(channel, &body).await
            } else {
                post_meta(provider, &body).await
            }
        };
        let reply = post().await;
        assert_eq!(reply.status, 200, "{file}: {}", reply.text);
        let after = all_tenant_messages(&channel.tenant).await;
        let expected = entry["messages"].as_u64().unwrap() as usize;
        let new: Vec<&Value> = after
            .iter()
            .filter(|m| {
                m["provider_message_id"]
                    .as_str()
                    .is_some_and(|id| id.contains(&vars.msg_id) || id.contains(&vars.sender))
            })
            .collect();
        assert_eq!(after.len() - before, expected, "{file}: messages stored");
        assert_eq!(
            new.len(),
            expected,
            "{file}: stored messages carry the provider ids"
        );
        let mut kinds: Vec<&str> = new.iter().map(|m| m["kind"].as_str().unwrap()).collect();
        let mut want: Vec<&str> = entry["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        kinds.sort_unstable();
        want.sort_unstable();
        assert_eq!(kinds, want, "{file}: kinds");
        for m in &new {
            assert_eq!(m["direction"], entry["direction"], "{file}: direction");
            assert!(m["raw"].is_object(), "{file}: raw fragment kept");
        }
        // Exactly once: the same delivery again stores nothing.
        let again = post().await;
        assert_eq!(again.status, 200, "{file}: re-delivery");
        assert_eq!(
            all_tenant_messages(&channel.tenant).await.len(),
            after.len(),
            "{file}: re-delivery stored"
        );
    }
}

#[tokio::test]
async fn whatsapp_text_opens_the_window_and_names_the_customer() {
    let channel = connect("whatsapp").await;
    let vars = FixtureVars::new(&channel, false);
    let reply = post_meta("whatsapp", &vars.render(&fixture("whatsapp/text.json"))).await;
    assert_eq!(
        (reply.status, reply.body["stored"].as_u64()),
        (200, Some(1))
    );
    let conversations = all_conversations(&channel.tenant).await;
    assert_eq!(conversations.len(), 1);
    let c = &conversations[0];
    assert_eq!(c["channel"], "whatsapp");
    assert_eq!(c["channel_id"], channel.id.as_str());
    assert_eq!(c["status"], "open");
    assert_eq!(c["customer"]["name"], "Sheena Nelson");
    assert_eq!(c["customer"]["external_id"], vars.sender.as_str());
    assert_eq!(c["unread_count"], 1);
    assert_eq!(c["window"]["open"], true);
    assert_eq!(c["window"]["mode"], "free_form");
    assert!(c["preview"].as_str().unwrap().starts_with("Hi! Do you"));
    assert_eq!(c["bot"]["active"], false);
    let one = get(
        &format!("/conversations/{}", c["id"].as_str().unwrap()),
        Some(&channel.admin()),
    )
    .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["id"], c["id"]);
    let messages = all_messages(&channel.tenant, c["id"].as_str().unwrap()).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m["kind"], "text");
    assert_eq!(m["direction"], "inbound");
    assert_eq!(
        m["text"],
        "Hi! Do you still have the blue running shoes in size 42?"
    );
    assert_eq!(m["conversation_id"], c["id"]);
    assert!(m["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn a_message_older_than_24_hours_leaves_whatsapp_in_template_mode() {
    let channel = connect("whatsapp").await;
    let mut vars = FixtureVars::new(&channel, false);
    vars.timestamp -= 25 * 3600;
    assert_eq!(
        post_meta("whatsapp", &vars.render(&fixture("whatsapp/text.json")))
            .await
            .status,
        200
    );
    let c = &all_conversations(&channel.tenant).await[0];
    assert_eq!(
        c["window"],
        json!({"open": false, "expires_at": null, "mode": "template_only"})
    );
}

#[tokio::test]
async fn messenger_after_a_day_is_human_agent_mode_until_seven_days() {
    let channel = connect("messenger").await;
    let mut vars = FixtureVars::new(&channel, false);
    vars.timestamp -= 30 * 3600;
    assert_eq!(
        post_meta("messenger", &vars.render(&fixture("messenger/text.json")))
            .await
            .status,
        200
    );
    let c = &all_conversations(&channel.tenant).await[0];
    assert_eq!(c["window"]["mode"], "human_agent");
    assert_eq!(c["window"]["open"], true);
}

#[tokio::test]
async fn another_tenants_conversation_is_404() {
    let channel = connect("whatsapp").await;
    let vars = FixtureVars::new(&channel, false);
    post_meta("whatsapp", &vars.render(&fixture("whatsapp/text.json"))).await;
    let id = all_conversations(&channel.tenant).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stranger = token(&unique_tenant(), "admin");
    for path in [
        format!("/conversations/{id}"),
        format!("/conversations/{id}/messages"),
    ] {
        let reply = get(&path, Some(&stranger)).await;
        assert_eq!((reply.status, reply.code()), (404, "not_found"), "{path}");
    }
    assert_eq!(
        get("/conversations/cv_nope", Some(&channel.admin()))
            .await
            .status,
        404
    );
    let listed = get("/conversations", Some(&stranger)).await;
    assert_eq!(listed.body["items"], json!([]));
}

#[tokio::test]
async fn webhook_for_an_account_nobody_connected_is_acknowledged_and_not_stored() {
    let ghost = TestChannel {
        tenant: unique_tenant(),
        id: "none".into(),
        external_id: integration_tests::unique_meta_id(),
        wechat_token: String::new(),
    };
    let vars = FixtureVars::new(&ghost, false);
    let reply = post_meta("whatsapp", &vars.render(&fixture("whatsapp/text.json"))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["unrouted"], 1);
    assert_eq!(reply.body["stored"], 0);
}

#[tokio::test]
async fn fifty_concurrent_deliveries_of_one_message_store_it_once() {
    let channel = connect("whatsapp").await;
    let body = Arc::new(FixtureVars::new(&channel, false).render(&fixture("whatsapp/text.json")));
    let barrier = Arc::new(Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (body, barrier) = (body.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                post_meta("whatsapp", &body).await
            })
        })
        .collect();
    let mut stored = 0;
    for t in tasks {
        let reply = t.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text);
        stored += reply.body["stored"].as_u64().unwrap();
    }
    assert_eq!(stored, 1);
    assert_eq!(all_tenant_messages(&channel.tenant).await.len(), 1);
    let c = &all_conversations(&channel.tenant).await[0];
    assert_eq!(c["unread_count"], 1);
}

#[tokio::test]
async fn twenty_parallel_first_messages_make_one_conversation_holding_all() {
    let channel = connect("whatsapp").await;
    let vars = FixtureVars::new(&channel, false);
    let template = fixture("whatsapp/text.json");
    let barrier = Arc::new(Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let mut v = vars.clone();
            v.msg_id = format!("{}P{i}", vars.msg_id);
            v.timestamp += i;
            let body = v.render(&template);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                post_meta("whatsapp", &body).await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().status, 200);
    }
    let conversations = all_conversations(&channel.tenant).await;
    assert_eq!(conversations.len(), 1);
    let c = &conversations[0];
    assert_eq!(c["unread_count"], 20);
    let messages = all_messages(&channel.tenant, c["id"].as_str().unwrap()).await;
    assert_eq!(messages.len(), 20);
    // Newest first, and the window counts from the latest customer message.
    let times: Vec<&str> = messages
        .iter()
        .map(|m| m["created_at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);
    assert_eq!(c["last_inbound_at"], messages[0]["created_at"]);
}

#[tokio::test]
async fn conversations_list_newest_first_with_filters_and_pages() {
    let tenant = unique_tenant();
    let wa = connect_for(&tenant, "whatsapp", json!({})).await;
    let ms = connect_for(&tenant, "messenger", json!({})).await;
    let now = FixtureVars::new(&wa, false).timestamp;
    let mut ids = Vec::new();
    for (i, (channel, provider, file)) in [
        (&wa, "whatsapp", "whatsapp/text.json"),
        (&ms, "messenger", "messenger/text.json"),
        (&wa, "whatsapp", "whatsapp/image.json"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut vars = FixtureVars::new(channel, false);
        vars.timestamp = now - 300 + i as i64 * 60;
        assert_eq!(
            post_meta(provider, &vars.render(&fixture(file)))
                .await
                .status,
            200
        );
        ids.push(vars.sender);
    }
    let all = all_conversations(&tenant).await;
    assert_eq!(all.len(), 3);
    let order: Vec<&str> = all
        .iter()
        .map(|c| c["customer"]["external_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        vec![ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]
    );

    let admin = token(&tenant, "admin");
    let only_wa = get("/conversations?channel=whatsapp", Some(&admin)).await;
    assert_eq!(only_wa.body["items"].as_array().unwrap().len(), 2);
    let by_id = get(
        &format!("/conversations?channel_id={}", ms.id),
        Some(&admin),
    )
    .await;
    assert_eq!(by_id.body["items"].as_array().unwrap().len(), 1);
    let closed = get("/conversations?status=closed", Some(&admin)).await;
    assert_eq!(closed.body["items"], json!([]));
    let labelled = get("/conversations?label=vip", Some(&admin)).await;
    assert_eq!(labelled.body["items"], json!([]));

    let first = get("/conversations?limit=2", Some(&admin)).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"].as_str().expect("more pages");
    let second = get(
        &format!("/conversations?limit=2&cursor={cursor}"),
        Some(&admin),
    )
    .await;
    assert_eq!(second.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        second.body["items"][0]["customer"]["external_id"],
        ids[0].as_str()
    );

    for bad in [
        "/conversations?status=pending",
        "/conversations?channel=telegram",
        "/conversations?limit=500",
    ] {
        assert_eq!(get(bad, Some(&admin)).await.status, 400, "{bad}");
    }
}

#[tokio::test]
async fn wechat_handshake_echoes_and_checks_the_signature() {
    let channel = connect("wechat").await;
    let base = format!("{}/webhooks/wechat/{}", stack().base_url, channel.id);
    let client = reqwest::Client::new();
    let ok = client
        .get(format!(
            "{base}?{}&echostr=5837397749",
            wechat_query(&channel.wechat_token)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.unwrap(), "5837397749");
    let forged = client
        .get(format!(
            "{base}?{}&echostr=1",
            wechat_query("not-the-token")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    let unknown = client
        .get(format!(
            "{}/webhooks/wechat/01NOSUCHCHANNEL?{}&echostr=1",
            stack().base_url,
            wechat_query("x")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
}

#[tokio::test]
async fn wechat_message_is_answered_success_and_stored() {
    let channel = connect("wechat").await;
    let vars = FixtureVars::new(&channel, true);
    let reply = post_wechat(&channel, &vars.render(&fixture("wechat/text.xml"))).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "success"));
    let c = &all_conversations(&channel.tenant).await[0];
    assert_eq!(c["channel"], "wechat");
    assert_eq!(c["window"]["mode"], "free_form");
    let messages = all_messages(&channel.tenant, c["id"].as_str().unwrap()).await;
    assert_eq!(messages[0]["provider_message_id"], vars.msg_id.as_str());
}

#[tokio::test]
async fn older_messages_never_move_the_conversation_back() {
    let channel = connect("messenger").await;
    let base = FixtureVars::new(&channel, false);
    // Newest first: a reply typed in Meta's inbox at T+10.
    let mut echo = base.clone();
    echo.timestamp += 10;
    echo.msg_id = format!("{}E", base.msg_id);
    assert_eq!(
        post_meta(
            "messenger",
            &echo.render(&fixture("messenger/echo_other_app.json"))
        )
        .await
        .status,
        200
    );
    // Then, delivered late, the customer's message of T+5 and one of T+1.
    for (offset, suffix) in [(5, "A"), (1, "B")] {
        let mut inbound = base.clone();
        inbound.timestamp += offset;
        inbound.msg_id = format!("{}{suffix}", base.msg_id);
        assert_eq!(
            post_meta(
                "messenger",
                &inbound.render(&fixture("messenger/text.json"))
            )
            .await
            .status,
            200
        );
    }
    let c = &all_conversations(&channel.tenant).await[0];
    let at = |offset: i64| {
        chrono::DateTime::from_timestamp(base.timestamp + offset, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    assert_eq!(
        c["last_message_at"],
        at(10),
        "the latest activity stays the reply"
    );
    assert_eq!(
        c["last_inbound_at"],
        at(5),
        "the window counts from the newest customer message"
    );
    assert_eq!(c["unread_count"], 2);
    assert_eq!(
        all_messages(&channel.tenant, c["id"].as_str().unwrap())
            .await
            .len(),
        3
    );
}

#[tokio::test]
async fn a_provider_time_in_the_future_is_replaced_by_the_receive_time() {
    let channel = connect("whatsapp").await;
    let mut vars = FixtureVars::new(&channel, false);
    let now = vars.timestamp;
    vars.timestamp += 400 * 24 * 3600;
    assert_eq!(
        post_meta("whatsapp", &vars.render(&fixture("whatsapp/text.json")))
            .await
            .status,
        200
    );
    let c = &all_conversations(&channel.tenant).await[0];
    let last =
        chrono::DateTime::parse_from_rfc3339(c["last_inbound_at"].as_str().unwrap()).unwrap();
    assert!((last.timestamp() - now).abs() < 60, "{last}");
}
