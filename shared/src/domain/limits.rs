//! How much of a provider message is kept: every stored field has a limit, so a message
//! always fits DynamoDB's 400 KB item whatever a provider (or someone holding its signing
//! secret) sends.
//!
//! Real messages are far under these limits (WhatsApp text: 4,096 characters, captions
//! 1,024; Messenger text: 2,000 characters). A longer text is cut at a character boundary
//! and the message marked `truncated`; values that mean nothing once cut (URLs, ids) are
//! dropped and marked the same way.

use crate::domain::inbound::{InboundMessage, MAX_PROVIDER_ID_LEN, StatusUpdate};

/// Longest text (body, caption, title) kept, in UTF-8 bytes.
pub const MAX_TEXT_BYTES: usize = 32 * 1024;
/// Longest customer profile name kept, in UTF-8 bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest document file name kept, in UTF-8 bytes.
pub const MAX_FILENAME_BYTES: usize = 512;
/// Longest MIME type or checksum kept (longer ones are not real: dropped).
pub const MAX_TOKEN_BYTES: usize = 255;
/// Longest media URL kept; a longer one is dropped (a cut URL fetches nothing).
pub const MAX_URL_BYTES: usize = 8 * 1024;
/// Longest delivery-error reason or hint kept, in UTF-8 bytes.
pub const MAX_ERROR_TEXT_BYTES: usize = 1024;
/// Most message ids of one Messenger/Instagram delivery receipt that are applied one by
/// one (each may keep a status item for a message not recorded yet); the receipt's
/// watermark covers the others.
pub const MAX_RECEIPT_MIDS: usize = 100;
/// How long a status kept for a message not recorded yet is kept (the table's TTL
/// attribute, `expires_at`); recording the message removes the expiry.
pub const KEPT_STATUS_DAYS: i64 = 7;
/// Text kept of a message the store refused even after cutting (the last resort).
pub const MINIMAL_TEXT_BYTES: usize = 1024;

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn cut_at_char_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What [`bound_message`] cut: each field with its original size in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cut {
    /// `(field, original bytes)`, in field order.
    pub fields: Vec<(&'static str, usize)>,
}

impl Cut {
    /// Whether anything was cut or dropped.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The names of the fields cut or dropped.
    pub fn names(&self) -> Vec<&'static str> {
        self.fields.iter().map(|(name, _)| *name).collect()
    }
}

fn cut_text(value: &mut Option<String>, max: usize, field: &'static str, cut: &mut Cut) {
    if let Some(text) = value
        && text.len() > max
    {
        cut.fields.push((field, text.len()));
        let kept = cut_at_char_boundary(text, max).len();
        text.truncate(kept);
    }
}

fn drop_long(value: &mut Option<String>, max: usize, field: &'static str, cut: &mut Cut) {
    if let Some(text) = value
        && text.len() > max
    {
        cut.fields.push((field, text.len()));
        *value = None;
    }
}

/// Brings every field of `m` within its limit, in place, and says what changed. The
/// provider ids were checked before (see [`crate::domain::inbound::ids_storable`]); `raw`
/// is bounded where it is stored.
pub fn bound_message(m: &mut InboundMessage) -> Cut {
    let mut cut = Cut::default();
    cut_text(&mut m.text, MAX_TEXT_BYTES, "text", &mut cut);
    cut_text(
        &mut m.customer_name,
        MAX_NAME_BYTES,
        "customer_name",
        &mut cut,
    );
    drop_long(&mut m.reply_to, MAX_PROVIDER_ID_LEN, "reply_to", &mut cut);
    if let Some(media) = &mut m.media {
        drop_long(
            &mut media.provider_media_id,
            MAX_PROVIDER_ID_LEN,
            "media.provider_media_id",
            &mut cut,
        );
        drop_long(&mut media.url, MAX_URL_BYTES, "media.url", &mut cut);
        drop_long(
            &mut media.mime_type,
            MAX_TOKEN_BYTES,
            "media.mime_type",
            &mut cut,
        );
        drop_long(&mut media.sha256, MAX_TOKEN_BYTES, "media.sha256", &mut cut);
        cut_text(
            &mut media.filename,
            MAX_FILENAME_BYTES,
            "media.filename",
            &mut cut,
        );
    }
    cut
}

/// A copy of `m` within every limit (for what is published about it).
pub fn bounded(m: &InboundMessage) -> InboundMessage {
    let mut copy = m.clone();
    bound_message(&mut copy);
    copy
}

/// The last resort for a message the store refused for good even within the limits:
/// its ids, kind and direction, the first [`MINIMAL_TEXT_BYTES`] of its text, and a
/// `raw` that says it was cut (so the conversation still shows that it came).
pub fn minimal(m: &InboundMessage) -> InboundMessage {
    let mut text = m.text.clone();
    let mut cut = Cut::default();
    cut_text(&mut text, MINIMAL_TEXT_BYTES, "text", &mut cut);
    InboundMessage {
        text,
        customer_name: None,
        media: None,
        reply_to: None,
        raw: serde_json::json!({"truncated": true, "stored": "minimal"}),
        ..m.clone()
    }
}

/// Brings a delivery status's error texts within their limits, in place; `true` when
/// something was cut.
pub fn bound_status(u: &mut StatusUpdate) -> bool {
    let Some(error) = &mut u.error else {
        return false;
    };
    let mut cut = Cut::default();
    for (value, field) in [
        (&mut error.code, "error.code"),
        (&mut error.reason, "error.reason"),
        (&mut error.hint, "error.hint"),
    ] {
        let max = if field == "error.code" {
            MAX_TOKEN_BYTES
        } else {
            MAX_ERROR_TEXT_BYTES
        };
        if value.len() > max {
            cut.fields.push((field, value.len()));
            let kept = cut_at_char_boundary(value, max).len();
            value.truncate(kept);
        }
    }
    !cut.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::inbound::InboundMedia;
    use crate::domain::message::{DeliveryError, DeliveryStatus, Direction, MessageKind};

    fn message() -> InboundMessage {
        InboundMessage {
            provider_message_id: "wamid.1".into(),
            customer: "15551234567".into(),
            customer_name: Some("Ana".into()),
            direction: Direction::Inbound,
            kind: MessageKind::Text,
            text: Some("hello".into()),
            media: None,
            reply_to: None,
            timestamp: None,
            opens_window: true,
            raw: serde_json::Value::Null,
            identity: Default::default(),
            standby: false,
        }
    }

    #[test]
    fn cuts_fall_on_character_boundaries() {
        let text = "é".repeat(10);
        assert_eq!(cut_at_char_boundary(&text, 5), "éé");
        assert_eq!(cut_at_char_boundary(&text, 100), text);
        assert_eq!(cut_at_char_boundary("🙂🙂", 7), "🙂");
        assert_eq!(cut_at_char_boundary("🙂", 3), "");
    }

    #[test]
    fn a_400_kib_text_is_cut_to_the_limit_and_reported() {
        let mut m = message();
        m.text = Some("🙂".repeat(400 * 1024 / 4));
        let cut = bound_message(&mut m);
        assert_eq!(cut.fields, vec![("text", 400 * 1024)]);
        let kept = m.text.unwrap();
        assert!(kept.len() <= MAX_TEXT_BYTES && kept.len() > MAX_TEXT_BYTES - 4);
        assert!(kept.chars().all(|c| c == '🙂'));
    }

    #[test]
    fn a_500_kib_profile_name_is_cut() {
        let mut m = message();
        m.customer_name = Some("n".repeat(500 * 1024));
        assert_eq!(bound_message(&mut m).names(), vec!["customer_name"]);
        assert_eq!(m.customer_name.unwrap().len(), MAX_NAME_BYTES);
    }

    #[test]
    fn a_1_mib_caption_filename_and_url_are_cut_or_dropped() {
        let big = "x".repeat(1024 * 1024);
        let mut m = message();
        m.kind = MessageKind::File;
        m.text = Some(big.clone());
        m.media = Some(InboundMedia {
            provider_media_id: Some("media-1".into()),
            url: Some(format!("https://example.com/{big}")),
            mime_type: Some("application/pdf".into()),
            sha256: None,
            filename: Some(big.clone()),
        });
        let cut = bound_message(&mut m);
        assert_eq!(cut.names(), vec!["text", "media.url", "media.filename"]);
        let media = m.media.unwrap();
        assert_eq!(media.url, None);
        assert_eq!(media.provider_media_id.as_deref(), Some("media-1"));
        assert_eq!(media.filename.unwrap().len(), MAX_FILENAME_BYTES);
    }

    #[test]
    fn a_message_within_the_limits_is_left_alone() {
        let mut m = message();
        assert!(bound_message(&mut m).is_empty());
        assert_eq!(m, message());
    }

    #[test]
    fn the_minimal_copy_keeps_ids_and_a_short_text_and_says_it_was_cut() {
        let mut m = message();
        m.text = Some("y".repeat(5000));
        let min = minimal(&m);
        assert_eq!(min.provider_message_id, "wamid.1");
        assert_eq!(min.text.unwrap().len(), MINIMAL_TEXT_BYTES);
        assert_eq!(min.raw["truncated"], true);
    }

    #[test]
    fn long_delivery_error_texts_are_cut() {
        let mut u = StatusUpdate {
            provider_message_id: "wamid.1".into(),
            customer: "1".into(),
            status: DeliveryStatus::Failed,
            timestamp: None,
            error: Some(DeliveryError {
                code: "131026".into(),
                reason: "r".repeat(100_000),
                hint: "h".into(),
            }),
            raw: serde_json::Value::Null,
            reference: None,
        };
        assert!(bound_status(&mut u));
        assert_eq!(u.error.unwrap().reason.len(), MAX_ERROR_TEXT_BYTES);
    }
}
