//! Tenant settings: one item in the tenant's partition, its fields stored as the API
//! shows them and read back through the same parser. Writes set only those fields, so
//! attributes another feature keeps on the item survive them.

use super::{DynamoStore, Expr, internal, s};
use crate::Error;
use crate::adapters::keys;
use crate::domain::ids::TenantId;
use crate::domain::settings::{FIELDS, TenantSettings};
use crate::domain::time::rfc3339;
use crate::ports::{SettingsReader, SettingsWriter};

impl SettingsReader for DynamoStore {
    async fn settings(&self, tenant: &TenantId) -> Result<TenantSettings, Error> {
        let item = self
            .get_consistent(keys::settings(tenant), "read settings")
            .await?;
        settings_from(tenant, item)
    }
}

/// The settings in a stored item; the defaults when there is none.
pub(super) fn settings_from(
    tenant: &TenantId,
    item: Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
) -> Result<TenantSettings, Error> {
    let Some(item) = item else {
        return Ok(TenantSettings::default());
    };
    let mut value: serde_json::Value =
        serde_dynamo::from_item(item).map_err(|e| internal("decode settings", e))?;
    if let Some(fields) = value.as_object_mut() {
        fields.retain(|name, _| FIELDS.contains(&name.as_str()));
    }
    TenantSettings::parse(&value)
        .map_err(|e| Error::Internal(format!("stored settings of {tenant} do not parse: {e}")))
}

impl SettingsWriter for DynamoStore {
    async fn put_settings(
        &self,
        tenant: &TenantId,
        settings: &TenantSettings,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Error> {
        let hours = serde_dynamo::to_attribute_value(&settings.business_hours)
            .map_err(|e| internal("encode business hours", e))?;
        let mut e = Expr::default();
        e.set(keys::ENTITY, s("settings"))
            .set("time_zone", s(settings.time_zone.name()))
            .set("business_hours", hours)
            .set(
                "auto_assign",
                aws_sdk_dynamodb::types::AttributeValue::Bool(settings.auto_assign),
            )
            .set("updated_at", s(rfc3339(&at)));
        match &settings.business_name {
            Some(name) => e.set("business_name", s(name)),
            None => e.remove("business_name"),
        };
        let key = keys::settings(tenant);
        self.update_item(&key, &e)
            .send()
            .await
            .map_err(|e| super::store_error("store settings", e.into_service_error()))?;
        Ok(())
    }
}
