//! The Stripe part of the sandbox: the subset of Stripe's API the payments use
//! (`STRIPE_API_URL` = `{sandbox}/stripe`), a checkout page a person can pay on, and
//! signed webhook deliveries of the events, so the whole payment flow runs on loopback.
//!
//! | route | what |
//! |---|---|
//! | `POST /stripe/v1/checkout/sessions` | create a Checkout Session (form-encoded, `Idempotency-Key`) |
//! | `GET /stripe/v1/checkout/sessions/{id}` | retrieve one of the account's sessions |
//! | `POST /stripe/v1/checkout/sessions/{id}/expire` | open → `expired`, sends `checkout.session.expired` |
//! | `GET/POST /stripe/v1/webhook_endpoints`, `DELETE /stripe/v1/webhook_endpoints/{id}` | the account's webhook endpoints (the `whsec_…` secret is shown once, at creation) |
//! | `GET /stripe/checkout/{id}`, `POST /stripe/checkout/{id}/pay` | the page a customer pays on (a plain form; 303 to `success_url`) |
//! | `POST /sandbox/stripe/sessions/{id}/pay` | pay as a test: `{"outcome", "deliveries", "base64"}` |
//! | `POST /sandbox/stripe/sessions/{id}/events` | send any event about a session as it is: `{"type", "deliveries", "base64"}` |
//! | `GET/DELETE /sandbox/stripe/deliveries?session=&type=&event=` | the webhook deliveries made |
//! | `GET /sandbox/stripe/stats` | sessions created per idempotency key, API requests per account |
//!
//! An *account* is the API key a request carries (`Authorization: Bearer sk_…` or `rk_…`,
//! or HTTP basic with the key as the user, as Stripe takes it): sessions, webhook endpoints
//! and idempotency keys belong to it. Faults: `POST /sandbox/fail` with the key as `account`
//! makes its next API requests answer 429 / 5xx / 4xx as Stripe error bodies (or wait,
//! `delay_ms`), and `/sandbox/chaos` works the same way; an injected failure happens before
//! the request runs, so it saves nothing under its idempotency key.
//!
//! Events are posted to each endpoint of the account that enabled the type (or `*`), as
//! Stripe does: pretty-printed JSON, `Stripe-Signature: t=…,v1=…` made with
//! [`shared::domain::stripe::sign`] and the endpoint's secret. Events the API causes
//! (expire, a session found past its `expires_at`) go out in the background, as at Stripe;
//! the test and page routes wait for their deliveries. A failed delivery is recorded, not
//! retried.

use std::collections::{BTreeMap, HashMap, VecDeque};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

pub(super) mod api;
pub(super) mod control;
mod create;
pub(super) mod endpoints;
mod events;
pub(super) mod page;
mod params;

pub use control::{PayOutcome, StripeControlError, StripeEventRequest, StripePay, StripeReport};
pub use events::{DeliveryOutcome, EventReport, StripeDelivery};

/// The API version events and endpoints carry.
pub const API_VERSION: &str = "2025-03-31.basil";
/// Most webhook endpoints of an account (Stripe's limit, test mode included).
pub const MAX_ENDPOINTS: usize = 16;
/// How long an idempotency key is remembered, in seconds (Stripe: 24 hours).
pub const IDEMPOTENCY_WINDOW: i64 = 24 * 3600;
/// Longest `Idempotency-Key` (Stripe: 255 characters).
pub const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Deliveries kept; the oldest go first.
const MAX_DELIVERIES: usize = 100_000;

/// `status` of a Checkout Session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SessionStatus {
    Open,
    Complete,
    Expired,
}

impl SessionStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Complete => "complete",
            Self::Expired => "expired",
        }
    }
}

/// `payment_status` of a Checkout Session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum PaymentStatus {
    Paid,
    Unpaid,
}

/// A Checkout Session as the API answers it (the fields the payments read, and a few
/// more of Stripe's).
#[derive(Debug, Clone, Serialize)]
pub(super) struct Session {
    pub(super) id: String,
    pub(super) object: &'static str,
    pub(super) amount_subtotal: i64,
    pub(super) amount_total: i64,
    pub(super) cancel_url: Option<String>,
    pub(super) client_reference_id: Option<String>,
    pub(super) created: i64,
    pub(super) currency: String,
    pub(super) customer_email: Option<String>,
    pub(super) expires_at: i64,
    pub(super) livemode: bool,
    pub(super) metadata: BTreeMap<String, String>,
    pub(super) mode: &'static str,
    pub(super) payment_intent: Option<String>,
    pub(super) payment_status: PaymentStatus,
    pub(super) status: SessionStatus,
    pub(super) success_url: Option<String>,
    /// The checkout page while the session is open; `null` after (as at Stripe).
    pub(super) url: Option<String>,
}

/// One line of a session (not part of the Session object: Stripe lists them apart).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Line {
    pub(super) name: String,
    pub(super) quantity: i64,
    /// Minor units.
    pub(super) unit_amount: i64,
}

/// A session with what only the sandbox sees.
#[derive(Debug, Clone)]
pub(super) struct StoredSession {
    /// The API key that created it.
    pub(super) account: String,
    pub(super) session: Session,
    pub(super) lines: Vec<Line>,
}

/// A webhook endpoint of an account.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    pub(super) id: String,
    pub(super) account: String,
    pub(super) url: String,
    pub(super) enabled_events: Vec<String>,
    pub(super) secret: String,
    pub(super) description: Option<String>,
    pub(super) metadata: BTreeMap<String, String>,
    pub(super) created: i64,
}

impl Endpoint {
    /// Whether events of `kind` go to it.
    pub(super) fn wants(&self, kind: &str) -> bool {
        self.enabled_events.iter().any(|e| e == "*" || e == kind)
    }

    /// The `webhook_endpoint` object; the secret only when just created.
    pub(super) fn object(&self, with_secret: bool) -> Value {
        let mut o = json!({
            "id": self.id,
            "object": "webhook_endpoint",
            "api_version": API_VERSION,
            "application": null,
            "created": self.created,
            "description": self.description,
            "enabled_events": self.enabled_events,
            "livemode": false,
            "metadata": self.metadata,
            "status": "enabled",
            "url": self.url,
        });
        if with_secret {
            o["secret"] = json!(self.secret);
        }
        o
    }
}

/// A response saved under an idempotency key.
#[derive(Debug, Clone)]
pub(super) struct Saved {
    /// `POST /v1/…` with the path's id.
    pub(super) route: String,
    /// The decoded form pairs, sorted.
    pub(super) params: Vec<(String, String)>,
    pub(super) status: StatusCode,
    pub(super) body: Value,
    /// Unix seconds of the first use.
    pub(super) at: i64,
}

/// Counters for tests.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StripeStats {
    /// Checkout Sessions created per `Idempotency-Key` (summed over accounts; a replay
    /// creates none): a retried payment request keeps its key at 1.
    pub sessions_per_idempotency_key: BTreeMap<String, u64>,
    /// Create requests answered from a saved response, per key.
    pub replays_per_idempotency_key: BTreeMap<String, u64>,
    /// Sessions created without a key.
    pub sessions_without_key: u64,
    /// API requests per account (the API key), refused and failed ones too.
    pub requests: BTreeMap<String, u64>,
}

/// Everything the Stripe part remembers (a field of the sandbox state).
#[derive(Default)]
pub(super) struct StripeState {
    pub(super) sessions: HashMap<String, StoredSession>,
    pub(super) endpoints: Vec<Endpoint>,
    /// By (account, key).
    pub(super) idempotency: HashMap<(String, String), Saved>,
    pub(super) deliveries: VecDeque<StripeDelivery>,
    pub(super) next_delivery: u64,
    pub(super) stats: StripeStats,
}

impl StripeState {
    /// Marks an open session whose `expires_at` has passed as expired; the event to send.
    pub(super) fn expire_if_due(&mut self, id: &str, now: i64) -> Option<events::PendingEvent> {
        let stored = self.sessions.get_mut(id)?;
        if stored.session.status != SessionStatus::Open || now < stored.session.expires_at {
            return None;
        }
        stored.session.status = SessionStatus::Expired;
        stored.session.url = None;
        let stored = stored.clone();
        Some(self.event(&stored, "checkout.session.expired", None))
    }

    fn push_delivery(&mut self, mut delivery: StripeDelivery) {
        self.next_delivery += 1;
        delivery.seq = self.next_delivery;
        if self.deliveries.len() >= MAX_DELIVERIES {
            self.deliveries.pop_front();
        }
        self.deliveries.push_back(delivery);
    }
}

/// A Stripe error answer: `{"error": {"type", "code"?, "message", "param"?}}`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StripeError {
    pub(super) status: StatusCode,
    /// `invalid_request_error`, `api_error`, `idempotency_error`.
    pub(super) kind: &'static str,
    pub(super) code: Option<&'static str>,
    pub(super) message: String,
    pub(super) param: Option<String>,
}

impl StripeError {
    /// 400 `invalid_request_error` about `param`.
    pub(super) fn param(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: Some("parameter_invalid"),
            message: message.into(),
            param: Some(param.into()),
        }
    }

    /// 400 `invalid_request_error` for a required parameter left out.
    pub(super) fn missing(param: &str) -> Self {
        Self {
            code: Some("parameter_missing"),
            ..Self::param(param, format!("Missing required param: {param}."))
        }
    }

    /// 400 `invalid_request_error` for a parameter the endpoint does not take.
    pub(super) fn unknown(param: &str) -> Self {
        Self {
            code: Some("parameter_unknown"),
            ..Self::param(param, format!("Received unknown parameter: {param}"))
        }
    }

    /// An `invalid_request_error` without a parameter.
    pub(super) fn request(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            kind: "invalid_request_error",
            code: None,
            message: message.into(),
            param: None,
        }
    }

    /// 404 for an id the account does not have (`object` as Stripe names it).
    pub(super) fn no_such(object: &str, id: &str, param: &str) -> Self {
        Self {
            code: Some("resource_missing"),
            param: Some(param.to_owned()),
            ..Self::request(
                StatusCode::NOT_FOUND,
                format!("No such {object}: '{}'", clip(id, 100)),
            )
        }
    }

    pub(super) fn body(&self) -> Value {
        let mut error = json!({"type": self.kind, "message": self.message});
        if let Some(code) = self.code {
            error["code"] = json!(code);
        }
        if let Some(param) = &self.param {
            error["param"] = json!(param);
        }
        json!({ "error": error })
    }
}

/// An answer of the API: JSON, with Stripe's `Request-Id` and, for a replay,
/// `Idempotent-Replayed: true`.
#[derive(Debug, Clone)]
pub(super) struct ApiAnswer {
    pub(super) status: StatusCode,
    pub(super) body: Value,
    pub(super) request_id: String,
    pub(super) replayed: bool,
}

impl ApiAnswer {
    pub(super) fn error(e: &StripeError, request_id: &str) -> Self {
        Self {
            status: e.status,
            body: e.body(),
            request_id: request_id.to_owned(),
            replayed: false,
        }
    }
}

impl IntoResponse for ApiAnswer {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string_pretty(&self.body).unwrap_or_default(),
        )
            .into_response();
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            headers.insert("request-id", v);
        }
        if self.replayed {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}

/// The API key of a request: `Bearer <key>`, or basic auth with the key as the user.
///
/// # Errors
/// A 401 Stripe error: no key, or not a secret (`sk_`) or restricted (`rk_`) test key.
pub(super) fn account(headers: &HeaderMap) -> Result<String, StripeError> {
    use base64::Engine;
    let unauthorized = |message: &str| StripeError::request(StatusCode::UNAUTHORIZED, message);
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(unauthorized(
            "You did not provide an API key: send it as 'Authorization: Bearer sk_test_…'.",
        ));
    };
    let key = if let Some(key) = value.strip_prefix("Bearer ") {
        key.trim().to_owned()
    } else if let Some(encoded) = value.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        decoded.split(':').next().unwrap_or_default().to_owned()
    } else {
        return Err(unauthorized(
            "Invalid authorization header: use 'Bearer <API key>'.",
        ));
    };
    let test_key = (key.starts_with("sk_") || key.starts_with("rk_"))
        && key.len() > 3
        && !key.contains("_live_")
        && key.bytes().all(|b| b.is_ascii_graphic());
    if test_key {
        Ok(key)
    } else {
        Err(unauthorized(&format!(
            "Invalid API Key provided: {}. The sandbox takes secret (sk_…) or restricted (rk_…) test keys.",
            redact(&key)
        )))
    }
}

/// A key as Stripe shows it in errors: its start and last four characters.
fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 12))
}

/// `prefix` and random letters and digits, like Stripe's ids (`cs_test_a1B2…`).
pub(super) fn random_id(prefix: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(prefix.len() + len);
    out.push_str(prefix);
    let mut bits = 0u128;
    let mut left = 0;
    for _ in 0..len {
        if left == 0 {
            // A ULID's low 80 bits are random.
            bits = ulid::Ulid::new().0 & ((1u128 << 80) - 1);
            left = 13;
        }
        out.push(char::from(ALPHABET[(bits % 62) as usize]));
        bits /= 62;
        left -= 1;
    }
    out
}

/// At most `max` characters of `text`.
pub(super) fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
