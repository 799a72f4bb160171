//! Payment settings, products and payments in the table (SPEC §11).
//!
//! - The payment settings, secrets included, are one item in a partition of their own
//!   (`TENANT#<t>#PAYMENT` / `SETTINGS`), with the product count that makes them ready.
//! - Products are items of the tenant's partition (`PRODUCT#<id>`), counted on the
//!   settings item in the same transaction.
//! - A payment has its own partition (read by id), listed per customer through a keys-only
//!   index sorted by creation; each Stripe event applied to it is an item beside it
//!   (`EVENT#<evt id>`), written once in the transaction that moves the payment, so a
//!   re-delivered event changes nothing.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use chrono::{DateTime, Duration, Utc};

use super::index_page::IndexQuery;
use super::settings::settings_from;
use super::system::system_put;
use super::{DynamoStore, Expr, decode_cursor, get_s, internal, n, s, store_error, update};
use crate::Error;
use crate::adapters::keys;
use crate::domain::channel::Secret;
use crate::domain::ids::TenantId;
use crate::domain::page::{Page, PageRequest};
use crate::domain::payment::{
    Currency, MAX_PRODUCTS, Payment, PaymentSettings, PaymentStatus, Product,
};
use crate::domain::system::SystemMessage;
use crate::domain::time::rfc3339;
use crate::ports::{PaymentInputs, PaymentSettlement, PaymentStore};

type Item = HashMap<String, AttributeValue>;

/// How long an applied event's id is kept (Stripe retries a webhook for up to 3 days).
const EVENT_KEPT_DAYS: i64 = 30;

fn settings_of(item: Option<&Item>) -> PaymentSettings {
    let Some(item) = item else {
        return PaymentSettings::default();
    };
    PaymentSettings {
        provider: get_s(item, "provider").unwrap_or("stripe").to_owned(),
        currency: get_s(item, "currency").and_then(|c| Currency::parse(c).ok()),
        secret_key: get_s(item, "secret_key").map(Secret::new),
        webhook_secret: get_s(item, "webhook_secret").map(Secret::new),
        product_count: item
            .get("product_count")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    }
}

fn product_item(tenant: &TenantId, product: &Product) -> Result<Item, Error> {
    let mut item: Item =
        serde_dynamo::to_item(product).map_err(|e| internal("encode product", e))?;
    let key = keys::product(tenant, &product.id);
    item.insert(keys::PK.into(), s(key.pk));
    item.insert(keys::SK.into(), s(key.sk));
    item.insert(keys::ENTITY.into(), s("product"));
    Ok(item)
}

fn product_of(item: &Item) -> Result<Product, Error> {
    let mut item = item.clone();
    for k in [keys::PK, keys::SK, keys::ENTITY] {
        item.remove(k);
    }
    serde_dynamo::from_item(item).map_err(|e| internal("decode product", e))
}

fn payment_item(tenant: &TenantId, payment: &Payment) -> Result<Item, Error> {
    let mut item: Item =
        serde_dynamo::to_item(payment).map_err(|e| internal("encode payment", e))?;
    item.retain(|_, v| !matches!(v, AttributeValue::Null(_)));
    let key = keys::payment(tenant, &payment.id);
    item.insert(keys::PK.into(), s(key.pk));
    item.insert(keys::SK.into(), s(key.sk));
    item.insert(keys::ENTITY.into(), s("payment"));
    item.insert(
        keys::GSI1_PK.into(),
        s(keys::payments_of_customer(tenant, &payment.customer_id)),
    );
    item.insert(
        keys::GSI1_SK.into(),
        s(keys::scheduled_order(&payment.created_at, &payment.id)),
    );
    Ok(item)
}

fn payment_of(item: &Item) -> Result<Payment, Error> {
    let mut item = item.clone();
    for k in [
        keys::PK,
        keys::SK,
        keys::ENTITY,
        keys::GSI1_PK,
        keys::GSI1_SK,
    ] {
        item.remove(k);
    }
    serde_dynamo::from_item(item).map_err(|e| internal("decode payment", e))
}

fn put(table: &str, item: Item, condition: &str) -> Result<TransactWriteItem, Error> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(condition)
        .build()
        .map_err(|e| internal("build put", e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn failed(codes: &[String], i: usize) -> bool {
    codes.get(i).is_some_and(|c| c == "ConditionalCheckFailed")
}

impl PaymentStore for DynamoStore {
    async fn payment_settings(&self, tenant: &TenantId) -> Result<PaymentSettings, Error> {
        let item = self
            .get_consistent(keys::payment_settings(tenant), "read payment settings")
            .await?;
        Ok(settings_of(item.as_ref()))
    }

    async fn put_payment_settings(
        &self,
        tenant: &TenantId,
        settings: &PaymentSettings,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut e = Expr::default();
        e.set(keys::ENTITY, s("payment_settings"))
            .set("provider", s(&settings.provider))
            .set("updated_at", s(rfc3339(&at)));
        if let Some(c) = settings.currency {
            e.set("currency", s(c.code()));
        }
        if let Some(k) = &settings.secret_key {
            e.set("secret_key", s(k.expose()));
        }
        if let Some(k) = &settings.webhook_secret {
            e.set("webhook_secret", s(k.expose()));
        }
        self.update_item(&keys::payment_settings(tenant), &e)
            .send()
            .await
            .map_err(|e| store_error("store payment settings", e.into_service_error()))?;
        Ok(())
    }

    async fn products(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<Product>, Error> {
        self.tenant_page(
            tenant,
            keys::PRODUCT_PREFIX,
            page,
            "list products",
            |item| product_of(&item),
        )
        .await
    }

    async fn create_product(&self, tenant: &TenantId, product: &Product) -> Result<(), Error> {
        let mut e = Expr::default();
        e.add("product_count", n(1))
            .set(keys::ENTITY, s("payment_settings"));
        let count = e.name("product_count");
        let max = e.value(n(MAX_PRODUCTS));
        let items = vec![
            put(
                &self.table,
                product_item(tenant, product)?,
                "attribute_not_exists(pk)",
            )?,
            update(
                &self.table,
                keys::payment_settings(tenant),
                &e,
                Some(format!("attribute_not_exists({count}) OR {count} < {max}")),
            )?,
        ];
        match self.transact_conditional(items, "create product").await? {
            None => Ok(()),
            Some(codes) if failed(&codes, 1) => Err(Error::validation(
                "too_many_products",
                format!("a tenant has at most {MAX_PRODUCTS} products"),
            )),
            Some(codes) => Err(Error::Internal(format!(
                "create product refused: {codes:?}"
            ))),
        }
    }

    async fn replace_product(&self, tenant: &TenantId, product: &Product) -> Result<bool, Error> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(product_item(tenant, product)?))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match result.map_err(aws_sdk_dynamodb::error::SdkError::into_service_error) {
            Ok(_) => Ok(true),
            Err(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
            Err(other) => Err(store_error("replace product", other)),
        }
    }

    async fn get_product(&self, tenant: &TenantId, id: &str) -> Result<Option<Product>, Error> {
        self.get_consistent(keys::product(tenant, id), "read product")
            .await?
            .as_ref()
            .map(product_of)
            .transpose()
    }

    async fn delete_product(&self, tenant: &TenantId, id: &str) -> Result<bool, Error> {
        let key = keys::product(tenant, id);
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(keys::PK, s(key.pk))
            .key(keys::SK, s(key.sk))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| internal("build delete", e))?;
        let mut e = Expr::default();
        e.add("product_count", n(-1));
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            update(
                &self.table,
                keys::payment_settings(tenant),
                &e,
                Some("attribute_exists(pk)".to_owned()),
            )?,
        ];
        match self.transact_conditional(items, "delete product").await? {
            None => Ok(true),
            Some(codes) if failed(&codes, 0) => Ok(false),
            Some(codes) => Err(Error::Internal(format!(
                "delete product refused: {codes:?}"
            ))),
        }
    }

    async fn payment_inputs(
        &self,
        tenant: &TenantId,
        product_ids: &[String],
        payment_id: &str,
    ) -> Result<PaymentInputs, Error> {
        let (payment_key, settings_key) = (keys::payment_settings(tenant), keys::settings(tenant));
        let existing_key = keys::payment(tenant, payment_id);
        let mut wanted = vec![
            payment_key.clone(),
            settings_key.clone(),
            existing_key.clone(),
        ];
        wanted.extend(product_ids.iter().map(|id| keys::product(tenant, id)));
        let found = self
            .batch_get_consistent(wanted, true, "read payment inputs")
            .await?;
        let is = |i: &Item, k: &keys::Key| {
            get_s(i, keys::PK) == Some(k.pk.as_str()) && get_s(i, keys::SK) == Some(k.sk.as_str())
        };
        let products = found
            .iter()
            .filter(|i| get_s(i, keys::ENTITY) == Some("product"))
            .map(product_of)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PaymentInputs {
            payment: settings_of(found.iter().find(|i| is(i, &payment_key))),
            settings: settings_from(tenant, found.iter().find(|i| is(i, &settings_key)).cloned())?,
            products,
            existing: found
                .iter()
                .find(|i| is(i, &existing_key))
                .map(payment_of)
                .transpose()?,
        })
    }

    async fn create_payment(
        &self,
        tenant: &TenantId,
        payment: &Payment,
        note: &SystemMessage,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let items = vec![
            put(
                &self.table,
                payment_item(tenant, payment)?,
                "attribute_not_exists(pk)",
            )?,
            system_put(&self.table, tenant, &payment.conversation_id, &at, note)?,
        ];
        match self.transact_conditional(items, "create payment").await? {
            None => Ok(true),
            Some(codes) if failed(&codes, 0) => Ok(false),
            Some(codes) => Err(Error::Internal(format!(
                "create payment refused: {codes:?}"
            ))),
        }
    }

    async fn get_payment(&self, tenant: &TenantId, id: &str) -> Result<Option<Payment>, Error> {
        self.get_consistent(keys::payment(tenant, id), "read payment")
            .await?
            .as_ref()
            .map(payment_of)
            .transpose()
    }

    async fn reserve_payment(
        &self,
        tenant: &TenantId,
        id: &str,
        request_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), Error> {
        let key = keys::payment(tenant, id);
        let kept = (expires_at + Duration::days(1)).timestamp();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(HashMap::from([
                (keys::PK.to_owned(), s(key.pk)),
                (keys::SK.to_owned(), s("RESERVE")),
                (keys::ENTITY.to_owned(), s("payment_reservation")),
                ("request_hash".to_owned(), s(request_hash)),
                ("link_expires_at".to_owned(), s(rfc3339(&expires_at))),
                (keys::EXPIRES_AT.to_owned(), n(kept)),
            ])))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match result.map_err(aws_sdk_dynamodb::error::SdkError::into_service_error) {
            Ok(_) => Ok((request_hash.to_owned(), expires_at)),
            Err(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(e)) => {
                let item = e.item.unwrap_or_default();
                let hash = get_s(&item, "request_hash").unwrap_or_default().to_owned();
                let at = get_s(&item, "link_expires_at")
                    .and_then(crate::domain::time::parse_rfc3339)
                    .unwrap_or(expires_at);
                Ok((hash, at))
            }
            Err(other) => Err(store_error("reserve payment", other)),
        }
    }

    async fn set_payment_message(
        &self,
        tenant: &TenantId,
        id: &str,
        message_id: &str,
    ) -> Result<(), Error> {
        self.record_link_message(
            keys::payment(tenant, id),
            message_id,
            "record payment message",
        )
        .await
    }

    async fn void_payment(
        &self,
        tenant: &TenantId,
        id: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut e = Expr::default();
        e.set("status", s(PaymentStatus::Expired.as_str()))
            .set("not_sent_reason", s(reason))
            .set("updated_at", s(rfc3339(&at)));
        let status = e.name("status");
        let open = e.value(s(PaymentStatus::Open.as_str()));
        self.conditional_update(
            keys::payment(tenant, id),
            &e,
            &format!("{status} = {open}"),
            "void payment",
        )
        .await?;
        Ok(())
    }

    async fn list_payments(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Payment>, Error> {
        let after = match &page.cursor {
            Some(c) => Some(decode_cursor(c, 1, "")?.remove(0)),
            None => None,
        };
        let query = IndexQuery {
            index: keys::GSI1,
            attribute: keys::GSI1_PK,
            partition: keys::payments_of_customer(tenant, customer_id),
            range: None,
            newest_first: true,
            after,
            limit: page.limit,
        };
        self.indexed_records(
            query,
            |id| keys::payment(tenant, id),
            payment_of,
            "list payments",
        )
        .await
    }

    async fn settle_payment(
        &self,
        tenant: &TenantId,
        payment_id: &str,
        conversation_id: &str,
        event_id: &str,
        transition: (PaymentStatus, &[PaymentStatus]),
        note: Option<&SystemMessage>,
        at: DateTime<Utc>,
    ) -> Result<PaymentSettlement, Error> {
        let (to, from) = transition;
        let event_key = keys::payment_event(tenant, payment_id, event_id);
        let kept = (at + Duration::days(EVENT_KEPT_DAYS)).timestamp();
        let event = HashMap::from([
            (keys::PK.to_owned(), s(event_key.pk)),
            (keys::SK.to_owned(), s(event_key.sk)),
            (keys::ENTITY.to_owned(), s("payment_event")),
            ("status".to_owned(), s(to.as_str())),
            ("at".to_owned(), s(rfc3339(&at))),
            (keys::EXPIRES_AT.to_owned(), n(kept)),
        ]);
        let mut e = Expr::default();
        e.set("status", s(to.as_str()))
            .set("updated_at", s(rfc3339(&at)));
        if to == PaymentStatus::Paid {
            e.set("paid_at", s(rfc3339(&at)));
        }
        let status = e.name("status");
        let allowed: Vec<String> = from.iter().map(|f| e.value(s(f.as_str()))).collect();
        let condition = format!("{status} IN ({})", allowed.join(", "));
        let mut items = vec![
            put(&self.table, event, "attribute_not_exists(pk)")?,
            update(
                &self.table,
                keys::payment(tenant, payment_id),
                &e,
                Some(condition),
            )?,
        ];
        if let Some(note) = note {
            items.push(system_put(&self.table, tenant, conversation_id, &at, note)?);
        }
        match self.transact_conditional(items, "settle payment").await? {
            None => Ok(PaymentSettlement::Moved),
            Some(codes) if failed(&codes, 0) => Ok(PaymentSettlement::Repeated),
            Some(codes) if failed(&codes, 1) => Ok(PaymentSettlement::NotApplicable),
            Some(codes) => Err(Error::Internal(format!(
                "settle payment refused: {codes:?}"
            ))),
        }
    }
}
