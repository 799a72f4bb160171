//! Customer aliases, and the changes providers report to messages after they were sent
//! (edits, deletions, reactions, plays) and the billing objects of status webhooks: kept on
//! the provider id item (`PID#`), where the message view reads them.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{DynamoStore, Expr, get_s, internal, n, s};
use crate::Error;
use crate::adapters::keys::{self, Key};
use crate::domain::channel::Channel;
use crate::domain::conversation::{Message, conversation_id};
use crate::domain::inbound::{
    LifecycleEvent, MAX_HISTORY, MessageChange, PENDING_CHANGE_TTL_DAYS, history_entry,
};
use crate::domain::message::Direction;
use crate::domain::time::rfc3339;
use crate::ports::{ChangeOutcome, CustomerAliases, MessageLifecycle, MessageRef};

/// Attributes of a provider id item that this module writes.
const HISTORY: &str = "history";
const HISTORY_IDS: &str = "history_ids";
const EDITED_TEXT: &str = "edited_text";
const EDITED_AT: &str = "edited_at";
const DELETED_AT: &str = "deleted_at";
const PLAYED_AT: &str = "played_at";
/// Status webhooks' objects (JSON text), SPEC §4.
pub(super) const PRICING: &str = "pricing";
pub(super) const BILLING_CONVERSATION: &str = "billing_conversation";
/// Attribute of an alias item naming the canonical id.
const CANONICAL: &str = "canonical";

/// Attempts of [`MessageLifecycle::apply_change`] when the message appears or the history
/// fills between its steps.
const CHANGE_ATTEMPTS: usize = 3;

fn reaction_attributes(by: Direction) -> (&'static str, &'static str) {
    match by {
        Direction::Inbound => ("reaction_customer", "reaction_customer_at"),
        _ => ("reaction_business", "reaction_business_at"),
    }
}

/// The update of one change: the change itself, and (when `with_history`) its history
/// entry and id. Returns the expression and the condition parts that guard it.
fn change_expression(
    event: &LifecycleEvent,
    received_at: DateTime<Utc>,
    with_history: bool,
) -> (Expr, Vec<String>) {
    let at = rfc3339(&event.timestamp.unwrap_or(received_at));
    let mut e = Expr::default();
    e.set_if_absent(keys::ENTITY, s("provider_message"));
    match &event.change {
        MessageChange::Edited { text } => {
            e.set(EDITED_AT, s(&at));
            if let Some(t) = text {
                e.set(EDITED_TEXT, s(t));
            }
        }
        MessageChange::Deleted => {
            e.set(DELETED_AT, s(&at));
        }
        MessageChange::Reacted { emoji } => {
            let (emoji_attr, at_attr) = reaction_attributes(event.by);
            e.set(emoji_attr, s(emoji)).set(at_attr, s(&at));
        }
        MessageChange::Unreacted => {
            let (emoji_attr, at_attr) = reaction_attributes(event.by);
            e.remove(emoji_attr).set(at_attr, s(&at));
        }
        MessageChange::Played => {
            e.set(PLAYED_AT, s(&at));
        }
    }
    let ids = e.name(HISTORY_IDS);
    let event_id = e.value(s(&event.event_id));
    let mut conditions = vec![format!("NOT contains({ids}, {event_id})")];
    if with_history {
        let entry = history_entry(event, received_at).to_string();
        let h = e.name(HISTORY);
        let (empty, new) = (
            e.value(AttributeValue::L(Vec::new())),
            e.value(AttributeValue::L(vec![s(entry)])),
        );
        e.sets.push(format!(
            "{h} = list_append(if_not_exists({h}, {empty}), {new})"
        ));
        e.add(
            HISTORY_IDS,
            AttributeValue::Ss(vec![event.event_id.clone()]),
        );
        let max = e.value(n(MAX_HISTORY));
        conditions.push(format!("(attribute_not_exists({h}) OR size({h}) < {max})"));
    }
    (e, conditions)
}

impl DynamoStore {
    /// One conditional update of a provider id item; `Ok(None)` when the condition failed.
    async fn update_pid(
        &self,
        key: &Key,
        e: &Expr,
        condition: String,
        context: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, Error> {
        let result = self
            .update_item(key, e)
            .condition_expression(condition)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result.map_err(aws_sdk_dynamodb::error::SdkError::into_service_error) {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(None),
            Err(other) => Err(internal(context, other)),
        }
    }
}

fn has_event(item: &HashMap<String, AttributeValue>, event_id: &str) -> bool {
    item.get(HISTORY_IDS)
        .and_then(|v| v.as_ss().ok())
        .is_some_and(|ids| ids.iter().any(|id| id == event_id))
}

impl MessageLifecycle for DynamoStore {
    /// The change goes on the provider id item of the message it names (the key comes from
    /// the channel, the customer and that id: no read on the usual path): one conditional
    /// update when the message is stored; when it is not, the same update creates or
    /// extends the item with a TTL (`record_message` removes the TTL when it claims the
    /// item). A full history still takes the change, unrecorded.
    async fn apply_change(
        &self,
        channel: &Channel,
        event: &LifecycleEvent,
        received_at: DateTime<Utc>,
    ) -> Result<ChangeOutcome, Error> {
        let conversation = conversation_id(&channel.id, &event.customer);
        let key = keys::provider_message(&channel.tenant_id, &conversation, &event.target);
        let applied = |item: &HashMap<String, AttributeValue>| {
            get_s(item, "message_id").map(|id| {
                ChangeOutcome::Applied(MessageRef {
                    message_id: id.to_owned(),
                    conversation_id: conversation.clone(),
                    cancels_scheduled: false,
                })
            })
        };
        for _ in 0..CHANGE_ATTEMPTS {
            let (e, mut conditions) = change_expression(event, received_at, true);
            let mut stored = e.clone();
            let mid = stored.name("message_id");
            conditions.push(format!("attribute_exists({mid})"));
            if let Some(item) = self
                .update_pid(&key, &stored, conditions.join(" AND "), "apply change")
                .await?
            {
                return Ok(applied(&item).unwrap_or(ChangeOutcome::Kept));
            }
            let current = self
                .get_consistent(key.clone(), "read changed message")
                .await?;
            let current = current.unwrap_or_default();
            if has_event(&current, &event.event_id) {
                return Ok(ChangeOutcome::Duplicate);
            }
            if get_s(&current, "message_id").is_some() {
                // The history is full: the change still shows, unrecorded.
                let (e, conditions) = change_expression(event, received_at, false);
                return match self
                    .update_pid(&key, &e, conditions.join(" AND "), "apply change")
                    .await?
                {
                    Some(item) => Ok(applied(&item).unwrap_or(ChangeOutcome::Kept)),
                    None => Ok(ChangeOutcome::Duplicate),
                };
            }
            // Not stored yet: keep it, bounded by the history's size, with a TTL.
            let (mut e, mut conditions) = change_expression(event, received_at, true);
            let expires = (received_at + chrono::Duration::days(PENDING_CHANGE_TTL_DAYS))
                .timestamp()
                .to_string();
            e.set(keys::EXPIRES_AT, AttributeValue::N(expires));
            let mid = e.name("message_id");
            conditions.push(format!("attribute_not_exists({mid})"));
            if self
                .update_pid(&key, &e, conditions.join(" AND "), "keep change")
                .await?
                .is_some()
            {
                return Ok(ChangeOutcome::Kept);
            }
            // The message was stored meanwhile, or the kept history is full: look again.
        }
        tracing::warn!(
            channel_id = %channel.id,
            change = event.change.as_str(),
            "lifecycle change not kept: too many for a message not stored yet"
        );
        Ok(ChangeOutcome::Duplicate)
    }
}

impl CustomerAliases for DynamoStore {
    async fn customer_aliases(
        &self,
        channel: &Channel,
        ids: &[String],
    ) -> Result<HashMap<String, String>, Error> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        let wanted = unique
            .iter()
            .map(|id| keys::customer_alias(&channel.tenant_id, &channel.id, id))
            .collect();
        let items = self
            .batch_get_consistent(wanted, true, "read customer aliases")
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let alias =
                    keys::alias_of(&channel.tenant_id, &channel.id, get_s(item, keys::PK)?)?;
                Some((alias.to_owned(), get_s(item, CANONICAL)?.to_owned()))
            })
            .collect())
    }

    async fn alias_customer(
        &self,
        channel: &Channel,
        alias: &str,
        canonical: &str,
    ) -> Result<String, Error> {
        let key = keys::customer_alias(&channel.tenant_id, &channel.id, alias);
        let mut item = super::key_item(key.clone());
        item.insert(keys::ENTITY.into(), s("customer_alias"));
        item.insert(CANONICAL.into(), s(canonical));
        item.insert("channel_id".into(), s(channel.id.as_str()));
        item.insert("created_at".into(), s(rfc3339(&Utc::now())));
        let result = self.put_new(item).send().await;
        match result.map_err(aws_sdk_dynamodb::error::SdkError::into_service_error) {
            Ok(_) => Ok(canonical.to_owned()),
            Err(PutItemError::ConditionalCheckFailedException(_)) => {
                let current = self.get_consistent(key, "read customer alias").await?;
                Ok(current
                    .as_ref()
                    .and_then(|i| get_s(i, CANONICAL))
                    .unwrap_or(canonical)
                    .to_owned())
            }
            Err(other) => Err(internal("alias customer", other)),
        }
    }
}

fn json_attr(item: &HashMap<String, AttributeValue>, name: &str) -> Option<Value> {
    get_s(item, name).and_then(|t| serde_json::from_str(t).ok())
}

/// Shows what the provider id item holds beside the status on the message view: edits
/// (the text), deletion (no text), reactions, plays and their history, and the status
/// webhooks' `pricing` and `conversation` objects. They go into `raw` (the provider's
/// fragments kept for audit): `raw.pricing`, `raw.conversation`, and `raw.lifecycle`
/// `{edited_at, deleted_at, played_at, reactions {customer, business}, history [...]}`.
pub(super) fn decorate(message: &mut Message, item: &HashMap<String, AttributeValue>) {
    let mut extra = serde_json::Map::new();
    if let Some(p) = json_attr(item, PRICING) {
        extra.insert("pricing".into(), p);
    }
    if let Some(c) = json_attr(item, BILLING_CONVERSATION) {
        extra.insert("conversation".into(), c);
    }
    let mut lifecycle = serde_json::Map::new();
    for attr in [EDITED_AT, DELETED_AT, PLAYED_AT] {
        if let Some(at) = get_s(item, attr) {
            lifecycle.insert(attr.into(), json!(at));
        }
    }
    let mut reactions = serde_json::Map::new();
    for (who, by) in [
        ("customer", Direction::Inbound),
        ("business", Direction::Outbound),
    ] {
        if let Some(emoji) = get_s(item, reaction_attributes(by).0) {
            reactions.insert(who.into(), json!(emoji));
        }
    }
    if !reactions.is_empty() {
        lifecycle.insert("reactions".into(), Value::Object(reactions));
    }
    let history: Vec<Value> = item
        .get(HISTORY)
        .and_then(|v| v.as_l().ok())
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_s().ok())
                .filter_map(|t| serde_json::from_str(t).ok())
                .collect()
        })
        .unwrap_or_default();
    if !history.is_empty() {
        lifecycle.insert("history".into(), Value::Array(history));
    }
    if get_s(item, DELETED_AT).is_some() {
        message.text = None;
    } else if let Some(t) = get_s(item, EDITED_TEXT) {
        message.text = Some(t.to_owned());
    }
    if !lifecycle.is_empty() {
        extra.insert("lifecycle".into(), Value::Object(lifecycle));
    }
    if extra.is_empty() {
        return;
    }
    let mut raw = match std::mem::take(&mut message.raw) {
        Value::Object(o) => o,
        Value::Null => serde_json::Map::new(),
        other => serde_json::Map::from_iter([("fragment".to_owned(), other)]),
    };
    raw.extend(extra);
    message.raw = Value::Object(raw);
}

/// The status webhook's billing objects to keep on the provider id item, as JSON text.
pub(super) fn billing_attributes(raw: &Value) -> Vec<(&'static str, String)> {
    let (pricing, conversation) = crate::domain::inbound::billing_of(raw);
    pricing
        .map(|p| (PRICING, p.to_string()))
        .into_iter()
        .chain(conversation.map(|c| (BILLING_CONVERSATION, c.to_string())))
        .collect()
}
