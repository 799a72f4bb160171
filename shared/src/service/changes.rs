//! Agents' changes around a conversation (SPEC §7): assignment, status, the customer's
//! labels and the label catalog's removal. Each writes its system message with it.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::info;

use crate::Error;
use crate::domain::actor::Actor;
use crate::domain::auth::Principal;
use crate::domain::changes::Change;
use crate::domain::conversation::{Conversation, ConversationStatus, conversation_of_customer};
use crate::domain::label::LabelName;
use crate::domain::time::parse_rfc3339;
use crate::ports::ConversationChanges;

fn actor(principal: &Principal) -> Actor {
    Actor::agent(principal.agent_id.as_str())
}

/// `PUT /conversations/{id}/assignee {"agent_id": "…" | null}`: the conversation after.
///
/// # Errors
/// 422 `invalid_body` without `agent_id`, `unknown_agent` for an id that is not an agent
/// of the tenant; 404 for an unknown conversation.
pub async fn assign(
    store: &impl ConversationChanges,
    principal: &Principal,
    conversation_id: &str,
    body: &Value,
    now: DateTime<Utc>,
) -> Result<Conversation, Error> {
    let agent = match body.get("agent_id") {
        Some(Value::Null) => None,
        Some(Value::String(id)) => {
            // An id no token could carry is no agent of the tenant.
            let valid = crate::domain::agent::AgentRef::parse(id).map_err(|_| {
                Error::validation("unknown_agent", "agent_id is not an agent of this tenant")
            })?;
            Some(valid.as_str().to_owned())
        }
        _ => {
            return Err(Error::validation(
                "invalid_body",
                "agent_id is required: an agent id, or null to unassign",
            ));
        }
    };
    if body.as_object().is_some_and(|o| o.len() > 1) {
        return Err(Error::validation(
            "invalid_body",
            "the body has only agent_id",
        ));
    }
    let state = store
        .change_conversation(
            &principal.tenant_id,
            conversation_id,
            &Change::Assign(agent),
            &actor(principal),
            now,
        )
        .await?;
    info!(
        tenant = %principal.tenant_id,
        conversation_id,
        assignee = state.assignee.as_deref().unwrap_or("none"),
        "conversation assigned"
    );
    Ok(state.view(now))
}

/// `PATCH /conversations/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// `open`, `closed` or `snoozed`.
    pub status: String,
    /// RFC 3339; with `snoozed` only.
    #[serde(default)]
    pub snoozed_until: Option<String>,
}

/// `PATCH /conversations/{id}`: open, close or snooze; the conversation after. A snooze
/// gets a one-time schedule that ends it at `snoozed_until` (SPEC §7, through the
/// scheduler of §9); a repeat finds it made.
///
/// # Errors
/// 422 `invalid_status`, `invalid_snooze` (see [`Change::status`]); 404 for an unknown
/// conversation; 502 when the snooze's schedule cannot be made (the snooze is stored:
/// repeating the request makes it).
pub async fn set_status(
    store: &impl ConversationChanges,
    schedules: &impl crate::ports::Schedules,
    principal: &Principal,
    conversation_id: &str,
    request: StatusRequest,
    now: DateTime<Utc>,
) -> Result<Conversation, Error> {
    let status = ConversationStatus::parse(&request.status).ok_or_else(|| {
        Error::validation("invalid_status", "status must be open, closed or snoozed")
    })?;
    let until = match request.snoozed_until.as_deref() {
        Some(text) => Some(parse_rfc3339(text).ok_or_else(|| {
            Error::validation("invalid_snooze", "snoozed_until must be an RFC 3339 time")
        })?),
        None => None,
    };
    let change = Change::status(status, until, now)?;
    let state = store
        .change_conversation(
            &principal.tenant_id,
            conversation_id,
            &change,
            &actor(principal),
            now,
        )
        .await?;
    if let (ConversationStatus::Snoozed, Some(until)) = (state.status, state.snoozed_until) {
        crate::service::schedules::schedule_snooze_end(
            schedules,
            &principal.tenant_id,
            &state.id,
            until,
        )
        .await?;
    }
    info!(
        tenant = %principal.tenant_id,
        conversation_id,
        status = state.status.as_str(),
        "conversation status set"
    );
    Ok(state.view(now))
}

/// A customer's labels after a change.
#[derive(Debug, Serialize)]
pub struct CustomerLabels {
    /// The customer id.
    pub id: String,
    /// Its labels.
    pub labels: Vec<String>,
}

/// `PUT` (`add`) or `DELETE /customers/{id}/labels/{label}`; a repeat changes nothing.
///
/// # Errors
/// 404 for an unknown customer; 422 `invalid_label` (a name that cannot be one),
/// `unknown_label` (not in the catalog, on `PUT`), `too_many_labels`.
pub async fn set_label(
    store: &impl ConversationChanges,
    principal: &Principal,
    customer_id: &str,
    label: &str,
    add: bool,
    now: DateTime<Utc>,
) -> Result<CustomerLabels, Error> {
    let not_found = || Error::NotFound { what: "customer" };
    let conversation = conversation_of_customer(customer_id).ok_or_else(not_found)?;
    let name = LabelName::parse(label)?;
    let state = store
        .change_conversation(
            &principal.tenant_id,
            &conversation,
            &Change::Label { name, add },
            &actor(principal),
            now,
        )
        .await
        .map_err(|e| match e {
            Error::NotFound { .. } => not_found(),
            other => other,
        })?;
    info!(
        tenant = %principal.tenant_id,
        customer_id,
        label,
        added = add,
        "customer label set"
    );
    Ok(CustomerLabels {
        id: customer_id.to_owned(),
        labels: state.labels,
    })
}

/// Conversations read per round while a deleted label is taken off its customers.
const SWEEP_BATCH: usize = 100;

/// `DELETE /labels/{name}` (admin): removes the label from the catalog, then from every
/// customer carrying it (each with its `label_removed` system message). Repeating it
/// finishes a removal that was cut short.
///
/// # Errors
/// 403 for an agent; 404 when the label is neither in the catalog nor on any customer.
pub async fn delete_label(
    store: &impl ConversationChanges,
    principal: &Principal,
    label: &str,
    now: DateTime<Utc>,
) -> Result<usize, Error> {
    principal.require_admin()?;
    let not_found = || Error::NotFound { what: "label" };
    let name = LabelName::parse(label).map_err(|_| not_found())?;
    let existed = store
        .delete_catalog_label(&principal.tenant_id, name.as_str())
        .await?;
    let mut done: HashSet<String> = HashSet::new();
    loop {
        let ids = store
            .labelled_conversations(
                &principal.tenant_id,
                name.as_str(),
                done.len() + SWEEP_BATCH,
            )
            .await?;
        // The index may still show a membership just removed: stop when nothing is new.
        let fresh: Vec<String> = ids.into_iter().filter(|id| !done.contains(id)).collect();
        if fresh.is_empty() {
            break;
        }
        for id in fresh {
            let change = Change::Label {
                name: name.clone(),
                add: false,
            };
            match store
                .change_conversation(&principal.tenant_id, &id, &change, &actor(principal), now)
                .await
            {
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(other) => return Err(other),
            }
            done.insert(id);
        }
    }
    if !existed && done.is_empty() {
        return Err(not_found());
    }
    info!(
        tenant = %principal.tenant_id,
        label = name.as_str(),
        customers = done.len(),
        "label deleted"
    );
    Ok(done.len())
}
