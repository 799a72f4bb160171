//! Video calls over HTTP (SPEC §12): a call started from a conversation sends the customer
//! a link, shows as ringing, serves each party its page with a policy that lets it reach
//! only the signaling API, and is missed when its expiry fires with nobody in it.

use integration_tests::{
    accepted_sends_to, connect, customer_wrote, get, post_json, scheduler_handler, stack,
    system_events, token,
};
use serde_json::json;

#[tokio::test]
async fn a_call_sends_the_customer_a_link_and_is_missed_when_nobody_joins() {
    let channel = connect("whatsapp").await;
    let (conversation, wa_id) = customer_wrote(&channel, "whatsapp", 1).await;
    let agent = token(&channel.tenant, "agent");
    let started = post_json(
        &format!("/conversations/{conversation}/calls"),
        Some(&agent),
        &json!({}),
    )
    .await;
    assert_eq!(started.status, 201, "{}", started.text);
    let call = &started.body;
    let base = &stack().base_url;
    let customer_url = call["customer_url"].as_str().unwrap();
    assert!(customer_url.starts_with(&format!("{base}/call/")));
    assert_ne!(call["agent_url"], call["customer_url"]);
    assert!(call["signaling_url"].as_str().unwrap().ends_with("/ws"));
    let sent = accepted_sends_to(&channel.external_id, &wa_id);
    assert!(
        sent[0]["body"]["text"]["body"]
            .as_str()
            .unwrap()
            .ends_with(customer_url)
    );
    let id = call["id"].as_str().unwrap();
    let view = get(&format!("/calls/{id}"), Some(&agent)).await;
    assert_eq!(view.status, 200, "{}", view.text);
    assert_eq!(view.body["status"], "ringing");
    assert_eq!(view.body["message_id"], call["message_id"]);

    // Each party's page: 200, a policy that connects only to the signaling API.
    let page = reqwest::get(customer_url).await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("connect-src ws://") && csp.contains("script-src 'sha256-"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("\"role\":\"customer\"") && html.contains("Hang up"));
    assert_eq!(
        reqwest::get(format!("{base}/call/{}", "A".repeat(43)))
            .await
            .unwrap()
            .status(),
        404
    );

    // Another tenant sees nothing.
    let other = connect("whatsapp").await;
    let theirs = token(&other.tenant, "agent");
    assert_eq!(
        get(&format!("/calls/{id}"), Some(&theirs)).await.status,
        404
    );
    assert_eq!(
        post_json(
            &format!("/conversations/{conversation}/calls"),
            Some(&theirs),
            &json!({})
        )
        .await
        .status,
        404
    );
    let bad = post_json(
        &format!("/conversations/{conversation}/calls"),
        Some(&agent),
        &json!({"video": true}),
    )
    .await;
    assert_eq!((bad.status, bad.code()), (422, "invalid_body"));

    // Its expiry fires (as EventBridge Scheduler would, with the schedule's input).
    let fire = scheduler_handler();
    fire(json!({"kind": "call_expiry", "tenant_id": channel.tenant, "call_id": id}))
        .await
        .unwrap();
    let view = get(&format!("/calls/{id}"), Some(&agent)).await;
    assert_eq!(view.body["status"], "missed");
    assert_eq!(
        system_events(&channel.tenant, &conversation, "call_missed")
            .await
            .len(),
        1
    );
    fire(json!({"kind": "call_expiry", "tenant_id": channel.tenant, "call_id": id}))
        .await
        .unwrap();
    assert_eq!(
        system_events(&channel.tenant, &conversation, "call_missed")
            .await
            .len(),
        1,
        "once"
    );
    assert_eq!(reqwest::get(customer_url).await.unwrap().status(), 410);
}

#[tokio::test]
async fn outside_the_whatsapp_window_a_call_link_needs_a_template() {
    let channel = connect("whatsapp").await;
    let (conversation, wa_id) = customer_wrote(&channel, "whatsapp", 30).await;
    let reply = post_json(
        &format!("/conversations/{conversation}/calls"),
        Some(&token(&channel.tenant, "agent")),
        &json!({}),
    )
    .await;
    assert_eq!((reply.status, reply.code()), (422, "template_required"));
    assert!(accepted_sends_to(&channel.external_id, &wa_id).is_empty());
}
