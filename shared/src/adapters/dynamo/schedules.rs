//! Scheduled messages in the table: one item per message in its own partition (read by id
//! when it fires or is cancelled), listed through two keys-only index partitions sorted by
//! send time (the conversation's, `gsi1`; the tenant's, `gsi2`). The conversation counts
//! the ones waiting (`scheduled_pending`, bounded) and those the customer's reply cancels
//! (`reply_cancels`, which the webhook's event carries). Every status change is
//! conditional on the status read and writes its system message in the same transaction.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use chrono::{DateTime, Utc};

use super::system::system_put;
use super::{DynamoStore, Expr, decode_cursor, encode_cursor, get_s, internal, n, s, update};
use crate::Error;
use crate::adapters::keys;
use crate::domain::actor::Actor;
use crate::domain::ids::TenantId;
use crate::domain::page::{Page, PageRequest};
use crate::domain::schedule::{
    CancelReason, MAX_PENDING_PER_CONVERSATION, ScheduleStatus, ScheduledMessage,
};
use crate::domain::system::SystemMessage;
use crate::domain::time::rfc3339;
use crate::ports::{CancelOutcome, ScheduledStore};

/// Most index entries one list request reads (a status filter is checked on the items).
const MAX_ENTRIES_READ: usize = 500;

fn item_of(
    tenant: &TenantId,
    m: &ScheduledMessage,
) -> Result<HashMap<String, AttributeValue>, Error> {
    let mut item: HashMap<String, AttributeValue> =
        serde_dynamo::to_item(m).map_err(|e| internal("encode scheduled message", e))?;
    let key = keys::scheduled(tenant, &m.id);
    item.insert(keys::PK.into(), s(key.pk));
    item.insert(keys::SK.into(), s(key.sk));
    item.insert(keys::ENTITY.into(), s("scheduled_message"));
    item.insert(
        keys::GSI1_PK.into(),
        s(keys::scheduled_of_conversation(tenant, &m.conversation_id)),
    );
    item.insert("gsi2pk".into(), s(keys::scheduled_of_tenant(tenant)));
    item.insert(
        keys::GSI1_SK.into(),
        s(keys::scheduled_order(&m.send_at, &m.id)),
    );
    Ok(item)
}

fn message_of(item: &HashMap<String, AttributeValue>) -> Result<ScheduledMessage, Error> {
    let mut item = item.clone();
    for k in [
        keys::PK,
        keys::SK,
        keys::ENTITY,
        keys::GSI1_PK,
        "gsi2pk",
        keys::GSI1_SK,
    ] {
        item.remove(k);
    }
    serde_dynamo::from_item(item).map_err(|e| internal("decode scheduled message", e))
}

/// The conversation's counters move by `delta` for `m` (conditional on it existing, and
/// on the bound when one is added).
fn counters(
    table: &str,
    tenant: &TenantId,
    m: &ScheduledMessage,
    delta: i64,
) -> Result<TransactWriteItem, Error> {
    let mut e = Expr::default();
    e.add("scheduled_pending", n(delta));
    if m.cancel_if_customer_replies {
        e.add("reply_cancels", n(delta));
    }
    let pk = e.name(keys::PK);
    let mut condition = format!("attribute_exists({pk})");
    if delta > 0 {
        let pending = e.name("scheduled_pending");
        let max = e.value(n(MAX_PENDING_PER_CONVERSATION));
        condition.push_str(&format!(
            " AND (attribute_not_exists({pending}) OR {pending} < {max})"
        ));
    }
    update(
        table,
        keys::conversation(tenant, &m.conversation_id),
        &e,
        Some(condition),
    )
}

/// The item update of a status change `from` → `after`'s status, with `after`'s fields.
fn status_update(
    table: &str,
    tenant: &TenantId,
    after: &ScheduledMessage,
    from: ScheduleStatus,
) -> Result<TransactWriteItem, Error> {
    let mut e = Expr::default();
    e.set("status", s(after.status.as_str()));
    let set_opt = |e: &mut Expr, name: &str, value: Option<AttributeValue>| match value {
        Some(v) => {
            e.set(name, v);
        }
        None => {
            e.remove(name);
        }
    };
    set_opt(&mut e, "message_id", after.message_id.as_ref().map(s));
    e.set("used_fallback", AttributeValue::Bool(after.used_fallback));
    let error = after
        .error
        .as_ref()
        .map(|x| serde_dynamo::to_attribute_value(x).map_err(|e| internal("encode error", e)))
        .transpose()?;
    set_opt(&mut e, "error", error);
    let reason = after
        .cancel_reason
        .map(|r| serde_dynamo::to_attribute_value(r).map_err(|e| internal("encode reason", e)))
        .transpose()?;
    set_opt(&mut e, "cancel_reason", reason);
    set_opt(&mut e, "settled_at", after.settled_at.as_ref().map(s));
    let status = e.name("status");
    let expected = e.value(s(from.as_str()));
    update(
        table,
        keys::scheduled(tenant, &after.id),
        &e,
        Some(format!("{status} = {expected}")),
    )
}

impl DynamoStore {
    /// A status change with its system message and the conversation's counters, once:
    /// `false` when the status was no longer `from`.
    async fn move_scheduled(
        &self,
        tenant: &TenantId,
        after: &ScheduledMessage,
        from: ScheduleStatus,
        note: &SystemMessage,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let items = vec![
            status_update(&self.table, tenant, after, from)?,
            system_put(&self.table, tenant, &after.conversation_id, &at, note)?,
            counters(&self.table, tenant, after, -1)?,
        ];
        match self
            .transact_conditional(items, "settle scheduled message")
            .await?
        {
            None => Ok(true),
            Some(codes) if codes.first().is_some_and(|c| c == "ConditionalCheckFailed") => {
                Ok(false)
            }
            // The conversation is gone: settle the message alone.
            Some(_) => {
                let items = vec![status_update(&self.table, tenant, after, from)?];
                Ok(self
                    .transact_conditional(items, "settle scheduled message")
                    .await?
                    .is_none())
            }
        }
    }
}

impl ScheduledStore for DynamoStore {
    async fn put_scheduled(&self, tenant: &TenantId, m: &ScheduledMessage) -> Result<(), Error> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item_of(tenant, m)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| internal("build put", e))?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            counters(&self.table, tenant, m, 1)?,
        ];
        match self
            .transact_conditional(items, "store scheduled message")
            .await?
        {
            None => Ok(()),
            Some(codes) if codes.get(1).is_some_and(|c| c == "ConditionalCheckFailed") => {
                let exists = self
                    .get_consistent(
                        keys::conversation(tenant, &m.conversation_id),
                        "read conversation",
                    )
                    .await?
                    .is_some();
                if exists {
                    Err(Error::validation(
                        "too_many_scheduled",
                        format!(
                            "a conversation holds at most {MAX_PENDING_PER_CONVERSATION} scheduled messages waiting"
                        ),
                    ))
                } else {
                    Err(Error::NotFound {
                        what: "conversation",
                    })
                }
            }
            Some(codes) => Err(Error::Internal(format!(
                "store scheduled message refused: {codes:?}"
            ))),
        }
    }

    async fn get_scheduled(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ScheduledMessage>, Error> {
        self.get_consistent(keys::scheduled(tenant, id), "read scheduled message")
            .await?
            .as_ref()
            .map(message_of)
            .transpose()
    }

    async fn list_scheduled(
        &self,
        tenant: &TenantId,
        conversation_id: Option<&str>,
        status: Option<ScheduleStatus>,
        page: &PageRequest,
    ) -> Result<Page<ScheduledMessage>, Error> {
        let (index, attribute, partition) = match conversation_id {
            Some(c) => (
                keys::GSI1,
                keys::GSI1_PK,
                keys::scheduled_of_conversation(tenant, c),
            ),
            None => ("gsi2", "gsi2pk", keys::scheduled_of_tenant(tenant)),
        };
        let mut after = match &page.cursor {
            Some(c) => Some(decode_cursor(c, 1, "")?.remove(0)),
            None => None,
        };
        let limit = usize::from(page.limit);
        let mut items = Vec::new();
        let mut read = 0;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", attribute)
                .expression_attribute_values(":pk", s(&partition))
                .limit(i32::from(page.limit));
            if let Some(sort) = &after {
                let id = sort.rsplit_once('#').map(|(_, id)| id).unwrap_or_default();
                let key = keys::scheduled(tenant, id);
                query = query.set_exclusive_start_key(Some(HashMap::from([
                    (keys::PK.to_owned(), s(key.pk)),
                    (keys::SK.to_owned(), s(key.sk)),
                    (attribute.to_owned(), s(&partition)),
                    (keys::GSI1_SK.to_owned(), s(sort)),
                ])));
            }
            let out = query
                .send()
                .await
                .map_err(|e| internal("list scheduled messages", e))?;
            let entries = out.items.unwrap_or_default();
            read += entries.len();
            let ids: Vec<String> = entries
                .iter()
                .filter_map(|e| get_s(e, keys::GSI1_SK))
                .map(str::to_owned)
                .collect();
            let found = self
                .batch_get_consistent(
                    ids.iter()
                        .filter_map(|sort| sort.rsplit_once('#'))
                        .map(|(_, id)| keys::scheduled(tenant, id))
                        .collect(),
                    true,
                    "read scheduled messages",
                )
                .await?;
            let mut by_id: HashMap<String, ScheduledMessage> = HashMap::new();
            for item in &found {
                let m = message_of(item)?;
                by_id.insert(m.id.clone(), m);
            }
            for sort in &ids {
                after = Some(sort.clone());
                let Some((_, id)) = sort.rsplit_once('#') else {
                    continue;
                };
                if let Some(m) = by_id.remove(id)
                    && status.is_none_or(|want| m.status == want)
                {
                    items.push(m);
                    if items.len() == limit {
                        break;
                    }
                }
            }
            let more = out.last_evaluated_key.is_some();
            let examined_all = after.as_ref() == ids.last();
            if items.len() == limit {
                let next_cursor = (more || !examined_all)
                    .then(|| after.as_deref().map(|a| encode_cursor(&[a])))
                    .flatten();
                return Ok(Page { items, next_cursor });
            }
            if !more {
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            }
            if read >= MAX_ENTRIES_READ {
                // A short page: the filter kept few of many; the cursor goes on from here.
                let next_cursor = after.as_deref().map(|a| encode_cursor(&[a]));
                return Ok(Page { items, next_cursor });
            }
        }
    }

    async fn claim_scheduled(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<(ScheduledMessage, bool)>, Error> {
        let mut e = Expr::default();
        e.set("status", s(ScheduleStatus::Sending.as_str()));
        let status = e.name("status");
        let expected = e.value(s(ScheduleStatus::Scheduled.as_str()));
        // A claim that fails answers the item as it is (none: unknown id), so a repeated
        // delivery costs this one request.
        let result = self
            .update_item(&keys::scheduled(tenant, id), &e)
            .condition_expression(format!("{status} = {expected}"))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result.map_err(aws_sdk_dynamodb::error::SdkError::into_service_error) {
            Ok(out) => Ok(Some((
                message_of(&out.attributes.unwrap_or_default())?,
                true,
            ))),
            Err(UpdateItemError::ConditionalCheckFailedException(failed)) => failed
                .item
                .as_ref()
                .map(|item| message_of(item).map(|m| (m, false)))
                .transpose(),
            Err(other) => Err(internal("claim scheduled message", other)),
        }
    }

    async fn settle_scheduled(
        &self,
        tenant: &TenantId,
        after: &ScheduledMessage,
        note: &SystemMessage,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        self.move_scheduled(tenant, after, ScheduleStatus::Sending, note, at)
            .await
    }

    async fn cancel_scheduled(
        &self,
        tenant: &TenantId,
        id: &str,
        reason: CancelReason,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<CancelOutcome, Error> {
        let Some(m) = self.get_scheduled(tenant, id).await? else {
            return Ok(CancelOutcome::Missing);
        };
        if m.status != ScheduleStatus::Scheduled {
            return Ok(CancelOutcome::NotScheduled(m));
        }
        let after = ScheduledMessage {
            status: ScheduleStatus::Cancelled,
            cancel_reason: Some(reason),
            settled_at: Some(rfc3339(&at)),
            ..m
        };
        let note = SystemMessage::scheduled_cancelled(reason, actor.clone());
        if self
            .move_scheduled(tenant, &after, ScheduleStatus::Scheduled, &note, at)
            .await?
        {
            return Ok(CancelOutcome::Cancelled(after));
        }
        // A fire (or another cancel) came first.
        match self.get_scheduled(tenant, id).await? {
            Some(now) => Ok(CancelOutcome::NotScheduled(now)),
            None => Ok(CancelOutcome::Missing),
        }
    }
}
