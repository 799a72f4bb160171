//! Where part 2's time goes: each invocation the schedule stand-in makes (recorded by
//! wrapping the handler it calls), and how long moto makes a DynamoDB request wait (it
//! serializes them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use local_stack::LocalSettings;
use local_stack::functions::EventHandler;
use serde_json::Value;
use shared::adapters::keys;

use crate::{ms_between, spread};

/// One invocation of the scheduler by the schedule stand-in.
pub struct Invocation {
    scheduled_id: String,
    at: DateTime<Utc>,
    took: Duration,
    ok: bool,
}

impl Invocation {
    fn end(&self) -> DateTime<Utc> {
        self.at + chrono::Duration::from_std(self.took).unwrap_or_default()
    }
}

/// What the schedule stand-in invoked.
#[derive(Clone, Default)]
pub struct Invocations(Arc<Mutex<Vec<Invocation>>>);

impl Invocations {
    /// `handler`, recording each invocation here.
    pub fn wrap(&self, handler: EventHandler) -> EventHandler {
        let log = self.clone();
        Arc::new(move |event: Value| {
            let (log, handler) = (log.clone(), handler.clone());
            Box::pin(async move {
                let scheduled_id = event["scheduled_id"].as_str().unwrap_or("").to_owned();
                let (at, started) = (Utc::now(), Instant::now());
                let result = handler(event).await;
                if let Ok(mut log) = log.0.lock() {
                    log.push(Invocation {
                        scheduled_id,
                        at,
                        took: started.elapsed(),
                        ok: result.is_ok(),
                    });
                }
                result
            })
        })
    }

    /// The invocations so far.
    pub fn take(&self) -> Vec<Invocation> {
        self.0
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

/// Timed samples: when, and how many ms.
pub type Samples = Arc<Mutex<Vec<(DateTime<Utc>, f64)>>>;

/// Times a `GetItem` of a missing key every 500 ms until aborted: how long moto makes a
/// DynamoDB request wait in line.
pub fn probe_moto(
    settings: &LocalSettings,
    table: String,
    samples: Samples,
) -> tokio::task::JoinHandle<()> {
    let client = aws_sdk_dynamodb::Client::new(&settings.sdk_config());
    tokio::spawn(async move {
        loop {
            let (at, started) = (Utc::now(), Instant::now());
            let read = client
                .get_item()
                .table_name(&table)
                .key(keys::PK, AttributeValue::S("BENCH#probe".into()))
                .key(keys::SK, AttributeValue::S("BENCH#probe".into()))
                .send()
                .await;
            if read.is_ok()
                && let Ok(mut samples) = samples.lock()
            {
                samples.push((at, started.elapsed().as_secs_f64() * 1000.0));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// The most invocations that overlapped in time.
fn max_overlap(invoked: &[Invocation]) -> usize {
    let mut edges: Vec<(DateTime<Utc>, i64)> = Vec::new();
    for i in invoked {
        edges.push((i.at, 1));
        edges.push((i.end(), -1));
    }
    // Ends before starts at the same instant.
    edges.sort();
    let (mut now, mut most) = (0i64, 0i64);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

/// Prints the table rows of where the time went: the stand-in's invocations (`due`: the
/// `send_at` of each scheduled id) and moto's answer time since `since`.
pub fn print_rows(
    invoked: &[Invocation],
    due: &HashMap<&str, DateTime<Utc>>,
    probes: &Samples,
    since: DateTime<Utc>,
    due_per_second: f64,
) {
    let failed = invoked.iter().filter(|i| !i.ok).count();
    let mut first: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for i in invoked {
        let at = first.entry(&i.scheduled_id).or_insert(i.at);
        *at = (*at).min(i.at);
    }
    let mut lag_ms: Vec<f64> = first
        .iter()
        .filter_map(|(id, at)| due.get(id).map(|due| ms_between(*due, *at)))
        .collect();
    let mut took_ms: Vec<f64> = invoked
        .iter()
        .map(|i| i.took.as_secs_f64() * 1000.0)
        .collect();
    let mut moto_ms: Vec<f64> = probes
        .lock()
        .map(|p| {
            p.iter()
                .filter(|(at, _)| *at >= since)
                .map(|(_, ms)| *ms)
                .collect()
        })
        .unwrap_or_default();
    println!(
        "| stand-in invocations of the scheduler | {} ({failed} failed, retried) |",
        invoked.len()
    );
    println!(
        "| due -> first invocation (the stand-in's lag) | {} |",
        spread(&mut lag_ms)
    );
    println!(
        "| one invocation (the fire, handler time) | {} |",
        spread(&mut took_ms)
    );
    println!(
        "| invocations in flight at once, at most | {} |",
        max_overlap(invoked)
    );
    let start = invoked.iter().map(|i| i.at).min();
    let end = invoked.iter().map(Invocation::end).max();
    if let (Some(start), Some(end)) = (start, end) {
        let seconds = ms_between(start, end) / 1000.0;
        println!(
            "| fire rate (first invocation to the last one's end) | {:.1}/s over {seconds:.1} s (due: {due_per_second:.1}/s) |",
            invoked.len() as f64 / seconds,
        );
    }
    println!(
        "| moto: one `GetItem` from the first due to the end (DynamoDB requests wait in line) | {} |",
        spread(&mut moto_ms)
    );
}
