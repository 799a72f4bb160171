//! `POST /conversations/{id}/calls` and `GET /calls/{id}` under attack: bodies of every
//! wrong shape, sizes and template variants, the window rules of each channel, another
//! tenant's ids and odd ids, and who may call. A refusal is a 4xx with a code and writes
//! nothing: no call, no message, no send.

use integration_tests::{
    Reply, call, connect as connect_channel, connect_for, customer_wrote, get, post_json, token,
    unique_meta_id, unique_tenant,
};
use serde_json::{Value, json};

use super::{Room, no_server_panic, snapshot};

async fn post_raw(conversation: &str, bearer: Option<&str>, body: Option<Vec<u8>>) -> Reply {
    call(
        "POST",
        &format!("/conversations/{conversation}/calls"),
        bearer,
        body,
    )
    .await
}

#[tokio::test]
async fn hostile_bodies_are_refused_with_a_code_and_start_nothing() {
    let channel = connect_channel("whatsapp").await;
    let (conversation, customer) = customer_wrote(&channel, "whatsapp", 1).await;
    let agent = token(&channel.tenant, "agent");
    super::server_panics();
    let before = snapshot(&channel, &conversation, &customer).await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge = format!(r#"{{"note":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let long_name = json!({"template": {"name": "n".repeat(100_000), "language": "en_US"}});
    let long_name = long_name.to_string();
    let bodies: Vec<(Vec<u8>, &[u16])> = vec![
        (b"not json".to_vec(), &[400]),
        (b"{".to_vec(), &[400]),
        (vec![0xff, 0xfe, 0x00], &[400]),
        (b"[]".to_vec(), &[400, 422]),
        (b"1".to_vec(), &[400, 422]),
        (b"\"call\"".to_vec(), &[400, 422]),
        (b"true".to_vec(), &[400, 422]),
        (deep.into_bytes(), &[400, 422]),
        (huge.into_bytes(), &[413]),
        (long_name.into_bytes(), &[413]),
        (br#"{"video": true}"#.to_vec(), &[422]),
        (br#"{"expires_in": 60}"#.to_vec(), &[422]),
        (br#"{"expires_in": -1}"#.to_vec(), &[422]),
        (br#"{"expires_in": 1e309}"#.to_vec(), &[400, 422]),
        (
            br#"{"expires_at": "2999-01-01T00:00:00Z"}"#.to_vec(),
            &[422],
        ),
        (br#"{"status": "active"}"#.to_vec(), &[422]),
        (
            br#"{"template": null, "to": "+15550001111"}"#.to_vec(),
            &[422],
        ),
        (br#"{"template": "hello"}"#.to_vec(), &[422]),
        (br#"{"template": 5}"#.to_vec(), &[422]),
        (br#"{"template": []}"#.to_vec(), &[422]),
        (br#"{"template": {}}"#.to_vec(), &[422]),
        (
            br#"{"template": {"name": 1, "language": "en"}}"#.to_vec(),
            &[422],
        ),
        (
            br#"{"template": {"name": "x", "language": "en", "parameters": "p"}}"#.to_vec(),
            &[422],
        ),
        (
            br#"{"template": {"name": "x", "language": "en", "parameters": [1]}}"#.to_vec(),
            &[422],
        ),
        (
            br#"{"template": {"name": "x", "language": "en"}, "template": 1}"#.to_vec(),
            &[400, 422],
        ),
    ];
    for (body, statuses) in bodies {
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        let reply = post_raw(&conversation, Some(&agent), Some(body)).await;
        assert!(
            statuses.contains(&reply.status) && !reply.code().is_empty(),
            "{shown}: {} {}",
            reply.status,
            &reply.text[..reply.text.len().min(300)]
        );
    }
    assert_eq!(
        snapshot(&channel, &conversation, &customer).await,
        before,
        "a refused body wrote something"
    );
    no_server_panic();
}

#[tokio::test]
async fn an_empty_body_starts_a_call_and_each_post_is_its_own_call() {
    let channel = connect_channel("messenger").await;
    let (conversation, customer) = customer_wrote(&channel, "messenger", 1).await;
    let agent = token(&channel.tenant, "agent");
    // `null` is not an object: refused like any other non-object.
    let reply = post_raw(&conversation, Some(&agent), Some(b"null".to_vec())).await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "invalid_body"),
        "{}",
        reply.text
    );
    let mut ids = Vec::new();
    for body in [
        None,
        Some(b"".to_vec()),
        Some(b"  \n".to_vec()),
        Some(b"{}".to_vec()),
    ] {
        let reply = post_raw(&conversation, Some(&agent), body).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        ids.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    let after = snapshot(&channel, &conversation, &customer).await;
    assert_eq!((after.calls, after.sends), (ids, 4));
}

/// Asserts a call request is `status` with `code` and leaves everything as it was.
async fn refused(room: &Target, body: &Value, status: u16, code: &str) {
    let before = snapshot(&room.channel, &room.conversation, &room.customer).await;
    let reply = post_json(
        &format!("/conversations/{}/calls", room.conversation),
        Some(&token(&room.channel.tenant, "agent")),
        body,
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (status, code),
        "{body}: {}",
        reply.text
    );
    let after = snapshot(&room.channel, &room.conversation, &room.customer).await;
    assert_eq!(after, before, "{body}: a refused call wrote something");
}

struct Target {
    channel: integration_tests::TestChannel,
    conversation: String,
    customer: String,
}

async fn target(kind: &str, extra: Value, hours_ago: i64) -> Target {
    let channel = connect_for(&unique_tenant(), kind, extra).await;
    let (conversation, customer) = customer_wrote(&channel, kind, hours_ago).await;
    Target {
        channel,
        conversation,
        customer,
    }
}

#[tokio::test]
async fn a_template_that_cannot_go_is_refused_before_the_call_is_made() {
    let whatsapp = target("whatsapp", json!({"waba_id": unique_meta_id()}), 30).await;
    let template = post_json(
        "/templates",
        Some(&whatsapp.channel.admin()),
        &json!({"channel_id": whatsapp.channel.id, "name": "call_link", "language": "en_US",
                "category": "UTILITY", "components": [{"type": "BODY", "text": "Hi {{1}}, join: {{2}}"}]}),
    )
    .await;
    assert_eq!(template.body["status"], "APPROVED", "{}", template.text);
    refused(&whatsapp, &json!({}), 422, "template_required").await;
    refused(
        &whatsapp,
        &json!({"template": {"name": "no_such", "language": "en_US", "parameters": ["Ana"]}}),
        422,
        "unknown_template",
    )
    .await;
    refused(
        &whatsapp,
        &json!({"template": {"name": "call_link", "language": "en_US", "parameters": ["Ana", "x", "{{url}}"]}}),
        422,
        "template_parameters",
    )
    .await;
    refused(
        &whatsapp,
        &json!({"template": {"name": "call_link", "language": "en_US", "parameters": []}}),
        422,
        "template_parameters",
    )
    .await;
    // The right one goes, its link where `{{url}}` is.
    let reply = post_json(
        &format!("/conversations/{}/calls", whatsapp.conversation),
        Some(&token(&whatsapp.channel.tenant, "agent")),
        &json!({"template": {"name": "call_link", "language": "en_US", "parameters": ["Ana", "{{url}}"]}}),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let sent =
        integration_tests::accepted_sends_to(&whatsapp.channel.external_id, &whatsapp.customer);
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0]["body"]
            .to_string()
            .contains(reply.body["customer_url"].as_str().unwrap()),
        "{}",
        sent[0]
    );
}

#[tokio::test]
async fn a_channel_outside_its_window_refuses_the_call_before_it_is_made() {
    let messenger = target("messenger", json!({}), 8 * 24).await;
    refused(&messenger, &json!({}), 422, "window_closed").await;
    let instagram = target("instagram", json!({}), 30).await;
    refused(&instagram, &json!({}), 422, "window_closed").await;
    let wechat = target("wechat", json!({}), 30).await;
    refused(&wechat, &json!({}), 422, "window_closed").await;
    no_server_panic();
}

#[tokio::test]
async fn another_tenants_conversation_and_call_are_404_with_no_data() {
    let room = Room::open().await;
    let other = connect_channel("whatsapp").await;
    let (their_conversation, their_customer) = customer_wrote(&other, "whatsapp", 1).await;
    let theirs = token(&other.tenant, "admin");
    let mine = room.snapshot().await;
    let their_before = snapshot(&other, &their_conversation, &their_customer).await;

    let reply = post_json(
        &format!("/conversations/{}/calls", room.conversation),
        Some(&theirs),
        &json!({}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (404, "not_found"),
        "{}",
        reply.text
    );
    for path in [
        format!("/calls/{}", room.id),
        format!("/calls/{}", room.id.to_lowercase()),
    ] {
        let reply = get(&path, Some(&theirs)).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
        assert!(!reply.text.contains(&room.conversation), "{}", reply.text);
        assert!(!reply.text.contains(&room.id), "{}", reply.text);
    }
    assert_eq!(room.snapshot().await, mine);
    assert_eq!(
        snapshot(&other, &their_conversation, &their_customer).await,
        their_before
    );

    // Odd ids: 404 (never 400 that would tell ids apart, never 5xx).
    let agent = &room.agent;
    let ulid = ulid::Ulid::new().to_string();
    for id in [
        String::new(),
        "ca_".into(),
        "ca_x".into(),
        ulid.clone(),
        format!("ca_{ulid}x"),
        format!("ca_{}", "Z".repeat(26)),
        format!("ca_{}", "9".repeat(5000)),
        "ca_%00".into(),
        "%2e%2e".into(),
        "ca_%F0%9F%98%80".into(),
        "bi_01HZX7Y2Q3R4S5T6V7W8X9Y0Z1".into(),
    ] {
        let reply = get(&format!("/calls/{id}"), Some(agent)).await;
        assert!(
            matches!(reply.status, 404 | 405) && !reply.text.contains("panic"),
            "{id}: {} {}",
            reply.status,
            reply.text
        );
    }
    for conversation in [
        "x".to_owned(),
        "cv_".into(),
        format!("{}x", room.conversation),
        "%00".into(),
        room.conversation.to_uppercase(),
        "a".repeat(3000),
    ] {
        let reply = post_json(
            &format!("/conversations/{conversation}/calls"),
            Some(agent),
            &json!({}),
        )
        .await;
        assert_eq!(reply.status, 404, "{conversation}: {}", reply.text);
    }
    assert_eq!(room.snapshot().await, mine);
    no_server_panic();
}

#[tokio::test]
async fn agents_and_admins_may_call_and_nobody_else() {
    let channel = connect_channel("whatsapp").await;
    let (conversation, customer) = customer_wrote(&channel, "whatsapp", 1).await;
    let before = snapshot(&channel, &conversation, &customer).await;
    let path = format!("/conversations/{conversation}/calls");
    let forged = integration_tests::token(&channel.tenant, "agent")
        .rsplit_once('.')
        .map(|(head, _)| format!("{head}.AAAA"))
        .unwrap();
    for bearer in [None, Some(forged.as_str()), Some("not-a-jwt"), Some("")] {
        let reply = post_json(&path, bearer, &json!({})).await;
        assert_eq!(reply.status, 401, "{bearer:?}: {}", reply.text);
        assert!(!reply.code().is_empty());
    }
    for role in ["customer", "owner", ""] {
        let reply = post_json(&path, Some(&token(&channel.tenant, role)), &json!({})).await;
        assert!(
            matches!(reply.status, 401 | 403) && !reply.code().is_empty(),
            "{role}: {}",
            reply.text
        );
    }
    assert_eq!(snapshot(&channel, &conversation, &customer).await, before);
    for role in ["agent", "admin"] {
        let bearer = token(&channel.tenant, role);
        let reply = post_json(&path, Some(&bearer), &json!({})).await;
        assert_eq!(reply.status, 201, "{role}: {}", reply.text);
        let id = reply.body["id"].as_str().unwrap();
        // Either role of the tenant reads it.
        for reader in ["agent", "admin"] {
            let view = get(
                &format!("/calls/{id}"),
                Some(&token(&channel.tenant, reader)),
            )
            .await;
            assert_eq!(view.status, 200, "{}", view.text);
            assert_eq!(view.body["status"], "ringing");
        }
        let view = get(&format!("/calls/{id}"), None).await;
        assert_eq!(view.status, 401);
    }
}
