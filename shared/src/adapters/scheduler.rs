//! EventBridge Scheduler adapter: one one-time schedule per scheduled message (or snooze),
//! in the stack's schedule group, invoking the `scheduler` function with the schedule's
//! input through an execution role that may invoke only that function.

use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::error::DisplayErrorContext;
use aws_sdk_scheduler::operation::create_schedule::CreateScheduleError;
use aws_sdk_scheduler::operation::delete_schedule::DeleteScheduleError;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode,
    RetryPolicy, Target,
};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::Error;
use crate::domain::schedule::ScheduleInput;
use crate::ports::Schedules;

/// Retries of a failed invocation (Scheduler's own, before the dead-letter queue).
const MAX_RETRY_ATTEMPTS: i32 = 10;
/// How long Scheduler keeps retrying, in seconds.
const MAX_EVENT_AGE_SECONDS: i32 = 3600;

/// Where schedules go and what they invoke (from configuration).
#[derive(Debug, Clone)]
pub struct ScheduleTarget {
    /// Schedule group (`SCHEDULE_GROUP_NAME`).
    pub group: String,
    /// The `scheduler` function's ARN (`SCHEDULER_TARGET_ARN`).
    pub function_arn: String,
    /// The role Scheduler assumes to invoke it (`SCHEDULER_ROLE_ARN`).
    pub role_arn: String,
    /// The dead-letter queue for invocations that kept failing (`SCHEDULER_DLQ_ARN`).
    pub dead_letter_arn: Option<String>,
}

/// Creates and deletes one-time schedules through a shared client.
#[derive(Debug, Clone)]
pub struct EventBridgeSchedules {
    client: Client,
    target: ScheduleTarget,
}

impl EventBridgeSchedules {
    /// Wraps a client (built once per process) and the target from configuration.
    pub fn new(client: Client, target: ScheduleTarget) -> Self {
        Self { client, target }
    }
}

/// The `at(…)` expression of an instant: UTC, to the second, rounded up so that a schedule
/// never fires before its time.
pub fn at_expression(at: DateTime<Utc>) -> String {
    let second = TimeDelta::seconds(1);
    let up = at
        .duration_trunc(second)
        .ok()
        .map(|t| if t < at { t + second } else { t })
        .unwrap_or(at);
    format!("at({})", up.format("%Y-%m-%dT%H:%M:%S"))
}

fn upstream(context: &str, err: impl std::error::Error) -> Error {
    Error::Upstream {
        provider: "EventBridge Scheduler",
        message: format!("{context}: {}", DisplayErrorContext(err)),
    }
}

impl Schedules for EventBridgeSchedules {
    async fn create_schedule(
        &self,
        name: &str,
        at: DateTime<Utc>,
        input: &ScheduleInput,
    ) -> Result<(), Error> {
        let build = |e: aws_sdk_scheduler::error::BuildError| upstream("build schedule", e);
        let input = serde_json::to_string(input)
            .map_err(|e| Error::Internal(format!("encode schedule input: {e}")))?;
        let retry = RetryPolicy::builder()
            .maximum_retry_attempts(MAX_RETRY_ATTEMPTS)
            .maximum_event_age_in_seconds(MAX_EVENT_AGE_SECONDS)
            .build();
        let mut target = Target::builder()
            .arn(&self.target.function_arn)
            .role_arn(&self.target.role_arn)
            .input(input)
            .retry_policy(retry);
        if let Some(dlq) = &self.target.dead_letter_arn {
            target = target.dead_letter_config(DeadLetterConfig::builder().arn(dlq).build());
        }
        let result = self
            .client
            .create_schedule()
            .name(name)
            .group_name(&self.target.group)
            .schedule_expression(at_expression(at))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(
                FlexibleTimeWindow::builder()
                    .mode(FlexibleTimeWindowMode::Off)
                    .build()
                    .map_err(build)?,
            )
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(target.build().map_err(build)?)
            .send()
            .await;
        match result.map_err(aws_sdk_scheduler::error::SdkError::into_service_error) {
            Ok(_) => Ok(()),
            Err(CreateScheduleError::ConflictException(_)) => Err(Error::conflict(
                "schedule_exists",
                "a schedule with this name exists",
            )),
            Err(other) => Err(upstream("create schedule", other)),
        }
    }

    async fn delete_schedule(&self, name: &str) -> Result<(), Error> {
        let result = self
            .client
            .delete_schedule()
            .name(name)
            .group_name(&self.target.group)
            .send()
            .await;
        match result.map_err(aws_sdk_scheduler::error::SdkError::into_service_error) {
            Ok(_) | Err(DeleteScheduleError::ResourceNotFoundException(_)) => Ok(()),
            Err(other) => Err(upstream("delete schedule", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn at_expressions_are_utc_seconds_never_early() {
        let exact = Utc.with_ymd_and_hms(2026, 3, 29, 8, 0, 0).unwrap();
        assert_eq!(at_expression(exact), "at(2026-03-29T08:00:00)");
        let late = exact + TimeDelta::milliseconds(250);
        assert_eq!(at_expression(late), "at(2026-03-29T08:00:01)");
    }
}
