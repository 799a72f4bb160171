//! Storing webhook items: messages exactly once, statuses only forward.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::conversations::conversation_from;
use super::{
    DynamoStore, Expr, TRANSACTION_ATTEMPTS, cancelled, conflict_backoff, get_s, internal,
    key_item, n, reason_codes, s, store_error, update,
};
use crate::Error;
use crate::adapters::keys::{self, Key};
use crate::domain::actor::Actor;
use crate::domain::channel::Channel;
use crate::domain::conversation::{
    ConversationState, ConversationStatus, conversation_id, customer_id, preview,
};
use crate::domain::ids::TenantId;
use crate::domain::inbound::{InboundMessage, StatusUpdate, Watermark};
use crate::domain::limits;
use crate::domain::message::{DeliveryError, DeliveryStatus, Direction};
use crate::domain::system::SystemMessage;
use crate::domain::time::rfc3339;
use crate::ports::{InboundStore, MessageRef, Recorded, StatusOutcome};

/// Largest provider fragment kept per message (the item limit is 400 KB).
const MAX_RAW_BYTES: usize = 64 * 1024;
/// Most messages a watermark moves forward in one go (the most recent ones).
const WATERMARK_SCAN: i32 = 100;

/// The stored shape of a message (also read back by the conversation reader).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct MessageRecord {
    pub id: String,
    pub tenant_id: String,
    pub conversation_id: String,
    pub direction: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_provider_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_reason: Option<String>,
    pub status: String,
    pub status_rank: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_hint: Option<String>,
    /// The agent who sent an outbound message through the API (before `actor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_by: Option<String>,
    /// Who sent an outbound message or caused a system message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<crate::domain::actor::Actor>,
    /// A system message's event code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// A system message's reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: String,
    pub received_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// Set when fields were cut or dropped to fit the storage limits
    /// ([`crate::domain::limits`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    /// Which fields were cut or dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_fields: Option<Vec<String>>,
}

impl MessageRecord {
    pub(super) fn item(&self, key: Key) -> Result<HashMap<String, AttributeValue>, Error> {
        let mut item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(self).map_err(|e| internal("encode message", e))?;
        item.extend(key_item(key));
        item.insert(keys::ENTITY.into(), s("message"));
        Ok(item)
    }
}

pub(super) fn raw_text(raw: &serde_json::Value) -> Option<String> {
    if raw.is_null() {
        return None;
    }
    let text = raw.to_string();
    Some(if text.len() > MAX_RAW_BYTES {
        serde_json::json!({"truncated": true, "bytes": text.len()}).to_string()
    } else {
        text
    })
}

/// What to do with the conversation for one message.
struct ConversationChange<'a> {
    channel: &'a Channel,
    message: &'a InboundMessage,
    conversation_id: &'a str,
    customer_id: &'a str,
    at: &'a str,
    /// The conversation as read before this write (`None`: not created yet).
    seen: Option<&'a ConversationState>,
}

/// How much of the conversation a message may move. Messages arrive out of order: one
/// older than what the conversation shows must not move it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Newest message: last activity, preview, list order (and the window if it opens it).
    Full,
    /// Newer customer message than the window's, older than the latest activity.
    WindowOnly,
    /// Older than both: counted, nothing moved.
    CountOnly,
}

impl ConversationChange<'_> {
    /// What this message may move, against the conversation as read.
    fn stage(&self, at: DateTime<Utc>) -> Stage {
        let Some(seen) = self.seen else {
            return Stage::Full;
        };
        if at >= seen.last_message_at {
            Stage::Full
        } else if self.message.opens_window && seen.last_inbound_at.is_none_or(|t| at >= t) {
            Stage::WindowOnly
        } else {
            Stage::CountOnly
        }
    }

    /// The status after this message: the customer writing reopens the conversation.
    fn status(&self) -> ConversationStatus {
        match self.seen {
            Some(seen) if self.message.direction != Direction::Inbound => seen.status,
            _ => ConversationStatus::Open,
        }
    }

    /// Whether this message reopens a closed or snoozed conversation.
    fn reopens(&self) -> bool {
        self.seen
            .is_some_and(|seen| seen.status != ConversationStatus::Open)
            && self.status() == ConversationStatus::Open
    }

    /// The conversation update and the label membership updates, in that order.
    fn writes(&self, table: &str, at: DateTime<Utc>) -> Result<Vec<TransactWriteItem>, Error> {
        let c = self.channel;
        let m = self.message;
        let tenant = &c.tenant_id;
        let inbound = m.direction == Direction::Inbound;
        let stage = self.stage(at);
        let status = self.status();
        let assignee = self.seen.and_then(|x| x.assignee.as_deref());
        let mut e = Expr::default();
        e.set(keys::ENTITY, s("conversation"))
            .set("id", s(self.conversation_id))
            .set("tenant_id", s(tenant.as_str()))
            .set("channel_id", s(c.id.as_str()))
            .set("channel_type", s(c.channel_type.as_str()))
            .set("window_hours", n(c.window_hours))
            .set("human_agent", AttributeValue::Bool(c.human_agent))
            .set("customer_id", s(self.customer_id))
            .set("customer_external_id", s(&m.customer))
            .set("status", s(status.as_str()))
            .set_if_absent("created_at", s(self.at))
            .set_if_absent("labels", AttributeValue::L(Vec::new()))
            .add("unread_count", n(u8::from(inbound)));
        super::views::set_views(
            &mut e,
            tenant,
            self.conversation_id,
            status,
            assignee,
            c.id.as_str(),
        );
        if let Some(name) = &m.customer_name {
            e.set("customer_name", s(name));
        }
        if inbound {
            e.remove("snoozed_until");
        }
        let mut conditions = Vec::new();
        // Placed from what was read: a concurrent move between views (status, assignee,
        // labels) makes this write read again.
        match self.seen {
            None => {
                let pk = e.name(keys::PK);
                conditions.push(format!("attribute_not_exists({pk})"));
            }
            Some(seen) => {
                let version = e.name("views_version");
                if seen.views_version == 0 {
                    conditions.push(format!("attribute_not_exists({version})"));
                } else {
                    let v = e.value(n(seen.views_version));
                    conditions.push(format!("{version} = {v}"));
                }
                if self.reopens() {
                    e.set("views_version", n(seen.views_version + 1));
                }
            }
        }
        let activity = keys::conversation_activity(self.at, self.conversation_id);
        let newer_than = |e: &mut Expr, attribute: &str| {
            let (name, value) = (e.name(attribute), e.value(s(self.at)));
            format!("(attribute_not_exists({name}) OR {name} <= {value})")
        };
        if stage == Stage::Full {
            e.set("last_message_at", s(self.at))
                .set("preview", s(preview(m.kind, m.text.as_deref())))
                .set(keys::VIEW_SK, s(&activity));
            conditions.push(newer_than(&mut e, "last_message_at"));
        }
        if m.opens_window && stage != Stage::CountOnly {
            e.set("last_inbound_at", s(self.at))
                .set("last_inbound_pid", s(&m.provider_message_id))
                .set("replies_since_inbound", n(0));
            conditions.push(newer_than(&mut e, "last_inbound_at"));
        }
        let condition = (!conditions.is_empty()).then(|| conditions.join(" AND "));
        let key = keys::conversation(tenant, self.conversation_id);
        let mut writes = vec![update(table, key, &e, condition)?];
        // Customers by label list by name: a new profile name (no agent's over it) moves
        // the memberships' name key too.
        let name_key = match (self.seen, &m.customer_name) {
            (Some(seen), Some(name))
                if !seen.customer.name_overridden && seen.customer.name.as_ref() != Some(name) =>
            {
                Some(keys::customer_name_key(Some(name), self.customer_id))
            }
            _ => None,
        };
        if stage == Stage::Full || self.reopens() || name_key.is_some() {
            let to = super::views::MemberMove {
                activity: (stage == Stage::Full).then_some(activity.as_str()),
                name_key: name_key.as_deref(),
            };
            for label in self.seen.map(|x| x.labels.as_slice()).unwrap_or_default() {
                writes.push(super::views::member_update(
                    table,
                    tenant,
                    self.conversation_id,
                    label,
                    status,
                    to,
                )?);
            }
        }
        Ok(writes)
    }
}

/// A status kept on a provider message item, if any.
pub(super) fn status_of(
    item: &HashMap<String, AttributeValue>,
) -> Option<(DeliveryStatus, Option<DeliveryError>)> {
    let status = get_s(item, "status").and_then(DeliveryStatus::parse)?;
    let error = get_s(item, "error_code").map(|code| DeliveryError {
        code: code.to_owned(),
        reason: get_s(item, "error_reason").unwrap_or_default().to_owned(),
        hint: get_s(item, "error_hint").unwrap_or_default().to_owned(),
    });
    Some((status, error))
}

impl DynamoStore {
    /// Gives a status kept for a message not recorded yet an expiry (the table's TTL), so
    /// statuses of messages never recorded here do not stay forever. Recording the
    /// message removes it; a message recorded meanwhile is left alone.
    async fn expire_kept_status(&self, key: Key) -> Result<(), Error> {
        let expires = Utc::now() + chrono::Duration::days(limits::KEPT_STATUS_DAYS);
        let mut e = Expr::default();
        e.set(keys::EXPIRES_AT, n(expires.timestamp()));
        let mid = e.name("message_id");
        self.conditional_update(
            key,
            &e,
            &format!("attribute_not_exists({mid})"),
            "expire kept status",
        )
        .await?;
        Ok(())
    }
}

impl InboundStore for DynamoStore {
    async fn record_message(
        &self,
        channel: &Channel,
        m: &InboundMessage,
        received_at: DateTime<Utc>,
    ) -> Result<Recorded, Error> {
        // Every field within its limit, so the item always fits DynamoDB's 400 KB.
        let mut bounded = m.clone();
        let cut = limits::bound_message(&mut bounded);
        let m = &bounded;
        let truncated = !cut.is_empty() || m.raw["truncated"] == true;
        let tenant = &channel.tenant_id;
        let conversation = conversation_id(&channel.id, &m.customer);
        let customer = customer_id(&channel.id, &m.customer);
        let message_id = ulid::Ulid::new().to_string();
        let at = rfc3339(&m.effective_time(received_at));
        let message_key = keys::message(tenant, &conversation, &at, &message_id);
        let outbound = m.direction == Direction::Outbound;
        let status = if outbound {
            DeliveryStatus::Sent
        } else {
            DeliveryStatus::Delivered
        };
        let media = m.media.as_ref();
        let record = MessageRecord {
            id: message_id.clone(),
            tenant_id: tenant.to_string(),
            conversation_id: conversation.clone(),
            direction: m.direction.as_str().into(),
            kind: m.kind.as_str().into(),
            text: m.text.clone(),
            media_mime_type: media.and_then(|x| x.mime_type.clone()),
            media_provider_id: media.and_then(|x| x.provider_media_id.clone()),
            media_url: media.and_then(|x| x.url.clone()),
            media_sha256: media.and_then(|x| x.sha256.clone()),
            media_filename: media.and_then(|x| x.filename.clone()),
            media_status: media.map(|_| "fetching".to_owned()),
            status: status.as_str().into(),
            status_rank: status.rank(),
            provider_message_id: Some(m.provider_message_id.clone()),
            reply_to: m.reply_to.clone(),
            created_at: at.clone(),
            received_at: rfc3339(&received_at),
            raw: raw_text(&m.raw),
            truncated: truncated.then_some(true),
            truncated_fields: (!cut.is_empty())
                .then(|| cut.names().into_iter().map(str::to_owned).collect()),
            ..MessageRecord::default()
        };
        let message_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record.item(message_key.clone())?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| internal("build put", e))?;

        // The provider id item: one per conversation + provider message id. A status that
        // arrived first may have created it already; only a message id makes it a duplicate.
        let mut claim = Expr::default();
        claim
            .set(keys::ENTITY, s("provider_message"))
            .set("message_id", s(&message_id))
            .set("message_sk", s(&message_key.sk))
            .set("direction", s(m.direction.as_str()))
            .remove(keys::EXPIRES_AT);
        let claim_condition = format!("attribute_not_exists({})", claim.name("message_id"));
        let claim_write = update(
            &self.table,
            keys::provider_message(tenant, &conversation, &m.provider_message_id),
            &claim,
            Some(claim_condition),
        )?;

        let mut cust = Expr::default();
        cust.set(keys::ENTITY, s("customer"))
            .set("id", s(&customer))
            .set("tenant_id", s(tenant.as_str()))
            .set("channel_id", s(channel.id.as_str()))
            .set("channel_type", s(channel.channel_type.as_str()))
            .set("external_id", s(&m.customer))
            .set_if_absent("created_at", s(&at));
        if let Some(name) = &m.customer_name {
            cust.set("name", s(name));
        }
        // Every id the provider gave for the customer, kept together (WhatsApp usernames).
        for (attribute, value) in [
            ("wa_id", &m.identity.phone),
            ("wa_user_id", &m.identity.user_id),
            ("wa_username", &m.identity.username),
        ] {
            if let Some(v) = value {
                cust.set(attribute, s(v));
            }
        }
        if !outbound {
            cust.set("last_seen_at", s(rfc3339(&received_at)));
        }
        super::customers::index_keys(
            &mut cust,
            tenant,
            &customer,
            &m.customer,
            m.customer_name.as_deref(),
            m.identity.phone.as_deref(),
        );
        let customer_write = update(&self.table, keys::customer(tenant, &customer), &cust, None)?;

        let effective = m.effective_time(received_at);
        let conversation_key = keys::conversation(tenant, &conversation);
        let mut seen = None;
        let mut read = true;
        for attempt in 0..TRANSACTION_ATTEMPTS {
            if read {
                seen = self
                    .get_consistent(conversation_key.clone(), "read conversation")
                    .await?
                    .as_ref()
                    .map(conversation_from)
                    .transpose()?;
                read = false;
            }
            let change = ConversationChange {
                channel,
                message: m,
                conversation_id: &conversation,
                customer_id: &customer,
                at: &at,
                seen: seen.as_ref(),
            };
            let mut items = vec![
                claim_write.clone(),
                TransactWriteItem::builder()
                    .put(message_put.clone())
                    .build(),
                customer_write.clone(),
            ];
            // Order matters: index 0 failing means "already stored", 2.. a changed
            // conversation (read it again).
            items.splice(2..2, change.writes(&self.table, effective)?);
            if change.reopens() {
                let note = SystemMessage::status_changed(
                    ConversationStatus::Open,
                    None,
                    Actor::Customer {
                        id: customer.clone(),
                    },
                );
                // Written when it happened here: after whatever an agent did before the
                // message arrived (provider times have whole seconds).
                items.push(super::system::system_put(
                    &self.table,
                    tenant,
                    &conversation,
                    &effective.max(received_at),
                    &note,
                )?);
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            let err = match result {
                Ok(_) => {
                    return Ok(Recorded::Stored(MessageRef {
                        message_id,
                        conversation_id: conversation,
                        cancels_scheduled: m.direction == Direction::Inbound
                            && seen.as_ref().is_some_and(|c| c.reply_cancels > 0),
                    }));
                }
                Err(err) => err.into_service_error(),
            };
            match err {
                TransactWriteItemsError::TransactionCanceledException(cancel) => {
                    let codes = reason_codes(cancel.cancellation_reasons());
                    if codes.first() == Some(&"ConditionalCheckFailed") {
                        return Ok(Recorded::Duplicate);
                    }
                    if codes.iter().skip(2).any(|c| *c == "ConditionalCheckFailed") {
                        // The conversation moved (a newer message, a status, an assignee
                        // or a label) since it was read.
                        read = true;
                        continue;
                    }
                    if codes.contains(&"TransactionConflict") {
                        conflict_backoff(attempt).await;
                        read = true;
                        continue;
                    }
                    return Err(cancelled("record message", &codes));
                }
                TransactWriteItemsError::TransactionInProgressException(_) => {
                    conflict_backoff(attempt).await;
                }
                other => return Err(store_error("record message", other)),
            }
        }
        Err(Error::Internal(
            "record message: transaction kept conflicting".into(),
        ))
    }

    async fn pending_status(
        &self,
        channel: &Channel,
        customer: &str,
        provider_message_id: &str,
    ) -> Result<Option<StatusUpdate>, Error> {
        let conversation = conversation_id(&channel.id, customer);
        let key = keys::provider_message(&channel.tenant_id, &conversation, provider_message_id);
        let item = self.get_consistent(key, "read kept status").await?;
        let Some((status, error)) = item.as_ref().and_then(status_of) else {
            return Ok(None);
        };
        Ok(Some(StatusUpdate {
            provider_message_id: provider_message_id.to_owned(),
            customer: customer.to_owned(),
            status,
            timestamp: None,
            error,
            raw: serde_json::Value::Null,
            reference: None,
        }))
    }

    /// One conditional update, no read: the key comes from the channel, the customer and
    /// the provider id. Creates the item when the message is not recorded yet (kept).
    async fn apply_status(
        &self,
        channel: &Channel,
        u: &StatusUpdate,
    ) -> Result<StatusOutcome, Error> {
        let conversation = conversation_id(&channel.id, &u.customer);
        let key = keys::provider_message(&channel.tenant_id, &conversation, &u.provider_message_id);
        let key_of_kept = key.clone();
        let rank = u.status.rank();
        let mut e = Expr::default();
        e.set(keys::ENTITY, s("provider_message"))
            .set("status", s(u.status.as_str()))
            .set("status_rank", n(rank));
        // Meta's `pricing` and `conversation` objects, shown on the message view.
        for (attribute, json) in super::lifecycle::billing_attributes(&u.raw) {
            e.set(attribute, s(json));
        }
        if let Some(err) = &u.error {
            let within = |text: &str, max| s(limits::cut_at_char_boundary(text, max));
            e.set("error_code", within(&err.code, limits::MAX_TOKEN_BYTES))
                .set(
                    "error_reason",
                    within(&err.reason, limits::MAX_ERROR_TEXT_BYTES),
                )
                .set(
                    "error_hint",
                    within(&err.hint, limits::MAX_ERROR_TEXT_BYTES),
                );
        }
        let sr = e.name("status_rank");
        let value = e.value(n(rank));
        let result = self
            .update_item(&key, &e)
            .condition_expression(format!("attribute_not_exists({sr}) OR {sr} < {value}"))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let attrs = out.attributes.unwrap_or_default();
                Ok(match get_s(&attrs, "message_id") {
                    Some(id) => StatusOutcome::Applied(MessageRef {
                        message_id: id.to_owned(),
                        conversation_id: conversation,
                        cancels_scheduled: false,
                    }),
                    None => {
                        self.expire_kept_status(key_of_kept).await?;
                        StatusOutcome::Kept
                    }
                })
            }
            Err(err) => match err.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(_) => Ok(StatusOutcome::Stale),
                other => Err(store_error("apply status", other)),
            },
        }
    }

    async fn link_outbound(
        &self,
        channel: &Channel,
        u: &StatusUpdate,
    ) -> Result<Option<MessageRef>, Error> {
        let Some((created_at, message_id)) = &u.reference else {
            return Ok(None);
        };
        let tenant = &channel.tenant_id;
        let conversation = conversation_id(&channel.id, &u.customer);
        let message_key = keys::message(tenant, &conversation, created_at, message_id);
        let sent = DeliveryStatus::Sent;
        let mut m = Expr::default();
        m.set("provider_message_id", s(&u.provider_message_id))
            .set("status", s(sent.as_str()))
            .set("status_rank", n(sent.rank()))
            .remove("error_code")
            .remove("error_reason")
            .remove("error_hint");
        let (pk, pid, dir) = (
            m.name(keys::PK),
            m.name("provider_message_id"),
            m.name("direction"),
        );
        let outbound = m.value(s(Direction::Outbound.as_str()));
        // Only a message still pending (an unknown outcome), never one settled as failed.
        let (rank, pending) = (m.name("status_rank"), m.value(n(sent.rank())));
        let message = update(
            &self.table,
            message_key.clone(),
            &m,
            Some(format!(
                "attribute_exists({pk}) AND attribute_not_exists({pid}) AND {dir} = {outbound} AND {rank} < {pending}"
            )),
        )?;
        let mut p = Expr::default();
        p.set("message_id", s(message_id))
            .set("message_sk", s(&message_key.sk))
            .set("direction", s(Direction::Outbound.as_str()))
            .remove(keys::EXPIRES_AT);
        let mid = p.name("message_id");
        let mapping = update(
            &self.table,
            keys::provider_message(tenant, &conversation, &u.provider_message_id),
            &p,
            Some(format!("attribute_not_exists({mid})")),
        )?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(message)
            .transact_items(mapping)
            .send()
            .await;
        match result.map_err(aws_sdk_dynamodb::error::SdkError::into_service_error) {
            Ok(_) => Ok(Some(MessageRef {
                message_id: message_id.clone(),
                conversation_id: conversation,
                cancels_scheduled: false,
            })),
            // Not ours, already mapped, or mapped by a parallel delivery: nothing to do.
            Err(TransactWriteItemsError::TransactionCanceledException(_)) => Ok(None),
            Err(other) => Err(store_error("link outbound message", other)),
        }
    }

    async fn apply_watermark(
        &self,
        channel: &Channel,
        w: &Watermark,
    ) -> Result<Vec<MessageRef>, Error> {
        let conversation = conversation_id(&channel.id, &w.customer);
        let pk = keys::messages_pk(&channel.tenant_id, &conversation);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .filter_expression("direction = :out")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":lo", s(keys::MESSAGE_PREFIX))
            // '~' sorts after every id character: includes every message at the watermark.
            .expression_attribute_values(
                ":hi",
                s(format!(
                    "{}{}#~",
                    keys::MESSAGE_PREFIX,
                    rfc3339(&w.watermark)
                )),
            )
            .expression_attribute_values(":out", s(Direction::Outbound.as_str()))
            .scan_index_forward(false)
            .limit(WATERMARK_SCAN)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| internal("watermark query", e))?;
        let candidates: Vec<String> = out
            .items()
            .iter()
            .filter_map(|item| get_s(item, "provider_message_id").map(str::to_owned))
            .collect();
        // Statuses live on the provider id items: skip messages already at or past the
        // watermark's status, and failed ones (a watermark is not a read receipt for a
        // message that never arrived).
        let current = self
            .provider_statuses(&channel.tenant_id, &conversation, &candidates)
            .await?;
        let mut moved = Vec::new();
        for provider_id in candidates {
            if let Some((status, _)) = current.get(&provider_id)
                && (status.rank() >= w.status.rank() || *status == DeliveryStatus::Failed)
            {
                continue;
            }
            let update = StatusUpdate {
                provider_message_id: provider_id,
                customer: w.customer.clone(),
                status: w.status,
                timestamp: Some(w.watermark),
                error: None,
                raw: serde_json::Value::Null,
                reference: None,
            };
            if let StatusOutcome::Applied(at) = self.apply_status(channel, &update).await? {
                moved.push(at);
            }
        }
        Ok(moved)
    }

    async fn record_system_message(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        message: &SystemMessage,
        at: DateTime<Utc>,
    ) -> Result<MessageRef, Error> {
        let id = ulid::Ulid::new().to_string();
        let when = rfc3339(&at);
        let record = MessageRecord::system(tenant, conversation_id, &when, &id, message);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record.item(keys::message(
                tenant,
                conversation_id,
                &when,
                &id,
            ))?))
            .send()
            .await
            .map_err(|e| store_error("record system message", e.into_service_error()))?;
        Ok(MessageRef {
            message_id: id,
            conversation_id: conversation_id.to_owned(),
            cancels_scheduled: false,
        })
    }
}

impl crate::ports::MessageMedia for DynamoStore {
    async fn link_media(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        created_at: &str,
        message_id: &str,
        link: &crate::ports::MediaLink,
    ) -> Result<(), Error> {
        let key = keys::message(tenant, conversation_id, created_at, message_id);
        let mut e = Expr::default();
        match link {
            crate::ports::MediaLink::Fetched { media_id } => {
                e.set("media_id", s(media_id))
                    .set("media_status", s("fetched"));
            }
            crate::ports::MediaLink::Unavailable { reason } => {
                e.set("media_status", s("unavailable"))
                    .set("media_reason", s(reason));
            }
        }
        let pk = e.name(keys::PK);
        self.update_item(&key, &e)
            .condition_expression(format!("attribute_exists({pk})"))
            .send()
            .await
            .map_err(|err| internal("link message media", err))?;
        Ok(())
    }
}
