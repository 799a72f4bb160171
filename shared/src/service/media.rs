//! Media uploads: declared checks and a presigned POST, then validation by content when
//! the object arrives, then a short-lived download link for valid files.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::Error;
use crate::domain::auth::Principal;
use crate::domain::ids::TenantId;
use crate::domain::media::{
    Claim, MediaKind, MediaRecord, MediaStatus, Settlement, check_declared, clean_key, media_type,
    object_version, parse_quarantine_key, quarantine_key,
};
use crate::domain::sniff::{CHUNK, ChunkedReader, inspect};
use crate::domain::time::serialize_rfc3339;
use crate::ports::{MediaStore, ObjectStore};

/// How long a presigned upload works (S3 enforces it; at most 15 minutes).
pub const UPLOAD_TTL: Duration = Duration::from_secs(10 * 60);
/// How long a download link works.
pub const DOWNLOAD_TTL: Duration = Duration::from_secs(5 * 60);

/// `POST /media`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUpload {
    /// File name with its extension.
    pub filename: String,
    /// Declared MIME type.
    pub content_type: String,
    /// Declared size in bytes.
    pub size: u64,
}

/// The presigned form to send the file with.
#[derive(Debug, Serialize)]
pub struct UploadForm {
    /// Where to send it.
    pub url: String,
    /// `POST` (multipart/form-data: these fields, then `file`).
    pub method: &'static str,
    /// Form fields.
    pub fields: BTreeMap<String, String>,
}

/// The answer to `POST /media`.
#[derive(Debug, Serialize)]
pub struct UploadTicket {
    /// The new media id.
    pub media_id: String,
    /// `pending` until the content is checked.
    pub status: MediaStatus,
    /// How to upload.
    pub upload: UploadForm,
    /// When the upload form stops working.
    #[serde(serialize_with = "serialize_rfc3339")]
    pub expires_at: DateTime<Utc>,
}

/// Checks the declared file and returns a presigned upload into quarantine.
pub async fn create_upload(
    store: &impl MediaStore,
    objects: &impl ObjectStore,
    principal: &Principal,
    request: CreateUpload,
    now: DateTime<Utc>,
) -> Result<UploadTicket, Error> {
    let declared = check_declared(&request.filename, &request.content_type, request.size)?;
    let id = ulid::Ulid::new().to_string();
    let record = MediaRecord {
        id: id.clone(),
        tenant_id: principal.tenant_id.clone(),
        status: MediaStatus::Pending,
        filename: declared.filename.clone(),
        mime_type: declared.media_type.mime.to_owned(),
        kind: declared.media_type.kind,
        size: declared.size,
        sha256: None,
        reason_code: None,
        reason: None,
        created_at: now,
        inbound: false,
        version: None,
    };
    store.create_media(&record).await?;
    let key = quarantine_key(&principal.tenant_id, &id);
    let upload = objects
        .presign_upload(&key, declared.media_type.mime, declared.size, UPLOAD_TTL)
        .await?;
    info!(tenant = %principal.tenant_id, media_id = %id, kind = declared.media_type.kind.as_str(), "upload presigned");
    Ok(UploadTicket {
        media_id: id,
        status: MediaStatus::Pending,
        upload: UploadForm {
            url: upload.url,
            method: upload.method,
            fields: upload.fields.into_iter().collect(),
        },
        expires_at: upload.expires_at,
    })
}

/// A media record as the API shows it.
#[derive(Debug, Serialize)]
pub struct MediaView {
    /// Id.
    pub media_id: String,
    /// pending | valid | rejected.
    pub status: MediaStatus,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// Rejection code (`content_mismatch`, `too_large`, ...).
    pub reason_code: Option<String>,
    /// Kind.
    pub kind: MediaKind,
    /// MIME type (verified once valid).
    pub mime_type: String,
    /// Size in bytes (the real one once checked).
    pub size: u64,
    /// SHA-256 (hex) once valid.
    pub sha256: Option<String>,
    /// Declared file name.
    pub filename: String,
    /// A short-lived download link, once valid.
    pub download_url: Option<String>,
    /// Created.
    #[serde(serialize_with = "serialize_rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// One media record of the caller's tenant (404 for any other).
pub async fn get_media(
    store: &impl MediaStore,
    objects: &impl ObjectStore,
    principal: &Principal,
    id: &str,
) -> Result<MediaView, Error> {
    let record = store
        .get_media(&principal.tenant_id, id)
        .await?
        .ok_or(Error::NotFound { what: "media" })?;
    let download_url = match record.status {
        MediaStatus::Valid => Some(
            objects
                .presign_download(&record.clean_key(), DOWNLOAD_TTL)
                .await?,
        ),
        _ => None,
    };
    Ok(MediaView {
        media_id: record.id,
        status: record.status,
        reason: record.reason,
        reason_code: record.reason_code,
        kind: record.kind,
        mime_type: record.mime_type,
        size: record.size,
        sha256: record.sha256,
        filename: record.filename,
        download_url,
        created_at: record.created_at,
    })
}

/// What validating one object did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// `valid`, `rejected`, or `ignored` (not ours, unknown, already settled, gone).
    pub outcome: &'static str,
    /// Rejection code.
    pub code: Option<&'static str>,
    /// Bytes read from the store to decide.
    pub bytes_read: u64,
    /// Reads sent to the store to decide.
    pub reads: u32,
}

impl Validation {
    fn ignored() -> Self {
        Self {
            outcome: "ignored",
            code: None,
            bytes_read: 0,
            reads: 0,
        }
    }
}

/// Validates an object that arrived in quarantine: by its bytes, against what was
/// declared. Valid files are copied to the clean prefix (with the SHA-256 the store
/// computes); rejected ones are deleted. Safe to run twice for the same object.
///
/// The declaration comes from the object itself, read in the same request as its first
/// bytes: the upload form's policy pins its `Content-Type`, and only our own writer marks
/// customer media. The settle then writes the verdict only if the record is still pending
/// *and* declares the same, so a record that disagrees (or is gone, or settled) is read and
/// decides. A valid file's quarantine copy is left to the bucket's lifecycle rule.
pub async fn validate_upload(
    store: &impl MediaStore,
    objects: &impl ObjectStore,
    key: &str,
) -> Result<Validation, Error> {
    let Some((tenant, id)) = parse_quarantine_key(key) else {
        warn!("object outside the quarantine layout; ignored");
        return Ok(Validation::ignored());
    };
    let Some(object) = objects.open(key, Some(CHUNK)).await? else {
        return Ok(Validation::ignored());
    };
    let labelled = object
        .content_type
        .as_deref()
        .and_then(media_type)
        .map(|media_type| Claim {
            media_type,
            inbound: object.inbound,
        });
    let mut check = Check {
        store,
        objects,
        key,
        tenant: &tenant,
        id: &id,
        reader: ChunkedReader::new(object.blob),
        promoted: None,
    };
    let mut tried = None;
    if let Some(claim) = labelled {
        if let Some(done) = check.decide(claim).await? {
            return Ok(check.finish(done));
        }
        tried = Some(claim);
    }
    // The record disagrees with the object's label, is gone, or was settled already.
    let record = store.get_media(&tenant, &id).await?;
    let claim = match &record {
        Some(r) if r.status == MediaStatus::Pending => r.claim(),
        _ => None,
    };
    let record = match claim {
        Some(claim) if Some(claim) != tried => {
            if let Some(done) = check.decide(claim).await? {
                return Ok(check.finish(done));
            }
            // Settled by another run since the read above: read what it settled.
            store.get_media(&tenant, &id).await?
        }
        _ => record,
    };
    // Nothing settled by this run: remove the copy it made, unless a run over the same
    // upload settled the record on it.
    if let Some(version) = check.promoted.take()
        && record.as_ref().and_then(|r| r.version.as_deref()) != Some(version.as_str())
    {
        objects
            .delete(&clean_key(&tenant, &id, Some(&version)))
            .await?;
    }
    if record.is_none() {
        warn!(tenant = %tenant, media_id = %id, "upload without a media record; deleted");
        objects.delete(key).await?;
    }
    Ok(Validation::ignored())
}

/// One validation run over one opened object.
struct Check<'a, S, O: ObjectStore> {
    store: &'a S,
    objects: &'a O,
    key: &'a str,
    tenant: &'a TenantId,
    id: &'a str,
    reader: ChunkedReader<<O as ObjectStore>::Blob>,
    /// The version copied to `clean/` by this run, if any.
    promoted: Option<String>,
}

impl<S: MediaStore, O: ObjectStore> Check<'_, S, O> {
    /// Checks the content against `claim` and settles the record. `None` when the
    /// record took no settlement (not pending, or declaring otherwise).
    async fn decide(&mut self, claim: Claim) -> Result<Option<Validation>, Error> {
        // A re-upload through the same form while this runs fires its own event: this
        // check stops as soon as it sees the object changed, and never promotes a newer
        // version.
        let verdict = match inspect(&mut self.reader, claim.media_type, claim.max_size()).await {
            Err(Error::Conflict { .. }) => return self.replaced().await,
            other => other?,
        };
        let mut settlement = Settlement {
            tenant_id: self.tenant.clone(),
            id: self.id.to_owned(),
            status: MediaStatus::Rejected,
            mime_type: claim.media_type.mime.to_owned(),
            size: self.reader.len(),
            sha256: None,
            version: None,
            reason_code: None,
            reason: None,
            claim: Some(claim),
        };
        let (outcome, code) = match verdict {
            Ok(found) => {
                let etag = self.reader.version().map(str::to_owned);
                let version = etag
                    .as_deref()
                    .and_then(object_version)
                    .ok_or_else(|| Error::Internal("the upload has no usable ETag".into()))?;
                let clean = clean_key(self.tenant, self.id, Some(&version));
                let copied = match self
                    .objects
                    .copy_with_sha256(self.key, &clean, etag.as_deref())
                    .await
                {
                    Err(Error::Conflict { .. }) => return self.replaced().await,
                    other => other?,
                };
                // A copy already there came from an earlier run over this same upload:
                // it is settled, or about to be, and never this run's to remove.
                if copied.created {
                    self.promoted = Some(version.clone());
                }
                settlement.status = MediaStatus::Valid;
                settlement.mime_type = found.mime.to_owned();
                settlement.sha256 = Some(copied.sha256);
                settlement.version = Some(version);
                ("valid", None)
            }
            Err(rejection) => {
                settlement.reason_code = Some(rejection.code.to_owned());
                settlement.reason = Some(rejection.reason);
                ("rejected", Some(rejection.code))
            }
        };
        if !self.store.settle_media(&settlement).await? {
            return Ok(None);
        }
        if outcome == "valid" {
            self.promoted = None;
        } else {
            // Rejected: this run's own copy from an earlier claim, then the upload.
            self.discard().await?;
            self.objects.delete(self.key).await?;
        }
        Ok(Some(Validation {
            outcome,
            code,
            bytes_read: 0,
            reads: 0,
        }))
    }

    /// The object was replaced while it was checked: the newer upload's own event
    /// decides. A copy this run made earlier goes, unless another run over the same
    /// upload settled the record on it meanwhile (read after the fact, so final).
    async fn replaced(&mut self) -> Result<Option<Validation>, Error> {
        if let Some(version) = &self.promoted {
            let record = self.store.get_media(self.tenant, self.id).await?;
            if record.and_then(|r| r.version).as_ref() == Some(version) {
                self.promoted = None;
            }
        }
        self.discard().await?;
        Ok(Some(Validation::ignored()))
    }

    /// Deletes the clean copy this run made, when no record can point at it.
    async fn discard(&mut self) -> Result<(), Error> {
        if let Some(version) = self.promoted.take() {
            self.objects
                .delete(&clean_key(self.tenant, self.id, Some(&version)))
                .await?;
        }
        Ok(())
    }

    fn finish(&self, mut done: Validation) -> Validation {
        done.bytes_read = self.reader.bytes_fetched;
        done.reads = self.reader.reads;
        if done.outcome != "ignored" {
            info!(
                tenant = %self.tenant,
                media_id = %self.id,
                outcome = done.outcome,
                code = done.code.unwrap_or("-"),
                bytes_read = done.bytes_read,
                reads = done.reads,
                "upload validated"
            );
        }
        done
    }
}

/// A `MessageReceived` event carrying media (the bus's one typed event).
pub use crate::domain::events::{EventMedia, MessageReceived as InboundMediaEvent};

pub use crate::config::ProviderUrls;

/// The ports fetching inbound media uses.
pub struct FetchPorts<'a, D, M, O, F, L, P> {
    /// Channels (for credentials).
    pub directory: &'a D,
    /// Media records.
    pub media: &'a M,
    /// The bucket.
    pub objects: &'a O,
    /// The guarded HTTP client.
    pub fetcher: &'a F,
    /// Message ↔ media links.
    pub links: &'a L,
    /// The provider clients (WeChat's `media/get` and its access token).
    pub provider: &'a P,
}

/// Fetches a customer's media into quarantine at once (provider URLs expire within
/// minutes), where the upload validator checks it like any upload, and links it to the
/// message. A failure marks the message's media `unavailable` with a reason; it is never
/// an error for the webhook (this runs on the event, after the webhook answered).
#[allow(clippy::too_many_lines)]
pub async fn fetch_inbound<D, M, O, F, L, P>(
    ports: FetchPorts<'_, D, M, O, F, L, P>,
    event: &InboundMediaEvent,
    now: DateTime<Utc>,
) -> Result<&'static str, Error>
where
    D: crate::ports::ChannelDirectory,
    M: MediaStore,
    O: ObjectStore,
    F: crate::ports::MediaFetcher,
    L: crate::ports::MessageMedia,
    P: crate::ports::ProviderMedia,
{
    use crate::domain::ids::{ChannelId, TenantId};
    use crate::domain::media::INBOUND_MAX_SIZE;
    use crate::ports::{FetchBody, MediaLink, ObjectWriter};
    use sha2::Digest;

    let (Ok(tenant), Ok(channel_id)) = (
        TenantId::parse(&event.tenant_id),
        ChannelId::parse(&event.channel_id),
    ) else {
        return Ok("ignored");
    };
    let Some(routed) = ports
        .directory
        .by_id(&channel_id)
        .await?
        .filter(|r| r.channel.tenant_id == tenant)
    else {
        warn!(channel_id = %channel_id, "media event for an unknown channel; ignored");
        return Ok("ignored");
    };
    let tenant_ref = &tenant;
    let link = |l: MediaLink| async move {
        ports
            .links
            .link_media(
                tenant_ref,
                &event.conversation_id,
                &event.created_at,
                &event.message_id,
                &l,
            )
            .await
    };
    let unavailable = |reason: String| MediaLink::Unavailable { reason };
    // Where the bytes are, and what the provider says about them: the provider's module
    // knows its protocol; the bytes come through the guarded fetcher.
    let opened = ports
        .provider
        .open_media(ports.fetcher, &routed, &event.media)
        .await;
    let mut mime = event.media.mime_type.clone();
    let mut expected_sha256 = event.media.sha256.clone();
    let opened = opened.map(|o| {
        mime = mime.take().or(o.mime_type);
        expected_sha256 = o.sha256.or(expected_sha256.take());
        o.body
    });
    let mut body = match opened {
        Ok(body) => body,
        Err(reason) => {
            link(unavailable(reason)).await?;
            return Ok("unavailable");
        }
    };
    let mime = mime
        .or_else(|| body.content_type().map(str::to_owned))
        .unwrap_or_default();
    let Some(declared) = media_type(&mime) else {
        link(unavailable(format!(
            "the customer sent a {mime:?} file, a type the chatroom does not accept"
        )))
        .await?;
        return Ok("unavailable");
    };
    if body.declared_len().is_some_and(|l| l > INBOUND_MAX_SIZE) {
        link(unavailable("the file is larger than 100 MB".into())).await?;
        return Ok("unavailable");
    }

    let id = ulid::Ulid::new().to_string();
    let filename = event
        .media
        .filename
        .clone()
        .filter(|f| !f.is_empty() && f.len() <= 255 && !f.contains(['/', '\\']))
        .unwrap_or_else(|| format!("{id}.{}", declared.extensions[0]));
    let record = MediaRecord {
        id: id.clone(),
        tenant_id: tenant.clone(),
        status: MediaStatus::Pending,
        filename,
        mime_type: declared.mime.to_owned(),
        kind: declared.kind,
        size: 0,
        sha256: None,
        reason_code: None,
        reason: None,
        created_at: now,
        inbound: true,
        version: None,
    };
    ports.media.create_media(&record).await?;
    let key = quarantine_key(&tenant, &id);
    let claim = Claim {
        media_type: declared,
        inbound: true,
    };
    let mut writer = ports.objects.writer(&key, &claim);
    let mut hasher = sha2::Sha256::new();
    let mut total: u64 = 0;
    let failure = loop {
        match body.next_chunk().await {
            Ok(Some(chunk)) => {
                total += chunk.len() as u64;
                if total > INBOUND_MAX_SIZE {
                    break Some("the file is larger than 100 MB".to_owned());
                }
                hasher.update(&chunk);
                if let Err(e) = writer.write(&chunk).await {
                    writer.abort().await;
                    return Err(e);
                }
            }
            Ok(None) => break None,
            Err(reason) => break Some(reason),
        }
    };
    let digest = hasher.finalize();
    let failure = failure.or_else(|| match &expected_sha256 {
        Some(expected) if !sha256_matches(expected, &digest) => {
            Some("the downloaded file does not match the provider's SHA-256".to_owned())
        }
        _ => None,
    });
    if let Some(reason) = failure {
        writer.abort().await;
        ports
            .media
            .settle_media(&Settlement {
                tenant_id: tenant.clone(),
                id: id.clone(),
                status: MediaStatus::Rejected,
                mime_type: declared.mime.to_owned(),
                size: total,
                sha256: None,
                version: None,
                reason_code: Some("fetch_failed".into()),
                reason: Some(reason.clone()),
                claim: None,
            })
            .await?;
        link(unavailable(reason)).await?;
        return Ok("unavailable");
    }
    writer.finish().await?;
    link(MediaLink::Fetched {
        media_id: id.clone(),
    })
    .await?;
    info!(tenant = %tenant, media_id = %id, bytes = total, "customer media fetched");
    Ok("fetched")
}

/// Whether a provider's SHA-256 (hex or base64) names these digest bytes.
fn sha256_matches(expected: &str, digest: &[u8]) -> bool {
    use base64::Engine;
    let expected = expected.trim();
    let decoded = if expected.len() == 64 {
        hex::decode(expected).ok()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(expected)
            .ok()
    };
    decoded.is_some_and(|d| d == digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_hashes_match_in_hex_or_base64() {
        use base64::Engine;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(b"hello");
        assert!(sha256_matches(&hex::encode(digest), &digest));
        assert!(sha256_matches(&hex::encode(digest).to_uppercase(), &digest));
        assert!(sha256_matches(
            &base64::engine::general_purpose::STANDARD.encode(digest),
            &digest
        ));
        assert!(!sha256_matches("abc", &digest));
        assert!(!sha256_matches(
            &hex::encode(sha2::Sha256::digest(b"other")),
            &digest
        ));
    }
}
