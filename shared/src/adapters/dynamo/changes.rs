//! Agents' changes to conversations: the conversation, its label membership items, the
//! customer's labels, a catalog check and the system message, in one transaction.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::conversations::conversation_from;
use super::system::system_put;
use super::views::{member_delete, member_put, member_update, set_views};
use super::{DynamoStore, Expr, conflict_backoff, get_s, internal, n, reason_codes, s, update};
use crate::Error;
use crate::adapters::keys::{self, Key};
use crate::domain::actor::Actor;
use crate::domain::changes::Change;
use crate::domain::conversation::{ConversationState, ConversationStatus};
use crate::domain::ids::TenantId;
use crate::domain::time::rfc3339;
use crate::domain::views::{self, View};
use crate::ports::ConversationChanges;

/// Attempts of one change against concurrent writers of the same conversation (the
/// backoff between them grows to about 0.6 s: some 3 s in all).
const CHANGE_ATTEMPTS: u32 = 12;

/// What a failed condition at a transaction index means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// The conversation or a membership moved since it was read: read again.
    Moved,
    /// The assignee is not an agent of the tenant.
    Agent,
    /// The label is not in the catalog.
    Label,
    /// Cannot fail.
    Other,
}

fn check_exists(table: &str, key: Key) -> Result<TransactWriteItem, Error> {
    let check = ConditionCheck::builder()
        .table_name(table)
        .key(keys::PK, s(key.pk))
        .key(keys::SK, s(key.sk))
        .condition_expression("attribute_exists(pk)")
        .build()
        .map_err(|e| internal("build condition check", e))?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

fn unknown_agent() -> Error {
    Error::validation(
        "unknown_agent",
        "agent_id is not an agent of this tenant (PUT /agents/{id} first)",
    )
}

fn labels_value(labels: &[String]) -> AttributeValue {
    AttributeValue::L(labels.iter().map(|l| s(l.as_str())).collect())
}

impl DynamoStore {
    async fn read_conversation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ConversationState>, Error> {
        if crate::domain::conversation::channel_of_conversation(id).is_none() {
            return Ok(None);
        }
        self.get_consistent(keys::conversation(tenant, id), "read conversation")
            .await?
            .as_ref()
            .map(conversation_from)
            .transpose()
    }

    /// The conversation as it is now and, for an assignment, the agent's name, in one
    /// consistent read.
    ///
    /// # Errors
    /// 422 `unknown_agent` when the assignee is not an agent of the tenant.
    async fn read_for_change(
        &self,
        tenant: &TenantId,
        id: &str,
        change: &Change,
    ) -> Result<(Option<ConversationState>, Option<String>), Error> {
        let Change::Assign(Some(agent)) = change else {
            return Ok((self.read_conversation(tenant, id).await?, None));
        };
        if crate::domain::conversation::channel_of_conversation(id).is_none() {
            return Ok((None, None));
        }
        let conversation_key = keys::conversation(tenant, id);
        let agent_key = keys::agent(tenant, agent);
        let items = self
            .batch_get_consistent(
                vec![conversation_key.clone(), agent_key.clone()],
                true,
                "read conversation and agent",
            )
            .await?;
        let conversation = items
            .iter()
            .find(|i| get_s(i, keys::PK) == Some(conversation_key.pk.as_str()))
            .map(conversation_from)
            .transpose()?;
        let Some(agent) = items
            .iter()
            .find(|i| get_s(i, keys::SK) == Some(agent_key.sk.as_str()))
        else {
            return match conversation {
                None => Ok((None, None)),
                Some(_) => Err(unknown_agent()),
            };
        };
        Ok((conversation, get_s(agent, "name").map(str::to_owned)))
    }

    /// The writes of one change from `before` to `after`, with what each index means.
    fn change_writes(
        &self,
        tenant: &TenantId,
        change: &Change,
        before: &ConversationState,
        after: &ConversationState,
    ) -> Result<Vec<(TransactWriteItem, Slot)>, Error> {
        let table = &self.table;
        let mut e = Expr::default();
        e.set("status", s(after.status.as_str()))
            .set("labels", labels_value(&after.labels))
            .set("views_version", n(after.views_version));
        match after.snoozed_until {
            Some(until) => e.set("snoozed_until", s(rfc3339(&until))),
            None => e.remove("snoozed_until"),
        };
        match &after.assignee {
            Some(agent) => e.set("assignee", s(agent.as_str())),
            None => e.remove("assignee"),
        };
        // Closing lets bots start again once the customer reopens it (SPEC §8).
        if after.status == ConversationStatus::Closed && before.status != ConversationStatus::Closed
        {
            e.remove("bot_blocked");
        }
        set_views(
            &mut e,
            tenant,
            &after.id,
            after.status,
            after.assignee.as_deref(),
            &after.channel_id,
        );
        // Placed from what was read: a move between views or a newer message since then
        // fails this condition, and the change is decided again.
        let pk = e.name(keys::PK);
        let version = e.name("views_version");
        let mut condition = format!("attribute_exists({pk}) AND ");
        if before.views_version == 0 {
            condition.push_str(&format!("attribute_not_exists({version})"));
        } else {
            let v = e.value(n(before.views_version));
            condition.push_str(&format!("{version} = {v}"));
        }
        let sk = e.name(keys::VIEW_SK);
        match &before.activity {
            Some(activity) => {
                let a = e.value(s(activity.as_str()));
                condition.push_str(&format!(" AND {sk} = {a}"));
            }
            None => condition.push_str(&format!(" AND attribute_not_exists({sk})")),
        }
        let mut writes = vec![(
            update(
                table,
                keys::conversation(tenant, &after.id),
                &e,
                Some(condition),
            )?,
            Slot::Moved,
        )];
        let at = rfc3339(&Utc::now());
        for label in &after.labels {
            let write = if before.labels.contains(label) {
                if before.status == after.status {
                    continue;
                }
                member_update(
                    table,
                    tenant,
                    &after.id,
                    label,
                    after.status,
                    super::views::MemberMove::default(),
                )?
            } else {
                member_put(table, tenant, after, label, &at)?
            };
            writes.push((write, Slot::Moved));
        }
        for label in before.labels.iter().filter(|l| !after.labels.contains(l)) {
            writes.push((member_delete(table, tenant, &after.id, label)?, Slot::Moved));
        }
        if before.labels != after.labels {
            // The customer item holds the same list (what `GET /customers/{id}` shows).
            let mut c = Expr::default();
            c.set("labels", labels_value(&after.labels))
                .add(super::customers::LABELS_VERSION, n(1));
            let pk = c.name(keys::PK);
            writes.push((
                update(
                    table,
                    keys::customer(tenant, &after.customer.id),
                    &c,
                    Some(format!("attribute_exists({pk})")),
                )?,
                Slot::Other,
            ));
        }
        match change {
            Change::Assign(Some(agent)) => writes.push((
                check_exists(table, keys::agent(tenant, agent))?,
                Slot::Agent,
            )),
            Change::Label { name, add: true } => writes.push((
                check_exists(table, keys::label(tenant, name.as_str()))?,
                Slot::Label,
            )),
            _ => {}
        }
        Ok(writes)
    }
}

impl ConversationChanges for DynamoStore {
    async fn change_conversation(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        change: &Change,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<ConversationState, Error> {
        let not_found = || Error::NotFound {
            what: "conversation",
        };
        for attempt in 0..CHANGE_ATTEMPTS {
            let (before, agent_name) = self
                .read_for_change(tenant, conversation_id, change)
                .await?;
            let before = before.ok_or_else(not_found)?;
            let Some((after, mut note)) = change.apply(&before, actor)? else {
                return Ok(before);
            };
            if let (Change::Assign(Some(id)), Some(name)) = (change, agent_name) {
                note.text = format!("Assigned to {name} ({id})");
            }
            let (mut items, mut slots): (Vec<_>, Vec<_>) = self
                .change_writes(tenant, change, &before, &after)?
                .into_iter()
                .unzip();
            // Dated after the read it was decided on: a change that lost a race and is
            // decided again lists after the one that won, as it was applied after it.
            let when = at.max(Utc::now());
            items.push(system_put(
                &self.table,
                tenant,
                conversation_id,
                &when,
                &note,
            )?);
            slots.push(Slot::Other);
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(after),
                Err(err) => err.into_service_error(),
            };
            match err {
                TransactWriteItemsError::TransactionCanceledException(cancel) => {
                    let codes = reason_codes(cancel.cancellation_reasons());
                    let failed: Vec<Slot> = codes
                        .iter()
                        .zip(&slots)
                        .filter(|(code, _)| **code == "ConditionalCheckFailed")
                        .map(|(_, slot)| *slot)
                        .collect();
                    if failed.contains(&Slot::Agent) {
                        return Err(unknown_agent());
                    }
                    if failed.contains(&Slot::Label) {
                        return Err(Error::validation(
                            "unknown_label",
                            "the label is not in the tenant's catalog (POST /labels first)",
                        ));
                    }
                    if failed.contains(&Slot::Moved) {
                        // Another change or a message won the race: decide again, after a
                        // pause that grows, so that many parallel changes all land.
                        conflict_backoff(attempt).await;
                        continue;
                    }
                    if codes.contains(&"TransactionConflict") {
                        conflict_backoff(attempt).await;
                        continue;
                    }
                    return Err(Error::Internal(format!("change cancelled: {codes:?}")));
                }
                TransactWriteItemsError::TransactionInProgressException(_) => {
                    conflict_backoff(attempt).await;
                }
                other => return Err(internal("change conversation", other)),
            }
        }
        Err(Error::conflict(
            "conversation_busy",
            "the conversation kept changing while this change was written: try again",
        ))
    }

    async fn labelled_conversations(
        &self,
        tenant: &TenantId,
        label: &str,
        limit: usize,
    ) -> Result<Vec<String>, Error> {
        let view = View::Label(label.to_owned(), None);
        let ix = view.index();
        let mut ids = Vec::new();
        for shard in 0..views::SHARDS {
            let mut start = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(ix.index)
                    .key_condition_expression("#p = :p")
                    .expression_attribute_names("#p", ix.attribute)
                    .expression_attribute_values(
                        ":p",
                        s(keys::view_partition(tenant, &view, shard)),
                    )
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| internal("list labelled conversations", e))?;
                ids.extend(
                    out.items()
                        .iter()
                        .filter_map(|item| get_s(item, keys::VIEW_SK))
                        .filter_map(keys::conversation_of_activity)
                        .map(str::to_owned),
                );
                if ids.len() >= limit {
                    ids.truncate(limit);
                    return Ok(ids);
                }
                match out.last_evaluated_key() {
                    Some(k) => start = Some(k.clone()),
                    None => break,
                }
            }
        }
        Ok(ids)
    }

    async fn delete_catalog_label(&self, tenant: &TenantId, label: &str) -> Result<bool, Error> {
        let key = keys::label(tenant, label);
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(keys::PK, s(key.pk))
            .key(keys::SK, s(key.sk))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| internal("delete label", e))?;
        Ok(out.attributes().is_some_and(|a| !a.is_empty()))
    }
}
