//! Customers, conversations and stored messages as the agent API shows them.
//!
//! A conversation is the thread between one channel and one customer: its id is derived
//! from both, so parallel first messages from a new customer land in one conversation
//! without a read. It is `open` while being worked and is reopened by the customer's next
//! message after an agent closes it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::bot::BotRun;
use crate::domain::channel::ChannelType;
use crate::domain::ids::ChannelId;
use crate::domain::message::{DeliveryError, DeliveryStatus, Direction, MessageKind};
use crate::domain::time::serialize_rfc3339;
use crate::domain::window::{Window, WindowPolicy};

/// Longest conversation preview, in characters.
pub const PREVIEW_CHARS: usize = 100;

/// A stable id: `prefix` and 24 hex digits of a hash of the parts.
pub fn derived_id(prefix: &str, parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for p in parts {
        hash.update(p.as_bytes());
        hash.update([0u8]);
    }
    format!("{prefix}{}", &hex::encode(hash.finalize())[..24])
}

/// The customer id of a provider user on a channel (stable, derived): `cu_` and the same
/// suffix as the customer's conversation id, so either id names the other without a read
/// (see [`conversation_of_customer`]).
pub fn customer_id(channel: &ChannelId, external_id: &str) -> String {
    let conversation = conversation_id(channel, external_id);
    format!("cu_{}", &conversation["cv_".len()..])
}

/// The conversation of a customer id (one thread per customer per channel); `None` for
/// anything that is not a customer id.
pub fn conversation_of_customer(customer_id: &str) -> Option<String> {
    let conversation = format!("cv_{}", customer_id.strip_prefix("cu_")?);
    channel_of_conversation(&conversation).map(|_| conversation)
}

/// The customer of a conversation id (see [`customer_id`]); `None` for anything that is
/// not a conversation id.
pub fn customer_of_conversation(conversation_id: &str) -> Option<String> {
    channel_of_conversation(conversation_id)?;
    Some(format!("cu_{}", conversation_id.strip_prefix("cv_")?))
}

/// The conversation id of a provider user on a channel (stable, derived): `cv_`, the
/// channel id, `_`, and a hash. Carrying the channel lets a send read the conversation and
/// the channel's routing record in one request.
pub fn conversation_id(channel: &ChannelId, external_id: &str) -> String {
    let hash = derived_id("", &["conversation", channel.as_str(), external_id]);
    format!("cv_{channel}_{hash}")
}

/// The channel a conversation id names (see [`conversation_id`]); `None` for anything that
/// is not one.
pub fn channel_of_conversation(id: &str) -> Option<ChannelId> {
    let (channel, hash) = id.strip_prefix("cv_")?.rsplit_once('_')?;
    let hash_ok = hash.len() == 24 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    if !hash_ok {
        return None;
    }
    ChannelId::parse(channel).ok()
}

/// A short preview: the text, else a placeholder for the kind.
pub fn preview(kind: MessageKind, text: Option<&str>) -> String {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => t.chars().take(PREVIEW_CHARS).collect(),
        None => kind.preview().to_owned(),
    }
}

/// `open`, `closed` or `snoozed` (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    /// Being worked.
    Open,
    /// Resolved; the next customer message reopens it.
    Closed,
    /// Put aside until `snoozed_until`; the next customer message reopens it sooner.
    Snoozed,
}

impl ConversationStatus {
    /// Every status, in list order.
    pub const ALL: [Self; 3] = [Self::Open, Self::Closed, Self::Snoozed];

    /// Parses the API/stored name.
    pub fn parse(v: &str) -> Option<Self> {
        match v {
            "open" => Some(Self::Open),
            "closed" => Some(Self::Closed),
            "snoozed" => Some(Self::Snoozed),
            _ => None,
        }
    }

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Snoozed => "snoozed",
        }
    }
}

/// The customer as a conversation shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerRef {
    /// Our id.
    pub id: String,
    /// Profile name, when known.
    pub name: Option<String>,
    /// The provider's id (wa_id, PSID, IGSID, OpenID).
    pub external_id: String,
    /// Whether `name` is an agent's (it then outlives the provider's profile name).
    #[serde(skip)]
    pub name_overridden: bool,
}

/// The bot on a conversation as the API shows it (SPEC §8): `{active, bot_id, name, since,
/// step}`, all `null` but `active` when none runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BotState {
    /// Whether a bot is running (false once its timeout has passed).
    pub active: bool,
    /// The running bot's id.
    pub bot_id: Option<String>,
    /// Its name.
    pub name: Option<String>,
    /// When it started (RFC 3339 UTC).
    #[serde(serialize_with = "crate::domain::time::serialize_optional_rfc3339")]
    pub since: Option<DateTime<Utc>>,
    /// The step it waits at.
    pub step: Option<String>,
}

impl BotState {
    /// The state of `run` at `now`.
    pub fn of(run: &BotRun, now: DateTime<Utc>) -> Self {
        match run.active.as_ref().filter(|a| a.runs_at(now)) {
            Some(a) => Self {
                active: true,
                bot_id: Some(a.bot_id.clone()),
                name: Some(a.name.clone()),
                since: Some(a.since),
                step: Some(a.step.clone()),
            },
            None => Self {
                active: false,
                bot_id: None,
                name: None,
                since: None,
                step: None,
            },
        }
    }
}

/// A conversation (SPEC §5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversation {
    /// Id.
    pub id: String,
    /// Channel type.
    pub channel: ChannelType,
    /// Channel id.
    pub channel_id: String,
    /// open | closed | snoozed (a snooze whose time has passed reads as open).
    pub status: ConversationStatus,
    /// When a snooze ends (RFC 3339 UTC); `null` unless snoozed.
    #[serde(serialize_with = "crate::domain::time::serialize_optional_rfc3339")]
    pub snoozed_until: Option<DateTime<Utc>>,
    /// The customer.
    pub customer: CustomerRef,
    /// Assigned agent.
    pub assignee: Option<String>,
    /// The customer's labels.
    pub labels: Vec<String>,
    /// What may be sent now.
    pub window: Window,
    /// Inbound messages since an agent last read the conversation.
    pub unread_count: u32,
    /// The latest message's time.
    #[serde(serialize_with = "serialize_rfc3339")]
    pub last_message_at: DateTime<Utc>,
    /// The provider time of the customer's latest message (what the window counts from).
    #[serde(serialize_with = "crate::domain::time::serialize_optional_rfc3339")]
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// The latest message, shortened.
    pub preview: String,
    /// Bot state.
    pub bot: BotState,
}

/// Media attached to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaRef {
    /// Our media record, once fetched into S3.
    pub media_id: Option<String>,
    /// Declared MIME type.
    pub mime_type: Option<String>,
    /// Size in bytes, once known.
    pub size: Option<u64>,
    /// Customer media: `fetching` from the provider, `fetched` (see `GET /media/{media_id}`)
    /// or `unavailable` (with `reason`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why it is unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A stored message (SPEC §5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Id.
    pub id: String,
    /// Conversation.
    pub conversation_id: String,
    /// inbound | outbound | system.
    pub direction: Direction,
    /// Normalized kind.
    pub kind: MessageKind,
    /// Text, caption, title or emoji.
    pub text: Option<String>,
    /// Media, if any.
    pub media: Option<MediaRef>,
    /// Delivery status. Inbound and system messages are `delivered` (they reached us).
    pub status: DeliveryStatus,
    /// The provider's id.
    pub provider_message_id: Option<String>,
    /// The provider id of the message this one replies or reacts to.
    pub reply_to: Option<String>,
    /// Why it failed.
    pub error: Option<DeliveryError>,
    /// The provider's time of the message (receive time when it gave none).
    #[serde(serialize_with = "serialize_rfc3339")]
    pub created_at: DateTime<Utc>,
    /// Who sent it (outbound) or caused it (system); `null` for the customer's messages.
    pub actor: Option<crate::domain::actor::Actor>,
    /// A system message's event code (SPEC §7); `null` otherwise.
    pub event: Option<crate::domain::system::SystemEvent>,
    /// A system message's reason code (`bot_exited`: why the bot stopped); absent
    /// otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The provider's own fragment.
    pub raw: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct_per_channel() {
        let a = ChannelId::parse("01A").unwrap();
        let b = ChannelId::parse("01B").unwrap();
        assert_eq!(
            conversation_id(&a, "15551234567"),
            conversation_id(&a, "15551234567")
        );
        assert_ne!(
            conversation_id(&a, "15551234567"),
            conversation_id(&b, "15551234567")
        );
        assert_eq!(
            conversation_of_customer(&customer_id(&a, "x")),
            Some(conversation_id(&a, "x"))
        );
        assert_eq!(conversation_of_customer("cu_nope"), None);
        assert_eq!(conversation_of_customer(&conversation_id(&a, "x")), None);
        assert!(crate::domain::ids::ChannelId::parse(&conversation_id(&a, "x")).is_ok());
        assert!(conversation_id(&a, "x").len() <= 64);
    }

    #[test]
    fn conversation_ids_name_their_channel() {
        let a = ChannelId::parse("01JDX3M5Q8ZJ6Y7K2W9V4T1R0S").unwrap();
        assert_eq!(
            channel_of_conversation(&conversation_id(&a, "155")),
            Some(a.clone())
        );
        let odd = ChannelId::parse("ch_with_underscores").unwrap();
        assert_eq!(
            channel_of_conversation(&conversation_id(&odd, "155")),
            Some(odd)
        );
        assert_eq!(channel_of_conversation("cv_nope"), None);
        assert_eq!(channel_of_conversation("cv_01A_notahash"), None);
        assert_eq!(
            channel_of_conversation("xx_01A_0123456789abcdef01234567"),
            None
        );
    }

    #[test]
    fn preview_is_the_text_shortened_or_the_kind() {
        assert_eq!(preview(MessageKind::Image, None), "[image]");
        assert_eq!(
            preview(MessageKind::Text, Some(&"é".repeat(150)))
                .chars()
                .count(),
            100
        );
        assert_eq!(preview(MessageKind::Image, Some(" caption ")), "caption");
    }
}

#[cfg(test)]
#[path = "conversation_filter_tests.rs"]
mod filter_tests;

/// What is stored for a conversation; [`ConversationState::view`] adds the window at a
/// given time.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationState {
    /// Id.
    pub id: String,
    /// Channel id.
    pub channel_id: String,
    /// The channel settings the window depends on.
    pub policy: WindowPolicy,
    /// open | closed | snoozed, as stored.
    pub status: ConversationStatus,
    /// When a snooze ends.
    pub snoozed_until: Option<DateTime<Utc>>,
    /// The customer.
    pub customer: CustomerRef,
    /// Assigned agent.
    pub assignee: Option<String>,
    /// The customer's labels (the customer item holds the same list).
    pub labels: Vec<String>,
    /// Bumped by every write that moves the conversation between list views (status,
    /// assignee, labels): writers that place its index entries condition on it.
    pub views_version: u64,
    /// The list sort key it was read with (`<last_message_at>#<id>`), if any.
    pub activity: Option<String>,
    /// Unread inbound messages.
    pub unread_count: u32,
    /// Latest message time.
    pub last_message_at: DateTime<Utc>,
    /// Provider time of the customer's latest message.
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// Replies sent since (WeChat quota).
    pub replies_since_inbound: u32,
    /// The provider's id of the customer's latest message (wamid, mid, MsgId): what
    /// `POST /conversations/{id}/read` marks read at the provider.
    pub last_inbound_provider_message_id: Option<String>,
    /// Latest message, shortened.
    pub preview: String,
    /// The bot running on it, if any, and whether bots may start.
    pub bot: BotRun,
    /// Scheduled messages waiting on it that the customer's reply cancels (the webhook's
    /// event says so, and the scheduler cancels them).
    pub reply_cancels: u32,
}

impl ConversationState {
    /// The status as it reads at `now`: a snooze whose time has passed is open.
    pub fn status_at(&self, now: DateTime<Utc>) -> ConversationStatus {
        match (self.status, self.snoozed_until) {
            (ConversationStatus::Snoozed, Some(until)) if until <= now => ConversationStatus::Open,
            (status, _) => status,
        }
    }

    /// The conversation as the API shows it at `now`.
    pub fn view(self, now: DateTime<Utc>) -> Conversation {
        let window = self
            .policy
            .window_at(self.last_inbound_at, self.replies_since_inbound, now);
        let status = self.status_at(now);
        Conversation {
            id: self.id,
            channel: self.policy.channel_type,
            channel_id: self.channel_id,
            status,
            snoozed_until: self
                .snoozed_until
                .filter(|_| status == ConversationStatus::Snoozed),
            customer: self.customer,
            assignee: self.assignee,
            labels: self.labels,
            window,
            unread_count: self.unread_count,
            last_message_at: self.last_message_at,
            last_inbound_at: self.last_inbound_at,
            preview: self.preview,
            bot: BotState::of(&self.bot, now),
        }
    }
}

/// `GET /conversations` filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    /// `status=open|closed`.
    pub status: Option<ConversationStatus>,
    /// `channel=whatsapp|messenger|instagram|wechat` (the type).
    pub channel: Option<ChannelType>,
    /// `channel_id=`.
    pub channel_id: Option<ChannelId>,
    /// `label=`.
    pub label: Option<String>,
    /// `assignee=`: `me` (resolved to the caller), `none` or an agent id.
    pub assignee: Option<AssigneeFilter>,
    /// `bot=active`.
    pub bot: Option<BotFilter>,
}

/// Which conversations a list shows by their bot (`bot=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotFilter {
    /// `bot=active`: a bot runs on it now (its timeout has not passed, as
    /// [`BotState::of`] shows it).
    Active,
}

/// Whose conversations a list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssigneeFilter {
    /// Unassigned ones (`assignee=none`).
    Nobody,
    /// The caller's (`assignee=me`), until resolved with [`ConversationFilter::for_agent`].
    Me,
    /// One agent's.
    Agent(String),
}

impl ConversationFilter {
    /// `assignee=me` made the caller's id.
    pub fn for_agent(mut self, agent_id: &str) -> Self {
        if self.assignee == Some(AssigneeFilter::Me) {
            self.assignee = Some(AssigneeFilter::Agent(agent_id.to_owned()));
        }
        self
    }

    /// Whether a conversation, as read at `now`, belongs in the list.
    pub fn matches(&self, c: &ConversationState, now: DateTime<Utc>) -> bool {
        self.status.is_none_or(|s| c.status_at(now) == s)
            && self.channel.is_none_or(|t| c.policy.channel_type == t)
            && self
                .channel_id
                .as_ref()
                .is_none_or(|id| c.channel_id == id.as_str())
            && self.label.as_ref().is_none_or(|l| c.labels.contains(l))
            && match &self.assignee {
                None | Some(AssigneeFilter::Me) => true,
                Some(AssigneeFilter::Nobody) => c.assignee.is_none(),
                Some(AssigneeFilter::Agent(id)) => c.assignee.as_deref() == Some(id.as_str()),
            }
            && match self.bot {
                None => true,
                Some(BotFilter::Active) => c.bot.active.as_ref().is_some_and(|a| a.runs_at(now)),
            }
    }
}

impl ConversationFilter {
    /// Parses the query values.
    ///
    /// # Errors
    /// 400 `invalid_filter`: an unknown status, channel type or `bot` value (only
    /// `active`), a label that cannot be one, an assignee or label over 100 characters;
    /// 400 `invalid_channel_id`: a channel id that cannot be one.
    pub fn parse(query: impl Fn(&str) -> Option<String>) -> Result<Self, crate::Error> {
        let bad = |what: &str, allowed: &str| {
            crate::Error::bad_request("invalid_filter", format!("{what} must be one of {allowed}"))
        };
        let text = |name: &str| query(name).filter(|v| !v.is_empty());
        let status = match text("status") {
            Some(s) => Some(
                ConversationStatus::parse(&s)
                    .ok_or_else(|| bad("status", "open, closed, snoozed"))?,
            ),
            None => None,
        };
        let channel = match text("channel") {
            Some(c) => Some(
                ChannelType::parse(&c)
                    .ok_or_else(|| bad("channel", "whatsapp, messenger, instagram, wechat"))?,
            ),
            None => None,
        };
        let channel_id = text("channel_id")
            .map(|c| ChannelId::parse(&c))
            .transpose()?;
        let short = |name: &str| -> Result<Option<String>, crate::Error> {
            match text(name) {
                Some(v) if v.chars().count() > 100 => Err(crate::Error::bad_request(
                    "invalid_filter",
                    format!("{name} is longer than 100 characters"),
                )),
                other => Ok(other),
            }
        };
        let assignee = short("assignee")?.map(|a| match a.as_str() {
            "me" => AssigneeFilter::Me,
            "none" => AssigneeFilter::Nobody,
            _ => AssigneeFilter::Agent(a),
        });
        let label = short("label")?
            .map(|l| {
                crate::domain::label::LabelName::parse(&l)
                    .map(|_| l)
                    .map_err(|_| bad("label", "a label name (lowercase letters, digits, - and _)"))
            })
            .transpose()?;
        let bot = match text("bot").as_deref() {
            Some("active") => Some(BotFilter::Active),
            Some(_) => return Err(bad("bot", "active")),
            None => None,
        };
        Ok(Self {
            status,
            channel,
            channel_id,
            label,
            assignee,
            bot,
        })
    }
}
