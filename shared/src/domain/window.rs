//! The customer service window (SPEC §4): what an agent may send, and until when.
//!
//! The window opens or refreshes at each inbound customer message, measured from the
//! provider's own timestamp of that message.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::domain::channel::ChannelType;

/// Free-form replies are allowed this long after the customer's last message (Meta).
pub const STANDARD_WINDOW_HOURS: i64 = 24;
/// Messenger/Instagram: a human agent may answer (tagged HUMAN_AGENT) up to 7 days.
pub const HUMAN_AGENT_WINDOW_DAYS: i64 = 7;
/// WeChat: customer-service messages allowed per customer message (errors 45015/45047).
pub const WECHAT_REPLIES_PER_MESSAGE: u32 = 5;

/// What the chatroom may send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowMode {
    /// Any message.
    FreeForm,
    /// Messenger/Instagram 24 h–7 d: only a human agent's reply, tagged HUMAN_AGENT.
    HumanAgent,
    /// WhatsApp outside 24 h: approved templates only.
    TemplateOnly,
    /// Nothing can be sent.
    Closed,
}

/// The window as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Whether a non-template message can be sent now.
    pub open: bool,
    /// When the current mode ends (`null` when nothing is open).
    #[serde(serialize_with = "crate::domain::time::serialize_optional_rfc3339")]
    pub expires_at: Option<DateTime<Utc>>,
    /// What may be sent.
    pub mode: WindowMode,
}

/// The channel settings the window depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPolicy {
    /// Platform.
    pub channel_type: ChannelType,
    /// Window length in hours (24; WeChat configurable).
    pub window_hours: u8,
    /// Messenger/Instagram HUMAN_AGENT permission.
    pub human_agent: bool,
}

impl WindowPolicy {
    /// The window at `now`, given the provider timestamp of the customer's last message
    /// and, for WeChat, how many replies were sent since.
    ///
    /// Every bound is exclusive: at exactly 24 h the free-form window is over.
    pub fn window_at(
        &self,
        last_inbound_at: Option<DateTime<Utc>>,
        replies_since_inbound: u32,
        now: DateTime<Utc>,
    ) -> Window {
        let closed = |mode| Window {
            open: false,
            expires_at: None,
            mode,
        };
        let outside = match self.channel_type {
            ChannelType::Whatsapp => WindowMode::TemplateOnly,
            _ => WindowMode::Closed,
        };
        let Some(last) = last_inbound_at else {
            return closed(outside);
        };
        let hours = match self.channel_type {
            ChannelType::Wechat => i64::from(self.window_hours),
            _ => STANDARD_WINDOW_HOURS,
        };
        let free_until = last + Duration::hours(hours);
        if now < free_until {
            if self.channel_type == ChannelType::Wechat
                && replies_since_inbound >= WECHAT_REPLIES_PER_MESSAGE
            {
                return closed(WindowMode::Closed);
            }
            return Window {
                open: true,
                expires_at: Some(free_until),
                mode: WindowMode::FreeForm,
            };
        }
        let tagged = matches!(
            self.channel_type,
            ChannelType::Messenger | ChannelType::Instagram
        ) && self.human_agent;
        let human_until = last + Duration::days(HUMAN_AGENT_WINDOW_DAYS);
        if tagged && now < human_until {
            return Window {
                open: true,
                expires_at: Some(human_until),
                mode: WindowMode::HumanAgent,
            };
        }
        closed(outside)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn policy(channel_type: ChannelType, window_hours: u8, human_agent: bool) -> WindowPolicy {
        WindowPolicy {
            channel_type,
            window_hours,
            human_agent,
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn whatsapp_is_free_form_until_just_before_24_hours_then_template_only() {
        let p = policy(ChannelType::Whatsapp, 24, false);
        let last = t0();
        let just_before = last + Duration::hours(24) - Duration::milliseconds(1);
        assert_eq!(
            p.window_at(Some(last), 0, just_before).mode,
            WindowMode::FreeForm
        );
        let at = p.window_at(Some(last), 0, last + Duration::hours(24));
        assert_eq!(at.mode, WindowMode::TemplateOnly);
        assert!(!at.open);
    }

    #[test]
    fn whatsapp_without_any_customer_message_is_template_only() {
        let w = policy(ChannelType::Whatsapp, 24, false).window_at(None, 0, t0());
        assert_eq!(
            (w.open, w.mode, w.expires_at),
            (false, WindowMode::TemplateOnly, None)
        );
    }

    #[test]
    fn messenger_moves_to_human_agent_after_24_hours_and_closes_at_7_days() {
        let p = policy(ChannelType::Messenger, 24, true);
        let last = t0();
        let w = p.window_at(Some(last), 0, last + Duration::hours(24));
        assert_eq!(w.mode, WindowMode::HumanAgent);
        assert_eq!(w.expires_at, Some(last + Duration::days(7)));
        let w = p.window_at(Some(last), 0, last + Duration::days(7));
        assert_eq!((w.open, w.mode), (false, WindowMode::Closed));
    }

    #[test]
    fn instagram_without_the_human_agent_flag_closes_at_24_hours() {
        let p = policy(ChannelType::Instagram, 24, false);
        let last = t0();
        let w = p.window_at(Some(last), 0, last + Duration::hours(25));
        assert_eq!(w.mode, WindowMode::Closed);
        let flagged = policy(ChannelType::Instagram, 24, true);
        let w = flagged.window_at(Some(last), 0, last + Duration::hours(25));
        assert_eq!(w.mode, WindowMode::HumanAgent);
    }

    #[test]
    fn wechat_window_length_is_the_channel_setting() {
        let p = policy(ChannelType::Wechat, 48, false);
        let last = t0();
        let w = p.window_at(Some(last), 0, last + Duration::hours(47));
        assert_eq!(w.mode, WindowMode::FreeForm);
        assert_eq!(w.expires_at, Some(last + Duration::hours(48)));
        assert_eq!(
            p.window_at(Some(last), 0, last + Duration::hours(48)).mode,
            WindowMode::Closed
        );
    }

    #[test]
    fn wechat_closes_after_five_replies_to_one_customer_message() {
        let p = policy(ChannelType::Wechat, 24, false);
        let last = t0();
        let now = last + Duration::minutes(5);
        assert!(p.window_at(Some(last), 4, now).open);
        let w = p.window_at(Some(last), 5, now);
        assert_eq!((w.open, w.mode), (false, WindowMode::Closed));
    }

    fn any_type() -> impl Strategy<Value = ChannelType> {
        prop_oneof![
            Just(ChannelType::Whatsapp),
            Just(ChannelType::Messenger),
            Just(ChannelType::Instagram),
            Just(ChannelType::Wechat),
        ]
    }

    proptest! {
        #[test]
        fn free_form_exactly_while_elapsed_is_under_the_window(
            channel_type in any_type(),
            hours in 1u8..=48,
            human_agent in any::<bool>(),
            last_secs in 1_600_000_000i64..2_000_000_000,
            elapsed_ms in 0i64..(10 * 24 * 3600 * 1000),
        ) {
            let p = policy(channel_type, hours, human_agent);
            let last = DateTime::from_timestamp(last_secs, 0).unwrap();
            let now = last + Duration::milliseconds(elapsed_ms);
            let w = p.window_at(Some(last), 0, now);
            let limit_ms = match channel_type {
                ChannelType::Wechat => i64::from(hours) * 3_600_000,
                _ => 24 * 3_600_000,
            };
            prop_assert_eq!(w.mode == WindowMode::FreeForm, elapsed_ms < limit_ms);
            // Whatever is open expires in the future; nothing open has no expiry.
            prop_assert_eq!(w.open, w.expires_at.is_some());
            if let Some(e) = w.expires_at {
                prop_assert!(e > now);
            }
            let human = matches!(channel_type, ChannelType::Messenger | ChannelType::Instagram)
                && human_agent
                && elapsed_ms >= limit_ms
                && elapsed_ms < 7 * 24 * 3_600_000;
            prop_assert_eq!(w.mode == WindowMode::HumanAgent, human);
        }

        #[test]
        fn a_later_customer_message_never_shortens_the_window(
            channel_type in any_type(),
            human_agent in any::<bool>(),
            first in 0i64..1_000_000,
            gap in 0i64..1_000_000,
            probe in 0i64..3_000_000,
        ) {
            let p = policy(channel_type, 24, human_agent);
            let base = t0();
            let earlier = base + Duration::seconds(first);
            let later = earlier + Duration::seconds(gap);
            let now = base + Duration::seconds(probe);
            let a = p.window_at(Some(earlier), 0, now);
            let b = p.window_at(Some(later), 0, now);
            prop_assert!(!a.open || b.open);
        }
    }
}
