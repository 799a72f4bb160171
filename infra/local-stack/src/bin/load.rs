//! `make load`: the local stack under a burst of signed webhooks, with agents sending at
//! the same time, on loopback only, bounded in count and time.
//!
//! [`WEBHOOKS`] signed WhatsApp webhooks (one customer text each, over [`CUSTOMERS`]
//! customers) are posted by [`SENDERS`] concurrent senders; every tenth is delivered again
//! later, as Meta re-delivers. Meanwhile [`AGENT_SENDS`] agent texts go out through `POST
//! /conversations/{id}/messages`. Afterwards every conversation's messages are read back.
//! Printed: answers by status, acknowledgement time p50/p99, messages lost and stored
//! twice, agent sends answered and sent at the provider (and sent twice). Exits non-zero
//! on any 5xx, loss or duplicate. `LOAD_WEBHOOKS`, `LOAD_SENDERS` and `LOAD_AGENT_SENDS`
//! scale it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use local_stack::stack::{self, Hooks, LocalStack};
use local_stack::token::{AgentClaims, mint};
use local_stack::{BoxError, bench};
use serde_json::json;

const JWT_SECRET: &str = "load-jwt-secret";
const APP_SECRET: &str = "load-app-secret";
const TENANT: &str = "load";
const PHONE: &str = "1065403777";
/// Webhooks posted (re-deliveries not counted).
const WEBHOOKS: usize = 10_000;
/// Customers they come from.
const CUSTOMERS: usize = 1_000;
/// Concurrent webhook senders.
const SENDERS: usize = 200;
/// Agent sends during the burst, and how many at once.
const AGENT_SENDS: usize = 1_000;
const AGENT_CONCURRENCY: usize = 20;
/// Conversations the agents answer in (their customers wrote first).
const ANSWERED: usize = 100;
/// Longest the whole run may take.
const DEADLINE: Duration = Duration::from_secs(30 * 60);
/// After this long, no new webhook is posted: the figures are over those posted (the
/// emulator, one Python process doing every table request, is the bound on a small
/// machine). `LOAD_BURST_SECONDS` moves it.
const BURST_BOUND: Duration = Duration::from_secs(20 * 60);

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn customer(i: usize) -> String {
    format!("1555300{i:04}")
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let webhooks = env_count("LOAD_WEBHOOKS", WEBHOOKS);
    let senders = env_count("LOAD_SENDERS", SENDERS);
    let agent_sends = env_count("LOAD_AGENT_SENDS", AGENT_SENDS);
    let customers = CUSTOMERS.min(webhooks.max(1));
    let run = tokio::time::timeout(DEADLINE, load(webhooks, senders, agent_sends, customers));
    match run.await {
        Ok(result) => result,
        Err(_) => Err(format!("the load run passed its {} s bound", DEADLINE.as_secs()).into()),
    }
}

async fn load(
    webhooks: usize,
    senders: usize,
    agent_sends: usize,
    customers: usize,
) -> Result<(), BoxError> {
    let stack: LocalStack = stack::start(
        JWT_SECRET,
        &[
            ("META_APP_SECRET", APP_SECRET),
            ("META_VERIFY_TOKEN", "load-verify-token"),
        ],
        Hooks::default(),
    )
    .await?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(senders)
        .timeout(Duration::from_secs(60))
        .build()?;
    let admin = mint(
        JWT_SECRET,
        &AgentClaims::new(TENANT, "admin", "admin-1", 7200),
    )?;
    let agent = mint(
        JWT_SECRET,
        &AgentClaims::new(TENANT, "agent", "agent-1", 7200),
    )?;
    let connect = bench::proven_whatsapp_channel(&stack.sandbox, PHONE, "EAAG-load", "load")?;
    let reply = http
        .post(format!("{}/channels", stack.base_url))
        .bearer_auth(&admin)
        .json(&connect)
        .send()
        .await?;
    if reply.status() != 201 {
        return Err(format!("POST /channels answered {}", reply.status()).into());
    }
    let api = Arc::new(bench::StackClient {
        http,
        base: stack.base_url.clone(),
        agent,
        app_secret: APP_SECRET.to_owned(),
    });

    // The conversations agents answer in: their customers write first (not measured).
    let answered = ANSWERED.min(customers);
    for i in 0..answered {
        let body = bench::whatsapp_text(
            PHONE,
            &customer(i),
            &format!("wamid.load.first.{i}"),
            "hello",
        );
        let (status, _) = api.webhook(&body).await;
        if status != 200 {
            return Err(format!("a first message answered {status}").into());
        }
    }
    let conversations: Vec<String> = api
        .all("/conversations")
        .await?
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    if conversations.len() != answered {
        return Err(format!("{} conversations, not {answered}", conversations.len()).into());
    }

    // The burst: every tenth webhook delivered again, a few hundred places later.
    let mut deliveries: Vec<(usize, String)> = (0..webhooks)
        .map(|i| {
            let body = bench::whatsapp_text(
                PHONE,
                &customer(i % customers),
                &format!("wamid.load.{i}"),
                &format!("message {i}"),
            );
            (i, body)
        })
        .collect();
    let mut at = deliveries.len();
    for i in (0..webhooks).step_by(10).rev() {
        let again = deliveries[i].clone();
        at = (i + 1 + 300).min(at);
        deliveries.insert(at, again);
    }
    let total = deliveries.len();
    println!(
        "\nLoad: {webhooks} signed WhatsApp webhooks from {customers} customers ({} re-delivered), {senders} concurrent senders; {agent_sends} agent sends in {answered} conversations, {AGENT_CONCURRENCY} at a time, meanwhile\n",
        total - webhooks
    );

    let burst_bound =
        Duration::from_secs(env_count("LOAD_BURST_SECONDS", BURST_BOUND.as_secs() as usize) as u64);
    let started = Instant::now();
    let inbound = {
        let api = api.clone();
        tokio::spawn(async move {
            futures::stream::iter(deliveries)
                .map(|(i, body)| {
                    let api = api.clone();
                    async move {
                        if started.elapsed() >= burst_bound {
                            return None;
                        }
                        let (status, took) = api.webhook(&body).await;
                        Some((i, status, took))
                    }
                })
                .buffer_unordered(senders)
                .filter_map(|posted| async move { posted })
                .collect::<Vec<(usize, u16, Duration)>>()
                .await
        })
    };
    let outbound = {
        let api = api.clone();
        let conversations = conversations.clone();
        tokio::spawn(async move {
            futures::stream::iter(0..agent_sends)
                .map(|i| {
                    let api = api.clone();
                    let conversation = conversations[i % conversations.len()].clone();
                    async move {
                        let started = Instant::now();
                        let status = api
                            .http
                            .post(format!(
                                "{}/conversations/{conversation}/messages",
                                api.base
                            ))
                            .bearer_auth(&api.agent)
                            .json(&json!({"kind": "text", "text": format!("agent reply {i}")}))
                            .send()
                            .await
                            .map_or(0, |r| r.status().as_u16());
                        (status, started.elapsed())
                    }
                })
                .buffer_unordered(AGENT_CONCURRENCY)
                .collect::<Vec<(u16, Duration)>>()
                .await
        })
    };
    let acks = inbound.await?;
    let burst = started.elapsed();
    let sends = outbound.await?;
    let both = started.elapsed();

    let posted: std::collections::HashSet<usize> = acks.iter().map(|(i, _, _)| *i).collect();
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for (_, status, _) in &acks {
        *by_status.entry(*status).or_default() += 1;
    }
    let mut ack_times: Vec<Duration> = acks.iter().map(|(_, _, d)| *d).collect();
    ack_times.sort();
    let mut send_status: HashMap<u16, usize> = HashMap::new();
    for (status, _) in &sends {
        *send_status.entry(*status).or_default() += 1;
    }
    let mut send_times: Vec<Duration> = sends.iter().map(|(_, d)| *d).collect();
    send_times.sort();

    // Every message back, by provider id.
    let mut stored: HashMap<String, usize> = HashMap::new();
    let conversations = api.all("/conversations").await?;
    for c in &conversations {
        let id = c["id"].as_str().unwrap_or_default();
        for m in api.all(&format!("/conversations/{id}/messages")).await? {
            if m["direction"] == "inbound"
                && let Some(wamid) = m["provider_message_id"].as_str()
                && wamid.starts_with("wamid.load.")
                && !wamid.starts_with("wamid.load.first.")
            {
                *stored.entry(wamid.to_owned()).or_default() += 1;
            }
        }
    }
    let lost = posted
        .iter()
        .filter(|i| !stored.contains_key(&format!("wamid.load.{i}")))
        .count();
    let twice = stored.values().filter(|n| **n > 1).count();

    // The agents' texts at the provider: each once (the send path settles in the
    // background: wait for the last ones).
    let deadline = Instant::now() + Duration::from_secs(60);
    let sent_counts = loop {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for item in stack.sandbox.outbox(Some(PHONE), None) {
            let item = serde_json::to_value(&item)?;
            if item["status"] == 200
                && let Some(text) = item["body"]["text"]["body"].as_str()
                && text.starts_with("agent reply ")
            {
                *counts.entry(text.to_owned()).or_default() += 1;
            }
        }
        if counts.len() >= agent_sends || Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let sent_twice = sent_counts.values().filter(|n| **n > 1).count();
    let server_errors: usize = by_status
        .iter()
        .filter(|(s, _)| **s >= 500 || **s == 0)
        .map(|(_, n)| n)
        .sum();
    let send_errors: usize = send_status
        .iter()
        .filter(|(s, _)| **s >= 500 || **s == 0)
        .map(|(_, n)| n)
        .sum();

    let mut statuses: Vec<_> = by_status.iter().collect();
    statuses.sort();
    let mut send_statuses: Vec<_> = send_status.iter().collect();
    send_statuses.sort();
    println!("| figure | measured | goal |");
    println!("|---|---|---|");
    println!("| webhook answers by status | {statuses:?} | all 200 |");
    println!("| webhook 5xx or no answer | {server_errors} | 0 |");
    println!(
        "| webhook ack time p50 / p99 / max | {} / {} / {} | — |",
        ms(percentile(&ack_times, 0.5)),
        ms(percentile(&ack_times, 0.99)),
        ms(percentile(&ack_times, 1.0))
    );
    println!(
        "| burst duration ({} of {total} deliveries) | {:.1} s ({:.0} webhooks/s) | — |",
        acks.len(),
        burst.as_secs_f64(),
        acks.len() as f64 / burst.as_secs_f64()
    );
    println!(
        "| webhooks posted within the {} s bound | {} of {webhooks} ({} deliveries) | — (the figures cover these) |",
        burst_bound.as_secs(),
        posted.len(),
        acks.len()
    );
    println!("| messages lost (of those posted) | {lost} | 0 |");
    println!("| messages stored twice | {twice} | 0 |");
    println!("| agent send answers by status | {send_statuses:?} | all 202 |");
    println!("| agent send 5xx or no answer | {send_errors} | 0 |");
    println!(
        "| agent send answer p50 / p99 | {} / {} | — |",
        ms(percentile(&send_times, 0.5)),
        ms(percentile(&send_times, 0.99))
    );
    println!(
        "| agent texts at the provider | {} of {agent_sends} | all |",
        sent_counts.len()
    );
    println!("| agent texts sent twice | {sent_twice} | 0 |");
    println!(
        "| whole run (both streams) | {:.1} s | — |",
        both.as_secs_f64()
    );
    let checks = [
        (server_errors == 0, "webhook 5xx or no answer"),
        (
            by_status.keys().all(|s| *s == 200),
            "webhook answers not all 200",
        ),
        (lost == 0, "messages lost"),
        (twice == 0, "messages stored twice"),
        (send_errors == 0, "agent send 5xx or no answer"),
        (
            sent_counts.len() == agent_sends,
            "agent texts missing at the provider",
        ),
        (sent_twice == 0, "agent texts sent twice"),
    ];
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, what)| *what)
        .collect();
    drop(stack);
    if failed.is_empty() {
        println!("load: PASS");
        Ok(())
    } else {
        println!("load: FAIL: {}", failed.join(", "));
        Err(format!("the load run failed: {}", failed.join(", ")).into())
    }
}
