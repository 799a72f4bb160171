//! Outbound messages: one transaction accepts a send (messages, conversation activity,
//! WeChat reply count, idempotency key), one write settles each message.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::channels::routed_from_item;
use super::conversations::{conversation_from, message_from};
use super::inbound::{MessageRecord, raw_text};
use super::{
    DynamoStore, Expr, TRANSACTION_ATTEMPTS, conflict_backoff, get_s, internal, key_item, n,
    reason_codes, s, update,
};
use crate::Error;
use crate::adapters::keys;
use crate::domain::conversation::{
    ConversationState, ConversationStatus, Message, customer_id, preview,
};
use crate::domain::ids::{ChannelId, TenantId};
use crate::domain::message::{DeliveryError, DeliveryStatus, Direction};
use crate::domain::system::SystemMessage;
use crate::domain::time::rfc3339;
use crate::ports::{
    Acceptance, ConversationReader, IdempotencyRecord, MessageKey, OutboundBatch, OutboundStore,
    PendingMessage, RoutedChannel, SendOutcome,
};

/// The clock's time an outbound message was accepted (RFC 3339): a repeat takes over a
/// send left unsettled only once this is older than the budget and the margin.
const ACCEPTED_AT: &str = "accepted_at";

/// What a `ConditionalCheckFailed` at each position of the accept transaction means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Idempotency,
    Message,
    Conversation,
    /// A label membership item of the conversation.
    Member,
    Customer,
}

fn put(table: &str, item: HashMap<String, AttributeValue>) -> Result<TransactWriteItem, Error> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(|e| internal("build put", e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn message_ref(m: &PendingMessage) -> String {
    format!("{}#{}", m.created_at, m.id)
}

impl DynamoStore {
    /// The conversation update and its label membership updates, placed from `seen` (the
    /// conversation as read; `None` when it does not exist yet).
    fn conversation_writes(
        &self,
        b: &OutboundBatch,
        seen: Option<&ConversationState>,
    ) -> Result<Vec<TransactWriteItem>, Error> {
        let c = &b.channel;
        let tenant = &c.tenant_id;
        let last = b
            .messages
            .last()
            .ok_or_else(|| Error::Internal("an outbound batch has no message".into()))?;
        let activity = keys::conversation_activity(&last.created_at, &b.conversation_id);
        // Starting a conversation (a template) reopens it; a reply leaves the status.
        let status = match seen {
            Some(x) if !b.start => x.status,
            _ => ConversationStatus::Open,
        };
        let mut e = Expr::default();
        e.set("last_message_at", s(&last.created_at))
            .set("preview", s(preview(last.kind, last.text.as_deref())))
            .set(keys::VIEW_SK, s(&activity));
        if b.actor.is_human() {
            // The agent answering has seen the customer's messages (a bot's or a
            // schedule's message reads nothing).
            e.set("unread_count", n(0));
        }
        let mut conditions = Vec::new();
        if b.start {
            e.set(keys::ENTITY, s("conversation"))
                .set("id", s(&b.conversation_id))
                .set("tenant_id", s(tenant.as_str()))
                .set("channel_id", s(c.id.as_str()))
                .set("channel_type", s(c.channel_type.as_str()))
                .set("window_hours", n(c.window_hours))
                .set("human_agent", AttributeValue::Bool(c.human_agent))
                .set("customer_id", s(customer_id(&c.id, &b.customer)))
                .set("customer_external_id", s(&b.customer))
                .set("status", s(status.as_str()))
                .set_if_absent("created_at", s(&last.created_at))
                .set_if_absent("labels", AttributeValue::L(Vec::new()));
            if seen.is_some_and(|x| x.status != ConversationStatus::Open) {
                e.remove("snoozed_until");
            }
        }
        super::views::set_views(
            &mut e,
            tenant,
            &b.conversation_id,
            status,
            seen.and_then(|x| x.assignee.as_deref()),
            c.id.as_str(),
        );
        match seen {
            None => {
                let pk = e.name(keys::PK);
                conditions.push(format!("attribute_not_exists({pk})"));
            }
            Some(x) => {
                let pk = e.name(keys::PK);
                conditions.push(format!("attribute_exists({pk})"));
                let version = e.name("views_version");
                if x.views_version == 0 {
                    conditions.push(format!("attribute_not_exists({version})"));
                } else {
                    let v = e.value(n(x.views_version));
                    conditions.push(format!("{version} = {v}"));
                }
                if status != x.status {
                    e.set("views_version", n(x.views_version + 1));
                }
            }
        }
        if let Some(budget) = b.reply_budget {
            let count = u32::try_from(b.messages.len()).unwrap_or(u32::MAX);
            let name = e.name("replies_since_inbound");
            let max = e.value(n(budget));
            conditions.push(format!("(attribute_not_exists({name}) OR {name} <= {max})"));
            e.add("replies_since_inbound", n(count));
        }
        // A person's reply stops a running bot, in this transaction; conditional on the
        // bot state read, so a bot starting meanwhile is seen (and stopped) on the retry.
        let mut bot_note = None;
        if let (true, Some(x)) = (b.actor.is_human(), seen) {
            let at = crate::domain::time::parse_rfc3339(&b.messages[0].created_at)
                .unwrap_or_else(Utc::now);
            let (condition, note) = super::bots::stop_on_agent_reply(
                &self.table,
                &mut e,
                tenant,
                &b.conversation_id,
                &x.bot,
                &b.actor,
                at,
            )?;
            conditions.push(condition);
            bot_note = note;
        }
        if let Some(version) = b.bot_version {
            let name = e.name("bot_version");
            let v = e.value(n(version));
            conditions.push(format!("{name} = {v}"));
        }
        let condition = (!conditions.is_empty()).then(|| conditions.join(" AND "));
        let mut writes = vec![update(
            &self.table,
            keys::conversation(tenant, &b.conversation_id),
            &e,
            condition,
        )?];
        writes.extend(bot_note);
        if b.start && seen.is_some_and(|x| x.status != ConversationStatus::Open) {
            // Starting again reopens a closed or snoozed conversation: recorded with it.
            let at = crate::domain::time::parse_rfc3339(&last.created_at).unwrap_or_else(Utc::now);
            let note =
                SystemMessage::status_changed(ConversationStatus::Open, None, b.actor.clone());
            writes.push(super::system::system_put(
                &self.table,
                tenant,
                &b.conversation_id,
                &at,
                &note,
            )?);
        }
        for label in seen.map(|x| x.labels.as_slice()).unwrap_or_default() {
            writes.push(super::views::member_update(
                &self.table,
                tenant,
                &b.conversation_id,
                label,
                status,
                super::views::MemberMove {
                    activity: Some(&activity),
                    name_key: None,
                },
            )?);
        }
        Ok(writes)
    }

    fn customer_write(&self, b: &OutboundBatch) -> Result<TransactWriteItem, Error> {
        let c = &b.channel;
        let id = customer_id(&c.id, &b.customer);
        let mut e = Expr::default();
        e.set(keys::ENTITY, s("customer"))
            .set("id", s(&id))
            .set("tenant_id", s(c.tenant_id.as_str()))
            .set("channel_id", s(c.id.as_str()))
            .set("channel_type", s(c.channel_type.as_str()))
            .set("external_id", s(&b.customer))
            .set_if_absent(
                "created_at",
                s(b.messages.first().map_or("", |m| m.created_at.as_str())),
            );
        let whatsapp = c.channel_type == crate::domain::channel::ChannelType::Whatsapp;
        let wa_id = whatsapp.then_some(b.customer.as_str());
        super::customers::index_keys(&mut e, &c.tenant_id, &id, &b.customer, None, wa_id);
        update(&self.table, keys::customer(&c.tenant_id, &id), &e, None)
    }

    /// The conversation at `key`, read consistently.
    async fn read_state(&self, key: &keys::Key) -> Result<Option<ConversationState>, Error> {
        self.get_consistent(key.clone(), "read conversation")
            .await?
            .as_ref()
            .map(conversation_from)
            .transpose()
    }

    /// The messages of an idempotency item, checked against the request's body hash.
    async fn idempotent_refs(
        &self,
        key: keys::Key,
        body_hash: &str,
    ) -> Result<Option<Vec<MessageKey>>, Error> {
        let Some(item) = self.get_consistent(key, "read idempotency key").await? else {
            return Ok(None);
        };
        if get_s(&item, "request_hash") != Some(body_hash) {
            return Err(Error::validation(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different message",
            ));
        }
        Ok(Some(
            item.get("messages")
                .and_then(|v| v.as_l().ok())
                .map(|l| {
                    l.iter()
                        .filter_map(|v| v.as_s().ok())
                        .filter_map(|r| r.rsplit_once('#'))
                        .map(|(at, id)| MessageKey {
                            created_at: at.to_owned(),
                            id: id.to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ))
    }

    async fn update_message(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        m: &PendingMessage,
        e: &mut Expr,
        below_rank: u8,
    ) -> Result<(), Error> {
        let key = keys::message(tenant, conversation_id, &m.created_at, &m.id);
        let rank = e.name("status_rank");
        let limit = e.value(n(below_rank));
        // Refused = settled before (a retried settle): nothing to do.
        self.conditional_update(key, e, &format!("{rank} < {limit}"), "settle message")
            .await
            .map(|_| ())
    }

    async fn transact_settle(&self, items: Vec<TransactWriteItem>) -> Result<(), Error> {
        for attempt in 0..TRANSACTION_ATTEMPTS {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            match result.map_err(aws_sdk_dynamodb::error::SdkError::into_service_error) {
                Ok(_) => return Ok(()),
                Err(TransactWriteItemsError::TransactionCanceledException(cancel)) => {
                    let codes = reason_codes(cancel.cancellation_reasons());
                    if codes.first() == Some(&"ConditionalCheckFailed") {
                        // The message was settled before: a retried settle changes nothing.
                        return Ok(());
                    }
                    if codes.get(1) == Some(&"ConditionalCheckFailed") {
                        return Err(Error::conflict(
                            "provider_id_taken",
                            "the provider id is mapped to another message",
                        ));
                    }
                    if !codes.contains(&"TransactionConflict") {
                        return Err(Error::Internal(format!("settle cancelled: {codes:?}")));
                    }
                    conflict_backoff(attempt).await;
                }
                Err(TransactWriteItemsError::TransactionInProgressException(_)) => {
                    conflict_backoff(attempt).await;
                }
                Err(other) => return Err(internal("settle message", other)),
            }
        }
        Err(Error::Internal(
            "settle: transaction kept conflicting".into(),
        ))
    }
}

impl OutboundStore for DynamoStore {
    async fn accept(&self, b: &OutboundBatch) -> Result<Acceptance, Error> {
        let tenant = &b.channel.tenant_id;
        let mut items = Vec::new();
        let mut slots = Vec::new();
        let mut idempotency = None;
        if let Some(IdempotencyRecord {
            key_hash: key,
            body_hash: hash,
        }) = &b.idempotency
        {
            let k = keys::idempotency(tenant, &b.conversation_id, key);
            let mut item = key_item(k.clone());
            item.insert(keys::ENTITY.into(), s("idempotency"));
            item.insert("request_hash".into(), s(hash));
            item.insert(
                "messages".into(),
                AttributeValue::L(b.messages.iter().map(|m| s(message_ref(m))).collect()),
            );
            items.push(put(&self.table, item)?);
            slots.push(Slot::Idempotency);
            idempotency = Some((hash, k));
        }
        for m in &b.messages {
            let pending = DeliveryStatus::Pending;
            let record = MessageRecord {
                id: m.id.clone(),
                tenant_id: tenant.to_string(),
                conversation_id: b.conversation_id.clone(),
                direction: Direction::Outbound.as_str().into(),
                kind: m.kind.as_str().into(),
                text: m.text.clone(),
                media_id: m.media.as_ref().map(|x| x.media_id.clone()),
                media_mime_type: m.media.as_ref().map(|x| x.mime_type.clone()),
                media_size: m.media.as_ref().map(|x| x.size),
                status: pending.as_str().into(),
                status_rank: pending.rank(),
                actor: Some(b.actor.clone()),
                created_at: m.created_at.clone(),
                received_at: m.created_at.clone(),
                raw: raw_text(&m.raw),
                ..MessageRecord::default()
            };
            let key = keys::message(tenant, &b.conversation_id, &m.created_at, &m.id);
            let mut item = record.item(key)?;
            item.insert(ACCEPTED_AT.into(), s(rfc3339(&b.accepted_at)));
            items.push(put(&self.table, item)?);
            slots.push(Slot::Message);
        }
        let conversation_key = keys::conversation(tenant, &b.conversation_id);
        let mut seen = match &b.seen {
            Some(state) => Some(state.clone()),
            None => self.read_state(&conversation_key).await?,
        };
        for attempt in 0..TRANSACTION_ATTEMPTS {
            let mut all = items.clone();
            let mut all_slots = slots.clone();
            for (i, write) in self
                .conversation_writes(b, seen.as_ref())?
                .into_iter()
                .enumerate()
            {
                all.push(write);
                all_slots.push(if i == 0 {
                    Slot::Conversation
                } else {
                    Slot::Member
                });
            }
            if b.start {
                all.push(self.customer_write(b)?);
                all_slots.push(Slot::Customer);
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(all))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Acceptance::Accepted),
                Err(err) => err.into_service_error(),
            };
            match err {
                TransactWriteItemsError::TransactionCanceledException(cancel) => {
                    let codes = reason_codes(cancel.cancellation_reasons());
                    let failed = codes
                        .iter()
                        .position(|c| *c == "ConditionalCheckFailed")
                        .and_then(|i| all_slots.get(i));
                    match failed {
                        Some(Slot::Idempotency) => {
                            let (hash, key) = idempotency
                                .clone()
                                .ok_or_else(|| Error::Internal("no idempotency slot".into()))?;
                            let refs = self.idempotent_refs(key, hash).await?.ok_or_else(|| {
                                Error::Internal("idempotency key vanished".into())
                            })?;
                            return Ok(Acceptance::Replay(refs));
                        }
                        Some(Slot::Conversation | Slot::Member) => {
                            // Gone, moved between views since it was read (read it again
                            // and retry), or on WeChat the quota was spent by a parallel
                            // send.
                            let fresh = self.read_state(&conversation_key).await?;
                            let moved = match (&seen, &fresh) {
                                (_, None) if !b.start => {
                                    return Err(Error::NotFound {
                                        what: "conversation",
                                    });
                                }
                                (Some(old), Some(new)) => {
                                    old.views_version != new.views_version
                                        || old.labels != new.labels
                                        || old.bot.version != new.bot.version
                                }
                                (None, Some(_)) => true,
                                (_, None) => false,
                            };
                            if let (Some(expected), Some(new)) = (b.bot_version, &fresh)
                                && new.bot.version != expected
                            {
                                return Err(Error::conflict(
                                    "bot_stopped",
                                    "the bot was stopped (or moved on) while its turn was sending",
                                ));
                            }
                            if moved || failed == Some(&Slot::Member) {
                                seen = fresh;
                                continue;
                            }
                            return Err(quota_spent());
                        }
                        Some(Slot::Message | Slot::Customer) | None => {}
                    }
                    if codes.contains(&"TransactionConflict") {
                        conflict_backoff(attempt).await;
                        continue;
                    }
                    return Err(Error::Internal(format!("accept send cancelled: {codes:?}")));
                }
                TransactWriteItemsError::TransactionInProgressException(_) => {
                    conflict_backoff(attempt).await;
                }
                other => return Err(internal("accept send", other)),
            }
        }
        Err(Error::Internal(
            "accept send: transaction kept conflicting".into(),
        ))
    }

    async fn settle(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        m: &PendingMessage,
        outcome: &SendOutcome,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let key = keys::message(tenant, conversation_id, &m.created_at, &m.id);
        match outcome {
            SendOutcome::Sent(provider_id) => {
                let sent = DeliveryStatus::Sent;
                let mut e = Expr::default();
                e.set("status", s(sent.as_str()))
                    .set("status_rank", n(sent.rank()))
                    .set("sent_at", s(rfc3339(&at)));
                let Some(pid) = provider_id else {
                    return self
                        .update_message(tenant, conversation_id, m, &mut e, sent.rank())
                        .await;
                };
                e.set("provider_message_id", s(pid));
                let message_only = e.clone();
                let rank = e.name("status_rank");
                let limit = e.value(n(sent.rank()));
                let message = update(
                    &self.table,
                    key.clone(),
                    &e,
                    Some(format!("{rank} < {limit}")),
                )?;
                // The provider id item maps status webhooks back to this message. A status
                // that arrived before this write stays (it is later than `sent`).
                let mut p = Expr::default();
                p.set(keys::ENTITY, s("provider_message"))
                    .set("message_id", s(&m.id))
                    .set("message_sk", s(&key.sk))
                    .set("direction", s(Direction::Outbound.as_str()))
                    .set_if_absent("status", s(sent.as_str()))
                    .set_if_absent("status_rank", n(sent.rank()))
                    .remove(keys::EXPIRES_AT);
                let mid = p.name("message_id");
                let value = p.value(s(&m.id));
                let mapping = update(
                    &self.table,
                    keys::provider_message(tenant, conversation_id, pid),
                    &p,
                    Some(format!("attribute_not_exists({mid}) OR {mid} = {value}")),
                )?;
                match self.transact_settle(vec![message, mapping]).await {
                    // Another item claimed the provider id (an echo stored by a version
                    // that did not know our reference): the message is sent all the same.
                    Err(Error::Conflict { .. }) => {
                        tracing::warn!(message_id = %m.id, "provider id already mapped; message settled alone");
                        let mut e = message_only;
                        self.update_message(tenant, conversation_id, m, &mut e, sent.rank())
                            .await
                    }
                    other => other,
                }
            }
            SendOutcome::Failed(error) => {
                let failed = DeliveryStatus::Failed;
                let mut e = Expr::default();
                e.set("status", s(failed.as_str()))
                    .set("status_rank", n(failed.rank()))
                    .set("error_code", s(&error.code))
                    .set("error_reason", s(&error.reason))
                    .set("error_hint", s(&error.hint));
                let rank = e.name("status_rank");
                let limit = e.value(n(DeliveryStatus::Sent.rank()));
                let message = update(&self.table, key, &e, Some(format!("{rank} < {limit}")))?;
                let note = system_note(tenant, conversation_id, m, error, at)?;
                self.transact_settle(vec![message, put(&self.table, note)?])
                    .await
            }
            SendOutcome::Unknown => {
                let unknown = DeliveryError::explain("outcome_unknown", None);
                let mut e = Expr::default();
                e.set("error_code", s(&unknown.code))
                    .set("error_reason", s(&unknown.reason))
                    .set("error_hint", s(&unknown.hint));
                self.update_message(tenant, conversation_id, m, &mut e, 1)
                    .await
            }
        }
    }

    async fn take_over(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        m: &PendingMessage,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let mut e = Expr::default();
        e.set("taken_over_at", s(rfc3339(&now)));
        let status = e.name("status");
        let pending = e.value(s(DeliveryStatus::Pending.as_str()));
        let error = e.name("error_code");
        let provider = e.name("provider_message_id");
        let taken = e.name("taken_over_at");
        let accepted = e.name(ACCEPTED_AT);
        let created = e.name("created_at");
        let stale = e.value(s(rfc3339(&stale_before)));
        // Messages accepted before `accepted_at` was recorded are judged by `created_at`.
        let condition = format!(
            "{status} = {pending} AND attribute_not_exists({error}) AND \
             attribute_not_exists({provider}) AND \
             ({accepted} < {stale} OR (attribute_not_exists({accepted}) AND {created} < {stale})) AND \
             (attribute_not_exists({taken}) OR {taken} < {stale})"
        );
        self.conditional_update(
            keys::message(tenant, conversation_id, &m.created_at, &m.id),
            &e,
            &condition,
            "take over an interrupted send",
        )
        .await
    }

    async fn find_replay(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        key_hash: &str,
        body_hash: &str,
    ) -> Result<Option<Vec<MessageKey>>, Error> {
        if !conversation_id.starts_with("cv_") || conversation_id.len() > 64 {
            return Ok(None);
        }
        self.idempotent_refs(
            keys::idempotency(tenant, conversation_id, key_hash),
            body_hash,
        )
        .await
    }

    async fn conversation_for_send(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        route: Option<&ChannelId>,
    ) -> Result<(Option<ConversationState>, Option<RoutedChannel>), Error> {
        let Some(channel) = route else {
            return Ok((self.get_conversation(tenant, conversation_id).await?, None));
        };
        let conversation_key = keys::conversation(tenant, conversation_id);
        let route_key = keys::channel_route(channel);
        let items = self
            .batch_get_consistent(
                vec![conversation_key.clone(), route_key.clone()],
                true,
                "read conversation and channel",
            )
            .await?;
        let (mut conversation, mut routed) = (None, None);
        for item in items {
            if get_s(&item, keys::PK) == Some(route_key.pk.as_str()) {
                routed = Some(routed_from_item(item)?);
            } else if get_s(&item, keys::SK) == Some(conversation_key.sk.as_str()) {
                conversation = Some(conversation_from(&item)?);
            }
        }
        Ok((conversation, routed))
    }

    async fn messages(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        refs: &[MessageKey],
    ) -> Result<Vec<Message>, Error> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let keys = refs
            .iter()
            .map(|r| keys::message(tenant, conversation_id, &r.created_at, &r.id))
            .collect();
        let mut found = self
            .batch_get_consistent(keys, true, "read sent messages")
            .await?
            .iter()
            .map(message_from)
            .collect::<Result<Vec<_>, _>>()?;
        self.merge_statuses(tenant, conversation_id, &mut found)
            .await?;
        found.sort_by_key(|m| refs.iter().position(|r| r.id == m.id));
        Ok(found)
    }
}

fn quota_spent() -> Error {
    Error::validation(
        "window_closed",
        "WeChat allows 5 replies per customer message; they were used by other sends",
    )
}

/// The agent-facing note that a message was not delivered (never sent to the customer).
fn system_note(
    tenant: &TenantId,
    conversation_id: &str,
    m: &PendingMessage,
    error: &DeliveryError,
    at: DateTime<Utc>,
) -> Result<HashMap<String, AttributeValue>, Error> {
    // Ordered right after the failed message's time at the earliest.
    let when = rfc3339(&at).max(m.created_at.clone());
    let id = ulid::Ulid::new().to_string();
    let note = SystemMessage::delivery_failed(error);
    MessageRecord::system(tenant, conversation_id, &when, &id, &note).item(keys::message(
        tenant,
        conversation_id,
        &when,
        &id,
    ))
}
