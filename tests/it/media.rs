//! The full media path over moto: declare → presigned POST → "Object Created" event →
//! validation by content → GET /media/{id}; nothing bad reaches the clean prefix.

use std::time::{Duration, Instant};

use integration_tests::{get, post_json, stack, token, unique_tenant};
use local_stack::media_files::png;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Declares, uploads through the presigned form, and waits for the verdict.
async fn upload(
    tenant: &str,
    filename: &str,
    content_type: &str,
    declared_size: usize,
    bytes: Vec<u8>,
) -> Value {
    let admin = token(tenant, "agent");
    let ticket = post_json(
        "/media",
        Some(&admin),
        &json!({"filename": filename, "content_type": content_type, "size": declared_size}),
    )
    .await;
    assert_eq!(ticket.status, 201, "{}", ticket.text);
    assert_eq!(ticket.body["status"], "pending");
    assert_eq!(ticket.body["upload"]["method"], "POST");
    let fields = ticket.body["upload"]["fields"]
        .as_object()
        .expect("fields")
        .clone();
    for f in [
        "key",
        "policy",
        "x-amz-signature",
        "x-amz-credential",
        "Content-Type",
    ] {
        assert!(fields.contains_key(f), "upload form has {f}");
    }
    assert!(fields["key"].as_str().unwrap().starts_with("quarantine/"));
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in &fields {
        form = form.text(k.clone(), v.as_str().unwrap().to_owned());
    }
    form = form.part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(filename.to_owned()),
    );
    let url = ticket.body["upload"]["url"].as_str().unwrap();
    let sent = reqwest::Client::new()
        .post(url)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert!(
        sent.status().is_success(),
        "upload answered {}",
        sent.status()
    );

    let id = ticket.body["media_id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = get(&format!("/media/{id}"), Some(&admin)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        if reply.body["status"] != "pending" || Instant::now() > deadline {
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn clean_objects(tenant: &str) -> Vec<String> {
    let bucket = stack().template.local_name("MediaBucket").unwrap();
    bucket_keys(&bucket, tenant).await
}

/// The `clean/` then `quarantine/` keys of a tenant in a bucket.
async fn bucket_keys(bucket: &str, tenant: &str) -> Vec<String> {
    let s3 = integration_tests::s3_client();
    let mut keys = Vec::new();
    for prefix in [format!("clean/{tenant}/"), format!("quarantine/{tenant}/")] {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&prefix)
            .send()
            .await
            .unwrap();
        keys.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    keys
}

#[tokio::test]
async fn a_valid_png_is_copied_to_clean_with_its_sha256_and_downloadable() {
    let tenant = unique_tenant();
    let bytes = png(2000);
    let media = upload(
        &tenant,
        "photo.png",
        "image/png",
        bytes.len(),
        bytes.clone(),
    )
    .await;
    assert_eq!(media["status"], "valid", "{media}");
    assert_eq!(media["kind"], "image");
    assert_eq!(media["mime_type"], "image/png");
    assert_eq!(media["size"], bytes.len());
    assert_eq!(media["sha256"], hex::encode(Sha256::digest(&bytes)));
    let url = media["download_url"].as_str().expect("a download link");
    let downloaded = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    assert_eq!(downloaded.as_ref(), bytes.as_slice());
    // One clean copy, named by the upload it came from; the quarantined upload is left
    // to the bucket's lifecycle rule.
    let id = media["media_id"].as_str().unwrap();
    let keys = clean_objects(&tenant).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys[0].starts_with(&format!("clean/{tenant}/{id}/")),
        "{keys:?}"
    );
    assert_eq!(keys[1], format!("quarantine/{tenant}/{id}"));
}

#[tokio::test]
async fn content_that_lies_is_rejected_deleted_and_never_reaches_clean() {
    let tenant = unique_tenant();
    // A PNG declared as a JPEG.
    let mismatch = upload(&tenant, "photo.jpg", "image/jpeg", 3000, png(100)).await;
    assert_eq!(
        (
            mismatch["status"].as_str(),
            mismatch["reason_code"].as_str()
        ),
        (Some("rejected"), Some("content_mismatch"))
    );
    assert!(mismatch["reason"].as_str().unwrap().contains("PNG"));
    assert!(mismatch["download_url"].is_null());
    // A declared size that lies: 1 KB declared, 6 MB sent (the emulator does not enforce
    // the form's content-length-range; the validator re-checks the real size).
    let big = upload(&tenant, "big.png", "image/png", 1000, png(6 * 1024 * 1024)).await;
    assert_eq!(big["reason_code"], "too_large");
    // A truncated PNG.
    let mut cut = png(500);
    cut.truncate(300);
    let truncated = upload(&tenant, "cut.png", "image/png", cut.len(), cut).await;
    assert_eq!(truncated["reason_code"], "truncated");
    assert!(
        clean_objects(&tenant).await.is_empty(),
        "nothing bad in clean/ and quarantine emptied"
    );
}

#[tokio::test]
async fn declared_uploads_are_checked_before_any_form_is_signed() {
    let tenant = unique_tenant();
    let agent = token(&tenant, "agent");
    for (body, status, code) in [
        (
            json!({"filename": "p.heic", "content_type": "image/heic", "size": 10}),
            422,
            "heic_not_supported",
        ),
        (
            json!({"filename": "p.png", "content_type": "image/jpeg", "size": 10}),
            422,
            "extension_mismatch",
        ),
        (
            json!({"filename": "p.gif", "content_type": "image/gif", "size": 10}),
            422,
            "unsupported_type",
        ),
        (
            json!({"filename": "v.mp4", "content_type": "video/mp4", "size": 17 * 1024 * 1024}),
            422,
            "too_large",
        ),
        (
            json!({"filename": "../p.png", "content_type": "image/png", "size": 10}),
            422,
            "invalid_filename",
        ),
        (
            json!({"filename": "p.png", "content_type": "image/png", "size": -1}),
            422,
            "invalid_body",
        ),
        (
            json!({"filename": "p.png", "content_type": "image/png", "size": 10, "bucket": "x"}),
            422,
            "invalid_body",
        ),
    ] {
        let reply = post_json("/media", Some(&agent), &body).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{body}");
    }
    assert_eq!(post_json("/media", None, &json!({})).await.status, 401);
}

#[tokio::test]
async fn another_tenants_media_is_404() {
    let tenant = unique_tenant();
    let ticket = post_json(
        "/media",
        Some(&token(&tenant, "agent")),
        &json!({"filename": "a.pdf", "content_type": "application/pdf", "size": 100}),
    )
    .await;
    let id = ticket.body["media_id"].as_str().unwrap();
    let reply = get(
        &format!("/media/{id}"),
        Some(&token(&unique_tenant(), "admin")),
    )
    .await;
    assert_eq!((reply.status, reply.code()), (404, "not_found"));
    let mine = get(&format!("/media/{id}"), Some(&token(&tenant, "agent"))).await;
    assert_eq!(mine.body["status"], "pending");
    assert_eq!(
        get("/media/not-an-id", Some(&token(&tenant, "agent")))
            .await
            .status,
        404
    );
}

// ---------- customer media fetched from the provider ----------

use integration_tests::{
    FixtureVars, all_conversations, all_messages, connect, fixture, post_meta, sandbox_put,
    sandbox_url,
};

fn jpeg() -> Vec<u8> {
    let mut f = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    f.extend(b"JFIF\0");
    f.extend([1, 1, 0, 0, 1, 0, 1, 0, 0]);
    f.extend(vec![0x55; 500]);
    f.extend([0xFF, 0xD9]);
    f
}

/// Waits until the only message of the tenant's only conversation has settled media.
async fn settled_media(tenant: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let conversations = all_conversations(tenant).await;
        if let Some(c) = conversations.first() {
            let messages = all_messages(tenant, c["id"].as_str().unwrap()).await;
            let media = messages[0]["media"].clone();
            if media["status"] != "fetching" || Instant::now() > deadline {
                return media;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn media_record(tenant: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = get(&format!("/media/{id}"), Some(&token(tenant, "agent"))).await;
        if reply.body["status"] != "pending" || Instant::now() > deadline {
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_whatsapp_image_is_fetched_through_the_graph_api_validated_and_linked() {
    let channel = connect("whatsapp").await;
    let vars = FixtureVars::new(&channel, false);
    let body: Value = serde_json::from_str(&vars.render(&fixture("whatsapp/image.json"))).unwrap();
    let media_id = format!("img{}", vars.msg_id);
    let bytes = jpeg();
    sandbox_put(&media_id, bytes.clone(), "image/jpeg");
    let mut body = body;
    body["entry"][0]["changes"][0]["value"]["messages"][0]["image"]["id"] = json!(media_id);
    body["entry"][0]["changes"][0]["value"]["messages"][0]["image"]["sha256"] =
        json!(hex::encode(Sha256::digest(&bytes)));
    assert_eq!(post_meta("whatsapp", &body.to_string()).await.status, 200);

    let media = settled_media(&channel.tenant).await;
    assert_eq!(media["status"], "fetched", "{media}");
    let id = media["media_id"]
        .as_str()
        .expect("linked to a media record");
    let record = media_record(&channel.tenant, id).await;
    assert_eq!(record["status"], "valid", "{record}");
    assert_eq!(record["mime_type"], "image/jpeg");
    assert_eq!(record["sha256"], hex::encode(Sha256::digest(&bytes)));
}

#[tokio::test]
async fn media_the_provider_no_longer_has_is_marked_unavailable_with_a_reason() {
    let channel = connect("whatsapp").await;
    let vars = FixtureVars::new(&channel, false);
    let mut body: Value =
        serde_json::from_str(&vars.render(&fixture("whatsapp/image.json"))).unwrap();
    body["entry"][0]["changes"][0]["value"]["messages"][0]["image"]["id"] =
        json!(format!("gone{}", vars.msg_id));
    assert_eq!(post_meta("whatsapp", &body.to_string()).await.status, 200);
    let media = settled_media(&channel.tenant).await;
    assert_eq!(media["status"], "unavailable", "{media}");
    assert!(media["reason"].as_str().unwrap().contains("404"), "{media}");
}

#[tokio::test]
async fn messenger_attachments_are_fetched_only_from_allowed_hosts() {
    // From the sandbox (an allowed host here): fetched and validated.
    let channel = connect("messenger").await;
    let vars = FixtureVars::new(&channel, false);
    let file_id = format!("att{}", vars.msg_id);
    sandbox_put(&file_id, jpeg(), "image/jpeg");
    let mut body: Value =
        serde_json::from_str(&vars.render(&fixture("messenger/attachments_image.json"))).unwrap();
    body["entry"][0]["messaging"][0]["message"]["attachments"][0]["payload"]["url"] =
        json!(format!("{}/files/{file_id}", sandbox_url()));
    assert_eq!(post_meta("messenger", &body.to_string()).await.status, 200);
    let media = settled_media(&channel.tenant).await;
    assert_eq!(media["status"], "fetched", "{media}");
    assert_eq!(
        media_record(&channel.tenant, media["media_id"].as_str().unwrap()).await["status"],
        "valid"
    );

    // An internal address is never fetched.
    let other = connect("messenger").await;
    let vars = FixtureVars::new(&other, false);
    let mut body: Value =
        serde_json::from_str(&vars.render(&fixture("messenger/attachments_image.json"))).unwrap();
    body["entry"][0]["messaging"][0]["message"]["attachments"][0]["payload"]["url"] =
        json!("https://169.254.169.254/latest/meta-data/");
    assert_eq!(post_meta("messenger", &body.to_string()).await.status, 200);
    let media = settled_media(&other.tenant).await;
    assert_eq!(media["status"], "unavailable", "{media}");
}

#[tokio::test]
async fn a_wechat_image_is_fetched_with_the_account_access_token() {
    let channel = connect("wechat").await;
    let vars = FixtureVars::new(&channel, true);
    let media_id = format!("wxm{}", vars.msg_id);
    sandbox_put(&media_id, jpeg(), "image/jpeg");
    let xml = vars.render(&fixture("wechat/image.xml"));
    let start = xml.find("<MediaId>").expect("MediaId");
    let end = xml.find("</MediaId>").expect("MediaId end");
    let xml = format!(
        "{}<MediaId><![CDATA[{media_id}]]>{}",
        &xml[..start],
        &xml[end..]
    );
    let reply = integration_tests::post_wechat(&channel, &xml).await;
    assert_eq!(reply.text, "success");
    let media = settled_media(&channel.tenant).await;
    assert_eq!(media["status"], "fetched", "{media}");
    assert_eq!(
        media_record(&channel.tenant, media["media_id"].as_str().unwrap()).await["status"],
        "valid"
    );
}

#[tokio::test]
async fn wechat_media_it_no_longer_has_is_unavailable_with_its_error() {
    let channel = connect("wechat").await;
    let vars = FixtureVars::new(&channel, true);
    let reply =
        integration_tests::post_wechat(&channel, &vars.render(&fixture("wechat/image.xml"))).await;
    assert_eq!(reply.text, "success");
    let media = settled_media(&channel.tenant).await;
    assert_eq!(media["status"], "unavailable", "{media}");
    assert!(
        media["reason"].as_str().unwrap().contains("40007"),
        "{media}"
    );
}

#[tokio::test]
async fn a_wechat_video_is_fetched_through_its_video_url_into_s3_and_validated() {
    let channel = connect("wechat").await;
    let vars = FixtureVars::new(&channel, true);
    let media_id = format!("wxv{}", vars.msg_id);
    let video = local_stack::media_files::mp4(256 * 1024);
    // The sandbox's media/get answers videos with {"video_url": ...}, as WeChat does.
    sandbox_put(&media_id, video.clone(), "video/mp4");
    let xml = vars.render(&fixture("wechat/video.xml"));
    let start = xml.find("<MediaId>").expect("MediaId");
    let end = xml.find("</MediaId>").expect("MediaId end");
    let xml = format!(
        "{}<MediaId><![CDATA[{media_id}]]>{}",
        &xml[..start],
        &xml[end..]
    );
    let reply = integration_tests::post_wechat(&channel, &xml).await;
    assert_eq!(reply.text, "success");
    let media = settled_media(&channel.tenant).await;
    assert_eq!(media["status"], "fetched", "{media}");
    let record = media_record(&channel.tenant, media["media_id"].as_str().unwrap()).await;
    assert_eq!(record["status"], "valid", "{record}");
    assert_eq!(record["mime_type"], "video/mp4");
    assert_eq!(record["sha256"], hex::encode(Sha256::digest(&video)));
}

// ---------- validation, called directly over moto ----------
// A bucket of its own, with no event notifications, so no stand-in races these runs.

use shared::adapters::dynamo::DynamoStore;
use shared::adapters::s3::S3Media;
use shared::domain::ids::TenantId;
use shared::domain::media::{MediaKind, MediaRecord, MediaStatus, quarantine_key};
use shared::ports::MediaStore;
use shared::service::media::validate_upload;

struct Quarantine {
    bucket: String,
    tenant: TenantId,
    store: DynamoStore,
    objects: S3Media,
}

impl Quarantine {
    async fn new() -> Self {
        let bucket = format!(
            "validation-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        integration_tests::s3_client()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        let sdk = stack().settings.sdk_config();
        Self {
            objects: S3Media::new(
                integration_tests::s3_client(),
                bucket.clone(),
                local_stack::LOCAL_REGION,
                Some(stack().settings.aws_endpoint.as_str()),
                local_stack::functions::local_credentials(),
            ),
            store: DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                stack().template.local_name("ChatTable").unwrap(),
            ),
            tenant: TenantId::parse(&unique_tenant()).unwrap(),
            bucket,
        }
    }

    /// A pending upload record declaring a PNG.
    async fn declared_png(&self) -> String {
        let id = ulid::Ulid::new().to_string();
        self.store
            .create_media(&MediaRecord {
                id: id.clone(),
                tenant_id: self.tenant.clone(),
                status: MediaStatus::Pending,
                filename: "photo.png".into(),
                mime_type: "image/png".into(),
                kind: MediaKind::Image,
                size: 10_000,
                sha256: None,
                reason_code: None,
                reason: None,
                created_at: chrono::Utc::now(),
                inbound: false,
                version: None,
            })
            .await
            .unwrap();
        id
    }

    /// Puts an upload into quarantine, labelled as a form (or a hostile client) would.
    async fn put(&self, id: &str, bytes: &[u8], content_type: &str, inbound_label: bool) -> String {
        let key = quarantine_key(&self.tenant, id);
        integration_tests::s3_client()
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type(content_type)
            .set_metadata(inbound_label.then(|| [("origin".into(), "inbound".into())].into()))
            .body(bytes.to_vec().into())
            .send()
            .await
            .unwrap();
        key
    }

    async fn validate(&self, key: &str) -> &'static str {
        validate_upload(&self.store, &self.objects, key)
            .await
            .unwrap()
            .outcome
    }

    async fn record(&self, id: &str) -> MediaRecord {
        self.store
            .get_media(&self.tenant, id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn keys(&self) -> Vec<String> {
        bucket_keys(&self.bucket, self.tenant.as_str()).await
    }

    async fn clean_bytes(&self, record: &MediaRecord) -> Vec<u8> {
        integration_tests::s3_client()
            .get_object()
            .bucket(&self.bucket)
            .key(record.clean_key())
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .to_vec()
    }
}

#[tokio::test]
async fn a_settled_file_is_never_replaced_by_a_repeat_event_or_a_second_upload() {
    let q = Quarantine::new().await;
    let id = q.declared_png().await;
    let first = png(100);
    let key = q.put(&id, &first, "image/png", false).await;
    assert_eq!(q.validate(&key).await, "valid");
    let settled = q.record(&id).await;
    assert_eq!(settled.sha256, Some(hex::encode(Sha256::digest(&first))));
    let version = settled
        .version
        .clone()
        .expect("the promoted upload's version");

    // The same event delivered again changes nothing and deletes nothing.
    assert_eq!(q.validate(&key).await, "ignored");
    assert_eq!(q.record(&id).await, settled);
    assert_eq!(q.clean_bytes(&settled).await, first);

    // A second, valid, upload through the same form: checked, not promoted, and its
    // clean copy removed again; the settled file and record stay as they were.
    let second = png(200);
    q.put(&id, &second, "image/png", false).await;
    assert_eq!(q.validate(&key).await, "ignored");
    assert_eq!(q.record(&id).await, settled);
    assert_eq!(q.clean_bytes(&settled).await, first);
    let keys = q.keys().await;
    assert_eq!(
        keys,
        vec![
            format!("clean/{}/{id}/{version}", q.tenant),
            format!("quarantine/{}/{id}", q.tenant)
        ]
    );
}

#[tokio::test]
async fn a_label_the_record_does_not_share_is_decided_by_the_record() {
    let q = Quarantine::new().await;
    // Labelled JPEG (S3 refuses that against the form's policy; the emulator does not):
    // the content is checked against the record's PNG, and found valid.
    let id = q.declared_png().await;
    let key = q.put(&id, &png(100), "image/jpeg", false).await;
    assert_eq!(q.validate(&key).await, "valid");
    let record = q.record(&id).await;
    assert_eq!(
        (record.status, record.mime_type.as_str()),
        (MediaStatus::Valid, "image/png")
    );

    // Labelled as customer media (allowed 100 MB) on an agent upload: the upload limit
    // applies, and nothing reaches clean/.
    let id = q.declared_png().await;
    let key = q.put(&id, &png(6 * 1024 * 1024), "image/png", true).await;
    assert_eq!(q.validate(&key).await, "rejected");
    assert_eq!(
        q.record(&id).await.reason_code.as_deref(),
        Some("too_large")
    );
    let keys = q.keys().await;
    assert!(keys.iter().all(|k| !k.contains(&id)), "{keys:?}");

    // A labelled JPEG whose bytes are a JPEG, against a record declaring a PNG: the
    // record's claim decides, so it is a mismatch, and its first clean copy is removed.
    let id = q.declared_png().await;
    let key = q.put(&id, &jpeg(), "image/jpeg", false).await;
    assert_eq!(q.validate(&key).await, "rejected");
    assert_eq!(
        q.record(&id).await.reason_code.as_deref(),
        Some("content_mismatch")
    );
    let keys = q.keys().await;
    assert!(
        keys.iter().all(|k| !k.contains(&id)),
        "nothing of the rejected file is left: {keys:?}"
    );
}

#[tokio::test]
async fn a_copy_an_interrupted_run_left_is_settled_on_not_copied_again() {
    let q = Quarantine::new().await;
    let id = q.declared_png().await;
    let bytes = png(300);
    let key = q.put(&id, &bytes, "image/png", false).await;
    // An earlier run copied this upload to clean/ and stopped before settling.
    let s3 = integration_tests::s3_client();
    let etag = s3
        .head_object()
        .bucket(&q.bucket)
        .key(&key)
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    let version = shared::domain::media::object_version(&etag).unwrap();
    let clean = shared::domain::media::clean_key(&q.tenant, &id, Some(&version));
    s3.copy_object()
        .bucket(&q.bucket)
        .key(&clean)
        .copy_source(format!("{}/{key}", q.bucket))
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
        .send()
        .await
        .unwrap();
    assert_eq!(q.validate(&key).await, "valid");
    let record = q.record(&id).await;
    assert_eq!(record.version.as_deref(), Some(version.as_str()));
    assert_eq!(record.sha256, Some(hex::encode(Sha256::digest(&bytes))));
    assert_eq!(q.clean_bytes(&record).await, bytes);
    // The copy never overwrites: a taken key answers with what is there.
    let again = shared::ports::ObjectStore::copy_with_sha256(&q.objects, &key, &clean, Some(&etag))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(Some(again.sha256), record.sha256);
}

#[tokio::test]
async fn a_small_upload_is_validated_in_three_requests_and_a_repeat_reads_the_record() {
    use local_stack::bench::CountedClients;
    use local_stack::counter::RequestCounter;
    let q = Quarantine::new().await;
    let counter = RequestCounter::default();
    let clients = CountedClients::new(&stack().settings.sdk_config(), &counter);
    let store = DynamoStore::new(
        clients.dynamodb,
        stack().template.local_name("ChatTable").unwrap(),
    );
    let objects = S3Media::new(
        clients.s3,
        q.bucket.clone(),
        local_stack::LOCAL_REGION,
        Some(stack().settings.aws_endpoint.as_str()),
        local_stack::functions::local_credentials(),
    );
    let id = q.declared_png().await;
    let key = q.put(&id, &png(100), "image/png", false).await;
    counter.take();
    let first = validate_upload(&store, &objects, &key).await.unwrap();
    assert_eq!(first.outcome, "valid");
    assert_eq!(counter.take(), ["GetObject", "CopyObject", "UpdateItem"]);
    // A repeat finds its copy in place and the record settled: nothing written.
    let again = validate_upload(&store, &objects, &key).await.unwrap();
    assert_eq!(again.outcome, "ignored");
    assert_eq!(
        counter.take(),
        [
            "GetObject",
            "CopyObject",
            "HeadObject",
            "UpdateItem",
            "GetItem"
        ]
    );
}

#[tokio::test]
async fn an_empty_upload_is_rejected() {
    let q = Quarantine::new().await;
    let id = q.declared_png().await;
    let key = q.put(&id, &[], "image/png", false).await;
    assert_eq!(q.validate(&key).await, "rejected");
    assert_eq!(
        q.record(&id).await.reason_code.as_deref(),
        Some("empty_file")
    );
    assert!(q.keys().await.is_empty());
}

#[tokio::test]
async fn an_upload_without_a_record_is_deleted_and_never_promoted() {
    let q = Quarantine::new().await;
    let key = q.put("01NORECORD", &png(100), "image/png", false).await;
    assert_eq!(q.validate(&key).await, "ignored");
    assert!(q.keys().await.is_empty(), "{:?}", q.keys().await);
    // Gone already (a repeat event): nothing to do.
    assert_eq!(q.validate(&key).await, "ignored");
}

#[tokio::test]
async fn customer_media_we_write_is_labelled_with_its_type_and_origin() {
    use shared::domain::media::{Claim, media_type};
    use shared::ports::{ObjectStore, ObjectWriter};
    let q = Quarantine::new().await;
    let key = quarantine_key(&q.tenant, "01CUSTOMER");
    let claim = Claim {
        media_type: media_type("image/jpeg").unwrap(),
        inbound: true,
    };
    let mut writer = q.objects.writer(&key, &claim);
    writer.write(&jpeg()).await.unwrap();
    writer.finish().await.unwrap();
    let opened = q.objects.open(&key, Some(16)).await.unwrap().unwrap();
    assert_eq!(opened.content_type.as_deref(), Some("image/jpeg"));
    assert!(opened.inbound);
    // Larger than a part: written as a multipart upload, labelled the same.
    let big = quarantine_key(&q.tenant, "01CUSTOMERBIG");
    let mut writer = q.objects.writer(&big, &claim);
    writer.write(&vec![0x55; 9 * 1024 * 1024]).await.unwrap();
    writer.finish().await.unwrap();
    let opened = q.objects.open(&big, Some(16)).await.unwrap().unwrap();
    assert_eq!(opened.content_type.as_deref(), Some("image/jpeg"));
    assert!(opened.inbound);
    assert_eq!(
        shared::domain::sniff::Blob::len(&opened.blob),
        9 * 1024 * 1024
    );
    // An upload form's object carries no such label.
    let upload = q.put("01UPLOAD", &png(10), "image/png", false).await;
    assert!(
        !q.objects
            .open(&upload, Some(16))
            .await
            .unwrap()
            .unwrap()
            .inbound
    );
}

/// A real file of `tests/fixtures/media` (see its README).
fn media_fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/media/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test]
async fn real_files_from_phones_and_tools_get_the_right_verdict_through_the_upload_path() {
    const DOC: &str = "application/msword";
    const XLS: &str = "application/vnd.ms-excel";
    const PPT: &str = "application/vnd.ms-powerpoint";
    const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
    const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";
    // (file, declared type, expected reason code: None when valid)
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("camera-canon-exif.jpg", "image/jpeg", None),
        ("photo-progressive.jpg", "image/jpeg", None),
        ("screenshot.png", "image/png", None),
        ("sticker-animated.webp", "image/webp", None),
        ("video-moov-at-end.mp4", "video/mp4", None),
        ("video-fragmented.mp4", "video/mp4", None),
        ("video.3gp", "video/3gpp", None),
        ("audio.m4a", "audio/mp4", None),
        ("audio-amr-nb.3gp", "audio/3gpp", None),
        ("audio-nb.amr", "audio/amr", None),
        ("audio.aac", "audio/aac", None),
        ("audio-opusenc.opus", "audio/ogg", None),
        ("audio-lame-cover-art.mp3", "audio/mpeg", None),
        ("audio-no-id3.mp3", "audio/mpeg", None),
        ("notes-linearized.pdf", "application/pdf", None),
        ("olefile-word.doc", DOC, None),
        ("sheet.xls", XLS, None),
        ("slides.ppt", PPT, None),
        ("notes.docx", DOCX, None),
        ("powerpoint-minimal.pptx", PPTX, None),
        ("text-utf16-bom.txt", "text/plain", None),
        ("text-cp1252.txt", "text/plain", None),
        ("notes.doc", XLS, Some("content_mismatch")),
        ("sheet.xls", DOC, Some("content_mismatch")),
        ("video.3gp", "video/mp4", Some("content_mismatch")),
        ("video-hevc.mp4", "video/mp4", Some("unsupported_codec")),
        (
            "audio-vorbis.ogg",
            "audio/ogg",
            Some("vorbis_not_supported"),
        ),
        ("sticker-256.webp", "image/webp", Some("sticker_dimensions")),
        ("photo.heic", "image/jpeg", Some("heic_not_supported")),
        ("binary.txt", "text/plain", Some("content_mismatch")),
    ];
    let tenant = unique_tenant();
    let mut wrong = Vec::new();
    for batch in cases.chunks(6) {
        let verdicts = futures::future::join_all(batch.iter().map(|(name, declared, _)| {
            let bytes = media_fixture(name);
            let extension = shared::domain::media::media_type(declared)
                .expect("an accepted type")
                .extensions[0];
            let tenant = tenant.clone();
            async move {
                let size = bytes.len();
                upload(&tenant, &format!("file.{extension}"), declared, size, bytes).await
            }
        }))
        .await;
        for ((name, declared, code), media) in batch.iter().zip(verdicts) {
            let got = (media["status"].as_str(), media["reason_code"].as_str());
            let expected = match code {
                None => (Some("valid"), None),
                Some(code) => (Some("rejected"), Some(*code)),
            };
            if got != expected || (code.is_none() && media["mime_type"] != *declared) {
                wrong.push(format!("{name} as {declared}: {media}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
