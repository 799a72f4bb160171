//! The agent directory: one item per agent in the tenant's partition.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::Deserialize;

use super::{DynamoStore, Expr, internal, s};
use crate::Error;
use crate::adapters::keys;
use crate::domain::agent::{Agent, AgentProfile, AgentRef, role_name};
use crate::domain::auth::Role;
use crate::domain::ids::TenantId;
use crate::domain::page::{Page, PageRequest};
use crate::domain::time::{parse_rfc3339, rfc3339};
use crate::ports::{AgentDirectory, AgentStore};

#[derive(Debug, Deserialize)]
struct AgentRecord {
    id: String,
    name: String,
    role: String,
    created_at: String,
}

fn decode(item: HashMap<String, AttributeValue>) -> Result<Agent, Error> {
    let r: AgentRecord = serde_dynamo::from_item(item).map_err(|e| internal("decode agent", e))?;
    let corrupt = |what: &str| Error::Internal(format!("stored agent has a bad {what}"));
    Ok(Agent {
        id: AgentRef::parse(&r.id).map_err(|_| corrupt("id"))?,
        role: Role::parse(&r.role).ok_or_else(|| corrupt("role"))?,
        created_at: parse_rfc3339(&r.created_at).ok_or_else(|| corrupt("created_at"))?,
        name: r.name,
    })
}

impl AgentDirectory for DynamoStore {
    async fn get_agent(&self, tenant: &TenantId, id: &str) -> Result<Option<Agent>, Error> {
        let Ok(id) = AgentRef::parse(id) else {
            return Ok(None);
        };
        self.get_consistent(keys::agent(tenant, id.as_str()), "read agent")
            .await?
            .map(decode)
            .transpose()
    }
}

impl AgentStore for DynamoStore {
    async fn put_agent(
        &self,
        tenant: &TenantId,
        id: &AgentRef,
        profile: &AgentProfile,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Agent, Error> {
        let key = keys::agent(tenant, id.as_str());
        let now = rfc3339(&at);
        let mut e = Expr::default();
        e.set(keys::ENTITY, s("agent"))
            .set("id", s(id.as_str()))
            .set("name", s(&profile.name))
            .set("role", s(role_name(profile.role)))
            .set("updated_at", s(&now))
            .set_if_absent("created_at", s(&now));
        let out = self
            .update_item(&key, &e)
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| super::store_error("store agent", e.into_service_error()))?;
        decode(out.attributes.unwrap_or_default())
    }

    async fn list_agents(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<Agent>, Error> {
        self.tenant_page(tenant, keys::AGENT_PREFIX, page, "list agents", decode)
            .await
    }

    async fn delete_agent(&self, tenant: &TenantId, id: &AgentRef) -> Result<bool, Error> {
        let key = keys::agent(tenant, id.as_str());
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(keys::PK, s(key.pk))
            .key(keys::SK, s(key.sk))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", keys::PK)
            .send()
            .await;
        match result.map_err(aws_sdk_dynamodb::error::SdkError::into_service_error) {
            Ok(_) => Ok(true),
            Err(DeleteItemError::ConditionalCheckFailedException(_)) => Ok(false),
            Err(other) => Err(internal("delete agent", other)),
        }
    }
}
