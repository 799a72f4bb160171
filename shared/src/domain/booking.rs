//! Bookings and booking invitations (SPEC §10). Pure: request bodies and their rules, the
//! stored shapes, invitation tokens and the texts the customer and the agents read. The
//! service in [`crate::service::bookings`] stores and sends.
//!
//! A booking holds a slot: exactly one booking per slot, written by a transaction that is
//! conditional on the slot being free (never read-then-write). An invitation is a link
//! `…/b/{token}` with 256 random bits, stored only as its SHA-256, used once.

use crate::domain::zone::Zone;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::domain::actor::Actor;
use crate::domain::calendar::{
    SlotTime, days_after, parse_filter, parse_filter_end, zone_label, zoned,
};
use crate::domain::system::{SystemEvent, SystemMessage};
use crate::domain::template::TemplateCall;

/// Longest booking note, in characters (a product limit).
pub const NOTE_MAX: usize = 1000;
/// Default life of an invitation, in hours (SPEC §10).
pub const DEFAULT_INVITATION_HOURS: i64 = 72;
/// Shortest and longest life of an invitation (SPEC §10: 1 minute to 30 days).
pub const INVITATION_LIFE: (Duration, Duration) = (Duration::minutes(1), Duration::days(30));
/// How far ahead an invitation offers slots when `to` is not given, in days.
pub const DEFAULT_OFFER_DAYS: i64 = 60;
/// Random bytes in an invitation token (256 bits; SPEC §10 asks for at least 128).
pub const TOKEN_BYTES: usize = 32;
/// Characters of a token: base64url without padding of [`TOKEN_BYTES`].
pub const TOKEN_LEN: usize = 43;
/// The placeholder a template parameter may hold for the invitation link.
pub const URL_PLACEHOLDER: &str = "{{url}}";

/// A booking's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    /// Holds its slot.
    Confirmed,
    /// Cancelled: its slot is free again.
    Cancelled,
}

impl BookingStatus {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the API name.
    pub fn parse(v: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(v.to_owned())).ok()
    }
}

/// A booking as stored and shown. Times are UTC here; the view shows them in the zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    /// `bk_<ULID>`.
    pub id: String,
    /// The slot it holds (or held).
    pub slot_id: String,
    /// The customer.
    pub customer_id: String,
    /// The customer's conversation (where its messages go).
    pub conversation_id: String,
    /// RFC 3339 UTC.
    pub start: String,
    /// RFC 3339 UTC.
    pub end: String,
    /// `confirmed` or `cancelled`.
    pub status: BookingStatus,
    /// The agent's or the customer's note.
    pub note: Option<String>,
    /// Who booked: an agent, or the customer through an invitation.
    pub booked_by: Actor,
    /// The invitation it was made through.
    pub invitation_id: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC, once cancelled.
    pub cancelled_at: Option<String>,
    /// Who cancelled it.
    pub cancelled_by: Option<Actor>,
}

/// A booking as the API shows it: its times also in the tenant's zone.
#[derive(Debug, Clone, Serialize)]
pub struct BookingView {
    /// The booking (UTC times).
    #[serde(flatten)]
    pub booking: Booking,
    /// Start in the tenant's zone (RFC 3339 with its offset).
    pub local_start: String,
    /// End in the tenant's zone.
    pub local_end: String,
    /// The tenant's IANA zone.
    pub time_zone: String,
}

impl Booking {
    /// Its slot's time (`None` for a record whose times are unreadable).
    pub fn time(&self) -> Option<SlotTime> {
        Some(SlotTime {
            start: crate::domain::time::parse_rfc3339(&self.start)?,
            end: crate::domain::time::parse_rfc3339(&self.end)?,
        })
    }

    /// The view in `zone`.
    pub fn view(self, zone: Zone) -> BookingView {
        let (local_start, local_end) = match self.time() {
            Some(t) => (zoned(t.start, zone), zoned(t.end, zone)),
            None => (self.start.clone(), self.end.clone()),
        };
        BookingView {
            booking: self,
            local_start,
            local_end,
            time_zone: zone.name().to_owned(),
        }
    }
}

/// A new booking id.
pub fn booking_id() -> String {
    format!("bk_{}", ulid::Ulid::new())
}

/// Whether `id` can be a booking id (`bk_` and a ULID).
pub fn is_booking_id(id: &str) -> bool {
    id.strip_prefix("bk_")
        .is_some_and(|u| ulid::Ulid::from_string(u).is_ok())
}

/// `POST /bookings`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookingRequest {
    /// The customer (`cu_…`).
    pub customer_id: String,
    /// The slot (`sl_…`).
    pub slot_id: String,
    /// A note ([`NOTE_MAX`] characters).
    #[serde(default)]
    pub note: Option<String>,
    /// The WhatsApp template that confirms the booking when the customer service window is
    /// closed (a parameter `{{time}}` is the booking's time); without it the confirmation
    /// does not go out then, and the conversation says so.
    #[serde(default)]
    pub template: Option<TemplateCall>,
}

/// A note as stored: trimmed, `None` when empty.
///
/// # Errors
/// 422 `invalid_note`: over [`NOTE_MAX`] characters, or control characters other than line
/// breaks and tabs.
pub fn parse_note(note: Option<&str>) -> Result<Option<String>, Error> {
    let Some(note) = note.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let bad_char = note
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'));
    if note.chars().count() > NOTE_MAX || bad_char {
        return Err(Error::validation(
            "invalid_note",
            format!("note must be at most {NOTE_MAX} characters without control characters"),
        ));
    }
    Ok(Some(note.to_owned()))
}

/// `POST /customers/{id}/booking-invitations`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationRequest {
    /// Offer slots starting from this time (RFC 3339 or a local date; default now).
    #[serde(default)]
    pub from: Option<String>,
    /// Offer slots starting before this time (default [`DEFAULT_OFFER_DAYS`] after `from`).
    #[serde(default)]
    pub to: Option<String>,
    /// When the link stops working (RFC 3339, 1 minute to 30 days ahead).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Or its life in hours (default [`DEFAULT_INVITATION_HOURS`]).
    #[serde(default)]
    pub expires_in_hours: Option<i64>,
    /// The WhatsApp template to send when the customer service window is closed; a
    /// parameter `{{url}}` is the link, or the link is added as the last parameter.
    #[serde(default)]
    pub template: Option<TemplateCall>,
}

/// An invitation's checked terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationTerms {
    /// Slots offered start at or after this.
    pub from: DateTime<Utc>,
    /// … and before this.
    pub to: DateTime<Utc>,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
}

impl InvitationRequest {
    /// Checks the terms.
    ///
    /// # Errors
    /// 422 `invalid_expiry` (both or a bad `expires_at`/`expires_in_hours`, outside 1
    /// minute to 30 days), `invalid_range` (`from`/`to` unreadable, or `to` not after
    /// `from`).
    pub fn terms(&self, zone: Zone, now: DateTime<Utc>) -> Result<InvitationTerms, Error> {
        let expiry_error = || {
            Error::validation(
                "invalid_expiry",
                "give expires_at (RFC 3339, 1 minute to 30 days ahead) or expires_in_hours (1 to 720), not both",
            )
        };
        let expires_at = match (&self.expires_at, self.expires_in_hours) {
            (Some(_), Some(_)) => return Err(expiry_error()),
            (Some(at), None) => crate::domain::time::parse_rfc3339(at).ok_or_else(expiry_error)?,
            (None, Some(h)) if (1..=720).contains(&h) => now + Duration::hours(h),
            (None, Some(_)) => return Err(expiry_error()),
            (None, None) => now + Duration::hours(DEFAULT_INVITATION_HOURS),
        };
        let life = expires_at - now;
        if life < INVITATION_LIFE.0 || life > INVITATION_LIFE.1 {
            return Err(expiry_error());
        }
        let range = |text: &Option<String>, name: &str| {
            text.as_deref()
                .map(|t| {
                    let parsed = if name == "to" {
                        parse_filter_end(t, zone, name)
                    } else {
                        parse_filter(t, zone, name)
                    };
                    parsed.map_err(|_| {
                        Error::validation(
                            "invalid_range",
                            format!(
                                "{name} must be RFC 3339 with an offset or a date (YYYY-MM-DD)"
                            ),
                        )
                    })
                })
                .transpose()
        };
        let from = range(&self.from, "from")?.unwrap_or(now).max(now);
        let to = range(&self.to, "to")?.unwrap_or(days_after(from, DEFAULT_OFFER_DAYS));
        if to <= from {
            return Err(Error::validation(
                "invalid_range",
                "to must be after from (and after now)",
            ));
        }
        Ok(InvitationTerms {
            from,
            to,
            expires_at,
        })
    }
}

/// The template to send when the window is closed: the link in place of a `{{url}}`
/// parameter, or added as the last one.
pub fn template_with_link(call: &TemplateCall, url: &str) -> TemplateCall {
    let mut call = call.clone();
    if call.parameters.iter().any(|p| p == URL_PLACEHOLDER) {
        for p in &mut call.parameters {
            if p == URL_PLACEHOLDER {
                url.clone_into(p);
            }
        }
    } else {
        call.parameters.push(url.to_owned());
    }
    call
}

/// An invitation as stored (looked up by the hash of its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// `bi_<ULID>`.
    pub id: String,
    /// The tenant (the public page knows only the token).
    pub tenant_id: String,
    /// The customer invited.
    pub customer_id: String,
    /// The customer's conversation.
    pub conversation_id: String,
    /// Slots offered start at or after this (RFC 3339 UTC).
    pub from: String,
    /// … and before this.
    pub to: String,
    /// When the link stops working (RFC 3339 UTC).
    pub expires_at: String,
    /// The agent who sent it.
    pub created_by: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// The booking made through it (it is then used).
    pub booking_id: Option<String>,
}

/// Where an invitation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    /// The customer may book.
    Open,
    /// A booking was made through it.
    Used,
    /// Its time ran out.
    Expired,
}

impl Invitation {
    /// Its state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> InvitationState {
        if self.booking_id.is_some() {
            InvitationState::Used
        } else if crate::domain::time::parse_rfc3339(&self.expires_at).is_none_or(|e| now >= e) {
            InvitationState::Expired
        } else {
            InvitationState::Open
        }
    }

    /// Whether it offers a slot with this time (starting within `[from, to)`).
    pub fn offers(&self, slot: &SlotTime) -> bool {
        let within = |field: &str| crate::domain::time::parse_rfc3339(field);
        match (within(&self.from), within(&self.to)) {
            (Some(from), Some(to)) => slot.start >= from && slot.start < to,
            _ => false,
        }
    }
}

/// A new invitation id.
pub fn invitation_id() -> String {
    format!("bi_{}", ulid::Ulid::new())
}

/// A new invitation token: [`TOKEN_BYTES`] from the operating system's generator, base64url
/// without padding.
///
/// # Errors
/// `Internal` when the system has no randomness to give.
pub fn new_token() -> Result<String, Error> {
    use base64::Engine;
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `token` has a token's shape (checked before any read: anything else is 404).
pub fn is_token(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What is stored of a token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A slot's time as a person reads it, in `zone`: `Tue 1 Dec 2026, 09:00–09:30 London time
/// (GMT)`, or both dates when it ends on another day.
pub fn describe(time: &SlotTime, zone: Zone) -> String {
    let start = time.start.with_timezone(&zone);
    let end = time.end.with_timezone(&zone);
    let ends = if start.date_naive() == end.date_naive() {
        end.format("%H:%M").to_string()
    } else {
        end.format("%a %-d %b %Y, %H:%M").to_string()
    };
    format!(
        "{}–{} {}",
        start.format("%a %-d %b %Y, %H:%M"),
        ends,
        zone_label(zone, time.start)
    )
}

/// `{business}: ` before a customer-facing text, or nothing without a business name.
fn signed(business: Option<&str>, text: String) -> String {
    match business {
        Some(name) => format!("{name}: {text}"),
        None => crate::domain::text::capitalized(&text),
    }
}

/// The confirmation the customer receives.
pub fn confirmation_text(business: Option<&str>, time: &SlotTime, zone: Zone) -> String {
    signed(
        business,
        format!("your booking is confirmed for {}.", describe(time, zone)),
    )
}

/// The notice the customer receives when a booking is cancelled.
pub fn cancellation_text(business: Option<&str>, time: &SlotTime, zone: Zone) -> String {
    signed(
        business,
        format!("your booking for {} was cancelled.", describe(time, zone)),
    )
}

/// The invitation message, saying until when the link works.
pub fn invitation_text(
    business: Option<&str>,
    url: &str,
    expires_at: DateTime<Utc>,
    zone: Zone,
) -> String {
    signed(
        business,
        format!(
            "choose a time for your appointment here (the link works until {}, {}): {url}",
            expires_at.with_timezone(&zone).format("%a %-d %b, %H:%M"),
            zone_label(zone, expires_at)
        ),
    )
}

impl SystemMessage {
    /// A booking was made (by an agent, or by the customer through an invitation).
    pub fn booking_created(time: &SlotTime, zone: Zone, actor: Actor) -> Self {
        Self {
            event: SystemEvent::BookingCreated,
            text: format!("Booked: {}", describe(time, zone)),
            actor,
            error: None,
            reason: None,
        }
    }

    /// A booking was cancelled.
    pub fn booking_cancelled(time: &SlotTime, zone: Zone, actor: Actor) -> Self {
        Self {
            event: SystemEvent::BookingCancelled,
            text: format!("Booking cancelled: {}", describe(time, zone)),
            actor,
            error: None,
            reason: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        crate::domain::time::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn tokens_carry_256_random_bits_and_only_their_hash_is_kept() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert!(is_token(&a) && is_token(&b));
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
        for bad in ["", "short", &format!("{a}x"), &a.replace(&a[..1], "#")] {
            assert!(!is_token(bad), "{bad}");
        }
    }

    #[test]
    fn invitation_terms_default_to_72_hours_and_60_days_of_slots() {
        let now = utc("2026-12-01T10:00:00Z");
        let t = InvitationRequest::default()
            .terms(Zone::utc(), now)
            .unwrap();
        assert_eq!(t.expires_at, utc("2026-12-04T10:00:00Z"));
        assert_eq!(t.from, now);
        assert_eq!(t.to, now + Duration::days(60));
    }

    #[test]
    fn invitation_terms_are_checked() {
        let now = utc("2026-12-01T10:00:00Z");
        let terms = |body: serde_json::Value| {
            serde_json::from_value::<InvitationRequest>(body)
                .unwrap()
                .terms(Zone::parse("Europe/London").unwrap(), now)
        };
        let code = |body| terms(body).unwrap_err().code();
        assert_eq!(
            code(serde_json::json!({"expires_in_hours": 0})),
            "invalid_expiry"
        );
        assert_eq!(
            code(serde_json::json!({"expires_in_hours": 721})),
            "invalid_expiry"
        );
        assert_eq!(
            code(serde_json::json!({"expires_at": "2026-12-01T10:00:30Z"})),
            "invalid_expiry"
        );
        assert_eq!(
            code(serde_json::json!({"expires_at": "2027-01-01T10:00:01Z"})),
            "invalid_expiry"
        );
        assert_eq!(
            code(serde_json::json!({"expires_at": "2026-12-02T10:00:00Z", "expires_in_hours": 3})),
            "invalid_expiry"
        );
        assert_eq!(
            code(serde_json::json!({"from": "2026-12-09", "to": "2026-12-08"})),
            "invalid_range"
        );
        assert_eq!(
            code(serde_json::json!({"to": "2026-11-30"})),
            "invalid_range"
        );
        assert_eq!(
            code(serde_json::json!({"from": "whenever"})),
            "invalid_range"
        );
        let t = terms(
            serde_json::json!({"from": "2026-12-08", "to": "2026-12-09", "expires_in_hours": 1}),
        )
        .unwrap();
        assert_eq!(t.from, utc("2026-12-08T00:00:00Z"));
        assert_eq!(t.expires_at, utc("2026-12-01T11:00:00Z"));
        // A range that began in the past offers slots from now on.
        let t = terms(serde_json::json!({"from": "2026-11-01"})).unwrap();
        assert_eq!(t.from, now);
    }

    #[test]
    fn the_link_fills_the_url_parameter_or_comes_last() {
        let call = TemplateCall {
            name: "booking_link".into(),
            language: "en".into(),
            parameters: vec!["Ana".into()],
        };
        assert_eq!(
            template_with_link(&call, "https://x/b/t").parameters,
            ["Ana", "https://x/b/t"]
        );
        let call = TemplateCall {
            parameters: vec!["{{url}}".into(), "Ana".into()],
            ..call
        };
        assert_eq!(
            template_with_link(&call, "https://x/b/t").parameters,
            ["https://x/b/t", "Ana"]
        );
    }

    #[test]
    fn an_invitation_is_used_expired_or_open_and_offers_its_range() {
        let inv = Invitation {
            id: "bi_1".into(),
            tenant_id: "t".into(),
            customer_id: "cu".into(),
            conversation_id: "cv".into(),
            from: "2026-12-01T00:00:00.000Z".into(),
            to: "2026-12-08T00:00:00.000Z".into(),
            expires_at: "2026-12-03T00:00:00.000Z".into(),
            created_by: "agent".into(),
            created_at: "2026-12-01T00:00:00.000Z".into(),
            booking_id: None,
        };
        assert_eq!(
            inv.state(utc("2026-12-02T23:59:59Z")),
            InvitationState::Open
        );
        assert_eq!(
            inv.state(utc("2026-12-03T00:00:00Z")),
            InvitationState::Expired
        );
        let used = Invitation {
            booking_id: Some("bk_x".into()),
            ..inv.clone()
        };
        assert_eq!(
            used.state(utc("2026-12-09T00:00:00Z")),
            InvitationState::Used
        );
        let slot = |start: &str| SlotTime {
            start: utc(start),
            end: utc(start) + Duration::minutes(30),
        };
        assert!(inv.offers(&slot("2026-12-01T00:00:00Z")));
        assert!(!inv.offers(&slot("2026-12-08T00:00:00Z")));
        assert!(!inv.offers(&slot("2026-11-30T23:59:00Z")));
    }

    #[test]
    fn times_read_in_the_business_zone() {
        let t = SlotTime {
            start: utc("2026-07-01T08:00:00Z"),
            end: utc("2026-07-01T08:30:00Z"),
        };
        assert_eq!(
            describe(&t, Zone::parse("Europe/London").unwrap()),
            "Wed 1 Jul 2026, 09:00–09:30 London time (GMT+1)"
        );
        let overnight = SlotTime {
            start: utc("2026-07-01T22:30:00Z"),
            end: utc("2026-07-01T23:30:00Z"),
        };
        assert_eq!(
            describe(&overnight, Zone::parse("Europe/London").unwrap()),
            "Wed 1 Jul 2026, 23:30–Thu 2 Jul 2026, 00:30 London time (GMT+1)"
        );
        assert_eq!(
            confirmation_text(Some("Acme Dental"), &t, Zone::utc()),
            "Acme Dental: your booking is confirmed for Wed 1 Jul 2026, 08:00–08:30 UTC."
        );
    }

    #[test]
    fn notes_are_trimmed_and_bounded() {
        assert_eq!(parse_note(Some("  ")).unwrap(), None);
        assert_eq!(
            parse_note(Some(" first visit\n")).unwrap().as_deref(),
            Some("first visit")
        );
        assert_eq!(
            parse_note(Some("a\u{0}b")).unwrap_err().code(),
            "invalid_note"
        );
        assert_eq!(
            parse_note(Some(&"x".repeat(NOTE_MAX + 1)))
                .unwrap_err()
                .code(),
            "invalid_note"
        );
    }

    #[test]
    fn booking_ids_are_recognised() {
        assert!(is_booking_id(&booking_id()));
        assert!(!is_booking_id("bk_"));
        assert!(!is_booking_id("sl_20261201T0900Z_0123456789"));
    }
}
