//! S3 adapter: presigned POST uploads, ranged reads, checksum copies, presigned downloads.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::Error;
use crate::domain::media::Claim;
use crate::domain::sniff::Blob;
use crate::ports::{Copied, ObjectStore, ObjectWriter, OpenedObject, PresignedUpload};

fn internal(context: &str, err: impl std::error::Error) -> Error {
    Error::Internal(format!("{context}: {}", DisplayErrorContext(err)))
}

/// The media bucket through one shared client.
#[derive(Debug, Clone)]
pub struct S3Media {
    client: Client,
    bucket: String,
    region: String,
    /// Base URL uploads go to (`https://<bucket>.s3.<region>.amazonaws.com`, or the
    /// emulator's `<endpoint>/<bucket>`).
    upload_url: String,
    credentials: SharedCredentialsProvider,
}

impl S3Media {
    /// Opens an empty object (a range on it is unsatisfiable) from its head.
    async fn open_empty(&self, key: &str) -> Result<Option<OpenedObject<S3Blob>>, Error> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match head {
            Ok(h) => Ok(Some(OpenedObject {
                blob: S3Blob {
                    client: self.client.clone(),
                    bucket: self.bucket.clone(),
                    key: key.to_owned(),
                    size: h
                        .content_length()
                        .and_then(|l| u64::try_from(l).ok())
                        .unwrap_or(0),
                    etag: h.e_tag().map(str::to_owned),
                    first: None,
                },
                content_type: h.content_type().map(str::to_owned),
                inbound: labelled_inbound(h.metadata()),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(internal("head object", e)),
        }
    }

    /// Wraps a client (built once per process) and the bucket.
    pub fn new(
        client: Client,
        bucket: impl Into<String>,
        region: impl Into<String>,
        endpoint_url: Option<&str>,
        credentials: SharedCredentialsProvider,
    ) -> Self {
        let bucket = bucket.into();
        let region = region.into();
        let upload_url = match endpoint_url {
            Some(endpoint) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        Self {
            client,
            bucket,
            region,
            upload_url,
            credentials,
        }
    }
}

/// Object metadata marking customer media we fetched (`x-amz-meta-origin`). An upload
/// form cannot set it: S3 refuses form fields its policy does not name.
const ORIGIN: &str = "origin";
const INBOUND: &str = "inbound";

/// Whether an object's metadata carries our customer-media label.
fn labelled_inbound(metadata: Option<&std::collections::HashMap<String, String>>) -> bool {
    metadata
        .and_then(|m| m.get(ORIGIN))
        .is_some_and(|v| v == INBOUND)
}

/// Ranged GETs over one object, pinned to the version first read.
#[derive(Debug)]
pub struct S3Blob {
    client: Client,
    bucket: String,
    key: String,
    size: u64,
    etag: Option<String>,
    /// The bytes read when it was opened (from offset 0), until asked for.
    first: Option<Vec<u8>>,
}

/// The total size in a `Content-Range: bytes 0-65535/123456`.
fn range_total(content_range: &str) -> Option<u64> {
    content_range.rsplit_once('/')?.1.trim().parse().ok()
}

/// The object changed while it was read (a 412 on a pinned read or copy).
fn changed() -> Error {
    Error::conflict(
        "object_changed",
        "the object was replaced while it was being checked",
    )
}

impl Blob for S3Blob {
    fn len(&self) -> u64 {
        self.size
    }

    fn version(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    async fn read_at(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        if len == 0 || offset >= self.size {
            return Ok(Vec::new());
        }
        let wanted = len.min(self.size - offset);
        if let Some(mut first) = self
            .first
            .take_if(|f| offset == 0 && f.len() as u64 >= wanted)
        {
            first.truncate(usize::try_from(wanted).unwrap_or(usize::MAX));
            return Ok(first);
        }
        let last = (offset + len).min(self.size) - 1;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .range(format!("bytes={offset}-{last}"))
            .set_if_match(self.etag.clone())
            .send()
            .await
            .map_err(|e| {
                if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) {
                    changed()
                } else {
                    internal("ranged get", e)
                }
            })?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| Error::Internal(format!("read object body: {e}")))?;
        Ok(bytes.to_vec())
    }
}

/// The hex SHA-256 of a stored full-object checksum (base64; a composite one ends in
/// `-<parts>`).
fn sha256_hex(checksum: Option<&str>) -> Result<String, Error> {
    let checksum =
        checksum.ok_or_else(|| Error::Internal("the store gave no SHA-256 checksum".into()))?;
    let digest = STANDARD
        .decode(checksum.split('-').next().unwrap_or_default())
        .map_err(|_| Error::Internal("the store gave a malformed checksum".into()))?;
    Ok(hex::encode(digest))
}

/// Size of one multipart part (S3's minimum is 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Writes an object: one PutObject when it fits in a part, else a multipart upload.
#[derive(Debug)]
pub struct S3Writer {
    client: Client,
    bucket: String,
    key: String,
    content_type: String,
    inbound: bool,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    written: u64,
}

impl S3Writer {
    async fn flush_part(&mut self) -> Result<(), Error> {
        if self.upload_id.is_none() {
            let created = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type(&self.content_type)
                .set_metadata(self.metadata())
                .send()
                .await
                .map_err(|e| internal("start multipart upload", e))?;
            self.upload_id = created.upload_id().map(str::to_owned);
        }
        let number = i32::try_from(self.parts.len() + 1)
            .map_err(|_| Error::Internal("too many parts".into()))?;
        let body = std::mem::take(&mut self.buffer);
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_upload_id(self.upload_id.clone())
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| internal("upload part", e))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(part.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }
}

impl ObjectWriter for S3Writer {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), Error> {
        self.buffer.extend_from_slice(chunk);
        self.written += chunk.len() as u64;
        if self.buffer.len() >= PART_SIZE {
            self.flush_part().await?;
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<u64, Error> {
        let result = self.complete().await;
        if result.is_err() {
            self.abort_upload().await;
        }
        result
    }

    async fn abort(self) {
        self.abort_upload().await;
    }
}

impl S3Writer {
    fn metadata(&self) -> Option<std::collections::HashMap<String, String>> {
        self.inbound
            .then(|| [(ORIGIN.to_owned(), INBOUND.to_owned())].into())
    }

    async fn complete(&mut self) -> Result<u64, Error> {
        if self.upload_id.is_none() {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type(&self.content_type)
                .set_metadata(self.metadata())
                .body(ByteStream::from(std::mem::take(&mut self.buffer)))
                .send()
                .await
                .map_err(|e| internal("put object", e))?;
            return Ok(self.written);
        }
        if !self.buffer.is_empty() {
            self.flush_part().await?;
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_upload_id(self.upload_id.clone())
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| internal("complete multipart upload", e))?;
        Ok(self.written)
    }

    async fn abort_upload(&self) {
        if let Some(id) = &self.upload_id {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(id)
                .send()
                .await;
        }
    }
}

impl ObjectStore for S3Media {
    type Blob = S3Blob;
    type Writer = S3Writer;

    fn writer(&self, key: &str, claim: &Claim) -> S3Writer {
        S3Writer {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            content_type: claim.media_type.mime.to_owned(),
            inbound: claim.inbound,
            buffer: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            written: 0,
        }
    }

    async fn presign_upload(
        &self,
        key: &str,
        content_type: &str,
        max_size: u64,
        ttl: Duration,
    ) -> Result<PresignedUpload, Error> {
        let creds = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| Error::Internal(format!("credentials for signing: {e}")))?;
        let now = SystemTime::now();
        let at: DateTime<Utc> = now.into();
        let expires_at =
            at + chrono::Duration::from_std(ttl).map_err(|_| Error::Internal("ttl".into()))?;
        let date = at.format("%Y%m%d").to_string();
        let amz_date = at.format("%Y%m%dT%H%M%SZ").to_string();
        let credential = format!(
            "{}/{date}/{}/s3/aws4_request",
            creds.access_key_id(),
            self.region
        );
        let mut conditions = vec![
            json!({"bucket": self.bucket}),
            json!({"key": key}),
            json!({"Content-Type": content_type}),
            json!(["content-length-range", 1, max_size]),
            json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}),
            json!({"x-amz-credential": credential}),
            json!({"x-amz-date": amz_date}),
        ];
        if let Some(token) = creds.session_token() {
            conditions.push(json!({"x-amz-security-token": token}));
        }
        let policy = json!({
            "expiration": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "conditions": conditions,
        });
        let policy = STANDARD.encode(policy.to_string());
        let key_bytes = aws_sigv4::sign::v4::generate_signing_key(
            creds.secret_access_key(),
            now,
            &self.region,
            "s3",
        );
        let signature = aws_sigv4::sign::v4::calculate_signature(key_bytes, policy.as_bytes());
        let mut fields = vec![
            ("key".to_owned(), key.to_owned()),
            ("Content-Type".to_owned(), content_type.to_owned()),
            ("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
            ("x-amz-credential".to_owned(), credential),
            ("x-amz-date".to_owned(), amz_date),
        ];
        if let Some(token) = creds.session_token() {
            fields.push(("x-amz-security-token".to_owned(), token.to_owned()));
        }
        fields.push(("policy".to_owned(), policy));
        fields.push(("x-amz-signature".to_owned(), signature));
        Ok(PresignedUpload {
            url: self.upload_url.clone(),
            method: "POST",
            fields,
            expires_at,
        })
    }

    async fn open(
        &self,
        key: &str,
        first: Option<u64>,
    ) -> Result<Option<OpenedObject<S3Blob>>, Error> {
        let read = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(first.map(|n| format!("bytes=0-{}", n.max(1) - 1)))
            .send()
            .await;
        let out = match read {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            // A range on an empty object is unsatisfiable: learn the rest from its head.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                return self.open_empty(key).await;
            }
            Err(e) => return Err(internal("get object", e)),
        };
        let size = out
            .content_range()
            .and_then(range_total)
            .or_else(|| out.content_length().and_then(|l| u64::try_from(l).ok()))
            .unwrap_or(0);
        let etag = out.e_tag().map(str::to_owned);
        let content_type = out.content_type().map(str::to_owned);
        let inbound = labelled_inbound(out.metadata());
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| Error::Internal(format!("read object body: {e}")))?;
        Ok(Some(OpenedObject {
            blob: S3Blob {
                client: self.client.clone(),
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                size,
                etag,
                first: Some(bytes.to_vec()),
            },
            content_type,
            inbound,
        }))
    }

    async fn copy_with_sha256(
        &self,
        from: &str,
        to: &str,
        version: Option<&str>,
    ) -> Result<Copied, Error> {
        let copied = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(format!("{}/{from}", self.bucket))
            .set_copy_source_if_match(version.map(str::to_owned))
            .if_none_match("*")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await;
        match copied {
            Ok(out) => Ok(Copied {
                sha256: sha256_hex(out.copy_object_result().and_then(|r| r.checksum_sha256()))?,
                created: true,
            }),
            // Either `to` exists already (an earlier run copied this version), or the
            // source is no longer at `version`.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
                let head = self
                    .client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(to)
                    .checksum_mode(ChecksumMode::Enabled)
                    .send()
                    .await;
                match head {
                    Ok(h) => Ok(Copied {
                        sha256: sha256_hex(h.checksum_sha256())?,
                        created: false,
                    }),
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                        Err(changed())
                    }
                    Err(e) => Err(internal("head copied object", e)),
                }
            }
            Err(e) => Err(internal("copy object", e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| internal("delete object", e))?;
        Ok(())
    }

    async fn presign_download(&self, key: &str, ttl: Duration) -> Result<String, Error> {
        let config = PresigningConfig::expires_in(ttl)
            .map_err(|e| Error::Internal(format!("presign: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| internal("presign download", e))?;
        Ok(request.uri().to_owned())
    }
}
