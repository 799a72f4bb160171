//! Webhook ingest: every item of a parsed webhook, stored exactly once, statuses moved
//! forward, events published.

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde_json::json;
use tracing::{info, warn};

use crate::Error;
use crate::domain::channel::{Channel, ChannelType};
use crate::domain::events::{EventMedia, MessageChanged, MessageReceived, MessageStatusChanged};
use crate::domain::inbound::{
    InboundMessage, LifecycleEvent, ParsedWebhook, StatusUpdate, WebhookItem, canonical_customer,
    ids_storable,
};
use crate::domain::limits;
use crate::domain::message::{DeliveryError, DeliveryStatus, Direction};
use crate::domain::system::SystemMessage;
use crate::domain::time::rfc3339;
use crate::ports::{
    ChangeOutcome, ChannelDirectory, CustomerAliases, DomainEvent, EventPublisher, InboundStore,
    MessageLifecycle, MessageRef, Recorded, StatusOutcome,
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
    /// Messages stored with fields cut or dropped to the storage limits
    /// ([`crate::domain::limits`]).
    pub truncated: usize,
    /// Items the store refused for good even when cut: acknowledged, logged, not stored
    /// (a retry could not store them either).
    pub rejected: usize,
    /// Edits, deletions, reactions and plays applied to a stored message.
    pub changes_applied: usize,
    /// Changes kept for a message not stored yet.
    pub changes_kept: usize,
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
        self.truncated += other.truncated;
        self.rejected += other.rejected;
        self.changes_applied += other.changes_applied;
        self.changes_kept += other.changes_kept;
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
/// provider would otherwise retry them for days. Every item is tried, whatever happened to
/// the others; a failure a retry can help (throttling, timeouts, 5xx) is returned after
/// that (the caller answers 5xx so the provider retries; re-deliveries are deduplicated).
/// A message the store refuses for good is stored cut, or counted as `rejected`.
///
/// # Errors
///
/// The first passing failure ([`Error::Internal`]) of any item, once all were tried.
pub async fn ingest_webhook<D, S, P>(
    ports: IngestPorts<'_, D, S, P>,
    provider: ChannelType,
    parsed: ParsedWebhook,
    now: DateTime<Utc>,
) -> Result<IngestReport, Error>
where
    D: ChannelDirectory,
    S: InboundStore + CustomerAliases + MessageLifecycle,
    P: EventPublisher,
{
    let mut report = IngestReport {
        skipped: parsed.skipped.len(),
        ..IngestReport::default()
    };
    // One line for the whole delivery, however many items were skipped.
    if !parsed.skipped.is_empty() {
        info!(
            provider = %provider,
            skipped = parsed.skipped.len(),
            reasons = %count_by_reason(&parsed.skipped),
            "webhook items skipped"
        );
    }
    let mut events = Vec::new();
    let mut error = None;
    let mut unrouted_accounts = 0;
    for account in parsed.accounts {
        // No tenant connected an account with an empty or oversize id (DynamoDB could not
        // even read its key): acknowledged like any other unknown account.
        if !ids_storable(&[&account.external_id]) {
            unrouted_accounts += 1;
            report.unrouted += account.items.len();
            continue;
        }
        let routed = match ports.directory.by_external_id(&account.external_id).await {
            Ok(r) => r,
            Err(e) => {
                error = error.or(Some(e));
                continue;
            }
        };
        let Some(routed) = routed.filter(|r| r.channel.channel_type == provider) else {
            unrouted_accounts += 1;
            report.unrouted += account.items.len();
            continue;
        };
        let ingested = ingest_items(ports.store, &routed.channel, account.items, now).await;
        report.add(&ingested.report);
        events.extend(ingested.events);
        error = error.or(ingested.error);
    }
    if unrouted_accounts > 0 {
        warn!(
            provider = %provider,
            accounts = unrouted_accounts,
            items = report.unrouted,
            "webhook for accounts no tenant has connected; acknowledged, not stored"
        );
    }
    // What was stored is announced; the provider's retry stores the rest.
    publish(ports.publisher, &events).await;
    match error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// `{"reason": count, …}` of skipped items, for one log line.
fn count_by_reason(reasons: &[&'static str]) -> serde_json::Value {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for reason in reasons {
        *counts.entry(reason).or_default() += 1;
    }
    json!(counts)
}

/// What storing one channel's items did. Every item was tried; when `error` is set, some
/// failed in a way a retry can help, and the `events` of those stored are here to publish.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Counts.
    pub report: IngestReport,
    /// Events of what was stored.
    pub events: Vec<DomainEvent>,
    /// The first passing storage failure, if any (a retry can help).
    pub error: Option<Error>,
}

/// Stores the items of one channel. Items of different customers run concurrently; items
/// of one customer run in payload order, each tried whatever happened to the one before.
pub async fn ingest_items<S: InboundStore + CustomerAliases + MessageLifecycle>(
    store: &S,
    channel: &Channel,
    items: Vec<WebhookItem>,
    now: DateTime<Utc>,
) -> Ingested {
    let items = match resolve_customers(store, channel, items).await {
        Ok(items) => items,
        Err(e) => {
            return Ingested {
                error: Some(e),
                ..Ingested::default()
            };
        }
    };
    let mut groups: Vec<(String, Vec<WebhookItem>)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut oversize = 0;
    for item in items {
        let (customer, id) = match &item {
            WebhookItem::Message(m) => (&m.customer, m.provider_message_id.as_str()),
            WebhookItem::Status(s) => (&s.customer, s.provider_message_id.as_str()),
            WebhookItem::Watermark(w) => (&w.customer, "watermark"),
            WebhookItem::Lifecycle(c) => (&c.customer, c.target.as_str()),
        };
        if !ids_storable(&[customer, id]) {
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
                    match e {
                        // A retry could not store it either: acknowledged, not retried forever.
                        Error::StoreRejected(cause) => {
                            warn!(
                                tenant = %channel.tenant_id,
                                channel_id = %channel.id,
                                cause = %cause,
                                "webhook item refused by the store; acknowledged"
                            );
                            done.report.rejected += 1;
                        }
                        e => done.error = done.error.or(Some(e)),
                    }
                }
            }
            done
        })
        .buffer_unordered(PARALLEL_CONVERSATIONS)
        .collect()
        .await;
    if oversize > 0 {
        warn!(channel_id = %channel.id, items = oversize, "webhook items with an empty or oversize id; acknowledged, not stored");
    }
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
        truncated = report.truncated,
        rejected = report.rejected,
        failed = error.is_some(),
        "webhook ingested"
    );
    Ingested {
        report,
        events,
        error,
    }
}

async fn ingest_item<S: InboundStore + CustomerAliases + MessageLifecycle>(
    store: &S,
    channel: &Channel,
    item: WebhookItem,
    now: DateTime<Utc>,
    report: &mut IngestReport,
    events: &mut Vec<DomainEvent>,
) -> Result<(), Error> {
    match item {
        WebhookItem::Message(original) => {
            // What is stored and announced: every field within its limit.
            let mut message = original.clone();
            let cut = limits::bound_message(&mut message);
            let Some((recorded, minimal)) = record(store, channel, &original, now).await? else {
                report.rejected += 1;
                return Ok(());
            };
            match recorded {
                Recorded::Stored(at) => {
                    report.stored += 1;
                    if minimal || !cut.is_empty() {
                        report.truncated += 1;
                        warn!(
                            tenant = %channel.tenant_id,
                            channel_id = %channel.id,
                            message_id = %at.message_id,
                            fields = ?cut.names(),
                            minimal,
                            "message stored cut to the storage limits"
                        );
                    }
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
                        standby: message.standby,
                        cancels_scheduled: at.cancels_scheduled,
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
        WebhookItem::Status(mut update) => {
            limits::bound_status(&mut update);
            apply_status(store, channel, &update, now, report, events).await?;
        }
        WebhookItem::Watermark(watermark) => {
            // Statuses of messages not recorded yet are kept (one item each, expiring):
            // a receipt names at most this many, the newest watermark covers the rest.
            let named = watermark.mids.len();
            let mids: Vec<&String> = watermark
                .mids
                .iter()
                .filter(|mid| ids_storable(&[mid.as_str()]))
                .take(limits::MAX_RECEIPT_MIDS)
                .collect();
            if mids.len() < named {
                report.skipped += named - mids.len();
                warn!(
                    channel_id = %channel.id,
                    named,
                    kept = mids.len(),
                    "receipt names more message ids than kept; the watermark covers the rest"
                );
            }
            let mut error = None;
            for mid in mids {
                let update = StatusUpdate {
                    provider_message_id: mid.clone(),
                    customer: watermark.customer.clone(),
                    status: watermark.status,
                    timestamp: Some(watermark.watermark),
                    error: None,
                    raw: serde_json::Value::Null,
                    reference: None,
                };
                if let Err(e) = apply_status(store, channel, &update, now, report, events).await {
                    error = error.or(Some(e));
                }
            }
            if let Some(e) = error {
                return Err(e);
            }
            for at in store.apply_watermark(channel, &watermark).await? {
                report.statuses_applied += 1;
                events.push(status_event(channel, &at, watermark.status, None));
            }
        }
        WebhookItem::Lifecycle(mut change) => {
            let mut outcome = store.apply_change(channel, &change, now).await?;
            // Not there: the message may live under an alias of this customer id.
            if outcome == ChangeOutcome::Kept
                && let Some(canonical) =
                    alias_target(store, channel, &item_ids_of_change(&change)).await?
            {
                change.customer = canonical;
                outcome = store.apply_change(channel, &change, now).await?;
            }
            match outcome {
                ChangeOutcome::Applied(at) => {
                    report.changes_applied += 1;
                    events.push(change_event(channel, &at, &change));
                }
                ChangeOutcome::Kept => report.changes_kept += 1,
                ChangeOutcome::Duplicate => report.duplicates += 1,
            }
        }
    }
    Ok(())
}

/// Records a message; when the store refuses it for good, records its minimal copy
/// ([`limits::minimal`]), `true` then. `None` when even that is refused (logged).
async fn record<S: InboundStore>(
    store: &S,
    channel: &Channel,
    message: &InboundMessage,
    now: DateTime<Utc>,
) -> Result<Option<(Recorded, bool)>, Error> {
    let cause = match store.record_message(channel, message, now).await {
        Err(Error::StoreRejected(cause)) => cause,
        other => return other.map(|r| Some((r, false))),
    };
    warn!(
        tenant = %channel.tenant_id,
        channel_id = %channel.id,
        cause = %cause,
        "message refused by the store; storing its minimal copy"
    );
    match store
        .record_message(channel, &limits::minimal(message), now)
        .await
    {
        Err(Error::StoreRejected(cause)) => {
            tracing::error!(
                tenant = %channel.tenant_id,
                channel_id = %channel.id,
                cause = %cause,
                "message refused by the store even minimal; acknowledged, not stored"
            );
            Ok(None)
        }
        other => other.map(|r| Some((r, true))),
    }
}

/// `MessageChanged`: a stored message was edited, deleted, reacted to or played.
fn change_event(channel: &Channel, at: &MessageRef, change: &LifecycleEvent) -> DomainEvent {
    DomainEvent::MessageChanged(MessageChanged {
        tenant_id: channel.tenant_id.to_string(),
        channel_id: channel.id.to_string(),
        conversation_id: at.conversation_id.clone(),
        message_id: at.message_id.clone(),
        change: change.change.as_str().to_owned(),
        by: change.by,
    })
}

/// The customer ids a message names: every id the provider gave, key first.
fn message_ids(m: &InboundMessage) -> Vec<String> {
    let ids = m.identity.ids();
    if ids.is_empty() {
        vec![m.customer.clone()]
    } else {
        ids.into_iter().map(str::to_owned).collect()
    }
}

fn item_ids_of_change(c: &LifecycleEvent) -> Vec<String> {
    with_user_id(&c.customer, &c.raw)
}

/// Where the conversation of a customer named by `ids` lives when an alias says so (and
/// it is not under the first id): WhatsApp only, one consistent read. Statuses and
/// changes use it only when their message was not found under the id they name, so the
/// usual status costs no read.
async fn alias_target<S: CustomerAliases>(
    store: &S,
    channel: &Channel,
    ids: &[String],
) -> Result<Option<String>, Error> {
    if channel.channel_type != ChannelType::Whatsapp {
        return Ok(None);
    }
    let ids: Vec<String> = ids
        .iter()
        .filter(|id| ids_storable(&[id]))
        .cloned()
        .collect();
    let aliases = store.customer_aliases(channel, &ids).await?;
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    Ok(canonical_customer(&refs, &aliases)
        .map(|(canonical, _)| canonical)
        .filter(|canonical| ids.first() != Some(canonical)))
}

fn with_user_id(customer: &str, raw: &serde_json::Value) -> Vec<String> {
    let mut ids = vec![customer.to_owned()];
    for field in ["recipient_user_id", "from_user_id", "to_user_id"] {
        if let Some(id) = raw[field].as_str().filter(|id| *id != customer) {
            ids.push(id.to_owned());
        }
    }
    ids
}

/// WhatsApp names one customer by several ids (phone number, business-scoped user id, a
/// `wa_id` other than the number a conversation was started with): each item goes to the
/// conversation its ids are aliased to (one consistent read per webhook), and ids seen
/// for the first time beside it are aliased to it (a conditional put each, the first
/// link wins). Other channels have one id per customer: nothing read.
///
/// # Errors
/// `internal` when the store fails (the provider retries).
pub async fn resolve_customers<S: CustomerAliases>(
    store: &S,
    channel: &Channel,
    mut items: Vec<WebhookItem>,
) -> Result<Vec<WebhookItem>, Error> {
    let has_messages = items.iter().any(|i| matches!(i, WebhookItem::Message(_)));
    if channel.channel_type != ChannelType::Whatsapp || !has_messages {
        return Ok(items);
    }
    let ids: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            WebhookItem::Message(m) => Some(message_ids(m)),
            _ => None,
        })
        .flatten()
        .filter(|id| ids_storable(&[id]))
        .collect();
    let mut aliases = store.customer_aliases(channel, &ids).await?;
    for item in &mut items {
        let WebhookItem::Message(m) = item else {
            continue;
        };
        let ids = message_ids(m);
        let refs: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| ids_storable(&[id]))
            .collect();
        let Some((mut canonical, mut missing)) = canonical_customer(&refs, &aliases) else {
            continue;
        };
        // A customer keyed by its business-scoped user id (no phone number shared) links
        // that id to itself: when the number shows up beside it later, it follows.
        if m.identity.phone.is_none()
            && m.identity.user_id.as_deref() == Some(canonical.as_str())
            && !aliases.contains_key(&canonical)
        {
            missing.push(canonical.clone());
        }
        for alias in missing {
            let target = store.alias_customer(channel, &alias, &canonical).await?;
            if target != canonical {
                // A parallel delivery linked this id first: follow it.
                canonical = target.clone();
            }
            aliases.insert(alias, target);
        }
        m.customer = canonical;
    }
    Ok(items)
}

/// Applies a status; one the store refuses for good is counted as `rejected`, logged
/// and acknowledged.
async fn apply_status<S: InboundStore + CustomerAliases>(
    store: &S,
    channel: &Channel,
    update: &StatusUpdate,
    now: DateTime<Utc>,
    report: &mut IngestReport,
    events: &mut Vec<DomainEvent>,
) -> Result<(), Error> {
    match apply_status_once(store, channel, update, now, report, events).await {
        Err(Error::StoreRejected(cause)) => {
            warn!(
                tenant = %channel.tenant_id,
                channel_id = %channel.id,
                cause = %cause,
                "status refused by the store; acknowledged, not stored"
            );
            report.rejected += 1;
            Ok(())
        }
        other => other,
    }
}

async fn apply_status_once<S: InboundStore + CustomerAliases>(
    store: &S,
    channel: &Channel,
    update: &StatusUpdate,
    now: DateTime<Utc>,
    report: &mut IngestReport,
    events: &mut Vec<DomainEvent>,
) -> Result<(), Error> {
    let mut outcome = store.apply_status(channel, update).await?;
    let mut aliased;
    let mut update = update;
    // Not there: the message may live under an alias of this customer id (a conversation
    // started with another number, or a customer keyed by its business-scoped user id).
    if outcome == StatusOutcome::Kept
        && let Some(canonical) =
            alias_target(store, channel, &with_user_id(&update.customer, &update.raw)).await?
    {
        aliased = update.clone();
        aliased.customer = canonical;
        update = &aliased;
        outcome = store.apply_status(channel, update).await?;
    }
    match outcome {
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::domain::ids::{ChannelId, TenantId};
    use crate::domain::inbound::Watermark;
    use crate::domain::message::MessageKind;

    /// A store whose answer depends on the message text: `refused…` is refused for good
    /// unless it is the minimal copy, `never…` always, `throttled…` fails in passing.
    #[derive(Default)]
    struct Picky {
        stored: Mutex<Vec<InboundMessage>>,
    }

    impl CustomerAliases for Picky {
        async fn customer_aliases(
            &self,
            _: &Channel,
            _: &[String],
        ) -> Result<std::collections::HashMap<String, String>, Error> {
            Ok(std::collections::HashMap::new())
        }
        async fn alias_customer(
            &self,
            _: &Channel,
            _: &str,
            canonical: &str,
        ) -> Result<String, Error> {
            Ok(canonical.to_owned())
        }
    }

    impl MessageLifecycle for Picky {
        async fn apply_change(
            &self,
            _: &Channel,
            _: &LifecycleEvent,
            _: DateTime<Utc>,
        ) -> Result<ChangeOutcome, Error> {
            Ok(ChangeOutcome::Kept)
        }
    }

    impl InboundStore for Picky {
        async fn record_message(
            &self,
            _: &Channel,
            m: &InboundMessage,
            _: DateTime<Utc>,
        ) -> Result<Recorded, Error> {
            let text = m.text.as_deref().unwrap_or_default();
            let minimal = m.raw["stored"] == "minimal";
            if text.starts_with("never") || (text.starts_with("refused") && !minimal) {
                return Err(Error::StoreRejected("item too large".into()));
            }
            if text.starts_with("throttled") {
                return Err(Error::Internal("throttled".into()));
            }
            self.stored.lock().unwrap().push(m.clone());
            Ok(Recorded::Stored(MessageRef {
                message_id: m.provider_message_id.clone(),
                conversation_id: m.customer.clone(),
                cancels_scheduled: false,
            }))
        }
        async fn pending_status(
            &self,
            _: &Channel,
            customer: &str,
            _: &str,
        ) -> Result<Option<StatusUpdate>, Error> {
            if customer == "odd" {
                return Err(Error::StoreRejected("key too long".into()));
            }
            Ok(None)
        }
        async fn apply_status(
            &self,
            _: &Channel,
            _: &StatusUpdate,
        ) -> Result<StatusOutcome, Error> {
            Ok(StatusOutcome::Kept)
        }
        async fn link_outbound(
            &self,
            _: &Channel,
            _: &StatusUpdate,
        ) -> Result<Option<MessageRef>, Error> {
            Ok(None)
        }
        async fn apply_watermark(
            &self,
            _: &Channel,
            _: &Watermark,
        ) -> Result<Vec<MessageRef>, Error> {
            Ok(Vec::new())
        }
        async fn record_system_message(
            &self,
            _: &TenantId,
            _: &str,
            _: &SystemMessage,
            _: DateTime<Utc>,
        ) -> Result<MessageRef, Error> {
            Err(Error::Internal("not expected".into()))
        }
    }

    fn channel() -> Channel {
        Channel {
            id: ChannelId::parse("01CHANNEL").unwrap(),
            tenant_id: TenantId::parse("t1").unwrap(),
            channel_type: ChannelType::Whatsapp,
            external_id: "106540352242922".into(),
            name: "test".into(),
            waba_id: None,
            human_agent: false,
            window_hours: 24,
            created_at: Utc::now(),
        }
    }

    fn text(customer: &str, id: &str, text: &str) -> WebhookItem {
        WebhookItem::Message(InboundMessage {
            provider_message_id: id.into(),
            customer: customer.into(),
            customer_name: None,
            direction: Direction::Inbound,
            kind: MessageKind::Text,
            text: Some(text.into()),
            media: None,
            reply_to: None,
            timestamp: None,
            opens_window: true,
            raw: serde_json::Value::Null,
            identity: Default::default(),
            standby: false,
        })
    }

    fn stored_ids(store: &Picky) -> Vec<String> {
        let mut ids: Vec<String> = store
            .stored
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.provider_message_id.clone())
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn a_message_refused_for_good_is_stored_minimal_and_the_next_one_of_the_customer_too() {
        let store = Picky::default();
        let items = vec![
            text("ana", "a1", &format!("refused {}", "x".repeat(5000))),
            text("ana", "a2", "second"),
        ];
        let done = ingest_items(&store, &channel(), items, Utc::now()).await;
        assert!(done.error.is_none());
        assert_eq!((done.report.stored, done.report.truncated), (2, 1));
        assert_eq!(stored_ids(&store), vec!["a1", "a2"]);
        assert_eq!(done.events.len(), 2);
    }

    #[tokio::test]
    async fn a_message_refused_even_minimal_is_acknowledged_as_rejected_and_the_rest_stored() {
        let store = Picky::default();
        let items = vec![text("ana", "a1", "never fits"), text("ana", "a2", "second")];
        let done = ingest_items(&store, &channel(), items, Utc::now()).await;
        assert!(done.error.is_none());
        assert_eq!((done.report.stored, done.report.rejected), (1, 1));
        assert_eq!(stored_ids(&store), vec!["a2"]);
    }

    #[tokio::test]
    async fn a_permanent_refusal_of_any_later_step_is_acknowledged_not_retried() {
        let store = Picky::default();
        let mut echo = text("odd", "o1", "sent from Meta's inbox");
        if let WebhookItem::Message(m) = &mut echo {
            m.direction = Direction::Outbound;
        }
        let items = vec![echo, text("odd", "o2", "reply")];
        let done = ingest_items(&store, &channel(), items, Utc::now()).await;
        assert!(done.error.is_none());
        assert_eq!((done.report.stored, done.report.rejected), (2, 1));
    }

    #[tokio::test]
    async fn a_passing_failure_is_returned_after_every_other_item_was_tried() {
        let store = Picky::default();
        let items = vec![
            text("ana", "a1", "throttled"),
            text("ana", "a2", "second"),
            text("ben", "b1", "hello"),
        ];
        let done = ingest_items(&store, &channel(), items, Utc::now()).await;
        assert!(matches!(done.error, Some(Error::Internal(_))));
        assert_eq!(stored_ids(&store), vec!["a2", "b1"]);
    }

    /// A directory that fails like DynamoDB on a partition key over 2,048 bytes and knows
    /// one account.
    struct Directory;

    impl ChannelDirectory for Directory {
        async fn by_external_id(
            &self,
            external_id: &str,
        ) -> Result<Option<crate::ports::RoutedChannel>, Error> {
            if external_id.len() > 2048 {
                return Err(Error::Internal("ValidationException: key too large".into()));
            }
            Ok(
                (external_id == "106540352242922").then(|| crate::ports::RoutedChannel {
                    channel: channel(),
                    credentials: crate::domain::channel::Credentials::default(),
                }),
            )
        }
        async fn by_id(&self, _: &ChannelId) -> Result<Option<crate::ports::RoutedChannel>, Error> {
            Ok(None)
        }
    }

    struct Silent;

    impl EventPublisher for Silent {
        async fn publish(&self, _: &[DomainEvent]) -> Result<(), Error> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_account_id_too_long_for_a_key_is_unrouted_and_the_other_accounts_stored() {
        let store = Picky::default();
        let mut parsed = ParsedWebhook::default();
        parsed.push(&"1".repeat(500 * 1024), text("ana", "x1", "lost"));
        parsed.push("106540352242922", text("ben", "b1", "hello"));
        let ports = IngestPorts {
            directory: &Directory,
            store: &store,
            publisher: &Silent,
        };
        let report = ingest_webhook(ports, ChannelType::Whatsapp, parsed, Utc::now())
            .await
            .expect("no retry can help: acknowledged");
        assert_eq!((report.unrouted, report.stored), (1, 1));
        assert_eq!(stored_ids(&store), vec!["b1"]);
    }

    #[tokio::test]
    async fn a_receipt_applies_at_most_the_bounded_number_of_message_ids() {
        #[derive(Default)]
        struct Counting {
            inner: Picky,
            statuses: Mutex<usize>,
        }
        impl CustomerAliases for Counting {
            async fn customer_aliases(
                &self,
                c: &Channel,
                ids: &[String],
            ) -> Result<std::collections::HashMap<String, String>, Error> {
                self.inner.customer_aliases(c, ids).await
            }
            async fn alias_customer(
                &self,
                c: &Channel,
                a: &str,
                to: &str,
            ) -> Result<String, Error> {
                self.inner.alias_customer(c, a, to).await
            }
        }

        impl MessageLifecycle for Counting {
            async fn apply_change(
                &self,
                c: &Channel,
                e: &LifecycleEvent,
                at: DateTime<Utc>,
            ) -> Result<ChangeOutcome, Error> {
                self.inner.apply_change(c, e, at).await
            }
        }

        impl InboundStore for Counting {
            async fn record_message(
                &self,
                c: &Channel,
                m: &InboundMessage,
                t: DateTime<Utc>,
            ) -> Result<Recorded, Error> {
                self.inner.record_message(c, m, t).await
            }
            async fn pending_status(
                &self,
                c: &Channel,
                a: &str,
                b: &str,
            ) -> Result<Option<StatusUpdate>, Error> {
                self.inner.pending_status(c, a, b).await
            }
            async fn apply_status(
                &self,
                _: &Channel,
                _: &StatusUpdate,
            ) -> Result<StatusOutcome, Error> {
                *self.statuses.lock().unwrap() += 1;
                Ok(StatusOutcome::Kept)
            }
            async fn link_outbound(
                &self,
                c: &Channel,
                u: &StatusUpdate,
            ) -> Result<Option<MessageRef>, Error> {
                self.inner.link_outbound(c, u).await
            }
            async fn apply_watermark(
                &self,
                c: &Channel,
                w: &Watermark,
            ) -> Result<Vec<MessageRef>, Error> {
                self.inner.apply_watermark(c, w).await
            }
            async fn record_system_message(
                &self,
                t: &TenantId,
                c: &str,
                x: &SystemMessage,
                a: DateTime<Utc>,
            ) -> Result<MessageRef, Error> {
                self.inner.record_system_message(t, c, x, a).await
            }
        }
        let store = Counting::default();
        let receipt = WebhookItem::Watermark(Watermark {
            customer: "ana".into(),
            status: DeliveryStatus::Delivered,
            watermark: Utc::now(),
            mids: (0..1000).map(|i| format!("m_{i}")).collect(),
        });
        let done = ingest_items(&store, &channel(), vec![receipt], Utc::now()).await;
        assert!(done.error.is_none());
        assert_eq!(*store.statuses.lock().unwrap(), limits::MAX_RECEIPT_MIDS);
        assert_eq!(done.report.skipped, 1000 - limits::MAX_RECEIPT_MIDS);
    }
}
