//! What FAQ rendering reads of a customer's own item: only its contact attributes.

use super::{DynamoStore, get_s, internal, s};
use crate::Error;
use crate::adapters::keys;
use crate::domain::channel::ChannelType;
use crate::domain::faq::CustomerContact;
use crate::domain::ids::TenantId;
use crate::ports::CustomerContacts;

/// The attributes read (a projection: nothing else of the customer leaves the table).
const ATTRIBUTES: [&str; 5] = ["name", "phone", "wa_id", "external_id", "channel_type"];

impl CustomerContacts for DynamoStore {
    async fn customer_contact(
        &self,
        tenant: &TenantId,
        customer_id: &str,
    ) -> Result<Option<CustomerContact>, Error> {
        let key = keys::customer(tenant, customer_id);
        let mut request = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, s(key.pk))
            .key(keys::SK, s(key.sk))
            .consistent_read(true);
        let mut projection = Vec::with_capacity(ATTRIBUTES.len());
        for (i, name) in ATTRIBUTES.iter().enumerate() {
            let alias = format!("#a{i}");
            request = request.expression_attribute_names(&alias, *name);
            projection.push(alias);
        }
        let out = request
            .projection_expression(projection.join(", "))
            .send()
            .await
            .map_err(|e| internal("read customer contact", e))?;
        Ok(out.item.map(|item| {
            let text = |name: &str| get_s(&item, name).map(str::to_owned);
            CustomerContact {
                name: text("name"),
                phone: text("phone"),
                wa_id: text("wa_id"),
                external_id: text("external_id"),
                channel_type: get_s(&item, "channel_type").and_then(ChannelType::parse),
            }
        }))
    }
}
