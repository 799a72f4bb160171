//! List views in the table: the index keys a conversation item and its label membership
//! items carry (see [`crate::domain::views`]), and the read that merges a view's shards.
//!
//! The read is the same for every view: an index entry's sort key (`gsi1sk`,
//! `<last_message_at>#<conversation id>`) names the conversation, whether the entry is the
//! conversation item itself (all, status, assignee, channel, and the sparse bot view) or a
//! label membership item, and the conversation is then read from the table.

use std::collections::{HashMap, HashSet, VecDeque};

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::{DateTime, Utc};

use super::conversations::conversation_from;
use super::{DynamoStore, Expr, decode_cursor, encode_cursor, get_s, internal, s, update};
use crate::Error;
use crate::adapters::keys::{self, Key};
use crate::domain::conversation::{ConversationFilter, ConversationState, ConversationStatus};
use crate::domain::ids::TenantId;
use crate::domain::page::{Page, PageRequest};
use crate::domain::views::{self, View, conversation_views, label_views};

/// Most index entries one list request reads before it answers with what it has (and a
/// cursor): filters beyond the view's own can make a page need more than one page of reads.
const MAX_ENTRIES_READ: usize = 500;

/// Sets a conversation item's six view partitions.
pub(super) fn set_views(
    e: &mut Expr,
    tenant: &TenantId,
    id: &str,
    status: ConversationStatus,
    assignee: Option<&str>,
    channel_id: &str,
) {
    let shard = views::shard(id);
    for view in conversation_views(status, assignee, channel_id) {
        e.set(
            view.index().attribute,
            s(keys::view_partition(tenant, &view, shard)),
        );
    }
}

/// Puts a conversation in the bot-active view (`active`) or takes it out: the view's key
/// is set only while a bot runs, so the index holds just those conversations.
pub(super) fn set_bot_view(e: &mut Expr, tenant: &TenantId, id: &str, active: bool) {
    let attribute = View::BotActive.index().attribute;
    if active {
        let partition = keys::view_partition(tenant, &View::BotActive, views::shard(id));
        e.set(attribute, s(partition));
    } else {
        e.remove(attribute);
    }
}

/// How a label membership item moves with its conversation.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct MemberMove<'a> {
    /// A new place in the lists (the shared sort key).
    pub activity: Option<&'a str>,
    /// The customer's new name key (customers by label, in name order).
    pub name_key: Option<&'a str>,
}

/// Moves an existing label membership item to `status` and as `to` says. Conditional on
/// the item existing, so a label removed meanwhile is not brought back.
pub(super) fn member_update(
    table: &str,
    tenant: &TenantId,
    conversation_id: &str,
    label: &str,
    status: ConversationStatus,
    to: MemberMove<'_>,
) -> Result<TransactWriteItem, Error> {
    let mut e = Expr::default();
    e.set("status", s(status.as_str()));
    if let Some(key) = to.name_key {
        e.set(keys::GSI7_SK, s(key));
    }
    let activity = to.activity;
    let shard = views::shard(conversation_id);
    for view in label_views(label, status) {
        e.set(
            view.index().attribute,
            s(keys::view_partition(tenant, &view, shard)),
        );
    }
    if let Some(activity) = activity {
        e.set(keys::VIEW_SK, s(activity));
    }
    let pk = e.name(keys::PK);
    update(
        table,
        keys::label_member(tenant, conversation_id, label),
        &e,
        Some(format!("attribute_exists({pk})")),
    )
}

/// A new label membership item for a conversation as it is now.
pub(super) fn member_put(
    table: &str,
    tenant: &TenantId,
    conversation: &ConversationState,
    label: &str,
    at: &str,
) -> Result<TransactWriteItem, Error> {
    let key = keys::label_member(tenant, &conversation.id, label);
    let shard = views::shard(&conversation.id);
    let mut item = super::key_item(key);
    let mut attr = |name: &str, value: String| {
        item.insert(name.to_owned(), s(value));
    };
    attr(keys::ENTITY, "label_member".into());
    attr("label", label.into());
    attr("conversation_id", conversation.id.clone());
    attr("customer_id", conversation.customer.id.clone());
    attr("status", conversation.status.as_str().into());
    attr("created_at", at.into());
    for view in label_views(label, conversation.status) {
        attr(
            view.index().attribute,
            keys::view_partition(tenant, &view, shard),
        );
    }
    if let Some(activity) = &conversation.activity {
        attr(keys::VIEW_SK, activity.clone());
    }
    // Customers by label, in name order.
    attr(keys::GSI7_PK, keys::customers_by_label(tenant, label));
    attr(
        keys::GSI7_SK,
        keys::customer_name_key(
            conversation.customer.name.as_deref(),
            &conversation.customer.id,
        ),
    );
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(|e| internal("build put", e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// Deletes a label membership item (it must exist).
pub(super) fn member_delete(
    table: &str,
    tenant: &TenantId,
    conversation_id: &str,
    label: &str,
) -> Result<TransactWriteItem, Error> {
    let Key { pk, sk } = keys::label_member(tenant, conversation_id, label);
    let delete = aws_sdk_dynamodb::types::Delete::builder()
        .table_name(table)
        .key(keys::PK, s(pk))
        .key(keys::SK, s(sk))
        .condition_expression("attribute_exists(pk)")
        .build()
        .map_err(|e| internal("build delete", e))?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

/// One shard of one view, read newest first in small pages.
#[derive(Debug)]
struct Shard {
    index: &'static str,
    attribute: &'static str,
    partition: String,
    /// Read on below this sort key.
    below: Option<String>,
    done: bool,
    /// Sort keys read and not merged yet.
    buffer: VecDeque<String>,
}

impl DynamoStore {
    async fn read_shard(&self, shard: &mut Shard, limit: usize) -> Result<(), Error> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(shard.index)
            .expression_attribute_names("#p", shard.attribute)
            .expression_attribute_values(":p", s(shard.partition.clone()))
            .scan_index_forward(false)
            .limit(i32::try_from(limit.clamp(1, 100)).unwrap_or(100));
        query = match &shard.below {
            Some(below) => query
                .key_condition_expression("#p = :p AND #s < :b")
                .expression_attribute_names("#s", keys::VIEW_SK)
                .expression_attribute_values(":b", s(below.clone())),
            None => query.key_condition_expression("#p = :p"),
        };
        let out = query
            .send()
            .await
            .map_err(|e| internal("list conversations", e))?;
        for item in out.items() {
            if let Some(activity) = get_s(item, keys::VIEW_SK) {
                shard.buffer.push_back(activity.to_owned());
            }
        }
        if let Some(last) = shard.buffer.back() {
            shard.below = Some(last.clone());
        }
        shard.done = out.last_evaluated_key().is_none();
        Ok(())
    }

    /// A page of conversations listed in `views` (their shards merged newest first) that
    /// match `filter` as read now: index entries are read back from the table (consistent),
    /// so what a page shows is current and an entry the index has not caught up with is
    /// skipped.
    pub(super) async fn list_views(
        &self,
        tenant: &TenantId,
        views: &[View],
        filter: &ConversationFilter,
        page: &PageRequest,
        now: DateTime<Utc>,
    ) -> Result<Page<ConversationState>, Error> {
        let below = match &page.cursor {
            Some(c) => Some(decode_cursor(c, 1, "")?.remove(0)),
            None => None,
        };
        let mut shards: Vec<Shard> = views
            .iter()
            .flat_map(|view| {
                let ix = view.index();
                (0..views::SHARDS).map(move |n| (ix, keys::view_partition(tenant, view, n)))
            })
            .map(|(ix, partition)| Shard {
                index: ix.index,
                attribute: ix.attribute,
                partition,
                below: below.clone(),
                done: false,
                buffer: VecDeque::new(),
            })
            .collect();
        let major = shards.len().max(1);
        let limit = usize::from(page.limit);
        let mut found: Vec<ConversationState> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut last: Option<String> = None;
        let mut read = 0usize;
        loop {
            let need = limit - found.len();
            let hungry = shards
                .iter()
                .filter(|x| x.buffer.is_empty() && !x.done)
                .count();
            if hungry > 0 {
                // Each shard's share of the page, and one more: a page usually costs one
                // read per shard and about the page in items.
                let per = need.div_ceil(major) + 1;
                let reads = shards
                    .iter_mut()
                    .filter(|x| x.buffer.is_empty() && !x.done)
                    .map(|x| self.read_shard(x, per));
                for r in futures::future::join_all(reads).await {
                    r?;
                }
            }
            // Merge while every shard that may hold more shows its next entry.
            let mut batch: Vec<String> = Vec::new();
            while batch.len() < need {
                if shards.iter().any(|x| x.buffer.is_empty() && !x.done) {
                    break;
                }
                let Some(next) = shards
                    .iter_mut()
                    .filter(|x| !x.buffer.is_empty())
                    .max_by(|a, b| a.buffer[0].cmp(&b.buffer[0]))
                else {
                    break;
                };
                let Some(activity) = next.buffer.pop_front() else {
                    break;
                };
                read += 1;
                last = Some(activity.clone());
                batch.push(activity);
            }
            let ids: Vec<String> = batch
                .iter()
                .filter_map(|a| keys::conversation_of_activity(a))
                .filter(|id| seen.insert((*id).to_owned()))
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                let items = self
                    .batch_get_consistent(
                        ids.iter()
                            .map(|id| keys::conversation(tenant, id))
                            .collect(),
                        true,
                        "read listed conversations",
                    )
                    .await?;
                let mut by_id: HashMap<String, ConversationState> = HashMap::new();
                for item in &items {
                    let state = conversation_from(item)?;
                    by_id.insert(state.id.clone(), state);
                }
                for id in &ids {
                    if let Some(state) = by_id.remove(id)
                        && filter.matches(&state, now)
                    {
                        found.push(state);
                    }
                }
            }
            let exhausted = shards.iter().all(|x| x.done && x.buffer.is_empty());
            if exhausted {
                return Ok(Page {
                    items: found,
                    next_cursor: None,
                });
            }
            if found.len() >= limit || read >= MAX_ENTRIES_READ {
                return Ok(Page {
                    items: found,
                    next_cursor: last.map(|a| encode_cursor(&[&a])),
                });
            }
        }
    }
}
