//! Outbound: request shapes per channel and kind (checked at the provider sandbox), the
//! window matrix, templates, idempotency, and failures with retries.

use chrono::Utc;
use integration_tests::{
    FixtureVars, Reply, TestChannel, accepted_sends_to, all_messages, call, connect, connect_for,
    customer_wrote, fixture, get, post_json, post_meta, post_wechat, sandbox, sandbox_chaos,
    sandbox_fail, sandbox_outbox, stack, token, unique_tenant,
};
use serde_json::{Value, json};
use shared::adapters::dynamo::DynamoStore;
use shared::domain::ids::TenantId;
use shared::domain::media::{MediaKind, MediaRecord, MediaStatus, clean_key};
use shared::ports::MediaStore;

fn store() -> DynamoStore {
    let sdk = stack().settings.sdk_config();
    DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        stack().template.local_name("ChatTable").unwrap(),
    )
}

/// A `valid` media record with its file in `clean/` (the validation pipeline has its own
/// tests; here only what outbound does with a valid file matters).
async fn valid_media(tenant: &str, kind: MediaKind, mime: &str, filename: &str) -> String {
    let id = ulid::Ulid::new().to_string();
    let tenant_id = TenantId::parse(tenant).unwrap();
    let bytes = format!("{kind:?} bytes of {filename}").into_bytes();
    integration_tests::s3_client()
        .put_object()
        .bucket(stack().template.local_name("MediaBucket").unwrap())
        .key(clean_key(&tenant_id, &id, Some("v1")))
        .content_type(mime)
        .body(bytes.clone().into())
        .send()
        .await
        .expect("put clean object");
    store()
        .create_media(&MediaRecord {
            id: id.clone(),
            tenant_id,
            status: MediaStatus::Valid,
            filename: filename.to_owned(),
            mime_type: mime.to_owned(),
            kind,
            size: bytes.len() as u64,
            sha256: None,
            reason_code: None,
            reason: None,
            created_at: Utc::now(),
            inbound: false,
            version: Some("v1".into()),
        })
        .await
        .expect("media record");
    id
}

async fn send(channel: &TestChannel, conversation: &str, body: Value, key: Option<&str>) -> Reply {
    let mut request = reqwest::Client::new()
        .post(format!(
            "{}/conversations/{conversation}/messages",
            stack().base_url
        ))
        .bearer_auth(token(&channel.tenant, "agent"))
        .json(&body);
    if let Some(k) = key {
        request = request.header("Idempotency-Key", k);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text.clone())),
        text,
    }
}

/// The attempts the sandbox accepted.
fn accepted(account: &str) -> Vec<Value> {
    sandbox_outbox(account)
        .into_iter()
        .filter(|i| {
            i["status"] == 200
                && i["injected"] != true
                && i["response"].get("errcode").is_none_or(|c| c == 0)
        })
        .collect()
}

/// Queues failures for the next sends to `account` (a JSON array of faults).
fn fail_next(account: &str, faults: Value) {
    sandbox_fail(account, faults.as_array().cloned().unwrap_or_default());
}

/// The sandbox's counters (token fetches per AppID, sends per account).
fn sandbox_stats() -> Value {
    serde_json::to_value(sandbox().stats()).expect("stats serialize")
}

async fn message(channel: &TestChannel, conversation: &str, id: &str) -> Value {
    all_messages(&channel.tenant, conversation)
        .await
        .into_iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("message {id} is listed"))
}

/// A WeChat channel with its own AppID (so the sandbox's records and token counts are its
/// own), and that AppID.
async fn wechat_channel() -> (TestChannel, String) {
    let app = format!("wx{}", &ulid::Ulid::new().to_string().to_lowercase()[..14]);
    let token = format!("wx-token-{}", ulid::Ulid::new());
    let mut c = connect_for(
        &unique_tenant(),
        "wechat",
        json!({"credentials": {"app_id": app, "app_secret": "wx-secret", "token": token}}),
    )
    .await;
    c.wechat_token = token;
    (c, app)
}

#[tokio::test]
async fn a_whatsapp_text_is_accepted_pending_then_sent_with_the_wamid_and_tracked_by_statuses() {
    let channel = connect("whatsapp").await;
    let (conversation, customer) = customer_wrote(&channel, "whatsapp", 1).await;
    let reply = send(
        &channel,
        &conversation,
        json!({"kind": "text", "text": "Hola 👋 on its way"}),
        None,
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["status"], "pending");
    assert_eq!(reply.body["direction"], "outbound");
    assert_eq!(reply.body["kind"], "text");
    let id = reply.body["id"].as_str().unwrap().to_owned();

    let sent = accepted(&channel.external_id);
    assert_eq!(sent.len(), 1);
    let body = &sent[0]["body"];
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["to"], customer.as_str());
    assert_eq!(body["type"], "text");
    assert_eq!(body["text"]["body"], "Hola 👋 on its way");
    let wamid = sent[0]["provider_message_id"].as_str().unwrap().to_owned();

    let m = message(&channel, &conversation, &id).await;
    assert_eq!(m["status"], "sent");
    assert_eq!(m["provider_message_id"], wamid.as_str());

    // The status webhook finds the message by its provider id.
    let mut vars = FixtureVars::new(&channel, false);
    vars.sender = customer.clone();
    vars.ref_id = wamid.clone();
    let status = vars.render(&fixture("whatsapp/status_delivered.json"));
    assert_eq!(post_meta("whatsapp", &status).await.status, 200);
    assert_eq!(
        message(&channel, &conversation, &id).await["status"],
        "delivered"
    );

    let conv = get(
        &format!("/conversations/{conversation}"),
        Some(&token(&channel.tenant, "agent")),
    )
    .await;
    assert_eq!(conv.body["preview"], "Hola 👋 on its way");
}

#[tokio::test]
async fn every_kind_has_the_provider_shape_on_whatsapp() {
    let channel = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let t = &channel.tenant;
    let image = valid_media(t, MediaKind::Image, "image/jpeg", "photo.jpg").await;
    let video = valid_media(t, MediaKind::Video, "video/mp4", "clip.mp4").await;
    let audio = valid_media(t, MediaKind::Audio, "audio/ogg", "note.ogg").await;
    let file = valid_media(t, MediaKind::Document, "application/pdf", "invoice.pdf").await;
    let sticker = valid_media(t, MediaKind::Sticker, "image/webp", "hi.webp").await;
    let sends = [
        json!({"kind": "image", "media_id": image, "caption": "the photo"}),
        json!({"kind": "video", "media_id": video}),
        json!({"kind": "audio", "media_id": audio, "text": "listen to this"}),
        json!({"kind": "file", "media_id": file, "caption": "your invoice"}),
        json!({"kind": "sticker", "media_id": sticker}),
    ];
    for body in sends {
        let reply = send(&channel, &conversation, body.clone(), None).await;
        assert_eq!(reply.status, 202, "{body}: {}", reply.text);
    }
    let sent: Vec<Value> = accepted(&channel.external_id)
        .into_iter()
        .map(|i| i["body"].clone())
        .collect();
    let types: Vec<&str> = sent.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["image", "video", "audio", "text", "document", "sticker"],
        "audio's text goes second"
    );
    assert_eq!(sent[0]["image"]["caption"], "the photo");
    assert!(
        sent[0]["image"]["link"].as_str().unwrap().contains("clean"),
        "media goes by a presigned link"
    );
    assert!(sent[2]["audio"].get("caption").is_none());
    assert_eq!(sent[3]["text"]["body"], "listen to this");
    assert_eq!(sent[4]["document"]["filename"], "invoice.pdf");
    assert_eq!(sent[4]["document"]["caption"], "your invoice");
    let messages = all_messages(t, &conversation).await;
    let outbound: Vec<&Value> = messages
        .iter()
        .filter(|m| m["direction"] == "outbound")
        .collect();
    assert_eq!(outbound.len(), 6);
    assert!(
        outbound.iter().all(|m| m["status"] == "sent"),
        "{outbound:?}"
    );
}

#[tokio::test]
async fn media_that_is_not_valid_is_refused_with_the_reason() {
    let channel = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let agent = token(&channel.tenant, "agent");
    let ticket = post_json(
        "/media",
        Some(&agent),
        &json!({"filename": "a.png", "content_type": "image/png", "size": 1000}),
    )
    .await;
    let pending = ticket.body["media_id"].as_str().unwrap();
    let reply = send(
        &channel,
        &conversation,
        json!({"kind": "image", "media_id": pending}),
        None,
    )
    .await;
    assert_eq!((reply.status, reply.code()), (422, "media_not_ready"));
    let reply = send(
        &channel,
        &conversation,
        json!({"kind": "image", "media_id": "01NOPE"}),
        None,
    )
    .await;
    assert_eq!((reply.status, reply.code()), (422, "unknown_media"));
    let pdf = valid_media(
        &channel.tenant,
        MediaKind::Document,
        "application/pdf",
        "a.pdf",
    )
    .await;
    let reply = send(
        &channel,
        &conversation,
        json!({"kind": "image", "media_id": pdf}),
        None,
    )
    .await;
    assert_eq!((reply.status, reply.code()), (422, "media_kind_mismatch"));
    assert!(
        sandbox_outbox(&channel.external_id).is_empty(),
        "nothing was sent"
    );
}

#[tokio::test]
async fn messenger_and_instagram_use_the_send_api_with_attachments() {
    for kind in ["messenger", "instagram"] {
        let channel = connect_for(&unique_tenant(), kind, json!({"human_agent": true})).await;
        let (conversation, customer) = customer_wrote(&channel, kind, 1).await;
        let image = valid_media(&channel.tenant, MediaKind::Image, "image/png", "p.png").await;
        assert_eq!(
            send(
                &channel,
                &conversation,
                json!({"kind": "text", "text": "hi 😀"}),
                None
            )
            .await
            .status,
            202
        );
        assert_eq!(
            send(
                &channel,
                &conversation,
                json!({"kind": "image", "media_id": image}),
                None
            )
            .await
            .status,
            202
        );
        let sent = accepted(&channel.external_id);
        assert_eq!(sent.len(), 2, "{kind}");
        assert_eq!(sent[0]["body"]["recipient"]["id"], customer.as_str());
        assert_eq!(sent[0]["body"]["messaging_type"], "RESPONSE");
        assert_eq!(sent[0]["body"]["message"]["text"], "hi 😀");
        assert_eq!(sent[1]["body"]["message"]["attachment"]["type"], "image");
        let template = json!({"kind": "template", "template": {"name": "x", "language": "en"}});
        let reply = send(&channel, &conversation, template, None).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "template_not_supported")
        );
        let messages = all_messages(&channel.tenant, &conversation).await;
        assert!(
            messages
                .iter()
                .filter(|m| m["direction"] == "outbound")
                .all(|m| m["status"] == "sent"
                    && m["provider_message_id"].as_str().unwrap().starts_with("m_")),
            "{messages:?}"
        );
    }
}

#[tokio::test]
async fn wechat_uploads_media_sends_by_id_and_caches_its_token() {
    let (channel, app) = wechat_channel().await;
    let (conversation, openid) = customer_wrote(&channel, "wechat", 1).await;
    let voice = valid_media(&channel.tenant, MediaKind::Audio, "audio/amr", "v.amr").await;
    let reply = send(
        &channel,
        &conversation,
        json!({"kind": "text", "text": "你好"}),
        None,
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let reply = send(
        &channel,
        &conversation,
        json!({"kind": "audio", "media_id": voice}),
        None,
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let sent = accepted(&app);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["body"]["touser"], openid.as_str());
    assert_eq!(sent[0]["body"]["text"]["content"], "你好");
    assert_eq!(sent[1]["body"]["msgtype"], "voice");
    assert!(
        sent[1]["body"]["voice"]["media_id"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    let stats = sandbox_stats();
    assert_eq!(
        stats["token_fetches"][app.as_str()],
        1,
        "one token for both sends"
    );

    for (kind, mime) in [("sticker", "image/webp"), ("file", "application/pdf")] {
        let media_kind = if kind == "sticker" {
            MediaKind::Sticker
        } else {
            MediaKind::Document
        };
        let id = valid_media(&channel.tenant, media_kind, mime, "x").await;
        let reply = send(
            &channel,
            &conversation,
            json!({"kind": kind, "media_id": id}),
            None,
        )
        .await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "kind_not_supported"),
            "{kind}"
        );
    }
    let ogg = valid_media(&channel.tenant, MediaKind::Audio, "audio/ogg", "v.ogg").await;
    let reply = send(
        &channel,
        &conversation,
        json!({"kind": "audio", "media_id": ogg}),
        None,
    )
    .await;
    assert_eq!((reply.status, reply.code()), (422, "media_not_supported"));
}

#[tokio::test]
async fn an_expired_wechat_token_is_refreshed_once_and_the_send_goes_out() {
    let (channel, app) = wechat_channel().await;
    let (conversation, _) = customer_wrote(&channel, "wechat", 1).await;
    assert_eq!(
        send(
            &channel,
            &conversation,
            json!({"kind": "text", "text": "one"}),
            None
        )
        .await
        .status,
        202
    );
    fail_next(&app, json!([{"errcode": 42001}]));
    assert_eq!(
        send(
            &channel,
            &conversation,
            json!({"kind": "text", "text": "two"}),
            None
        )
        .await
        .status,
        202
    );
    let stats = sandbox_stats();
    assert_eq!(stats["token_fetches"][app.as_str()], 2);
    let messages = all_messages(&channel.tenant, &conversation).await;
    assert_eq!(
        messages.iter().filter(|m| m["status"] == "sent").count(),
        2,
        "{messages:?}"
    );
}

/// What a text send answers on a channel whose customer wrote `hours_ago`.
async fn text_after(channel: &TestChannel, kind: &str, hours_ago: i64) -> (u16, String) {
    let (conversation, _) = customer_wrote(channel, kind, hours_ago).await;
    let reply = send(
        channel,
        &conversation,
        json!({"kind": "text", "text": "hello"}),
        None,
    )
    .await;
    (reply.status, reply.code().to_owned())
}

#[tokio::test]
async fn the_window_matrix_per_channel() {
    let whatsapp = connect("whatsapp").await;
    assert_eq!(
        text_after(&whatsapp, "whatsapp", 23).await,
        (202, String::new())
    );
    assert_eq!(
        text_after(&whatsapp, "whatsapp", 25).await,
        (422, "template_required".into())
    );

    let messenger = connect_for(&unique_tenant(), "messenger", json!({"human_agent": true})).await;
    assert_eq!(
        text_after(&messenger, "messenger", 23).await,
        (202, String::new())
    );
    assert_eq!(
        text_after(&messenger, "messenger", 30).await,
        (202, String::new())
    );
    assert_eq!(
        text_after(&messenger, "messenger", 24 * 7 + 1).await,
        (422, "window_closed".into())
    );
    let sent = accepted(&messenger.external_id);
    let types: Vec<(&str, Option<&str>)> = sent
        .iter()
        .map(|i| {
            (
                i["body"]["messaging_type"].as_str().unwrap(),
                i["body"]["tag"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [("RESPONSE", None), ("MESSAGE_TAG", Some("HUMAN_AGENT"))]
    );

    let instagram = connect("instagram").await;
    assert_eq!(
        text_after(&instagram, "instagram", 23).await,
        (202, String::new())
    );
    assert_eq!(
        text_after(&instagram, "instagram", 30).await,
        (422, "window_closed".into())
    );
    let flagged = connect_for(&unique_tenant(), "instagram", json!({"human_agent": true})).await;
    assert_eq!(
        text_after(&flagged, "instagram", 30).await,
        (202, String::new())
    );
    assert_eq!(
        accepted(&flagged.external_id)[0]["body"]["tag"],
        "HUMAN_AGENT"
    );

    let (wechat, _) = wechat_channel().await;
    assert_eq!(
        text_after(&wechat, "wechat", 23).await,
        (202, String::new())
    );
    assert_eq!(
        text_after(&wechat, "wechat", 25).await,
        (422, "window_closed".into())
    );
    let (two_days, _) = {
        let app = format!("wx{}", &ulid::Ulid::new().to_string().to_lowercase()[..14]);
        let c = connect_for(
            &unique_tenant(),
            "wechat",
            json!({"window_hours": 48, "credentials": {"app_id": app, "app_secret": "s", "token": "tk-48"}}),
        )
        .await;
        (
            TestChannel {
                wechat_token: "tk-48".into(),
                ..c
            },
            app,
        )
    };
    assert_eq!(
        text_after(&two_days, "wechat", 47).await,
        (202, String::new())
    );
}

#[tokio::test]
async fn wechat_sends_five_replies_per_customer_message() {
    let (channel, app) = wechat_channel().await;
    let (conversation, _) = customer_wrote(&channel, "wechat", 0).await;
    let voice = valid_media(&channel.tenant, MediaKind::Audio, "audio/mpeg", "v.mp3").await;
    for i in 0..3 {
        let reply = send(
            &channel,
            &conversation,
            json!({"kind": "text", "text": format!("reply {i}")}),
            None,
        )
        .await;
        assert_eq!(reply.status, 202, "{}", reply.text);
    }
    // Audio with text is two messages: it fits only while two replies are left.
    let two = json!({"kind": "audio", "media_id": voice, "text": "and a note"});
    assert_eq!(
        send(&channel, &conversation, two.clone(), None)
            .await
            .status,
        202
    );
    let reply = send(
        &channel,
        &conversation,
        json!({"kind": "text", "text": "sixth"}),
        None,
    )
    .await;
    assert_eq!((reply.status, reply.code()), (422, "window_closed"));
    assert_eq!(accepted(&app).len(), 5);
    let conv = get(
        &format!("/conversations/{conversation}"),
        Some(&token(&channel.tenant, "agent")),
    )
    .await;
    assert_eq!(conv.body["window"]["mode"], "closed");
    // The customer writing again gives five more.
    customer_wrote_again(&channel, &conversation).await;
    assert_eq!(
        send(
            &channel,
            &conversation,
            json!({"kind": "text", "text": "again"}),
            None
        )
        .await
        .status,
        202
    );
}

/// The same WeChat customer writes again (a new message id, now).
async fn customer_wrote_again(channel: &TestChannel, conversation: &str) {
    let messages = all_messages(&channel.tenant, conversation).await;
    let inbound = messages
        .iter()
        .find(|m| m["direction"] == "inbound")
        .expect("an inbound message");
    let openid = inbound["raw"]["FromUserName"].as_str().map(str::to_owned);
    let mut vars = FixtureVars::new(channel, true);
    if let Some(o) = openid {
        vars.sender = o;
    }
    let xml = vars.render(&fixture("wechat/text.xml"));
    assert_eq!(post_wechat(channel, &xml).await.status, 200);
}

async fn create_template(channel: &TestChannel, name: &str, body: &str) -> Reply {
    post_json(
        "/templates",
        Some(&channel.admin()),
        &json!({
            "channel_id": channel.id, "name": name, "language": "en_US", "category": "UTILITY",
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
                {"type": "BODY", "text": body},
                {"type": "FOOTER", "text": "Reply STOP to opt out"}
            ]
        }),
    )
    .await
}

#[tokio::test]
async fn templates_are_created_at_meta_checked_on_send_and_start_conversations() {
    let waba = integration_tests::unique_meta_id();
    let channel = connect_for(&unique_tenant(), "whatsapp", json!({"waba_id": waba})).await;
    let created = create_template(
        &channel,
        "order_update",
        "Hi {{1}}, your order ships {{2}}.",
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["status"], "APPROVED");
    assert_eq!(created.body["body_parameters"], 2);
    assert_eq!(created.body["header_parameters"], 1);
    let pending = create_template(&channel, "pending_offer", "Hello {{1}}").await;
    assert_eq!(pending.body["status"], "PENDING");
    let again = create_template(&channel, "order_update", "x").await;
    assert_eq!((again.status, again.code()), (409, "template_exists"));
    let agent = token(&channel.tenant, "agent");
    let forbidden = post_json("/templates", Some(&agent), &json!({})).await;
    assert_eq!(forbidden.status, 403);
    let bad = create_template(&channel, "Bad Name", "x").await;
    assert_eq!((bad.status, bad.code()), (422, "invalid_template"));
    let list = get("/templates", Some(&agent)).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);

    // A customer who wrote two days ago: templates only.
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 48).await;
    let call = |name: &str, params: Value| json!({"kind": "template", "template": {"name": name, "language": "en_US", "parameters": params}});
    let reply = send(
        &channel,
        &conversation,
        call("order_update", json!(["A-1", "Ana"])),
        None,
    )
    .await;
    assert_eq!((reply.status, reply.code()), (422, "template_parameters"));
    let reply = send(&channel, &conversation, call("no_such", json!([])), None).await;
    assert_eq!((reply.status, reply.code()), (422, "unknown_template"));
    let reply = send(
        &channel,
        &conversation,
        call("pending_offer", json!(["Ana"])),
        None,
    )
    .await;
    assert_eq!((reply.status, reply.code()), (422, "template_not_approved"));
    let reply = send(
        &channel,
        &conversation,
        call("order_update", json!(["A-1", "Ana", "today"])),
        None,
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["text"], "Hi Ana, your order ships today.");
    let sent = accepted(&channel.external_id);
    let t = &sent[0]["body"]["template"];
    assert_eq!(t["name"], "order_update");
    assert_eq!(t["language"]["code"], "en_US");
    assert_eq!(t["components"][0]["type"], "header");
    assert_eq!(t["components"][1]["parameters"][1]["text"], "today");

    // Business-initiated: a new customer, template only.
    let start = |template: Value| json!({"channel_id": channel.id, "to": "+15550001111", "template": template});
    let reply = post_json(
        "/conversations",
        Some(&agent),
        &json!({"channel_id": channel.id, "to": "15550001111"}),
    )
    .await;
    assert_eq!((reply.status, reply.code()), (422, "template_required"));
    let reply = post_json(
        "/conversations",
        Some(&agent),
        &start(json!({"name": "order_update", "language": "en_US", "parameters": ["B-2", "Bo", "now"]})),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["customer"]["external_id"], "15550001111");
    assert_eq!(reply.body["window"]["mode"], "template_only");
    assert_eq!(reply.body["message"]["kind"], "template");
    let started = reply.body["id"].as_str().unwrap();
    let messages = all_messages(&channel.tenant, started).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["status"], "sent");
    let reply = send(
        &channel,
        started,
        json!({"kind": "text", "text": "free form"}),
        None,
    )
    .await;
    assert_eq!((reply.status, reply.code()), (422, "template_required"));

    let messenger = connect("messenger").await;
    let reply = post_json(
        "/conversations",
        Some(&token(&messenger.tenant, "agent")),
        &json!({"channel_id": messenger.id, "to": "123", "template": {"name": "a", "language": "en"}}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "template_not_supported")
    );

    // Meta approves the pending one by webhook: then it can be sent.
    let vars = FixtureVars::new(&channel, false);
    let mut update: Value =
        serde_json::from_str(&vars.render(&fixture("whatsapp/template_status_update.json")))
            .unwrap();
    let change = &mut update["entry"][0]["changes"][0]["value"];
    change["message_template_id"] = json!(
        pending.body["provider_template_id"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    );
    change["message_template_name"] = json!("pending_offer");
    let reply = post_meta("whatsapp", &update.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["templates"], 1);
    let reply = send(
        &channel,
        &conversation,
        call("pending_offer", json!(["X-1", "Ana"])),
        None,
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text);

    let id = created.body["id"].as_str().unwrap();
    let deleted = call_delete(&format!("/templates/{id}"), &channel.admin()).await;
    assert_eq!(deleted, 204);
    assert_eq!(
        call_delete(&format!("/templates/{id}"), &channel.admin()).await,
        404
    );
    assert_eq!(
        get("/templates", Some(&agent)).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn call_delete(path: &str, bearer: &str) -> u16 {
    call("DELETE", path, Some(bearer), None).await.status
}

#[tokio::test]
async fn an_idempotency_key_sends_once_and_returns_the_same_message() {
    let channel = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let body = json!({"kind": "text", "text": "only once"});
    let first = send(&channel, &conversation, body.clone(), Some("key-1")).await;
    let second = send(&channel, &conversation, body.clone(), Some("key-1")).await;
    assert_eq!((first.status, second.status), (202, 202));
    assert_eq!(first.body["id"], second.body["id"]);
    assert_eq!(
        second.body["status"], "sent",
        "the repeat shows the message as it is now"
    );
    let other = send(
        &channel,
        &conversation,
        json!({"kind": "text", "text": "else"}),
        Some("key-1"),
    )
    .await;
    assert_eq!(
        (other.status, other.code()),
        (422, "idempotency_key_reused")
    );
    // Ten at once with one key: still one send.
    let racers = (0..10).map(|_| {
        send(
            &channel,
            &conversation,
            json!({"kind": "text", "text": "race"}),
            Some("key-2"),
        )
    });
    let replies = futures::future::join_all(racers).await;
    let ids: std::collections::HashSet<String> = replies
        .iter()
        .map(|r| r.body["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "{:?}",
        replies.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    assert_eq!(accepted(&channel.external_id).len(), 2);
    let bad = send(&channel, &conversation, body, Some("has space")).await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_idempotency_key"));
}

#[tokio::test]
async fn transient_failures_are_retried_and_permanent_ones_explained() {
    let channel = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    fail_next(
        &channel.external_id,
        json!([{"status": 429, "retry_after": 0}, {"status": 503}]),
    );
    let reply = send(
        &channel,
        &conversation,
        json!({"kind": "text", "text": "third time lucky"}),
        None,
    )
    .await;
    assert_eq!(reply.status, 202);
    let id = reply.body["id"].as_str().unwrap();
    assert_eq!(message(&channel, &conversation, id).await["status"], "sent");
    assert_eq!(
        sandbox_outbox(&channel.external_id).len(),
        3,
        "two failures, then the send"
    );

    fail_next(
        &channel.external_id,
        json!([{"status": 400, "code": 131026, "message": "Message undeliverable"}]),
    );
    let reply = send(
        &channel,
        &conversation,
        json!({"kind": "text", "text": "to nowhere"}),
        None,
    )
    .await;
    assert_eq!(reply.status, 202);
    let id = reply.body["id"].as_str().unwrap();
    let m = message(&channel, &conversation, id).await;
    assert_eq!(m["status"], "failed");
    assert_eq!(m["error"]["code"], "131026");
    assert!(m["error"]["hint"].as_str().unwrap().contains("wa.me"));
    assert_eq!(
        sandbox_outbox(&channel.external_id).len(),
        4,
        "a permanent error is not retried"
    );
    let notes: Vec<Value> = all_messages(&channel.tenant, &conversation)
        .await
        .into_iter()
        .filter(|m| m["direction"] == "system")
        .collect();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["error"]["code"], "131026");

    let five = json!([{"status": 500}, {"status": 500}, {"status": 500}, {"status": 500}, {"status": 500}]);
    fail_next(&channel.external_id, five);
    let reply = send(
        &channel,
        &conversation,
        json!({"kind": "text", "text": "outage"}),
        None,
    )
    .await;
    let m = message(&channel, &conversation, reply.body["id"].as_str().unwrap()).await;
    assert_eq!(m["status"], "failed");
    assert!(
        m["error"]["reason"].as_str().unwrap().contains("attempts"),
        "{m}"
    );
}

/// What an invocation that ended after accepting a send, before sending it, leaves:
/// the pending message of `text` with the `Idempotency-Key` `key`, accepted `ago` before
/// now, through the store's own acceptance. Its id.
async fn accepted_then_ended(
    channel: &TestChannel,
    conversation: &str,
    text: &str,
    key: &str,
    ago: chrono::Duration,
) -> String {
    accepted_then_ended_at(channel, conversation, text, key, ago, Some(ago)).await
}

/// [`accepted_then_ended`] with a message stamped `stamped` ago and accepted `accepted` ago
/// (`None`: stored as before `accepted_at` was recorded).
async fn accepted_then_ended_at(
    channel: &TestChannel,
    conversation: &str,
    text: &str,
    key: &str,
    stamped: chrono::Duration,
    accepted: Option<chrono::Duration>,
) -> String {
    let body = json!({"kind": "text", "text": text}).to_string();
    let body_hash = shared::service::outbound::digest(body.as_bytes());
    accept_and_end(
        channel,
        conversation,
        text,
        key,
        &body_hash,
        stamped,
        accepted,
    )
    .await
}

/// [`accepted_then_ended`] for a scheduled message's fire (its key, its body's hash, as
/// the scheduler sends it): a delivery that ended after accepting the send.
pub(crate) async fn fire_accepted_then_ended(
    channel: &TestChannel,
    conversation: &str,
    text: &str,
    scheduled_id: &str,
    ago: chrono::Duration,
) -> String {
    let message = serde_json::from_value(json!({"kind": "text", "text": text})).unwrap();
    let body_hash = shared::service::outbound::SendRequest::new(message, None).body_hash;
    let key = format!("scheduled-{scheduled_id}");
    accept_and_end(
        channel,
        conversation,
        text,
        &key,
        &body_hash,
        ago,
        Some(ago),
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn accept_and_end(
    channel: &TestChannel,
    conversation: &str,
    text: &str,
    key: &str,
    body_hash: &str,
    stamped: chrono::Duration,
    accepted: Option<chrono::Duration>,
) -> String {
    use shared::ports::{
        Acceptance, ChannelDirectory, IdempotencyRecord, OutboundBatch, OutboundStore,
        PendingMessage,
    };
    use shared::service::outbound::digest;
    let store = store();
    let tenant = TenantId::parse(&channel.tenant).unwrap();
    let routed = store
        .by_id(&shared::domain::ids::ChannelId::parse(&channel.id).unwrap())
        .await
        .unwrap()
        .expect("the channel");
    let (seen, _) = store
        .conversation_for_send(&tenant, conversation, None)
        .await
        .unwrap();
    let seen = seen.expect("the conversation");
    let message = PendingMessage {
        id: ulid::Ulid::new().to_string(),
        created_at: shared::domain::time::rfc3339(&(Utc::now() - stamped)),
        kind: shared::domain::message::MessageKind::Text,
        text: Some(text.to_owned()),
        media: None,
        raw: Value::Null,
    };
    let batch = OutboundBatch {
        channel: routed.channel.clone(),
        conversation_id: conversation.to_owned(),
        customer: seen.customer.external_id.clone(),
        actor: shared::domain::actor::Actor::agent("agent-1"),
        messages: vec![message.clone()],
        idempotency: Some(IdempotencyRecord {
            key_hash: digest(key.as_bytes())[..32].to_owned(),
            body_hash: body_hash.to_owned(),
        }),
        reply_budget: None,
        start: false,
        seen: Some(seen),
        bot_version: None,
        accepted_at: Utc::now() - accepted.unwrap_or(stamped),
    };
    assert!(matches!(
        store.accept(&batch).await.unwrap(),
        Acceptance::Accepted
    ));
    if accepted.is_none() {
        let k = shared::adapters::keys::message(
            &tenant,
            conversation,
            &message.created_at,
            &message.id,
        );
        aws_sdk_dynamodb::Client::new(&stack().settings.sdk_config())
            .update_item()
            .table_name(stack().template.local_name("ChatTable").unwrap())
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(k.pk))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(k.sk))
            .update_expression("REMOVE accepted_at")
            .send()
            .await
            .unwrap();
    }
    message.id
}

#[tokio::test]
async fn a_send_whose_invocation_ended_before_sending_goes_out_once_on_a_late_repeat() {
    let channel = connect("whatsapp").await;
    let (conversation, wa_id) = customer_wrote(&channel, "whatsapp", 1).await;
    let text = format!("Your order ships today {}", ulid::Ulid::new());
    let body = json!({"kind": "text", "text": text});
    // Accepted 30 s ago: the first send could still be running, so a repeat only answers.
    let recent = accepted_then_ended(
        &channel,
        &conversation,
        &text,
        "k-recent",
        chrono::Duration::seconds(30),
    )
    .await;
    let reply = send(&channel, &conversation, body.clone(), Some("k-recent")).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["id"], recent.as_str(), "{}", reply.text);
    assert_eq!(
        message(&channel, &conversation, &recent).await["status"],
        "pending"
    );
    assert!(accepted_sends_to(&channel.external_id, &wa_id).is_empty());

    // Accepted two minutes ago and never settled: repeats take it over, one of them sends it.
    let left = accepted_then_ended(
        &channel,
        &conversation,
        &text,
        "k-left",
        chrono::Duration::minutes(2),
    )
    .await;
    let repeats = (0..4).map(|_| send(&channel, &conversation, body.clone(), Some("k-left")));
    for reply in futures::future::join_all(repeats).await {
        assert_eq!(reply.status, 202, "{}", reply.text);
        assert_eq!(reply.body["id"], left.as_str(), "{}", reply.text);
    }
    let sends = accepted_sends_to(&channel.external_id, &wa_id);
    assert_eq!(sends.len(), 1, "sent once: {sends:?}");
    assert_eq!(sends[0]["body"]["text"]["body"], text.as_str());
    let stored = message(&channel, &conversation, &left).await;
    assert_eq!(stored["status"], "sent", "{stored}");
    assert!(stored["provider_message_id"].is_string());
    assert_eq!(
        stored["actor"]["id"], "agent-1",
        "recorded with the actor that sent it"
    );
    let again = send(&channel, &conversation, body, Some("k-left")).await;
    assert_eq!(again.body["status"], "sent", "{}", again.text);
    assert_eq!(accepted_sends_to(&channel.external_id, &wa_id).len(), 1);
}

#[tokio::test]
async fn a_send_stamped_before_it_was_accepted_is_taken_over_only_once_its_acceptance_is_old() {
    let channel = connect("whatsapp").await;
    let (conversation, wa_id) = customer_wrote(&channel, "whatsapp", 1).await;
    let text = format!("Your table is ready {}", ulid::Ulid::new());
    let body = json!({"kind": "text", "text": text});
    let repeat = |key: &'static str| send(&channel, &conversation, body.clone(), Some(key));
    // A resumed bot turn stamps its message with the turn's time, 10 minutes ago, but
    // accepted it 10 s ago: that send may still be running.
    let running = accepted_then_ended_at(
        &channel,
        &conversation,
        &text,
        "k-running",
        chrono::Duration::minutes(10),
        Some(chrono::Duration::seconds(10)),
    )
    .await;
    let reply = repeat("k-running").await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["id"], running.as_str());
    assert_eq!(reply.body["status"], "pending", "{}", reply.text);
    assert!(accepted_sends_to(&channel.external_id, &wa_id).is_empty());
    // Messages stored before `accepted_at` was recorded are judged by their time.
    let recent = accepted_then_ended_at(
        &channel,
        &conversation,
        &text,
        "k-old-recent",
        chrono::Duration::seconds(10),
        None,
    )
    .await;
    let reply = repeat("k-old-recent").await;
    assert_eq!(reply.body["id"], recent.as_str());
    assert_eq!(reply.body["status"], "pending", "{}", reply.text);
    assert!(accepted_sends_to(&channel.external_id, &wa_id).is_empty());
    let left = accepted_then_ended_at(
        &channel,
        &conversation,
        &text,
        "k-old-left",
        chrono::Duration::minutes(2),
        None,
    )
    .await;
    let reply = repeat("k-old-left").await;
    assert_eq!(reply.body["id"], left.as_str());
    assert_eq!(reply.body["status"], "sent", "{}", reply.text);
    assert_eq!(accepted_sends_to(&channel.external_id, &wa_id).len(), 1);
}

#[tokio::test]
async fn a_send_that_times_out_is_outcome_unknown_until_a_status_maps_it_back() {
    let channel = connect("whatsapp").await;
    let (conversation, customer) = customer_wrote(&channel, "whatsapp", 1).await;
    // The sandbox answers after the outbound call timeout of the test stack.
    fail_next(&channel.external_id, json!([{"delay_ms": 2500}]));
    let reply = send(
        &channel,
        &conversation,
        json!({"kind": "text", "text": "slow"}),
        None,
    )
    .await;
    assert_eq!(reply.status, 202);
    let id = reply.body["id"].as_str().unwrap();
    let m = message(&channel, &conversation, id).await;
    assert_eq!(m["status"], "pending");
    assert_eq!(m["error"]["code"], "outcome_unknown");
    // Give the sandbox time to finish; the provider did accept it: exactly one attempt.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let calls = sandbox_outbox(&channel.external_id);
    assert_eq!(calls.len(), 1, "never re-sent blindly");
    let wamid = calls[0]["provider_message_id"].as_str().unwrap().to_owned();
    let reference = calls[0]["body"]["biz_opaque_callback_data"].clone();

    let mut vars = FixtureVars::new(&channel, false);
    vars.sender = customer;
    vars.ref_id = wamid.clone();
    let mut status: Value =
        serde_json::from_str(&vars.render(&fixture("whatsapp/status_delivered.json"))).unwrap();
    status["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"] =
        reference;
    assert_eq!(post_meta("whatsapp", &status.to_string()).await.status, 200);
    let m = message(&channel, &conversation, id).await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["provider_message_id"], wamid.as_str());
    assert!(m["error"].is_null(), "{m}");
}

#[tokio::test]
async fn a_thousand_sends_through_failures_end_sent_or_failed_and_none_twice() {
    use futures::StreamExt;
    let channel = connect("whatsapp").await;
    let mut conversations = Vec::new();
    for _ in 0..10 {
        conversations.push(customer_wrote(&channel, "whatsapp", 1).await.0);
    }
    sandbox_chaos(&channel.external_id, 0.3, 0.05, 7);
    let sends = (0..1000).map(|i| {
        let (channel, conversation) = (&channel, conversations[i % 10].clone());
        async move {
            let body = json!({"kind": "text", "text": format!("m{i}")});
            let reply = send(channel, &conversation, body, Some(&format!("k{i}"))).await;
            assert_eq!(reply.status, 202, "send {i}: {}", reply.text);
            reply.body["id"].as_str().unwrap().to_owned()
        }
    });
    let ids: Vec<String> = futures::stream::iter(sends).buffered(16).collect().await;
    assert_eq!(
        ids.iter().collect::<std::collections::HashSet<_>>().len(),
        1000
    );

    let mut messages = Vec::new();
    for c in &conversations {
        messages.extend(
            all_messages(&channel.tenant, c)
                .await
                .into_iter()
                .filter(|m| m["direction"] == "outbound"),
        );
    }
    assert_eq!(messages.len(), 1000, "none lost");
    let sent: Vec<&Value> = messages.iter().filter(|m| m["status"] == "sent").collect();
    let failed: Vec<&Value> = messages
        .iter()
        .filter(|m| m["status"] == "failed")
        .collect();
    assert_eq!(
        sent.len() + failed.len(),
        1000,
        "every message ends sent or failed"
    );
    for f in &failed {
        for field in ["code", "reason", "hint"] {
            assert!(
                f["error"][field].as_str().is_some_and(|v| !v.is_empty()),
                "{f}"
            );
        }
    }
    assert!(
        !failed.is_empty() && sent.len() > 800,
        "{} sent, {} failed",
        sent.len(),
        failed.len()
    );

    let delivered = accepted(&channel.external_id);
    let texts: Vec<&str> = delivered
        .iter()
        .map(|i| i["body"]["text"]["body"].as_str().unwrap())
        .collect();
    let unique: std::collections::HashSet<&&str> = texts.iter().collect();
    assert_eq!(
        unique.len(),
        texts.len(),
        "no message reached the provider twice"
    );
    assert_eq!(
        delivered.len(),
        sent.len(),
        "every accepted call is a sent message"
    );
    let sent_ids: std::collections::HashSet<&str> = sent
        .iter()
        .map(|m| m["provider_message_id"].as_str().unwrap())
        .collect();
    assert!(
        delivered
            .iter()
            .all(|i| sent_ids.contains(i["provider_message_id"].as_str().unwrap()))
    );

    // Repeating requests with their keys sends nothing new and answers the same messages.
    for i in (0..1000).step_by(50) {
        let body = json!({"kind": "text", "text": format!("m{i}")});
        let reply = send(
            &channel,
            &conversations[i % 10],
            body,
            Some(&format!("k{i}")),
        )
        .await;
        assert_eq!(reply.body["id"], ids[i].as_str());
    }
    assert_eq!(accepted(&channel.external_id).len(), delivered.len());
}

#[tokio::test]
async fn another_tenants_or_an_unknown_conversation_is_404_and_nothing_is_sent() {
    let channel = connect("whatsapp").await;
    let (conversation, _) = customer_wrote(&channel, "whatsapp", 1).await;
    let stranger = connect("whatsapp").await;
    let body = json!({"kind": "text", "text": "hi"});
    for id in [
        conversation.as_str(),
        "cv_nope",
        "cv_01JDX3M5Q8ZJ6Y7K2W9V4T1R0S_0123456789abcdef01234567",
    ] {
        let reply = send(&stranger, id, body.clone(), None).await;
        assert_eq!((reply.status, reply.code()), (404, "not_found"), "{id}");
    }
    let reply = send(
        &channel,
        &conversation,
        json!({"kind": "text", "text": "hi", "extra": 1}),
        None,
    )
    .await;
    assert_eq!((reply.status, reply.code()), (422, "invalid_body"));
    assert!(sandbox_outbox(&channel.external_id).is_empty());
    assert!(sandbox_outbox(&stranger.external_id).is_empty());
}
