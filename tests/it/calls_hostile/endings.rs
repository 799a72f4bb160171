//! How a call ends under stress: both parties hanging up at the same moment, frames after
//! `bye`, a party leaving while the other floods, the management API failing, and the
//! call's expiry fired while both are connected, after the end, or five times at once.
//! Each of `call_started`, `call_ended`, `call_missed` is written at most once, and never
//! both of `call_ended` and `call_missed`.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::Barrier;

use super::{
    Room, drain, join, next, no_server_panic, phantom_connection, quiet, say, signal, ws_handler,
};
use integration_tests::stack;
use local_stack::devserver::ws_event::{self, ConnectionInfo};

#[tokio::test]
async fn both_saying_bye_at_once_end_the_call_once() {
    let first = Room::open().await;
    for round in 0..4 {
        let room = if round == 0 {
            None
        } else {
            Some(first.again().await)
        };
        let room = room.as_ref().unwrap_or(&first);
        let (mut agent, mut customer) = room.pair().await;
        tokio::join!(
            say(&mut agent, signal("bye", Value::Null)),
            say(&mut customer, signal("bye", Value::Null))
        );
        room.until_status("ended").await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(room.tally().await, [1, 1, 0], "round {round}");
    }
    no_server_panic();
}

#[tokio::test]
async fn both_dropping_at_once_end_the_call_once() {
    let first = Room::open().await;
    for round in 0..4 {
        let room = if round == 0 {
            None
        } else {
            Some(first.again().await)
        };
        let room = room.as_ref().unwrap_or(&first);
        let (agent, customer) = room.pair().await;
        drop((agent, customer));
        room.until_status("ended").await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(room.tally().await, [1, 1, 0], "round {round}");
    }
    no_server_panic();
}

/// Both parties connected through the handler itself (connections API Gateway would
/// describe, with no socket behind them): the agent's and the customer's.
async fn paired_through_the_handler(
    room: &Room,
    handler: &local_stack::functions::WsHandler,
) -> (ConnectionInfo, ConnectionInfo) {
    let agent = phantom_connection(&room.signaling, chrono::Utc::now());
    let customer = phantom_connection(&room.signaling, chrono::Utc::now());
    for (connection, token) in [
        (&agent, &room.agent_token),
        (&customer, &room.customer_token),
    ] {
        let answer = handler(ws_event::connect_event(
            connection,
            &Default::default(),
            Some(&format!("token={token}")),
            chrono::Utc::now(),
        ))
        .await;
        assert_eq!(answer["statusCode"], 200, "{answer}");
    }
    assert_eq!(room.view().await["status"], "active");
    (agent, customer)
}

#[tokio::test]
async fn two_disconnects_delivered_at_once_end_the_call_once() {
    let handler = ws_handler();
    let first = Room::open().await;
    for round in 0..4 {
        let room = if round == 0 {
            None
        } else {
            Some(first.again().await)
        };
        let room = room.as_ref().unwrap_or(&first);
        let (agent, customer) = paired_through_the_handler(room, &handler).await;
        let now = chrono::Utc::now();
        let (a, c) = tokio::join!(
            handler(ws_event::disconnect_event(&agent, 1001, "Going away", now)),
            handler(ws_event::disconnect_event(
                &customer,
                1001,
                "Going away",
                now
            ))
        );
        assert_eq!(
            (a["statusCode"].clone(), c["statusCode"].clone()),
            (json!(200), json!(200))
        );
        let view = room.view().await;
        assert_eq!(view["status"], "ended", "{view}");
        assert_eq!(room.tally().await, [1, 1, 0], "round {round}");
    }
    no_server_panic();
}

#[tokio::test]
async fn a_bye_and_a_disconnect_delivered_at_once_end_the_call_once() {
    let handler = ws_handler();
    let room = Room::open().await;
    let (agent, customer) = paired_through_the_handler(&room, &handler).await;
    let now = chrono::Utc::now();
    let bye = signal("bye", Value::Null).to_string();
    // API Gateway does not order one connection's invocations: its `bye` and its close,
    // and the other party's close, all at once.
    let (a, b, c) = tokio::join!(
        handler(ws_event::message_event(&agent, "signal", &bye, now)),
        handler(ws_event::disconnect_event(&agent, 1000, "", now)),
        handler(ws_event::disconnect_event(&customer, 1001, "", now))
    );
    for answer in [a, b, c] {
        assert_eq!(answer["statusCode"], 200, "{answer}");
    }
    assert_eq!(room.view().await["status"], "ended");
    assert_eq!(room.tally().await, [1, 1, 0]);
    no_server_panic();
}

#[tokio::test]
async fn after_bye_frames_reach_nobody_and_nobody_comes_back() {
    let room = Room::open().await;
    let (mut agent, mut customer) = room.pair().await;
    say(&mut agent, signal("bye", Value::Null)).await;
    assert_eq!(next(&mut customer).await["type"], "bye");
    let view = room.until_status("ended").await;
    assert!(
        view["duration_s"].is_i64() && view["ended_at"].is_string(),
        "{view}"
    );
    // The peer is told the other left, once.
    assert_eq!(
        drain(&mut customer, 500).await,
        vec![json!({"type": "peer_left"})]
    );

    // The one who said bye keeps its socket: its frames go nowhere, it is told why.
    for kind in ["offer", "candidate", "bye"] {
        say(&mut agent, signal(kind, json!("late"))).await;
        let answer = next(&mut agent).await;
        assert_eq!(
            (answer["type"].as_str(), answer["code"].as_str()),
            (Some("error"), Some("not_in_a_call")),
            "{answer}"
        );
    }
    assert!(
        quiet(&mut customer).await,
        "a frame after bye reached the peer"
    );
    // The other's frames reach nobody either; its own bye changes nothing.
    say(&mut customer, signal("candidate", json!("late"))).await;
    say(&mut customer, signal("bye", Value::Null)).await;
    let heard = drain(&mut agent, 500).await;
    assert!(heard.is_empty(), "{heard:?}");
    for token in [&room.agent_token, &room.customer_token] {
        assert_eq!(join(&room.signaling, token).await.err(), Some(403));
    }
    drop((agent, customer));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(room.view().await, view, "the ended call changed");
    assert_eq!(room.tally().await, [1, 1, 0]);
    no_server_panic();
}

#[tokio::test]
async fn a_party_leaving_while_the_other_floods_ends_the_call_once() {
    let first = Room::open().await;
    for round in 0..3 {
        let room = if round == 0 {
            None
        } else {
            Some(first.again().await)
        };
        let room = room.as_ref().unwrap_or(&first);
        let (agent, mut customer) = room.pair().await;
        let flood = tokio::spawn(async move {
            for i in 0..60 {
                say(&mut customer, signal("candidate", json!({"i": i}))).await;
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            customer
        });
        tokio::time::sleep(std::time::Duration::from_millis(20 * (round + 1))).await;
        drop(agent);
        let mut customer = flood.await.expect("flooded");
        let heard = drain(&mut customer, 1500).await;
        // Frames posted while the agent's socket is closed but its `$disconnect` not yet
        // handled may be answered `not_relayed` (a connection this young may still be
        // inside its `$connect`); then the disconnect tells `peer_left`.
        assert!(
            heard
                .iter()
                .all(|f| f == &json!({"type": "peer_left"}) || f["code"] == "not_relayed"),
            "round {round}: {heard:?}"
        );
        assert!(
            heard.iter().any(|f| f == &json!({"type": "peer_left"})),
            "round {round}: never told peer_left: {heard:?}"
        );
        room.until_status("ended").await;
        assert_eq!(room.tally().await, [1, 1, 0], "round {round}");
    }
    no_server_panic();
}

#[tokio::test]
async fn the_expiry_firing_during_a_live_call_changes_nothing_and_a_late_one_neither() {
    let room = Room::open().await;
    let (mut agent, mut customer) = room.pair().await;
    room.fire_expiry().await;
    let view = room.view().await;
    assert_eq!(view["status"], "active", "{view}");
    say(&mut agent, signal("offer", json!("o"))).await;
    assert_eq!(next(&mut customer).await["payload"], "o");
    say(&mut customer, signal("bye", Value::Null)).await;
    assert_eq!(next(&mut agent).await["type"], "bye");
    let ended = room.until_status("ended").await;
    room.fire_expiry().await;
    assert_eq!(room.view().await, ended);
    assert_eq!(room.tally().await, [1, 1, 0]);
}

#[tokio::test]
async fn the_same_expiry_five_times_at_once_misses_the_call_once() {
    let first = Room::open().await;
    for round in 0..3 {
        let room = Arc::new(first.again().await);
        // One party waited alone: still missed.
        let alone = if round == 1 {
            Some(room.agent_joins().await.expect("the agent joins"))
        } else {
            None
        };
        let barrier = Arc::new(Barrier::new(5));
        let fires = (0..5).map(|_| {
            let (room, barrier) = (room.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                room.fire_expiry().await;
            })
        });
        for fire in futures::future::join_all(fires).await {
            fire.expect("fired");
        }
        assert_eq!(room.view().await["status"], "missed");
        assert_eq!(room.tally().await, [0, 0, 1], "round {round}");
        if let Some(socket) = alone {
            drop(socket);
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            assert_eq!(
                room.tally().await,
                [0, 0, 1],
                "the lone party's leave wrote more"
            );
            assert_eq!(room.view().await["status"], "missed");
        }
    }
}

/// A stand-in for API Gateway's management API that refuses every post with a throttling
/// error (`LimitExceededException`, 429): what a busy account gets. Its URL.
async fn throttled_management_api() -> String {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let router = axum::Router::new().fallback(|| async {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("x-amzn-errortype", "LimitExceededException"),
                ("content-type", "application/json"),
            ],
            r#"{"message":"Too Many Requests"}"#,
        )
            .into_response()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/ws")
}

#[tokio::test]
async fn a_relay_the_management_api_refuses_does_not_end_a_live_call() {
    let room = Room::open().await;
    let mut settings = stack().settings.clone();
    settings.overrides.insert(
        "SIGNALING_MANAGEMENT_URL".into(),
        throttled_management_api().await,
    );
    let handler = local_stack::devserver::built(&stack().template, &settings, "calls")
        .expect("the calls function builds")
        .websocket
        .expect("calls handles WebSocket events");
    let (agent, _customer) = paired_through_the_handler(&room, &handler).await;
    let offer = signal("offer", json!({"sdp": "v=0"})).to_string();
    let answer = handler(ws_event::message_event(
        &agent,
        "signal",
        &offer,
        chrono::Utc::now(),
    ))
    .await;
    assert_eq!(answer["statusCode"], 200, "{answer}");
    // The customer is still there: a throttled post is not a `GoneException`.
    let view = room.view().await;
    assert_eq!(view["status"], "active", "{view}");
    assert_eq!(room.tally().await, [1, 0, 0]);
    no_server_panic();
}
