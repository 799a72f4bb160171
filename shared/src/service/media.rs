//! Media uploads: declared checks and a presigned POST, then validation by content when
//! the object arrives, then a short-lived download link for valid files.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::Error;
use crate::domain::auth::Principal;
use crate::domain::media::{
    MediaKind, MediaRecord, MediaStatus, check_declared, clean_key, media_type,
    parse_quarantine_key, quarantine_key,
};
use crate::domain::sniff::{ChunkedReader, inspect};
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
                .presign_download(&clean_key(&record.tenant_id, &record.id), DOWNLOAD_TTL)
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
/// computes), rejected ones deleted. Safe to run twice for the same object.
pub async fn validate_upload(
    store: &impl MediaStore,
    objects: &impl ObjectStore,
    key: &str,
) -> Result<Validation, Error> {
    let Some((tenant, id)) = parse_quarantine_key(key) else {
        warn!("object outside the quarantine layout; ignored");
        return Ok(Validation::ignored());
    };
    let Some(mut record) = store.get_media(&tenant, &id).await? else {
        warn!(tenant = %tenant, media_id = %id, "upload without a media record; deleted");
        objects.delete(key).await?;
        return Ok(Validation::ignored());
    };
    if record.status != MediaStatus::Pending {
        return Ok(Validation::ignored());
    }
    let Some(blob) = objects.open(key).await? else {
        return Ok(Validation::ignored());
    };
    let declared = media_type(&record.mime_type)
        .ok_or_else(|| Error::Internal(format!("media {id} has an unknown declared type")))?;
    let mut reader = ChunkedReader::new(blob);
    let verdict = inspect(&mut reader, declared).await?;
    let (bytes_read, reads) = (reader.bytes_fetched, reader.reads);
    record.size = reader.len();
    let outcome = match verdict {
        Ok(found) => {
            let clean = clean_key(&tenant, &id);
            let sha256 = objects.copy_with_sha256(key, &clean).await?;
            record.status = MediaStatus::Valid;
            record.mime_type = found.mime.to_owned();
            record.sha256 = Some(sha256);
            store.settle_media(&record).await?;
            objects.delete(key).await?;
            Validation {
                outcome: "valid",
                code: None,
                bytes_read,
                reads,
            }
        }
        Err(rejection) => {
            record.status = MediaStatus::Rejected;
            record.reason_code = Some(rejection.code.to_owned());
            record.reason = Some(rejection.reason);
            store.settle_media(&record).await?;
            objects.delete(key).await?;
            Validation {
                outcome: "rejected",
                code: Some(rejection.code),
                bytes_read,
                reads,
            }
        }
    };
    info!(
        tenant = %tenant,
        media_id = %id,
        outcome = outcome.outcome,
        code = outcome.code.unwrap_or("-"),
        bytes_read,
        reads,
        "upload validated"
    );
    Ok(outcome)
}
