//! Webhook ingest: every item of a parsed webhook, stored exactly once, statuses moved
//! forward, events published.

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use tracing::{info, warn};

use crate::Error;
use crate::domain::channel::{Channel, ChannelType};
use crate::domain::events::{EventMedia, MessageReceived, MessageStatusChanged};
use crate::domain::inbound::{ParsedWebhook, StatusUpdate, WebhookItem, ids_storable};
use crate::domain::message::{DeliveryError, DeliveryStatus, Direction};
use crate::domain::system::SystemMessage;
use crate::domain::time::rfc3339;
use crate::ports::{
    ChannelDirectory, DomainEvent, EventPublisher, InboundStore, MessageRef, Recorded,
    StatusOutcome,
};

/// Conversations of one webhook processed at the same time (items of one customer stay in
/// order, one after the other).
const PARALLEL_CONVERSATIONS: usize = 8;

/// What one webhook did, for the log and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Messages stored now.
    pub stored: usize,
    /// Messages already stored before (re-deliveries).
    pub duplicates: usize,
    /// Statuses that moved a message forward.
    pub statuses_applied: usize,
    /// Statuses kept for a message not recorded yet.
    pub statuses_kept: usize,
    /// Statuses that changed nothing (old or repeated).
    pub statuses_stale: usize,
    /// Items for accounts no tenant has connected (or of another platform).
    pub unrouted: usize,
    /// Items acknowledged without storing (own echoes, other fields, missing ids).
    pub skipped: usize,
}

impl IngestReport {
    fn add(&mut self, other: &IngestReport) {
        self.stored += other.stored;
        self.duplicates += other.duplicates;
        self.statuses_applied += other.statuses_applied;
        self.statuses_kept += other.statuses_kept;
        self.statuses_stale += other.statuses_stale;
        self.unrouted += other.unrouted;
        self.skipped += other.skipped;
    }
}

/// The ports a webhook needs.
pub struct IngestPorts<'a, D, S, P> {
    /// Finds the channel of an account.
    pub directory: &'a D,
    /// Stores messages and statuses.
    pub store: &'a S,
    /// Publishes events.
    pub publisher: &'a P,
}

/// Ingests a parsed Meta webhook: routes each account to its channel (which must be of
/// `provider`'s type), stores every item, then publishes the events.
///
/// Items for accounts nobody connected are acknowledged and logged, not stored: the
/// provider would otherwise retry them for days. Storage failures are errors (the caller
/// answers 5xx so the provider retries; re-deliveries are deduplicated).
pub async fn ingest_webhook<D, S, P>(
    ports: IngestPorts<'_, D, S, P>,
    provider: ChannelType,
    parsed: ParsedWebhook,
    now: DateTime<Utc>,
) -> Result<IngestReport, Error>
where
    D: ChannelDirectory,
    S: InboundStore,
    P: EventPublisher,
{
    let mut report = IngestReport {
        skipped: parsed.skipped.len(),
        ..IngestReport::default()
    };
    for reason in &parsed.skipped {
        info!(provider = %provider, reason = %reason, "webhook item skipped");
    }
    let mut events = Vec::new();
    for account in parsed.accounts {
        let routed = match ports.directory.by_external_id(&account.external_id).await {
            Ok(r) => r,
            Err(e) => {
                publish(ports.publisher, &events).await;
                return Err(e);
            }
        };
        let Some(routed) = routed.filter(|r| r.channel.channel_type == provider) else {
            warn!(
                provider = %provider,
                items = account.items.len(),
                "webhook for an account no tenant has connected; acknowledged, not stored"
            );
            report.unrouted += account.items.len();
            continue;
        };
        let ingested = ingest_items(ports.store, &routed.channel, account.items, now).await;
        report.add(&ingested.report);
        events.extend(ingested.events);
        if let Some(e) = ingested.error {
            // What was stored is announced; the provider's retry stores the rest.
            publish(ports.publisher, &events).await;
            return Err(e);
        }
    }
    publish(ports.publisher, &events).await;
    Ok(report)
}

/// What storing one channel's items did. When `error` is set, the items before it in each
/// customer's order were stored and their `events` are here to publish.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Counts.
    pub report: IngestReport,
    /// Events of what was stored.
    pub events: Vec<DomainEvent>,
    /// The first storage failure, if any (a retry can help).
    pub error: Option<Error>,
}

/// Stores the items of one channel. Items of different customers run concurrently; items
/// of one customer run in payload order.
pub async fn ingest_items<S: InboundStore>(
    store: &S,
    channel: &Channel,
    items: Vec<WebhookItem>,
    now: DateTime<Utc>,
) -> Ingested {
    let mut groups: Vec<(String, Vec<WebhookItem>)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut oversize = 0;
    for item in items {
        let (customer, id) = match &item {
            WebhookItem::Message(m) => (&m.customer, m.provider_message_id.as_str()),
            WebhookItem::Status(s) => (&s.customer, s.provider_message_id.as_str()),
            WebhookItem::Watermark(w) => (&w.customer, "watermark"),
        };
        if !ids_storable(&[customer, id]) {
            warn!(channel_id = %channel.id, "webhook item with an empty or oversize id; acknowledged, not stored");
            oversize += 1;
            continue;
        }
        // Batches hold up to 1000 items: find a customer's group through an index.
        match index.get(customer) {
            Some(&at) => groups[at].1.push(item),
            None => {
                index.insert(customer.clone(), groups.len());
                groups.push((customer.clone(), vec![item]));
            }
        }
    }
    let results: Vec<Ingested> = stream::iter(groups)
        .map(|(_, group)| async move {
            let mut done = Ingested::default();
            for item in group {
                if let Err(e) = ingest_item(
                    store,
                    channel,
                    item,
                    now,
                    &mut done.report,
                    &mut done.events,
                )
                .await
                {
                    done.error = Some(e);
                    break;
                }
            }
            done
        })
        .buffer_unordered(PARALLEL_CONVERSATIONS)
        .collect()
        .await;
    let mut report = IngestReport {
        skipped: oversize,
        ..IngestReport::default()
    };
    let mut events = Vec::new();
    let mut error = None;
    for r in results {
        report.add(&r.report);
        events.extend(r.events);
        error = error.or(r.error);
    }
    info!(
        tenant = %channel.tenant_id,
        channel_id = %channel.id,
        stored = report.stored,
        duplicates = report.duplicates,
        statuses = report.statuses_applied,
        "webhook ingested"
    );
    Ingested {
        report,
        events,
        error,
    }
}

async fn ingest_item<S: InboundStore>(
    store: &S,
    channel: &Channel,
    item: WebhookItem,
    now: DateTime<Utc>,
    report: &mut IngestReport,
    events: &mut Vec<DomainEvent>,
) -> Result<(), Error> {
    match item {
        WebhookItem::Message(message) => {
            match store.record_message(channel, &message, now).await? {
                Recorded::Stored(at) => {
                    report.stored += 1;
                    events.push(DomainEvent::MessageReceived(MessageReceived {
                        tenant_id: channel.tenant_id.to_string(),
                        channel_id: channel.id.to_string(),
                        channel: Some(channel.channel_type),
                        conversation_id: at.conversation_id.clone(),
                        message_id: at.message_id.clone(),
                        direction: Some(message.direction),
                        kind: Some(message.kind),
                        provider_message_id: Some(message.provider_message_id.clone()),
                        created_at: rfc3339(&message.effective_time(now)),
                        has_media: message.media.is_some(),
                        media: message
                            .media
                            .as_ref()
                            .map(|m| EventMedia {
                                provider_media_id: m.provider_media_id.clone(),
                                url: m.url.clone(),
                                mime_type: m.mime_type.clone(),
                                sha256: m.sha256.clone(),
                                filename: m.filename.clone(),
                            })
                            .unwrap_or_default(),
                    }));
                    // A status may have arrived before this outbound message was recorded:
                    // it is already on the message's provider id; announce it now.
                    if message.direction == Direction::Outbound
                        && let Some(update) = store
                            .pending_status(
                                channel,
                                &message.customer,
                                &message.provider_message_id,
                            )
                            .await?
                    {
                        status_applied(store, channel, &at, &update, now, events).await?;
                    }
                }
                Recorded::Duplicate => report.duplicates += 1,
            }
        }
        WebhookItem::Status(update) => {
            apply_status(store, channel, &update, now, report, events).await?;
        }
        WebhookItem::Watermark(watermark) => {
            for mid in &watermark.mids {
                let update = StatusUpdate {
                    provider_message_id: mid.clone(),
                    customer: watermark.customer.clone(),
                    status: watermark.status,
                    timestamp: Some(watermark.watermark),
                    error: None,
                    raw: serde_json::Value::Null,
                    reference: None,
                };
                apply_status(store, channel, &update, now, report, events).await?;
            }
            for at in store.apply_watermark(channel, &watermark).await? {
                report.statuses_applied += 1;
                events.push(status_event(channel, &at, watermark.status, None));
            }
        }
    }
    Ok(())
}

async fn apply_status<S: InboundStore>(
    store: &S,
    channel: &Channel,
    update: &StatusUpdate,
    now: DateTime<Utc>,
    report: &mut IngestReport,
    events: &mut Vec<DomainEvent>,
) -> Result<(), Error> {
    match store.apply_status(channel, update).await? {
        StatusOutcome::Applied(at) => {
            report.statuses_applied += 1;
            status_applied(store, channel, &at, update, now, events).await?;
        }
        // A status for a send whose outcome was unknown carries our reference: map it.
        StatusOutcome::Kept => match store.link_outbound(channel, update).await? {
            Some(at) => {
                report.statuses_applied += 1;
                status_applied(store, channel, &at, update, now, events).await?;
            }
            None => report.statuses_kept += 1,
        },
        StatusOutcome::Stale => report.statuses_stale += 1,
    }
    Ok(())
}

/// Announces a status that reached a message; a failure also becomes a system message.
async fn status_applied<S: InboundStore>(
    store: &S,
    channel: &Channel,
    at: &MessageRef,
    update: &StatusUpdate,
    now: DateTime<Utc>,
    events: &mut Vec<DomainEvent>,
) -> Result<(), Error> {
    let code = update.error.as_ref().map(|e| e.code.as_str());
    events.push(status_event(channel, at, update.status, code));
    if update.status == DeliveryStatus::Failed {
        let error = update
            .error
            .clone()
            .unwrap_or_else(|| DeliveryError::explain("failed", None));
        let note = SystemMessage::delivery_failed(&error);
        store
            .record_system_message(&channel.tenant_id, &at.conversation_id, &note, now)
            .await?;
    }
    Ok(())
}

fn status_event(
    channel: &Channel,
    at: &MessageRef,
    status: DeliveryStatus,
    code: Option<&str>,
) -> DomainEvent {
    DomainEvent::MessageStatusChanged(MessageStatusChanged {
        tenant_id: channel.tenant_id.to_string(),
        channel_id: channel.id.to_string(),
        conversation_id: at.conversation_id.clone(),
        message_id: at.message_id.clone(),
        direction: Direction::Outbound,
        status,
        error_code: code.map(str::to_owned),
    })
}

/// Publishes events; a failure is logged, not returned: the messages are stored, and
/// failing the webhook would not bring the events back (re-deliveries are deduplicated).
pub async fn publish<P: EventPublisher>(publisher: &P, events: &[DomainEvent]) {
    if events.is_empty() {
        return;
    }
    if let Err(e) = publisher.publish(events).await {
        tracing::error!(error = %e, count = events.len(), "domain events not published");
    }
}
