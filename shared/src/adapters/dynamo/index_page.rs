//! One page of records listed through a keys-only index partition whose sort key is
//! `gsi1sk = <time>#<id>` (bookings, payments): the index read, then the page's records
//! read back consistently in one `BatchGetItem`, in the index's order.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{DynamoStore, encode_cursor, get_s, internal, s};
use crate::Error;
use crate::adapters::keys::{self, Key};
use crate::domain::page::Page;

/// Which index partition, in what order, and where the page starts.
pub(super) struct IndexQuery<'a> {
    /// The index (`gsi1`, `gsi2`).
    pub index: &'a str,
    /// Its partition attribute (`gsi1pk`, `gsi2pk`).
    pub attribute: &'a str,
    /// The partition.
    pub partition: String,
    /// Sort keys within `[low, high]` only.
    pub range: Option<(String, String)>,
    /// Latest sort key first.
    pub newest_first: bool,
    /// The sort key after which the page starts (a decoded cursor).
    pub after: Option<String>,
    /// Page size.
    pub limit: u16,
}

impl DynamoStore {
    /// The page `query` names: each entry's record read by `key_of(id)` and decoded.
    pub(super) async fn indexed_records<T>(
        &self,
        query: IndexQuery<'_>,
        key_of: impl Fn(&str) -> Key,
        decode: impl Fn(&HashMap<String, AttributeValue>) -> Result<T, Error>,
        context: &str,
    ) -> Result<Page<T>, Error> {
        let condition = if query.range.is_some() {
            "#pk = :pk AND #sk BETWEEN :low AND :high"
        } else {
            "#pk = :pk"
        };
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(query.index)
            .key_condition_expression(condition)
            .expression_attribute_names("#pk", query.attribute)
            .expression_attribute_values(":pk", s(&query.partition))
            .scan_index_forward(!query.newest_first)
            .limit(i32::from(query.limit));
        if let Some((low, high)) = &query.range {
            request = request
                .expression_attribute_names("#sk", keys::GSI1_SK)
                .expression_attribute_values(":low", s(low))
                .expression_attribute_values(":high", s(high));
        }
        if let Some(sort) = &query.after {
            let id = sort.rsplit_once('#').map(|(_, id)| id).unwrap_or_default();
            let key = key_of(id);
            request = request.set_exclusive_start_key(Some(HashMap::from([
                (keys::PK.to_owned(), s(key.pk)),
                (keys::SK.to_owned(), s(key.sk)),
                (query.attribute.to_owned(), s(&query.partition)),
                (keys::GSI1_SK.to_owned(), s(sort)),
            ])));
        }
        let out = request.send().await.map_err(|e| internal(context, e))?;
        let next_cursor = out
            .last_evaluated_key()
            .and_then(|k| get_s(k, keys::GSI1_SK))
            .map(|sk| encode_cursor(&[sk]));
        let wanted: Vec<Key> = out
            .items()
            .iter()
            .filter_map(|e| get_s(e, keys::GSI1_SK))
            .filter_map(|sort| sort.rsplit_once('#'))
            .map(|(_, id)| key_of(id))
            .collect();
        let found = self
            .batch_get_consistent(wanted.clone(), true, context)
            .await?;
        let mut by_pk: HashMap<String, HashMap<String, AttributeValue>> = found
            .into_iter()
            .filter_map(|item| Some((get_s(&item, keys::PK)?.to_owned(), item)))
            .collect();
        let items = wanted
            .iter()
            .filter_map(|key| by_pk.remove(&key.pk))
            .map(|item| decode(&item))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next_cursor })
    }
}
