//! The part of Stripe's wire format the payments use, as pure functions: the
//! `Stripe-Signature` check of webhooks, the events read, and the form of a Checkout
//! Session's creation. The HTTP client is [`crate::adapters::stripe`].
//!
//! The signature (Stripe docs, "Check the webhook signatures"): the header is
//! `t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=…]`; each `v1` is the HMAC-SHA256, keyed with
//! the endpoint's signing secret (`whsec_…`, used as it is), of `"{t}.{raw body}"`. Any
//! matching `v1` passes (several appear while a secret is rolled); `v0` and unknown
//! schemes are ignored; `t` must be within the tolerance of now (300 s, Stripe's
//! libraries' default) either way.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::payment::{PaymentItem, SessionOutcome};

/// How far `t` may be from now, in seconds (Stripe's libraries' default tolerance).
pub const TOLERANCE_SECONDS: i64 = 300;
/// Longest `Stripe-Signature` header read (a few signatures of 64 hex digits).
const MAX_HEADER: usize = 2048;

/// Why a signature was refused (each a 400 for the webhook, nothing written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("no Stripe-Signature header")]
    Missing,
    /// Not `t=…,v1=…`: no timestamp, a timestamp not a number, no `v1`.
    #[error("the Stripe-Signature header is not t=<seconds>,v1=<hex>")]
    Malformed,
    /// `t` is more than the tolerance away from now (a replay, or a clock far off).
    #[error("the Stripe-Signature timestamp is outside the tolerance")]
    Stale,
    /// No `v1` matches the body.
    #[error("no Stripe-Signature v1 matches the body")]
    Mismatch,
}

/// Checks a webhook's `Stripe-Signature` header over the raw body bytes (as Stripe sent
/// them: API Gateway's base64 already undone) with the endpoint's signing secret, at
/// `now` (Unix seconds).
///
/// # Errors
/// The [`SignatureError`] saying why.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secret: &str,
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    if header.len() > MAX_HEADER {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp: Option<&str> = None;
    let mut signatures: Vec<[u8; 32]> = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" if timestamp.is_none() => timestamp = Some(value),
            "t" => return Err(SignatureError::Malformed),
            "v1" => {
                let mut bytes = [0u8; 32];
                // A v1 that is not 64 hex digits matches nothing; the others may.
                if hex::decode_to_slice(value, &mut bytes).is_ok() {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    let t: i64 = timestamp.parse().map_err(|_| SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(t) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let matched = signatures
        .iter()
        .fold(subtle::Choice::from(0), |any, s| any | s.ct_eq(&expected));
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The header Stripe would send for `body` at `t` (the sandbox signs with it; tests too).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A Stripe event as the webhook reads it (fields it does not use are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// `evt_…`.
    pub id: String,
    /// `checkout.session.completed`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// What it is about.
    pub data: EventData,
}

/// `data` of an event.
#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    /// The Checkout Session (for the `checkout.session.*` events).
    pub object: Session,
}

/// A Checkout Session, as events and the API give it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Session {
    /// `cs_…` (absent from the objects of event types the payments do not act on).
    #[serde(default)]
    pub id: String,
    /// Where the customer pays.
    #[serde(default)]
    pub url: Option<String>,
    /// `paid`, `unpaid`, `no_payment_required`.
    #[serde(default)]
    pub payment_status: Option<String>,
    /// `open`, `complete`, `expired`.
    #[serde(default)]
    pub status: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Minor units.
    #[serde(default)]
    pub amount_total: Option<i64>,
    /// Lower-case ISO 4217.
    #[serde(default)]
    pub currency: Option<String>,
    /// What we put there at creation ([`Metadata`]).
    #[serde(default)]
    pub metadata: Metadata,
}

/// The metadata a session carries from its creation (all signed by the webhook's
/// signature, so the webhook needs no read to know what the event is about).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    /// The tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The payment.
    #[serde(default)]
    pub payment_id: Option<String>,
    /// The customer's conversation.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The business name, for the thank-you.
    #[serde(default)]
    pub business: Option<String>,
}

impl Event {
    /// What the event says about its session: `None` for an event type the payments do not
    /// act on.
    pub fn outcome(&self) -> Option<SessionOutcome> {
        match self.kind.as_str() {
            "checkout.session.completed" => match self.data.object.payment_status.as_deref() {
                Some("paid" | "no_payment_required") => Some(SessionOutcome::Paid),
                _ => Some(SessionOutcome::Processing),
            },
            "checkout.session.async_payment_succeeded" => Some(SessionOutcome::Paid),
            "checkout.session.async_payment_failed" => Some(SessionOutcome::Failed),
            "checkout.session.expired" => Some(SessionOutcome::Expired),
            _ => None,
        }
    }
}

/// What a Checkout Session is created with.
#[derive(Debug, Clone)]
pub struct SessionRequest<'a> {
    /// Lower-case ISO 4217.
    pub currency: String,
    /// The lines.
    pub items: &'a [PaymentItem],
    /// Unix seconds (30 minutes to 24 hours ahead).
    pub expires_at: i64,
    /// Where Checkout sends the customer after paying.
    pub success_url: String,
    /// The payment id (also `client_reference_id`).
    pub payment_id: &'a str,
    /// The other metadata.
    pub metadata: Vec<(&'static str, String)>,
}

impl SessionRequest<'_> {
    /// The form fields of `POST /v1/checkout/sessions` (Stripe's bracket notation).
    pub fn form(&self) -> Vec<(String, String)> {
        let mut form = vec![
            ("mode".to_owned(), "payment".to_owned()),
            ("expires_at".to_owned(), self.expires_at.to_string()),
            ("success_url".to_owned(), self.success_url.clone()),
            ("client_reference_id".to_owned(), self.payment_id.to_owned()),
            (
                "metadata[payment_id]".to_owned(),
                self.payment_id.to_owned(),
            ),
        ];
        for (key, value) in &self.metadata {
            form.push((format!("metadata[{key}]"), value.clone()));
        }
        for (i, item) in self.items.iter().enumerate() {
            let p = format!("line_items[{i}]");
            form.push((format!("{p}[quantity]"), item.quantity.to_string()));
            form.push((format!("{p}[price_data][currency]"), self.currency.clone()));
            form.push((
                format!("{p}[price_data][unit_amount]"),
                item.unit_amount.to_string(),
            ));
            form.push((
                format!("{p}[price_data][product_data][name]"),
                item.name.clone(),
            ));
        }
        form
    }
}

/// Stripe's error body (`{"error": {"type", "code", "message"}}`).
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// One Stripe error.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorDetail {
    /// `invalid_request_error`, `api_error`, `idempotency_error`, …
    #[serde(rename = "type", default)]
    pub kind: String,
    /// A code such as `amount_too_small`.
    #[serde(default)]
    pub code: Option<String>,
    /// Readable text.
    #[serde(default)]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;
    const NOW: i64 = 1_764_000_000;

    fn v1(secret: &str, t: i64, body: &[u8]) -> String {
        sign(secret, t, body)
            .split_once("v1=")
            .unwrap()
            .1
            .to_owned()
    }

    /// A case: its name, the header, the body and the verdict.
    type Case<'a> = (
        &'a str,
        Option<String>,
        &'a [u8],
        Result<(), SignatureError>,
    );

    #[test]
    fn the_signature_table() {
        let good = v1(SECRET, NOW, BODY);
        let other = v1("whsec_other", NOW, BODY);
        let mut flipped = BODY.to_vec();
        flipped[10] ^= 1;
        let cases: Vec<Case> = vec![
            ("valid", Some(format!("t={NOW},v1={good}")), BODY, Ok(())),
            ("missing header", None, BODY, Err(SignatureError::Missing)),
            (
                "empty header",
                Some(String::new()),
                BODY,
                Err(SignatureError::Malformed),
            ),
            (
                "bad v1",
                Some(format!("t={NOW},v1={other}")),
                BODY,
                Err(SignatureError::Mismatch),
            ),
            (
                "v1 not hex",
                Some(format!("t={NOW},v1=zz")),
                BODY,
                Err(SignatureError::Malformed),
            ),
            (
                "two v1, the second valid",
                Some(format!("t={NOW},v1={other},v1={good}")),
                BODY,
                Ok(()),
            ),
            (
                "two v1, the first valid, a v0 too",
                Some(format!("t={NOW},v1={good},v1={other},v0=abc")),
                BODY,
                Ok(()),
            ),
            (
                "stale t",
                Some(format!(
                    "t={},v1={}",
                    NOW - 301,
                    v1(SECRET, NOW - 301, BODY)
                )),
                BODY,
                Err(SignatureError::Stale),
            ),
            (
                "t just within",
                Some(format!(
                    "t={},v1={}",
                    NOW - 300,
                    v1(SECRET, NOW - 300, BODY)
                )),
                BODY,
                Ok(()),
            ),
            (
                "t far ahead",
                Some(format!(
                    "t={},v1={}",
                    NOW + 301,
                    v1(SECRET, NOW + 301, BODY)
                )),
                BODY,
                Err(SignatureError::Stale),
            ),
            (
                "one byte changed",
                Some(format!("t={NOW},v1={good}")),
                &flipped,
                Err(SignatureError::Mismatch),
            ),
            (
                "no t",
                Some(format!("v1={good}")),
                BODY,
                Err(SignatureError::Malformed),
            ),
            (
                "t twice",
                Some(format!("t={NOW},t={NOW},v1={good}")),
                BODY,
                Err(SignatureError::Malformed),
            ),
            (
                "t not a number",
                Some(format!("t=soon,v1={good}")),
                BODY,
                Err(SignatureError::Malformed),
            ),
            (
                "v0 only",
                Some(format!("t={NOW},v0={good}")),
                BODY,
                Err(SignatureError::Malformed),
            ),
            (
                "signed with another t",
                Some(format!("t={NOW},v1={}", v1(SECRET, NOW - 1, BODY))),
                BODY,
                Err(SignatureError::Mismatch),
            ),
            (
                "spaces after commas",
                Some(format!("t={NOW}, v1={good}")),
                BODY,
                Ok(()),
            ),
            (
                "huge header",
                Some("v1=".repeat(1000)),
                BODY,
                Err(SignatureError::Malformed),
            ),
        ];
        for (name, header, body, expected) in cases {
            assert_eq!(
                verify(header.as_deref(), body, SECRET, NOW),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn events_say_what_happened_to_the_session() {
        let event = |kind: &str, payment_status: &str| -> Event {
            serde_json::from_value(serde_json::json!({
                "id": "evt_1", "object": "event", "type": kind,
                "data": {"object": {"id": "cs_test_1", "object": "checkout.session",
                    "payment_status": payment_status, "metadata": {"payment_id": "pay_1"}}}
            }))
            .unwrap()
        };
        use SessionOutcome::*;
        assert_eq!(
            event("checkout.session.completed", "paid").outcome(),
            Some(Paid)
        );
        assert_eq!(
            event("checkout.session.completed", "unpaid").outcome(),
            Some(Processing)
        );
        assert_eq!(
            event("checkout.session.async_payment_succeeded", "paid").outcome(),
            Some(Paid)
        );
        assert_eq!(
            event("checkout.session.async_payment_failed", "unpaid").outcome(),
            Some(Failed)
        );
        assert_eq!(
            event("checkout.session.expired", "unpaid").outcome(),
            Some(Expired)
        );
        assert_eq!(event("payment_intent.succeeded", "paid").outcome(), None);
    }

    #[test]
    fn a_session_form_uses_stripes_bracket_notation() {
        let items = [PaymentItem {
            product_id: Some("pr_1".into()),
            name: "Cleaning".into(),
            quantity: 2,
            unit_amount: 4500,
        }];
        let form = SessionRequest {
            currency: "usd".into(),
            items: &items,
            expires_at: 1_764_086_400,
            success_url: "https://x/pay/done".into(),
            payment_id: "pay_1",
            metadata: vec![("tenant_id", "acme".into())],
        }
        .form();
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("mode"), Some("payment"));
        assert_eq!(get("line_items[0][quantity]"), Some("2"));
        assert_eq!(get("line_items[0][price_data][unit_amount]"), Some("4500"));
        assert_eq!(
            get("line_items[0][price_data][product_data][name]"),
            Some("Cleaning")
        );
        assert_eq!(get("metadata[tenant_id]"), Some("acme"));
        assert_eq!(get("metadata[payment_id]"), Some("pay_1"));
        assert_eq!(get("client_reference_id"), Some("pay_1"));
    }
}
