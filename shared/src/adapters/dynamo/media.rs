//! Media records: one item per upload in the tenant's partition.

use serde::{Deserialize, Serialize};

use super::{DynamoStore, Expr, internal, key_item, n, s};
use crate::Error;
use crate::adapters::keys;
use crate::domain::ids::TenantId;
use crate::domain::media::{MediaKind, MediaRecord, MediaStatus, Settlement, media_type};
use crate::domain::time::{parse_rfc3339, rfc3339};
use crate::ports::MediaStore;

#[derive(Debug, Serialize, Deserialize)]
struct MediaItem {
    id: String,
    tenant_id: String,
    status: String,
    filename: String,
    mime_type: String,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    created_at: String,
    #[serde(default)]
    inbound: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
}

impl MediaItem {
    fn into_record(self) -> Result<MediaRecord, Error> {
        let corrupt =
            |what: &str| Error::Internal(format!("stored media {} has a bad {what}", self.id));
        let kind: MediaKind = media_type(&self.mime_type)
            .ok_or_else(|| corrupt("mime_type"))?
            .kind;
        Ok(MediaRecord {
            tenant_id: TenantId::parse(&self.tenant_id).map_err(|_| corrupt("tenant"))?,
            status: MediaStatus::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            created_at: parse_rfc3339(&self.created_at).ok_or_else(|| corrupt("created_at"))?,
            kind,
            id: self.id,
            filename: self.filename,
            mime_type: self.mime_type,
            size: self.size,
            sha256: self.sha256,
            reason_code: self.reason_code,
            reason: self.reason,
            inbound: self.inbound,
            version: self.version,
        })
    }
}

impl MediaStore for DynamoStore {
    async fn create_media(&self, r: &MediaRecord) -> Result<(), Error> {
        let item = MediaItem {
            id: r.id.clone(),
            tenant_id: r.tenant_id.to_string(),
            status: r.status.as_str().into(),
            filename: r.filename.clone(),
            mime_type: r.mime_type.clone(),
            size: r.size,
            sha256: None,
            reason_code: None,
            reason: None,
            created_at: rfc3339(&r.created_at),
            inbound: r.inbound,
            version: r.version.clone(),
        };
        let mut item: std::collections::HashMap<_, _> =
            serde_dynamo::to_item(item).map_err(|e| internal("encode media", e))?;
        item.extend(key_item(keys::media(&r.tenant_id, &r.id)));
        item.insert(keys::ENTITY.into(), s("media"));
        self.put_new(item)
            .send()
            .await
            .map_err(|e| internal("create media", e))?;
        Ok(())
    }

    async fn get_media(&self, tenant: &TenantId, id: &str) -> Result<Option<MediaRecord>, Error> {
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        self.get_consistent(keys::media(tenant, id), "get media")
            .await?
            .map(|item| {
                serde_dynamo::from_item::<_, MediaItem>(item)
                    .map_err(|e| internal("decode media", e))
                    .and_then(MediaItem::into_record)
            })
            .transpose()
    }

    async fn settle_media(&self, r: &Settlement) -> Result<bool, Error> {
        let key = keys::media(&r.tenant_id, &r.id);
        let mut e = Expr::default();
        e.set("status", s(r.status.as_str()))
            .set("mime_type", s(&r.mime_type))
            .set("size", n(r.size));
        for (name, value) in [
            ("sha256", &r.sha256),
            ("version", &r.version),
            ("reason_code", &r.reason_code),
            ("reason", &r.reason),
        ] {
            if let Some(v) = value {
                e.set(name, s(v));
            }
        }
        let status = e.name("status");
        let pending = e.value(s(MediaStatus::Pending.as_str()));
        let mut condition = format!("{status} = {pending}");
        if let Some(claim) = &r.claim {
            // The declaration the content was checked against must be the record's.
            let mime = e.name("mime_type");
            let declared = e.value(s(claim.media_type.mime));
            let inbound = e.name("inbound");
            let flag = e.value(aws_sdk_dynamodb::types::AttributeValue::Bool(claim.inbound));
            condition.push_str(&format!(" AND {mime} = {declared} AND "));
            condition.push_str(&if claim.inbound {
                format!("{inbound} = {flag}")
            } else {
                format!("(attribute_not_exists({inbound}) OR {inbound} = {flag})")
            });
        }
        self.conditional_update(key, &e, &condition, "settle media")
            .await
    }
}
