//! Faults survived (issue 18): DynamoDB throttles and fails (before and after applying a
//! request) for a share of every function's requests while customers' webhooks pour in
//! and agents send, the whole stack in this process with a fault proxy in front of moto.
//!
//! Meta re-delivers a webhook until it is answered 200, and an agent's UI repeats a send
//! that failed with the same `Idempotency-Key`, as the API documents. Afterwards: every
//! customer message is stored once, every agent text reached the provider once and is in
//! its conversation once, and every request ended with an answer (a 5xx only while the
//! faults lasted, never a lost message).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use local_stack::bench;
use local_stack::faults::DynamoFaults;
use local_stack::stack::{self, Hooks, LocalStack};
use local_stack::token::{AgentClaims, mint};
use serde_json::json;

const JWT_SECRET: &str = "faults-jwt-secret";
const APP_SECRET: &str = "faults-app-secret";
const TENANT: &str = "faults";
const PHONE: &str = "1065403888";
const CUSTOMERS: usize = 20;
const WEBHOOKS: usize = 200;
const SENDS: usize = 60;
/// Attempts of one delivery or send before the test gives up on it.
const ATTEMPTS: usize = 25;

struct Client {
    stack: bench::StackClient,
}

impl Client {
    /// Posts a signed webhook until it is answered 200, as Meta re-delivers: the answers.
    async fn deliver(&self, body: &str) -> Vec<u16> {
        let mut answers = Vec::new();
        for attempt in 0..ATTEMPTS {
            let (status, _) = self.stack.webhook(body).await;
            answers.push(status);
            if status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20 * (attempt as u64 + 1))).await;
        }
        answers
    }

    /// Sends an agent text until it is accepted, repeating the same key: the answers.
    async fn send(&self, conversation: &str, text: &str, key: &str) -> Vec<u16> {
        let mut answers = Vec::new();
        for attempt in 0..ATTEMPTS {
            let stack = &self.stack;
            let status = stack
                .http
                .post(format!(
                    "{}/conversations/{conversation}/messages",
                    stack.base
                ))
                .bearer_auth(&stack.agent)
                .header("idempotency-key", key)
                .json(&json!({"kind": "text", "text": text}))
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            answers.push(status);
            if status == 202 || (400..500).contains(&status) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20 * (attempt as u64 + 1))).await;
        }
        answers
    }
}

fn customer(i: usize) -> String {
    format!("1555400{i:04}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_and_sends_through_dynamodb_faults_end_stored_once_and_sent_once() {
    let faults = Arc::new(DynamoFaults::default());
    let stack: LocalStack = stack::start(
        JWT_SECRET,
        &[
            ("META_APP_SECRET", APP_SECRET),
            ("META_VERIFY_TOKEN", "faults-verify-token"),
        ],
        Hooks {
            dynamodb_faults: Some(faults.clone()),
            ..Hooks::default()
        },
    )
    .await
    .expect("the stack starts");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let admin = mint(
        JWT_SECRET,
        &AgentClaims::new(TENANT, "admin", "admin-1", 3600),
    )
    .unwrap();
    let agent = mint(
        JWT_SECRET,
        &AgentClaims::new(TENANT, "agent", "agent-1", 3600),
    )
    .unwrap();
    let connect =
        bench::proven_whatsapp_channel(&stack.sandbox, PHONE, "EAAG-faults", "faults").unwrap();
    let reply = http
        .post(format!("{}/channels", stack.base_url))
        .bearer_auth(&admin)
        .json(&connect)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
    let client = Arc::new(Client {
        stack: bench::StackClient {
            http,
            base: stack.base_url.clone(),
            agent,
            app_secret: APP_SECRET.to_owned(),
        },
    });
    for i in 0..CUSTOMERS {
        let body = bench::whatsapp_text(PHONE, &customer(i), &format!("wamid.f.first.{i}"), "hi");
        assert_eq!(client.deliver(&body).await, vec![200]);
    }
    let conversations: Vec<String> = client
        .stack
        .all("/conversations")
        .await
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(conversations.len(), CUSTOMERS);

    // 8 % throttled, 4 % failing before and 3 % after being applied.
    faults.set(80, 40, 30);
    let started = Instant::now();
    let inbound = {
        let client = client.clone();
        tokio::spawn(async move {
            // Every tenth is also re-delivered by Meta on its own.
            let bodies: Vec<String> = (0..WEBHOOKS)
                .flat_map(|i| {
                    let body = bench::whatsapp_text(
                        PHONE,
                        &customer(i % CUSTOMERS),
                        &format!("wamid.f.{i}"),
                        &format!("message {i}"),
                    );
                    if i % 10 == 0 {
                        vec![body.clone(), body]
                    } else {
                        vec![body]
                    }
                })
                .collect();
            futures::stream::iter(bodies)
                .map(|body| {
                    let client = client.clone();
                    async move { client.deliver(&body).await }
                })
                .buffer_unordered(16)
                .collect::<Vec<_>>()
                .await
        })
    };
    let outbound = {
        let client = client.clone();
        let conversations = conversations.clone();
        tokio::spawn(async move {
            futures::stream::iter(0..SENDS)
                .map(|i| {
                    let client = client.clone();
                    let conversation = conversations[i % conversations.len()].clone();
                    async move {
                        client
                            .send(&conversation, &format!("reply {i}"), &format!("key-{i}"))
                            .await
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await
        })
    };
    let deliveries = inbound.await.unwrap();
    let sends = outbound.await.unwrap();
    faults.set(0, 0, 0);
    let injected = faults.counts();
    let requests = faults.requests.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!(
        "{} s; {requests} DynamoDB requests, injected throttled/before/after {injected:?}; webhook attempts {}; send attempts {}",
        started.elapsed().as_secs(),
        deliveries.iter().map(Vec::len).sum::<usize>(),
        sends.iter().map(Vec::len).sum::<usize>()
    );
    assert!(injected.iter().all(|n| *n > 0), "{injected:?}");
    for answers in &deliveries {
        assert_eq!(
            answers.last(),
            Some(&200),
            "a delivery never succeeded: {answers:?}"
        );
        assert!(
            answers.iter().all(|s| *s == 200 || *s >= 500),
            "{answers:?}"
        );
    }
    for answers in &sends {
        assert_eq!(
            answers.last(),
            Some(&202),
            "a send never accepted: {answers:?}"
        );
    }

    // The provider gets each agent text once (sends settle in the background).
    let deadline = Instant::now() + Duration::from_secs(60);
    let at_provider = loop {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for item in stack.sandbox.outbox(Some(PHONE), None) {
            let item = serde_json::to_value(&item).unwrap();
            if item["status"] == 200
                && let Some(text) = item["body"]["text"]["body"].as_str()
            {
                *counts.entry(text.to_owned()).or_default() += 1;
            }
        }
        if counts.len() >= SENDS || Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(at_provider.len(), SENDS, "texts at the provider");
    assert!(at_provider.values().all(|n| *n == 1), "{at_provider:?}");

    // Every customer message stored once, every agent text in its conversation once.
    let mut stored: HashMap<String, usize> = HashMap::new();
    let mut replies: HashMap<String, usize> = HashMap::new();
    for id in &conversations {
        for m in client
            .stack
            .all(&format!("/conversations/{id}/messages"))
            .await
            .unwrap()
        {
            if let Some(wamid) = m["provider_message_id"].as_str()
                && m["direction"] == "inbound"
            {
                *stored.entry(wamid.to_owned()).or_default() += 1;
            }
            if m["direction"] == "outbound"
                && let Some(text) = m["text"].as_str()
            {
                *replies.entry(text.to_owned()).or_default() += 1;
            }
        }
    }
    for i in 0..WEBHOOKS {
        assert_eq!(stored.get(&format!("wamid.f.{i}")), Some(&1), "wamid.f.{i}");
    }
    assert_eq!(replies.len(), SENDS);
    assert!(replies.values().all(|n| *n == 1), "{replies:?}");
    // The list still shows every conversation once.
    assert_eq!(
        client.stack.all("/conversations").await.unwrap().len(),
        CUSTOMERS
    );
}
