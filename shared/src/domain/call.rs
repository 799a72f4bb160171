//! Video calls (SPEC §12): a call room between an agent and a customer, its life
//! (`ringing` → `active` → `ended`, or `missed`), the two role tokens, and the signaling
//! wire format relayed between the two browsers. Pure: the service in
//! [`crate::service::calls`] stores and relays.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::actor::Actor;
use crate::domain::system::{SystemEvent, SystemMessage};

/// Largest signaling frame, in bytes: API Gateway WebSocket APIs take frames of at most
/// 32 KB (AWS, "Amazon API Gateway quotas", WebSocket frame size).
pub const MAX_FRAME_BYTES: usize = 32 * 1024;
/// How long a call waits for both parties before it is missed, in minutes (a product
/// choice; the links stop working then).
pub const RING_MINUTES: i64 = 30;
/// Longest a call may last once active, in hours (the connections' TTL; API Gateway closes
/// a WebSocket connection after 2 hours anyway: AWS, "Amazon API Gateway quotas").
pub const MAX_CALL_HOURS: i64 = 2;

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// Waiting for both parties.
    Ringing,
    /// Both joined.
    Active,
    /// One hung up or left.
    Ended,
    /// Nobody (or only one party) joined before `expires_at`.
    Missed,
}

impl CallStatus {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ringing => "ringing",
            Self::Active => "active",
            Self::Ended => "ended",
            Self::Missed => "missed",
        }
    }
}

/// A party of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The agent who started it.
    Agent,
    /// The customer.
    Customer,
}

impl Role {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Customer => "customer",
        }
    }

    /// The other party.
    pub fn other(self) -> Self {
        match self {
            Self::Agent => Self::Customer,
            Self::Customer => Self::Agent,
        }
    }

    /// Parses the API name.
    pub fn parse(v: &str) -> Option<Self> {
        match v {
            "agent" => Some(Self::Agent),
            "customer" => Some(Self::Customer),
            _ => None,
        }
    }
}

/// A call as stored and shown (`GET /calls/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// `ca_<ULID>`.
    pub id: String,
    /// The customer's conversation.
    pub conversation_id: String,
    /// Where it is.
    pub status: CallStatus,
    /// The agent who started it.
    pub created_by: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// When the links stop working and a call nobody joined is missed (RFC 3339 UTC).
    pub expires_at: String,
    /// When both parties had joined.
    pub started_at: Option<String>,
    /// When it ended.
    pub ended_at: Option<String>,
    /// Seconds from start to end.
    pub duration_s: Option<i64>,
    /// The message carrying the customer's link.
    pub message_id: Option<String>,
}

/// A new call id.
pub fn call_id() -> String {
    format!("ca_{}", ulid::Ulid::new())
}

/// Whether `id` can be a call id.
pub fn is_call_id(id: &str) -> bool {
    id.strip_prefix("ca_")
        .is_some_and(|u| ulid::Ulid::from_string(u).is_ok())
}

/// When a call created at `now` expires.
pub fn expires_at(now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::minutes(RING_MINUTES)
}

/// Seconds between two stored times (0 when unreadable or reversed).
pub fn duration_s(started_at: Option<&str>, ended: DateTime<Utc>) -> i64 {
    started_at
        .and_then(crate::domain::time::parse_rfc3339)
        .map_or(0, |s| (ended - s).num_seconds().max(0))
}

/// What a party sends: `{"action": "signal", "type": …, "payload": …}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClientFrame {
    /// The route (`signal`).
    pub action: String,
    /// `offer`, `answer`, `candidate` or `bye`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The SDP or ICE candidate (anything JSON).
    #[serde(default)]
    pub payload: Value,
}

/// A signal a party sent, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// `offer`, `answer`, `candidate`, `bye`.
    pub kind: &'static str,
    /// As sent.
    pub payload: Value,
}

/// Why a frame was refused (told to the sender; nothing relayed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Over [`MAX_FRAME_BYTES`].
    #[error("frames are at most 32 KB")]
    TooLarge,
    /// Not `{"action": "signal", "type", "payload"}`.
    #[error(
        "send {{\"action\": \"signal\", \"type\": \"offer\"|\"answer\"|\"candidate\"|\"bye\", \"payload\": …}}"
    )]
    Malformed,
}

impl FrameError {
    /// The error code told to the sender.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge => "frame_too_large",
            Self::Malformed => "invalid_signal",
        }
    }
}

/// Reads a frame a party sent.
///
/// # Errors
/// [`FrameError`].
pub fn parse_frame(body: &str) -> Result<Signal, FrameError> {
    if body.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge);
    }
    let frame: ClientFrame = serde_json::from_str(body).map_err(|_| FrameError::Malformed)?;
    let kind = match frame.kind.as_str() {
        "offer" => "offer",
        "answer" => "answer",
        "candidate" => "candidate",
        "bye" => "bye",
        _ => return Err(FrameError::Malformed),
    };
    if frame.action != "signal" {
        return Err(FrameError::Malformed);
    }
    Ok(Signal {
        kind,
        payload: frame.payload,
    })
}

/// What the other party receives: `{"type", "payload", "from"}`.
pub fn relayed(signal: &Signal, from: Role) -> String {
    serde_json::json!({"type": signal.kind, "payload": signal.payload, "from": from.as_str()})
        .to_string()
}

/// A notice without payload: `{"type": "peer_joined"}`, `{"type": "peer_left"}`.
pub fn notice(kind: &str) -> String {
    serde_json::json!({"type": kind}).to_string()
}

/// An error told to the sender: `{"type": "error", "code", "message"}`.
pub fn error_frame(code: &str, message: &str) -> String {
    serde_json::json!({"type": "error", "code": code, "message": message}).to_string()
}

impl SystemMessage {
    /// Both parties joined.
    pub fn call_started(call_id: &str) -> Self {
        Self {
            event: SystemEvent::CallStarted,
            text: "Video call started".to_owned(),
            actor: Actor::System,
            error: None,
            reason: Some(call_id.to_owned()),
        }
    }

    /// A call ended after `seconds`, `by` the party who hung up or left.
    pub fn call_ended(call_id: &str, seconds: i64, by: Actor) -> Self {
        Self {
            event: SystemEvent::CallEnded,
            text: format!(
                "Video call ended after {}:{:02}",
                seconds / 60,
                seconds % 60
            ),
            actor: by,
            error: None,
            reason: Some(call_id.to_owned()),
        }
    }

    /// Nobody joined before the call expired.
    pub fn call_missed(call_id: &str) -> Self {
        Self {
            event: SystemEvent::CallMissed,
            text: "Video call missed: nobody joined in time".to_owned(),
            actor: Actor::System,
            error: None,
            reason: Some(call_id.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_checked_and_relayed_with_their_sender() {
        let s =
            parse_frame(r#"{"action":"signal","type":"offer","payload":{"sdp":"v=0"}}"#).unwrap();
        assert_eq!(s.kind, "offer");
        let out: Value = serde_json::from_str(&relayed(&s, Role::Agent)).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"type": "offer", "payload": {"sdp": "v=0"}, "from": "agent"})
        );
        for bad in [
            "",
            "{}",
            "[1]",
            r#"{"action":"signal","type":"hello"}"#,
            r#"{"action":"other","type":"offer"}"#,
            r#"{"action":"signal"}"#,
        ] {
            assert_eq!(parse_frame(bad), Err(FrameError::Malformed), "{bad}");
        }
        let big = format!(
            r#"{{"action":"signal","type":"candidate","payload":"{}"}}"#,
            "x".repeat(MAX_FRAME_BYTES)
        );
        assert_eq!(parse_frame(&big), Err(FrameError::TooLarge));
        let bye = parse_frame(r#"{"action":"signal","type":"bye"}"#).unwrap();
        assert_eq!(bye.payload, Value::Null);
    }

    #[test]
    fn roles_and_durations() {
        assert_eq!(Role::Agent.other(), Role::Customer);
        assert_eq!(Role::parse("customer"), Some(Role::Customer));
        assert_eq!(Role::parse("admin"), None);
        let end = crate::domain::time::parse_rfc3339("2026-12-01T10:02:05Z").unwrap();
        assert_eq!(duration_s(Some("2026-12-01T10:00:00.000Z"), end), 125);
        assert_eq!(duration_s(None, end), 0);
        assert_eq!(
            SystemMessage::call_ended("ca_1", 125, Actor::System).text,
            "Video call ended after 2:05"
        );
        assert!(is_call_id(&call_id()) && !is_call_id("ca_x"));
    }
}
