//! The event stand-in delivers as EventBridge invokes Lambda: events side by side (a slow
//! handler holds up no other event), a failed event again after a short wait, a handled
//! one never again. Each test runs a rule of its own on the stack's moto.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use integration_tests::stack;
use local_stack::devserver::EventRule;
use local_stack::functions::EventHandler;
use serde_json::{Value, json};

/// One handler call: the event's `detail.n`, when it started and ended.
type Calls = Arc<Mutex<Vec<(u64, Instant, Option<Instant>)>>>;

/// Starts the stand-in for a rule matching a fresh `source`, with `handler`; returns the
/// source and the polling tasks.
async fn rule_of(handler: EventHandler) -> (String, Vec<tokio::task::JoinHandle<()>>) {
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let source = format!("test.{id}");
    let rule = EventRule {
        name: format!("test-{id}"),
        pattern: json!({"source": [source]}),
        bus: None,
        handler,
    };
    let tasks = local_stack::standin::start(&stack().settings.sdk_config(), vec![rule])
        .await
        .expect("the stand-in starts");
    (source, tasks)
}

async fn put_event(source: &str, n: u64) {
    let events = aws_sdk_eventbridge::Client::new(&stack().settings.sdk_config());
    let entry = PutEventsRequestEntry::builder()
        .source(source)
        .detail_type("Test")
        .detail(json!({"n": n}).to_string())
        .build();
    let out = events.put_events().entries(entry).send().await.unwrap();
    assert_eq!(out.failed_entry_count(), 0);
}

/// A handler recording its calls; `run` says how long call `n` takes and whether it fails.
fn recording(calls: &Calls, run: fn(u64, usize) -> (Duration, bool)) -> EventHandler {
    let calls = calls.clone();
    Arc::new(move |event: Value| {
        let calls = calls.clone();
        Box::pin(async move {
            let n = event["detail"]["n"].as_u64().unwrap_or(u64::MAX);
            let (index, before) = {
                let mut calls = calls.lock().unwrap();
                let before = calls.iter().filter(|c| c.0 == n).count();
                calls.push((n, Instant::now(), None));
                (calls.len() - 1, before)
            };
            let (takes, fails) = run(n, before);
            tokio::time::sleep(takes).await;
            calls.lock().unwrap()[index].2 = Some(Instant::now());
            if fails {
                Err("failed on purpose".to_owned())
            } else {
                Ok(())
            }
        })
    })
}

/// Waits until `count` calls have ended (15 s at most); the calls so far.
async fn ended(calls: &Calls, count: usize) -> Vec<(u64, Instant, Option<Instant>)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = calls.lock().unwrap().clone();
        if now.iter().filter(|c| c.2.is_some()).count() >= count || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_slow_handler_holds_up_no_other_event_and_is_not_handed_its_event_again() {
    let calls = Calls::default();
    // Event 0 takes longer than the stand-in's retry wait (2 s).
    let handler = recording(&calls, |n, _| {
        let takes = if n == 0 { 2500 } else { 10 };
        (Duration::from_millis(takes), false)
    });
    let (source, tasks) = rule_of(handler).await;
    put_event(&source, 0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    put_event(&source, 1).await;
    let seen = ended(&calls, 2).await;
    let call = |n: u64| {
        *seen
            .iter()
            .find(|c| c.0 == n)
            .expect("the event was handled")
    };
    let (slow, fast) = (call(0), call(1));
    assert!(
        fast.2.expect("ended") < slow.2.expect("ended"),
        "event 1 was handled while event 0 still ran"
    );
    assert!(
        fast.1 - slow.1 < Duration::from_millis(1500),
        "{fast:?} {slow:?}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(calls.lock().unwrap().len(), 2, "each event handled once");
    tasks.iter().for_each(|t| t.abort());
}

#[tokio::test]
async fn a_failed_event_comes_again_after_about_two_seconds_and_not_once_handled() {
    let calls = Calls::default();
    // The first call fails, the second succeeds.
    let handler = recording(&calls, |_, before| (Duration::ZERO, before == 0));
    let (source, tasks) = rule_of(handler).await;
    put_event(&source, 7).await;
    let seen = ended(&calls, 2).await;
    assert_eq!(seen.len(), 2, "failed, then handled: {seen:?}");
    let gap = seen[1].1 - seen[0].1;
    assert!(
        gap >= Duration::from_millis(1500) && gap < Duration::from_secs(6),
        "retried after {gap:?}"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(calls.lock().unwrap().len(), 2, "deleted once handled");
    tasks.iter().for_each(|t| t.abort());
}
