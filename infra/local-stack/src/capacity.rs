//! DynamoDB capacity units of one request, computed from what it carried and touched, by
//! DynamoDB's documented rules (developer guide: "DynamoDB item sizes and formats",
//! "read and write operations", "Capacity management for transactions", GSI "Provisioned
//! throughput considerations"):
//!
//! - item size = the sum over attributes of the name's UTF-8 bytes plus the value's size:
//!   strings their UTF-8 bytes, numbers 1 byte per two significant digits plus 1, binary
//!   the raw bytes, booleans and nulls 1, lists and maps 3 plus their elements plus 1 per
//!   element, sets the sum of their members;
//! - reads in 4 KB units (eventually consistent: half; transactional: twice), a missing
//!   item still costs one unit; `BatchGetItem` rounds each item, `Query` the total;
//! - writes in 1 KB units of the larger of the item before and after (`DeleteItem`: the
//!   deleted item), at least one; transactional writes twice; a failed conditional write
//!   still costs the units of the item (one for an item that does not exist);
//! - each write that changes what a global secondary index holds costs index writes of the
//!   index entry's size (projection `ALL`: the whole item): one to put or delete the entry,
//!   one to update it in place, two when an index key attribute changes.
//!
//! Not documented, and assumed here: index propagation of a transactional write costs
//! standard (not doubled) writes, since it happens after the transaction; a cancelled
//! transaction costs its items once each (the prepare phase), sized as failed conditional
//! writes; a `ConditionCheck` costs like a write of the checked item.
//!
//! Everything works on DynamoDB's JSON wire format (`{"name": {"S": "value"}}`), the form
//! requests and responses travel in.

use std::ops::AddAssign;

use base64::Engine;
use serde_json::{Map, Value};

/// An item in DynamoDB's JSON wire format.
pub type Item = Map<String, Value>;

/// Bytes per write unit.
pub const WRITE_UNIT_BYTES: u64 = 1024;
/// Bytes per read unit.
pub const READ_UNIT_BYTES: u64 = 4096;

/// Key attribute names of the table and of its global secondary indexes (all projected
/// `KEYS_ONLY`: an entry holds the table's and the index's keys).
#[derive(Debug, Clone)]
pub struct Schema {
    /// Partition key attribute.
    pub partition: String,
    /// Sort key attribute.
    pub sort: String,
    /// Each index's partition and sort key attributes.
    pub indexes: Vec<(String, String)>,
}

impl Schema {
    /// `ChatTable` of template.yaml: `pk`/`sk`; the list views `gsi1`…`gsi6` and the bot
    /// view `gsi10` on `gsiNpk`/`gsi1sk` and the customer indexes `gsi7`…`gsi9` on
    /// `gsiNpk`/`gsiNsk`, keys only.
    pub fn chat_table() -> Self {
        let views = (1..=6)
            .chain([10])
            .map(|n| (format!("gsi{n}pk"), "gsi1sk".to_owned()));
        let customers = (7..=9).map(|n| (format!("gsi{n}pk"), format!("gsi{n}sk")));
        Self {
            partition: "pk".into(),
            sort: "sk".into(),
            indexes: views.chain(customers).collect(),
        }
    }

    /// The primary key of `item`.
    pub fn key_of(&self, item: &Item) -> Item {
        [&self.partition, &self.sort]
            .into_iter()
            .filter_map(|name| item.get(name).map(|v| (name.clone(), v.clone())))
            .collect()
    }
}

/// Capacity units a request consumed: read request units, write request units on the table
/// and on the index.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Units {
    /// Read units (eventually consistent reads count one half).
    pub read: f64,
    /// Write units on the table (transactional writes counted twice).
    pub write: f64,
    /// Write units on the global secondary index.
    pub index_write: f64,
}

impl Units {
    /// All write units, table and index.
    pub fn writes(&self) -> f64 {
        self.write + self.index_write
    }
}

impl AddAssign for Units {
    fn add_assign(&mut self, other: Self) {
        self.read += other.read;
        self.write += other.write;
        self.index_write += other.index_write;
    }
}

/// Size of a number given as its decimal text: 1 byte per two significant digits, plus 1.
fn number_size(text: &str) -> u64 {
    let mantissa = text
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len() as u64;
    significant.div_ceil(2) + 1
}

/// Raw length of a base64 value.
fn binary_size(encoded: &str) -> u64 {
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map(|b| b.len() as u64)
        .unwrap_or(encoded.len() as u64 * 3 / 4)
}

/// Size of one attribute value (`{"S": …}`, `{"N": …}`, …), its name not included.
pub fn value_size(value: &Value) -> u64 {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    let text = || inner.as_str().unwrap_or_default();
    let members = || inner.as_array().map(Vec::as_slice).unwrap_or_default();
    match kind.as_str() {
        "S" => text().len() as u64,
        "N" => number_size(text()),
        "B" => binary_size(text()),
        "BOOL" | "NULL" => 1,
        "SS" => members()
            .iter()
            .map(|m| m.as_str().unwrap_or_default().len() as u64)
            .sum(),
        "NS" => members()
            .iter()
            .map(|m| number_size(m.as_str().unwrap_or_default()))
            .sum(),
        "BS" => members()
            .iter()
            .map(|m| binary_size(m.as_str().unwrap_or_default()))
            .sum(),
        "L" => 3 + members().iter().map(|m| value_size(m) + 1).sum::<u64>(),
        "M" => {
            3 + inner
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(name, v)| name.len() as u64 + value_size(v) + 1)
                        .sum::<u64>()
                })
                .unwrap_or_default()
        }
        _ => 0,
    }
}

/// Size of an item: attribute names plus values.
pub fn item_size(item: &Item) -> u64 {
    item.iter()
        .map(|(name, value)| name.len() as u64 + value_size(value))
        .sum()
}

/// Write units for an item of `bytes` (at least one).
pub fn write_units(bytes: u64) -> u64 {
    bytes.div_ceil(WRITE_UNIT_BYTES).max(1)
}

/// Strongly consistent read units for `bytes` read (at least one).
pub fn read_units(bytes: u64) -> u64 {
    bytes.div_ceil(READ_UNIT_BYTES).max(1)
}

fn consistency_factor(consistent: bool) -> f64 {
    if consistent { 1.0 } else { 0.5 }
}

/// How a write request touches one item.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteKind {
    /// Put of this item.
    Put(Item),
    /// Update expression.
    Update,
    /// Delete.
    Delete,
    /// Transaction condition check.
    ConditionCheck,
}

/// One item a write request touches.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteTarget {
    /// Table name.
    pub table: String,
    /// Primary key.
    pub key: Item,
    /// What is done to it.
    pub kind: WriteKind,
}

fn object<'a>(value: &'a Value, field: &str) -> Option<&'a Item> {
    value.get(field).and_then(Value::as_object)
}

fn table_of(value: &Value) -> String {
    value
        .get("TableName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn target(action: &Value, kind: &str, schema: &Schema) -> Option<WriteTarget> {
    let (key, kind) = match kind {
        "Put" | "PutRequest" => {
            let item = object(action, "Item")?;
            (schema.key_of(item), WriteKind::Put(item.clone()))
        }
        "Update" => (object(action, "Key")?.clone(), WriteKind::Update),
        "Delete" | "DeleteRequest" => (object(action, "Key")?.clone(), WriteKind::Delete),
        "ConditionCheck" => (object(action, "Key")?.clone(), WriteKind::ConditionCheck),
        _ => return None,
    };
    Some(WriteTarget {
        table: table_of(action),
        key,
        kind,
    })
}

/// The items a write request touches, in request order (nothing for reads).
pub fn write_targets(operation: &str, request: &Value, schema: &Schema) -> Vec<WriteTarget> {
    match operation {
        "PutItem" => target(request, "Put", schema).into_iter().collect(),
        "UpdateItem" => target(request, "Update", schema).into_iter().collect(),
        "DeleteItem" => target(request, "Delete", schema).into_iter().collect(),
        "TransactWriteItems" => request
            .get("TransactItems")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|entry| {
                let (kind, action) = entry.as_object()?.iter().next()?;
                target(action, kind, schema)
            })
            .collect(),
        "BatchWriteItem" => object(request, "RequestItems")
            .into_iter()
            .flatten()
            .flat_map(|(table, requests)| {
                requests
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|entry| {
                        let (kind, action) = entry.as_object()?.iter().next()?;
                        let mut t = target(action, kind, schema)?;
                        t.table = table.clone();
                        Some(t)
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// What one DynamoDB request carried and touched.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    /// Operation (`GetItem`, `TransactWriteItems`, …).
    pub operation: String,
    /// The request body.
    pub request: Value,
    /// HTTP status of the answer.
    pub status: u16,
    /// The answer body.
    pub response: Value,
    /// For each of [`write_targets`], the item before the request (consistent read).
    pub before: Vec<Option<Item>>,
    /// For each of [`write_targets`], the item after the request (consistent read).
    pub after: Vec<Option<Item>>,
}

/// The entry of `item` in the index on `keys` (keys only: the table's and the index's key
/// attributes), if it has both index keys.
fn index_entry(item: Option<&Item>, schema: &Schema, keys: &(String, String)) -> Option<Item> {
    let item = item?;
    item.get(&keys.0)?;
    item.get(&keys.1)?;
    Some(
        [&schema.partition, &schema.sort, &keys.0, &keys.1]
            .into_iter()
            .filter_map(|name| item.get(name).map(|v| (name.clone(), v.clone())))
            .collect(),
    )
}

fn size_of(item: Option<&Item>) -> u64 {
    item.map(item_size).unwrap_or_default()
}

/// Index write units of a write that turned `before` into `after`, over every index: an
/// entry put or deleted costs one write of its size, a moved one (a key changed) two; a
/// keys-only entry whose keys did not change costs nothing.
pub fn index_write_units(before: Option<&Item>, after: Option<&Item>, schema: &Schema) -> u64 {
    schema
        .indexes
        .iter()
        .map(|keys| {
            match (
                index_entry(before, schema, keys),
                index_entry(after, schema, keys),
            ) {
                (None, None) => 0,
                (None, Some(new)) => write_units(item_size(&new)),
                (Some(old), None) => write_units(item_size(&old)),
                (Some(old), Some(new)) if old != new => {
                    write_units(item_size(&old)) + write_units(item_size(&new))
                }
                (Some(_), Some(_)) => 0,
            }
        })
        .sum()
}

fn read_request_units(exchange: &Exchange) -> f64 {
    let request = &exchange.request;
    let response = &exchange.response;
    let consistent = request
        .get("ConsistentRead")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match exchange.operation.as_str() {
        "GetItem" => {
            let size = size_of(object(response, "Item"));
            read_units(size) as f64 * consistency_factor(consistent)
        }
        "BatchGetItem" => {
            let mut units = 0.0;
            for (table, wanted) in object(request, "RequestItems").into_iter().flatten() {
                let consistent = wanted
                    .get("ConsistentRead")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let found: Vec<&Item> = response
                    .get("Responses")
                    .and_then(|r| r.get(table))
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(Value::as_object)
                    .collect();
                let keys = wanted
                    .get("Keys")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for key in keys.iter().filter_map(Value::as_object) {
                    let item = found
                        .iter()
                        .find(|item| key.iter().all(|(name, v)| item.get(name) == Some(v)));
                    units +=
                        read_units(size_of(item.copied())) as f64 * consistency_factor(consistent);
                }
            }
            units
        }
        "Query" | "Scan" => {
            // Index reads are eventually consistent only.
            let consistent = consistent && request.get("IndexName").is_none();
            let total: u64 = response
                .get("Items")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(Value::as_object)
                .map(item_size)
                .sum();
            read_units(total) as f64 * consistency_factor(consistent)
        }
        "TransactGetItems" => response
            .get("Responses")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| 2.0 * read_units(size_of(object(r, "Item"))) as f64)
            .sum(),
        _ => 0.0,
    }
}

/// The capacity units of one DynamoDB request.
pub fn units(exchange: &Exchange, schema: &Schema) -> Units {
    let targets = write_targets(&exchange.operation, &exchange.request, schema);
    let mut units = Units {
        read: if exchange.status == 200 {
            read_request_units(exchange)
        } else {
            0.0
        },
        ..Units::default()
    };
    let transactional = exchange.operation == "TransactWriteItems";
    let factor = if transactional { 2.0 } else { 1.0 };
    for (i, target) in targets.iter().enumerate() {
        let before = exchange.before.get(i).and_then(Option::as_ref);
        let after = exchange.after.get(i).and_then(Option::as_ref);
        if exchange.status != 200 {
            // A failed conditional write (or the prepare phase of a cancelled
            // transaction): the units of the item, one if there is none.
            let size = match (&target.kind, before) {
                (_, None) => 0,
                (WriteKind::Put(new), Some(_)) => item_size(new),
                (_, Some(old)) => item_size(old),
            };
            units.write += write_units(size) as f64;
            continue;
        }
        let size = match target.kind {
            WriteKind::ConditionCheck | WriteKind::Delete => size_of(before),
            WriteKind::Put(_) | WriteKind::Update => size_of(before).max(size_of(after)),
        };
        units.write += factor * write_units(size) as f64;
        if target.kind != WriteKind::ConditionCheck {
            units.index_write += index_write_units(before, after, schema) as f64;
        }
    }
    units
}

/// EventBridge `PutEvents`: billed events, one per started 64 KB of each entry (`Time` 14
/// bytes when present, plus the UTF-8 bytes of `Source`, `DetailType`, `Detail` and each
/// of `Resources`).
pub fn event_chunks(request: &Value) -> u64 {
    request
        .get("Entries")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|entry| {
            let text =
                |field: &str| entry.get(field).and_then(Value::as_str).map_or(0, str::len) as u64;
            let resources: u64 = entry
                .get("Resources")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|r| r.as_str().map_or(0, str::len) as u64)
                .sum();
            let time = if entry.get("Time").is_some() { 14 } else { 0 };
            let size = time + text("Source") + text("DetailType") + text("Detail") + resources;
            size.div_ceil(64 * 1024).max(1)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(value: Value) -> Item {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_string_is_its_name_plus_its_utf8_bytes() {
        assert_eq!(item_size(&item(json!({"name": {"S": "héllo"}}))), 4 + 6);
    }

    #[test]
    fn a_number_is_one_byte_per_two_significant_digits_plus_one() {
        assert_eq!(value_size(&json!({"N": "2099"})), 3);
        assert_eq!(value_size(&json!({"N": "12345"})), 4);
        // Leading and trailing zeroes are trimmed.
        assert_eq!(value_size(&json!({"N": "00120.00"})), 2);
        assert_eq!(value_size(&json!({"N": "-0.0015"})), 2);
    }

    #[test]
    fn binary_counts_raw_bytes_not_base64() {
        // "AAECAwQ=" is five raw bytes.
        assert_eq!(item_size(&item(json!({"b": {"B": "AAECAwQ="}}))), 1 + 5);
    }

    #[test]
    fn booleans_and_nulls_are_one_byte() {
        assert_eq!(
            item_size(&item(json!({"ok": {"BOOL": true}, "no": {"NULL": true}}))),
            2 + 1 + 2 + 1
        );
    }

    #[test]
    fn lists_and_maps_cost_three_bytes_plus_one_per_element() {
        assert_eq!(value_size(&json!({"L": []})), 3);
        assert_eq!(value_size(&json!({"M": {}})), 3);
        // Two strings of 1 and 2 bytes: 3 + (1 + 1) + (2 + 1).
        assert_eq!(value_size(&json!({"L": [{"S": "a"}, {"S": "bc"}]})), 8);
        // A map element counts its name: 3 + ("k" 1 + "v" 1 + 1).
        assert_eq!(value_size(&json!({"M": {"k": {"S": "v"}}})), 6);
    }

    #[test]
    fn a_typical_item_sums_names_and_values() {
        let slot = item(json!({
            "itemType": {"S": "SLOT"}, "id": {"S": "abc1231"},
            "hostName": {"S": "Harry Mason"}, "timeSlot": {"S": "February 23, 1999"},
            "slotStatus": {"S": "OPEN"}, "createdAt": {"S": "February 1, 1999"},
            "updatedAt": {"S": "February 1, 1999"}, "expiresAt": {"N": "2099"}
        }));
        assert_eq!(item_size(&slot), 141);
    }

    #[test]
    fn reads_round_up_to_4_kb_and_writes_to_1_kb() {
        // A 3,500-byte item reads as 4 KB; a 10 KB item as 12 KB.
        assert_eq!(read_units(3500), 1);
        assert_eq!(read_units(10 * 1024), 3);
        // A 500-byte write is one unit, 1.6 KB two.
        assert_eq!(write_units(500), 1);
        assert_eq!(write_units(1638), 2);
        assert_eq!(write_units(0), 1);
    }

    fn string_of(bytes: usize) -> Value {
        json!({"S": "x".repeat(bytes)})
    }

    #[test]
    fn batch_get_rounds_each_item_then_adds() {
        // 1.5 KB and 6.5 KB items read as 4 KB + 8 KB = 3 units, not 2.
        let a = json!({"pk": {"S": "a"}, "sk": {"S": "a"}, "d": string_of(1536 - 7)});
        let b = json!({"pk": {"S": "b"}, "sk": {"S": "b"}, "d": string_of(6656 - 7)});
        let exchange = Exchange {
            operation: "BatchGetItem".into(),
            request: json!({"RequestItems": {"t": {"ConsistentRead": true, "Keys": [
                {"pk": {"S": "a"}, "sk": {"S": "a"}}, {"pk": {"S": "b"}, "sk": {"S": "b"}},
                {"pk": {"S": "missing"}, "sk": {"S": "x"}}]}}}),
            status: 200,
            response: json!({"Responses": {"t": [a, b]}}),
            ..Exchange::default()
        };
        // The missing key still costs one unit.
        assert_eq!(units(&exchange, &Schema::chat_table()).read, 4.0);
    }

    #[test]
    fn query_rounds_the_total_and_eventual_reads_cost_half() {
        let items: Vec<Value> = (0..10).map(|_| json!({"d": string_of(4177)})).collect();
        let exchange = Exchange {
            operation: "Query".into(),
            request: json!({"TableName": "t"}),
            status: 200,
            response: json!({"Items": items}),
            ..Exchange::default()
        };
        // 10 items of 4,178 bytes = 40.8 KB → 44 KB = 11 units, halved.
        assert_eq!(units(&exchange, &Schema::chat_table()).read, 5.5);
    }

    #[test]
    fn a_get_of_a_missing_item_still_costs_a_unit() {
        let exchange = Exchange {
            operation: "GetItem".into(),
            request: json!({"TableName": "t", "ConsistentRead": true, "Key": {}}),
            status: 200,
            response: json!({}),
            ..Exchange::default()
        };
        assert_eq!(units(&exchange, &Schema::chat_table()).read, 1.0);
    }

    #[test]
    fn an_update_costs_the_larger_of_before_and_after() {
        let before = item(json!({"pk": {"S": "p"}, "sk": {"S": "s"}, "d": string_of(1500)}));
        let after = item(json!({"pk": {"S": "p"}, "sk": {"S": "s"}, "d": string_of(10)}));
        let exchange = Exchange {
            operation: "UpdateItem".into(),
            request: json!({"TableName": "t", "Key": {"pk": {"S": "p"}, "sk": {"S": "s"}}}),
            status: 200,
            response: json!({}),
            before: vec![Some(before)],
            after: vec![Some(after)],
        };
        let u = units(&exchange, &Schema::chat_table());
        assert_eq!((u.write, u.index_write), (2.0, 0.0));
    }

    #[test]
    fn transactions_cost_twice_and_index_key_changes_cost_two_index_writes() {
        let conv = |t: &str| {
            item(
                json!({"pk": {"S": "p"}, "sk": {"S": "c"}, "gsi1pk": {"S": "g"},
                        "gsi1sk": {"S": t}}),
            )
        };
        let message = item(json!({"pk": {"S": "p"}, "sk": {"S": "m"}, "text": {"S": "hi"}}));
        let exchange = Exchange {
            operation: "TransactWriteItems".into(),
            request: json!({"TransactItems": [
                {"Put": {"TableName": "t", "Item": Value::Object(message.clone())}},
                {"Update": {"TableName": "t", "Key": {"pk": {"S": "p"}, "sk": {"S": "c"}}}}]}),
            status: 200,
            response: json!({}),
            before: vec![None, Some(conv("1"))],
            after: vec![Some(message), Some(conv("2"))],
        };
        let u = units(&exchange, &Schema::chat_table());
        // Two items, 2 each; the conversation's index key moved: delete + put.
        assert_eq!((u.write, u.index_write), (4.0, 2.0));
    }

    #[test]
    fn a_new_index_entry_costs_one_index_write_and_an_unchanged_one_none() {
        let entry = item(json!({"gsi1pk": {"S": "g"}, "gsi1sk": {"S": "1"}, "x": {"N": "1"}}));
        let touched = item(json!({"gsi1pk": {"S": "g"}, "gsi1sk": {"S": "1"}, "x": {"N": "2"}}));
        let schema = Schema::chat_table();
        assert_eq!(index_write_units(None, Some(&entry), &schema), 1);
        assert_eq!(index_write_units(Some(&entry), Some(&entry), &schema), 0);
        // Keys only: an attribute outside the keys changes no index entry.
        assert_eq!(index_write_units(Some(&entry), Some(&touched), &schema), 0);
        assert_eq!(index_write_units(Some(&entry), None, &schema), 1);
        // A conversation sits in six views sharing one sort key: a new message moves all.
        let views = |t: &str| {
            let mut m = serde_json::Map::new();
            for n in 1..=6 {
                m.insert(format!("gsi{n}pk"), json!({"S": format!("v{n}")}));
            }
            m.insert("gsi1sk".into(), json!({"S": t}));
            m
        };
        assert_eq!(
            index_write_units(Some(&views("1")), Some(&views("2")), &schema),
            12
        );
        // While a bot runs, the conversation is in the bot view (gsi10) too.
        let with_bot = |t: &str| {
            let mut m = views(t);
            m.insert("gsi10pk".into(), json!({"S": "bot"}));
            m
        };
        assert_eq!(
            index_write_units(Some(&with_bot("1")), Some(&with_bot("2")), &schema),
            14
        );
        assert_eq!(
            index_write_units(Some(&with_bot("1")), Some(&views("1")), &schema),
            1,
            "a bot stopping takes the entry out"
        );
        let plain = item(json!({"pk": {"S": "p"}}));
        assert_eq!(index_write_units(Some(&plain), Some(&plain), &schema), 0);
    }

    #[test]
    fn a_failed_conditional_write_still_costs_units() {
        let existing = item(json!({"pk": {"S": "p"}, "sk": {"S": "s"}, "d": string_of(1200)}));
        let exchange = |before: Option<Item>| Exchange {
            operation: "UpdateItem".into(),
            request: json!({"TableName": "t", "Key": {"pk": {"S": "p"}, "sk": {"S": "s"}}}),
            status: 400,
            response: json!({"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"}),
            before: vec![before.clone()],
            after: vec![before],
        };
        let schema = Schema::chat_table();
        assert_eq!(units(&exchange(Some(existing)), &schema).write, 2.0);
        assert_eq!(units(&exchange(None), &schema).write, 1.0);
    }

    #[test]
    fn an_event_is_one_billed_event_per_started_64_kb() {
        let small = json!({"Source": "chatroom", "DetailType": "MessageReceived", "Detail": "{}"});
        let big = json!({"Source": "s", "DetailType": "d", "Detail": "x".repeat(70 * 1024)});
        assert_eq!(event_chunks(&json!({"Entries": [small, big]})), 1 + 2);
    }
}
