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

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to the signaling stage with `token`: the socket, or the refusal's HTTP status.
pub(crate) async fn join(signaling: &str, token: &str) -> Result<Socket, u16> {
    match tokio_tungstenite::connect_async(format!("{signaling}?token={token}")).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("signaling: {e}"),
    }
}

/// The next text frame, as JSON (5 s at most).
pub(crate) async fn next(socket: &mut Socket) -> serde_json::Value {
    use futures::StreamExt;
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next())
            .await
            .expect("a frame within 5 s")
            .expect("the socket is open")
            .expect("a frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
            return serde_json::from_str(&text).expect("JSON");
        }
    }
}

pub(crate) async fn say(socket: &mut Socket, frame: serde_json::Value) {
    use futures::SinkExt;
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            frame.to_string().into(),
        ))
        .await
        .expect("sent");
}

#[tokio::test]

async fn two_parties_signal_through_the_websocket_api_and_a_third_is_refused() {
    let room = crate::calls_hostile::Room::open().await;
    let (channel, conversation, agent, id) = (
        room.channel.clone(),
        room.conversation.clone(),
        room.agent.clone(),
        room.id.clone(),
    );
    let signaling = room.signaling.as_str();
    let (agent_token, customer_token) = (room.agent_token.clone(), room.customer_token.clone());

    assert_eq!(
        join(signaling, &"A".repeat(43)).await.err(),
        Some(403),
        "an unknown token"
    );
    let mut agent_socket = join(signaling, &agent_token)
        .await
        .expect("the agent joins");
    assert_eq!(
        join(signaling, &agent_token).await.err(),
        Some(403),
        "the agent's token twice"
    );
    let mut customer_socket = join(signaling, &customer_token)
        .await
        .expect("the customer joins");
    assert_eq!(
        next(&mut agent_socket).await,
        json!({"type": "peer_joined"})
    );
    assert_eq!(
        join(signaling, &customer_token).await.err(),
        Some(403),
        "a third party"
    );
    let view = get(&format!("/calls/{id}"), Some(&agent)).await;
    assert_eq!(view.body["status"], "active", "{}", view.text);
    assert_eq!(
        system_events(&channel.tenant, &conversation, "call_started")
            .await
            .len(),
        1
    );

    // Relayed to the other party only, with who sent it.
    say(
        &mut agent_socket,
        json!({"action": "signal", "type": "offer", "payload": {"type": "offer", "sdp": "v=0"}}),
    )
    .await;
    assert_eq!(
        next(&mut customer_socket).await,
        json!({"type": "offer", "payload": {"type": "offer", "sdp": "v=0"}, "from": "agent"})
    );
    say(
        &mut customer_socket,
        json!({"action": "signal", "type": "candidate", "payload": {"candidate": "c"}}),
    )
    .await;
    assert_eq!(next(&mut agent_socket).await["from"], "customer");
    // The page's keep-alive reaches the handler's `$default` route and nobody hears of it.
    say(&mut agent_socket, json!({"action": "ping"})).await;
    assert!(quiet(&mut agent_socket).await, "a ping is not answered");
    assert!(quiet(&mut customer_socket).await, "a ping is not relayed");
    // A frame that is not a signal is answered to its sender with an error.
    say(
        &mut customer_socket,
        json!({"action": "signal", "type": "hello"}),
    )
    .await;
    assert_eq!(next(&mut customer_socket).await["code"], "invalid_signal");

    // Hang up: the other side hears it, the call ends once with its duration.
    say(
        &mut customer_socket,
        json!({"action": "signal", "type": "bye"}),
    )
    .await;
    assert_eq!(next(&mut agent_socket).await["type"], "bye");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let view = get(&format!("/calls/{id}"), Some(&agent)).await;
        if view.body["status"] == "ended" || std::time::Instant::now() > deadline {
            assert_eq!(view.body["status"], "ended", "{}", view.text);
            assert!(view.body["duration_s"].is_i64());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The customer's socket is still open after its `bye`: the agent's frames no longer
    // reach it.
    say(
        &mut agent_socket,
        json!({"action": "signal", "type": "candidate", "payload": {"candidate": "late"}}),
    )
    .await;
    assert!(
        quiet(&mut customer_socket).await,
        "a frame reached a party that hung up"
    );
    drop(agent_socket);
    drop(customer_socket);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        system_events(&channel.tenant, &conversation, "call_ended")
            .await
            .len(),
        1
    );
}

/// No text frame arrives within half a second.
pub(crate) async fn quiet(socket: &mut Socket) -> bool {
    use futures::StreamExt;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) | Ok(None) | Ok(Some(Err(_))) => return true,
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_)))) => return false,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// A connection as API Gateway would describe one to the dev server's stage (`signaling`:
/// its `ws://` URL), but with no socket behind it: the management API answers
/// `GoneException` for it.
pub(crate) fn phantom_connection(
    signaling: &str,
    connected_at: chrono::DateTime<chrono::Utc>,
) -> local_stack::devserver::ws_event::ConnectionInfo {
    let (authority, stage) = signaling
        .trim_start_matches("ws://")
        .split_once('/')
        .expect("ws://<authority>/<stage>");
    local_stack::devserver::ws_event::ConnectionInfo {
        id: local_stack::devserver::ws_event::new_id(),
        connected_at,
        source_ip: "127.0.0.1".into(),
        user_agent: "test".into(),
        domain_name: authority.to_owned(),
        stage: stage.to_owned(),
        api_id: "local".into(),
    }
}

#[tokio::test]
async fn a_peer_gone_without_a_disconnect_is_answered_peer_left_and_the_call_ends() {
    let room = crate::calls_hostile::Room::open().await;
    let (channel, conversation, agent, id) = (
        room.channel.clone(),
        room.conversation.clone(),
        room.agent.clone(),
        room.id.clone(),
    );
    let signaling = room.signaling.as_str();
    let mut agent_socket = join(signaling, &room.agent_token)
        .await
        .expect("the agent joins");

    // The customer's `$connect` reaches the handler as API Gateway sends it, but its
    // connection is gone by the time the agent's offer is relayed (no `$disconnect` seen).
    let handler = local_stack::devserver::built(&stack().template, &stack().settings, "calls")
        .expect("the calls function builds")
        .websocket
        .expect("calls handles WebSocket events");
    // Connected a minute ago: past the time a `$connect` may take.
    let customer = phantom_connection(signaling, chrono::Utc::now() - chrono::Duration::minutes(1));
    let query = format!("token={}", room.customer_token);
    let connected = handler(local_stack::devserver::ws_event::connect_event(
        &customer,
        &Default::default(),
        Some(&query),
        chrono::Utc::now(),
    ))
    .await;
    assert_eq!(connected["statusCode"], 200, "{connected}");
    assert_eq!(
        next(&mut agent_socket).await,
        json!({"type": "peer_joined"})
    );

    say(
        &mut agent_socket,
        json!({"action": "signal", "type": "offer", "payload": {"type": "offer", "sdp": "v=0"}}),
    )
    .await;
    assert_eq!(next(&mut agent_socket).await, json!({"type": "peer_left"}));
    let view = get(&format!("/calls/{id}"), Some(&agent)).await;
    assert_eq!(view.body["status"], "ended", "{}", view.text);
    assert_eq!(
        system_events(&channel.tenant, &conversation, "call_ended")
            .await
            .len(),
        1
    );
    // The gone connection's late `$disconnect` changes nothing.
    let disconnected = handler(local_stack::devserver::ws_event::disconnect_event(
        &customer,
        1006,
        "Going away",
        chrono::Utc::now(),
    ))
    .await;
    assert_eq!(disconnected["statusCode"], 200, "{disconnected}");
    assert_eq!(
        system_events(&channel.tenant, &conversation, "call_ended")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_peer_still_inside_its_connect_is_not_taken_for_gone() {
    let room = crate::calls_hostile::Room::open().await;
    let signaling = room.signaling.as_str();
    let mut agent_socket = join(signaling, &room.agent_token)
        .await
        .expect("the agent joins");
    // API Gateway answers GoneException for a connection whose `$connect` has not
    // returned: a customer who connected a moment ago is not a customer who left.
    let handler = local_stack::devserver::built(&stack().template, &stack().settings, "calls")
        .expect("the calls function builds")
        .websocket
        .expect("calls handles WebSocket events");
    let customer = phantom_connection(signaling, chrono::Utc::now());
    let connected = handler(local_stack::devserver::ws_event::connect_event(
        &customer,
        &Default::default(),
        Some(&format!("token={}", room.customer_token)),
        chrono::Utc::now(),
    ))
    .await;
    assert_eq!(connected["statusCode"], 200, "{connected}");
    assert_eq!(
        next(&mut agent_socket).await,
        json!({"type": "peer_joined"})
    );
    say(
        &mut agent_socket,
        json!({"action": "signal", "type": "offer", "payload": {"type": "offer", "sdp": "v=0"}}),
    )
    .await;
    assert_eq!(next(&mut agent_socket).await["code"], "not_relayed");
    assert_eq!(room.view().await["status"], "active");
}

/// Waits until `js` (a function body returning a value) is truthy in the page: that value.
async fn until(
    browser: &integration_tests::browser::Browser,
    js: &str,
    what: &str,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let value = browser.eval(js).await;
        if value.as_bool() == Some(true) || (!value.is_null() && value != json!(false)) {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: still {value}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_agent_and_a_customer_see_each_other_in_two_browsers() {
    use integration_tests::browser::{Browser, Options};
    let channel = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let agent = token(&channel.tenant, "agent");
    let started = post_json(
        &format!("/conversations/{conversation}/calls"),
        Some(&agent),
        &json!({}),
    )
    .await;
    assert_eq!(started.status, 201, "{}", started.text);
    let id = started.body["id"].as_str().unwrap().to_owned();
    let (agent_page, customer_page) = tokio::join!(
        Browser::start(Options::default().with_fake_media()),
        Browser::start(Options::phone().with_fake_media())
    );
    let opened = std::time::Instant::now();
    agent_page
        .goto(started.body["agent_url"].as_str().unwrap())
        .await;
    customer_page
        .goto(started.body["customer_url"].as_str().unwrap())
        .await;
    for (page, who) in [(&agent_page, "agent"), (&customer_page, "customer")] {
        until(
            page,
            "return window.callPeer && window.callPeer.connectionState === 'connected'",
            who,
        )
        .await;
    }
    let connected_ms = opened.elapsed().as_millis();
    let frames = "return (async () => { const s = await window.callPeer.getStats(); let n = 0; \
        s.forEach(r => { if (r.type === 'inbound-rtp' && r.kind === 'video') n += r.framesDecoded || 0; }); \
        return n > 0 ? n : null; })()";
    for (page, who) in [(&agent_page, "agent"), (&customer_page, "customer")] {
        until(page, frames, who).await;
        assert_eq!(page.text("#state").await, "Connected");
        let violations = page.csp_violations().await;
        assert!(violations.is_empty(), "{who}: {violations:?}");
    }
    agent_page.screenshot("call-agent-1280").await;
    customer_page.screenshot("call-customer-375").await;
    eprintln!("both pages connected in {connected_ms} ms");
    // The agent hangs up: the customer's page shows the end, the call is ended.
    agent_page.click("#hangup").await;
    until(
        &customer_page,
        "return document.body.dataset.state === 'ended'",
        "customer ended",
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let view = get(&format!("/calls/{id}"), Some(&agent)).await;
        if view.body["status"] == "ended" || std::time::Instant::now() > deadline {
            assert_eq!(view.body["status"], "ended", "{}", view.text);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        system_events(&channel.tenant, &conversation, "call_ended")
            .await
            .len(),
        1
    );
}
