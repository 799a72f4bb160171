//! Fuzz targets: every parser that reads bytes a stranger chose, as one function each that
//! must never panic, whatever the bytes, and that checks what must hold of what it accepts.
//!
//! Run two ways over the same functions: coverage-guided by libFuzzer (`make fuzz`, the
//! `fuzz/` crate, nightly) and, on stable, by the short mutation run in this crate's unit
//! tests (`fuzzing_tests.rs`, part of `make test`; `FUZZ_SECONDS` lengthens it).
//!
//! | target | reads |
//! |---|---|
//! | `meta_webhook` | WhatsApp and Messenger/Instagram webhook JSON, Graph answers |
//! | `wechat_xml` | WeChat push XML, WeChat API answers |
//! | `media` | the media sniffers (first byte picks the declared type) |
//! | `office_zip` | the ZIP and compound-file walkers behind Office documents |
//! | `stripe_signature` | the `Stripe-Signature` header (first line) over a body |
//! | `ws_frame` | signaling frames from a call's WebSocket |

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::adapters::channels::{graph, messenger, wechat, whatsapp};
use crate::domain::call::{Role, parse_frame, relayed};
use crate::domain::media::{MEDIA_TYPES, MediaType};
use crate::domain::sniff::{ChunkedReader, MemoryBlob, inspect};

/// A target: bytes in, a panic when something that must hold does not.
pub type Target = fn(&[u8]);

/// Every target by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("meta_webhook", meta_webhook),
    ("wechat_xml", wechat_xml),
    ("media", media),
    ("office_zip", office_zip),
    ("stripe_signature", stripe_signature),
    ("ws_frame", ws_frame),
];

/// Drives a future that never waits (reads of bytes in memory) to its end.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut context) {
            return out;
        }
    }
}

/// WhatsApp and Messenger/Instagram webhook bodies, and Graph API answers as the send path
/// classifies them.
pub fn meta_webhook(data: &[u8]) {
    let _ = whatsapp::webhook::parse_whatsapp(data);
    let _ = messenger::webhook::parse_messaging(data, None);
    let _ = messenger::webhook::parse_messaging(data, Some("1234567890"));
    for status in [200, 400, 429, 500] {
        let _ = graph::classify(status, data, None);
    }
    let header = String::from_utf8_lossy(&data[..data.len().min(80)]).into_owned();
    let _ = graph::verify_signature("app-secret", data, Some(&header));
    let signed = graph::sign("app-secret", data);
    assert!(graph::verify_signature("app-secret", data, Some(&signed)).is_ok());
}

/// WeChat push XML and WeChat API answers.
pub fn wechat_xml(data: &[u8]) {
    let _ = wechat::webhook::parse_fields(data);
    let _ = wechat::webhook::parse_message(data);
    for status in [200, 500] {
        let _ = wechat::classify(status, data);
    }
}

fn sniff(declared: &MediaType, bytes: &[u8]) {
    let mut reader = ChunkedReader::new(MemoryBlob(bytes.to_vec()));
    let verdict = ready(inspect(&mut reader, declared, declared.kind.max_size()));
    if let Ok(Ok(inspection)) = verdict {
        // Whatever is accepted is non-empty and within the declared kind's size.
        assert!(!bytes.is_empty());
        assert!(bytes.len() as u64 <= declared.kind.max_size());
        let _ = inspection;
    }
}

/// The media sniffers: the first byte picks the declared type, the rest is the file.
pub fn media(data: &[u8]) {
    let Some((&pick, file)) = data.split_first() else {
        return;
    };
    sniff(&MEDIA_TYPES[usize::from(pick) % MEDIA_TYPES.len()], file);
}

/// The Office walkers (ZIP central directory, compound file): every Office type, over the
/// same bytes.
pub fn office_zip(data: &[u8]) {
    for declared in MEDIA_TYPES
        .iter()
        .filter(|t| t.mime.starts_with("application/vnd.") || t.mime == "application/msword")
    {
        sniff(declared, data);
    }
}

/// The `Stripe-Signature` header (the first line of `data`) over the rest as the body; a
/// header this side signs over the same body always verifies.
pub fn stripe_signature(data: &[u8]) {
    use crate::domain::stripe::{sign, verify};
    let now = 1_767_225_600;
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let header = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or_default();
    let _ = verify(Some(&header), body, "whsec_fuzz", now);
    let _ = verify(Some(&header), body, "", now);
    let signed = sign("whsec_fuzz", now, body);
    assert!(verify(Some(&signed), body, "whsec_fuzz", now).is_ok());
}

/// A signaling frame: one accepted is relayed as a JSON object naming its sender.
pub fn ws_frame(data: &[u8]) {
    let body = String::from_utf8_lossy(data);
    if let Ok(signal) = parse_frame(&body) {
        let out: serde_json::Value =
            serde_json::from_str(&relayed(&signal, Role::Customer)).expect("relayed JSON");
        assert_eq!(out["from"], "customer");
    }
}
