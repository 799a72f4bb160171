//! Customers as agents read and edit them, and the search index keys every customer write
//! keeps in step.
//!
//! The ingest and the send path write the customer blind (no read): the provider's profile
//! name, ids and times. An agent's PATCH writes beside them (`name_override`, `phone`,
//! `email`, `attributes`) and keeps a copy of the index sort keys it decides
//! (`name_override_key`, `phone_key`), which the blind writes copy into the index keys with
//! `if_not_exists`, so a new message never moves a customer off the name an agent gave.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{
    DynamoStore, Expr, TRANSACTION_ATTEMPTS, cancelled, conflict_backoff, internal, n,
    reason_codes, s, store_error, update,
};
use crate::Error;
use crate::adapters::keys;
use crate::domain::channel::ChannelType;
use crate::domain::conversation::conversation_of_customer;
use crate::domain::customer::{
    Change, Customer, CustomerPatch, CustomerQuery, is_customer_id, phone_of_wa_id,
};
use crate::domain::ids::TenantId;
use crate::domain::page::{Page, PageRequest};
use crate::domain::time::{parse_rfc3339, rfc3339};
use crate::ports::CustomerStore;

/// The agent's name for the customer (display name = this ?? `name`).
const NAME_OVERRIDE: &str = "name_override";
/// GSI7 sort key of the agent's name, copied into `gsi7sk` by the blind writes.
const NAME_OVERRIDE_KEY: &str = "name_override_key";
/// The agent's phone (E.164).
const PHONE: &str = "phone";
/// GSI8 sort key of the agent's phone, copied into `gsi8sk` by the blind writes.
const PHONE_KEY: &str = "phone_key";
/// Bumped by every PATCH: the condition that makes a PATCH's read-merge-write atomic.
const PATCH_VERSION: &str = "patch_version";
/// The customer's labels version (see [`CustomerRecord::labels_version`]).
pub(super) const LABELS_VERSION: &str = "labels_version";
/// The agent's name for the customer, on the conversation item.
pub(super) const CONVERSATION_NAME_OVERRIDE: &str = "customer_name_override";

/// Sets the search index keys of a customer on a blind write (ingest, business-initiated
/// start): by name (the agent's name when it has one, else `profile_name`; a nameless
/// customer keeps the key it has), by provider id, and for a WhatsApp number by phone (the
/// agent's phone when it has one).
pub(super) fn index_keys(
    e: &mut Expr,
    tenant: &TenantId,
    customer_id: &str,
    external_id: &str,
    profile_name: Option<&str>,
    wa_id: Option<&str>,
) {
    e.set(keys::GSI7_PK, s(keys::customers_by_name(tenant)));
    let name_key = keys::customer_name_key(profile_name, customer_id);
    match profile_name {
        Some(_) => e.set_from_or(keys::GSI7_SK, NAME_OVERRIDE_KEY, s(name_key)),
        None => e.set_if_absent(keys::GSI7_SK, s(name_key)),
    };
    e.set(keys::GSI9_PK, s(keys::customers_by_external_id(tenant)))
        .set(
            keys::GSI9_SK,
            s(keys::customer_external_key(external_id, customer_id)),
        );
    if let Some(phone) = wa_id.and_then(phone_of_wa_id) {
        e.set(keys::GSI8_PK, s(keys::customers_by_phone(tenant)))
            .set_from_or(
                keys::GSI8_SK,
                PHONE_KEY,
                s(keys::customer_phone_key(phone.digits(), customer_id)),
            );
    }
}

/// A customer item as stored.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct CustomerRecord {
    pub id: String,
    channel_id: String,
    channel_type: String,
    external_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_override: Option<String>,
    #[serde(default)]
    wa_id: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    last_seen_at: Option<String>,
    #[serde(default)]
    pub gsi7sk: Option<String>,
    #[serde(default)]
    pub gsi8sk: Option<String>,
    #[serde(default)]
    pub gsi9sk: Option<String>,
    #[serde(default)]
    patch_version: u64,
    /// Bumped by every change of `labels` (written with the conversation's).
    #[serde(default)]
    labels_version: u64,
}

impl CustomerRecord {
    pub(super) fn decode(item: &HashMap<String, AttributeValue>) -> Result<Self, Error> {
        serde_dynamo::from_item(item.clone()).map_err(|e| internal("decode customer", e))
    }

    /// The customer's conversation (one per channel and provider id).
    fn conversation(&self) -> Result<String, Error> {
        conversation_of_customer(&self.id)
            .ok_or_else(|| Error::Internal(format!("stored customer {} has a bad id", self.id)))
    }

    pub(super) fn view(&self) -> Result<Customer, Error> {
        let channel = ChannelType::parse(&self.channel_type).ok_or_else(|| {
            Error::Internal(format!(
                "stored customer {} has a bad channel_type",
                self.id
            ))
        })?;
        Ok(Customer {
            id: self.id.clone(),
            name: self.name_override.clone().or_else(|| self.name.clone()),
            profile_name: self.name.clone(),
            external_id: self.external_id.clone(),
            channel,
            channel_id: self.channel_id.clone(),
            phone: self.phone.clone().or_else(|| {
                self.wa_id
                    .as_deref()
                    .and_then(phone_of_wa_id)
                    .map(|p| p.as_str().to_owned())
            }),
            email: self.email.clone(),
            labels: self.labels.clone(),
            attributes: self.attributes.clone(),
            created_at: self.created_at.as_deref().and_then(parse_rfc3339),
            last_inbound_at: self.last_seen_at.as_deref().and_then(parse_rfc3339),
            conversation_ids: vec![self.conversation()?],
        })
    }
}

/// The customer's condition that `attribute` still holds what was read.
fn unchanged(e: &mut Expr, attribute: &str, read: Option<&str>) -> String {
    let name = e.name(attribute);
    match read {
        Some(v) => {
            let value = e.value(s(v));
            format!("{name} = {value}")
        }
        None => format!("attribute_not_exists({name})"),
    }
}

/// The writes of one PATCH over the customer as read, and the customer they leave.
fn patch_writes(
    table: &str,
    tenant: &TenantId,
    read: &CustomerRecord,
    patch: &CustomerPatch,
    at: DateTime<Utc>,
) -> Result<
    (
        Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
        CustomerRecord,
    ),
    Error,
> {
    let id = read.id.as_str();
    let mut after = read.clone();
    let mut e = Expr::default();
    let pk = e.name(keys::PK);
    let mut conditions = vec![format!("attribute_exists({pk})")];
    let version = e.name(PATCH_VERSION);
    conditions.push(match read.patch_version {
        0 => format!("attribute_not_exists({version})"),
        v => {
            let value = e.value(n(v));
            format!("{version} = {value}")
        }
    });
    // The labels as read get the new name key below: a label put on meanwhile makes this
    // PATCH read again.
    if patch.name != Change::Keep {
        let labels = e.name(LABELS_VERSION);
        conditions.push(match read.labels_version {
            0 => format!("attribute_not_exists({labels})"),
            v => {
                let value = e.value(n(v));
                format!("{labels} = {value}")
            }
        });
    }
    after.patch_version = read.patch_version + 1;
    e.set(PATCH_VERSION, n(after.patch_version))
        .set("updated_at", s(rfc3339(&at)));

    match &patch.name {
        Change::Keep => {}
        Change::Set(name) => {
            let key = keys::customer_name_key(Some(name), id);
            e.set(NAME_OVERRIDE, s(name))
                .set(NAME_OVERRIDE_KEY, s(&key))
                .set(keys::GSI7_PK, s(keys::customers_by_name(tenant)))
                .set(keys::GSI7_SK, s(key));
            after.name_override = Some(name.clone());
        }
        Change::Clear => {
            // Back to the profile name as read: the ingest must not have changed it since.
            conditions.push(unchanged(&mut e, "name", read.name.as_deref()));
            e.remove(NAME_OVERRIDE)
                .remove(NAME_OVERRIDE_KEY)
                .set(keys::GSI7_PK, s(keys::customers_by_name(tenant)))
                .set(
                    keys::GSI7_SK,
                    s(keys::customer_name_key(read.name.as_deref(), id)),
                );
            after.name_override = None;
        }
    }
    match &patch.email {
        Change::Keep => {}
        Change::Set(email) => {
            e.set("email", s(email.as_str()));
            after.email = Some(email.as_str().to_owned());
        }
        Change::Clear => {
            e.remove("email");
            after.email = None;
        }
    }
    match &patch.phone {
        Change::Keep => {}
        Change::Set(phone) => {
            let key = keys::customer_phone_key(phone.digits(), id);
            e.set(PHONE, s(phone.as_str()))
                .set(PHONE_KEY, s(&key))
                .set(keys::GSI8_PK, s(keys::customers_by_phone(tenant)))
                .set(keys::GSI8_SK, s(key));
            after.phone = Some(phone.as_str().to_owned());
        }
        Change::Clear => {
            // Back to the WhatsApp number as read, if any.
            conditions.push(unchanged(&mut e, "wa_id", read.wa_id.as_deref()));
            e.remove(PHONE).remove(PHONE_KEY);
            match read.wa_id.as_deref().and_then(phone_of_wa_id) {
                Some(wa) => {
                    e.set(keys::GSI8_PK, s(keys::customers_by_phone(tenant)))
                        .set(keys::GSI8_SK, s(keys::customer_phone_key(wa.digits(), id)));
                }
                None => {
                    e.remove(keys::GSI8_PK).remove(keys::GSI8_SK);
                }
            }
            after.phone = None;
        }
    }
    if !patch.attributes.is_empty() {
        let merged = patch.merged_attributes(&read.attributes)?;
        if merged.is_empty() {
            e.remove("attributes");
        } else {
            let map = merged.iter().map(|(k, v)| (k.clone(), s(v))).collect();
            e.set("attributes", AttributeValue::M(map));
        }
        after.attributes = merged;
    }

    let mut writes = vec![update(
        table,
        keys::customer(tenant, id),
        &e,
        Some(conditions.join(" AND ")),
    )?];
    // The conversation shows the agent's name too (its list reads no customer).
    if patch.name != Change::Keep {
        let mut c = Expr::default();
        match &patch.name {
            Change::Set(name) => c.set(CONVERSATION_NAME_OVERRIDE, s(name)),
            _ => c.remove(CONVERSATION_NAME_OVERRIDE),
        };
        // A label change that read the old name places its membership with it: moving the
        // version makes it read again.
        c.add("views_version", n(1));
        let pk = c.name(keys::PK);
        writes.push(update(
            table,
            keys::conversation(tenant, &read.conversation()?),
            &c,
            Some(format!("attribute_exists({pk})")),
        )?);
        // Customers by label list by name: each membership takes the new name key.
        let key =
            keys::customer_name_key(after.name_override.as_deref().or(read.name.as_deref()), id);
        let conversation = read.conversation()?;
        for label in &read.labels {
            let mut m = Expr::default();
            m.set(keys::GSI7_SK, s(&key));
            let pk = m.name(keys::PK);
            writes.push(update(
                table,
                keys::label_member(tenant, &conversation, label),
                &m,
                Some(format!("attribute_exists({pk})")),
            )?);
        }
    }
    Ok((writes, after))
}

impl DynamoStore {
    /// Customers by id, read consistently (100 per request), by id; absent ids are left out.
    pub(super) async fn customers_by_id(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<HashMap<String, CustomerRecord>, Error> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted = ids.iter().map(|id| keys::customer(tenant, id)).collect();
        let items = self
            .batch_get_consistent(wanted, true, "read customers")
            .await?;
        items
            .iter()
            .map(|item| CustomerRecord::decode(item).map(|r| (r.id.clone(), r)))
            .collect()
    }

    async fn customer_record(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<CustomerRecord>, Error> {
        if !is_customer_id(id) {
            return Ok(None);
        }
        self.get_consistent(keys::customer(tenant, id), "get customer")
            .await?
            .as_ref()
            .map(CustomerRecord::decode)
            .transpose()
    }
}

impl CustomerStore for DynamoStore {
    async fn get_customer(&self, tenant: &TenantId, id: &str) -> Result<Option<Customer>, Error> {
        self.customer_record(tenant, id)
            .await?
            .map(|r| r.view())
            .transpose()
    }

    async fn patch_customer(
        &self,
        tenant: &TenantId,
        id: &str,
        patch: &CustomerPatch,
        at: DateTime<Utc>,
    ) -> Result<Option<Customer>, Error> {
        for attempt in 0..TRANSACTION_ATTEMPTS {
            let Some(read) = self.customer_record(tenant, id).await? else {
                return Ok(None);
            };
            if patch.is_empty() {
                return read.view().map(Some);
            }
            let (writes, after) = patch_writes(&self.table, tenant, &read, patch, at)?;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes))
                .send()
                .await;
            let err = match result {
                Ok(_) => return after.view().map(Some),
                Err(err) => err.into_service_error(),
            };
            match err {
                TransactWriteItemsError::TransactionCanceledException(cancel) => {
                    let codes = reason_codes(cancel.cancellation_reasons());
                    // Another PATCH (or the ingest, for what a clear goes back to) came
                    // between the read and the write: read again and merge again.
                    if codes.first() == Some(&"ConditionalCheckFailed") {
                        conflict_backoff(attempt).await;
                        continue;
                    }
                    if codes.get(1) == Some(&"ConditionalCheckFailed") {
                        return Err(Error::Internal(format!(
                            "customer {id} has no conversation item"
                        )));
                    }
                    if codes.iter().skip(2).any(|c| *c == "ConditionalCheckFailed") {
                        // A label came off meanwhile: read the labels again.
                        conflict_backoff(attempt).await;
                        continue;
                    }
                    if codes.contains(&"TransactionConflict") {
                        conflict_backoff(attempt).await;
                        continue;
                    }
                    return Err(cancelled("patch customer", &codes));
                }
                TransactWriteItemsError::TransactionInProgressException(_) => {
                    conflict_backoff(attempt).await;
                }
                other => return Err(store_error("patch customer", other)),
            }
        }
        Err(Error::Internal(
            "patch customer: kept conflicting with other writes".into(),
        ))
    }

    async fn search_customers(
        &self,
        tenant: &TenantId,
        query: &CustomerQuery,
        page: &PageRequest,
    ) -> Result<Page<Customer>, Error> {
        super::customer_search::search(self, tenant, query, page).await
    }
}
