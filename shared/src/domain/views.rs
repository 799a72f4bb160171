//! Conversation list views: the index partitions a conversation is listed in, and which
//! of them a list filter reads (SPEC §7: each filter is served by an index).
//!
//! Every view is sorted by the same key, `<last_message_at>#<id>`, newest first, and split
//! into [`SHARDS`] partitions by a hash of the conversation id, so that no partition takes
//! more than its share of a busy tenant's writes (see `docs/data-model.md`, "Write
//! sharding"). A list reads the shards of one view and merges them.
//!
//! Views of the conversation item: all, by status, by assignee (any status and per
//! status), by channel (any status and per status). A label is listed through one
//! membership item per label of the conversation's customer (any status and per status).
//! While a bot runs on a conversation it is also in the bot view, a sparse index only
//! such conversations carry a key of.
//! Filters beyond the view's own (e.g. a label and an assignee) are checked on the
//! conversations read back, and the list reads on until its page is full.

use sha2::{Digest, Sha256};

use crate::domain::conversation::{AssigneeFilter, ConversationFilter, ConversationStatus};

/// Partitions per view. A key change in an index costs two writes (delete, put): 3,000
/// messages/s to one tenant are 6,000 index writes/s per view, 750 per shard, under
/// DynamoDB's 1,000 writes/s per partition.
pub const SHARDS: u8 = 8;

/// The shard of a conversation: a hash of its id, so parallel writes spread evenly.
pub fn shard(conversation_id: &str) -> u8 {
    Sha256::digest(conversation_id.as_bytes())[0] % SHARDS
}

/// One list view: a dimension, its value, and optionally a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// Every conversation.
    All,
    /// By status.
    Status(ConversationStatus),
    /// By assignee (`None`: unassigned), optionally one status.
    Assignee(Option<String>, Option<ConversationStatus>),
    /// By channel id, optionally one status.
    Channel(String, Option<ConversationStatus>),
    /// By label (membership items), optionally one status.
    Label(String, Option<ConversationStatus>),
    /// Conversations with a bot running (a sparse index: only they carry its key).
    BotActive,
}

/// Which global secondary index a view lives in, and its partition key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewIndex {
    /// Index name.
    pub index: &'static str,
    /// Partition key attribute.
    pub attribute: &'static str,
}

const fn index(index: &'static str, attribute: &'static str) -> ViewIndex {
    ViewIndex { index, attribute }
}

impl View {
    /// Where the view is kept. Label views live on membership items, which reuse the
    /// first two indexes (their keys never collide with a conversation's).
    pub fn index(&self) -> ViewIndex {
        match self {
            Self::All | Self::Label(_, None) => index("gsi1", "gsi1pk"),
            Self::Status(_) | Self::Label(_, Some(_)) => index("gsi2", "gsi2pk"),
            Self::Assignee(_, None) => index("gsi3", "gsi3pk"),
            Self::Assignee(_, Some(_)) => index("gsi4", "gsi4pk"),
            Self::Channel(_, None) => index("gsi5", "gsi5pk"),
            Self::Channel(_, Some(_)) => index("gsi6", "gsi6pk"),
            Self::BotActive => index("gsi10", "gsi10pk"),
        }
    }

    /// The status the view is limited to, if any.
    pub fn status(&self) -> Option<ConversationStatus> {
        match self {
            Self::All | Self::BotActive => None,
            Self::Status(s) => Some(*s),
            Self::Assignee(_, s) | Self::Channel(_, s) | Self::Label(_, s) => *s,
        }
    }

    /// Whether the view lists membership items (one per label) rather than conversations.
    pub fn is_label(&self) -> bool {
        matches!(self, Self::Label(..))
    }
}

/// The six views a conversation item is listed in.
pub fn conversation_views(
    status: ConversationStatus,
    assignee: Option<&str>,
    channel_id: &str,
) -> [View; 6] {
    let assignee = assignee.map(str::to_owned);
    [
        View::All,
        View::Status(status),
        View::Assignee(assignee.clone(), None),
        View::Assignee(assignee, Some(status)),
        View::Channel(channel_id.to_owned(), None),
        View::Channel(channel_id.to_owned(), Some(status)),
    ]
}

/// The two views a label membership item is listed in.
pub fn label_views(label: &str, status: ConversationStatus) -> [View; 2] {
    [
        View::Label(label.to_owned(), None),
        View::Label(label.to_owned(), Some(status)),
    ]
}

/// The views a list reads (their shards are merged): the most selective filter picks the
/// view (`bot=active`, then label, then assignee, then channel id, then channel type over
/// the tenant's channels of that type, then status); the others are checked on the
/// conversations read. `channels_of_type` is needed only when
/// [`needs_channels_of_type`] says so.
///
/// `bot=active` reads the sparse bot view alone: only conversations with a running bot
/// carry its key, so it is the rarest whatever the other filters. Its entries include bots
/// whose timeout has passed until the runner takes them out: the filter, checked on what
/// is read, drops those.
///
/// `assignee=me` must be resolved first ([`ConversationFilter::for_agent`]).
///
/// `status=open` reads the open views only: a snooze ends by its own schedule, which
/// moves the conversation back to open (until it fires, a passed snooze reads as open on
/// the conversation but is listed under `snoozed`).
pub fn plan(filter: &ConversationFilter, channels_of_type: &[String]) -> Vec<View> {
    let statuses: Vec<Option<ConversationStatus>> = vec![filter.status];
    let per_status = |view: &dyn Fn(Option<ConversationStatus>) -> View| -> Vec<View> {
        statuses.iter().map(|s| view(*s)).collect()
    };
    if filter.bot.is_some() {
        return vec![View::BotActive];
    }
    if let Some(label) = &filter.label {
        return per_status(&|s| View::Label(label.clone(), s));
    }
    match &filter.assignee {
        Some(AssigneeFilter::Agent(id)) => {
            return per_status(&|s| View::Assignee(Some(id.clone()), s));
        }
        Some(AssigneeFilter::Nobody) => return per_status(&|s| View::Assignee(None, s)),
        Some(AssigneeFilter::Me) | None => {}
    }
    if let Some(id) = &filter.channel_id {
        return per_status(&|s| View::Channel(id.to_string(), s));
    }
    if filter.channel.is_some() {
        return channels_of_type
            .iter()
            .flat_map(|id| per_status(&|s| View::Channel(id.clone(), s)))
            .collect();
    }
    match filter.status {
        Some(_) => per_status(&|s| s.map_or(View::All, View::Status)),
        None => vec![View::All],
    }
}

/// Whether [`plan`] reads the views of the tenant's channels of one type (a `channel=`
/// filter that no more selective filter outranks), so the caller must list them first.
pub fn needs_channels_of_type(filter: &ConversationFilter) -> bool {
    filter.channel.is_some()
        && filter.channel_id.is_none()
        && filter.bot.is_none()
        && filter.label.is_none()
        && matches!(filter.assignee, None | Some(AssigneeFilter::Me))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::channel::ChannelType;
    use crate::domain::conversation::BotFilter;
    use crate::domain::ids::ChannelId;

    #[test]
    fn shards_spread_ids_evenly() {
        let mut counts = [0u32; SHARDS as usize];
        for i in 0..8000 {
            counts[usize::from(shard(&format!("cv_ch_{i:024x}")))] += 1;
        }
        assert!(counts.iter().all(|c| (850..1150).contains(c)), "{counts:?}");
    }

    #[test]
    fn the_rarest_filter_picks_the_view() {
        let filter = ConversationFilter {
            status: Some(ConversationStatus::Closed),
            label: Some("vip".into()),
            assignee: Some(AssigneeFilter::Nobody),
            ..ConversationFilter::default()
        };
        assert_eq!(
            plan(&filter, &[]),
            vec![View::Label("vip".into(), Some(ConversationStatus::Closed))]
        );
        let mine = ConversationFilter {
            assignee: Some(AssigneeFilter::Me),
            ..ConversationFilter::default()
        }
        .for_agent("ag1");
        assert_eq!(
            plan(&mine, &[]),
            vec![View::Assignee(Some("ag1".into()), None)]
        );
        let by_type = ConversationFilter {
            channel: Some(ChannelType::Whatsapp),
            ..ConversationFilter::default()
        };
        assert_eq!(
            plan(&by_type, &["a".into(), "b".into()]),
            vec![
                View::Channel("a".into(), None),
                View::Channel("b".into(), None)
            ]
        );
        assert!(plan(&by_type, &[]).is_empty());
        assert_eq!(plan(&ConversationFilter::default(), &[]), vec![View::All]);
        let open = ConversationFilter {
            status: Some(ConversationStatus::Open),
            ..ConversationFilter::default()
        };
        assert_eq!(
            plan(&open, &[]),
            vec![View::Status(ConversationStatus::Open)],
            "snoozes end by their schedule: open lists read the open views alone"
        );
    }

    #[test]
    fn bot_active_reads_the_bot_view_alone_whatever_else_is_asked() {
        let bot = || ConversationFilter {
            bot: Some(BotFilter::Active),
            ..ConversationFilter::default()
        };
        assert_eq!(plan(&bot(), &[]), vec![View::BotActive]);
        let everything = ConversationFilter {
            status: Some(ConversationStatus::Open),
            label: Some("vip".into()),
            assignee: Some(AssigneeFilter::Agent("ag1".into())),
            channel: Some(ChannelType::Whatsapp),
            channel_id: Some(ChannelId::parse("ch1").unwrap()),
            ..bot()
        };
        assert_eq!(
            plan(&everything, &["a".into()]),
            vec![View::BotActive],
            "one view, not one per status (snoozed included): status is checked on what is read"
        );
        let by_type = ConversationFilter {
            channel: Some(ChannelType::Wechat),
            ..bot()
        };
        assert!(!needs_channels_of_type(&by_type));
        assert_eq!(plan(&by_type, &[]), vec![View::BotActive]);
        assert_eq!(View::BotActive.status(), None);
        assert!(!View::BotActive.is_label(), "it lists conversation items");
    }

    #[test]
    fn channels_of_a_type_are_listed_only_when_the_plan_reads_them() {
        let by_type = ConversationFilter {
            channel: Some(ChannelType::Whatsapp),
            ..ConversationFilter::default()
        };
        assert!(needs_channels_of_type(&by_type));
        assert!(needs_channels_of_type(&ConversationFilter {
            status: Some(ConversationStatus::Closed),
            ..by_type.clone()
        }));
        for outranked in [
            ConversationFilter {
                label: Some("vip".into()),
                ..by_type.clone()
            },
            ConversationFilter {
                assignee: Some(AssigneeFilter::Nobody),
                ..by_type.clone()
            },
            ConversationFilter {
                channel_id: Some(ChannelId::parse("ch1").unwrap()),
                ..by_type.clone()
            },
        ] {
            assert!(!needs_channels_of_type(&outranked), "{outranked:?}");
            assert!(
                !plan(&outranked, &["x".into()]).contains(&View::Channel("x".into(), None)),
                "{outranked:?}"
            );
        }
        assert_eq!(
            plan(&by_type, &["x".into()]),
            vec![View::Channel("x".into(), None)]
        );
        assert!(!needs_channels_of_type(&ConversationFilter::default()));
    }

    #[test]
    fn the_bot_view_has_an_index_of_its_own() {
        let mut indexes: Vec<_> = conversation_views(ConversationStatus::Open, None, "ch")
            .iter()
            .map(|v| v.index())
            .collect();
        indexes.extend(label_views("vip", ConversationStatus::Open).map(|v| v.index()));
        assert!(!indexes.contains(&View::BotActive.index()));
    }

    #[test]
    fn a_conversation_sits_in_six_distinct_indexes() {
        let views = conversation_views(ConversationStatus::Open, None, "ch");
        let mut indexes: Vec<_> = views.iter().map(|v| v.index().index).collect();
        indexes.dedup();
        assert_eq!(indexes.len(), 6);
        let labels = label_views("vip", ConversationStatus::Open);
        assert_ne!(labels[0].index(), labels[1].index());
    }
}
