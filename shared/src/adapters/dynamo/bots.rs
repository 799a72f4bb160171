//! Bots in the table: the tenant's bot catalog (one item), the bot state on the
//! conversation item, and the claim of each inbound message's turn (`BOTTURN#<message
//! id>` in the conversation's partition, kept 7 days).

use std::collections::HashMap;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{Duration, Utc};

use super::conversations::{conversation_from, message_from};
use super::settings::settings_from;
use super::system::system_put;
use super::views::set_bot_view;
use super::{DynamoStore, Expr, get_s, internal, key_item, n, s, update};
use crate::Error;
use crate::adapters::keys;
use crate::domain::bot::{ActiveBot, Bot, BotRun, Exit, ExitReason, turn_time};
use crate::domain::ids::TenantId;
use crate::domain::outbound::SendMessage;
use crate::domain::system::SystemMessage;
use crate::domain::time::{parse_rfc3339, rfc3339};
use crate::ports::{BotCatalog, BotTurns, ClaimOutcome, ClaimedSends, TurnClaim, TurnInputs};

/// Largest catalog written, in bytes of JSON: under DynamoDB's 400 KB item limit with
/// room for the key and attributes.
const CATALOG_MAX_BYTES: usize = 380 * 1024;
/// How long a turn claim is kept (re-deliveries come within EventBridge's 24 h).
const CLAIM_DAYS: i64 = 7;

fn catalog_from(item: &HashMap<String, AttributeValue>) -> Result<(Vec<Bot>, u64), Error> {
    let version = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bots = match get_s(item, "bots") {
        Some(json) => serde_json::from_str(json).map_err(|e| internal("decode bots", e))?,
        None => Vec::new(),
    };
    Ok((bots, version))
}

fn too_many_bots(bytes: usize) -> Error {
    let size = if bytes > 0 {
        format!("would take {} KB", bytes / 1024)
    } else {
        "are too large".to_owned()
    };
    Error::validation(
        "too_many_bots",
        format!(
            "the tenant's bots {size}; they must fit in {} KB (fewer or smaller bots)",
            CATALOG_MAX_BYTES / 1024
        ),
    )
}

impl BotCatalog for DynamoStore {
    async fn bots(&self, tenant: &TenantId) -> Result<(Vec<Bot>, u64), Error> {
        match self
            .get_consistent(keys::bot_catalog(tenant), "read bots")
            .await?
        {
            Some(item) => catalog_from(&item),
            None => Ok((Vec::new(), 0)),
        }
    }

    async fn save_bots(
        &self,
        tenant: &TenantId,
        bots: &[Bot],
        version: u64,
    ) -> Result<bool, Error> {
        let json = serde_json::to_string(bots).map_err(|e| internal("encode bots", e))?;
        if json.len() > CATALOG_MAX_BYTES {
            return Err(too_many_bots(json.len()));
        }
        // A put of the whole item (not an update): the store sizes the new item alone.
        let mut item = key_item(keys::bot_catalog(tenant));
        item.insert(keys::ENTITY.into(), s("bots"));
        item.insert("bots".into(), s(json));
        item.insert("version".into(), n(version + 1));
        let condition = if version == 0 {
            "attribute_not_exists(#v)".to_owned()
        } else {
            "#v = :v".to_owned()
        };
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .expression_attribute_names("#v", "version");
        if version > 0 {
            put = put.expression_attribute_values(":v", n(version));
        }
        match put
            .send()
            .await
            .map_err(aws_sdk_dynamodb::error::SdkError::into_service_error)
        {
            Ok(_) => Ok(true),
            Err(PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
            Err(e) if e.code() == Some("ValidationException") => Err(too_many_bots(0)),
            Err(e) => Err(internal("save bots", e)),
        }
    }
}

/// Sets the conversation's bot attributes to `waiting`, or clears them (a stop).
fn set_bot_state(
    e: &mut Expr,
    tenant: &TenantId,
    conversation_id: &str,
    waiting: Option<&ActiveBot>,
    blocks: bool,
) {
    match waiting {
        Some(a) => {
            e.set("bot_id", s(&a.bot_id))
                .set("bot_name", s(&a.name))
                .set("bot_since", s(rfc3339(&a.since)))
                .set("bot_step", s(&a.step))
                .set("bot_asked", n(a.asked))
                .set("bot_waiting_since", s(rfc3339(&a.waiting_since)))
                .set("bot_timeout_minutes", n(a.timeout_minutes));
        }
        None => {
            for attribute in [
                "bot_id",
                "bot_name",
                "bot_since",
                "bot_step",
                "bot_asked",
                "bot_waiting_since",
                "bot_timeout_minutes",
            ] {
                e.remove(attribute);
            }
            // Stopped: no bot starts again until the conversation is closed.
            if blocks {
                e.set("bot_blocked", AttributeValue::Bool(true));
            }
        }
    }
    set_bot_view(e, tenant, conversation_id, waiting.is_some());
}

/// The condition that the bot state is still at `version` (and the conversation exists).
fn at_version(e: &mut Expr, version: u64) -> String {
    let pk = e.name(keys::PK);
    let name = e.name("bot_version");
    let same = if version == 0 {
        format!("attribute_not_exists({name})")
    } else {
        let v = e.value(n(version));
        format!("{name} = {v}")
    };
    e.set("bot_version", n(version + 1));
    format!("attribute_exists({pk}) AND {same}")
}

/// The conversation update that moves its bot state from `seen` to `waiting` (or stops
/// it), for a transaction.
pub(super) fn bot_state_update(
    table: &str,
    tenant: &TenantId,
    conversation_id: &str,
    seen_version: u64,
    waiting: Option<&ActiveBot>,
    blocks: bool,
) -> Result<TransactWriteItem, Error> {
    let mut e = Expr::default();
    set_bot_state(&mut e, tenant, conversation_id, waiting, blocks);
    let condition = at_version(&mut e, seen_version);
    update(
        table,
        keys::conversation(tenant, conversation_id),
        &e,
        Some(condition),
    )
}

/// An agent's send stops the running bot (SPEC §8: "an agent's own reply"), in the send's
/// own transaction: clears the bot state into `e`, and returns the condition that the bot
/// state is still as `seen` and the `bot_exited` system message (`None` when no bot ran).
/// A bot whose timeout had passed is recorded as timed out at its deadline.
pub(super) fn stop_on_agent_reply(
    table: &str,
    e: &mut Expr,
    tenant: &TenantId,
    conversation_id: &str,
    seen: &BotRun,
    actor: &crate::domain::actor::Actor,
    at: chrono::DateTime<Utc>,
) -> Result<(String, Option<TransactWriteItem>), Error> {
    let name = e.name("bot_version");
    let same = if seen.version == 0 {
        format!("attribute_not_exists({name})")
    } else {
        let v = e.value(n(seen.version));
        format!("{name} = {v}")
    };
    let Some(active) = &seen.active else {
        return Ok((same, None));
    };
    set_bot_state(e, tenant, conversation_id, None, true);
    e.set("bot_version", n(seen.version + 1));
    let exit = if active.runs_at(at) {
        Exit {
            reason: ExitReason::AgentReplied,
            actor: actor.clone(),
            at: at - Duration::milliseconds(1),
            assign_to: None,
        }
    } else {
        Exit {
            reason: ExitReason::Timeout,
            actor: crate::domain::actor::Actor::System,
            at: active.deadline(),
            assign_to: None,
        }
    };
    let note = exit_note(table, tenant, conversation_id, &active.name, &exit)?;
    Ok((same, Some(note)))
}

/// A stop's `bot_exited` system message, for a transaction.
pub(super) fn exit_note(
    table: &str,
    tenant: &TenantId,
    conversation_id: &str,
    bot_name: &str,
    exit: &Exit,
) -> Result<TransactWriteItem, Error> {
    let note = SystemMessage::bot_exited(bot_name, exit.reason, exit.actor.clone());
    system_put(table, tenant, conversation_id, &exit.at, &note)
}

fn claim_item(c: &TurnClaim) -> Result<HashMap<String, AttributeValue>, Error> {
    let mut item = key_item(keys::bot_turn(&c.tenant, &c.conversation_id, &c.message_id));
    let sends =
        serde_json::to_string(&c.turn.sends).map_err(|e| internal("encode bot sends", e))?;
    let expires = (c.at + Duration::days(CLAIM_DAYS)).timestamp();
    item.insert(keys::ENTITY.into(), s("bot_turn"));
    item.insert("bot_id".into(), s(&c.turn.bot_id));
    item.insert("at".into(), s(rfc3339(&c.at)));
    item.insert("sends".into(), s(sends));
    let assigns = c.turn.exit.as_ref().is_some_and(|e| e.assign_to.is_some());
    item.insert(
        "settled".into(),
        AttributeValue::Bool(c.turn.sends.is_empty() && !assigns),
    );
    item.insert(keys::EXPIRES_AT.into(), n(expires));
    item.insert("version".into(), n(c.seen_version + 1));
    if let Some(agent) = c.turn.exit.as_ref().and_then(|e| e.assign_to.as_ref()) {
        item.insert("assign_to".into(), s(agent));
    }
    Ok(item)
}

fn claimed_from(item: &HashMap<String, AttributeValue>) -> Result<ClaimedSends, Error> {
    let sends: Vec<SendMessage> = serde_json::from_str(get_s(item, "sends").unwrap_or("[]"))
        .map_err(|e| internal("decode bot sends", e))?;
    Ok(ClaimedSends {
        bot_id: get_s(item, "bot_id").unwrap_or_default().to_owned(),
        at: get_s(item, "at")
            .and_then(parse_rfc3339)
            .unwrap_or_else(Utc::now),
        sends,
        settled: matches!(item.get("settled"), Some(AttributeValue::Bool(true))),
        assign_to: get_s(item, "assign_to").map(str::to_owned),
        version: item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_default(),
    })
}

impl BotTurns for DynamoStore {
    async fn turn_inputs(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        created_at: &str,
        message_id: &str,
    ) -> Result<Option<TurnInputs>, Error> {
        let conversation_key = keys::conversation(tenant, conversation_id);
        let message_key = keys::message(tenant, conversation_id, created_at, message_id);
        let settings_key = keys::settings(tenant);
        let catalog_key = keys::bot_catalog(tenant);
        let claim_key = keys::bot_turn(tenant, conversation_id, message_id);
        let items = self
            .batch_get_consistent(
                vec![
                    conversation_key.clone(),
                    message_key.clone(),
                    settings_key.clone(),
                    catalog_key.clone(),
                    claim_key.clone(),
                ],
                true,
                "read bot turn",
            )
            .await?;
        let find = |key: &keys::Key| {
            items.iter().find(|i| {
                get_s(i, keys::PK) == Some(key.pk.as_str())
                    && get_s(i, keys::SK) == Some(key.sk.as_str())
            })
        };
        let (Some(conversation), Some(message)) = (find(&conversation_key), find(&message_key))
        else {
            return Ok(None);
        };
        let bots = match find(&catalog_key) {
            Some(item) => catalog_from(item)?.0,
            None => Vec::new(),
        };
        Ok(Some(TurnInputs {
            claimed: find(&claim_key).map(claimed_from).transpose()?,
            conversation_created_at: get_s(conversation, "created_at").and_then(parse_rfc3339),
            conversation: conversation_from(conversation)?,
            message: message_from(message)?,
            settings: settings_from(tenant, find(&settings_key).cloned())?,
            bots,
        }))
    }

    async fn claim_turn(&self, c: &TurnClaim) -> Result<ClaimOutcome, Error> {
        let turn = &c.turn;
        let claim = Put::builder()
            .table_name(&self.table)
            .set_item(Some(claim_item(c)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| internal("build put", e))?;
        let mut items = vec![
            TransactWriteItem::builder().put(claim).build(),
            bot_state_update(
                &self.table,
                &c.tenant,
                &c.conversation_id,
                c.seen_version,
                turn.waiting.as_ref(),
                turn.blocks,
            )?,
        ];
        if turn.starts {
            let note = SystemMessage::bot_started(&turn.bot_id, &turn.bot_name);
            items.push(system_put(
                &self.table,
                &c.tenant,
                &c.conversation_id,
                &c.at,
                &note,
            )?);
        }
        if let Some(exit) = &turn.exit {
            // A stop is listed after the turn's messages (a timeout at its deadline).
            let at = match exit.reason {
                ExitReason::Timeout => exit.at,
                _ => turn_time(c.at, turn.sends.len() + 1),
            };
            let exit = Exit { at, ..exit.clone() };
            items.push(exit_note(
                &self.table,
                &c.tenant,
                &c.conversation_id,
                &turn.bot_name,
                &exit,
            )?);
        }
        let Some(codes) = self.transact_conditional(items, "claim bot turn").await? else {
            return Ok(ClaimOutcome::Claimed);
        };
        if codes.first().is_some_and(|c| c == "ConditionalCheckFailed") {
            let key = keys::bot_turn(&c.tenant, &c.conversation_id, &c.message_id);
            let item = self
                .get_consistent(key, "read bot turn claim")
                .await?
                .ok_or_else(|| Error::Internal("bot turn claim vanished".into()))?;
            return Ok(ClaimOutcome::Taken(claimed_from(&item)?));
        }
        let exists = self
            .get_consistent(
                keys::conversation(&c.tenant, &c.conversation_id),
                "read conversation",
            )
            .await?
            .is_some();
        Ok(if exists {
            ClaimOutcome::Moved
        } else {
            ClaimOutcome::Gone
        })
    }

    async fn conversation_bot(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
    ) -> Result<Option<BotRun>, Error> {
        Ok(self
            .get_consistent(
                keys::conversation(tenant, conversation_id),
                "read conversation",
            )
            .await?
            .as_ref()
            .map(conversation_from)
            .transpose()?
            .map(|c| c.bot))
    }

    async fn settle_turn(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        message_id: &str,
    ) -> Result<(), Error> {
        let mut e = Expr::default();
        e.set("settled", AttributeValue::Bool(true));
        self.update_item(&keys::bot_turn(tenant, conversation_id, message_id), &e)
            .send()
            .await
            .map_err(|e| internal("settle bot turn", e))?;
        Ok(())
    }

    async fn stop_bot(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        seen: &BotRun,
        exit: &Exit,
    ) -> Result<bool, Error> {
        let name = seen.active.as_ref().map_or("", |a| a.name.as_str());
        let items = vec![
            bot_state_update(
                &self.table,
                tenant,
                conversation_id,
                seen.version,
                None,
                true,
            )?,
            exit_note(&self.table, tenant, conversation_id, name, exit)?,
        ];
        // Refused: the bot state moved since it was read.
        Ok(self
            .transact_conditional(items, "stop bot")
            .await?
            .is_none())
    }
}
