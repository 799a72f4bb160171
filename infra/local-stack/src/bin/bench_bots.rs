//! `make bench`, bot latency: a customer's WhatsApp message posted to the dev server until
//! the bot's reply is recorded at the provider sandbox, over the whole local stack (moto,
//! the dev server, the event stand-in, the sandbox) in this process.
//!
//! A tenant connects a WhatsApp channel and saves one keyword bot through the HTTP API;
//! then each of [`CONVERSATIONS`] new customers posts one signed message,
//! [`CONCURRENCY`] at a time, and the sandbox's outbox is polled every [`POLL`] for the
//! reply to that customer. Where the time goes: the webhook's answer, the event's delivery
//! (from that answer until the bots handler starts, timed by wrapping the handler), the
//! turn (the handler's duration), and within it the provider send (timed by a layer on
//! the sandbox's router, server side). Fails when the median exceeds [`GOAL_P50`]
//! (issue 13).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::IntoResponse;
use futures::StreamExt;
use local_stack::devserver::EventRule;
use local_stack::functions::EventHandler;
use local_stack::stack::{self, Hooks, LocalStack};
use local_stack::token::{AgentClaims, mint};
use local_stack::{BoxError, bench};
use serde_json::Value;
use shared::domain::ids::ChannelId;

const JWT_SECRET: &str = "bench-jwt-secret";
const APP_SECRET: &str = "bench-app-secret";
const TENANT: &str = "bench-bots";
/// The channel's phone_number_id.
const PHONE: &str = "1065403599";
/// New conversations measured (after one that warms the process up).
const CONVERSATIONS: usize = 100;
/// Conversations in flight at once.
const CONCURRENCY: usize = 4;
/// How often the sandbox's outbox is looked at.
const POLL: Duration = Duration::from_millis(5);
/// Longest wait for one reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Goal of issue 13: median from the inbound webhook to the bot's reply at the provider.
const GOAL_P50: Duration = Duration::from_millis(1500);

/// A span by key (conversation id or recipient), the first one seen.
type Spans = Arc<Mutex<HashMap<String, (Instant, Instant)>>>;

fn record(spans: &Spans, key: String, span: (Instant, Instant)) {
    if let Ok(mut spans) = spans.lock() {
        spans.entry(key).or_insert(span);
    }
}

fn span_of(spans: &Spans, key: &str) -> Option<(Instant, Instant)> {
    spans.lock().ok()?.get(key).copied()
}

/// The bots handler, timed per conversation.
fn timed_bots(rule: EventRule, turns: &Spans) -> EventRule {
    if !rule.name.starts_with("BotsFunction") {
        return rule;
    }
    let inner = rule.handler.clone();
    let turns = turns.clone();
    let handler: EventHandler = Arc::new(move |event: Value| {
        let inner = inner.clone();
        let turns = turns.clone();
        Box::pin(async move {
            let conversation = event["detail"]["conversation_id"]
                .as_str()
                .map(str::to_owned);
            let started = Instant::now();
            let result = inner(event).await;
            if let Some(conversation) = conversation {
                record(&turns, conversation, (started, Instant::now()));
            }
            result
        })
    });
    EventRule { handler, ..rule }
}

/// The sandbox's send calls (`POST …/messages`), timed per recipient.
async fn timed_send(sends: Spans, request: Request, next: Next) -> axum::response::Response {
    if request.method() != "POST" || !request.uri().path().ends_with("/messages") {
        return next.run(request).await;
    }
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return axum::http::StatusCode::BAD_REQUEST.into_response();
    };
    let to = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|b| b["to"].as_str().map(str::to_owned));
    let response = next
        .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await;
    if let Some(to) = to {
        record(&sends, to, (started, Instant::now()));
    }
    response
}

/// A printed stage: its name, its figure of a conversation, and whether it is one of the
/// consecutive parts that add up to the total.
type Stage = (&'static str, fn(&Timing) -> Duration, bool);

/// One conversation's figures.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// Webhook posted until the reply is in the sandbox's outbox.
    total: Duration,
    /// Webhook posted until answered.
    ack: Duration,
    /// Answered until the bots handler starts.
    delivery: Duration,
    /// Handler start until the reply is seen in the outbox.
    to_reply: Duration,
    /// The handler's duration.
    turn: Duration,
    /// Handler start until the provider send starts.
    before_send: Duration,
    /// The provider send, at the sandbox.
    send: Duration,
    /// Provider send answered until the handler ends.
    after_send: Duration,
    started: Instant,
    turn_span: (Instant, Instant),
}

struct Bench {
    stack: LocalStack,
    http: reqwest::Client,
    channel: ChannelId,
    turns: Spans,
    sends: Spans,
}

impl Bench {
    async fn converse(&self, n: usize) -> Result<Timing, BoxError> {
        let customer = format!("1555300{n:04}");
        let body = bench::whatsapp_text(
            PHONE,
            &customer,
            &format!("wamid.bench.bots.{n}"),
            "What's the price?",
        );
        let signature = shared::adapters::channels::graph::sign(APP_SECRET, body.as_bytes());
        let started = Instant::now();
        let response = self
            .http
            .post(format!("{}/webhooks/whatsapp", self.stack.base_url))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await?;
        let acked = Instant::now();
        if response.status() != 200 {
            return Err(format!("webhook answered {}", response.status()).into());
        }
        let seen = loop {
            let replies = self.stack.sandbox.outbox(Some(PHONE), Some(&customer));
            if replies.iter().any(|r| r.status == 200) {
                break Instant::now();
            }
            if started.elapsed() > REPLY_TIMEOUT {
                return Err(format!("no bot reply to {customer} within {REPLY_TIMEOUT:?}").into());
            }
            tokio::time::sleep(POLL).await;
        };
        let conversation = shared::domain::conversation::conversation_id(&self.channel, &customer);
        let (turn_start, turn_end) = loop {
            if let Some(span) = span_of(&self.turns, &conversation) {
                break span;
            }
            if started.elapsed() > REPLY_TIMEOUT {
                return Err(format!("the turn of {conversation} never ended").into());
            }
            tokio::time::sleep(POLL).await;
        };
        let (send_start, send_end) =
            span_of(&self.sends, &customer).ok_or("the sandbox timed no send")?;
        let since = |later: Instant, earlier: Instant| later.saturating_duration_since(earlier);
        Ok(Timing {
            total: since(seen, started),
            ack: since(acked, started),
            delivery: since(turn_start, acked),
            to_reply: since(seen, turn_start.max(acked)),
            turn: since(turn_end, turn_start),
            before_send: since(send_start, turn_start),
            send: since(send_end, send_start),
            after_send: since(turn_end, send_end),
            started,
            turn_span: (turn_start, turn_end),
        })
    }
}

/// The `q` quantile (nearest rank) of `values`, in ms.
fn quantile(values: &[Duration], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted
        .get(rank - 1)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Milliseconds as printed: a tenth below 10 ms.
fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

fn mean_ms(values: &[Duration]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / values.len() as f64
}

/// Most spans open at the same time.
fn most_at_once(spans: impl Iterator<Item = (Instant, Instant)>) -> usize {
    let mut edges: Vec<(Instant, i32)> = spans.flat_map(|(s, e)| [(s, 1), (e, -1)]).collect();
    // Ends before starts at the same instant.
    edges.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or(0)
}

async fn set_up(stack: &LocalStack, http: &reqwest::Client) -> Result<ChannelId, BoxError> {
    let admin = mint(
        JWT_SECRET,
        &AgentClaims::new(TENANT, "admin", "agent-1", 3600),
    )?;
    let channel = bench::proven_whatsapp_channel(&stack.sandbox, PHONE, "bench-token", "bench")?;
    let reply = http
        .post(format!("{}/channels", stack.base_url))
        .bearer_auth(&admin)
        .json(&channel)
        .send()
        .await?;
    if reply.status() != 201 {
        return Err(format!("POST /channels answered {}", reply.status()).into());
    }
    let created: Value = reply.json().await?;
    let id = ChannelId::parse(created["id"].as_str().ok_or("channel without id")?)?;
    let reply = http
        .put(format!("{}/bots/prices", stack.base_url))
        .bearer_auth(&admin)
        .json(&bench::keyword_bot())
        .send()
        .await?;
    if !reply.status().is_success() {
        return Err(format!("PUT /bots/prices answered {}", reply.status()).into());
    }
    Ok(id)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let turns = Spans::default();
    let sends = Spans::default();
    let rule_turns = turns.clone();
    let layer_sends = sends.clone();
    let hooks = Hooks {
        event_rule: Some(Box::new(move |rule| timed_bots(rule, &rule_turns))),
        sandbox: Some(Box::new(move |router| {
            router.layer(axum::middleware::from_fn(move |request, next| {
                timed_send(layer_sends.clone(), request, next)
            }))
        })),
        dynamodb_faults: None,
    };
    let stack = stack::start(
        JWT_SECRET,
        &[
            ("META_APP_SECRET", APP_SECRET),
            ("META_VERIFY_TOKEN", "bench-verify-token"),
        ],
        hooks,
    )
    .await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let channel = set_up(&stack, &http).await?;
    let bench = Bench {
        stack,
        http,
        channel,
        turns,
        sends,
    };

    let cold = bench.converse(0).await?;
    let run_started = Instant::now();
    let results: Vec<Result<Timing, BoxError>> = futures::stream::iter(1..=CONVERSATIONS)
        .map(|n| bench.converse(n))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let wall = run_started.elapsed();
    let mut timings = Vec::with_capacity(results.len());
    for result in results {
        timings.push(result?);
    }
    timings.sort_by_key(|t| t.started);

    let column = |f: fn(&Timing) -> Duration| timings.iter().map(f).collect::<Vec<_>>();
    let total = column(|t| t.total);
    let total_mean = mean_ms(&total);
    println!(
        "\nBot latency: inbound WhatsApp webhook -> the keyword bot's reply at the provider sandbox, \
         {CONVERSATIONS} new conversations, {CONCURRENCY} at a time (local stack on moto; \
         outbox polled every {} ms; one conversation before them warms the process up)\n",
        POLL.as_millis()
    );
    println!("| stage | p50 ms | p95 ms | max ms | mean ms | share of the mean total |");
    println!("|---|---|---|---|---|---|");
    let rows: [Stage; 8] = [
        (
            "**total**: webhook posted -> reply in the outbox",
            |t| t.total,
            false,
        ),
        (
            "webhook answered (ingest, MessageReceived put on the bus)",
            |t| t.ack,
            true,
        ),
        (
            "event delivery (answer -> bots handler starts)",
            |t| t.delivery,
            true,
        ),
        ("handler start -> reply in the outbox", |t| t.to_reply, true),
        ("turn: the bots handler, start to end", |t| t.turn, false),
        (
            "- turn before the provider send (read, claim, the send path's reads and acceptance)",
            |t| t.before_send,
            false,
        ),
        (
            "- provider send (at the sandbox, server side)",
            |t| t.send,
            false,
        ),
        (
            "- turn after the provider send (sent recorded, claim settled)",
            |t| t.after_send,
            false,
        ),
    ];
    for (name, f, additive) in rows {
        let values = column(f);
        let mean = mean_ms(&values);
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            ms(quantile(&values, 0.5)),
            ms(quantile(&values, 0.95)),
            ms(quantile(&values, 1.0)),
            ms(mean),
            if additive && total_mean > 0.0 {
                format!("{:.0} %", mean / total_mean * 100.0)
            } else {
                String::new()
            },
        );
    }
    println!(
        "\nWarm-up conversation (first for the process): total {:.0} ms = webhook {:.0} + delivery {:.0} + handler to reply {:.0} (turn {:.0}).",
        cold.total.as_secs_f64() * 1000.0,
        cold.ack.as_secs_f64() * 1000.0,
        cold.delivery.as_secs_f64() * 1000.0,
        cold.to_reply.as_secs_f64() * 1000.0,
        cold.turn.as_secs_f64() * 1000.0,
    );
    println!(
        "{CONVERSATIONS} conversations in {:.1} s ({:.1} per second); at most {} turns ran at the same time.",
        wall.as_secs_f64(),
        CONVERSATIONS as f64 / wall.as_secs_f64(),
        most_at_once(timings.iter().map(|t| t.turn_span)),
    );
    let p50 = quantile(&total, 0.5);
    let goal = GOAL_P50.as_secs_f64() * 1000.0;
    println!(
        "Goal (issue 13): p50 <= {goal:.0} ms: {} ({p50:.0} ms).",
        if p50 <= goal { "pass" } else { "FAIL" }
    );
    if p50 > goal {
        return Err(format!("bot reply p50 {p50:.0} ms is over the {goal:.0} ms goal").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&values, 0.5), 50.0);
        assert_eq!(quantile(&values, 0.95), 95.0);
        assert_eq!(quantile(&values, 1.0), 100.0);
        assert_eq!(quantile(&values[..1], 0.5), 1.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn spans_at_once_count_overlaps_not_touching_ends() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let spans = [
            (at(0), at(10)),
            (at(5), at(20)),
            (at(10), at(30)),
            (at(12), at(13)),
        ];
        assert_eq!(most_at_once(spans.into_iter()), 3);
        assert_eq!(
            most_at_once([(at(0), at(1)), (at(1), at(2))].into_iter()),
            1
        );
        assert_eq!(most_at_once(std::iter::empty()), 0);
    }
}
