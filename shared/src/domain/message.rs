//! Messages: kinds, directions, delivery statuses and what a failure means.

use serde::{Deserialize, Serialize};

/// Who a message is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer.
    Inbound,
    /// From the business (our agents, or replies typed in Meta's own inbox).
    Outbound,
    /// Internal note for agents, never sent (assignment, failures, window changes, ...).
    System,
}

impl Direction {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
            Self::System => "system",
        }
    }
}

/// The normalized kind of a message, whatever the provider called it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Text (emoji included).
    Text,
    /// Image.
    Image,
    /// Audio or voice note.
    Audio,
    /// Video.
    Video,
    /// Document.
    File,
    /// Sticker.
    Sticker,
    /// A shared location.
    Location,
    /// Shared contact cards.
    Contacts,
    /// A reply to interactive buttons or a list.
    Interactive,
    /// A template quick-reply button press.
    Button,
    /// A reaction (emoji) to another message.
    Reaction,
    /// A catalog order.
    Order,
    /// A provider system notice (e.g. the customer changed number).
    System,
    /// A Messenger/Instagram postback (button or menu).
    Postback,
    /// The customer arrived through a referral (ad, link, QR).
    Referral,
    /// An Instagram story mention.
    StoryMention,
    /// A WeChat event (subscribe, unsubscribe, menu click, scan).
    Event,
    /// A WeChat link share.
    Link,
    /// A template message.
    Template,
    /// A call invitation.
    CallInvitation,
    /// Something this version does not understand; the raw payload is kept.
    Unsupported,
}

impl MessageKind {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
            Self::Audio => "audio",
            Self::Video => "video",
            Self::File => "file",
            Self::Sticker => "sticker",
            Self::Location => "location",
            Self::Contacts => "contacts",
            Self::Interactive => "interactive",
            Self::Button => "button",
            Self::Reaction => "reaction",
            Self::Order => "order",
            Self::System => "system",
            Self::Postback => "postback",
            Self::Referral => "referral",
            Self::StoryMention => "story_mention",
            Self::Event => "event",
            Self::Link => "link",
            Self::Template => "template",
            Self::CallInvitation => "call_invitation",
            Self::Unsupported => "unsupported",
        }
    }

    /// A short placeholder for conversation previews when there is no text.
    pub fn preview(self) -> &'static str {
        match self {
            Self::Text => "",
            Self::Image => "[image]",
            Self::Audio => "[audio]",
            Self::Video => "[video]",
            Self::File => "[file]",
            Self::Sticker => "[sticker]",
            Self::Location => "[location]",
            Self::Contacts => "[contacts]",
            Self::Interactive | Self::Button | Self::Postback => "[reply]",
            Self::Reaction => "[reaction]",
            Self::Order => "[order]",
            Self::System => "[system]",
            Self::Referral => "[referral]",
            Self::StoryMention => "[story mention]",
            Self::Event => "[event]",
            Self::Link => "[link]",
            Self::Template => "[template]",
            Self::CallInvitation => "[call]",
            Self::Unsupported => "[unsupported message]",
        }
    }
}

/// Delivery status of an outbound message. Moves only forward:
/// pending < sent < delivered < read, and failed is final unless a read arrives
/// (the customer read it after all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Accepted by us, not yet by the provider.
    Pending,
    /// Accepted by the provider.
    Sent,
    /// On the customer's device.
    Delivered,
    /// Seen by the customer.
    Read,
    /// Not delivered; see the error.
    Failed,
}

impl DeliveryStatus {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
        }
    }

    /// Parses a provider or stored status name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "pending" => Some(Self::Pending),
            "sent" => Some(Self::Sent),
            "delivered" => Some(Self::Delivered),
            "read" => Some(Self::Read),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    /// Order used by conditional writes: a status replaces another only with a higher rank.
    /// failed (3) sits above delivered so it sticks, below read so a read still wins.
    pub fn rank(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Sent => 1,
            Self::Delivered => 2,
            Self::Failed => 3,
            Self::Read => 4,
        }
    }

    /// Whether `next` may replace `self`.
    pub fn can_become(self, next: Self) -> bool {
        next.rank() > self.rank()
    }
}

/// Why a message failed, in words an agent can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryError {
    /// The provider's code (e.g. `131047`).
    pub code: String,
    /// What happened.
    pub reason: String,
    /// What to do about it.
    pub hint: String,
}

impl DeliveryError {
    /// Explains a provider error code (SPEC §4). Unknown codes keep the provider's own title.
    pub fn explain(code: &str, provider_title: Option<&str>) -> Self {
        let (reason, hint) = match code {
            "131047" | "470" => (
                "More than 24 hours have passed since the customer last wrote.",
                "Send an approved template message to reopen the conversation.",
            ),
            "131053" => (
                "The provider could not use our media: too large, wrong type or codec, or the link was unreachable.",
                "Fix the file (type, size, codec) and send it again; retrying the same file will fail the same way.",
            ),
            "131052" => (
                "The customer's media could not be downloaded.",
                "Ask the customer to send it again.",
            ),
            "131026" => (
                "The message could not be delivered: the number may not be on WhatsApp, the app may be outdated, or the customer has not accepted the terms.",
                "Check the number at wa.me/<number> and ask the customer to update WhatsApp.",
            ),
            "130429" | "131056" => (
                "Rate limited by the provider.",
                "It will be retried later; avoid bursts to the same customer.",
            ),
            "131051" => (
                "This message type is not supported by the provider.",
                "Send it as another kind (for example a file instead of this format).",
            ),
            "132000" => (
                "The template's parameter count does not match its definition.",
                "Give exactly as many parameters as the template body has placeholders.",
            ),
            "132001" => (
                "The template does not exist in this language.",
                "Check the template name and language, or sync templates.",
            ),
            "132015" => (
                "The template is paused for low quality.",
                "Edit the template or use another one.",
            ),
            "132016" => (
                "The template is disabled.",
                "Use another approved template.",
            ),
            "190" => (
                "The channel's access token is invalid or has expired.",
                "Reconnect the channel with a new access token.",
            ),
            "10" | "200" | "230" => (
                "The app lacks the permission this message needs.",
                "Check the app's permissions for this channel (for example Human Agent).",
            ),
            "551" | "2018001" | "40003" => (
                "The customer cannot receive messages from this account now.",
                "Wait for the customer to write again.",
            ),
            "2018278" => (
                "The message was outside the allowed messaging window.",
                "Wait for the customer to write again.",
            ),
            "outcome_unknown" => (
                "The provider did not answer in time; it may have accepted the message.",
                "Do not resend yet: the status will update when the provider reports it.",
            ),
            "send_timeout" => (
                "The message was not sent: the time for this send ran out before it could go.",
                "Send it again.",
            ),
            "unexpected_answer" => (
                "The provider gave an answer this version does not understand.",
                "Check the conversation before sending again.",
            ),
            "retries_exhausted" => (
                "The provider kept failing temporarily (rate limit or outage).",
                "Send it again in a few minutes.",
            ),
            "45015" => (
                "WeChat's reply window has passed since the customer last wrote.",
                "Wait for the customer to write again.",
            ),
            "45047" => (
                "WeChat allows at most 5 replies per customer message.",
                "Wait for the customer to write again.",
            ),
            _ => {
                return Self {
                    code: code.to_owned(),
                    reason: provider_title
                        .filter(|t| !t.is_empty())
                        .unwrap_or("The provider reported an error.")
                        .to_owned(),
                    hint: "See the provider's error code reference; retry only if it is temporary."
                        .to_owned(),
                };
            }
        };
        Self {
            code: code.to_owned(),
            reason: reason.to_owned(),
            hint: hint.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_forward() {
        use DeliveryStatus::*;
        assert!(Sent.can_become(Delivered));
        assert!(Delivered.can_become(Read));
        assert!(Sent.can_become(Read));
        assert!(!Read.can_become(Delivered));
        assert!(!Delivered.can_become(Sent));
        assert!(!Sent.can_become(Sent));
    }

    #[test]
    fn failed_is_final_unless_read_arrives() {
        use DeliveryStatus::*;
        assert!(!Failed.can_become(Sent));
        assert!(!Failed.can_become(Delivered));
        assert!(Failed.can_become(Read));
        assert!(Sent.can_become(Failed));
    }

    #[test]
    fn window_errors_tell_the_agent_to_send_a_template() {
        let e = DeliveryError::explain("131047", Some("Re-engagement message"));
        assert!(e.hint.contains("template"));
        assert_eq!(e.code, "131047");
        assert_eq!(DeliveryError::explain("470", None).hint, e.hint);
    }

    #[test]
    fn unknown_codes_keep_the_provider_title() {
        let e = DeliveryError::explain("999999", Some("Something odd"));
        assert_eq!(e.reason, "Something odd");
    }
}
