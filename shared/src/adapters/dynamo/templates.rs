//! WhatsApp templates, one item each in the tenant's partition, plus a pointer from Meta's
//! template id (status webhooks carry only that id).

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

use super::{DynamoStore, Expr, get_s, internal, key_item, s};
use crate::Error;
use crate::adapters::keys;
use crate::domain::ids::TenantId;
use crate::domain::page::{Page, PageRequest};
use crate::domain::template::{Template, TemplateStatus};
use crate::ports::TemplateStore;

fn decode(
    item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> Result<Template, Error> {
    serde_dynamo::from_item(item).map_err(|e| internal("decode template", e))
}

impl TemplateStore for DynamoStore {
    async fn put_template(&self, tenant: &TenantId, template: &Template) -> Result<(), Error> {
        let mut item: std::collections::HashMap<_, _> =
            serde_dynamo::to_item(template).map_err(|e| internal("encode template", e))?;
        item.extend(key_item(keys::template(tenant, &template.id)));
        item.insert(keys::ENTITY.into(), s("template"));
        let put = |item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(|e| internal("build put", e))
        };
        let mut writes = vec![put(item)?];
        if let Some(pid) = &template.provider_template_id {
            let mut pointer = key_item(keys::provider_template(pid));
            pointer.insert(keys::ENTITY.into(), s("provider_template"));
            pointer.insert("tenant_id".into(), s(tenant.as_str()));
            pointer.insert("template_id".into(), s(&template.id));
            writes.push(put(pointer)?);
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
            .map_err(|e| internal("store template", e))?;
        Ok(())
    }

    async fn get_template(&self, tenant: &TenantId, id: &str) -> Result<Option<Template>, Error> {
        self.get_consistent(keys::template(tenant, id), "read template")
            .await?
            .map(decode)
            .transpose()
    }

    async fn list_templates(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<Template>, Error> {
        self.tenant_page(
            tenant,
            keys::TEMPLATE_PREFIX,
            page,
            "list templates",
            decode,
        )
        .await
    }

    async fn set_template_status(
        &self,
        provider_template_id: &str,
        status: TemplateStatus,
        reason: Option<&str>,
    ) -> Result<bool, Error> {
        let Some(pointer) = self
            .get_consistent(
                keys::provider_template(provider_template_id),
                "read template pointer",
            )
            .await?
        else {
            return Ok(false);
        };
        let (Some(tenant), Some(id)) =
            (get_s(&pointer, "tenant_id"), get_s(&pointer, "template_id"))
        else {
            return Ok(false);
        };
        let tenant = TenantId::parse(tenant)?;
        let key = keys::template(&tenant, id);
        let mut e = Expr::default();
        e.set("status", s(status.as_str()));
        match reason {
            Some(r) => e.set("reason", s(r)),
            None => e.remove("reason"),
        };
        let pk = e.name(keys::PK);
        self.conditional_update(
            key,
            &e,
            &format!("attribute_exists({pk})"),
            "update template status",
        )
        .await
    }

    async fn delete_template(&self, tenant: &TenantId, id: &str) -> Result<(), Error> {
        let Some(template) = self.get_template(tenant, id).await? else {
            return Ok(());
        };
        let delete = |key: keys::Key| {
            Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key_item(key)))
                .build()
                .map(|d| TransactWriteItem::builder().delete(d).build())
                .map_err(|e| internal("build delete", e))
        };
        let mut writes = vec![delete(keys::template(tenant, id))?];
        if let Some(pid) = &template.provider_template_id {
            writes.push(delete(keys::provider_template(pid))?);
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
            .map_err(|e| internal("delete template", e))?;
        Ok(())
    }
}
