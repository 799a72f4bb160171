//! Adversarial review of the send path: hostile ids, keys and bodies get a 4xx with a code
//! (never a 5xx or a send), another tenant's ids are not found, and WeChat's reply quota
//! holds under parallel sends.

use chrono::{Duration, Utc};
use integration_tests::{
    FixtureVars, Reply, TestChannel, connect, fixture, post_meta, post_wechat, sandbox_outbox,
    stack, token,
};
use serde_json::{Value, json};
use shared::domain::conversation::conversation_id;
use shared::domain::ids::ChannelId;

async fn customer_wrote(channel: &TestChannel, kind: &str) -> String {
    let mut vars = FixtureVars::new(channel, kind == "wechat");
    vars.timestamp = (Utc::now() - Duration::minutes(5)).timestamp();
    let reply = match kind {
        "wechat" => post_wechat(channel, &vars.render(&fixture("wechat/text.xml"))).await,
        _ => post_meta(kind, &vars.render(&fixture(&format!("{kind}/text.json")))).await,
    };
    assert_eq!(reply.status, 200, "{}", reply.text);
    conversation_id(&ChannelId::parse(&channel.id).unwrap(), &vars.sender)
}

async fn send_raw(tenant: &str, path_id: &str, body: Vec<u8>, key: Option<&[u8]>) -> Reply {
    let mut request = reqwest::Client::new()
        .post(format!(
            "{}/conversations/{path_id}/messages",
            stack().base_url
        ))
        .bearer_auth(token(tenant, "agent"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(k) = key {
        request = request.header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes(k).unwrap(),
        );
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text.clone())),
        text,
    }
}

async fn send(channel: &TestChannel, conversation: &str, body: Value, key: Option<&str>) -> Reply {
    send_raw(
        &channel.tenant,
        conversation,
        body.to_string().into_bytes(),
        key.map(str::as_bytes),
    )
    .await
}

#[tokio::test]
async fn hostile_path_ids_keys_and_bodies_get_a_4xx_with_a_code_and_send_nothing() {
    let channel = connect("whatsapp").await;
    let conversation = customer_wrote(&channel, "whatsapp").await;
    let hi = json!({"kind": "text", "text": "hi"});
    let long_id = format!("cv_{}", "a".repeat(5000));
    for id in [
        "%F0%9F%98%80",
        "cv_%23TENANT%23x",
        "cv_..%2F..%2Fchannels",
        long_id.as_str(),
        "cv_01JDX3M5Q8ZJ6Y7K2W9V4T1R0S_%00",
    ] {
        let reply = send(&channel, id, hi.clone(), Some("k")).await;
        assert!(
            (400..500).contains(&reply.status) && reply.body["error"]["code"].is_string(),
            "{id}: {} {}",
            reply.status,
            reply.text
        );
    }
    let long_key = "k".repeat(256);
    let keys: [&[u8]; 4] = [
        b"caf\xc3\xa9",
        b"\xff\xfe",
        long_key.as_bytes(),
        b"tab\there",
    ];
    for key in keys {
        let reply = send_raw(
            &channel.tenant,
            &conversation,
            hi.to_string().into_bytes(),
            Some(key),
        )
        .await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "invalid_idempotency_key"),
            "{key:?}"
        );
    }
    let huge = "x".repeat(70 * 1024);
    let bodies = [
        json!({"kind": "image", "media_id": "#MEDIA#x"}),
        json!({"kind": "image", "media_id": "m".repeat(5000)}),
        json!({"kind": "template", "template": {"name": "😀".repeat(300), "language": "en_US"}}),
        json!({"kind": "template", "template": {"name": "x", "language": "en", "parameters": [1]}}),
        json!({"kind": "text", "text": "😀".repeat(4097)}),
        json!({"kind": "text", "text": "\u{0000}\u{202e}"}),
        json!({"kind": "text", "text": huge}),
        json!([1, 2]),
        json!(null),
    ];
    for body in bodies {
        let reply = send(&channel, &conversation, body.clone(), None).await;
        let shown: String = body.to_string().chars().take(80).collect();
        assert!(
            reply.status == 202
                || ((400..500).contains(&reply.status) && reply.body["error"]["code"].is_string()),
            "{shown}: {} {}",
            reply.status,
            reply.text
        );
    }
}

#[tokio::test]
async fn another_tenants_media_id_cannot_be_sent() {
    let owner = connect("whatsapp").await;
    let stranger = connect("whatsapp").await;
    let theirs = customer_wrote(&stranger, "whatsapp").await;
    // The owner's upload: a pending media record the stranger names.
    let created = integration_tests::post_json(
        "/media",
        Some(&token(&owner.tenant, "agent")),
        &json!({"filename": "a.jpg", "content_type": "image/jpeg", "size": 1000}),
    )
    .await;
    let media_id = created.body["media_id"]
        .as_str()
        .or_else(|| created.body["id"].as_str())
        .unwrap_or_else(|| panic!("{}", created.text))
        .to_owned();
    let reply = send(
        &stranger,
        &theirs,
        json!({"kind": "image", "media_id": media_id}),
        None,
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "unknown_media"),
        "{}",
        reply.text
    );
    assert!(sandbox_outbox(&stranger.external_id).is_empty());
}

#[tokio::test]
async fn parallel_wechat_sends_never_pass_five_replies_and_the_rest_are_refused_cleanly() {
    let channel = connect("wechat").await;
    let conversation = customer_wrote(&channel, "wechat").await;
    let racers = (0..12).map(|i| {
        send(
            &channel,
            &conversation,
            json!({"kind": "text", "text": format!("racer {i}")}),
            None,
        )
    });
    let replies = futures::future::join_all(racers).await;
    let accepted = replies.iter().filter(|r| r.status == 202).count();
    let refused = replies
        .iter()
        .filter(|r| r.status == 422 && r.code() == "window_closed")
        .count();
    assert_eq!(
        (accepted, refused),
        (5, 7),
        "{:?}",
        replies
            .iter()
            .map(|r| (r.status, &r.text))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn hostile_ids_in_other_routes_are_not_found_never_a_5xx() {
    let channel = connect("whatsapp").await;
    let agent = token(&channel.tenant, "agent");
    let admin = token(&channel.tenant, "admin");
    let long = "a".repeat(3000);
    for id in [
        "%23TEMPLATE%23x",
        "tp_%00",
        "..%2F..",
        long.as_str(),
        "%F0%9F%98%80",
    ] {
        for (method, path, bearer) in [
            ("DELETE", format!("/templates/{id}"), &admin),
            ("GET", format!("/media/{id}"), &agent),
            ("GET", format!("/conversations/{id}"), &agent),
            ("GET", format!("/conversations/{id}/messages"), &agent),
        ] {
            let reply = integration_tests::call(method, &path, Some(bearer), None).await;
            assert!(
                (400..500).contains(&reply.status) && reply.body["error"]["code"].is_string(),
                "{method} {}: {} {}",
                &path[..path.len().min(60)],
                reply.status,
                reply.text
            );
        }
    }
    let start = integration_tests::post_json(
        "/conversations",
        Some(&agent),
        &json!({"channel_id": channel.id, "to": "+", "template": {"name": "x", "language": "en"}}),
    )
    .await;
    assert_eq!(
        (start.status, start.code()),
        (422, "invalid_recipient"),
        "{}",
        start.text
    );
}

#[tokio::test]
async fn racing_repeats_of_one_key_for_the_last_wechat_reply_all_get_the_same_message() {
    let channel = connect("wechat").await;
    let conversation = customer_wrote(&channel, "wechat").await;
    for i in 0..4 {
        let body = json!({"kind": "text", "text": format!("reply {i}")});
        assert_eq!(send(&channel, &conversation, body, None).await.status, 202);
    }
    let racers = (0..10).map(|_| {
        send(
            &channel,
            &conversation,
            json!({"kind": "text", "text": "the last one"}),
            Some("last-reply"),
        )
    });
    let replies = futures::future::join_all(racers).await;
    let statuses: Vec<(u16, String)> = replies
        .iter()
        .map(|r| {
            (
                r.status,
                r.body["id"].as_str().unwrap_or(r.code()).to_owned(),
            )
        })
        .collect();
    let first = &statuses[0];
    assert!(
        first.0 == 202 && statuses.iter().all(|s| s == first),
        "{statuses:?}"
    );
}
