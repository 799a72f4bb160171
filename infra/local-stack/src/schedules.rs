//! What EventBridge Scheduler delivers, delivered locally.
//!
//! moto stores one-time schedules but never fires them. This stand-in lists the schedule
//! group every [`POLL`], reads each new schedule once (its `at(…)` time in UTC and its
//! target's input), and when one is due invokes the target's handler with the input JSON,
//! as Scheduler invokes a Lambda target. A schedule whose handler succeeded is deleted
//! (`ActionAfterCompletion: DELETE`); one whose handler failed is tried again after
//! [`RETRY_AFTER`], as Scheduler's retry policy would. Due schedules fire concurrently, at
//! most [`CONCURRENCY`] at a time. Every due schedule fires within about one poll of its
//! time (well within the 5 s the local stack promises).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use chrono::{DateTime, NaiveDateTime, Utc};
use tokio::sync::{Mutex, Semaphore};
use tracing::{error, info, warn};

use crate::functions::EventHandler;

/// How often the group is listed.
pub const POLL: Duration = Duration::from_millis(500);
/// Wait before a failed invocation is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);
/// Invocations in flight at once.
pub const CONCURRENCY: usize = 32;

/// The schedule group to watch and the handler its schedules invoke.
#[derive(Clone)]
pub struct ScheduleTarget {
    /// The schedule group's name.
    pub group: String,
    /// The target function's event handler (the schedule's input in, `Err` = retry).
    pub handler: EventHandler,
}

/// When an `at(yyyy-mm-ddThh:mm:ss)` expression fires (the stack's schedules are UTC).
pub fn due_time(expression: &str) -> Option<DateTime<Utc>> {
    let inner = expression.strip_prefix("at(")?.strip_suffix(')')?;
    NaiveDateTime::parse_from_str(inner, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

#[derive(Debug, Clone)]
struct Known {
    due: DateTime<Utc>,
    input: serde_json::Value,
    /// Not before this time (a failed invocation's retry).
    not_before: Option<DateTime<Utc>>,
}

/// Starts watching the group; the task runs until dropped with the runtime.
pub fn start(sdk: &SdkConfig, target: ScheduleTarget) -> tokio::task::JoinHandle<()> {
    let client = aws_sdk_scheduler::Client::new(sdk);
    info!(group = %target.group, "schedule stand-in watching");
    tokio::spawn(async move {
        let known: Arc<Mutex<HashMap<String, Known>>> = Arc::default();
        let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        loop {
            if let Err(e) = poll(&client, &target, &known, &in_flight, &permits).await {
                error!(error = %e, "schedule stand-in cannot list schedules");
            }
            tokio::time::sleep(POLL).await;
        }
    })
}

async fn poll(
    client: &aws_sdk_scheduler::Client,
    target: &ScheduleTarget,
    known: &Arc<Mutex<HashMap<String, Known>>>,
    in_flight: &Arc<Mutex<HashSet<String>>>,
    permits: &Arc<Semaphore>,
) -> Result<(), String> {
    let mut names = HashSet::new();
    let mut token = None;
    loop {
        let out = client
            .list_schedules()
            .group_name(&target.group)
            .set_next_token(token)
            .max_results(100)
            .send()
            .await
            .map_err(|e| aws_sdk_scheduler::error::DisplayErrorContext(e).to_string())?;
        names.extend(
            out.schedules()
                .iter()
                .filter_map(|s| s.name().map(str::to_owned)),
        );
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let new: Vec<String> = {
        let mut known = known.lock().await;
        known.retain(|name, _| names.contains(name));
        names
            .into_iter()
            .filter(|n| !known.contains_key(n))
            .collect()
    };
    for name in new {
        let Ok(out) = client
            .get_schedule()
            .group_name(&target.group)
            .name(&name)
            .send()
            .await
        else {
            continue;
        };
        let due = out.schedule_expression().and_then(due_time);
        let input = out
            .target()
            .and_then(|t| t.input())
            .and_then(|i| serde_json::from_str(i).ok());
        match (due, input) {
            (Some(due), Some(input)) => {
                known.lock().await.insert(
                    name,
                    Known {
                        due,
                        input,
                        not_before: None,
                    },
                );
            }
            _ => warn!(schedule = %name, "schedule stand-in skips a schedule it cannot read"),
        }
    }
    let now = Utc::now();
    let due: Vec<(String, Known)> = {
        let known = known.lock().await;
        let flying = in_flight.lock().await;
        known
            .iter()
            .filter(|(name, k)| {
                k.due <= now && k.not_before.is_none_or(|t| t <= now) && !flying.contains(*name)
            })
            .map(|(n, k)| (n.clone(), k.clone()))
            .collect()
    };
    for (name, k) in due {
        in_flight.lock().await.insert(name.clone());
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let (client, group, handler) =
            (client.clone(), target.group.clone(), target.handler.clone());
        let (known, in_flight) = (known.clone(), in_flight.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match handler(k.input.clone()).await {
                Ok(()) => {
                    // ActionAfterCompletion: DELETE.
                    let _ = client
                        .delete_schedule()
                        .group_name(&group)
                        .name(&name)
                        .send()
                        .await;
                    known.lock().await.remove(&name);
                }
                Err(e) => {
                    error!(schedule = %name, error = %e, "scheduled handler failed; will retry");
                    if let Some(k) = known.lock().await.get_mut(&name) {
                        k.not_before = Some(
                            Utc::now()
                                + chrono::Duration::from_std(RETRY_AFTER).unwrap_or_default(),
                        );
                    }
                }
            }
            in_flight.lock().await.remove(&name);
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn at_expressions_read_as_utc_instants() {
        assert_eq!(
            due_time("at(2026-03-29T08:00:01)"),
            Some(Utc.with_ymd_and_hms(2026, 3, 29, 8, 0, 1).unwrap())
        );
        assert_eq!(due_time("rate(5 minutes)"), None);
        assert_eq!(due_time("at(tomorrow)"), None);
    }
}
