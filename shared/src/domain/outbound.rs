//! Outbound messages: what a sender asks to send, whether the platform allows it now (SPEC
//! §4–5), and the provider-neutral outcome of one provider call.
//!
//! Everything here is pure: the service in [`crate::service::outbound`] does the I/O and
//! the provider modules in [`crate::adapters::channels`] speak the wire formats.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::domain::actor::Actor;
use crate::domain::channel::ChannelType;
use crate::domain::media::MediaKind;
use crate::domain::message::{DeliveryError, MessageKind};
use crate::domain::template::TemplateCall;
use crate::domain::window::{WECHAT_REPLIES_PER_MESSAGE, Window, WindowMode};

/// Longest text message (WhatsApp's limit; Messenger's is 2000, checked per channel).
pub const MAX_TEXT_CHARS: usize = 4096;
/// Longest Messenger text.
pub const MAX_MESSENGER_TEXT_CHARS: usize = 2000;
/// Longest Instagram text, in UTF-8 bytes.
pub const MAX_INSTAGRAM_TEXT_BYTES: usize = 1000;
/// Longest media caption.
pub const MAX_CAPTION_CHARS: usize = 1024;
/// Longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The kinds an agent can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundKind {
    /// Text (emoji included).
    Text,
    /// WEBP sticker.
    Sticker,
    /// JPEG/PNG image.
    Image,
    /// MP4/3GP video.
    Video,
    /// Audio or voice note.
    Audio,
    /// Document.
    File,
    /// WhatsApp template.
    Template,
}

impl OutboundKind {
    /// The media kind it needs, if it is a media message.
    pub fn media_kind(self) -> Option<MediaKind> {
        match self {
            Self::Sticker => Some(MediaKind::Sticker),
            Self::Image => Some(MediaKind::Image),
            Self::Video => Some(MediaKind::Video),
            Self::Audio => Some(MediaKind::Audio),
            Self::File => Some(MediaKind::Document),
            Self::Text | Self::Template => None,
        }
    }

    /// The stored message kind.
    pub fn message_kind(self) -> MessageKind {
        match self {
            Self::Text => MessageKind::Text,
            Self::Sticker => MessageKind::Sticker,
            Self::Image => MessageKind::Image,
            Self::Video => MessageKind::Video,
            Self::Audio => MessageKind::Audio,
            Self::File => MessageKind::File,
            Self::Template => MessageKind::Template,
        }
    }

    /// Media delivered without a caption on `channel`: a text goes out as a second message.
    /// WhatsApp captions images, videos and documents; Messenger, Instagram and WeChat
    /// caption nothing.
    fn drops_caption(self, channel: ChannelType) -> bool {
        matches!(self, Self::Audio | Self::Sticker) || channel != ChannelType::Whatsapp
    }
}

/// `POST /conversations/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// What to send.
    pub kind: OutboundKind,
    /// Text of a text message; with media, its caption (or a follow-up text for audio).
    pub text: Option<String>,
    /// A `valid` media record (media kinds).
    pub media_id: Option<String>,
    /// Caption of an image, video or file.
    pub caption: Option<String>,
    /// Template and parameters (kind `template`).
    pub template: Option<TemplateCall>,
    /// Answer options under a text (bots' `ask` steps; agents may send them too): WhatsApp
    /// reply buttons (up to 3) or a list (up to 10 rows), Messenger/Instagram quick
    /// replies, a numbered menu on WeChat. The customer's choice comes back with the
    /// option's `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<ReplyOption>>,
}

/// An answer option of a question (see [`SendMessage::options`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyOption {
    /// What comes back when the customer picks it (1–200 characters).
    pub id: String,
    /// What the customer sees (WhatsApp: 20 characters as a button, 24 as a list row;
    /// Messenger/Instagram: 20).
    pub title: String,
}

/// Most options of a question (WhatsApp's list: 10 rows).
pub const MAX_REPLY_OPTIONS: usize = 10;
/// Longest question under options (WhatsApp interactive body text).
pub const MAX_QUESTION_CHARS: usize = 1024;

/// The numbered text menu a channel without buttons shows (WeChat): the question, a blank
/// line, then `1. title` per line. The customer answers with the number or the title.
pub fn numbered_menu(question: &str, options: &[ReplyOption]) -> String {
    let mut menu = question.to_owned();
    menu.push('\n');
    for (i, o) in options.iter().enumerate() {
        menu.push_str(&format!("\n{}. {}", i + 1, o.title));
    }
    menu
}

fn check_options(options: &[ReplyOption], channel: ChannelType) -> Result<(), Error> {
    if options.is_empty() || options.len() > MAX_REPLY_OPTIONS {
        return Err(invalid(format!(
            "options holds 1 to {MAX_REPLY_OPTIONS} options"
        )));
    }
    let limit = crate::domain::bot::option_title_limit(channel, options.len());
    let mut ids = std::collections::HashSet::new();
    let mut titles = std::collections::HashSet::new();
    for o in options {
        if o.id.trim().is_empty() || o.id.trim() != o.id || o.id.chars().count() > 200 {
            return Err(invalid(
                "an option id is 1-200 characters, without spaces at either end",
            ));
        }
        if !ids.insert(o.id.as_str()) {
            return Err(invalid(format!("option id `{}` is used twice", o.id)));
        }
        // WhatsApp refuses two buttons (or rows) with the same title.
        if !titles.insert(crate::domain::text::fold(&o.title)) {
            return Err(invalid(format!("two options are titled `{}`", o.title)));
        }
        if o.title.trim().is_empty() || o.title.chars().count() > limit {
            return Err(invalid(format!(
                "an option title is 1-{limit} characters on {channel} with {} options",
                options.len()
            )));
        }
    }
    Ok(())
}

fn invalid(message: impl Into<String>) -> Error {
    Error::validation("invalid_message", message)
}

fn non_blank(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|t| !t.trim().is_empty())
}

/// One provider message of a send: most sends are one, audio or a sticker with text two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// A text message.
    Text(String),
    /// A media message with an optional caption.
    Media {
        /// Outbound kind (image, sticker, …).
        kind: OutboundKind,
        /// Caption, for kinds that carry one.
        caption: Option<String>,
    },
    /// A template message.
    Template(TemplateCall),
    /// A question with answer options (WhatsApp interactive, Messenger/Instagram quick
    /// replies; WeChat gets a numbered [`Part::Text`] instead).
    Ask {
        /// The question.
        text: String,
        /// The options.
        options: Vec<ReplyOption>,
    },
}

impl Part {
    /// The stored kind.
    pub fn message_kind(&self) -> MessageKind {
        match self {
            Self::Text(_) => MessageKind::Text,
            Self::Media { kind, .. } => kind.message_kind(),
            Self::Template(_) => MessageKind::Template,
            Self::Ask { .. } => MessageKind::Interactive,
        }
    }

    /// The text the conversation shows (caption for media).
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Text(t) | Self::Ask { text: t, .. } => Some(t),
            Self::Media { caption, .. } => caption.as_deref(),
            Self::Template(_) => None,
        }
    }
}

impl SendMessage {
    /// A plain text message (what the product itself sends: confirmations, links).
    pub fn plain_text(text: String) -> Self {
        Self {
            kind: OutboundKind::Text,
            text: Some(text),
            media_id: None,
            caption: None,
            template: None,
            options: None,
        }
    }

    /// A template message.
    pub fn of_template(call: TemplateCall) -> Self {
        Self {
            kind: OutboundKind::Template,
            text: None,
            media_id: None,
            caption: None,
            template: Some(call),
            options: None,
        }
    }

    /// Checks the fields against the kind and returns the provider messages to send on
    /// `channel`, in order (media first when its text cannot travel as a caption).
    pub fn parts(&self, channel: ChannelType) -> Result<Vec<Part>, Error> {
        let text = non_blank(&self.text);
        let caption = non_blank(&self.caption);
        let long = |t: &str, max: usize, what: &str| -> Result<(), Error> {
            if t.chars().count() > max {
                return Err(invalid(format!("{what} is longer than {max} characters")));
            }
            Ok(())
        };
        match self.kind {
            OutboundKind::Text => {
                if self.media_id.is_some() || self.caption.is_some() || self.template.is_some() {
                    return Err(invalid("a text message takes only text (and options)"));
                }
                let text = text.ok_or_else(|| invalid("text is required"))?;
                let Some(options) = &self.options else {
                    long(text, MAX_TEXT_CHARS, "text")?;
                    return Ok(vec![Part::Text(text.to_owned())]);
                };
                long(text, MAX_QUESTION_CHARS, "a question with options")?;
                check_options(options, channel)?;
                if channel == ChannelType::Wechat {
                    return Ok(vec![Part::Text(numbered_menu(text, options))]);
                }
                Ok(vec![Part::Ask {
                    text: text.to_owned(),
                    options: options.clone(),
                }])
            }
            OutboundKind::Template => {
                if self.media_id.is_some()
                    || self.text.is_some()
                    || self.caption.is_some()
                    || self.options.is_some()
                {
                    return Err(invalid("a template message takes only template"));
                }
                let call = self
                    .template
                    .clone()
                    .ok_or_else(|| invalid("template {name, language, parameters} is required"))?;
                Ok(vec![Part::Template(call)])
            }
            _ if self.options.is_some() => Err(invalid("options go only with a text")),
            kind => {
                if self.template.is_some() {
                    return Err(invalid("template is only for kind template"));
                }
                if non_blank(&self.media_id).is_none() {
                    return Err(invalid(format!(
                        "media_id is required for {}",
                        kind.message_kind().as_str()
                    )));
                }
                if text.is_some() && caption.is_some() {
                    return Err(invalid("give either text or caption, not both"));
                }
                let words = caption.or(text);
                if kind.drops_caption(channel) {
                    if let Some(t) = words {
                        long(t, MAX_TEXT_CHARS, "text")?;
                    }
                    let mut parts = vec![Part::Media {
                        kind,
                        caption: None,
                    }];
                    parts.extend(words.map(|t| Part::Text(t.to_owned())));
                    return Ok(parts);
                }
                if let Some(t) = words {
                    long(t, MAX_CAPTION_CHARS, "caption")?;
                }
                Ok(vec![Part::Media {
                    kind,
                    caption: words.map(str::to_owned),
                }])
            }
        }
    }
}

/// An `Idempotency-Key` header value: 1 to 255 visible ASCII characters. A repeat with
/// the same key and body is answered with the first answer; with another body it is a 422.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a header value.
    ///
    /// # Errors
    /// `invalid_idempotency_key` (400) when empty, too long or not visible ASCII.
    pub fn parse(key: &str) -> Result<Self, Error> {
        let ok = !key.is_empty()
            && key.len() <= MAX_IDEMPOTENCY_KEY_LEN
            && key.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(key.to_owned()))
        } else {
            Err(Error::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1-255 visible ASCII characters",
            ))
        }
    }

    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How a send goes out, decided from the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A reply inside the window (`messaging_type: RESPONSE` on Messenger).
    Response,
    /// Messenger/Instagram 24 h–7 d: `MESSAGE_TAG` + `HUMAN_AGENT`.
    HumanAgent,
    /// A WhatsApp template (allowed whatever the window).
    Template,
}

/// Whether the channel can carry this kind at all.
pub fn check_supported(channel: ChannelType, part: &Part) -> Result<(), Error> {
    let unsupported = |what: &str| {
        Err(Error::validation(
            "kind_not_supported",
            format!("{channel} cannot receive {what} messages"),
        ))
    };
    match (channel, part) {
        (ChannelType::Whatsapp, _) => Ok(()),
        (_, Part::Template(_)) => Err(Error::validation(
            "template_not_supported",
            "message templates exist only for WhatsApp",
        )),
        (
            ChannelType::Wechat | ChannelType::Instagram,
            Part::Media {
                kind: OutboundKind::Sticker,
                ..
            },
        ) => unsupported("sticker"),
        (ChannelType::Instagram, Part::Text(t) | Part::Ask { text: t, .. })
            if t.len() > MAX_INSTAGRAM_TEXT_BYTES =>
        {
            Err(invalid(format!(
                "Instagram texts are at most {MAX_INSTAGRAM_TEXT_BYTES} bytes"
            )))
        }
        (
            ChannelType::Wechat,
            Part::Media {
                kind: OutboundKind::File,
                ..
            },
        ) => unsupported("file"),
        (ChannelType::Messenger | ChannelType::Instagram, Part::Text(t))
            if t.chars().count() > MAX_MESSENGER_TEXT_CHARS =>
        {
            Err(invalid(format!(
                "{channel} texts are at most {MAX_MESSENGER_TEXT_CHARS} characters"
            )))
        }
        _ => Ok(()),
    }
}

/// WeChat temporary media limits: voice is AMR or MP3 up to 2 MB, video up to 10 MB.
const WECHAT_VOICE_MAX: u64 = 2 * 1024 * 1024;
const WECHAT_VIDEO_MAX: u64 = 10 * 1024 * 1024;

/// Checks that a media record fits the kind asked for and the channel's own limits.
pub fn check_media(
    channel: ChannelType,
    kind: OutboundKind,
    media: &crate::domain::media::MediaRecord,
) -> Result<(), Error> {
    let wanted = kind.media_kind();
    if wanted != Some(media.kind) {
        return Err(Error::validation(
            "media_kind_mismatch",
            format!(
                "media_id is a {} file, not {}",
                media.kind.as_str(),
                kind.message_kind().as_str()
            ),
        ));
    }
    let refuse = |why: &str| Err(Error::validation("media_not_supported", why.to_owned()));
    match (channel, media.kind) {
        (ChannelType::Wechat, MediaKind::Audio)
            if !matches!(media.mime_type.as_str(), "audio/amr" | "audio/mpeg") =>
        {
            refuse("WeChat voice messages must be AMR or MP3")
        }
        (ChannelType::Wechat, MediaKind::Audio) if media.size > WECHAT_VOICE_MAX => {
            refuse("WeChat voice messages are at most 2 MB")
        }
        (ChannelType::Wechat, MediaKind::Video) if media.size > WECHAT_VIDEO_MAX => {
            refuse("WeChat videos are at most 10 MB")
        }
        _ => Ok(()),
    }
}

/// Decides whether `parts` may be sent now and how (SPEC §4). A refusal is a 422 that says
/// what the agent can do instead.
pub fn authorize(
    channel: ChannelType,
    window: &Window,
    replies_since_inbound: u32,
    parts: &[Part],
    actor: &Actor,
) -> Result<Delivery, Error> {
    for part in parts {
        check_supported(channel, part)?;
    }
    if matches!(parts, [Part::Template(_)]) {
        return Ok(Delivery::Template);
    }
    match window.mode {
        WindowMode::FreeForm => {
            let count = u32::try_from(parts.len()).unwrap_or(u32::MAX);
            if channel == ChannelType::Wechat
                && replies_since_inbound.saturating_add(count) > WECHAT_REPLIES_PER_MESSAGE
            {
                return Err(Error::validation(
                    "window_closed",
                    format!(
                        "WeChat allows {WECHAT_REPLIES_PER_MESSAGE} replies per customer message; {} left",
                        WECHAT_REPLIES_PER_MESSAGE.saturating_sub(replies_since_inbound)
                    ),
                ));
            }
            Ok(Delivery::Response)
        }
        WindowMode::HumanAgent if actor.is_human() => Ok(Delivery::HumanAgent),
        WindowMode::HumanAgent => Err(Error::validation(
            "window_closed",
            "more than 24 hours since the customer wrote: only a human agent may answer now",
        )),
        WindowMode::TemplateOnly => Err(Error::validation(
            "template_required",
            "more than 24 hours since the customer wrote: send an approved template",
        )),
        WindowMode::Closed => Err(Error::validation(
            "window_closed",
            match channel {
                ChannelType::Wechat if window.expires_at.is_none() && replies_since_inbound > 0 => {
                    "the customer must write again before more replies can be sent"
                }
                _ => "the customer service window is closed: wait for the customer to write",
            },
        )),
    }
}

/// A part resolved for the wire: media as a link (Meta) or an uploaded id (WeChat).
#[derive(Debug, Clone, PartialEq)]
pub enum Content<'a> {
    /// Text.
    Text(&'a str),
    /// Media.
    Media {
        /// Kind.
        kind: OutboundKind,
        /// Short-lived HTTPS link (Meta) or WeChat media id.
        source: &'a str,
        /// Caption.
        caption: Option<&'a str>,
        /// File name (documents).
        filename: &'a str,
    },
    /// A question with options (WhatsApp buttons or list, Messenger/Instagram quick
    /// replies).
    Ask {
        /// The question.
        text: &'a str,
        /// The options.
        options: &'a [ReplyOption],
    },
    /// WhatsApp template.
    Template {
        /// Name.
        name: &'a str,
        /// Language code.
        language: &'a str,
        /// Filled components.
        components: Vec<Value>,
    },
}

/// What a provider said when it accepted a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    /// The provider's message id (WeChat gives none).
    pub id: Option<String>,
    /// The recipient the provider resolved the address to, when it says: WhatsApp's
    /// `contacts[0].wa_id`, which may differ from the number sent to (Brazilian numbers
    /// without their ninth digit, for example).
    pub recipient: Option<String>,
}

impl Receipt {
    /// A receipt with just the provider's message id.
    pub fn id(id: impl Into<String>) -> Self {
        Self {
            id: Some(id.into()),
            recipient: None,
        }
    }
}

/// What one provider call came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// Accepted, with what the provider said about it.
    Accepted(Receipt),
    /// Failed for now: try again (after at least `after` when the provider said).
    Retry {
        /// The provider's code (or `http_<status>`).
        code: String,
        /// `Retry-After`.
        after: Option<Duration>,
    },
    /// WeChat: the access token is invalid or expired; fetch a new one and try again.
    RefreshToken,
    /// Failed for good.
    Failed(DeliveryError),
    /// The provider may have accepted it (timeout after the request was sent, or an answer
    /// we cannot read): never re-sent blindly, reconciled by status webhooks.
    Unknown,
}

/// Bounded exponential backoff with jitter, honouring `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Provider calls per part, first one included.
    pub attempts: u32,
    /// First backoff.
    pub base: Duration,
    /// Largest backoff.
    pub cap: Duration,
    /// Longest single wait accepted (a longer `Retry-After` ends the send as failed, since
    /// the agent is waiting for the answer).
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(4),
            max_wait: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 = first retry), or `None` when no retry is
    /// left. `jitter` in `[0, 1)` spreads clients apart: half the backoff is fixed, half
    /// random.
    pub fn delay(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if retry + 1 >= self.attempts {
            return None;
        }
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
            .min(self.cap);
        let backoff = exp / 2 + exp.mul_f64(jitter.clamp(0.0, 1.0) / 2.0);
        let wait = retry_after.map_or(backoff, |r| r.max(backoff));
        (wait <= self.max_wait).then_some(wait)
    }
}

#[cfg(test)]
#[path = "outbound_tests.rs"]
mod tests;
