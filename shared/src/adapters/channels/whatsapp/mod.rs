//! WhatsApp Cloud API: message bodies (`POST /{phone_number_id}/messages`) and message
//! templates at the WhatsApp Business Account (`/{waba_id}/message_templates`).

pub mod webhook;

use serde_json::{Value, json};

use super::graph;
use crate::Error;
use crate::domain::bot::WHATSAPP_MAX_BUTTONS;
use crate::domain::outbound::{Content, OutboundKind, ReplyOption};
use crate::ports::{CreatedTemplate, MediaFetcher, OpenedMedia, Outgoing, RoutedChannel};

/// The body of `POST /{phone_number_id}/messages`. The message's reference comes back in
/// status webhooks (`biz_opaque_callback_data`), which reconciles an unknown outcome.
pub fn body(message: &Outgoing<'_>) -> Value {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.to,
        "biz_opaque_callback_data": message.reference,
    });
    let (kind, object) = match &message.content {
        Content::Text(t) => ("text", json!({"preview_url": false, "body": t})),
        Content::Media {
            kind,
            source,
            caption,
            filename,
        } => {
            let name = match kind {
                OutboundKind::Image => "image",
                OutboundKind::Video => "video",
                OutboundKind::Audio => "audio",
                OutboundKind::Sticker => "sticker",
                _ => "document",
            };
            let mut object = json!({"link": source});
            if let Some(c) = caption {
                object["caption"] = json!(c);
            }
            if *kind == OutboundKind::File {
                object["filename"] = json!(filename);
            }
            (name, object)
        }
        Content::Ask { text, options } => ("interactive", interactive(text, options)),
        Content::Template {
            name,
            language,
            components,
        } => (
            "template",
            json!({"name": name, "language": {"code": language}, "components": components}),
        ),
    };
    body["type"] = json!(kind);
    body[kind] = object;
    body
}

/// A question with options: reply buttons (up to 3) or a single-section list (up to 10
/// rows), the Cloud API's `interactive` object. Titles were checked against the limits
/// (20 characters a button, 24 a row).
fn interactive(text: &str, options: &[ReplyOption]) -> Value {
    if options.len() <= WHATSAPP_MAX_BUTTONS {
        let buttons: Vec<Value> = options
            .iter()
            .map(|o| json!({"type": "reply", "reply": {"id": o.id, "title": o.title}}))
            .collect();
        return json!({"type": "button", "body": {"text": text}, "action": {"buttons": buttons}});
    }
    let rows: Vec<Value> = options
        .iter()
        .map(|o| json!({"id": o.id, "title": o.title}))
        .collect();
    json!({
        "type": "list",
        "body": {"text": text},
        "action": {"button": LIST_BUTTON, "sections": [{"title": LIST_SECTION, "rows": rows}]},
    })
}

/// The label of the button that opens a list (at most 20 characters).
const LIST_BUTTON: &str = "Choose";
/// The title of the list's one section (at most 24 characters).
const LIST_SECTION: &str = "Options";

/// The body of `POST /{phone_number_id}/messages` that marks a customer's message (and
/// every earlier one of the conversation) read: blue ticks on the customer's phone.
pub fn read_body(provider_message_id: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": provider_message_id,
    })
}

/// The largest Graph media lookup answer read (it is a few hundred bytes).
const LOOKUP_CAP: usize = 64 * 1024;

/// A customer's file: `GET /{media-id}` (Graph's lookup: URL, MIME type, SHA-256) with the
/// channel's token, then the URL it names with the same token.
///
/// # Errors
/// Why the media is unavailable, in words for the agent.
pub async fn open_media<F: MediaFetcher>(
    fetcher: &F,
    graph_url: &str,
    channel: &RoutedChannel,
    media_id: &str,
) -> Result<OpenedMedia<F::Body>, String> {
    let token = graph::token(channel).ok();
    let lookup = format!("{graph_url}/{media_id}");
    let failed = |reason: String| format!("WhatsApp media lookup failed: {reason}");
    let mut answer = fetcher.get(&lookup, token).await.map_err(failed)?;
    let bytes = super::read_small(&mut answer, LOOKUP_CAP)
        .await
        .map_err(failed)?;
    let meta: Value = serde_json::from_slice(&bytes)
        .map_err(|_| failed("the Graph API answer is not JSON".to_owned()))?;
    let url = meta["url"]
        .as_str()
        .ok_or_else(|| "the Graph API gave no media URL".to_owned())?;
    let body = fetcher
        .get(url, token)
        .await
        .map_err(|reason| format!("the download failed: {reason}"))?;
    Ok(OpenedMedia {
        body,
        mime_type: meta["mime_type"].as_str().map(str::to_owned),
        // The lookup describes the file behind the URL: it wins over the webhook's copy.
        sha256: meta["sha256"].as_str().map(str::to_owned),
    })
}

fn admin_token(channel: &RoutedChannel) -> Result<&str, Error> {
    graph::token(channel)
        .map_err(|_| Error::validation("channel_credentials", "the channel has no access token"))
}

/// Creates a template at Meta (`POST /{waba_id}/message_templates`).
///
/// # Errors
/// `channel_credentials` (no token), `refused_by_meta` (Meta's 4xx with its words),
/// `Upstream` when Meta failed or answered without an id.
pub async fn create_template(
    client: &reqwest::Client,
    graph_url: &str,
    channel: &RoutedChannel,
    waba_id: &str,
    body: &Value,
) -> Result<CreatedTemplate, Error> {
    let token = admin_token(channel)?;
    let url = format!("{graph_url}/{waba_id}/message_templates");
    let answer = graph::admin(client.post(url).bearer_auth(token).json(body)).await?;
    let id = answer["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::Upstream {
            provider: "Graph",
            message: "template created without an id".into(),
        })?;
    Ok(CreatedTemplate {
        id,
        status: answer["status"].as_str().unwrap_or("PENDING").to_owned(),
        category: answer["category"].as_str().map(str::to_owned),
    })
}

/// Deletes a template at Meta (`DELETE /{waba_id}/message_templates`): the one with
/// Meta's id `hsm_id` when given, else every language of the name.
///
/// # Errors
/// As [`create_template`].
pub async fn delete_template(
    client: &reqwest::Client,
    graph_url: &str,
    channel: &RoutedChannel,
    waba_id: &str,
    name: &str,
    hsm_id: Option<&str>,
) -> Result<(), Error> {
    let token = admin_token(channel)?;
    let url = format!("{graph_url}/{waba_id}/message_templates");
    let mut query = vec![("name", name)];
    if let Some(id) = hsm_id {
        query.push(("hsm_id", id));
    }
    graph::admin(client.delete(url).bearer_auth(token).query(&query))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outbound::Delivery;

    fn out(content: Content<'_>) -> Value {
        body(&Outgoing {
            to: "15551234567",
            content,
            delivery: Delivery::Response,
            reference: "ref",
        })
    }

    #[test]
    fn a_read_receipt_names_the_customer_message_and_nothing_else() {
        assert_eq!(
            read_body("wamid.HBgL"),
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.HBgL"})
        );
    }

    #[test]
    fn whatsapp_bodies_follow_the_cloud_api() {
        let b = out(Content::Text("hi 😀"));
        assert_eq!(b["messaging_product"], "whatsapp");
        assert_eq!(b["to"], "15551234567");
        assert_eq!(b["type"], "text");
        assert_eq!(b["text"]["body"], "hi 😀");
        assert_eq!(b["biz_opaque_callback_data"], "ref");
        let b = out(Content::Media {
            kind: OutboundKind::File,
            source: "https://s3/x",
            caption: Some("invoice"),
            filename: "inv.pdf",
        });
        assert_eq!(b["type"], "document");
        assert_eq!(b["document"]["link"], "https://s3/x");
        assert_eq!(b["document"]["filename"], "inv.pdf");
        let b = out(Content::Media {
            kind: OutboundKind::Audio,
            source: "https://s3/a",
            caption: None,
            filename: "a.ogg",
        });
        assert!(b["audio"].get("caption").is_none());
        let b = out(Content::Template {
            name: "hello",
            language: "en_US",
            components: vec![],
        });
        assert_eq!(b["template"]["language"]["code"], "en_US");
    }

    fn options(titles: &[&str]) -> Vec<ReplyOption> {
        titles
            .iter()
            .enumerate()
            .map(|(i, t)| ReplyOption {
                id: format!("opt-{}", i + 1),
                title: (*t).to_owned(),
            })
            .collect()
    }

    #[test]
    fn up_to_three_options_are_reply_buttons_as_the_cloud_api_documents_them() {
        let opts = options(&["Track my order", "Retours 🔁", "Hablar con alguien"]);
        let b = out(Content::Ask {
            text: "¿En qué te ayudo?",
            options: &opts,
        });
        assert_eq!(
            b,
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "15551234567",
                "biz_opaque_callback_data": "ref",
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": "¿En qué te ayudo?"},
                    "action": {"buttons": [
                        {"type": "reply", "reply": {"id": "opt-1", "title": "Track my order"}},
                        {"type": "reply", "reply": {"id": "opt-2", "title": "Retours 🔁"}},
                        {"type": "reply", "reply": {"id": "opt-3", "title": "Hablar con alguien"}}
                    ]}
                }
            })
        );
        let one = options(&["OK"]);
        let b = out(Content::Ask {
            text: "Done?",
            options: &one,
        });
        assert_eq!(b["interactive"]["type"], "button");
        assert_eq!(
            b["interactive"]["action"]["buttons"],
            json!([{"type": "reply", "reply": {"id": "opt-1", "title": "OK"}}])
        );
    }

    #[test]
    fn four_to_ten_options_are_a_one_section_list() {
        let opts = options(&["Mon 9:00", "Mon 14:00", "Tue 9:00", "Terça-feira às 14:00"]);
        let b = out(Content::Ask {
            text: "Pick a slot",
            options: &opts,
        });
        assert_eq!(b["type"], "interactive");
        assert_eq!(
            b["interactive"],
            json!({
                "type": "list",
                "body": {"text": "Pick a slot"},
                "action": {
                    "button": "Choose",
                    "sections": [{"title": "Options", "rows": [
                        {"id": "opt-1", "title": "Mon 9:00"},
                        {"id": "opt-2", "title": "Mon 14:00"},
                        {"id": "opt-3", "title": "Tue 9:00"},
                        {"id": "opt-4", "title": "Terça-feira às 14:00"}
                    ]}]
                }
            })
        );
        let ten = options(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]);
        let b = out(Content::Ask {
            text: "Pick",
            options: &ten,
        });
        let rows = &b["interactive"]["action"]["sections"][0]["rows"];
        assert_eq!(rows.as_array().map(Vec::len), Some(10));
        assert_eq!(rows[9], json!({"id": "opt-10", "title": "j"}));
    }

    #[test]
    fn the_list_labels_fit_the_cloud_api_limits() {
        // action.button at most 20 characters, a section title at most 24 (Cloud API,
        // interactive list messages).
        assert!((1..=20).contains(&LIST_BUTTON.chars().count()));
        assert!((1..=24).contains(&LIST_SECTION.chars().count()));
    }
}
