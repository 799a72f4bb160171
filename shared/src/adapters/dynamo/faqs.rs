//! The FAQ catalog: one item per entry in the tenant's partition (`FAQ#<ULID>`), a claim
//! item per shortcut (`FAQSHORTCUT#<shortcut>`, naming its entry) and a counter
//! (`FAQCATALOG`). Every write is one transaction conditioned so that shortcuts stay
//! unique, the catalog stays within its cap, and a replace or delete applies to the
//! version it read (`version`), else reads again.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

use super::{
    DynamoStore, Expr, TRANSACTION_ATTEMPTS, conflict_backoff, decode_cursor, encode_cursor, get_s,
    internal, key_item, n, reason_codes, s, update,
};
use crate::Error;
use crate::adapters::keys::{self, Key};
use crate::domain::faq::{CATALOG_MAX, Faq, FaqDraft, FaqQuery, Shortcut};
use crate::domain::ids::TenantId;
use crate::domain::page::{Page, PageRequest};
use crate::domain::time::{parse_rfc3339, rfc3339};
use crate::ports::FaqStore;

/// Most 1 MB query pages one search reads before answering with a cursor (a full
/// catalog of [`CATALOG_MAX`] entries of the longest texts is about 20).
const MAX_SEARCH_READS: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
struct FaqRecord {
    id: String,
    title: String,
    text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shortcut: Option<String>,
    created_at: String,
    updated_at: String,
    /// Folded title, shortcut and text ([`Faq::search_text`]), what `?q=` filters on.
    #[serde(default)]
    search: String,
    /// Bumped by every replace: the condition of the next replace or delete.
    #[serde(default)]
    version: u64,
}

impl FaqRecord {
    fn new(faq: &Faq, version: u64) -> Self {
        Self {
            id: faq.id.clone(),
            title: faq.title.clone(),
            text: faq.text.clone(),
            shortcut: faq.shortcut.as_ref().map(|s| s.as_str().to_owned()),
            created_at: rfc3339(&faq.created_at),
            updated_at: rfc3339(&faq.updated_at),
            search: faq.search_text(),
            version,
        }
    }

    fn into_faq(self) -> Result<Faq, Error> {
        let corrupt =
            |what: &str| Error::Internal(format!("stored FAQ {} has a bad {what}", self.id));
        Ok(Faq {
            shortcut: self
                .shortcut
                .as_deref()
                .map(Shortcut::parse)
                .transpose()
                .map_err(|_| corrupt("shortcut"))?,
            created_at: parse_rfc3339(&self.created_at).ok_or_else(|| corrupt("created_at"))?,
            updated_at: parse_rfc3339(&self.updated_at).ok_or_else(|| corrupt("updated_at"))?,
            id: self.id,
            title: self.title,
            text: self.text,
        })
    }

    fn item(&self, key: Key) -> Result<HashMap<String, AttributeValue>, Error> {
        let mut item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(self).map_err(|e| internal("encode FAQ", e))?;
        item.extend(key_item(key));
        item.insert(keys::ENTITY.into(), s("faq"));
        Ok(item)
    }
}

fn decode(item: HashMap<String, AttributeValue>) -> Result<(Faq, u64), Error> {
    let record: FaqRecord = serde_dynamo::from_item(item).map_err(|e| internal("decode FAQ", e))?;
    let version = record.version;
    Ok((record.into_faq()?, version))
}

/// What each write of a transaction is, to read its cancellation reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Entry,
    Counter,
    Claim,
    Release,
}

/// How a transaction ended, when not with an error.
enum Outcome {
    Done,
    /// This write's condition failed (the first such).
    Refused(Slot),
}

fn condition_values(pairs: &[(&str, AttributeValue)]) -> Option<HashMap<String, AttributeValue>> {
    (!pairs.is_empty()).then(|| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    })
}

impl DynamoStore {
    /// A put conditioned on `condition`, where `#pk` names the partition key and
    /// `#version` the version.
    fn put_if(
        &self,
        item: HashMap<String, AttributeValue>,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<TransactWriteItem, Error> {
        let mut names = HashMap::from([("#pk".to_owned(), keys::PK.to_owned())]);
        if condition.contains("#version") {
            names.insert("#version".to_owned(), "version".to_owned());
        }
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(condition_values(values))
            .build()
            .map(|p| TransactWriteItem::builder().put(p).build())
            .map_err(|e| internal("build put", e))
    }

    fn delete_if(
        &self,
        key: Key,
        condition: &str,
        names: &[(&str, &str)],
        values: &[(&str, AttributeValue)],
    ) -> Result<TransactWriteItem, Error> {
        let names = names
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(condition_values(values))
            .build()
            .map(|d| TransactWriteItem::builder().delete(d).build())
            .map_err(|e| internal("build delete", e))
    }

    fn claim(
        &self,
        tenant: &TenantId,
        shortcut: &Shortcut,
        id: &str,
    ) -> Result<TransactWriteItem, Error> {
        let mut item = key_item(keys::faq_shortcut(tenant, shortcut.as_str()));
        item.insert(keys::ENTITY.into(), s("faq_shortcut"));
        item.insert("faq_id".into(), s(id));
        self.put_if(item, "attribute_not_exists(#pk)", &[])
    }

    fn release(
        &self,
        tenant: &TenantId,
        shortcut: &Shortcut,
        id: &str,
    ) -> Result<TransactWriteItem, Error> {
        self.delete_if(
            keys::faq_shortcut(tenant, shortcut.as_str()),
            "#faq_id = :id",
            &[("#faq_id", "faq_id")],
            &[(":id", s(id))],
        )
    }

    /// The catalog counter moved by `delta`; growing is conditioned on the cap.
    fn count(&self, tenant: &TenantId, delta: i32) -> Result<TransactWriteItem, Error> {
        let mut e = Expr::default();
        e.set(keys::ENTITY, s("faq_catalog")).add("count", n(delta));
        let condition = (delta > 0).then(|| {
            let (count, max) = (e.name("count"), e.value(n(CATALOG_MAX)));
            format!("attribute_not_exists({count}) OR {count} < {max}")
        });
        update(&self.table, keys::faq_catalog(tenant), &e, condition)
    }

    /// Runs one transaction, retrying while it conflicts with another on the same items.
    async fn transact(
        &self,
        writes: Vec<(Slot, TransactWriteItem)>,
        context: &str,
    ) -> Result<Outcome, Error> {
        let (slots, items): (Vec<Slot>, Vec<TransactWriteItem>) = writes.into_iter().unzip();
        for attempt in 0..TRANSACTION_ATTEMPTS {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            match result.map_err(aws_sdk_dynamodb::error::SdkError::into_service_error) {
                Ok(_) => return Ok(Outcome::Done),
                Err(TransactWriteItemsError::TransactionCanceledException(cancel)) => {
                    let codes = reason_codes(cancel.cancellation_reasons());
                    if let Some(slot) = codes
                        .iter()
                        .position(|c| *c == "ConditionalCheckFailed")
                        .and_then(|i| slots.get(i))
                    {
                        return Ok(Outcome::Refused(*slot));
                    }
                    if !codes.contains(&"TransactionConflict") {
                        return Err(super::cancelled(context, &codes));
                    }
                    conflict_backoff(attempt).await;
                }
                Err(TransactWriteItemsError::TransactionInProgressException(_)) => {
                    conflict_backoff(attempt).await;
                }
                Err(other) => return Err(internal(context, other)),
            }
        }
        Err(Error::Internal(format!(
            "{context}: transaction kept conflicting"
        )))
    }

    async fn read_faq(&self, tenant: &TenantId, id: &str) -> Result<Option<(Faq, u64)>, Error> {
        self.get_consistent(keys::faq(tenant, id), "read FAQ")
            .await?
            .map(decode)
            .transpose()
    }

    /// The entry at `version` replaced by `record`, conditioned on that version.
    fn entry_at(
        &self,
        tenant: &TenantId,
        record: &FaqRecord,
        version: u64,
    ) -> Result<TransactWriteItem, Error> {
        self.put_if(
            record.item(keys::faq(tenant, &record.id))?,
            "attribute_exists(#pk) AND #version = :version",
            &[(":version", n(version))],
        )
    }
}

fn duplicate_shortcut() -> Error {
    Error::conflict(
        "duplicate_shortcut",
        "another FAQ entry already uses this shortcut",
    )
}

impl FaqStore for DynamoStore {
    async fn create_faq(&self, tenant: &TenantId, faq: &Faq) -> Result<(), Error> {
        let record = FaqRecord::new(faq, 1);
        let mut writes = vec![
            (
                Slot::Entry,
                self.put_if(
                    record.item(keys::faq(tenant, &faq.id))?,
                    "attribute_not_exists(#pk)",
                    &[],
                )?,
            ),
            (Slot::Counter, self.count(tenant, 1)?),
        ];
        if let Some(shortcut) = &faq.shortcut {
            writes.push((Slot::Claim, self.claim(tenant, shortcut, &faq.id)?));
        }
        match self.transact(writes, "create FAQ").await? {
            Outcome::Done => Ok(()),
            Outcome::Refused(Slot::Claim) => Err(duplicate_shortcut()),
            Outcome::Refused(Slot::Counter) => Err(Error::conflict(
                "faq_limit_reached",
                format!("a tenant holds at most {CATALOG_MAX} FAQ entries; delete some first"),
            )),
            Outcome::Refused(slot) => {
                Err(Error::Internal(format!("create FAQ refused by {slot:?}")))
            }
        }
    }

    async fn replace_faq(
        &self,
        tenant: &TenantId,
        id: &str,
        draft: &FaqDraft,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Faq>, Error> {
        for attempt in 0..TRANSACTION_ATTEMPTS {
            let Some((current, version)) = self.read_faq(tenant, id).await? else {
                return Ok(None);
            };
            let replaced = Faq {
                title: draft.title.clone(),
                text: draft.text.clone(),
                shortcut: draft.shortcut.clone(),
                updated_at: at,
                ..current.clone()
            };
            let record = FaqRecord::new(&replaced, version + 1);
            let mut writes = vec![(Slot::Entry, self.entry_at(tenant, &record, version)?)];
            if current.shortcut != replaced.shortcut {
                if let Some(old) = &current.shortcut {
                    writes.push((Slot::Release, self.release(tenant, old, id)?));
                }
                if let Some(new) = &replaced.shortcut {
                    writes.push((Slot::Claim, self.claim(tenant, new, id)?));
                }
            }
            match self.transact(writes, "replace FAQ").await? {
                Outcome::Done => return Ok(Some(replaced)),
                Outcome::Refused(Slot::Claim) => return Err(duplicate_shortcut()),
                // Replaced or deleted meanwhile: read again.
                Outcome::Refused(Slot::Entry) => conflict_backoff(attempt).await,
                Outcome::Refused(slot) => {
                    return Err(Error::Internal(format!("replace FAQ refused by {slot:?}")));
                }
            }
        }
        Err(Error::Internal(
            "replace FAQ: kept changing meanwhile".into(),
        ))
    }

    async fn delete_faq(&self, tenant: &TenantId, id: &str) -> Result<bool, Error> {
        for attempt in 0..TRANSACTION_ATTEMPTS {
            let Some((current, version)) = self.read_faq(tenant, id).await? else {
                return Ok(false);
            };
            let mut writes = vec![
                (
                    Slot::Entry,
                    self.delete_if(
                        keys::faq(tenant, id),
                        "attribute_exists(#pk) AND #version = :version",
                        &[("#pk", keys::PK), ("#version", "version")],
                        &[(":version", n(version))],
                    )?,
                ),
                (Slot::Counter, self.count(tenant, -1)?),
            ];
            if let Some(old) = &current.shortcut {
                writes.push((Slot::Release, self.release(tenant, old, id)?));
            }
            match self.transact(writes, "delete FAQ").await? {
                Outcome::Done => return Ok(true),
                Outcome::Refused(Slot::Entry) => conflict_backoff(attempt).await,
                Outcome::Refused(slot) => {
                    return Err(Error::Internal(format!("delete FAQ refused by {slot:?}")));
                }
            }
        }
        Err(Error::Internal(
            "delete FAQ: kept changing meanwhile".into(),
        ))
    }

    async fn get_faq(&self, tenant: &TenantId, id: &str) -> Result<Option<Faq>, Error> {
        Ok(self.read_faq(tenant, id).await?.map(|(faq, _)| faq))
    }

    async fn search_faqs(
        &self,
        tenant: &TenantId,
        query: Option<&FaqQuery>,
        page: &PageRequest,
    ) -> Result<Page<Faq>, Error> {
        let pk = keys::tenant(tenant).pk;
        let Some(query) = query else {
            let (items, next_cursor) = self
                .query_prefix(pk, keys::FAQ_PREFIX, page, false, "list FAQ")
                .await?;
            let items = items
                .into_iter()
                .map(|item| decode(item).map(|(faq, _)| faq))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Page { items, next_cursor });
        };
        let mut start = match &page.cursor {
            Some(cursor) => Some(decode_cursor(cursor, 1, keys::FAQ_PREFIX)?.remove(0)),
            None => None,
        };
        let limit = usize::from(page.limit);
        let mut found: Vec<(String, Faq)> = Vec::new();
        for _ in 0..MAX_SEARCH_READS {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .filter_expression("contains(#search, :q)")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_names("#sk", keys::SK)
                .expression_attribute_names("#search", "search")
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s(keys::FAQ_PREFIX))
                .expression_attribute_values(":q", s(query.as_str()))
                .set_exclusive_start_key(start.take().map(|sk| {
                    HashMap::from([
                        (keys::PK.to_owned(), s(pk.clone())),
                        (keys::SK.to_owned(), s(sk)),
                    ])
                }))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| internal("search FAQ", e))?;
            start = out
                .last_evaluated_key()
                .and_then(|k| get_s(k, keys::SK))
                .map(str::to_owned);
            for item in out.items.unwrap_or_default() {
                let sk = get_s(&item, keys::SK).unwrap_or_default().to_owned();
                found.push((sk, decode(item)?.0));
            }
            if found.len() >= limit || start.is_none() {
                break;
            }
        }
        // Stopped inside a page (enough matches): continue after the last one shown.
        // Stopped at a page's end: continue from there.
        let next_cursor = if found.len() > limit {
            found.truncate(limit);
            found.last().map(|(sk, _)| encode_cursor(&[sk]))
        } else {
            start.map(|sk| encode_cursor(&[&sk]))
        };
        Ok(Page {
            items: found.into_iter().map(|(_, faq)| faq).collect(),
            next_cursor,
        })
    }
}
