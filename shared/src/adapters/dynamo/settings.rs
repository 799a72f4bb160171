//! Tenant settings: one item in the tenant's partition, its fields stored as the API
//! shows them and read back through the same parser.

use super::{DynamoStore, internal, key_item, s};
use crate::Error;
use crate::adapters::keys;
use crate::domain::ids::TenantId;
use crate::domain::settings::TenantSettings;
use crate::domain::time::rfc3339;
use crate::ports::{SettingsReader, SettingsWriter};

/// Attributes of the item that are not settings fields.
const BOOKKEEPING: [&str; 4] = [keys::PK, keys::SK, keys::ENTITY, "updated_at"];

impl SettingsReader for DynamoStore {
    async fn settings(&self, tenant: &TenantId) -> Result<TenantSettings, Error> {
        let Some(item) = self
            .get_consistent(keys::settings(tenant), "read settings")
            .await?
        else {
            return Ok(TenantSettings::default());
        };
        let mut value: serde_json::Value =
            serde_dynamo::from_item(item).map_err(|e| internal("decode settings", e))?;
        if let Some(fields) = value.as_object_mut() {
            for name in BOOKKEEPING {
                fields.remove(name);
            }
        }
        TenantSettings::parse(&value)
            .map_err(|e| Error::Internal(format!("stored settings of {tenant} do not parse: {e}")))
    }
}

impl SettingsWriter for DynamoStore {
    async fn put_settings(
        &self,
        tenant: &TenantId,
        settings: &TenantSettings,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Error> {
        let mut item: std::collections::HashMap<_, _> =
            serde_dynamo::to_item(settings).map_err(|e| internal("encode settings", e))?;
        item.extend(key_item(keys::settings(tenant)));
        item.insert(keys::ENTITY.into(), s("settings"));
        item.insert("updated_at".into(), s(rfc3339(&at)));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| super::store_error("store settings", e.into_service_error()))?;
        Ok(())
    }
}
