//! Before anything is written: the media and template a send names, checked for this
//! channel, and the pending messages it becomes.

use chrono::{DateTime, Duration as Span, Utc};

use crate::Error;
use crate::domain::actor::Actor;
use crate::domain::conversation::{MediaRef, Message};
use crate::domain::ids::TenantId;
use crate::domain::media::{MediaRecord, MediaStatus};
use crate::domain::message::{DeliveryStatus, Direction};
use crate::domain::outbound::{Part, SendMessage, check_media};
use crate::domain::template::Template;
use crate::domain::time::rfc3339;
use crate::ports::{MediaStore, MediaSummary, PendingMessage, RoutedChannel, TemplateStore};

/// The media record and template of a send's parts.
#[derive(Debug, Default)]
pub(super) struct Resolved {
    pub(super) media: Option<MediaRecord>,
    pub(super) template: Option<Template>,
}

/// Finds and checks the media and template the parts name.
pub(super) async fn resolve<S>(
    store: &S,
    tenant: &TenantId,
    channel: &RoutedChannel,
    request: &SendMessage,
    parts: &[Part],
) -> Result<Resolved, Error>
where
    S: MediaStore + TemplateStore,
{
    let mut resolved = Resolved::default();
    for part in parts {
        match part {
            Part::Media { kind, .. } => {
                let id = request.media_id.as_deref().unwrap_or_default().trim();
                let record = store
                    .get_media(tenant, id)
                    .await?
                    .filter(|r| !r.inbound || r.status == MediaStatus::Valid)
                    .ok_or_else(|| {
                        Error::validation("unknown_media", "no media with this media_id")
                    })?;
                match record.status {
                    MediaStatus::Valid => {}
                    MediaStatus::Pending => {
                        return Err(Error::validation(
                            "media_not_ready",
                            "the media is still being uploaded or checked; send it once GET /media/{id} says valid",
                        ));
                    }
                    MediaStatus::Rejected => {
                        return Err(Error::validation(
                            "media_rejected",
                            format!(
                                "the media was rejected: {}",
                                record.reason.as_deref().unwrap_or("invalid file")
                            ),
                        ));
                    }
                }
                check_media(channel.channel.channel_type, *kind, &record)?;
                resolved.media = Some(record);
            }
            Part::Template(call) => {
                let found = crate::service::templates::find_for_send(
                    store,
                    &channel.channel,
                    &call.name,
                    &call.language,
                )
                .await?;
                let template = found.ok_or_else(|| {
                    Error::validation(
                        "unknown_template",
                        format!(
                            "no template {} in language {} in this channel's WhatsApp Business Account",
                            call.name, call.language
                        ),
                    )
                })?;
                template.check_sendable(call)?;
                resolved.template = Some(template);
            }
            Part::Text(_) | Part::Ask { .. } => {}
        }
    }
    Ok(resolved)
}

/// The pending messages of a send: ids, and times 1 ms apart so the parts keep their order.
pub(super) fn pending_messages(
    parts: &[Part],
    resolved: &Resolved,
    now: DateTime<Utc>,
) -> Vec<PendingMessage> {
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let at = now + Span::milliseconds(i64::try_from(i).unwrap_or(0));
            let (text, raw) = match part {
                Part::Template(call) => (
                    resolved
                        .template
                        .as_ref()
                        .map(|t| t.rendered_body(&call.parameters)),
                    serde_json::json!({"template": call}),
                ),
                Part::Ask { text, options } => {
                    (Some(text.clone()), serde_json::json!({"options": options}))
                }
                other => (other.text().map(str::to_owned), serde_json::Value::Null),
            };
            PendingMessage {
                id: ulid::Ulid::new().to_string(),
                created_at: rfc3339(&at),
                kind: part.message_kind(),
                text,
                media: match part {
                    Part::Media { .. } => resolved.media.as_ref().map(|m| MediaSummary {
                        media_id: m.id.clone(),
                        mime_type: m.mime_type.clone(),
                        size: m.size,
                    }),
                    _ => None,
                },
                raw,
            }
        })
        .collect()
}

/// The message as accepted, before the provider answered.
pub(crate) fn pending_view(conversation_id: &str, m: &PendingMessage, actor: &Actor) -> Message {
    Message {
        id: m.id.clone(),
        conversation_id: conversation_id.to_owned(),
        direction: Direction::Outbound,
        kind: m.kind,
        text: m.text.clone(),
        media: m.media.as_ref().map(|media| MediaRef {
            media_id: Some(media.media_id.clone()),
            mime_type: Some(media.mime_type.clone()),
            size: Some(media.size),
            status: None,
            reason: None,
        }),
        status: DeliveryStatus::Pending,
        provider_message_id: None,
        reply_to: None,
        error: None,
        created_at: crate::domain::time::parse_rfc3339(&m.created_at).unwrap_or_default(),
        actor: Some(actor.clone()),
        event: None,
        reason: None,
        raw: m.raw.clone(),
    }
}

/// A stored message as the pending message it was accepted as (its key and what the
/// settle writes).
pub(super) fn pending_of(m: &Message) -> PendingMessage {
    PendingMessage {
        id: m.id.clone(),
        created_at: rfc3339(&m.created_at),
        kind: m.kind,
        text: m.text.clone(),
        media: m.media.as_ref().and_then(|media| {
            Some(MediaSummary {
                media_id: media.media_id.clone()?,
                mime_type: media.mime_type.clone().unwrap_or_default(),
                size: media.size.unwrap_or_default(),
            })
        }),
        raw: m.raw.clone(),
    }
}
