//! `GET /customers?q=&label=`: every page is read from an index (`Query` with
//! `begins_with` on its sort key), never from a scan, then read back from the table.
//!
//! A search reads its sources one after the other, each in its index's order:
//! - no `q`: every customer by name (gsi7), or with `label`, the label's partition of gsi7;
//! - `q`: the folded name prefix on gsi7 (with `label`: in the label's partition), then,
//!   when `q` is digits (with or without `+`), the phone prefix on gsi8, then the provider
//!   id prefix on gsi9; with `label`, the gsi8/gsi9 matches are kept only when the customer
//!   carries the label.
//!
//! Index entries (projection `KEYS_ONLY`) are eventually consistent: each page's customers
//! are read back with one consistent `BatchGetItem`, and kept only when the fresh item
//! still matches. A customer matching several sources shows once, under the first. The
//! cursor is the source and the index key the page stopped at.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;

use super::customers::CustomerRecord;
use super::{DynamoStore, decode_cursor, encode_cursor, get_s, internal, s};
use crate::Error;
use crate::adapters::keys;
use crate::domain::customer::{Customer, CustomerQuery};
use crate::domain::ids::TenantId;
use crate::domain::page::{Page, PageRequest};

/// Most index pages read to fill one page of results (results dropped as stale or seen
/// under an earlier source leave a page short; the cursor then continues).
const MAX_INDEX_READS: usize = 5;

/// The indexes a search reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Index {
    /// gsi7, every customer by name.
    Name,
    /// gsi7, the customers carrying a label, by name.
    Label,
    /// gsi8, by phone digits.
    Phone,
    /// gsi9, by provider id.
    External,
}

impl Index {
    fn tag(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Label => "label",
            Self::Phone => "phone",
            Self::External => "external",
        }
    }

    /// Index name, partition key and sort key attributes.
    fn attributes(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Name | Self::Label => (keys::GSI7, keys::GSI7_PK, keys::GSI7_SK),
            Self::Phone => (keys::GSI8, keys::GSI8_PK, keys::GSI8_SK),
            Self::External => (keys::GSI9, keys::GSI9_PK, keys::GSI9_SK),
        }
    }
}

/// One source of a search: an index partition and a sort key prefix.
#[derive(Debug, Clone)]
struct Source {
    index: Index,
    partition: String,
    prefix: String,
}

fn sources(tenant: &TenantId, query: &CustomerQuery) -> Vec<Source> {
    let name = Source {
        index: Index::Name,
        partition: keys::customers_by_name(tenant),
        prefix: query
            .text
            .as_deref()
            .map(keys::name_prefix)
            .unwrap_or_default(),
    };
    let name = match &query.label {
        Some(label) => Source {
            index: Index::Label,
            partition: keys::customers_by_label(tenant, label.as_str()),
            ..name
        },
        None => name,
    };
    let Some(text) = &query.text else {
        return vec![name];
    };
    let mut out = Vec::new();
    // A text that folds to nothing (only marks) names nobody: no name source.
    if !name.prefix.is_empty() {
        out.push(name);
    }
    if let Some(digits) = query.phone_prefix() {
        out.push(Source {
            index: Index::Phone,
            partition: keys::customers_by_phone(tenant),
            prefix: digits.to_owned(),
        });
    }
    out.push(Source {
        index: Index::External,
        partition: keys::customers_by_external_id(tenant),
        prefix: text.clone(),
    });
    out
}

/// Whether the customer as read now matches a source (and the label filter).
fn matches(source: &Source, customer: &CustomerRecord, query: &CustomerQuery) -> bool {
    let starts = |key: &Option<String>| {
        key.as_deref()
            .is_some_and(|k| k.starts_with(source.prefix.as_str()))
    };
    let keyed = match source.index {
        Index::Name | Index::Label => starts(&customer.gsi7sk),
        Index::Phone => starts(&customer.gsi8sk),
        Index::External => starts(&customer.gsi9sk),
    };
    let labelled = query
        .label
        .as_ref()
        .is_none_or(|l| customer.labels.iter().any(|c| c == l.as_str()));
    keyed && labelled
}

/// Where a page starts: a source, and the index key to continue after (`None`: its start).
type Position = (usize, Option<HashMap<String, AttributeValue>>);

fn invalid_cursor() -> Error {
    Error::bad_request("invalid_cursor", "the cursor is not one this list returned")
}

fn decode_position(cursor: &str, sources: &[Source]) -> Result<Position, Error> {
    let parts = decode_cursor(cursor, 4, "").or_else(|_| decode_cursor(cursor, 1, ""))?;
    let at = sources
        .iter()
        .position(|s| s.index.tag() == parts[0])
        .ok_or_else(invalid_cursor)?;
    let Some([index_sk, pk, sk]) = parts.get(1..4) else {
        return Ok((at, None));
    };
    let source = &sources[at];
    let ok = index_sk.starts_with(source.prefix.as_str())
        && keys::customer_of_index_key(index_sk).is_some();
    if !ok {
        return Err(invalid_cursor());
    }
    let (_, gsi_pk, gsi_sk) = source.index.attributes();
    Ok((
        at,
        Some(HashMap::from([
            (gsi_pk.to_owned(), s(&source.partition)),
            (gsi_sk.to_owned(), s(index_sk)),
            (keys::PK.to_owned(), s(pk)),
            (keys::SK.to_owned(), s(sk)),
        ])),
    ))
}

fn encode_position(source: &Source, start: Option<&HashMap<String, AttributeValue>>) -> String {
    let (_, _, gsi_sk) = source.index.attributes();
    let key =
        start.and_then(|k| Some([get_s(k, gsi_sk)?, get_s(k, keys::PK)?, get_s(k, keys::SK)?]));
    match key {
        Some([index_sk, pk, sk]) => encode_cursor(&[source.index.tag(), index_sk, pk, sk]),
        None => encode_cursor(&[source.index.tag()]),
    }
}

impl DynamoStore {
    /// One page of a source's index entries: the customer ids, in index order, and where
    /// the read stopped.
    async fn index_page(
        &self,
        source: &Source,
        start: Option<HashMap<String, AttributeValue>>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<HashMap<String, AttributeValue>>), Error> {
        let (index, gsi_pk, gsi_sk) = source.index.attributes();
        let mut condition = "#pk = :pk".to_owned();
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .expression_attribute_names("#pk", gsi_pk)
            .expression_attribute_values(":pk", s(&source.partition));
        if !source.prefix.is_empty() {
            condition.push_str(" AND begins_with(#sk, :prefix)");
            request = request
                .expression_attribute_names("#sk", gsi_sk)
                .expression_attribute_values(":prefix", s(&source.prefix));
        }
        let out = request
            .key_condition_expression(condition)
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| internal("search customers", e))?;
        let mut seen = HashSet::new();
        let ids = out
            .items()
            .iter()
            .filter_map(|item| keys::customer_of_index_key(get_s(item, gsi_sk)?))
            .filter(|id| seen.insert(*id))
            .map(str::to_owned)
            .collect();
        Ok((ids, out.last_evaluated_key))
    }
}

/// One page of a search (see the module's documentation).
pub(super) async fn search(
    store: &DynamoStore,
    tenant: &TenantId,
    query: &CustomerQuery,
    page: &PageRequest,
) -> Result<Page<Customer>, Error> {
    let sources = sources(tenant, query);
    let (mut at, mut start) = match &page.cursor {
        Some(cursor) => decode_position(cursor, &sources)?,
        None => (0, None),
    };
    let limit = usize::from(page.limit);
    let mut items = Vec::new();
    let mut shown = HashSet::new();
    for _ in 0..MAX_INDEX_READS {
        let Some(source) = sources.get(at) else {
            break;
        };
        let (ids, stopped) = store
            .index_page(source, start.take(), limit - items.len())
            .await?;
        let fresh = store.customers_by_id(tenant, &ids).await?;
        for id in &ids {
            let Some(customer) = fresh.get(id) else {
                continue;
            };
            let earlier = sources[..at].iter().any(|s| matches(s, customer, query));
            if matches(source, customer, query) && !earlier && shown.insert(id.clone()) {
                items.push(customer.view()?);
            }
        }
        match stopped {
            Some(key) => start = Some(key),
            None => at += 1,
        }
        if items.len() >= limit {
            break;
        }
    }
    let next_cursor = sources
        .get(at)
        .map(|source| encode_position(source, start.as_ref()));
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn query(q: Option<&str>, label: Option<&str>) -> CustomerQuery {
        CustomerQuery::parse(q, label).unwrap()
    }

    fn indexes(q: &CustomerQuery) -> Vec<(Index, String)> {
        sources(&tenant(), q)
            .into_iter()
            .map(|s| (s.index, s.prefix))
            .collect()
    }

    #[test]
    fn a_search_reads_names_then_phones_then_provider_ids() {
        assert_eq!(indexes(&query(None, None)), [(Index::Name, String::new())]);
        assert_eq!(
            indexes(&query(Some("Zoë"), None)),
            [(Index::Name, "zoe".into()), (Index::External, "Zoë".into())]
        );
        assert_eq!(
            indexes(&query(Some("+8529"), None)),
            [
                (Index::Name, "+8529".into()),
                (Index::Phone, "8529".into()),
                (Index::External, "+8529".into())
            ]
        );
        assert_eq!(
            indexes(&query(None, Some("vip"))),
            [(Index::Label, String::new())]
        );
        assert_eq!(
            indexes(&query(Some("\u{0301}"), None)),
            [(Index::External, "\u{0301}".into())]
        );
    }

    #[test]
    fn a_label_search_reads_the_labels_partition() {
        let s = sources(&tenant(), &query(Some("ana"), Some("vip")));
        assert_eq!(s[0].partition, keys::customers_by_label(&tenant(), "vip"));
        assert_eq!(s[0].prefix, "ana");
        assert_eq!(s[1].index, Index::External);
    }

    #[test]
    fn a_cursor_names_its_source_and_a_key_under_its_prefix() {
        let srcs = sources(&tenant(), &query(Some("ana"), None));
        let key = HashMap::from([
            (keys::GSI7_SK.to_owned(), s("ana maria#cu_1")),
            (keys::PK.to_owned(), s("TENANT#acme")),
            (keys::SK.to_owned(), s("CUSTOMER#cu_1")),
        ]);
        let cursor = encode_position(&srcs[0], Some(&key));
        let (at, start) = decode_position(&cursor, &srcs).unwrap();
        assert_eq!(at, 0);
        let start = start.unwrap();
        assert_eq!(
            get_s(&start, keys::GSI7_PK),
            Some(srcs[0].partition.as_str())
        );
        assert_eq!(get_s(&start, keys::SK), Some("CUSTOMER#cu_1"));

        let next_source = encode_position(&srcs[1], None);
        assert_eq!(decode_position(&next_source, &srcs).unwrap().0, 1);

        // Another query's cursor, or a key outside the prefix, is refused.
        let other = sources(&tenant(), &query(Some("bob"), None));
        assert_eq!(
            decode_position(&cursor, &other).unwrap_err().code(),
            "invalid_cursor"
        );
        let phone = encode_cursor(&["phone"]);
        assert!(decode_position(&phone, &srcs).is_err());
        assert!(decode_position("!!", &srcs).is_err());
    }
}
