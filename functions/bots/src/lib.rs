//! `bots`: chatbot turns (SPEC §8). Each `MessageReceived` event of an inbound customer
//! message gets at most one bot turn, whose replies go through the same send service as
//! agents' messages ([`outbound::service`]), as `actor: bot`.
//!
//! [`handle_event`] is what Lambda runs and what the dev server's event stand-in calls.

use chrono::Utc;
use serde_json::Value;
use shared::Error;
use shared::adapters::aws::{
    DynamoDbClient, SharedCredentialsProvider, dynamodb_client, s3_client, sdk_config,
};
use shared::adapters::dynamo::DynamoStore;
use shared::config::{Config, ConfigError, Source};
use shared::domain::events::{EventBridgeEvent, MessageReceived, SOURCE};
use shared::service::bots::{BotCache, TurnOutcome, run_turn};
use tracing::{Instrument, info_span, warn};

/// Clients, the send service and compiled bots, built once per process.
#[derive(Debug)]
pub struct App {
    store: DynamoStore,
    outbound: outbound::Service,
    cache: BotCache,
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
            credentials,
        )
    }

    /// Builds the app around given clients (measurements attach interceptors to them).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable of the send service that is missing or wrong
    /// (see [`outbound::service`]).
    pub fn with_clients(
        env: &impl Source,
        config: &Config,
        dynamo: DynamoDbClient,
        s3: aws_sdk_s3::Client,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ConfigError> {
        let outbound = outbound::service(env, config, dynamo.clone(), s3, credentials)?;
        Ok(Self {
            store: DynamoStore::new(dynamo, config.table_name.clone()),
            outbound,
            cache: BotCache::default(),
        })
    }
}

/// Handles one EventBridge event: a `MessageReceived` of ours gets its bot turn; anything
/// else is ignored. `Err` only when a retry can help (the store failed): EventBridge
/// delivers the event again and the turn resumes without sending twice.
///
/// # Errors
/// The store's failure.
pub async fn handle_event(app: &App, event: &Value) -> Result<TurnOutcome, Error> {
    let Ok(envelope) = serde_json::from_value::<EventBridgeEvent<Value>>(event.clone()) else {
        warn!("not an EventBridge event; ignored");
        return Ok(TurnOutcome::Ignored);
    };
    if envelope.source != SOURCE || envelope.detail_type != "MessageReceived" {
        return Ok(TurnOutcome::Ignored);
    }
    let Ok(detail) = serde_json::from_value::<MessageReceived>(envelope.detail) else {
        warn!("MessageReceived event without the expected fields; ignored");
        return Ok(TurnOutcome::Ignored);
    };
    let span = info_span!(
        "event",
        function = "bots",
        id = %envelope.id,
        tenant = %detail.tenant_id,
    );
    run_turn(&app.store, &app.outbound, &app.cache, &detail, Utc::now())
        .instrument(span)
        .await
}
