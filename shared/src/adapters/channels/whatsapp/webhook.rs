//! WhatsApp Cloud API webhooks (`whatsapp_business_account`): messages, statuses, echoes of
//! replies typed in the WhatsApp Business app, message changes and template decisions.

use serde_json::Value;

use crate::Error;
use crate::adapters::channels::graph::{entries, parse_root, text_of};
use crate::domain::inbound::{
    CustomerIdentity, InboundMedia, InboundMessage, LifecycleEvent, MessageChange, ParsedWebhook,
    StatusUpdate, WebhookItem, from_epoch_seconds, ids_storable,
};
use crate::domain::message::{DeliveryError, DeliveryStatus, Direction, MessageKind};

/// Parses a WhatsApp Cloud API webhook (`object: whatsapp_business_account`): every entry,
/// change, message and status, and template review decisions. Unknown message types become
/// `unsupported`; other change fields (account alerts, …) are skipped.
pub fn parse_whatsapp(body: &[u8]) -> Result<ParsedWebhook, Error> {
    let root = parse_root(body)?;
    let mut out = ParsedWebhook::default();
    for entry in entries(&root) {
        for change in entry["changes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if change["field"] == "message_template_status_update" {
                let value = &change["value"];
                let id = text_of(&value["message_template_id"])
                    .or_else(|| value["message_template_id"].as_u64().map(|n| n.to_string()));
                match (id, text_of(&value["event"])) {
                    (Some(provider_template_id), Some(status))
                        if ids_storable(&[&provider_template_id]) =>
                    {
                        out.template_updates
                            .push(crate::domain::inbound::TemplateStatusUpdate {
                                provider_template_id,
                                status,
                                reason: text_of(&value["reason"]).filter(|r| r != "NONE"),
                            });
                    }
                    _ => out.skipped.push("template update without id or event"),
                }
                continue;
            }
            if !carries_messages(&change["field"]) {
                out.skipped.push("not a messages change");
                continue;
            }
            let value = &change["value"];
            let Some(account) = value["metadata"]["phone_number_id"].as_str() else {
                out.skipped.push("no metadata.phone_number_id");
                continue;
            };
            let contacts = value["contacts"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            for m in value["messages"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                match whatsapp_message(m, contacts, Direction::Inbound) {
                    Some(item) => out.push(account, item),
                    None => out.skipped.push("message without id or sender"),
                }
            }
            // Replies typed in the WhatsApp Business app (coexistence): outbound messages.
            for m in value["message_echoes"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                match whatsapp_message(m, contacts, Direction::Outbound) {
                    Some(item) => out.push(account, item),
                    None => out.skipped.push("echo without id or recipient"),
                }
            }
            for s in value["statuses"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let items = whatsapp_status(s);
                if items.is_empty() {
                    out.skipped
                        .push("status without id, recipient or known status");
                }
                for item in items {
                    out.push(account, item);
                }
            }
        }
    }
    Ok(out)
}

/// The change fields whose `value` carries messages, echoes or statuses.
fn carries_messages(field: &Value) -> bool {
    matches!(field.as_str(), Some("messages" | "smb_message_echoes"))
}

/// The `contacts[]` entry of a customer: matched by phone number or business-scoped user id.
fn whatsapp_contact<'a>(
    contacts: &'a [Value],
    phone: Option<&str>,
    user_id: Option<&str>,
) -> Option<&'a Value> {
    contacts.iter().find(|c| {
        phone.is_some_and(|p| c["wa_id"] == p) || user_id.is_some_and(|u| c["user_id"] == u)
    })
}

/// Who a WhatsApp message is from (inbound) or to (an echo): the phone number when shared,
/// the business-scoped user id, and the username from the matching `contacts[]` entry; and
/// the profile name there.
fn whatsapp_identity(
    m: &Value,
    contacts: &[Value],
    direction: Direction,
) -> (CustomerIdentity, Option<String>) {
    let (phone_field, user_field) = match direction {
        Direction::Inbound => ("from", "from_user_id"),
        _ => ("to", "to_user_id"),
    };
    let phone = text_of(&m[phone_field]);
    let user_id = text_of(&m[user_field]);
    let contact = whatsapp_contact(contacts, phone.as_deref(), user_id.as_deref());
    let identity = CustomerIdentity {
        user_id: user_id.or_else(|| contact.and_then(|c| text_of(&c["user_id"]))),
        username: contact.and_then(|c| text_of(&c["profile"]["username"])),
        phone,
    };
    (
        identity,
        contact.and_then(|c| text_of(&c["profile"]["name"])),
    )
}

fn whatsapp_message(m: &Value, contacts: &[Value], direction: Direction) -> Option<WebhookItem> {
    let id = text_of(&m["id"])?;
    let (identity, customer_name) = whatsapp_identity(m, contacts, direction);
    let customer = identity.key()?.to_owned();
    let kind_name = m["type"].as_str().unwrap_or("");
    let timestamp = from_epoch_seconds(&m["timestamp"]);
    let change = |target: Option<String>, change: MessageChange| {
        Some(WebhookItem::Lifecycle(LifecycleEvent {
            event_id: id.clone(),
            target: target?,
            customer: customer.clone(),
            by: direction,
            change,
            timestamp,
            raw: m.clone(),
        }))
    };
    match kind_name {
        // A reaction changes the message it names; an empty emoji removes it.
        "reaction" => {
            let target = text_of(&m["reaction"]["message_id"]);
            return match text_of(&m["reaction"]["emoji"]) {
                Some(emoji) => change(target, MessageChange::Reacted { emoji }),
                None => change(target, MessageChange::Unreacted),
            };
        }
        "edit" => {
            let e = &m["edit"];
            let inner = &e["message"];
            let inner_type = inner["type"].as_str().unwrap_or("text");
            let text = text_of(&inner["text"]["body"])
                .or_else(|| text_of(&inner[inner_type]["caption"]))
                .or_else(|| text_of(&inner[inner_type]["body"]));
            return change(
                text_of(&e["original_message_id"]),
                MessageChange::Edited { text },
            );
        }
        "revoke" => {
            return change(
                text_of(&m["revoke"]["original_message_id"]),
                MessageChange::Deleted,
            );
        }
        _ => {}
    }
    let media = |part: &Value| InboundMedia {
        provider_media_id: text_of(&part["id"]),
        url: None,
        mime_type: text_of(&part["mime_type"]),
        sha256: text_of(&part["sha256"]),
        filename: text_of(&part["filename"]),
    };
    let (kind, text, media) = match kind_name {
        "text" => (MessageKind::Text, text_of(&m["text"]["body"]), None),
        "image" | "video" | "audio" | "document" | "sticker" => {
            let part = &m[kind_name];
            let kind = match kind_name {
                "image" => MessageKind::Image,
                "video" => MessageKind::Video,
                "audio" => MessageKind::Audio,
                "document" => MessageKind::File,
                _ => MessageKind::Sticker,
            };
            (kind, text_of(&part["caption"]), Some(media(part)))
        }
        "location" => {
            let l = &m["location"];
            let label = [text_of(&l["name"]), text_of(&l["address"])]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            (
                MessageKind::Location,
                Some(label).filter(|s| !s.is_empty()),
                None,
            )
        }
        "contacts" => {
            let names = m["contacts"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|c| text_of(&c["name"]["formatted_name"]))
                .collect::<Vec<_>>()
                .join(", ");
            (
                MessageKind::Contacts,
                Some(names).filter(|s| !s.is_empty()),
                None,
            )
        }
        "interactive" => {
            let i = &m["interactive"];
            let title = text_of(&i["button_reply"]["title"])
                .or_else(|| text_of(&i["list_reply"]["title"]))
                .or_else(|| text_of(&i["nfm_reply"]["body"]));
            (MessageKind::Interactive, title, None)
        }
        "button" => (MessageKind::Button, text_of(&m["button"]["text"]), None),
        "order" => (MessageKind::Order, text_of(&m["order"]["text"]), None),
        "system" => (MessageKind::System, text_of(&m["system"]["body"]), None),
        _ => (MessageKind::Unsupported, None, None),
    };
    Some(WebhookItem::Message(InboundMessage {
        provider_message_id: id,
        customer_name: customer_name.filter(|_| direction == Direction::Inbound),
        customer,
        direction,
        kind,
        text,
        media,
        reply_to: text_of(&m["context"]["id"]),
        timestamp,
        // A system notice (e.g. number changed) is not the customer writing, nor is a
        // reply typed in the business app.
        opens_window: direction == Direction::Inbound && kind != MessageKind::System,
        raw: m.clone(),
        identity,
        standby: false,
    }))
}

/// A WhatsApp status: a delivery status, or `played` (a voice message the customer
/// played: a change to that message, and read). The customer is `recipient_id` (phone) or,
/// for a username without a shared number, `recipient_user_id`.
fn whatsapp_status(s: &Value) -> Vec<WebhookItem> {
    let (Some(id), Some(customer)) = (
        text_of(&s["id"]),
        text_of(&s["recipient_id"]).or_else(|| text_of(&s["recipient_user_id"])),
    ) else {
        return Vec::new();
    };
    let name = s["status"].as_str().unwrap_or("");
    let timestamp = from_epoch_seconds(&s["timestamp"]);
    let played = name == "played";
    let status = if played {
        Some(DeliveryStatus::Read)
    } else {
        DeliveryStatus::parse(name).filter(|st| *st != DeliveryStatus::Pending)
    };
    let Some(status) = status else {
        return Vec::new();
    };
    let error = s["errors"].as_array().and_then(|e| e.first()).map(|e| {
        let code = match &e["code"] {
            Value::Number(n) => n.to_string(),
            Value::String(c) => c.clone(),
            _ => "unknown".to_owned(),
        };
        DeliveryError::explain(&code, e["title"].as_str().or(e["message"].as_str()))
    });
    let error = match (status, error) {
        (DeliveryStatus::Failed, None) => Some(DeliveryError::explain("unknown", None)),
        (_, e) => e,
    };
    let mut items = vec![WebhookItem::Status(StatusUpdate {
        provider_message_id: id.clone(),
        customer: customer.clone(),
        status,
        timestamp,
        error,
        raw: s.clone(),
        reference: s["biz_opaque_callback_data"]
            .as_str()
            .and_then(crate::domain::inbound::parse_reference),
    })];
    if played {
        items.push(WebhookItem::Lifecycle(LifecycleEvent {
            event_id: format!("played:{id}"),
            target: id,
            customer,
            by: Direction::Inbound,
            change: MessageChange::Played,
            timestamp,
            raw: s.clone(),
        }));
    }
    items
}

/// What the Graph API answered to a send: `contacts: [{input, wa_id}]`. Returns the
/// `wa_id` when it differs from the number we sent to (`input`, compared as digits): then
/// the customer will write (and statuses come) from that `wa_id`, which must be linked to
/// the conversation started under `input` (see `CustomerAliases::alias_customer`).
/// Brazilian numbers answered without the ninth digit are the common case.
pub fn whatsapp_answered_wa_id(answer: &Value) -> Option<String> {
    let contact = answer["contacts"].as_array()?.first()?;
    crate::domain::inbound::answered_alias(
        contact["input"].as_str().unwrap_or_default(),
        contact["wa_id"].as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_review_decisions_are_read_with_their_reason() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1020","time":1,"changes":[
            {"field":"message_template_status_update","value":{"event":"REJECTED","message_template_id":1689556908129832,
             "message_template_name":"promo","message_template_language":"en_US","reason":"INVALID_FORMAT"}},
            {"field":"message_template_status_update","value":{"event":"APPROVED","message_template_id":"77","reason":"NONE"}},
            {"field":"message_template_status_update","value":{"reason":"NONE"}}]}]}"#;
        let parsed = parse_whatsapp(body).unwrap();
        assert_eq!(parsed.template_updates.len(), 2);
        assert_eq!(
            parsed.template_updates[0].provider_template_id,
            "1689556908129832"
        );
        assert_eq!(
            parsed.template_updates[0].reason.as_deref(),
            Some("INVALID_FORMAT")
        );
        assert_eq!(parsed.template_updates[1].reason, None);
        assert_eq!(parsed.skipped.len(), 1);
    }

    #[test]
    fn a_status_carries_our_reference_back() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
            "metadata":{"phone_number_id":"10"},"statuses":[{"id":"wamid.A","status":"sent","timestamp":"1",
            "recipient_id":"155","biz_opaque_callback_data":"2026-11-24T09:00:00.000Z#01JABC"}]}}]}]}"#;
        let parsed = parse_whatsapp(body).unwrap();
        let WebhookItem::Status(s) = &parsed.accounts[0].items[0] else {
            panic!("a status")
        };
        assert_eq!(
            s.reference,
            Some(("2026-11-24T09:00:00.000Z".to_owned(), "01JABC".to_owned()))
        );
        assert_eq!(crate::domain::inbound::parse_reference("not#a ref"), None);
    }

    fn whatsapp_value(value: &str) -> Vec<u8> {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"10"}},{value}}}}}]}}]}}"#
        )
        .into_bytes()
    }

    fn items(parsed: &ParsedWebhook) -> &[WebhookItem] {
        &parsed.accounts[0].items
    }

    #[test]
    fn a_whatsapp_user_with_a_username_and_no_number_is_keyed_by_the_user_id() {
        let body = whatsapp_value(
            r#""contacts":[{"profile":{"name":"Jane","username":"@jane"},"user_id":"US.13491208655302741918"}],
            "messages":[{"from_user_id":"US.13491208655302741918","id":"wamid.U1","timestamp":"1795512600","type":"text","text":{"body":"hi"}}]"#,
        );
        let parsed = parse_whatsapp(&body).unwrap();
        assert!(parsed.skipped.is_empty());
        let WebhookItem::Message(m) = &items(&parsed)[0] else {
            panic!("a message")
        };
        assert_eq!(m.customer, "US.13491208655302741918");
        assert_eq!(m.customer_name.as_deref(), Some("Jane"));
        assert_eq!(m.identity.phone, None);
        assert_eq!(m.identity.username.as_deref(), Some("@jane"));
    }

    #[test]
    fn a_whatsapp_number_and_its_user_id_are_kept_together() {
        let body = whatsapp_value(
            r#""contacts":[{"profile":{"name":"Ana","username":"@ana"},"wa_id":"5511988887777","user_id":"BR.1502576394655843"}],
            "messages":[{"from":"5511988887777","from_user_id":"BR.1502576394655843","id":"wamid.P1","timestamp":"1795512600","type":"text","text":{"body":"oi"}}]"#,
        );
        let parsed = parse_whatsapp(&body).unwrap();
        let WebhookItem::Message(m) = &items(&parsed)[0] else {
            panic!("a message")
        };
        assert_eq!(m.customer, "5511988887777");
        assert_eq!(
            m.identity,
            CustomerIdentity {
                phone: Some("5511988887777".into()),
                user_id: Some("BR.1502576394655843".into()),
                username: Some("@ana".into()),
            }
        );
    }

    #[test]
    fn a_status_to_a_username_without_a_number_names_the_user_id() {
        let body = whatsapp_value(
            r#""statuses":[{"id":"wamid.S","status":"delivered","timestamp":"1","recipient_user_id":"US.1349"}]"#,
        );
        let parsed = parse_whatsapp(&body).unwrap();
        let WebhookItem::Status(st) = &items(&parsed)[0] else {
            panic!("a status")
        };
        assert_eq!(st.customer, "US.1349");
    }

    #[test]
    fn the_send_answer_names_a_wa_id_to_link_when_it_differs_from_the_input() {
        let answer = serde_json::json!({"messaging_product":"whatsapp",
            "contacts":[{"input":"5511988887777","wa_id":"551188887777"}],
            "messages":[{"id":"wamid.T","message_status":"accepted"}]});
        assert_eq!(
            whatsapp_answered_wa_id(&answer).as_deref(),
            Some("551188887777")
        );
        let same =
            serde_json::json!({"contacts":[{"input":"+1 555 123 4567","wa_id":"15551234567"}]});
        assert_eq!(whatsapp_answered_wa_id(&same), None);
        assert_eq!(whatsapp_answered_wa_id(&serde_json::json!({})), None);
    }

    #[test]
    fn whatsapp_edits_revokes_and_reactions_change_the_message_they_name() {
        let body = whatsapp_value(
            r#""contacts":[{"profile":{"name":"A"},"wa_id":"155"}],"messages":[
            {"from":"155","id":"wamid.E","timestamp":"2","type":"edit","edit":{"original_message_id":"wamid.O","message":{"type":"text","text":{"body":"fixed"}}}},
            {"from":"155","id":"wamid.R","timestamp":"3","type":"revoke","revoke":{"original_message_id":"wamid.O"}},
            {"from":"155","id":"wamid.X","timestamp":"4","type":"reaction","reaction":{"message_id":"wamid.B","emoji":"\ud83d\udc4d"}},
            {"from":"155","id":"wamid.Y","timestamp":"5","type":"reaction","reaction":{"message_id":"wamid.B","emoji":""}}]"#,
        );
        let parsed = parse_whatsapp(&body).unwrap();
        let changes: Vec<(&str, &MessageChange)> = items(&parsed)
            .iter()
            .map(|i| match i {
                WebhookItem::Lifecycle(c) => (c.target.as_str(), &c.change),
                other => panic!("a change, not {other:?}"),
            })
            .collect();
        assert_eq!(
            changes,
            vec![
                (
                    "wamid.O",
                    &MessageChange::Edited {
                        text: Some("fixed".into())
                    }
                ),
                ("wamid.O", &MessageChange::Deleted),
                (
                    "wamid.B",
                    &MessageChange::Reacted {
                        emoji: "\u{1f44d}".into()
                    }
                ),
                ("wamid.B", &MessageChange::Unreacted),
            ]
        );
    }

    #[test]
    fn a_played_status_reads_and_changes_the_voice_message() {
        let body = whatsapp_value(
            r#""statuses":[{"id":"wamid.V","status":"played","timestamp":"9","recipient_id":"155"}]"#,
        );
        let parsed = parse_whatsapp(&body).unwrap();
        let got = items(&parsed);
        assert!(matches!(&got[0], WebhookItem::Status(s) if s.status == DeliveryStatus::Read));
        assert!(
            matches!(&got[1], WebhookItem::Lifecycle(c) if c.change == MessageChange::Played && c.target == "wamid.V")
        );
    }

    #[test]
    fn replies_typed_in_the_business_app_are_outbound_messages() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"smb_message_echoes","value":{
            "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"10"},
            "message_echoes":[{"from":"15550783881","to":"16505551234","id":"wamid.ECHO","timestamp":"1795512600","type":"text","text":{"body":"On its way"}}]}}]}]}"#;
        let parsed = parse_whatsapp(body).unwrap();
        let WebhookItem::Message(m) = &items(&parsed)[0] else {
            panic!("a message")
        };
        assert_eq!(
            (m.direction, m.customer.as_str(), m.opens_window),
            (Direction::Outbound, "16505551234", false)
        );
        assert_eq!(m.text.as_deref(), Some("On its way"));
    }
}
