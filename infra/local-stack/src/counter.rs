//! Counts the AWS requests a client sends (every attempt, retries included), by the
//! operation named in `x-amz-target` (DynamoDB, EventBridge) or S3's `x-id` / HTTP method,
//! with the time each took. With an [`ItemProbe`] it also keeps what each JSON request
//! carried and got back, and, for DynamoDB writes, the items they touch as they were
//! before and after (read through the probe's own, uncounted client), so that
//! [`crate::capacity`] can compute the capacity units.
//!
//! Requests may be in flight at once (a list reads its shards in parallel): each attempt
//! is matched to its answer through the SDK's per-operation config bag. What a read got
//! back is counted for every counter: `ScannedCount` of a `Query` or `Scan`, the items of
//! a `BatchGetItem`.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::http::HttpRequest;
use aws_sdk_dynamodb::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use base64::Engine;
use serde_json::{Value, json};

use crate::capacity::{self, Exchange, Item, Schema};

/// One request sent.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The operation (`GetItem`, `PutEvents`, `GetObject`, …).
    pub operation: String,
    /// From just before transmission to the parsed answer.
    pub elapsed: Duration,
    /// What a JSON request (DynamoDB, EventBridge) carried, when the counter has a probe.
    pub exchange: Option<Exchange>,
    /// What a DynamoDB read's answer says it read (zero for other requests).
    pub read: ReadCount,
}

/// What one DynamoDB read answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCount {
    /// `ScannedCount` of a `Query` or `Scan`: the items it evaluated (what it is billed
    /// for, before any filter expression).
    pub scanned: u64,
    /// Items a `BatchGetItem` answered, over all its tables.
    pub batch_items: u64,
}

impl ReadCount {
    /// The counts in a DynamoDB answer (its wire JSON) to `operation`.
    pub fn of(operation: &str, answer: &Value) -> Self {
        match operation {
            "Query" | "Scan" => Self {
                scanned: answer
                    .get("ScannedCount")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                batch_items: 0,
            },
            "BatchGetItem" => Self {
                scanned: 0,
                batch_items: answer.get("Responses").and_then(Value::as_object).map_or(
                    0,
                    |tables| {
                        tables
                            .values()
                            .filter_map(Value::as_array)
                            .map(|items| items.len() as u64)
                            .sum()
                    },
                ),
            },
            _ => Self::default(),
        }
    }
}

impl std::ops::AddAssign for ReadCount {
    fn add_assign(&mut self, other: Self) {
        self.scanned += other.scanned;
        self.batch_items += other.batch_items;
    }
}

/// Which pending attempt an operation's config bag belongs to.
#[derive(Debug, Clone, Copy)]
struct Attempt(u64);

impl Storable for Attempt {
    type Storer = StoreReplace<Self>;
}

#[derive(Debug)]
struct Pending {
    operation: String,
    exchange: Option<Exchange>,
    targets: Vec<capacity::WriteTarget>,
    started: Instant,
}

#[derive(Debug, Default)]
struct State {
    sent: Vec<Sent>,
    pending: HashMap<u64, Pending>,
    next_attempt: u64,
    overlapped: bool,
    probing: Duration,
}

/// An SDK interceptor recording each request sent.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    state: Arc<Mutex<State>>,
    probe: Option<Arc<ItemProbe>>,
}

/// What the requests of one invocation were.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// The requests, in order.
    pub sent: Vec<Sent>,
    /// Time spent reading items through the probe (to subtract from a measured duration).
    pub probing: Duration,
    /// Whether two requests were in flight at once (the probe's reads then cannot be told
    /// apart: the capacity figures are not trustworthy).
    pub overlapped: bool,
}

impl Recorded {
    /// What the reads among the requests answered, added up.
    pub fn read(&self) -> ReadCount {
        let mut total = ReadCount::default();
        for sent in &self.sent {
            total += sent.read;
        }
        total
    }
}

impl RequestCounter {
    /// A counter that also keeps request and answer bodies and the items writes touch.
    pub fn with_probe(probe: ItemProbe) -> Self {
        Self {
            state: Arc::default(),
            probe: Some(Arc::new(probe)),
        }
    }

    /// The operations sent since the last call, in order.
    pub fn take(&self) -> Vec<String> {
        self.take_recorded()
            .sent
            .into_iter()
            .map(|s| s.operation)
            .collect()
    }

    /// Everything recorded since the last call.
    pub fn take_recorded(&self) -> Recorded {
        self.state
            .lock()
            .map(|mut s| Recorded {
                sent: std::mem::take(&mut s.sent),
                probing: std::mem::take(&mut s.probing),
                overlapped: std::mem::take(&mut s.overlapped),
            })
            .unwrap_or_default()
    }

    fn read_items(&self, targets: &[capacity::WriteTarget]) -> Vec<Option<Item>> {
        let Some(probe) = &self.probe else {
            return Vec::new();
        };
        let started = Instant::now();
        let items = targets
            .iter()
            .map(|t| probe.get(&t.table, &t.key))
            .collect();
        if let Ok(mut state) = self.state.lock() {
            state.probing += started.elapsed();
        }
        items
    }
}

fn operation_of(request: &HttpRequest) -> String {
    match request.headers().get("x-amz-target") {
        Some(target) => target.rsplit('.').next().unwrap_or(target).to_owned(),
        // S3 names the operation in `x-id`, except for a few plain verbs.
        None => {
            let uri = request.uri();
            match uri.split("x-id=").nth(1) {
                Some(id) => id.split('&').next().unwrap_or(id).to_owned(),
                None => match request.method() {
                    "HEAD" => "HeadObject".to_owned(),
                    "PUT" => "PutObject".to_owned(),
                    method => format!("{method} {uri}"),
                },
            }
        }
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let operation = operation_of(request);
        let json_target = request.headers().get("x-amz-target").is_some();
        let (exchange, targets) = match (&self.probe, json_target) {
            (Some(_), true) => {
                let body: Value = request
                    .body()
                    .bytes()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                let targets = capacity::write_targets(&operation, &body, &Schema::chat_table());
                let before = self.read_items(&targets);
                let exchange = Exchange {
                    operation: operation.clone(),
                    request: body,
                    before,
                    ..Exchange::default()
                };
                (Some(exchange), targets)
            }
            _ => (None, Vec::new()),
        };
        if let Ok(mut state) = self.state.lock() {
            state.overlapped |= !state.pending.is_empty();
            let attempt = state.next_attempt;
            state.next_attempt += 1;
            state.pending.insert(
                attempt,
                Pending {
                    operation,
                    exchange,
                    targets,
                    started: Instant::now(),
                },
            );
            cfg.interceptor_state().store_put(Attempt(attempt));
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // An attempt that failed before transmission left no id (or its predecessor's,
        // already taken).
        let Some(Attempt(attempt)) = cfg.load::<Attempt>().copied() else {
            return Ok(());
        };
        let Some(pending) = self
            .state
            .lock()
            .ok()
            .and_then(|mut s| s.pending.remove(&attempt))
        else {
            return Ok(());
        };
        let elapsed = pending.started.elapsed();
        let wanted = pending.exchange.is_some()
            || matches!(
                pending.operation.as_str(),
                "Query" | "Scan" | "BatchGetItem"
            );
        let answer = context.response().filter(|_| wanted).map(|response| {
            let body = response
                .body()
                .bytes()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            (response.status().as_u16(), body)
        });
        let read = answer
            .as_ref()
            .filter(|(status, _)| *status == 200)
            .map(|(_, body)| ReadCount::of(&pending.operation, body))
            .unwrap_or_default();
        let exchange = pending.exchange.map(|mut exchange| {
            if let Some((status, body)) = answer {
                exchange.status = status;
                exchange.response = body;
            }
            exchange.after = self.read_items(&pending.targets);
            exchange
        });
        if let Ok(mut state) = self.state.lock() {
            state.sent.push(Sent {
                operation: pending.operation,
                elapsed,
                exchange,
                read,
            });
        }
        Ok(())
    }
}

type ProbeRequest = (String, Item, mpsc::Sender<Option<Item>>);

/// Reads items with consistent `GetItem`s through its own client on its own thread, so an
/// interceptor (synchronous) can wait for them and the reads are not counted.
#[derive(Debug)]
pub struct ItemProbe {
    requests: Mutex<mpsc::Sender<ProbeRequest>>,
}

impl ItemProbe {
    /// Starts the probe's thread with a DynamoDB client of the emulator.
    pub fn start(settings: &crate::LocalSettings) -> Result<Self, crate::BoxError> {
        let (requests, receiver) = mpsc::channel::<ProbeRequest>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let settings = settings.clone();
        std::thread::spawn(move || {
            let client =
                runtime.block_on(async { aws_sdk_dynamodb::Client::new(&settings.sdk_config()) });
            while let Ok((table, key, reply)) = receiver.recv() {
                let item = runtime.block_on(get_item(&client, table, key));
                // The asker may have gone away; nothing to do then.
                let _ = reply.send(item);
            }
        });
        Ok(Self {
            requests: Mutex::new(requests),
        })
    }

    /// The item at `key` of `table` now, if any (`None` too if the read failed).
    pub fn get(&self, table: &str, key: &Item) -> Option<Item> {
        let (reply, answer) = mpsc::channel();
        self.requests
            .lock()
            .ok()?
            .send((table.to_owned(), key.clone(), reply))
            .ok()?;
        answer.recv().ok().flatten()
    }
}

async fn get_item(client: &aws_sdk_dynamodb::Client, table: String, key: Item) -> Option<Item> {
    let key = key
        .iter()
        .map(|(name, value)| Some((name.clone(), key_value(value)?)))
        .collect::<Option<std::collections::HashMap<_, _>>>()?;
    let output = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .ok()?;
    output.item.map(|item| {
        item.iter()
            .map(|(name, value)| (name.clone(), attribute_json(value)))
            .collect()
    })
}

/// A key attribute (string, number or binary) from its wire JSON.
fn key_value(value: &Value) -> Option<AttributeValue> {
    let (kind, inner) = value.as_object()?.iter().next()?;
    let text = inner.as_str()?.to_owned();
    match kind.as_str() {
        "S" => Some(AttributeValue::S(text)),
        "N" => Some(AttributeValue::N(text)),
        "B" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .map(|b| AttributeValue::B(Blob::new(b))),
        _ => None,
    }
}

/// An attribute value in DynamoDB's wire JSON.
fn attribute_json(value: &AttributeValue) -> Value {
    let b64 = |b: &Blob| base64::engine::general_purpose::STANDARD.encode(b.as_ref());
    match value {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::B(b) => json!({"B": b64(b)}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(n) => json!({"NULL": n}),
        AttributeValue::Ss(v) => json!({"SS": v}),
        AttributeValue::Ns(v) => json!({"NS": v}),
        AttributeValue::Bs(v) => json!({"BS": v.iter().map(b64).collect::<Vec<_>>()}),
        AttributeValue::L(v) => json!({"L": v.iter().map(attribute_json).collect::<Vec<_>>()}),
        AttributeValue::M(m) => {
            let map: serde_json::Map<String, Value> = m
                .iter()
                .map(|(k, v)| (k.clone(), attribute_json(v)))
                .collect();
            json!({"M": map})
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_count_scanned_entries_and_batch_items() {
        let query = json!({"Count": 3, "ScannedCount": 5, "Items": []});
        assert_eq!(
            ReadCount::of("Query", &query),
            ReadCount {
                scanned: 5,
                batch_items: 0
            }
        );
        let batch = json!({"Responses": {"t": [{}, {}], "u": [{}]}, "UnprocessedKeys": {}});
        assert_eq!(ReadCount::of("BatchGetItem", &batch).batch_items, 3);
        assert_eq!(ReadCount::of("GetItem", &query), ReadCount::default());
    }

    #[test]
    fn attribute_values_become_their_wire_json() {
        let value = AttributeValue::M(
            [
                ("n".to_owned(), AttributeValue::N("12".into())),
                (
                    "l".to_owned(),
                    AttributeValue::L(vec![AttributeValue::Bool(true)]),
                ),
                ("b".to_owned(), AttributeValue::B(Blob::new(vec![0, 1, 2]))),
            ]
            .into(),
        );
        assert_eq!(
            attribute_json(&value),
            json!({"M": {"n": {"N": "12"}, "l": {"L": [{"BOOL": true}]}, "b": {"B": "AAEC"}}})
        );
    }

    #[test]
    fn key_values_come_back_from_wire_json() {
        assert_eq!(
            key_value(&json!({"S": "TENANT#a"})),
            Some(AttributeValue::S("TENANT#a".into()))
        );
        assert_eq!(key_value(&json!({"BOOL": true})), None);
    }
}
