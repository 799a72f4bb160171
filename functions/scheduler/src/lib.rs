//! `scheduler`: scheduled messages (SPEC §9) and the end of snoozes.
//!
//! - `POST /conversations/{id}/scheduled-messages`, `GET /scheduled-messages`,
//!   `DELETE /scheduled-messages/{id}`;
//! - EventBridge Scheduler invocations: the schedule's input (`{"kind":
//!   "scheduled_message", tenant_id, scheduled_id}` fires a message, `{"kind":
//!   "snooze_end", …}` ends a snooze, `{"kind": "call_expiry", …}` marks a call nobody
//!   joined missed);
//! - `MessageReceived` events the webhook flagged `cancels_scheduled`: the customer's reply
//!   cancels the scheduled messages that ask for it.
//!
//! [`handle_http`] and [`handle_event`] are what Lambda runs and what the dev server, its
//! schedule stand-in and the tests call. Sends go through the shared send service.

use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::Value;
use shared::Error;
use shared::adapters::aws::{
    DynamoDbClient, SharedCredentialsProvider, dynamodb_client, s3_client, scheduler_client,
    sdk_config,
};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::scheduler::EventBridgeSchedules;
use shared::config::{Config, ConfigError, Source, schedule_target};
use shared::domain::events::{EventBridgeEvent, MessageReceived, SOURCE};
use shared::domain::ids::TenantId;
use shared::domain::schedule::ScheduleInput;
use shared::http::{self, json};
use shared::service::schedules;
use tracing::{Instrument, info_span, warn};

pub use shared::http::to_api_gateway_response;

/// Clients, the send service and the schedules, built once per process.
#[derive(Debug)]
pub struct App {
    store: DynamoStore,
    schedules: EventBridgeSchedules,
    outbound: outbound::Service,
}

impl App {
    /// Builds the app from configuration (reads no environment itself).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable that is missing or wrong.
    pub fn from_source(
        env: &impl Source,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ConfigError> {
        let config = Config::from_source(env)?;
        let sdk = sdk_config(&config.aws, credentials.clone());
        Self::with_clients(
            env,
            &config,
            dynamodb_client(&sdk),
            s3_client(&sdk, &config.aws),
            scheduler_client(&sdk),
            credentials,
        )
    }

    /// Builds the app around given clients (measurements attach interceptors to them).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable that is missing or wrong.
    pub fn with_clients(
        env: &impl Source,
        config: &Config,
        dynamo: DynamoDbClient,
        s3: aws_sdk_s3::Client,
        scheduler: shared::adapters::aws::SchedulerClient,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            store: DynamoStore::new(dynamo.clone(), config.table_name.clone()),
            schedules: EventBridgeSchedules::new(scheduler, schedule_target(env)?),
            outbound: outbound::service(env, config, dynamo, s3, credentials)?,
        })
    }
}

/// Handles one API Gateway request. Never fails: every error is a response.
pub async fn handle_http(app: &App, req: Request) -> Response<Body> {
    http::serve("scheduler", &req, |req| route(app, req)).await
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, Error> {
    let principal = http::principal(req)?;
    let id = http::path_param(req, "id").unwrap_or_default();
    let now = Utc::now();
    match http::route_key(req) {
        "POST /conversations/{id}/scheduled-messages" => {
            let body = http::json_value(req)?;
            let view = schedules::create(
                &app.store,
                &app.schedules,
                &app.outbound,
                &principal,
                id,
                body,
                now,
            )
            .await?;
            Ok(json(StatusCode::CREATED, &view))
        }
        "GET /scheduled-messages" => {
            let page = http::page_request(req)?;
            let list = schedules::list(
                &app.store,
                &principal,
                http::query(req, "conversation_id"),
                http::query(req, "status"),
                &page,
            )
            .await?;
            Ok(json(StatusCode::OK, &list))
        }
        "DELETE /scheduled-messages/{id}" => {
            let cancelled =
                schedules::cancel(&app.store, &app.schedules, &principal, id, now).await?;
            Ok(json(StatusCode::OK, &cancelled))
        }
        _ => Err(Error::NotFound { what: "route" }),
    }
}

/// Handles one event: a schedule's input (EventBridge Scheduler sends it as the payload)
/// or an EventBridge event. Returns the outcome; `Err` only when a retry can help (the
/// store failed, or a send of an earlier delivery is not settled yet), so Lambda delivers
/// the asynchronous invocation again (twice, then `FailedInvocationQueue`). Anything else
/// is ignored.
///
/// # Errors
/// The store's failure.
pub async fn handle_event(app: &App, event: &Value) -> Result<&'static str, Error> {
    if event.get("detail-type").is_some() {
        return handle_bus_event(app, event).await;
    }
    let Ok(input) = serde_json::from_value::<ScheduleInput>(event.clone()) else {
        warn!("neither a schedule's input nor an EventBridge event; ignored");
        return Ok("ignored");
    };
    let now = Utc::now();
    match input {
        ScheduleInput::ScheduledMessage {
            tenant_id,
            scheduled_id,
        } => {
            let Ok(tenant) = TenantId::parse(&tenant_id) else {
                return Ok("ignored");
            };
            let span = info_span!("fire", function = "scheduler", tenant = %tenant, scheduled_id = %scheduled_id);
            let outcome = schedules::fire(&app.store, &app.outbound, &tenant, &scheduled_id, now)
                .instrument(span)
                .await?;
            Ok(match outcome {
                schedules::FireOutcome::Sent => "sent",
                schedules::FireOutcome::Failed => "failed",
                schedules::FireOutcome::Cancelled => "cancelled",
                schedules::FireOutcome::Nothing => "nothing",
            })
        }
        ScheduleInput::CallExpiry { tenant_id, call_id } => {
            let Ok(tenant) = TenantId::parse(&tenant_id) else {
                return Ok("ignored");
            };
            let missed = shared::service::calls::expire(&app.store, &tenant, &call_id, now).await?;
            Ok(if missed { "call_missed" } else { "nothing" })
        }
        ScheduleInput::SnoozeEnd {
            tenant_id,
            conversation_id,
            snoozed_until,
        } => {
            let Ok(tenant) = TenantId::parse(&tenant_id) else {
                return Ok("ignored");
            };
            let ended =
                schedules::end_snooze(&app.store, &tenant, &conversation_id, &snoozed_until, now)
                    .await?;
            Ok(if ended { "snooze_ended" } else { "nothing" })
        }
    }
}

async fn handle_bus_event(app: &App, event: &Value) -> Result<&'static str, Error> {
    let Ok(envelope) = serde_json::from_value::<EventBridgeEvent<Value>>(event.clone()) else {
        return Ok("ignored");
    };
    if envelope.source != SOURCE || envelope.detail_type != "MessageReceived" {
        return Ok("ignored");
    }
    let Ok(detail) = serde_json::from_value::<MessageReceived>(envelope.detail) else {
        warn!("MessageReceived event without the expected fields; ignored");
        return Ok("ignored");
    };
    let span =
        info_span!("event", function = "scheduler", id = %envelope.id, tenant = %detail.tenant_id);
    let cancelled = schedules::cancel_on_reply(&app.store, &app.schedules, &detail, Utc::now())
        .instrument(span)
        .await?;
    Ok(if cancelled > 0 {
        "cancelled"
    } else {
        "nothing"
    })
}
