//! The label catalog: one item per label in the tenant's partition, unique by name.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{DynamoStore, get_s, key_item, s, store_error};
use crate::Error;
use crate::adapters::keys;
use crate::domain::ids::TenantId;
use crate::domain::label::{Label, LabelColor, LabelName};
use crate::domain::page::{Page, PageRequest};
use crate::domain::time::{parse_rfc3339, rfc3339};
use crate::ports::{LabelCatalog, LabelStore};

fn label_from(item: &HashMap<String, AttributeValue>) -> Result<Label, Error> {
    let corrupt = || Error::Internal("a stored label has a bad name, color or time".into());
    Ok(Label {
        name: get_s(item, "name")
            .and_then(|n| LabelName::parse(n).ok())
            .ok_or_else(corrupt)?,
        color: get_s(item, "color")
            .and_then(|c| LabelColor::parse(c).ok())
            .ok_or_else(corrupt)?,
        created_at: get_s(item, "created_at")
            .and_then(parse_rfc3339)
            .ok_or_else(corrupt)?,
    })
}

impl LabelCatalog for DynamoStore {
    async fn get_label(&self, tenant: &TenantId, name: &LabelName) -> Result<Option<Label>, Error> {
        self.get_consistent(keys::label(tenant, name.as_str()), "get label")
            .await?
            .as_ref()
            .map(label_from)
            .transpose()
    }
}

impl LabelStore for DynamoStore {
    async fn create_label(&self, tenant: &TenantId, label: &Label) -> Result<(), Error> {
        let mut item = key_item(keys::label(tenant, label.name.as_str()));
        item.insert(keys::ENTITY.into(), s("label"));
        item.insert("tenant_id".into(), s(tenant.as_str()));
        item.insert("name".into(), s(label.name.as_str()));
        item.insert("color".into(), s(label.color.as_str()));
        item.insert("created_at".into(), s(rfc3339(&label.created_at)));
        let result = self.put_new(item).send().await;
        match result.map_err(aws_sdk_dynamodb::error::SdkError::into_service_error) {
            Ok(_) => Ok(()),
            Err(PutItemError::ConditionalCheckFailedException(_)) => Err(Error::conflict(
                "duplicate_label",
                format!("the tenant has a label named '{}' already", label.name),
            )),
            Err(other) => Err(store_error("create label", other)),
        }
    }

    async fn list_labels(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<Label>, Error> {
        self.tenant_page(tenant, keys::LABEL_PREFIX, page, "list labels", |item| {
            label_from(&item)
        })
        .await
    }
}
