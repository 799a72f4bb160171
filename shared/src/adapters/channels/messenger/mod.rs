//! Messenger and Instagram: the Send API (`POST /{page_id|ig_account_id}/messages`), with
//! `messaging_type` and the `HUMAN_AGENT` tag decided by the customer service window.

pub mod webhook;

use serde_json::{Value, json};

use crate::domain::outbound::{Content, Delivery, OutboundKind};
use crate::ports::{MediaFetcher, OpenedMedia, Outgoing};

/// The body of `POST /{page_id|ig_account_id}/messages`. The reference travels in
/// `message.metadata` and comes back on the echo, which reconciles an unknown outcome.
pub fn body(message: &Outgoing<'_>) -> Value {
    let content = match &message.content {
        Content::Text(t) => json!({"text": t}),
        Content::Ask { text, options } => {
            let replies: Vec<Value> = options
                .iter()
                .map(|o| json!({"content_type": "text", "title": o.title, "payload": o.id}))
                .collect();
            json!({"text": text, "quick_replies": replies})
        }
        Content::Media { kind, source, .. } => {
            let kind = match kind {
                OutboundKind::Image | OutboundKind::Sticker => "image",
                OutboundKind::Video => "video",
                OutboundKind::Audio => "audio",
                _ => "file",
            };
            json!({"attachment": {"type": kind, "payload": {"url": source, "is_reusable": false}}})
        }
        // Refused before (templates are WhatsApp-only); kept total for the type.
        Content::Template { name, .. } => json!({"text": name}),
    };
    let mut body = json!({"recipient": {"id": message.to}, "message": content});
    body["message"]["metadata"] = json!(message.reference);
    match message.delivery {
        Delivery::HumanAgent => {
            body["messaging_type"] = json!("MESSAGE_TAG");
            body["tag"] = json!("HUMAN_AGENT");
        }
        Delivery::Response | Delivery::Template => body["messaging_type"] = json!("RESPONSE"),
    }
    body
}

/// The body of `POST /{page_id|ig_account_id}/messages` that shows the customer their
/// latest message was seen (a sender action: no message, no `messaging_type`).
pub fn seen_body(customer: &str) -> Value {
    json!({"recipient": {"id": customer}, "sender_action": "mark_seen"})
}

/// A customer's attachment, from the URL the webhook carried (no token: Meta's CDN link
/// is signed).
///
/// # Errors
/// Why the media is unavailable, in words for the agent.
pub async fn open_media<F: MediaFetcher>(
    fetcher: &F,
    url: Option<&str>,
) -> Result<OpenedMedia<F::Body>, String> {
    let url = url.ok_or_else(|| "the message carried no attachment URL".to_owned())?;
    let body = fetcher
        .get(url, None)
        .await
        .map_err(|reason| format!("the download failed: {reason}"))?;
    Ok(OpenedMedia {
        body,
        mime_type: None,
        sha256: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outbound::ReplyOption;

    fn out(content: Content<'_>, delivery: Delivery) -> Value {
        body(&Outgoing {
            to: "psid",
            content,
            delivery,
            reference: "r",
        })
    }

    #[test]
    fn a_seen_receipt_is_a_bare_sender_action() {
        assert_eq!(
            seen_body("24011234567890"),
            json!({"recipient": {"id": "24011234567890"}, "sender_action": "mark_seen"})
        );
    }

    #[test]
    fn messenger_bodies_tag_human_agent_replies() {
        let b = out(Content::Text("hi"), Delivery::Response);
        assert_eq!(b["messaging_type"], "RESPONSE");
        assert!(b.get("tag").is_none());
        assert_eq!(b["recipient"]["id"], "psid");
        assert_eq!(b["message"]["metadata"], "r");
        let b = out(Content::Text("hi"), Delivery::HumanAgent);
        assert_eq!(b["messaging_type"], "MESSAGE_TAG");
        assert_eq!(b["tag"], "HUMAN_AGENT");
        let img = Content::Media {
            kind: OutboundKind::Sticker,
            source: "https://s3/s",
            caption: None,
            filename: "s.webp",
        };
        let b = out(img, Delivery::Response);
        assert_eq!(b["message"]["attachment"]["type"], "image");
        assert_eq!(b["message"]["attachment"]["payload"]["url"], "https://s3/s");
    }

    #[test]
    fn options_are_text_quick_replies_answered_in_the_window() {
        let options = [
            ReplyOption {
                id: "orders".into(),
                title: "Mes commandes".into(),
            },
            ReplyOption {
                id: "person".into(),
                title: "Falar com alguém 🙋".into(),
            },
        ];
        let expected = json!({
            "recipient": {"id": "psid"},
            "messaging_type": "RESPONSE",
            "message": {
                "text": "How can we help?",
                "quick_replies": [
                    {"content_type": "text", "title": "Mes commandes", "payload": "orders"},
                    {"content_type": "text", "title": "Falar com alguém 🙋", "payload": "person"}
                ],
                "metadata": "r"
            }
        });
        // Messenger and Instagram share the Send API body.
        let b = out(
            Content::Ask {
                text: "How can we help?",
                options: &options,
            },
            Delivery::Response,
        );
        assert_eq!(b, expected);
        assert!(b.get("tag").is_none());
    }
}
