//! The sandbox over real loopback HTTP, as the functions and the tests reach it.

use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::*;

/// A sandbox serving on a free loopback port, and its base URL.
async fn start(config: SandboxConfig) -> (Sandbox, String) {
    let sandbox = Sandbox::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(sandbox.clone().serve(listener));
    (sandbox, url)
}

async fn sandbox() -> (Sandbox, String) {
    start(SandboxConfig {
        meta_app_secret: "test-secret".into(),
        ..SandboxConfig::default()
    })
    .await
}

struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("the sandbox answers");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.expect("body");
    Reply {
        status,
        retry_after,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

async fn graph(url: &str, account: &str, body: Value) -> Reply {
    send(
        reqwest::Client::new()
            .post(format!("{url}/graph/{account}/messages"))
            .bearer_auth("EAAG-anything")
            .json(&body),
    )
    .await
}

async fn control(url: &str, path: &str, body: Value) -> Reply {
    send(
        reqwest::Client::new()
            .post(format!("{url}{path}"))
            .body(body.to_string()),
    )
    .await
}

fn wa_text(to: &str, text: &str) -> Value {
    json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
        "type": "text", "text": {"body": text}})
}

async fn wechat_token(url: &str, appid: &str, secret: &str) -> Value {
    send(reqwest::Client::new().get(format!(
        "{url}/wechat/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}"
    )))
    .await
    .body
}

async fn wechat_send(url: &str, token: &str, body: Value) -> Value {
    send(
        reqwest::Client::new()
            .post(format!(
                "{url}/wechat/cgi-bin/message/custom/send?access_token={token}"
            ))
            .json(&body),
    )
    .await
    .body
}

#[tokio::test]
async fn a_whatsapp_text_is_accepted_with_a_wamid_and_recorded() {
    let (sandbox, url) = sandbox().await;
    let reply = graph(&url, "1001", wa_text("+1 555 0100", "hello")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply.body["messages"][0]["id"].as_str().expect("id");
    assert!(id.starts_with("wamid."));
    assert_eq!(reply.body["contacts"][0]["input"], "+1 555 0100");
    assert_eq!(reply.body["contacts"][0]["wa_id"], "15550100");

    let outbox = sandbox.outbox(Some("1001"), None);
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].api, Api::Whatsapp);
    assert_eq!(outbox[0].to, "+1 555 0100");
    assert_eq!(outbox[0].provider_message_id.as_deref(), Some(id));
    assert_eq!(outbox[0].body["text"]["body"], "hello");
    assert!(!outbox[0].injected);

    let over_http =
        send(reqwest::Client::new().get(format!("{url}/sandbox/outbox?account=1001"))).await;
    assert_eq!(over_http.body["items"][0]["seq"], 1);
    assert_eq!(over_http.body["items"][0]["api"], "whatsapp");
}

#[tokio::test]
async fn a_template_send_is_answered_as_accepted() {
    let (_, url) = sandbox().await;
    let reply = graph(
        &url,
        "1002",
        json!({"messaging_product": "whatsapp", "to": "1555", "type": "template",
            "template": {"name": "hello_world", "language": {"code": "en_US"}}}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["messages"][0]["message_status"], "accepted");
}

#[tokio::test]
async fn an_audio_with_a_caption_is_refused_like_meta_and_still_recorded() {
    let (sandbox, url) = sandbox().await;
    let reply = graph(
        &url,
        "1003",
        json!({"messaging_product": "whatsapp", "to": "1555", "type": "audio",
            "audio": {"id": "77", "caption": "listen"}}),
    )
    .await;
    assert_eq!(reply.status, 400);
    let error = &reply.body["error"];
    assert_eq!(error["code"], 100);
    assert_eq!(error["type"], "OAuthException");
    assert_eq!(error["message"], "(#100) Invalid parameter");
    assert!(
        error["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("caption")
    );
    assert!(error["fbtrace_id"].is_string());
    let outbox = sandbox.outbox(Some("1003"), None);
    assert_eq!(outbox[0].status, 400);
    assert_eq!(outbox[0].provider_message_id, None);
    assert_eq!(
        sandbox.stats().sends["1003"],
        SendCounts {
            accepted: 0,
            failed: 1
        }
    );
}

#[tokio::test]
async fn answer_options_meta_refuses_get_its_codes_and_valid_ones_go_out() {
    let (_, url) = sandbox().await;
    let interactive = |title: &str| {
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "1555",
            "type": "interactive", "interactive": {"type": "button", "body": {"text": "Which?"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": title}}]}}})
    };
    let ok = graph(&url, "1010", interactive("Returns")).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let long = graph(&url, "1010", interactive("A title over twenty c")).await;
    assert_eq!(long.status, 400);
    let error = &long.body["error"];
    assert_eq!(error["code"], 131_009);
    assert_eq!(error["message"], "(#131009) Parameter value is not valid");
    assert_eq!(
        error["error_data"]["details"],
        "Button title length invalid. Min length: 1, Max length: 20"
    );
    let hollow = graph(
        &url,
        "1010",
        json!({"messaging_product": "whatsapp", "to": "1555", "type": "interactive",
            "interactive": {"type": "button", "body": {"text": "Which?"},
            "action": {"buttons": [{"type": "reply"}]}}}),
    )
    .await;
    assert_eq!(hollow.status, 400);
    assert_eq!(hollow.body["error"]["code"], 100);
    assert_eq!(hollow.body["error"]["message"], "(#100) Invalid parameter");
    let quick = |reply: Value| {
        json!({"recipient": {"id": "psid-1"}, "messaging_type": "RESPONSE",
            "message": {"text": "Which?", "quick_replies": [reply]}})
    };
    let ok = graph(
        &url,
        "page-2",
        quick(json!({"content_type": "text", "title": "Returns", "payload": "returns"})),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let untyped = graph(
        &url,
        "page-2",
        quick(json!({"title": "Returns", "payload": "r"})),
    )
    .await;
    assert_eq!(untyped.status, 400);
    assert_eq!(untyped.body["error"]["code"], 100);
    assert_eq!(
        untyped.body["error"]["message"],
        "(#100) param message[quick_replies][0][content_type] is required"
    );
}

#[tokio::test]
async fn graph_calls_without_a_valid_token_get_code_190() {
    let (_, url) = sandbox().await;
    let client = reqwest::Client::new();
    let missing = send(
        client
            .post(format!("{url}/graph/1004/messages"))
            .json(&wa_text("1", "x")),
    )
    .await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.body["error"]["code"], 190);
    let invalid = send(
        client
            .post(format!("{url}/graph/1004/messages?access_token=invalid-x"))
            .json(&wa_text("1", "x")),
    )
    .await;
    assert_eq!(invalid.status, 401);
    assert!(
        invalid.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid OAuth access token")
    );
    let by_query = send(
        client
            .post(format!("{url}/graph/1004/messages?access_token=EAAG"))
            .json(&wa_text("1", "x")),
    )
    .await;
    assert_eq!(by_query.status, 200);
}

#[tokio::test]
async fn messenger_and_instagram_use_the_send_api_shape() {
    let (sandbox, url) = sandbox().await;
    let ok = graph(
        &url,
        "page-1",
        json!({"recipient": {"id": "psid-1"}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT",
            "message": {"text": "an agent here"}}),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["recipient_id"], "psid-1");
    assert!(ok.body["message_id"].as_str().unwrap().starts_with("m_"));
    let bad = graph(
        &url,
        "page-1",
        json!({"recipient": {"id": "psid-1"}, "messaging_type": "MESSAGE_TAG",
            "message": {"text": "no tag"}}),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["code"], 100);
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("(#100) ")
    );
    assert!(bad.body["error"].get("error_data").is_none());
    let items = sandbox.outbox(Some("page-1"), Some("psid-1"));
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i.api == Api::Messenger));
}

#[tokio::test]
async fn queued_failures_come_first_then_chaos_then_success() {
    let (sandbox, url) = sandbox().await;
    sandbox
        .set_chaos(
            "2001",
            ChaosSettings {
                transient_rate: 0.0,
                permanent_rate: 1.0,
                seed: 1,
            },
        )
        .unwrap();
    let queued = control(
        &url,
        "/sandbox/fail",
        json!({"account": "2001", "next": [{"status": 429, "retry_after": 1},
            {"status": 400, "code": 131026, "message": "Message undeliverable"}]}),
    )
    .await;
    assert_eq!(queued.status, 200, "{}", queued.body);

    let first = graph(&url, "2001", wa_text("1555", "a")).await;
    assert_eq!(first.status, 429);
    assert_eq!(first.retry_after.as_deref(), Some("1"));
    assert_eq!(first.body["error"]["code"], 130429);
    let second = graph(&url, "2001", wa_text("1555", "b")).await;
    assert_eq!(second.body["error"]["code"], 131026);
    assert_eq!(
        second.body["error"]["error_data"]["details"],
        "Message undeliverable"
    );
    // The queue is empty: chaos (always permanent here) decides.
    let third = graph(&url, "2001", wa_text("1555", "c")).await;
    assert_eq!(third.status, 400);
    assert_eq!(third.body["error"]["code"], 131026);
    // Other accounts are untouched.
    assert_eq!(graph(&url, "2002", wa_text("1555", "d")).await.status, 200);

    sandbox
        .set_chaos(
            "2001",
            ChaosSettings {
                transient_rate: 0.0,
                permanent_rate: 0.0,
                seed: 0,
            },
        )
        .unwrap();
    assert_eq!(graph(&url, "2001", wa_text("1555", "e")).await.status, 200);

    let outbox = sandbox.outbox(Some("2001"), None);
    assert_eq!(
        outbox.iter().map(|i| i.injected).collect::<Vec<_>>(),
        [true, true, true, false]
    );
    assert!(outbox[..3].iter().all(|i| i.provider_message_id.is_none()));
    assert_eq!(
        sandbox.stats().sends["2001"],
        SendCounts {
            accepted: 1,
            failed: 3
        }
    );
}

#[tokio::test]
async fn chaos_over_http_with_the_same_seed_repeats_itself() {
    let outcomes = async |account: &str| {
        let (_, url) = sandbox().await;
        let reply = control(
            &url,
            "/sandbox/chaos",
            json!({"account": account, "transient_rate": 0.3, "permanent_rate": 0.1, "seed": 42}),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let mut statuses = Vec::new();
        for i in 0..40 {
            statuses.push(
                graph(&url, account, wa_text("1555", &format!("m{i}")))
                    .await
                    .status,
            );
        }
        statuses
    };
    let first = outcomes("3001").await;
    assert_eq!(first, outcomes("3001").await);
    assert!(first.contains(&200));
    assert!(
        first.iter().any(|s| [429, 500, 503].contains(s)),
        "{first:?}"
    );
}

#[tokio::test]
async fn a_delay_is_waited_out_and_the_message_still_goes_out() {
    let (sandbox, url) = sandbox().await;
    sandbox.fail_next("4001", [Fault::Delay { ms: 300 }]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let timed_out = client
        .post(format!("{url}/graph/4001/messages"))
        .bearer_auth("EAAG")
        .json(&wa_text("1555", "slow"))
        .send()
        .await;
    assert!(timed_out.is_err(), "the client gave up first");
    let deadline = Instant::now() + Duration::from_secs(5);
    while sandbox.outbox(Some("4001"), None).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let outbox = sandbox.outbox(Some("4001"), None);
    assert_eq!(outbox.len(), 1, "processed although the client left");
    assert_eq!(outbox[0].status, 200);
    assert_eq!(outbox[0].delay_ms, Some(300));
    assert!(outbox[0].provider_message_id.is_some());
}

#[tokio::test]
async fn bad_control_requests_are_400_with_a_code() {
    let (_, url) = sandbox().await;
    for (path, body, code) in [
        (
            "/sandbox/fail",
            json!({"account": "x", "next": [{"status": 200}]}),
            "invalid_fault",
        ),
        ("/sandbox/fail", json!({"next": []}), "invalid_json"),
        (
            "/sandbox/chaos",
            json!({"account": "x", "transient_rate": 2}),
            "invalid_rate",
        ),
        (
            "/sandbox/customer-message",
            json!({"channel": "sms", "account": "a", "from": "b", "text": "t"}),
            "unsupported_channel",
        ),
        (
            "/sandbox/customer-message",
            json!({"channel": "whatsapp", "account": "a", "from": "b"}),
            "missing_field",
        ),
        (
            "/sandbox/status",
            json!({"channel": "whatsapp", "account": "a", "to": "b",
            "provider_message_id": "wamid.x", "status": "lost"}),
            "invalid_status",
        ),
    ] {
        let reply = control(&url, path, body.clone()).await;
        assert_eq!(reply.status, 400, "{path} {body}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], code, "{path} {body}");
    }
    let not_json = send(
        reqwest::Client::new()
            .post(format!("{url}/sandbox/fail"))
            .body("{"),
    )
    .await;
    assert_eq!(not_json.body["error"]["code"], "invalid_json");
}

#[tokio::test]
async fn a_new_wechat_token_invalidates_the_previous_one() {
    let (sandbox, url) = start(SandboxConfig {
        wechat_token_grace: Duration::ZERO,
        ..SandboxConfig::default()
    })
    .await;
    let first = wechat_token(&url, "wxA", "s").await;
    assert_eq!(first["expires_in"], 7200);
    let first = first["access_token"].as_str().unwrap().to_owned();
    let text = json!({"touser": "o1", "msgtype": "text", "text": {"content": "hi"}});
    assert_eq!(
        wechat_send(&url, &first, text.clone()).await,
        json!({"errcode": 0, "errmsg": "ok"})
    );

    let second = wechat_token(&url, "wxA", "s").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        wechat_send(&url, &first, text.clone()).await["errcode"],
        40001
    );
    assert_eq!(wechat_send(&url, &second, text.clone()).await["errcode"], 0);
    assert_eq!(wechat_send(&url, "", text).await["errcode"], 41001);

    assert_eq!(wechat_token(&url, "wxA", "wrong").await["errcode"], 40125);
    let stats = sandbox.stats();
    assert_eq!(stats.token_fetches["wxA"], 3);
    assert_eq!(
        stats.sends["wxA"],
        SendCounts {
            accepted: 2,
            failed: 1
        }
    );
    let outbox = sandbox.outbox(Some("wxA"), Some("o1"));
    assert_eq!(outbox.len(), 3);
    assert!(
        outbox
            .iter()
            .all(|i| i.api == Api::Wechat && i.provider_message_id.is_none())
    );
}

#[tokio::test]
async fn wechat_tokens_stay_valid_for_the_grace_by_default() {
    let (_, url) = sandbox().await;
    let first = wechat_token(&url, "wx123", "wx-secret").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    wechat_token(&url, "wx123", "wx-secret").await;
    let text = json!({"touser": "o1", "msgtype": "text", "text": {"content": "hi"}});
    assert_eq!(wechat_send(&url, &first, text).await["errcode"], 0);
}

#[tokio::test]
async fn wechat_media_is_uploaded_sent_by_id_and_downloaded() {
    let (sandbox, url) = sandbox().await;
    let token = wechat_token(&url, "wxM", "s").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let upload = |name: &'static str, bytes: Vec<u8>| {
        let form = reqwest::multipart::Form::new().part(
            "media",
            reqwest::multipart::Part::bytes(bytes)
                .file_name(name)
                .mime_str("image/jpeg")
                .unwrap(),
        );
        send(
            reqwest::Client::new()
                .post(format!(
                    "{url}/wechat/cgi-bin/media/upload?access_token={token}&type=image"
                ))
                .multipart(form),
        )
    };
    let uploaded = upload("a.jpg", vec![0xFF, 0xD8, 0xFF, 1, 2, 3]).await.body;
    assert_eq!(uploaded["type"], "image", "{uploaded}");
    assert!(uploaded["created_at"].is_i64());
    let media_id = uploaded["media_id"].as_str().unwrap().to_owned();
    assert_eq!(upload("a.jpg", vec![]).await.body["errcode"], 44001);
    assert_eq!(upload("a.heic", vec![1]).await.body["errcode"], 40005);

    let image = |id: &str| json!({"touser": "o1", "msgtype": "image", "image": {"media_id": id}});
    assert_eq!(
        wechat_send(&url, &token, image(&media_id)).await["errcode"],
        0
    );
    assert_eq!(
        wechat_send(&url, &token, image("nope")).await["errcode"],
        40007
    );

    let download = reqwest::Client::new()
        .get(format!(
            "{url}/wechat/cgi-bin/media/get?access_token={token}&media_id={media_id}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(download.headers()["content-type"], "image/jpeg");
    assert_eq!(
        download.bytes().await.unwrap().as_ref(),
        [0xFF, 0xD8, 0xFF, 1, 2, 3]
    );

    // Another app cannot use the media; files a test puts are everyone's.
    let other = wechat_token(&url, "wxOther", "s").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        wechat_send(&url, &other, image(&media_id)).await["errcode"],
        40007
    );
    sandbox.put_file("shared-1", b"x".to_vec(), "image/png");
    assert_eq!(
        wechat_send(&url, &other, image("shared-1")).await["errcode"],
        0
    );
}

#[tokio::test]
async fn injected_wechat_errors_are_http_200_with_an_errcode() {
    let (sandbox, url) = sandbox().await;
    let token = wechat_token(&url, "wxF", "s").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    sandbox.fail_next(
        "wxF",
        [
            Fault::parse(&json!({"errcode": 45047})).unwrap(),
            Fault::parse(&json!({"status": 503})).unwrap(),
        ],
    );
    let text = json!({"touser": "o1", "msgtype": "text", "text": {"content": "hi"}});
    assert_eq!(
        wechat_send(&url, &token, text.clone()).await,
        json!({"errcode": 45047, "errmsg": "out of response count limit"})
    );
    assert_eq!(wechat_send(&url, &token, text.clone()).await["errcode"], -1);
    assert_eq!(wechat_send(&url, &token, text).await["errcode"], 0);
    let injected: Vec<bool> = sandbox
        .outbox(Some("wxF"), None)
        .iter()
        .map(|i| i.injected)
        .collect();
    assert_eq!(injected, [true, true, false]);
}

#[tokio::test]
async fn whatsapp_media_is_looked_up_with_the_channel_token_then_downloaded() {
    let (sandbox, url) = sandbox().await;
    sandbox.put_file("med-1", b"JPEGDATA".to_vec(), "image/jpeg");
    let client = reqwest::Client::new();
    let unauthorized = send(
        client
            .get(format!("{url}/graph/med-1"))
            .bearer_auth("other"),
    )
    .await;
    assert_eq!(unauthorized.status, 401);
    let lookup = send(
        client
            .get(format!("{url}/graph/med-1"))
            .bearer_auth("EAAG-test"),
    )
    .await;
    assert_eq!(lookup.status, 200);
    assert_eq!(lookup.body["mime_type"], "image/jpeg");
    assert_eq!(lookup.body["file_size"], 8);
    let file = client
        .get(lookup.body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(file.bytes().await.unwrap().as_ref(), b"JPEGDATA");
    let gone = send(
        client
            .get(format!("{url}/graph/none"))
            .bearer_auth("EAAG-test"),
    )
    .await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn templates_are_created_listed_and_deleted_per_business_account() {
    let (_, url) = sandbox().await;
    let client = reqwest::Client::new();
    let create = |name: &str, language: &str| {
        send(
            client
                .post(format!("{url}/graph/waba-1/message_templates"))
                .bearer_auth("EAAG")
                .json(
                    &json!({"name": name, "language": language, "category": "UTILITY",
                    "components": [{"type": "BODY", "text": "Hi {{1}}"}]}),
                ),
        )
    };
    let created = create("order_update", "en_US").await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.body["status"], "APPROVED");
    assert_eq!(created.body["category"], "UTILITY");
    assert!(
        created.body["id"]
            .as_str()
            .unwrap()
            .bytes()
            .all(|b| b.is_ascii_digit())
    );
    assert_eq!(create("order_update", "es").await.status, 200);
    assert_eq!(
        create("pending_promo", "en_US").await.body["status"],
        "PENDING"
    );
    assert_eq!(
        create("rejected_promo", "en_US").await.body["status"],
        "REJECTED"
    );
    let duplicate = create("order_update", "en_US").await;
    assert_eq!(duplicate.status, 400);
    assert_eq!(duplicate.body["error"]["error_subcode"], 2388024);
    let missing = send(
        client
            .post(format!("{url}/graph/waba-1/message_templates"))
            .bearer_auth("EAAG")
            .json(&json!({"name": "x", "language": "en"})),
    )
    .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["error"]["code"], 100);

    let list = send(
        client
            .get(format!("{url}/graph/waba-1/message_templates"))
            .bearer_auth("EAAG"),
    )
    .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 4);
    assert_eq!(list.body["data"][0]["components"][0]["type"], "BODY");
    assert_eq!(list.body["paging"]["cursors"]["after"], "");
    let other = send(
        client
            .get(format!("{url}/graph/waba-2/message_templates"))
            .bearer_auth("EAAG"),
    )
    .await;
    assert_eq!(other.body["data"], json!([]));

    let delete = |name: &str| {
        send(
            client
                .delete(format!("{url}/graph/waba-1/message_templates?name={name}"))
                .bearer_auth("EAAG"),
        )
    };
    assert_eq!(delete("order_update").await.body, json!({"success": true}));
    assert_eq!(delete("order_update").await.status, 400);
    let list = send(
        client
            .get(format!("{url}/graph/waba-1/message_templates"))
            .bearer_auth("EAAG"),
    )
    .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
}

/// A stand-in dev server that keeps every request it gets.
#[derive(Clone)]
struct Captured {
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Vec<u8>,
}

async fn capture_server() -> (String, mpsc::UnboundedReceiver<Captured>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .fallback(
            async |State(tx): State<mpsc::UnboundedSender<Captured>>,
                   uri: axum::http::Uri,
                   RawQuery(query): RawQuery,
                   headers: HeaderMap,
                   body: axum::body::Bytes| {
                let _ = tx.send(Captured {
                    path: uri.path().to_owned(),
                    query,
                    headers,
                    body: body.to_vec(),
                });
                "success"
            },
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

#[tokio::test]
async fn customer_messages_reach_the_dev_server_signed_and_parseable() {
    let (sandbox, url) = sandbox().await;
    let no_target = control(
        &url,
        "/sandbox/customer-message",
        json!({"channel": "whatsapp", "account": "5001", "from": "1555", "text": "hi"}),
    )
    .await;
    assert_eq!(no_target.status, 409);
    assert_eq!(no_target.body["error"]["code"], "no_webhook_target");

    let (dev, mut received) = capture_server().await;
    sandbox.set_webhook_base(format!("{dev}/"));

    let reply = control(
        &url,
        "/sandbox/customer-message",
        json!({"channel": "whatsapp", "account": "5001", "from": "15550001111", "name": "Ana", "text": "hi"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], 200);
    assert_eq!(reply.body["body"], "success");
    let wamid = reply.body["provider_message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = received.recv().await.unwrap();
    assert_eq!(got.path, "/webhooks/whatsapp");
    let signature = got.headers["x-hub-signature-256"].to_str().unwrap();
    shared::adapters::channels::graph::verify_signature("test-secret", &got.body, Some(signature))
        .expect("signed with the app secret");
    let parsed = shared::adapters::channels::whatsapp::webhook::parse_whatsapp(&got.body)
        .expect("a WhatsApp webhook");
    assert_eq!(parsed.accounts[0].external_id, "5001");
    let shared::domain::inbound::WebhookItem::Message(m) = &parsed.accounts[0].items[0] else {
        panic!("a message: {parsed:?}");
    };
    assert_eq!(m.provider_message_id, wamid);
    assert_eq!(m.customer, "15550001111");
    assert_eq!(m.customer_name.as_deref(), Some("Ana"));
    assert_eq!(m.text.as_deref(), Some("hi"));

    for (channel, path) in [
        ("messenger", "/webhooks/messenger"),
        ("instagram", "/webhooks/instagram"),
    ] {
        let reply = sandbox
            .customer_message(CustomerMessage {
                channel: channel.into(),
                account: "page-9".into(),
                from: "psid-9".into(),
                text: Some("hello".into()),
                ..CustomerMessage::default()
            })
            .await
            .expect("posted");
        let got = received.recv().await.unwrap();
        assert_eq!(got.path, path);
        let signature = got.headers["x-hub-signature-256"].to_str().unwrap();
        shared::adapters::channels::graph::verify_signature(
            "test-secret",
            &got.body,
            Some(signature),
        )
        .unwrap();
        let parsed =
            shared::adapters::channels::messenger::webhook::parse_messaging(&got.body, None)
                .expect("parses");
        let shared::domain::inbound::WebhookItem::Message(m) = &parsed.accounts[0].items[0] else {
            panic!("a message: {parsed:?}");
        };
        assert_eq!(m.provider_message_id, reply.provider_message_id);
        assert_eq!(m.customer, "psid-9");
        assert_eq!(m.text.as_deref(), Some("hello"));
    }

    let reply = sandbox
        .customer_message(CustomerMessage {
            channel: "wechat".into(),
            channel_id: Some("ch 1".into()),
            account: "gh_abc".into(),
            token: Some("wx-token".into()),
            from: "oUser1".into(),
            text: Some("你好".into()),
            ..CustomerMessage::default()
        })
        .await
        .expect("posted");
    let got = received.recv().await.unwrap();
    assert_eq!(got.path, "/webhooks/wechat/ch%201");
    assert_eq!(got.headers["content-type"], "text/xml");
    let q = query_map(got.query.as_deref());
    shared::adapters::channels::wechat::webhook::verify_signature(
        "wx-token",
        q.get("timestamp").map(String::as_str),
        q.get("nonce").map(String::as_str),
        q.get("signature").map(String::as_str),
        chrono::Utc::now(),
    )
    .expect("signed with the channel token");
    let parsed =
        shared::adapters::channels::wechat::webhook::parse_message(&got.body).expect("parses");
    assert_eq!(parsed.accounts[0].external_id, "gh_abc");
    let shared::domain::inbound::WebhookItem::Message(m) = &parsed.accounts[0].items[0] else {
        panic!("a message: {parsed:?}");
    };
    assert_eq!(m.provider_message_id, reply.provider_message_id);
    assert_eq!(m.text.as_deref(), Some("你好"));
}

#[tokio::test]
async fn a_failed_status_reaches_the_dev_server_with_its_error() {
    let (sandbox, url) = sandbox().await;
    let (dev, mut received) = capture_server().await;
    sandbox.set_webhook_base(dev);
    let reply = control(
        &url,
        "/sandbox/status",
        json!({"channel": "whatsapp", "account": "6001", "to": "1555", "provider_message_id": "wamid.A",
            "status": "failed", "error_code": 131047, "biz_opaque_callback_data": "cb"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let got = received.recv().await.unwrap();
    let signature = got.headers["x-hub-signature-256"].to_str().unwrap();
    shared::adapters::channels::graph::verify_signature("test-secret", &got.body, Some(signature))
        .unwrap();
    let raw: Value = serde_json::from_slice(&got.body).unwrap();
    let status = &raw["entry"][0]["changes"][0]["value"]["statuses"][0];
    assert_eq!(status["errors"][0]["code"], 131047);
    assert_eq!(status["biz_opaque_callback_data"], "cb");
    let parsed = shared::adapters::channels::whatsapp::webhook::parse_whatsapp(&got.body).unwrap();
    let shared::domain::inbound::WebhookItem::Status(s) = &parsed.accounts[0].items[0] else {
        panic!("a status: {parsed:?}");
    };
    assert_eq!(s.provider_message_id, "wamid.A");
    assert_eq!(s.customer, "1555");
    assert!(s.error.is_some());
}

async fn stable_token(url: &str, appid: &str, force: Option<bool>) -> Value {
    let mut body = json!({"grant_type": "client_credential", "appid": appid, "secret": "s"});
    if let Some(force) = force {
        body["force_refresh"] = json!(force);
    }
    send(
        reqwest::Client::new()
            .post(format!("{url}/wechat/cgi-bin/stable_token"))
            .json(&body),
    )
    .await
    .body
}

fn token_of(answer: &Value) -> String {
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a token: {answer}"))
        .to_owned()
}

#[tokio::test]
async fn stable_token_gives_every_caller_the_same_token_until_its_last_minutes() {
    let (sandbox, url) = start(SandboxConfig {
        wechat_token_lifetime: Duration::from_secs(3),
        wechat_stable_renewal: Duration::from_millis(1500),
        ..SandboxConfig::default()
    })
    .await;
    let first = stable_token(&url, "wxS", None).await;
    assert_eq!(first["expires_in"], 3);
    let token = token_of(&first);
    assert_eq!(
        token_of(&stable_token(&url, "wxS", Some(false)).await),
        token
    );
    // Apart from cgi-bin/token: a token from there replaces nothing here.
    wechat_token(&url, "wxS", "s").await;
    let text = json!({"touser": "o1", "msgtype": "text", "text": {"content": "hi"}});
    assert_eq!(wechat_send(&url, &token, text.clone()).await["errcode"], 0);

    // Inside the renewal window: the next token; the old one works until it expires.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let next = token_of(&stable_token(&url, "wxS", None).await);
    assert_ne!(next, token);
    assert_eq!(wechat_send(&url, &token, text.clone()).await["errcode"], 0);
    tokio::time::sleep(Duration::from_millis(1400)).await;
    assert_eq!(
        wechat_send(&url, &token, text.clone()).await["errcode"],
        42001
    );
    assert_eq!(wechat_send(&url, &next, text).await["errcode"], 0);

    let stats = sandbox.stats();
    assert_eq!(stats.stable_token_fetches["wxS"], 3);
    assert_eq!(stats.stable_tokens_issued["wxS"], 2);
    assert_eq!(stats.token_fetches["wxS"], 4, "both endpoints");
}

#[tokio::test]
async fn a_forced_stable_token_kills_the_old_one_at_once_and_not_twice_in_30_seconds() {
    let (_, url) = sandbox().await;
    let token = token_of(&stable_token(&url, "wxF", None).await);
    let forced = token_of(&stable_token(&url, "wxF", Some(true)).await);
    assert_ne!(forced, token);
    let text = json!({"touser": "o1", "msgtype": "text", "text": {"content": "hi"}});
    assert_eq!(
        wechat_send(&url, &token, text.clone()).await["errcode"],
        40001
    );
    assert_eq!(wechat_send(&url, &forced, text).await["errcode"], 0);
    assert_eq!(
        token_of(&stable_token(&url, "wxF", Some(true)).await),
        forced,
        "too soon: nothing refreshed"
    );
    assert_eq!(token_of(&stable_token(&url, "wxF", None).await), forced);

    let bad = send(
        reqwest::Client::new()
            .post(format!("{url}/wechat/cgi-bin/stable_token"))
            .json(&json!({"grant_type": "client_credential", "appid": "wxF", "secret": "wrong"})),
    )
    .await;
    assert_eq!(bad.body["errcode"], 40125);
}

#[tokio::test]
async fn cgi_bin_token_calls_beyond_the_daily_quota_get_45009() {
    let (sandbox, url) = start(SandboxConfig {
        wechat_token_daily_quota: 2,
        ..SandboxConfig::default()
    })
    .await;
    assert!(wechat_token(&url, "wxQ", "s").await["access_token"].is_string());
    assert!(wechat_token(&url, "wxQ", "s").await["access_token"].is_string());
    let spent = wechat_token(&url, "wxQ", "s").await;
    assert_eq!(spent["errcode"], 45009, "{spent}");
    assert_eq!(spent["errmsg"], "reach max api daily quota limit");
    // Another app, and stable_token, have their own quotas.
    assert!(wechat_token(&url, "wxR", "s").await["access_token"].is_string());
    assert!(stable_token(&url, "wxQ", None).await["access_token"].is_string());
    assert_eq!(sandbox.stats().token_fetches["wxQ"], 4);
}

#[tokio::test]
async fn wechat_media_get_answers_a_video_with_a_link_to_it() {
    let (sandbox, url) = sandbox().await;
    sandbox.put_file(
        "wxvideo1",
        b"\0\0\0\x18ftypmp42 video".to_vec(),
        "video/mp4",
    );
    let token = token_of(&stable_token(&url, "wxV", None).await);
    let answer = reqwest::Client::new()
        .get(format!(
            "{url}/wechat/cgi-bin/media/get?access_token={token}&media_id=wxvideo1"
        ))
        .send()
        .await
        .unwrap();
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let link: Value = answer.json().await.unwrap();
    let video_url = link["video_url"].as_str().expect("a video_url").to_owned();
    assert!(video_url.starts_with("http://127.0.0.1:"), "{video_url}");
    let video = reqwest::get(&video_url).await.unwrap();
    assert_eq!(video.headers()["content-type"], "video/mp4");
    assert_eq!(
        video.bytes().await.unwrap().as_ref(),
        b"\0\0\0\x18ftypmp42 video"
    );
}
