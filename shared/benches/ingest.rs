//! Handler CPU of the ingest path without I/O: verify the signature, parse, normalize.
//! `make bench` runs it and prints the medians against the 200 µs budget.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use shared::adapters::channels::wechat::webhook as wechat;
use shared::adapters::channels::{graph, messenger, whatsapp};

const SECRET: &str = "bench-app-secret";

fn render(template: &str) -> String {
    template
        .replace("{{PHONE_NUMBER_ID}}", "106540352242922")
        .replace("{{PAGE_ID}}", "106540352242922")
        .replace("{{WECHAT_ID}}", "gh_1a2b3c4d5e6f")
        .replace("{{WABA_ID}}", "102290129340398")
        .replace("{{SENDER}}", "15551234567")
        .replace("{{MSG_ID}}", "ABCDEF0123456789")
        .replace("{{TIMESTAMP_MS}}", "1795512600000")
        .replace("{{TIMESTAMP}}", "1795512600")
        .replace("{{REF_ID}}", "wamid.REF")
}

fn whatsapp_batch(n: usize) -> String {
    let one: Value = serde_json::from_str(&render(include_str!(
        "../../tests/fixtures/webhooks/whatsapp/text.json"
    )))
    .expect("fixture");
    let template = one["entry"][0]["changes"][0]["value"]["messages"][0].clone();
    let mut body = one.clone();
    let messages: Vec<Value> = (0..n)
        .map(|i| {
            let mut m = template.clone();
            m["id"] = json!(format!("wamid.BATCH{i}"));
            m
        })
        .collect();
    body["entry"][0]["changes"][0]["value"]["messages"] = json!(messages);
    body.to_string()
}

fn ingest(c: &mut Criterion) {
    let wa_text = render(include_str!(
        "../../tests/fixtures/webhooks/whatsapp/text.json"
    ));
    let wa_batch = whatsapp_batch(50);
    let messenger = render(include_str!(
        "../../tests/fixtures/webhooks/messenger/text.json"
    ));
    let wechat_xml = render(include_str!(
        "../../tests/fixtures/webhooks/wechat/text.xml"
    ));

    for (name, body) in [
        ("whatsapp_text", &wa_text),
        ("whatsapp_batch_50", &wa_batch),
    ] {
        let signature = graph::sign(SECRET, body.as_bytes());
        c.bench_function(name, |b| {
            b.iter(|| {
                graph::verify_signature(SECRET, black_box(body.as_bytes()), Some(&signature))
                    .unwrap();
                black_box(whatsapp::webhook::parse_whatsapp(body.as_bytes()).unwrap())
            })
        });
    }
    let signature = graph::sign(SECRET, messenger.as_bytes());
    c.bench_function("messenger_text", |b| {
        b.iter(|| {
            graph::verify_signature(SECRET, black_box(messenger.as_bytes()), Some(&signature))
                .unwrap();
            black_box(messenger::webhook::parse_messaging(messenger.as_bytes(), None).unwrap())
        })
    });
    let now = chrono::Utc::now();
    let stamp = now.timestamp().to_string();
    let wechat_signature = wechat::signature("token", &stamp, "nonce");
    c.bench_function("wechat_text_xml", |b| {
        b.iter(|| {
            wechat::verify_signature(
                "token",
                Some(&stamp),
                Some("nonce"),
                Some(&wechat_signature),
                now,
            )
            .unwrap();
            black_box(wechat::parse_message(black_box(wechat_xml.as_bytes())).unwrap())
        })
    });
}

/// The outbound handler's own work per send, without I/O: parse and check the request,
/// decide from the window, build the provider body, read the provider's answer.
fn outbound_send(c: &mut Criterion) {
    use shared::adapters::channels::{graph, whatsapp};
    use shared::domain::actor::Actor;
    use shared::domain::channel::ChannelType;
    use shared::domain::outbound::{Attempt, Content, Delivery, Part, SendMessage, authorize};
    use shared::domain::window::WindowPolicy;
    use shared::ports::Outgoing;
    let request = br#"{"kind":"text","text":"Your order ships today \ud83d\udce6"}"#;
    let answer = br#"{"messaging_product":"whatsapp","contacts":[{"input":"15551234567","wa_id":"15551234567"}],"messages":[{"id":"wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}]}"#;
    let policy = WindowPolicy {
        channel_type: ChannelType::Whatsapp,
        window_hours: 24,
        human_agent: false,
    };
    let now = chrono::Utc::now();
    let last = now - chrono::Duration::hours(2);
    let agent = Actor::agent("agent-1");
    c.bench_function("outbound_send_text", |b| {
        b.iter(|| {
            let message: SendMessage = serde_json::from_slice(black_box(request)).unwrap();
            let parts = message.parts(ChannelType::Whatsapp).unwrap();
            let window = policy.window_at(Some(last), 0, now);
            let delivery = authorize(ChannelType::Whatsapp, &window, 0, &parts, &agent).unwrap();
            let Part::Text(text) = &parts[0] else {
                unreachable!()
            };
            let body = whatsapp::body(&Outgoing {
                to: "15551234567",
                content: Content::Text(text),
                delivery,
                reference: "2026-11-24T09:00:00.000Z#01J",
            });
            assert_eq!(delivery, Delivery::Response);
            let wire = serde_json::to_vec(&body).unwrap();
            let attempt = graph::classify(200, black_box(answer), None);
            assert!(matches!(&attempt, Attempt::Accepted(r) if r.id.is_some()));
            wire.len()
        })
    });
}

/// Media header sniffing: deciding a small JPEG by content, from memory (the validator's
/// own work once its ranged reads are in).
fn media_sniff(c: &mut Criterion) {
    use shared::domain::media::media_type;
    use shared::domain::sniff::{ChunkedReader, MemoryBlob, inspect};
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    jpeg.extend(b"JFIF\0");
    jpeg.extend([1, 1, 0, 0, 1, 0, 1, 0, 0]);
    jpeg.extend([0xFF, 0xDA, 0x00, 0x08, 1, 2, 3, 4, 5, 6]);
    jpeg.extend(vec![0x55; 20_000]);
    jpeg.extend([0xFF, 0xD9]);
    let declared = media_type("image/jpeg").expect("known type");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    c.bench_function("media_sniff_jpeg", |b| {
        b.iter(|| {
            let mut reader = ChunkedReader::new(MemoryBlob(black_box(jpeg.clone())));
            let verdict = rt
                .block_on(inspect(&mut reader, declared, declared.kind.max_size()))
                .expect("no read error");
            assert!(verdict.is_ok());
        })
    });
}

criterion_group!(benches, ingest, outbound_send, media_sniff);
criterion_main!(benches);
