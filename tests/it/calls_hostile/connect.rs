//! `$connect` under attack: no token, bad tokens, the tokens of calls that are over, a
//! token reused, a third party, two clients racing for one role, both parties connecting
//! at the same moment, and events API Gateway could send that the handler must survive.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::Barrier;

use super::{
    Room, Socket, join, next, no_server_panic, phantom_connection, say, signal, ws_handler,
};
use local_stack::devserver::ws_event;

/// The next frame that is not a `peer_joined` notice.
async fn next_signal(socket: &mut Socket) -> Value {
    loop {
        let frame = next(socket).await;
        if frame["type"] != "peer_joined" {
            return frame;
        }
    }
}

#[tokio::test]
async fn connecting_without_a_good_token_is_refused_with_403() {
    let room = Room::open().await;
    let real = room.customer_token.clone();
    let base = &room.signaling;
    let encoded: String = real.bytes().map(|b| format!("%{b:02X}")).collect();
    for query in [
        String::new(),
        "?".into(),
        "?token".into(),
        "?token=".into(),
        format!("?token={}", "A".repeat(43)),
        format!("?token={}", &real[..42]),
        format!("?token={real}A"),
        format!("?token={}", real.to_lowercase()),
        format!("?Token={real}"),
        format!("?tok={real}"),
        format!("?token={}%00", &real[..42]),
        format!("?token={}%C3%A9", &real[..41]),
        format!("?token={}", "x".repeat(6000)),
        format!("?token={}", room.id),
        "?token=%".into(),
        "?token=%FF%FE".into(),
    ] {
        let url = format!("{base}{query}");
        let refused = match tokio_tungstenite::connect_async(&url).await {
            Ok(_) => None,
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Some(r.status().as_u16()),
            Err(e) => panic!("{query}: {e}"),
        };
        assert!(
            matches!(refused, Some(403 | 414 | 431)),
            "{}: {refused:?}",
            &query[..query.len().min(60)]
        );
    }
    // The token percent-encoded is the token (API Gateway decodes the query string).
    let socket = tokio_tungstenite::connect_async(format!("{base}?token={encoded}")).await;
    assert!(socket.is_ok(), "{socket:?}");
    no_server_panic();
}

#[tokio::test]
async fn the_tokens_of_a_call_that_is_over_connect_nobody() {
    let missed = Room::open().await;
    missed.fire_expiry().await;
    let ended = missed.again().await;
    let (mut agent, customer) = ended.pair().await;
    drop(customer);
    assert_eq!(next(&mut agent).await["type"], "peer_left");
    ended.until_status("ended").await;
    let expired = missed.again().await;
    super::page::expire_now(&expired).await;
    for (what, room) in [
        ("missed", &missed),
        ("ended", &ended),
        ("expired", &expired),
    ] {
        for token in [&room.agent_token, &room.customer_token] {
            assert_eq!(
                join(&room.signaling, token).await.err(),
                Some(403),
                "{what}"
            );
        }
    }
    assert_eq!(expired.view().await["status"], "ringing");
    assert_eq!(expired.tally().await, [0, 0, 0]);
}

#[tokio::test]
async fn a_token_admits_one_connection_at_a_time_and_again_after_a_reload_while_ringing() {
    let room = Room::open().await;
    let first = room.agent_joins().await.expect("the agent joins");
    assert_eq!(
        room.agent_joins().await.err(),
        Some(403),
        "the same token twice"
    );
    // A reload: the page's socket closes, a new one opens with the same token.
    drop(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut agent = loop {
        match room.agent_joins().await {
            Ok(socket) => break socket,
            Err(403) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(status) => panic!("the agent cannot come back: {status}"),
        }
    };
    assert_eq!(room.view().await["status"], "ringing");
    let mut customer = room.customer_joins().await.expect("the customer joins");
    assert_eq!(next(&mut agent).await, json!({"type": "peer_joined"}));
    say(&mut customer, signal("offer", json!({"sdp": "c"}))).await;
    assert_eq!(next(&mut agent).await["payload"], json!({"sdp": "c"}));
    say(&mut agent, signal("answer", json!({"sdp": "a"}))).await;
    assert_eq!(next(&mut customer).await["payload"], json!({"sdp": "a"}));
    assert_eq!(room.tally().await, [1, 0, 0]);
}

/// `n` connections with `token` at the same moment: the sockets admitted and the refusals.
async fn race(room: &Room, token: &str, n: usize) -> (Vec<Socket>, Vec<u16>) {
    let barrier = Arc::new(Barrier::new(n));
    let attempts = (0..n).map(|_| {
        let barrier = barrier.clone();
        let (signaling, token) = (room.signaling.clone(), token.to_owned());
        tokio::spawn(async move {
            barrier.wait().await;
            join(&signaling, &token).await
        })
    });
    let mut admitted = Vec::new();
    let mut refused = Vec::new();
    for result in futures::future::join_all(attempts).await {
        match result.expect("joined") {
            Ok(socket) => admitted.push(socket),
            Err(status) => refused.push(status),
        }
    }
    (admitted, refused)
}

#[tokio::test]
async fn clients_racing_for_one_role_admit_exactly_one() {
    let room = Room::open().await;
    let (mut agents, refused) = race(&room, &room.agent_token.clone(), 6).await;
    assert_eq!((agents.len(), refused), (1, vec![403; 5]));
    let (mut customers, refused) = race(&room, &room.customer_token.clone(), 6).await;
    assert_eq!((customers.len(), refused), (1, vec![403; 5]));
    let (agent, customer) = (&mut agents[0], &mut customers[0]);
    assert_eq!(next(agent).await, json!({"type": "peer_joined"}));
    assert!(super::quiet(agent).await, "one peer_joined only");
    say(agent, signal("offer", json!("o"))).await;
    assert_eq!(next(customer).await["payload"], "o");
    assert_eq!(room.tally().await, [1, 0, 0]);
    assert_eq!(room.view().await["status"], "active");
    no_server_panic();
}

#[tokio::test]
async fn both_parties_connecting_at_once_are_paired_whatever_the_order() {
    let first = Room::open().await;
    for round in 0..6 {
        let room = if round == 0 {
            None
        } else {
            Some(first.again().await)
        };
        let room = room.as_ref().unwrap_or(&first);
        let barrier = Arc::new(Barrier::new(2));
        let go = |token: String| {
            let (barrier, signaling) = (barrier.clone(), room.signaling.clone());
            async move {
                barrier.wait().await;
                join(&signaling, &token).await
            }
        };
        let (agent, customer) = tokio::join!(
            tokio::spawn(go(room.agent_token.clone())),
            tokio::spawn(go(room.customer_token.clone()))
        );
        let mut agent = agent.unwrap().expect("the agent joins");
        let mut customer = customer.unwrap().expect("the customer joins");
        // Both may send at once (perfect negotiation): each hears the other.
        say(&mut agent, signal("offer", json!({"from": "a"}))).await;
        say(&mut customer, signal("offer", json!({"from": "c"}))).await;
        let heard = next_signal(&mut customer).await;
        assert_eq!(
            heard["payload"],
            json!({"from": "a"}),
            "round {round}: {heard}"
        );
        let heard = next_signal(&mut agent).await;
        assert_eq!(
            heard["payload"],
            json!({"from": "c"}),
            "round {round}: {heard}"
        );
        assert_eq!(room.tally().await, [1, 0, 0], "round {round}");
        assert_eq!(room.view().await["status"], "active");
    }
    no_server_panic();
}

#[tokio::test]
async fn events_the_handler_may_get_are_answered_never_with_500() {
    let room = Room::open().await;
    let handler = ws_handler();
    let stranger = phantom_connection(&room.signaling, chrono::Utc::now());
    let now = chrono::Utc::now();
    let headers = Default::default();
    let mut events = vec![
        ws_event::connect_event(&stranger, &headers, None, now),
        ws_event::connect_event(&stranger, &headers, Some("token="), now),
        ws_event::connect_event(
            &stranger,
            &headers,
            Some(&format!("token={}", "é".repeat(43))),
            now,
        ),
        ws_event::message_event(
            &stranger,
            "signal",
            r#"{"action":"signal","type":"offer"}"#,
            now,
        ),
        ws_event::message_event(&stranger, "$default", "", now),
        ws_event::message_event(&stranger, "$default", "\u{0}", now),
        ws_event::message_event(&stranger, "nope", "{}", now),
        ws_event::disconnect_event(&stranger, 1006, "", now),
    ];
    let mut no_body = ws_event::message_event(&stranger, "$default", "", now);
    no_body.as_object_mut().unwrap().remove("body");
    events.push(no_body);
    let mut null_body = ws_event::message_event(&stranger, "signal", "", now);
    null_body["body"] = Value::Null;
    events.push(null_body);
    for event in events {
        let route = event["requestContext"]["routeKey"].clone();
        let answer = handler(event).await;
        let status = answer["statusCode"].as_u64();
        assert!(matches!(status, Some(200 | 400 | 403)), "{route}: {answer}");
    }
    // Nothing of that touched the call.
    assert_eq!(room.view().await["status"], "ringing");
    assert_eq!(room.tally().await, [0, 0, 0]);
    no_server_panic();
}
