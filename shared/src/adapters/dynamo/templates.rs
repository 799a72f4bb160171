//! WhatsApp templates, one item each in the tenant's partition.

use super::{DynamoStore, internal, key_item, s};
use crate::Error;
use crate::adapters::keys;
use crate::domain::ids::TenantId;
use crate::domain::page::{Page, PageRequest};
use crate::domain::template::Template;
use crate::ports::TemplateStore;

impl TemplateStore for DynamoStore {
    async fn put_template(&self, tenant: &TenantId, template: &Template) -> Result<(), Error> {
        let mut item: std::collections::HashMap<_, _> =
            serde_dynamo::to_item(template).map_err(|e| internal("encode template", e))?;
        item.extend(key_item(keys::template(tenant, &template.id)));
        item.insert(keys::ENTITY.into(), s("template"));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| internal("store template", e))?;
        Ok(())
    }

    async fn get_template(&self, tenant: &TenantId, id: &str) -> Result<Option<Template>, Error> {
        self.get_consistent(keys::template(tenant, id), "read template")
            .await?
            .map(|item| serde_dynamo::from_item(item).map_err(|e| internal("decode template", e)))
            .transpose()
    }

    async fn list_templates(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<Template>, Error> {
        let (items, next_cursor) = self
            .query_prefix(
                keys::tenant(tenant).pk,
                keys::TEMPLATE_PREFIX,
                page,
                false,
                "list templates",
            )
            .await?;
        let items = items
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).map_err(|e| internal("decode template", e)))
            .collect::<Result<Vec<Template>, _>>()?;
        Ok(Page { items, next_cursor })
    }

    async fn delete_template(&self, tenant: &TenantId, id: &str) -> Result<(), Error> {
        let key = keys::template(tenant, id);
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(keys::PK, s(key.pk))
            .key(keys::SK, s(key.sk))
            .send()
            .await
            .map_err(|e| internal("delete template", e))?;
        Ok(())
    }
}
