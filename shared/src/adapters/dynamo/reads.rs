//! An agent reading a conversation: its unread count back to 0.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValue;

use super::conversations::conversation_from;
use super::{DynamoStore, Expr, internal, n, s};
use crate::Error;
use crate::adapters::keys;
use crate::domain::conversation::ConversationState;
use crate::domain::ids::TenantId;
use crate::ports::ReadMarker;

/// Longest conversation id (`cv_`, a channel id, `_`, 24 hex digits).
const MAX_CONVERSATION_ID: usize = 64;

impl ReadMarker for DynamoStore {
    async fn mark_conversation_read(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ConversationState>, Error> {
        if !id.starts_with("cv_") || id.len() > MAX_CONVERSATION_ID || id.contains('#') {
            return Ok(None);
        }
        let key = keys::conversation(tenant, id);
        let mut e = Expr::default();
        e.set("unread_count", n(0));
        // The key already names the tenant; the stored tenant is checked too, so the
        // condition holds wherever the conversation's partition is.
        let (pk, owner, tenant_value) = (
            e.name(keys::PK),
            e.name("tenant_id"),
            e.value(s(tenant.as_str())),
        );
        let condition = format!("attribute_exists({pk}) AND {owner} = {tenant_value}");
        let result = self
            .update_item(&key, &e)
            .condition_expression(condition)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result.map_err(aws_sdk_dynamodb::error::SdkError::into_service_error) {
            Ok(out) => out.attributes.as_ref().map(conversation_from).transpose(),
            Err(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(None),
            Err(other) => Err(internal("mark conversation read", other)),
        }
    }
}
