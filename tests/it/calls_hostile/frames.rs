//! Hostile frames on a live call: not JSON, wrong types, unknown and spoofed `type`s, a
//! forged `from`, 32 KB and one byte more, binary, a flood; and calls side by side, whose
//! frames must never cross.

use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{Room, Socket, close_code, drain, next, no_server_panic, quiet, say, say_raw, signal};

#[tokio::test]
async fn frames_that_are_not_signals_are_answered_to_their_sender_only() {
    let room = Room::open().await;
    let (mut agent, mut customer) = room.pair().await;
    let deep = format!(
        r#"{{"action":"signal","type":"offer","payload":{}{}}}"#,
        "[".repeat(2000),
        "]".repeat(2000)
    );
    let bad: Vec<String> = [
        "not json",
        "",
        " ",
        "null",
        "[]",
        "42",
        "\"signal\"",
        "{}",
        r#"{"action":"signal"}"#,
        r#"{"action":"signal","type":5}"#,
        r#"{"action":"signal","type":null}"#,
        r#"{"action":"signal","type":"OFFER"}"#,
        r#"{"action":"signal","type":" offer"}"#,
        r#"{"action":"signal","type":["offer"]}"#,
        r#"{"action":"signal","type":{"offer":1}}"#,
        r#"{"action":5,"type":"offer"}"#,
        r#"{"action":"other","type":"offer"}"#,
        r#"{"action":"$connect","type":"offer"}"#,
        r#"{"action":"$disconnect","type":"bye"}"#,
        r#"{"type":"offer","payload":{}}"#,
        r#"{"action":"signal","type":"peer_joined"}"#,
        r#"{"action":"signal","type":"peer_left"}"#,
        r#"{"action":"signal","type":"error","code":"x"}"#,
        r#"{"action":"signal","type":"call_ended"}"#,
        r#"{"action":"signal","type":"hello","payload":"x"}"#,
        r#"{"action":"signal","type":"offer","payload":{}"#,
        "{\"action\":\"signal\",\"type\":\"offer\",\"payload\":\"\u{0}\"}",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([deep])
    .collect();
    for frame in &bad {
        say_raw(&mut customer, frame.clone()).await;
        let answer = next(&mut customer).await;
        assert_eq!(answer["type"], "error", "{frame}: {answer}");
        assert!(
            answer["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{frame}: {answer}"
        );
    }
    assert!(quiet(&mut agent).await, "a refused frame reached the peer");
    // A forged `from` or extra fields change nothing of who sent it.
    say(
        &mut customer,
        json!({"action": "signal", "type": "offer", "payload": {"sdp": "s"}, "from": "agent", "to": "x"}),
    )
    .await;
    assert_eq!(
        next(&mut agent).await,
        json!({"type": "offer", "payload": {"sdp": "s"}, "from": "customer"})
    );
    assert_eq!(room.view().await["status"], "active");
    assert_eq!(room.tally().await, [1, 0, 0]);
    no_server_panic();
}

/// A `candidate` frame of exactly `bytes` bytes.
fn frame_of(bytes: usize) -> String {
    let empty = r#"{"action":"signal","type":"candidate","payload":""}"#;
    let fill = "x".repeat(bytes - empty.len());
    let frame = format!(r#"{{"action":"signal","type":"candidate","payload":"{fill}"}}"#);
    assert_eq!(frame.len(), bytes);
    frame
}

#[tokio::test]
async fn a_frame_of_32_kb_is_relayed_and_one_byte_more_ends_the_senders_call_once() {
    let room = Room::open().await;
    let (mut agent, mut customer) = room.pair().await;
    let limit = frame_of(32 * 1024);
    say_raw(&mut agent, limit.clone()).await;
    let heard = next(&mut customer).await;
    let sent: Value = serde_json::from_str(&limit).unwrap();
    assert_eq!(heard["payload"], sent["payload"]);
    assert_eq!(heard["from"], "agent");

    say_raw(&mut agent, frame_of(32 * 1024 + 1)).await;
    assert_eq!(close_code(&mut agent).await, Some(1009));
    assert_eq!(next(&mut customer).await, json!({"type": "peer_left"}));
    room.until_status("ended").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(room.tally().await, [1, 1, 0]);
    no_server_panic();
}

#[tokio::test]
async fn a_binary_frame_closes_its_sender_and_ends_the_call_once() {
    let room = Room::open().await;
    let (mut agent, mut customer) = room.pair().await;
    customer
        .send(Message::Binary(
            br#"{"action":"signal","type":"offer","payload":{}}"#.to_vec().into(),
        ))
        .await
        .expect("sent");
    assert_eq!(close_code(&mut customer).await, Some(1003));
    assert_eq!(next(&mut agent).await, json!({"type": "peer_left"}));
    room.until_status("ended").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(room.tally().await, [1, 1, 0]);
    no_server_panic();
}

#[tokio::test]
async fn a_flood_reaches_the_peer_whole_and_in_order() {
    let room = Room::open().await;
    let (mut agent, mut customer) = room.pair().await;
    let n = 300;
    for i in 0..n {
        say(&mut agent, signal("candidate", json!({"i": i}))).await;
    }
    for i in 0..n {
        let heard = next(&mut customer).await;
        assert_eq!(heard["payload"]["i"], i, "{heard}");
    }
    assert!(quiet(&mut agent).await, "the sender got an answer");
    assert!(quiet(&mut customer).await, "the peer got more");
    assert_eq!(room.tally().await, [1, 0, 0]);
    no_server_panic();
}

#[tokio::test]
async fn no_frame_reaches_anybody_outside_its_call() {
    let first = Room::open().await;
    let second = first.again().await;
    let third = Room::open().await;
    let rooms = [&first, &second, &third];
    let mut sockets: Vec<(Socket, Socket)> = Vec::new();
    for room in rooms {
        sockets.push(room.pair().await);
    }
    for (i, (agent, customer)) in sockets.iter_mut().enumerate() {
        say(agent, signal("offer", json!({"call": i, "by": "agent"}))).await;
        say(
            customer,
            signal("answer", json!({"call": i, "by": "customer"})),
        )
        .await;
    }
    for (i, (agent, customer)) in sockets.iter_mut().enumerate() {
        let to_agent = drain(agent, 700).await;
        let to_customer = drain(customer, 700).await;
        assert_eq!(
            to_agent,
            vec![
                json!({"type": "answer", "payload": {"call": i, "by": "customer"}, "from": "customer"})
            ],
            "call {i}"
        );
        assert_eq!(
            to_customer,
            vec![json!({"type": "offer", "payload": {"call": i, "by": "agent"}, "from": "agent"})],
            "call {i}"
        );
    }
    // One call's end is heard in that call only.
    let (agent, mut customer) = sockets.remove(0);
    drop(agent);
    assert_eq!(next(&mut customer).await, json!({"type": "peer_left"}));
    first.until_status("ended").await;
    for (agent, customer) in &mut sockets {
        assert!(quiet(agent).await && quiet(customer).await);
    }
    assert_eq!(second.view().await["status"], "active");
    assert_eq!(third.view().await["status"], "active");
    no_server_panic();
}
