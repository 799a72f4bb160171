//! The control API for tests: pay a session with a chosen outcome, send any event about a
//! session, read the deliveries and the counters. Errors are `{"error": {"code",
//! "message"}}` with a 4xx, like the rest of the sandbox's control API.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::super::{Answer, Sandbox, control_body, now_epoch_seconds, query_map};
use super::endpoints::is_event_type;
use super::events::{EventReport, PendingEvent};
use super::{PaymentStatus, SessionStatus, StripeStats, random_id};

/// Most posts of one event a test may ask for.
pub const MAX_COPIES: usize = 20;

/// How a test's payment goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayOutcome {
    /// `checkout.session.completed` with `payment_status: paid`.
    #[default]
    Paid,
    /// `completed` with `payment_status: unpaid` (a delayed method), then
    /// `checkout.session.async_payment_succeeded` with `paid`.
    DelayedThenSucceeded,
    /// `completed` with `unpaid`, then `checkout.session.async_payment_failed` (still
    /// `unpaid`).
    DelayedThenFailed,
}

/// `POST /sandbox/stripe/sessions/{id}/pay` (every field optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripePay {
    /// What happens (default `paid`).
    pub outcome: PayOutcome,
    /// How many times each event is posted to each endpoint, concurrently, with one event
    /// id (1 to [`MAX_COPIES`]; default 1).
    pub deliveries: usize,
    /// Post as `application/octet-stream`, so the function gets the body base64-encoded.
    pub base64: bool,
}

impl Default for StripePay {
    /// Paid, one delivery, plain JSON.
    fn default() -> Self {
        Self {
            outcome: PayOutcome::Paid,
            deliveries: 1,
            base64: false,
        }
    }
}

fn one() -> usize {
    1
}

/// `POST /sandbox/stripe/sessions/{id}/events`: an event about the session as it is (its
/// state is not changed).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeEventRequest {
    /// The event type, e.g. `checkout.session.expired`.
    #[serde(rename = "type")]
    pub kind: String,
    /// As [`StripePay::deliveries`].
    #[serde(default = "one")]
    pub deliveries: usize,
    /// As [`StripePay::base64`].
    #[serde(default)]
    pub base64: bool,
}

/// What a control request sent: the session after it, and each event with its posts.
#[derive(Debug, Clone, Serialize)]
pub struct StripeReport {
    /// The Checkout Session as the API shows it now.
    pub session: Value,
    /// The events, in the order sent.
    pub events: Vec<EventReport>,
}

/// A control request refused; each variant documents its status.
#[derive(Debug, thiserror::Error)]
pub enum StripeControlError {
    /// 400: the request is malformed.
    #[error("{message}")]
    BadRequest {
        /// Snake-case code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// 404: no such Checkout Session.
    #[error("no checkout session {0}")]
    NoSuchSession(String),
    /// 409: the session is not open (`complete` or `expired`).
    #[error("the checkout session is {0}, not open")]
    NotOpen(&'static str),
}

impl StripeControlError {
    /// The HTTP status of the error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NoSuchSession(_) => StatusCode::NOT_FOUND,
            Self::NotOpen(_) => StatusCode::CONFLICT,
        }
    }

    /// The snake-case code of the error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } => code,
            Self::NoSuchSession(_) => "no_such_session",
            Self::NotOpen(_) => "session_not_open",
        }
    }
}

impl IntoResponse for StripeControlError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code(), "message": self.to_string()}});
        Answer::json(self.status(), body).into_response()
    }
}

fn check_copies(copies: usize) -> Result<(), StripeControlError> {
    if (1..=MAX_COPIES).contains(&copies) {
        Ok(())
    } else {
        Err(StripeControlError::BadRequest {
            code: "invalid_deliveries",
            message: format!("deliveries is 1 to {MAX_COPIES}"),
        })
    }
}

impl Sandbox {
    /// Pays an open session as a customer would (see [`PayOutcome`]) and posts the events;
    /// answers when every post has been answered.
    ///
    /// # Errors
    /// 400 `invalid_deliveries`, 404 `no_such_session`, 409 `session_not_open`.
    pub async fn stripe_pay(
        &self,
        session_id: &str,
        pay: StripePay,
    ) -> Result<StripeReport, StripeControlError> {
        check_copies(pay.deliveries)?;
        let completed = self.complete(session_id, pay.outcome)?;
        let mut events = vec![self.deliver(completed, pay.deliveries, pay.base64).await];
        let settle = match pay.outcome {
            PayOutcome::Paid => None,
            PayOutcome::DelayedThenSucceeded => Some((
                "checkout.session.async_payment_succeeded",
                PaymentStatus::Paid,
            )),
            PayOutcome::DelayedThenFailed => Some((
                "checkout.session.async_payment_failed",
                PaymentStatus::Unpaid,
            )),
        };
        if let Some((kind, payment_status)) = settle {
            let event = {
                let mut state = self.state();
                let stripe = &mut state.stripe;
                let stored = stripe
                    .sessions
                    .get_mut(session_id)
                    .ok_or_else(|| StripeControlError::NoSuchSession(session_id.to_owned()))?;
                stored.session.payment_status = payment_status;
                let stored = stored.clone();
                stripe.event(&stored, kind, None)
            };
            events.push(self.deliver(event, pay.deliveries, pay.base64).await);
        }
        Ok(StripeReport {
            session: self.session_json(session_id),
            events,
        })
    }

    /// Marks an open session complete; the `checkout.session.completed` event.
    fn complete(
        &self,
        session_id: &str,
        outcome: PayOutcome,
    ) -> Result<PendingEvent, StripeControlError> {
        let mut state = self.state();
        let stripe = &mut state.stripe;
        let due = stripe.expire_if_due(session_id, now_epoch_seconds());
        let Some(stored) = stripe.sessions.get_mut(session_id) else {
            return Err(StripeControlError::NoSuchSession(session_id.to_owned()));
        };
        if stored.session.status != SessionStatus::Open {
            let status = stored.session.status.as_str();
            drop(state);
            self.deliver_later(due.into_iter().collect());
            return Err(StripeControlError::NotOpen(status));
        }
        stored.session.status = SessionStatus::Complete;
        stored.session.url = None;
        stored.session.payment_intent = Some(random_id("pi_", 24));
        stored.session.payment_status = match outcome {
            PayOutcome::Paid => PaymentStatus::Paid,
            _ => PaymentStatus::Unpaid,
        };
        let stored = stored.clone();
        Ok(stripe.event(&stored, "checkout.session.completed", None))
    }

    /// Sends an event of any type about a session as it is, and waits for its posts.
    ///
    /// # Errors
    /// 400 `invalid_type` or `invalid_deliveries`, 404 `no_such_session`.
    pub async fn stripe_event(
        &self,
        session_id: &str,
        request: StripeEventRequest,
    ) -> Result<StripeReport, StripeControlError> {
        check_copies(request.deliveries)?;
        if request.kind == "*" || !is_event_type(&request.kind) {
            return Err(StripeControlError::BadRequest {
                code: "invalid_type",
                message: "type is an event type such as checkout.session.expired".into(),
            });
        }
        let (event, due) = {
            let mut state = self.state();
            let stripe = &mut state.stripe;
            let due = stripe.expire_if_due(session_id, now_epoch_seconds());
            let Some(stored) = stripe.sessions.get(session_id).cloned() else {
                return Err(StripeControlError::NoSuchSession(session_id.to_owned()));
            };
            (stripe.event(&stored, &request.kind, None), due)
        };
        self.deliver_later(due.into_iter().collect());
        let report = self
            .deliver(event, request.deliveries, request.base64)
            .await;
        Ok(StripeReport {
            session: self.session_json(session_id),
            events: vec![report],
        })
    }

    /// Sessions created per idempotency key, API requests per account.
    pub fn stripe_stats(&self) -> StripeStats {
        self.state().stripe.stats.clone()
    }

    /// The session as the API shows it (`null` when unknown).
    fn session_json(&self, session_id: &str) -> Value {
        self.state()
            .stripe
            .sessions
            .get(session_id)
            .map_or(Value::Null, |s| json!(s.session))
    }
}

/// A control body, or the default when empty.
fn body_or_default<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, StripeControlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    control_body(body).map_err(|e| StripeControlError::BadRequest {
        code: "invalid_json",
        message: e.to_string(),
    })
}

fn reply(result: Result<StripeReport, StripeControlError>) -> Response {
    match result {
        Ok(report) => Answer::json(StatusCode::OK, json!(report)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /sandbox/stripe/sessions/{id}/pay`.
pub(in super::super) async fn pay_route(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let result = match body_or_default::<StripePay>(&body) {
        Ok(pay) => sandbox.stripe_pay(&id, pay).await,
        Err(e) => Err(e),
    };
    reply(result)
}

/// `POST /sandbox/stripe/sessions/{id}/events`.
pub(in super::super) async fn event_route(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let result = match control_body::<StripeEventRequest>(&body) {
        Ok(request) => sandbox.stripe_event(&id, request).await,
        Err(e) => Err(StripeControlError::BadRequest {
            code: "invalid_json",
            message: e.to_string(),
        }),
    };
    reply(result)
}

/// `GET /sandbox/stripe/deliveries?session=&type=&event=`.
pub(in super::super) async fn deliveries_route(
    State(sandbox): State<Sandbox>,
    RawQuery(query): RawQuery,
) -> Response {
    let q = query_map(query.as_deref());
    let get = |k: &str| q.get(k).map(String::as_str).filter(|s| !s.is_empty());
    let items = sandbox.stripe_deliveries(get("session"), get("type"), get("event"));
    Answer::json(StatusCode::OK, json!({ "items": items })).into_response()
}

/// `DELETE /sandbox/stripe/deliveries`.
pub(in super::super) async fn clear_deliveries_route(State(sandbox): State<Sandbox>) -> Response {
    sandbox.clear_stripe_deliveries();
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /sandbox/stripe/stats`.
pub(in super::super) async fn stats_route(State(sandbox): State<Sandbox>) -> Response {
    Answer::json(StatusCode::OK, json!(sandbox.stripe_stats())).into_response()
}
