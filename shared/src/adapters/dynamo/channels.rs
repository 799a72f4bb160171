//! Channels: the tenant's list, and the deployment-wide routing records.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DynamoStore, get_s, internal, key_item, s};
use crate::Error;
use crate::adapters::keys::{self, Key};
use crate::domain::channel::{Channel, ChannelType, Credentials, Secret};
use crate::domain::ids::{ChannelId, TenantId};
use crate::domain::page::{Page, PageRequest};
use crate::domain::time::rfc3339;
use crate::ports::{ChannelDirectory, ChannelStore, RoutedChannel};

/// Credential attributes of a routing record.
const CREDENTIAL_FIELDS: [&str; 5] = [
    "access_token",
    "app_secret",
    "app_id",
    "token",
    "encoding_aes_key",
];

/// The stored shape of a channel's public fields.
#[derive(Debug, Serialize, Deserialize)]
struct ChannelRecord {
    id: String,
    tenant_id: String,
    #[serde(rename = "type")]
    channel_type: String,
    external_id: String,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    waba_id: Option<String>,
    human_agent: bool,
    window_hours: u8,
    created_at: String,
}

impl ChannelRecord {
    fn from_channel(c: &Channel) -> Self {
        Self {
            id: c.id.to_string(),
            tenant_id: c.tenant_id.to_string(),
            channel_type: c.channel_type.as_str().into(),
            external_id: c.external_id.clone(),
            name: c.name.clone(),
            waba_id: c.waba_id.clone(),
            human_agent: c.human_agent,
            window_hours: c.window_hours,
            created_at: rfc3339(&c.created_at),
        }
    }

    fn into_channel(self) -> Result<Channel, Error> {
        let corrupt =
            |what: &str| Error::Internal(format!("stored channel {} has a bad {what}", self.id));
        Ok(Channel {
            id: ChannelId::parse(&self.id).map_err(|_| corrupt("id"))?,
            tenant_id: TenantId::parse(&self.tenant_id).map_err(|_| corrupt("tenant_id"))?,
            channel_type: ChannelType::parse(&self.channel_type).ok_or_else(|| corrupt("type"))?,
            created_at: DateTime::parse_from_rfc3339(&self.created_at)
                .map_err(|_| corrupt("created_at"))?
                .with_timezone(&Utc),
            external_id: self.external_id,
            name: self.name,
            waba_id: self.waba_id,
            human_agent: self.human_agent,
            window_hours: self.window_hours,
        })
    }

    fn item(&self, key: Key, entity: &str) -> Result<HashMap<String, AttributeValue>, Error> {
        let mut item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(self).map_err(|e| internal("encode channel", e))?;
        item.extend(key_item(key));
        item.insert(keys::ENTITY.into(), s(entity));
        Ok(item)
    }
}

fn routing_item(
    channel: &Channel,
    credentials: &Credentials,
    key: Key,
) -> Result<HashMap<String, AttributeValue>, Error> {
    let mut item = ChannelRecord::from_channel(channel).item(key, "channel_route")?;
    let values = [
        &credentials.access_token,
        &credentials.app_secret,
        &credentials.app_id,
        &credentials.token,
        &credentials.encoding_aes_key,
    ];
    for (name, value) in CREDENTIAL_FIELDS.iter().zip(values) {
        if let Some(secret) = value {
            item.insert((*name).into(), s(secret.expose()));
        }
    }
    Ok(item)
}

pub(super) fn routed_from_item(
    item: HashMap<String, AttributeValue>,
) -> Result<RoutedChannel, Error> {
    let secret = |name: &str| get_s(&item, name).map(Secret::new);
    let credentials = Credentials {
        access_token: secret("access_token"),
        app_secret: secret("app_secret"),
        app_id: secret("app_id"),
        token: secret("token"),
        encoding_aes_key: secret("encoding_aes_key"),
    };
    let record: ChannelRecord =
        serde_dynamo::from_item(item).map_err(|e| internal("decode channel route", e))?;
    Ok(RoutedChannel {
        channel: record.into_channel()?,
        credentials,
    })
}

impl DynamoStore {
    async fn routing_record(&self, key: Key) -> Result<Option<RoutedChannel>, Error> {
        self.get_consistent(key, "get channel route")
            .await?
            .map(routed_from_item)
            .transpose()
    }
}

impl ChannelDirectory for DynamoStore {
    async fn by_external_id(&self, external_id: &str) -> Result<Option<RoutedChannel>, Error> {
        self.routing_record(keys::channel_external_id(external_id))
            .await
    }

    async fn by_id(&self, id: &ChannelId) -> Result<Option<RoutedChannel>, Error> {
        self.routing_record(keys::channel_route(id)).await
    }
}

impl ChannelStore for DynamoStore {
    async fn create_channel(
        &self,
        channel: &Channel,
        credentials: &Credentials,
    ) -> Result<(), Error> {
        let record = ChannelRecord::from_channel(channel);
        let listed = record.item(keys::channel(&channel.tenant_id, &channel.id), "channel")?;
        let claim = routing_item(
            channel,
            credentials,
            keys::channel_external_id(&channel.external_id),
        )?;
        let route = routing_item(channel, credentials, keys::channel_route(&channel.id))?;

        let put = |item: HashMap<String, AttributeValue>| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(|e| internal("build put", e))
        };
        let tenant_key = keys::tenant(&channel.tenant_id);
        let tenant = Update::builder()
            .table_name(&self.table)
            .key(keys::PK, s(tenant_key.pk))
            .key(keys::SK, s(tenant_key.sk))
            .update_expression(
                "SET #entity = :entity, created_at = if_not_exists(created_at, :now)",
            )
            .expression_attribute_names("#entity", keys::ENTITY)
            .expression_attribute_values(":entity", s("tenant"))
            .expression_attribute_values(":now", s(rfc3339(&channel.created_at)))
            .build()
            .map_err(|e| internal("build update", e))?;

        // The claim comes first: its cancellation reason says "taken".
        let result = self
            .client
            .transact_write_items()
            .transact_items(put(claim)?)
            .transact_items(put(listed)?)
            .transact_items(put(route)?)
            .transact_items(TransactWriteItem::builder().update(tenant).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.into_service_error() {
                TransactWriteItemsError::TransactionCanceledException(cancel)
                    if cancel.cancellation_reasons().first().and_then(|r| r.code())
                        == Some("ConditionalCheckFailed") =>
                {
                    Err(Error::conflict(
                        "external_id_taken",
                        "a channel with this external_id is already connected",
                    ))
                }
                other => Err(internal("create channel", other)),
            },
        }
    }

    async fn list_channels(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<Channel>, Error> {
        let (items, next_cursor) = self
            .query_prefix(
                keys::tenant(tenant).pk,
                keys::CHANNEL_PREFIX,
                page,
                false,
                "list channels",
            )
            .await?;
        let items = items
            .into_iter()
            .map(|item| {
                serde_dynamo::from_item::<_, ChannelRecord>(item)
                    .map_err(|e| internal("decode channel", e))
                    .and_then(ChannelRecord::into_channel)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next_cursor })
    }
}

impl DynamoStore {
    /// The ids of the tenant's channels of one type (a tenant has a handful: every page
    /// of its channels is read).
    pub(super) async fn channels_of_type(
        &self,
        tenant: &TenantId,
        channel_type: crate::domain::channel::ChannelType,
    ) -> Result<Vec<String>, Error> {
        let mut ids = Vec::new();
        let mut page = crate::domain::page::PageRequest {
            cursor: None,
            limit: 100,
        };
        loop {
            let channels = self.list_channels(tenant, &page).await?;
            ids.extend(
                channels
                    .items
                    .iter()
                    .filter(|c| c.channel_type == channel_type)
                    .map(|c| c.id.to_string()),
            );
            match channels.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => return Ok(ids),
            }
        }
    }
}
