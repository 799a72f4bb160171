//! What AWS delivers by event, delivered locally.
//!
//! moto routes EventBridge rules to SQS but never invokes a Lambda. For each function's
//! `EventBridgeRule` this creates the same rule (same pattern, default bus) with a queue as
//! target, and polls the queue: each message body is the event JSON EventBridge built,
//! handed to the same handler Lambda runs, each event in its own task as Lambda runs
//! concurrent invocations. A handler error leaves the message for a retry, as
//! EventBridge's retry policy would.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{Message, QueueAttributeName};
use tokio::sync::Semaphore;
use tracing::{error, info};

use crate::BoxError;
use crate::devserver::EventRule;

/// Long-poll wait: deliveries arrive within about a second of the event.
const WAIT_SECONDS: i32 = 1;
/// Seconds before a message whose handler failed is delivered again.
const RETRY_AFTER_SECONDS: i32 = 2;
/// Seconds a received message stays hidden while its handler runs (the functions' longest
/// timeout in template.yaml), so a slow handler is not handed the same event again meanwhile.
const HANDLING_SECONDS: &str = "180";
/// Events of one rule handled at once.
const IN_FLIGHT: usize = 10;
/// Most messages one SQS receive returns.
const MAX_RECEIVE: usize = 10;

/// Creates a queue and rule per event rule, then polls them until the task is dropped.
pub async fn start(
    sdk: &SdkConfig,
    rules: Vec<EventRule>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, BoxError> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let mut tasks = Vec::new();
    for rule in rules {
        let name = format!("standin-{}", rule.name).to_lowercase();
        let queue = sqs
            .create_queue()
            .queue_name(&name)
            .attributes(QueueAttributeName::VisibilityTimeout, HANDLING_SECONDS)
            .send()
            .await?;
        let url = queue.queue_url().ok_or("queue without url")?.to_owned();
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?;
        let arn = attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .ok_or("queue without arn")?
            .clone();
        events
            .put_rule()
            .name(&name)
            .set_event_bus_name(rule.bus.clone())
            .event_pattern(rule.pattern.to_string())
            .send()
            .await?;
        events
            .put_targets()
            .rule(&name)
            .set_event_bus_name(rule.bus.clone())
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("standin")
                    .arn(arn)
                    .build()?,
            )
            .send()
            .await?;
        info!(rule = %rule.name, "event stand-in listening");
        tasks.push(tokio::spawn(poll(sqs.clone(), url, rule)));
    }
    Ok(tasks)
}

/// Takes a rule's events off its queue and hands each to the handler in a task of its own,
/// at most [`IN_FLIGHT`] at once (Lambda runs concurrent invocations too: one slow turn
/// does not hold up the next event). A message is deleted once its handler succeeded.
async fn poll(sqs: aws_sdk_sqs::Client, url: String, rule: EventRule) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // A free slot before taking anything off the queue: what is received starts at once.
        let Ok(first) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut permits = vec![first];
        while permits.len() < MAX_RECEIVE {
            match slots.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        let received = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(i32::try_from(permits.len()).unwrap_or(1))
            .wait_time_seconds(WAIT_SECONDS)
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                error!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "stand-in cannot poll");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for message in messages {
            let Some(permit) = permits.pop() else { break };
            let (sqs, url, rule) = (sqs.clone(), url.clone(), rule.clone());
            tokio::spawn(async move {
                deliver(&sqs, &url, &rule, message).await;
                drop(permit);
            });
        }
    }
}

/// Hands one message's event to the rule's handler; deletes the message when it succeeded,
/// else makes it come back after [`RETRY_AFTER_SECONDS`].
async fn deliver(sqs: &aws_sdk_sqs::Client, url: &str, rule: &EventRule, message: Message) {
    let Some(body) = message.body() else { return };
    let Ok(event) = serde_json::from_str::<serde_json::Value>(body) else {
        return;
    };
    match (rule.handler)(event).await {
        Ok(()) => {
            if let Some(handle) = message.receipt_handle() {
                let _ = sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(handle)
                    .send()
                    .await;
            }
        }
        Err(e) => {
            error!(rule = %rule.name, error = %e, "event handler failed; will retry");
            if let Some(handle) = message.receipt_handle() {
                let _ = sqs
                    .change_message_visibility()
                    .queue_url(url)
                    .receipt_handle(handle)
                    .visibility_timeout(RETRY_AFTER_SECONDS)
                    .send()
                    .await;
            }
        }
    }
}
