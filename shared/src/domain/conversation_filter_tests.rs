//! `GET /conversations` filters: parsing the query and matching what is read back.

use std::collections::HashMap;

use chrono::{Duration, TimeZone};

use super::*;
use crate::domain::bot::{ActiveBot, BotRun};
use crate::domain::window::WindowPolicy;

fn parse(query: &[(&str, &str)]) -> Result<ConversationFilter, crate::Error> {
    let query: HashMap<String, String> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ConversationFilter::parse(|name| query.get(name).cloned())
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
}

fn state() -> ConversationState {
    ConversationState {
        id: "cv_ch_0123456789abcdef01234567".into(),
        channel_id: "ch".into(),
        policy: WindowPolicy {
            channel_type: ChannelType::Whatsapp,
            window_hours: 24,
            human_agent: false,
        },
        status: ConversationStatus::Open,
        snoozed_until: None,
        customer: CustomerRef {
            id: "cu_ch_0123456789abcdef01234567".into(),
            name: None,
            external_id: "155".into(),
            name_overridden: false,
        },
        assignee: None,
        labels: vec![],
        views_version: 1,
        activity: None,
        unread_count: 0,
        last_message_at: now(),
        last_inbound_at: None,
        replies_since_inbound: 0,
        last_inbound_provider_message_id: None,
        preview: String::new(),
        bot: BotRun::default(),
        reply_cancels: 0,
    }
}

/// A conversation whose bot asked `minutes_ago` and waits `timeout_minutes`.
fn with_bot(minutes_ago: i64, timeout_minutes: u32) -> ConversationState {
    let asked = now() - Duration::minutes(minutes_ago);
    ConversationState {
        bot: BotRun {
            active: Some(ActiveBot {
                bot_id: "welcome".into(),
                name: "Welcome".into(),
                since: asked - Duration::minutes(1),
                step: "menu".into(),
                asked: 1,
                waiting_since: asked,
                timeout_minutes,
            }),
            blocked: false,
            version: 2,
        },
        ..state()
    }
}

#[test]
fn bot_active_is_the_only_bot_filter() {
    assert_eq!(
        parse(&[("bot", "active")]).unwrap().bot,
        Some(BotFilter::Active)
    );
    assert_eq!(parse(&[]).unwrap().bot, None);
    assert_eq!(parse(&[("bot", "")]).unwrap().bot, None, "empty is absent");
    for bad in ["ACTIVE", "inactive", "none", "true", "active "] {
        let error = parse(&[("bot", bad)]).unwrap_err();
        assert!(
            matches!(
                error,
                crate::Error::BadRequest {
                    code: "invalid_filter",
                    ..
                }
            ),
            "{bad}: a 400 invalid_filter, not {error:?}"
        );
    }
}

#[test]
fn bot_combines_with_the_other_filters() {
    let filter = parse(&[
        ("bot", "active"),
        ("status", "open"),
        ("assignee", "none"),
        ("channel", "whatsapp"),
    ])
    .unwrap();
    assert_eq!(
        filter,
        ConversationFilter {
            status: Some(ConversationStatus::Open),
            channel: Some(ChannelType::Whatsapp),
            assignee: Some(AssigneeFilter::Nobody),
            bot: Some(BotFilter::Active),
            ..ConversationFilter::default()
        }
    );
}

#[test]
fn bot_active_keeps_only_conversations_whose_bot_runs_now() {
    let active = ConversationFilter {
        bot: Some(BotFilter::Active),
        ..ConversationFilter::default()
    };
    assert!(active.matches(&with_bot(5, 30), now()));
    assert!(!active.matches(&state(), now()), "no bot");
    assert!(
        !active.matches(&with_bot(30, 30), now()),
        "the timeout is reached: it no longer runs"
    );
    assert!(!active.matches(&with_bot(90, 30), now()));
    // The same rule the conversation shows.
    for c in [with_bot(5, 30), with_bot(30, 30), state()] {
        assert_eq!(
            active.matches(&c, now()),
            BotState::of(&c.bot, now()).active
        );
    }
    // Without the filter a bot changes nothing.
    assert!(ConversationFilter::default().matches(&with_bot(90, 30), now()));
    assert!(ConversationFilter::default().matches(&with_bot(5, 30), now()));
}

#[test]
fn bot_active_is_checked_beside_status_and_assignee() {
    let filter = ConversationFilter {
        bot: Some(BotFilter::Active),
        status: Some(ConversationStatus::Open),
        assignee: Some(AssigneeFilter::Agent("ag1".into())),
        ..ConversationFilter::default()
    };
    let mine = ConversationState {
        assignee: Some("ag1".into()),
        ..with_bot(1, 30)
    };
    assert!(filter.matches(&mine, now()));
    let closed = ConversationState {
        status: ConversationStatus::Closed,
        ..mine.clone()
    };
    assert!(!filter.matches(&closed, now()));
    let theirs = ConversationState {
        assignee: Some("ag2".into()),
        ..mine.clone()
    };
    assert!(!filter.matches(&theirs, now()));
    let no_bot = ConversationState {
        bot: BotRun::default(),
        reply_cancels: 0,
        ..mine
    };
    assert!(!filter.matches(&no_bot, now()));
}
