//! Malformed and hostile webhooks: each gets a 4xx or is acknowledged — never a 5xx — and
//! whatever is refused writes nothing, while what is acknowledged stays readable.

use integration_tests::{
    FixtureVars, TestChannel, all_conversations, all_tenant_messages, connect_for, fixture,
    meta_signature, post_meta_with, stack, unique_tenant, wechat_query,
};
use serde_json::{Value, json};

struct Case {
    label: String,
    provider: &'static str,
    body: Vec<u8>,
    signature: Option<String>,
}

fn signed(label: impl Into<String>, provider: &'static str, body: Vec<u8>) -> Case {
    let signature = Some(meta_signature(&body));
    Case {
        label: label.into(),
        provider,
        body,
        signature,
    }
}

fn meta_bodies(channels: &[(&'static str, TestChannel)]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (provider, channel) in channels {
        let file = match *provider {
            "whatsapp" => "whatsapp/batch_3_messages.json",
            "messenger" => "messenger/attachments_multiple.json",
            _ => "instagram/story_reply.json",
        };
        out.push((
            *provider,
            FixtureVars::new(channel, false).render(&fixture(file)),
        ));
    }
    out
}

/// Requests that must be refused with a 4xx.
fn refused_cases(channels: &[(&'static str, TestChannel)]) -> Vec<Case> {
    let mut cases = Vec::new();
    for (provider, body) in meta_bodies(channels) {
        let bytes = body.as_bytes().to_vec();
        let good = meta_signature(&bytes);
        let bad_signatures: Vec<Option<String>> = vec![
            None,
            Some(String::new()),
            Some("sha256=".into()),
            Some("sha256=zz".into()),
            Some(good.replace("sha256=", "sha1=")),
            Some(good.trim_start_matches("sha256=").to_owned()),
            Some(format!("{good}00")),
            Some(shared::adapters::channels::graph::sign(
                "another-app-secret",
                &bytes,
            )),
            Some(meta_signature(b"{}")),
            Some(format!("sha256={}", "0".repeat(64))),
        ];
        for (i, signature) in bad_signatures.into_iter().enumerate() {
            cases.push(Case {
                label: format!("{provider} bad signature {i}"),
                provider,
                body: bytes.clone(),
                signature,
            });
        }
        // A correct signature over a body changed in transit.
        let mut tampered = bytes.clone();
        tampered.push(b' ');
        cases.push(Case {
            label: format!("{provider} tampered body"),
            provider,
            body: tampered,
            signature: Some(good.clone()),
        });
        // Truncated JSON, correctly signed: 30 cut points across the body.
        for k in 1..=30 {
            let cut = bytes.len() * k / 31;
            cases.push(signed(
                format!("{provider} truncated at {cut}"),
                provider,
                bytes[..cut].to_vec(),
            ));
        }
        for (i, junk) in [
            b"".to_vec(),
            b"not json".to_vec(),
            b"[]".to_vec(),
            b"null".to_vec(),
            b"\"entry\"".to_vec(),
            b"42".to_vec(),
            vec![0xff, 0xfe, 0xfd],
            [
                b"{\"object\":\"page\",\"entry\":[{\"id\":\"".as_slice(),
                &[0xc3, 0x28],
                b"\"}]}",
            ]
            .concat(),
            format!("{}1{}", "[".repeat(200), "]".repeat(200)).into_bytes(),
            format!("{{\"a\":{}1{}}}", "{\"a\":".repeat(150), "}".repeat(150)).into_bytes(),
            b"<xml><ToUserName>x</ToUserName></xml>".to_vec(),
            b"{\"object\":\"page\",}".to_vec(),
        ]
        .into_iter()
        .enumerate()
        {
            cases.push(signed(format!("{provider} junk {i}"), provider, junk));
        }
        // Larger than any real batch.
        let huge = format!(
            "{{\"object\":\"page\",\"pad\":\"{}\"}}",
            "x".repeat(5 * 1024 * 1024)
        );
        cases.push(signed(
            format!("{provider} 5 MB body"),
            provider,
            huge.into_bytes(),
        ));
    }
    cases
}

/// Signed, well-formed JSON of the wrong shape: acknowledged (200) or refused (4xx).
fn wrong_shape_cases(channels: &[(&'static str, TestChannel)]) -> Vec<Case> {
    let mut cases = Vec::new();
    for (provider, body) in meta_bodies(channels) {
        let base: Value = serde_json::from_str(&body).unwrap();
        let pointers: &[&str] = match provider {
            "whatsapp" => &[
                "/entry",
                "/entry/0",
                "/entry/0/changes",
                "/entry/0/changes/0",
                "/entry/0/changes/0/field",
                "/entry/0/changes/0/value",
                "/entry/0/changes/0/value/metadata",
                "/entry/0/changes/0/value/metadata/phone_number_id",
                "/entry/0/changes/0/value/contacts",
                "/entry/0/changes/0/value/messages",
                "/entry/0/changes/0/value/messages/0",
                "/entry/0/changes/0/value/messages/0/id",
                "/entry/0/changes/0/value/messages/0/from",
                "/entry/0/changes/0/value/messages/0/timestamp",
                "/entry/0/changes/0/value/messages/0/type",
                "/entry/0/changes/0/value/messages/0/text",
                "/entry/0/changes/0/value/messages/1/image",
            ],
            _ => &[
                "/entry",
                "/entry/0",
                "/entry/0/id",
                "/entry/0/messaging",
                "/entry/0/messaging/0",
                "/entry/0/messaging/0/sender",
                "/entry/0/messaging/0/sender/id",
                "/entry/0/messaging/0/recipient",
                "/entry/0/messaging/0/timestamp",
                "/entry/0/messaging/0/message",
                "/entry/0/messaging/0/message/mid",
                "/entry/0/messaging/0/message/text",
                "/entry/0/messaging/0/message/attachments",
                "/entry/0/messaging/0/message/reply_to",
            ],
        };
        let replacements = [
            json!(null),
            json!(7),
            json!("x"),
            json!([1, "a"]),
            json!({"k": {}}),
            json!(true),
        ];
        for pointer in pointers {
            for (i, replacement) in replacements.iter().enumerate() {
                let mut v = base.clone();
                if let Some(slot) = v.pointer_mut(pointer) {
                    *slot = replacement.clone();
                    cases.push(signed(
                        format!("{provider} {pointer} = #{i}"),
                        provider,
                        v.to_string().into_bytes(),
                    ));
                }
            }
        }
        let mut long = base.clone();
        if let Some(slot) = long.pointer_mut("/entry/0/changes/0/value/messages/0/text/body") {
            *slot = json!("🙂".repeat(20_000));
        }
        cases.push(signed(
            format!("{provider} very long text"),
            provider,
            long.to_string().into_bytes(),
        ));
    }
    cases
}

async fn send_wechat(channel: &TestChannel, query: &str, body: Vec<u8>) -> u16 {
    reqwest::Client::new()
        .post(format!(
            "{}/webhooks/wechat/{}?{query}",
            stack().base_url,
            channel.id
        ))
        .body(body)
        .send()
        .await
        .expect("dev server answers")
        .status()
        .as_u16()
}

#[tokio::test]
async fn hostile_webhooks_get_4xx_or_200_and_refused_ones_write_nothing() {
    let tenant = unique_tenant();
    let mut channels = Vec::new();
    for provider in ["whatsapp", "messenger", "instagram"] {
        channels.push((provider, connect_for(&tenant, provider, json!({})).await));
    }
    let wechat = connect_for(&tenant, "wechat", json!({})).await;

    let mut total = 0;
    for case in refused_cases(&channels) {
        let reply = post_meta_with(case.provider, case.body, case.signature).await;
        assert!(
            (400..500).contains(&reply.status),
            "{}: {} {}",
            case.label,
            reply.status,
            reply.text
        );
        assert!(
            !reply.body["error"]["code"]
                .as_str()
                .unwrap_or("")
                .is_empty(),
            "{}: error code",
            case.label
        );
        total += 1;
    }

    // WeChat: signatures, XML bombs, external entities, truncation, junk.
    let xml = FixtureVars::new(&wechat, true).render(&fixture("wechat/text.xml"));
    let good = wechat_query(&wechat.wechat_token);
    let mut wechat_cases: Vec<(String, String, Vec<u8>)> = vec![
        ("no signature".into(), "timestamp=1&nonce=2".into(), xml.clone().into_bytes()),
        ("no query".into(), String::new(), xml.clone().into_bytes()),
        ("wrong token".into(), wechat_query("guess"), xml.clone().into_bytes()),
        ("signature of other nonce".into(), good.replace("nonce=", "nonce=9"), xml.clone().into_bytes()),
        (
            "billion laughs".into(),
            good.clone(),
            br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><xml><ToUserName>a</ToUserName><Content>&lol3;</Content></xml>"#.to_vec(),
        ),
        (
            "external entity".into(),
            good.clone(),
            br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Content>&xxe;</Content></xml>"#.to_vec(),
        ),
        ("undeclared entity".into(), good.clone(), b"<xml><Content>&xxe;</Content></xml>".to_vec()),
        ("json".into(), good.clone(), b"{\"MsgType\":\"text\"}".to_vec()),
        ("empty".into(), good.clone(), Vec::new()),
        ("invalid utf-8".into(), good.clone(), vec![b'<', b'x', 0xff, b'>']),
        ("wrong root".into(), good.clone(), xml.replace("<xml>", "<msg>").replace("</xml>", "</msg>").into_bytes()),
        ("two roots".into(), good.clone(), format!("{xml}{xml}").into_bytes()),
        ("missing MsgType".into(), good.clone(), xml.replace("MsgType", "Kind").into_bytes()),
        ("too deep".into(), good.clone(), format!("<xml>{}x{}</xml>", "<a>".repeat(20), "</a>".repeat(20)).into_bytes()),
        ("70 KB".into(), good.clone(), format!("<xml><Content>{}</Content></xml>", "x".repeat(70 * 1024)).into_bytes()),
        ("aes mode".into(), format!("{good}&encrypt_type=aes"), xml.clone().into_bytes()),
    ];
    let bytes = xml.as_bytes();
    for k in 1..=30 {
        let cut = bytes.len() * k / 31;
        wechat_cases.push((
            format!("truncated at {cut}"),
            good.clone(),
            bytes[..cut].to_vec(),
        ));
    }
    for (label, query, body) in wechat_cases {
        let status = send_wechat(&wechat, &query, body).await;
        assert!((400..500).contains(&status), "wechat {label}: {status}");
        total += 1;
    }
    assert!(
        all_conversations(&tenant).await.is_empty(),
        "refused requests wrote nothing"
    );

    for case in wrong_shape_cases(&channels) {
        let reply = post_meta_with(case.provider, case.body, case.signature).await;
        assert!(
            reply.status == 200 || (400..500).contains(&reply.status),
            "{}: {} {}",
            case.label,
            reply.status,
            reply.text
        );
        total += 1;
    }
    assert!(total >= 200, "only {total} hostile inputs");
    // Whatever was acknowledged is consistent and readable.
    for c in all_conversations(&tenant).await {
        assert!(c["window"]["mode"].is_string());
    }
    let messages = all_tenant_messages(&tenant).await;
    assert!(
        messages
            .iter()
            .all(|m| m["kind"].is_string() && m["created_at"].is_string())
    );
}
