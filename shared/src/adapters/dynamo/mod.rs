//! DynamoDB adapter: the chat table behind the store ports.
//!
//! Races and idempotency are settled by conditional writes; reads that decide correctness
//! are consistent. SDK errors are turned into domain errors here and never leave.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, KeysAndAttributes, TransactWriteItem, Update,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Error;
use crate::adapters::keys::{self, Key};

mod changes;
mod channels;
mod conversations;
mod customer_search;
mod customers;
mod inbound;
mod labels;
mod lifecycle;
mod media;
mod notes;
mod outbound;
mod reads;
mod system;
mod templates;
mod tokens;
mod views;

// The agent workspace (SPEC §7).
mod agents;
mod bookings;
mod bots;
mod calls;
mod contacts;
mod faqs;
mod index_page;
mod payments;
mod schedules;
mod settings;

/// Attempts of a transaction that conflicts with a concurrent one on the same items.
const TRANSACTION_ATTEMPTS: u32 = 8;

/// Most keys of one `BatchGetItem`.
const BATCH_GET_MAX: usize = 100;

/// The chat table, reached through one shared client.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// Wraps a client (built once per process) and the table name from configuration.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn internal(context: &str, err: impl std::error::Error) -> Error {
    Error::Internal(format!("{context}: {}", DisplayErrorContext(err)))
}

/// DynamoDB error codes that say the request itself can never succeed (item over 400 KB,
/// key or attribute too long, malformed request): sending it again cannot help. Every
/// other failure (throttling, 5xx, timeouts, connection errors) may pass.
const PERMANENT_CODES: &[&str] = &[
    "ValidationException",
    "ItemCollectionSizeLimitExceededException",
    "SerializationException",
];

/// The same, as reasons of one item of a cancelled transaction.
const PERMANENT_REASONS: &[&str] = &["ValidationError", "ItemCollectionSizeLimitExceeded"];

/// A store failure as a domain error: [`Error::StoreRejected`] when retrying the same
/// write cannot help, [`Error::Internal`] when it may.
fn store_error<E>(context: &str, err: E) -> Error
where
    E: ProvideErrorMetadata + std::error::Error,
{
    let permanent = err.code().is_some_and(|c| PERMANENT_CODES.contains(&c));
    let text = format!("{context}: {}", DisplayErrorContext(err));
    if permanent {
        Error::StoreRejected(text)
    } else {
        Error::Internal(text)
    }
}

/// A cancelled transaction none of whose reasons is settled by the caller, as a domain
/// error: permanent when an item was refused for good.
fn cancelled(context: &str, codes: &[&str]) -> Error {
    let text = format!("{context} cancelled: {codes:?}");
    if codes.iter().any(|c| PERMANENT_REASONS.contains(c)) {
        Error::StoreRejected(text)
    } else {
        Error::Internal(text)
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key_item(key: Key) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (keys::PK.to_owned(), s(key.pk)),
        (keys::SK.to_owned(), s(key.sk)),
    ])
}

fn get_s<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

impl DynamoStore {
    /// One item by key, read consistently (the reads that decide something).
    async fn get_consistent(
        &self,
        key: Key,
        context: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, s(key.pk))
            .key(keys::SK, s(key.sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| internal(context, e))?;
        Ok(out.item)
    }

    /// One page of the items of `pk` whose sort key starts with `prefix`, read
    /// consistently, with the cursor of the next page.
    /// An `UpdateItem` of `key` with the expression `e`, ready for a condition, return
    /// values and `send`.
    fn update_item(
        &self,
        key: &Key,
        e: &Expr,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(key.pk.as_str()))
            .key(keys::SK, s(key.sk.as_str()))
            .update_expression(e.update_expression())
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
    }

    /// One conditional `UpdateItem`: `true` when applied, `false` when the condition
    /// refused it (nothing written).
    async fn conditional_update(
        &self,
        key: Key,
        e: &Expr,
        condition: &str,
        context: &str,
    ) -> Result<bool, Error> {
        let result = self
            .update_item(&key, e)
            .condition_expression(condition)
            .send()
            .await;
        match result.map_err(aws_sdk_dynamodb::error::SdkError::into_service_error) {
            Ok(_) => Ok(true),
            Err(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
            Err(other) => Err(internal(context, other)),
        }
    }

    /// Records on an existing item (a payment, a call) the message that carried its link;
    /// nothing when the item is gone.
    async fn record_link_message(
        &self,
        key: Key,
        message_id: &str,
        context: &str,
    ) -> Result<(), Error> {
        let mut e = Expr::default();
        e.set("message_id", s(message_id));
        self.conditional_update(key, &e, "attribute_exists(pk)", context)
            .await?;
        Ok(())
    }

    /// Consistent reads of many keys (100 per request). Unprocessed keys (throttling) are
    /// asked again a few times; then, with `require_all`, it is an error, else the items
    /// found are returned.
    async fn batch_get_consistent(
        &self,
        keys: Vec<Key>,
        require_all: bool,
        context: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, Error> {
        let mut found = Vec::new();
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let mut wanted: Vec<_> = chunk.iter().cloned().map(key_item).collect();
            for _ in 0..5 {
                if wanted.is_empty() {
                    break;
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut wanted)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| internal("build batch get", e))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| internal(context, e))?;
                if let Some(items) = out.responses().and_then(|r| r.get(&self.table)) {
                    found.extend(items.iter().cloned());
                }
                wanted = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
            }
            if require_all && !wanted.is_empty() {
                return Err(Error::Internal(format!(
                    "{context}: reads kept being throttled"
                )));
            }
        }
        Ok(found)
    }

    /// A page of the tenant partition's items under `prefix` (oldest key first), each
    /// decoded by `decode`.
    async fn tenant_page<T>(
        &self,
        tenant: &crate::domain::ids::TenantId,
        prefix: &str,
        page: &crate::domain::page::PageRequest,
        context: &str,
        decode: impl Fn(HashMap<String, AttributeValue>) -> Result<T, Error>,
    ) -> Result<crate::domain::page::Page<T>, Error> {
        let (items, next_cursor) = self
            .query_prefix(keys::tenant(tenant).pk, prefix, page, false, context)
            .await?;
        let items = items
            .into_iter()
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(crate::domain::page::Page { items, next_cursor })
    }

    /// A `PutItem` that writes only a new item (`attribute_not_exists(pk)`).
    fn put_new(
        &self,
        item: HashMap<String, AttributeValue>,
    ) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
    }

    async fn query_prefix(
        &self,
        pk: String,
        prefix: &str,
        page: &crate::domain::page::PageRequest,
        newest_first: bool,
        context: &str,
    ) -> Result<(Vec<HashMap<String, AttributeValue>>, Option<String>), Error> {
        let start = match &page.cursor {
            Some(cursor) => {
                let sk = decode_cursor(cursor, 1, prefix)?.remove(0);
                Some(HashMap::from([
                    (keys::PK.to_owned(), s(pk.clone())),
                    (keys::SK.to_owned(), s(sk)),
                ]))
            }
            None => None,
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .set_exclusive_start_key(start)
            .scan_index_forward(!newest_first)
            .limit(i32::from(page.limit))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| internal(context, e))?;
        let next_cursor = out
            .last_evaluated_key()
            .and_then(|k| get_s(k, keys::SK))
            .map(|sk| encode_cursor(&[sk]));
        Ok((out.items.unwrap_or_default(), next_cursor))
    }
}

/// Encodes the key a page stopped at (the caller's tenant always fixes the partition, so
/// a cursor cannot reach into another tenant).
fn encode_cursor(parts: &[&str]) -> String {
    URL_SAFE_NO_PAD.encode(parts.join("\n"))
}

/// Longest cursor accepted (keys are at most a few hundred bytes).
const MAX_CURSOR_LEN: usize = 1024;

/// Decodes a cursor into `count` non-empty parts, the first starting with `prefix`.
fn decode_cursor(cursor: &str, count: usize, prefix: &str) -> Result<Vec<String>, Error> {
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(Error::bad_request(
            "invalid_cursor",
            "the cursor is not one this list returned",
        ));
    }
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(|text| text.split('\n').map(str::to_owned).collect::<Vec<_>>())
        .filter(|parts| {
            parts.len() == count
                && parts[0].starts_with(prefix)
                && parts[0].len() > prefix.len()
                && parts.iter().all(|p| !p.is_empty() && p.len() <= 512)
        })
        .ok_or_else(|| {
            Error::bad_request("invalid_cursor", "the cursor is not one this list returned")
        })
}

/// An update expression with generated `#n`/`:v` placeholders, so attribute names never
/// collide with DynamoDB's reserved words.
#[derive(Debug, Default, Clone)]
struct Expr {
    sets: Vec<String>,
    adds: Vec<String>,
    removes: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    fn name(&mut self, attribute: &str) -> String {
        if let Some((alias, _)) = self.names.iter().find(|(_, a)| *a == attribute) {
            return alias.clone();
        }
        let alias = format!("#n{}", self.names.len());
        self.names.insert(alias.clone(), attribute.to_owned());
        alias
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let alias = format!(":v{}", self.values.len());
        self.values.insert(alias.clone(), value);
        alias
    }

    fn set(&mut self, attribute: &str, value: AttributeValue) -> &mut Self {
        let (n, v) = (self.name(attribute), self.value(value));
        self.sets.push(format!("{n} = {v}"));
        self
    }

    fn set_if_absent(&mut self, attribute: &str, value: AttributeValue) -> &mut Self {
        let (n, v) = (self.name(attribute), self.value(value));
        self.sets.push(format!("{n} = if_not_exists({n}, {v})"));
        self
    }

    /// `attribute = if_not_exists(source, value)`: a copy of `source` when the item has
    /// it, else `value` (keeps an index key in step with an attribute written elsewhere,
    /// without reading it).
    fn set_from_or(&mut self, attribute: &str, source: &str, value: AttributeValue) -> &mut Self {
        let (n, from, v) = (self.name(attribute), self.name(source), self.value(value));
        self.sets.push(format!("{n} = if_not_exists({from}, {v})"));
        self
    }

    /// Removes an attribute.
    fn remove(&mut self, attribute: &str) -> &mut Self {
        let n = self.name(attribute);
        self.removes.push(n);
        self
    }

    fn add(&mut self, attribute: &str, value: AttributeValue) -> &mut Self {
        let (n, v) = (self.name(attribute), self.value(value));
        self.adds.push(format!("{n} {v}"));
        self
    }

    fn update_expression(&self) -> String {
        let mut out = String::new();
        if !self.sets.is_empty() {
            out.push_str("SET ");
            out.push_str(&self.sets.join(", "));
        }
        if !self.adds.is_empty() {
            out.push_str(" ADD ");
            out.push_str(&self.adds.join(", "));
        }
        if !self.removes.is_empty() {
            out.push_str(" REMOVE ");
            out.push_str(&self.removes.join(", "));
        }
        out.trim_start().to_owned()
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// Why a transaction was cancelled, per item.
/// One `Update` of a transaction, from an expression and an optional condition.
fn update(
    table: &str,
    key: Key,
    e: &Expr,
    condition: Option<String>,
) -> Result<TransactWriteItem, Error> {
    let u = Update::builder()
        .table_name(table)
        .key(keys::PK, s(key.pk))
        .key(keys::SK, s(key.sk))
        .update_expression(e.update_expression())
        .set_expression_attribute_names(e.names())
        .set_expression_attribute_values(e.values())
        .set_condition_expression(condition)
        .build()
        .map_err(|err| internal("build update", err))?;
    Ok(TransactWriteItem::builder().update(u).build())
}

fn reason_codes(reasons: &[CancellationReason]) -> Vec<&str> {
    reasons.iter().map(|r| r.code().unwrap_or("None")).collect()
}

impl DynamoStore {
    /// Writes a transaction, retrying it while it conflicts with another one in flight:
    /// `Ok(None)` once written, `Ok(Some(codes))` when a condition refused it (the
    /// cancellation reason per item, `"ConditionalCheckFailed"` where it failed; nothing
    /// written).
    ///
    /// # Errors
    /// `Internal` for any other failure, or when it keeps conflicting.
    async fn transact_conditional(
        &self,
        items: Vec<TransactWriteItem>,
        context: &str,
    ) -> Result<Option<Vec<String>>, Error> {
        for attempt in 0..TRANSACTION_ATTEMPTS {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(None),
                Err(err) => err.into_service_error(),
            };
            match err {
                TransactWriteItemsError::TransactionCanceledException(cancel) => {
                    let codes = reason_codes(cancel.cancellation_reasons());
                    if codes.contains(&"ConditionalCheckFailed") {
                        return Ok(Some(codes.into_iter().map(str::to_owned).collect()));
                    }
                    if !codes.contains(&"TransactionConflict") {
                        return Err(cancelled(context, &codes));
                    }
                    conflict_backoff(attempt).await;
                }
                TransactWriteItemsError::TransactionInProgressException(_) => {
                    conflict_backoff(attempt).await;
                }
                other => return Err(internal(context, other)),
            }
        }
        Err(Error::Internal(format!(
            "{context}: transaction kept conflicting"
        )))
    }
}

/// Backoff before retrying a conflicting transaction: 10 ms doubling, with jitter.
async fn conflict_backoff(attempt: u32) {
    let base = 10u64 << attempt.min(6);
    let jitter = u64::from(ulid::Ulid::new().random() as u16) % base.max(1);
    tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_refuses_other_prefixes() {
        let c = encode_cursor(&["CHANNEL#01J"]);
        assert_eq!(
            decode_cursor(&c, 1, keys::CHANNEL_PREFIX).unwrap(),
            vec!["CHANNEL#01J"]
        );
        let foreign = encode_cursor(&["CUSTOMER#01J"]);
        assert_eq!(
            decode_cursor(&foreign, 1, keys::CHANNEL_PREFIX)
                .unwrap_err()
                .code(),
            "invalid_cursor"
        );
        assert!(decode_cursor("!!!", 1, keys::CHANNEL_PREFIX).is_err());
        assert!(decode_cursor(&c, 2, keys::CHANNEL_PREFIX).is_err());
    }

    #[test]
    fn item_size_and_validation_failures_are_permanent_and_throttling_passes() {
        use aws_sdk_dynamodb::error::ErrorMetadata;
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        let failure = |code: &str| {
            PutItemError::generic(
                ErrorMetadata::builder()
                    .code(code)
                    .message("Item size has exceeded the maximum allowed size")
                    .build(),
            )
        };
        assert!(matches!(
            store_error("put", failure("ValidationException")),
            Error::StoreRejected(_)
        ));
        for passing in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "InternalServerError",
            "RequestLimitExceeded",
        ] {
            assert!(
                matches!(store_error("put", failure(passing)), Error::Internal(_)),
                "{passing}"
            );
        }
        assert!(matches!(
            cancelled("record", &["None", "ValidationError"]),
            Error::StoreRejected(_)
        ));
        assert!(matches!(
            cancelled("record", &["ThrottlingError", "None"]),
            Error::Internal(_)
        ));
    }

    #[test]
    fn expressions_alias_every_name_once() {
        let mut e = Expr::default();
        e.set("status", s("open"))
            .set_if_absent("created_at", s("t"))
            .add("unread_count", n(1));
        e.set("status", s("closed"));
        assert_eq!(
            e.update_expression(),
            "SET #n0 = :v0, #n1 = if_not_exists(#n1, :v1), #n0 = :v3 ADD #n2 :v2"
        );
        assert_eq!(e.names().unwrap().len(), 3);
    }
}
