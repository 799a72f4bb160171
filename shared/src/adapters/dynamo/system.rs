//! System messages as stored: one record shape for every writer (delivery failures from
//! the send path and from status webhooks, and every later state change).

use super::inbound::MessageRecord;
use crate::domain::ids::TenantId;
use crate::domain::message::{DeliveryStatus, Direction, MessageKind};
use crate::domain::system::SystemMessage;

impl MessageRecord {
    /// The record of a system message at `when` (RFC 3339) with id `id`. System messages
    /// are `delivered` (they reached us) and carry their event code and actor.
    pub(super) fn system(
        tenant: &TenantId,
        conversation_id: &str,
        when: &str,
        id: &str,
        message: &SystemMessage,
    ) -> Self {
        let error = message.error.as_ref();
        Self {
            id: id.to_owned(),
            tenant_id: tenant.to_string(),
            conversation_id: conversation_id.to_owned(),
            direction: Direction::System.as_str().into(),
            kind: MessageKind::System.as_str().into(),
            text: Some(message.text.clone()),
            status: DeliveryStatus::Delivered.as_str().into(),
            status_rank: DeliveryStatus::Delivered.rank(),
            error_code: error.map(|e| e.code.clone()),
            error_reason: error.map(|e| e.reason.clone()),
            error_hint: error.map(|e| e.hint.clone()),
            actor: Some(message.actor.clone()),
            event: Some(message.event.as_str().to_owned()),
            reason: message.reason.clone(),
            created_at: when.to_owned(),
            received_at: when.to_owned(),
            ..Self::default()
        }
    }
}

/// The put of a system message at `at` into a transaction (written with the change it
/// records, so neither lands without the other).
pub(super) fn system_put(
    table: &str,
    tenant: &TenantId,
    conversation_id: &str,
    at: &chrono::DateTime<chrono::Utc>,
    message: &SystemMessage,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, crate::Error> {
    let id = ulid::Ulid::new().to_string();
    let when = crate::domain::time::rfc3339(at);
    let record = MessageRecord::system(tenant, conversation_id, &when, &id, message);
    let key = crate::adapters::keys::message(tenant, conversation_id, &when, &id);
    let put = aws_sdk_dynamodb::types::Put::builder()
        .table_name(table)
        .set_item(Some(record.item(key)?))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(|e| super::internal("build put", e))?;
    Ok(aws_sdk_dynamodb::types::TransactWriteItem::builder()
        .put(put)
        .build())
}
