//! DynamoDB adapter: the chat table behind the store ports.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::adapters::keys::{self, Key};
use crate::domain::channel::{Channel, ChannelType, Credentials};
use crate::domain::ids::{ChannelId, TenantId};
use crate::domain::page::{Page, PageRequest};
use crate::domain::time::rfc3339;
use crate::ports::ChannelStore;

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

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn key_item(key: Key) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (keys::PK.to_owned(), s(key.pk)),
        (keys::SK.to_owned(), s(key.sk)),
    ])
}

/// Encodes the sort key a page stopped at; the partition always comes from the caller's
/// tenant, so a cursor cannot reach into another tenant.
fn encode_cursor(sk: &str) -> String {
    URL_SAFE_NO_PAD.encode(sk)
}

fn decode_cursor(cursor: &str, prefix: &str) -> Result<String, Error> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|sk| sk.starts_with(prefix) && sk.len() > prefix.len())
        .ok_or_else(|| {
            Error::bad_request("invalid_cursor", "the cursor is not one this list returned")
        })
}

/// The stored shape of a channel (public fields only).
#[derive(Debug, Serialize, Deserialize)]
struct ChannelRecord {
    pk: String,
    sk: String,
    entity: String,
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
        let key = keys::channel(&c.tenant_id, &c.id);
        Self {
            pk: key.pk,
            sk: key.sk,
            entity: "channel".into(),
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
            |what: &str| Error::Internal(format!("stored channel {} has a bad {what}", self.sk));
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
}

fn credentials_item(
    channel: &Channel,
    credentials: &Credentials,
) -> HashMap<String, AttributeValue> {
    let mut item = key_item(keys::channel_credentials(&channel.tenant_id, &channel.id));
    item.insert(keys::ENTITY.into(), s("credentials"));
    let fields = [
        ("access_token", &credentials.access_token),
        ("app_secret", &credentials.app_secret),
        ("app_id", &credentials.app_id),
        ("token", &credentials.token),
        ("encoding_aes_key", &credentials.encoding_aes_key),
    ];
    for (name, value) in fields {
        if let Some(secret) = value {
            item.insert(name.into(), s(secret.expose()));
        }
    }
    item
}

impl ChannelStore for DynamoStore {
    async fn create_channel(
        &self,
        channel: &Channel,
        credentials: &Credentials,
    ) -> Result<(), Error> {
        let record = serde_dynamo::to_item(ChannelRecord::from_channel(channel))
            .map_err(|e| internal("encode channel", e))?;

        let mut claim = key_item(keys::channel_external_id(&channel.external_id));
        claim.insert(keys::ENTITY.into(), s("external_id"));
        claim.insert("tenant_id".into(), s(channel.tenant_id.as_str()));
        claim.insert("channel_id".into(), s(channel.id.as_str()));
        claim.insert("type".into(), s(channel.channel_type.as_str()));

        let not_exists = "attribute_not_exists(pk)";
        let put = |item: HashMap<String, AttributeValue>, condition: Option<&str>| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .set_condition_expression(condition.map(str::to_owned))
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

        // The claim comes first: its index in the cancellation reasons says "taken".
        let result = self
            .client
            .transact_write_items()
            .transact_items(put(claim, Some(not_exists))?)
            .transact_items(put(record, Some(not_exists))?)
            .transact_items(put(
                credentials_item(channel, credentials),
                Some(not_exists),
            )?)
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
        let pk = keys::tenant(tenant).pk;
        let start = match &page.cursor {
            Some(cursor) => {
                let sk = decode_cursor(cursor, keys::CHANNEL_PREFIX)?;
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
            .expression_attribute_values(":prefix", s(keys::CHANNEL_PREFIX))
            .set_exclusive_start_key(start)
            .limit(i32::from(page.limit))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| internal("list channels", e))?;
        let items = out
            .items()
            .iter()
            .map(|item| {
                serde_dynamo::from_item::<_, ChannelRecord>(item.clone())
                    .map_err(|e| internal("decode channel", e))
                    .and_then(ChannelRecord::into_channel)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = out
            .last_evaluated_key()
            .and_then(|k| k.get(keys::SK))
            .and_then(|v| v.as_s().ok())
            .map(|sk| encode_cursor(sk));
        Ok(Page { items, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_refuses_other_prefixes() {
        let c = encode_cursor("CHANNEL#01J");
        assert_eq!(
            decode_cursor(&c, keys::CHANNEL_PREFIX).unwrap(),
            "CHANNEL#01J"
        );
        let foreign = encode_cursor("CREDENTIALS#01J");
        assert_eq!(
            decode_cursor(&foreign, keys::CHANNEL_PREFIX)
                .unwrap_err()
                .code(),
            "invalid_cursor"
        );
        assert!(decode_cursor("!!!", keys::CHANNEL_PREFIX).is_err());
    }
}
