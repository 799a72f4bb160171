//! Reading conversations (through the list views, see `views.rs`) and messages (newest
//! first).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Deserialize;

use super::inbound::{MessageRecord, status_of};
use super::{DynamoStore, get_s, internal};
use crate::Error;
use crate::adapters::keys;
use crate::domain::bot::{ActiveBot, BotRun};
use crate::domain::channel::ChannelType;
use crate::domain::conversation::{
    ConversationFilter, ConversationState, ConversationStatus, CustomerRef, MediaRef, Message,
};
use crate::domain::ids::TenantId;
use crate::domain::message::{DeliveryError, DeliveryStatus, Direction, MessageKind};
use crate::domain::page::{Page, PageRequest};
use crate::domain::time::parse_rfc3339;
use crate::domain::views::{needs_channels_of_type, plan};
use crate::domain::window::WindowPolicy;
use crate::ports::ConversationReader;
use chrono::{DateTime, Utc};

fn default_window() -> u8 {
    24
}

#[derive(Debug, Deserialize)]
struct ConversationRecord {
    id: String,
    channel_id: String,
    channel_type: String,
    #[serde(default = "default_window")]
    window_hours: u8,
    #[serde(default)]
    human_agent: bool,
    customer_id: String,
    customer_external_id: String,
    #[serde(default)]
    customer_name: Option<String>,
    /// The name an agent gave the customer (PATCH /customers/{id}); wins over the profile's.
    #[serde(default)]
    customer_name_override: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    assignee: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    unread_count: i64,
    last_message_at: String,
    #[serde(default)]
    last_inbound_at: Option<String>,
    #[serde(default)]
    last_inbound_pid: Option<String>,
    #[serde(default)]
    snoozed_until: Option<String>,
    #[serde(default)]
    views_version: u64,
    #[serde(default)]
    gsi1sk: Option<String>,
    #[serde(default)]
    replies_since_inbound: u32,
    #[serde(default)]
    preview: String,
    #[serde(default)]
    bot_id: Option<String>,
    #[serde(default)]
    bot_name: Option<String>,
    #[serde(default)]
    bot_since: Option<String>,
    #[serde(default)]
    bot_step: Option<String>,
    #[serde(default)]
    bot_asked: u8,
    #[serde(default)]
    bot_waiting_since: Option<String>,
    #[serde(default)]
    bot_timeout_minutes: u32,
    #[serde(default)]
    bot_blocked: bool,
    #[serde(default)]
    bot_version: u64,
    #[serde(default)]
    reply_cancels: i64,
}

impl ConversationRecord {
    fn into_state(self) -> Result<ConversationState, Error> {
        let corrupt = |what: &str| {
            Error::Internal(format!("stored conversation {} has a bad {what}", self.id))
        };
        Ok(ConversationState {
            policy: WindowPolicy {
                channel_type: ChannelType::parse(&self.channel_type)
                    .ok_or_else(|| corrupt("channel_type"))?,
                window_hours: self.window_hours,
                human_agent: self.human_agent,
            },
            status: self
                .status
                .as_deref()
                .and_then(ConversationStatus::parse)
                .unwrap_or(ConversationStatus::Open),
            last_message_at: parse_rfc3339(&self.last_message_at)
                .ok_or_else(|| corrupt("last_message_at"))?,
            last_inbound_at: self.last_inbound_at.as_deref().and_then(parse_rfc3339),
            unread_count: u32::try_from(self.unread_count.max(0)).unwrap_or(u32::MAX),
            customer: CustomerRef {
                id: self.customer_id,
                name_overridden: self.customer_name_override.is_some(),
                name: self.customer_name_override.or(self.customer_name),
                external_id: self.customer_external_id,
            },
            id: self.id,
            channel_id: self.channel_id,
            assignee: self.assignee,
            labels: self.labels,
            replies_since_inbound: self.replies_since_inbound,
            last_inbound_provider_message_id: self.last_inbound_pid,
            snoozed_until: self.snoozed_until.as_deref().and_then(parse_rfc3339),
            views_version: self.views_version,
            activity: self.gsi1sk,
            preview: self.preview,
            bot: BotRun {
                active: match (
                    self.bot_id,
                    self.bot_since.as_deref().and_then(parse_rfc3339),
                ) {
                    (Some(bot_id), Some(since)) => Some(ActiveBot {
                        bot_id,
                        name: self.bot_name.unwrap_or_default(),
                        since,
                        step: self.bot_step.unwrap_or_default(),
                        asked: self.bot_asked.max(1),
                        waiting_since: self
                            .bot_waiting_since
                            .as_deref()
                            .and_then(parse_rfc3339)
                            .unwrap_or(since),
                        timeout_minutes: self.bot_timeout_minutes,
                    }),
                    _ => None,
                },
                blocked: self.bot_blocked,
                version: self.bot_version,
            },
            reply_cancels: u32::try_from(self.reply_cancels.max(0)).unwrap_or(u32::MAX),
        })
    }
}

pub(super) fn conversation_from(
    item: &HashMap<String, AttributeValue>,
) -> Result<ConversationState, Error> {
    serde_dynamo::from_item::<_, ConversationRecord>(item.clone())
        .map_err(|e| internal("decode conversation", e))?
        .into_state()
}

fn named<T: serde::de::DeserializeOwned>(v: &str) -> Result<T, serde_json::Error> {
    serde_json::from_value(serde_json::Value::String(v.to_owned()))
}

pub(super) fn message_from(item: &HashMap<String, AttributeValue>) -> Result<Message, Error> {
    let r: MessageRecord =
        serde_dynamo::from_item(item.clone()).map_err(|e| internal("decode message", e))?;
    let corrupt = |what: &str| Error::Internal(format!("stored message {} has a bad {what}", r.id));
    let direction: Direction = named(&r.direction).map_err(|_| corrupt("direction"))?;
    let kind: MessageKind = named(&r.kind).map_err(|_| corrupt("kind"))?;
    let status = DeliveryStatus::parse(&r.status).ok_or_else(|| corrupt("status"))?;
    let has_media = r.media_id.is_some()
        || r.media_mime_type.is_some()
        || r.media_provider_id.is_some()
        || r.media_url.is_some();
    Ok(Message {
        media: has_media.then(|| MediaRef {
            media_id: r.media_id.clone(),
            mime_type: r.media_mime_type.clone(),
            size: r.media_size,
            status: r.media_status.clone(),
            reason: r.media_reason.clone(),
        }),
        error: r.error_code.clone().map(|code| DeliveryError {
            code,
            reason: r.error_reason.clone().unwrap_or_default(),
            hint: r.error_hint.clone().unwrap_or_default(),
        }),
        created_at: parse_rfc3339(&r.created_at).ok_or_else(|| corrupt("created_at"))?,
        raw: r
            .raw
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(serde_json::Value::Null),
        actor: r
            .actor
            .clone()
            .or_else(|| r.sent_by.clone().map(crate::domain::actor::Actor::agent)),
        event: r
            .event
            .as_deref()
            .and_then(crate::domain::system::SystemEvent::parse),
        reason: r.reason,
        id: r.id,
        conversation_id: r.conversation_id,
        direction,
        kind,
        text: r.text,
        status,
        provider_message_id: r.provider_message_id,
        reply_to: r.reply_to,
    })
}

impl ConversationReader for DynamoStore {
    async fn list_conversations(
        &self,
        tenant: &TenantId,
        filter: &ConversationFilter,
        page: &PageRequest,
        now: DateTime<Utc>,
    ) -> Result<Page<ConversationState>, Error> {
        // `channel=` alone reads the views of the tenant's channels of that type.
        let of_type = match filter.channel {
            Some(channel_type) if needs_channels_of_type(filter) => {
                self.channels_of_type(tenant, channel_type).await?
            }
            _ => Vec::new(),
        };
        let views = plan(filter, &of_type);
        if views.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        self.list_views(tenant, &views, filter, page, now).await
    }

    async fn get_conversation(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ConversationState>, Error> {
        if !id.starts_with("cv_") || id.len() > 64 || id.contains('#') {
            return Ok(None);
        }
        self.get_consistent(keys::conversation(tenant, id), "get conversation")
            .await?
            .as_ref()
            .map(conversation_from)
            .transpose()
    }

    async fn list_messages(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Message>, Error> {
        let (items, next_cursor) = self
            .query_prefix(
                keys::messages_pk(tenant, conversation_id),
                keys::MESSAGE_PREFIX,
                page,
                true,
                "list messages",
            )
            .await?;
        let mut items = items
            .iter()
            .map(message_from)
            .collect::<Result<Vec<_>, _>>()?;
        self.merge_statuses(tenant, conversation_id, &mut items)
            .await?;
        Ok(Page { items, next_cursor })
    }
}

impl DynamoStore {
    /// The statuses kept on provider id items of a conversation (one consistent batch
    /// read per 100 ids).
    pub(super) async fn provider_statuses(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        provider_ids: &[String],
    ) -> Result<HashMap<String, (DeliveryStatus, Option<DeliveryError>)>, Error> {
        // Keys still unprocessed after retries are given up on: those messages then show
        // their recorded status.
        Ok(self
            .provider_items(tenant, conversation_id, provider_ids)
            .await?
            .into_iter()
            .filter_map(|(pid, item)| Some((pid, status_of(&item)?)))
            .collect())
    }

    /// The provider id items of a conversation, by provider id (one consistent batch read
    /// per 100 ids; keys still unprocessed after retries are given up on).
    async fn provider_items(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        provider_ids: &[String],
    ) -> Result<HashMap<String, HashMap<String, AttributeValue>>, Error> {
        let keys = provider_ids
            .iter()
            .map(|pid| keys::provider_message(tenant, conversation_id, pid))
            .collect();
        let items = self
            .batch_get_consistent(keys, false, "read statuses")
            .await?;
        Ok(items
            .into_iter()
            .filter_map(|item| {
                let pid = get_s(&item, keys::SK)?
                    .strip_prefix(keys::PROVIDER_MESSAGE_PREFIX)?
                    .to_owned();
                Some((pid, item))
            })
            .collect())
    }

    /// Outbound messages take their delivery status from their provider id item (where
    /// status webhooks write it), and every message the changes kept there (edits,
    /// deletions, reactions, plays, billing objects): one consistent batch read per page.
    pub(super) async fn merge_statuses(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        messages: &mut [Message],
    ) -> Result<(), Error> {
        let wanted: Vec<String> = messages
            .iter()
            .filter(|m| m.direction != Direction::System)
            .filter_map(|m| m.provider_message_id.clone())
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let found = self
            .provider_items(tenant, conversation_id, &wanted)
            .await?;
        for m in messages.iter_mut() {
            let Some(item) = m
                .provider_message_id
                .as_ref()
                .and_then(|pid| found.get(pid))
            else {
                continue;
            };
            super::lifecycle::decorate(m, item);
            if m.direction != Direction::Outbound {
                continue;
            }
            let Some((status, error)) = status_of(item) else {
                continue;
            };
            if m.status.can_become(status) {
                m.status = status;
                m.error = error.or(m.error.take());
            }
        }
        Ok(())
    }
}
