//! Domain events reach the bus: a rule (pattern on our tenant) delivers them to a queue.

use std::time::{Duration, Instant};

use integration_tests::{FixtureVars, connect, fixture, post_meta, stack};
use serde_json::{Value, json};

/// A queue receiving every event of one tenant from the template's bus.
async fn tenant_queue(tenant: &str) -> (aws_sdk_sqs::Client, String) {
    let sdk = stack().settings.sdk_config();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let bus = stack().template.local_name("ChatEventBus").unwrap();
    let queue = sqs
        .create_queue()
        .queue_name(format!("events-{tenant}"))
        .send()
        .await
        .unwrap();
    let url = queue.queue_url().unwrap().to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .unwrap();
    let rule = format!("to-{tenant}");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(
            json!({"source": ["chatroom"], "detail": {"tenant_id": [tenant]}}).to_string(),
        )
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (sqs, url)
}

async fn drain(sqs: &aws_sdk_sqs::Client, url: &str, want: usize) -> Vec<Value> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < want && Instant::now() < deadline {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            got.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    got
}

#[tokio::test]
async fn a_batch_of_25_messages_publishes_25_message_received_events() {
    let channel = connect("whatsapp").await;
    let (sqs, url) = tenant_queue(&channel.tenant).await;
    let vars = FixtureVars::new(&channel, false);
    let one: Value = serde_json::from_str(&vars.render(&fixture("whatsapp/text.json"))).unwrap();
    let template = one["entry"][0]["changes"][0]["value"]["messages"][0].clone();
    let mut body = one.clone();
    let messages: Vec<Value> = (0..25)
        .map(|i| {
            let mut m = template.clone();
            m["id"] = json!(format!("wamid.BATCH{}{i}", vars.msg_id));
            m
        })
        .collect();
    body["entry"][0]["changes"][0]["value"]["messages"] = json!(messages);
    let reply = post_meta("whatsapp", &body.to_string()).await;
    assert_eq!(reply.body["stored"], 25, "{}", reply.text);

    let events = drain(&sqs, &url, 25).await;
    assert_eq!(events.len(), 25);
    for e in &events {
        assert_eq!(e["source"], "chatroom");
        assert_eq!(e["detail-type"], "MessageReceived");
        assert_eq!(e["detail"]["tenant_id"], channel.tenant.as_str());
        assert_eq!(e["detail"]["channel_id"], channel.id.as_str());
        assert_eq!(e["detail"]["kind"], "text");
        assert!(e["detail"]["message_id"].is_string());
        assert!(
            e["detail"].get("text").is_none(),
            "events carry no message text"
        );
    }
}

#[tokio::test]
async fn a_delivered_status_publishes_message_status_changed() {
    let channel = connect("messenger").await;
    let (sqs, url) = tenant_queue(&channel.tenant).await;
    let vars = FixtureVars::new(&channel, false);
    post_meta(
        "messenger",
        &vars.render(&fixture("messenger/echo_other_app.json")),
    )
    .await;
    let mut delivery = vars.clone();
    delivery.ref_id = format!("m_{}", vars.msg_id);
    post_meta(
        "messenger",
        &delivery.render(&fixture("messenger/delivery.json")),
    )
    .await;
    let events = drain(&sqs, &url, 2).await;
    let status = events
        .iter()
        .find(|e| e["detail-type"] == "MessageStatusChanged")
        .expect("a status event");
    assert_eq!(status["detail"]["status"], "delivered");
    assert_eq!(
        events
            .iter()
            .filter(|e| e["detail-type"] == "MessageReceived")
            .count(),
        1
    );
}
