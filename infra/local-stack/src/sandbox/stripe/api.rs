//! The API routes (`/stripe/v1/…`): each request is authenticated by its API key, may meet
//! an injected fault, is read from its form, and — for a `POST` with an `Idempotency-Key`
//! — answered from the response saved under that key when there is one (Stripe docs,
//! "Idempotent requests": the same key with other parameters or another endpoint is an
//! `idempotency_error`; a request refused before it ran saves nothing; keys last 24 h).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::super::{Api, Fault, Sandbox, now_epoch_seconds};
use super::create::NewSession;
use super::events::PendingEvent;
use super::params::Form;
use super::{
    ApiAnswer, IDEMPOTENCY_WINDOW, MAX_IDEMPOTENCY_KEY, PaymentStatus, Saved, Session,
    SessionStatus, StoredSession, StripeError, StripeState, account, random_id,
};

/// What a request did.
pub(super) enum Done {
    /// It ran: the answer, saved under its idempotency key.
    Ran(StatusCode, Value),
    /// Refused before it ran (bad parameters, unknown id): nothing saved.
    Refused(StripeError),
}

/// A request as the routes' work sees it.
pub(super) struct Call {
    pub(super) account: String,
    pub(super) request_id: String,
    pub(super) idempotency_key: Option<String>,
    pub(super) form: Form,
    /// `http://{Host}`: where the checkout pages are.
    pub(super) base_url: String,
    pub(super) now: i64,
}

pub(super) type Work = Box<dyn FnOnce(&mut StripeState, &Call) -> (Done, Vec<PendingEvent>) + Send>;

/// Runs a request on its own task: a client that gives up does not cancel it (as at
/// Stripe, where a retried request then meets the saved answer).
pub(super) async fn run(
    sandbox: Sandbox,
    headers: HeaderMap,
    route: String,
    idempotent: bool,
    body: Bytes,
    work: Work,
) -> Response {
    let task = async move {
        let request_id = random_id("req_", 14);
        sandbox
            .api_call(&headers, route, idempotent, &body, &request_id, work)
            .await
    };
    match tokio::spawn(task).await {
        Ok(answer) => answer.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The Stripe error of an injected fault (not [`Fault::Delay`]).
fn fault_error(fault: &Fault) -> StripeError {
    match fault {
        Fault::Status {
            status,
            message,
            code: graph_code,
            ..
        } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST);
            let (kind, code, text) = match status.as_u16() {
                429 => (
                    "invalid_request_error",
                    Some("rate_limit"),
                    "Too many requests hit the API too quickly (injected by the sandbox).",
                ),
                s if s >= 500 => (
                    "api_error",
                    None,
                    "Something went wrong on Stripe's end (injected by the sandbox).",
                ),
                401 => (
                    "invalid_request_error",
                    None,
                    "Invalid API Key provided (injected by the sandbox).",
                ),
                _ => (
                    "invalid_request_error",
                    None,
                    "The request was refused (injected by the sandbox).",
                ),
            };
            StripeError {
                status,
                kind,
                code,
                // A Graph code (from `/sandbox/chaos`) comes with Graph's text: not Stripe's.
                message: message
                    .clone()
                    .filter(|_| graph_code.is_none())
                    .unwrap_or_else(|| text.to_owned()),
                param: None,
            }
        }
        Fault::Errcode { errmsg, .. } => StripeError::request(
            StatusCode::BAD_REQUEST,
            errmsg
                .clone()
                .unwrap_or_else(|| "The request was refused (injected by the sandbox).".into()),
        ),
        // Not an answer: the caller waits instead.
        Fault::Delay { .. } => StripeError::request(StatusCode::BAD_REQUEST, "delayed"),
    }
}

impl Sandbox {
    async fn api_call(
        &self,
        headers: &HeaderMap,
        route: String,
        idempotent: bool,
        body: &[u8],
        request_id: &str,
        work: Work,
    ) -> ApiAnswer {
        let refused = |e: StripeError| ApiAnswer::error(&e, request_id);
        let account = match account(headers) {
            Ok(a) => a,
            Err(e) => return refused(e),
        };
        *self
            .state()
            .stripe
            .stats
            .requests
            .entry(account.clone())
            .or_default() += 1;
        match self.next_fault(&account, Api::Messenger) {
            Some(Fault::Delay { ms }) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Some(fault) => return refused(fault_error(&fault)),
            None => {}
        }
        let form_encoded = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if !body.is_empty() && !form_encoded {
            return refused(StripeError::request(
                StatusCode::BAD_REQUEST,
                "Invalid request: the body must be application/x-www-form-urlencoded.",
            ));
        }
        let form = match Form::parse(body) {
            Ok(f) => f,
            Err(e) => return refused(e),
        };
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .filter(|k| idempotent && !k.is_empty())
            .map(str::to_owned);
        if key
            .as_ref()
            .is_some_and(|k| k.chars().count() > MAX_IDEMPOTENCY_KEY)
        {
            return refused(StripeError::request(
                StatusCode::BAD_REQUEST,
                format!("Idempotency-Key is at most {MAX_IDEMPOTENCY_KEY} characters."),
            ));
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1");
        let call = Call {
            account,
            request_id: request_id.to_owned(),
            idempotency_key: key,
            form,
            base_url: format!("http://{host}"),
            now: now_epoch_seconds(),
        };
        let (answer, events) = {
            let mut state = self.state();
            answer(&mut state.stripe, &call, route, work)
        };
        self.deliver_later(events);
        answer
    }
}

/// Replays, refuses or runs a request, under the state's lock (so two requests with one
/// key never both run).
fn answer(
    state: &mut StripeState,
    call: &Call,
    route: String,
    work: Work,
) -> (ApiAnswer, Vec<PendingEvent>) {
    let ran = |status, body| ApiAnswer {
        status,
        body,
        request_id: call.request_id.clone(),
        replayed: false,
    };
    let slot = call
        .idempotency_key
        .as_ref()
        .map(|k| (call.account.clone(), k.clone()));
    if let Some(slot) = &slot {
        state
            .idempotency
            .retain(|_, saved| call.now - saved.at < IDEMPOTENCY_WINDOW);
        if let Some(saved) = state.idempotency.get(slot) {
            if saved.route != route || saved.params != call.form.pairs {
                let e = StripeError {
                    kind: "idempotency_error",
                    ..StripeError::request(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "Keys for idempotent requests can only be used with the same parameters they were first used with; '{}' was first used for another request.",
                            super::clip(&slot.1, 60)
                        ),
                    )
                };
                return (ApiAnswer::error(&e, &call.request_id), Vec::new());
            }
            let replay = ApiAnswer {
                replayed: true,
                ..ran(saved.status, saved.body.clone())
            };
            *state
                .stats
                .replays_per_idempotency_key
                .entry(slot.1.clone())
                .or_default() += 1;
            return (replay, Vec::new());
        }
    }
    let (done, events) = work(state, call);
    match done {
        Done::Refused(e) => (ApiAnswer::error(&e, &call.request_id), events),
        Done::Ran(status, body) => {
            if let Some(slot) = slot {
                state.idempotency.insert(
                    slot,
                    Saved {
                        route,
                        params: call.form.pairs.clone(),
                        status,
                        body: body.clone(),
                        at: call.now,
                    },
                );
            }
            (ran(status, body), events)
        }
    }
}

/// `POST /v1/checkout/sessions`.
pub(in super::super) async fn create_session(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = "POST /v1/checkout/sessions".to_owned();
    run(sandbox, headers, route, true, body, Box::new(create)).await
}

fn create(state: &mut StripeState, call: &Call) -> (Done, Vec<PendingEvent>) {
    let new = match NewSession::parse(&call.form, call.now) {
        Ok(n) => n,
        Err(e) => return (Done::Refused(e), Vec::new()),
    };
    let id = random_id("cs_test_", 58);
    let session = Session {
        id: id.clone(),
        object: "checkout.session",
        amount_subtotal: new.amount_total,
        amount_total: new.amount_total,
        cancel_url: new.cancel_url,
        client_reference_id: new.client_reference_id,
        created: call.now,
        currency: new.currency,
        customer_email: new.customer_email,
        expires_at: new.expires_at,
        livemode: false,
        metadata: new.metadata,
        mode: "payment",
        payment_intent: None,
        payment_status: PaymentStatus::Unpaid,
        status: SessionStatus::Open,
        success_url: new.success_url,
        url: Some(format!("{}/stripe/checkout/{id}", call.base_url)),
    };
    let body = json!(session);
    state.sessions.insert(
        id,
        StoredSession {
            account: call.account.clone(),
            session,
            lines: new.lines,
        },
    );
    match &call.idempotency_key {
        Some(key) => {
            *state
                .stats
                .sessions_per_idempotency_key
                .entry(key.clone())
                .or_default() += 1;
        }
        None => state.stats.sessions_without_key += 1,
    }
    (Done::Ran(StatusCode::OK, body), Vec::new())
}

/// The account's session `id`, expired first if its time has passed.
fn own_session<'a>(
    state: &'a mut StripeState,
    call: &Call,
    id: &str,
    events: &mut Vec<PendingEvent>,
) -> Result<&'a mut StoredSession, StripeError> {
    let owned = state
        .sessions
        .get(id)
        .is_some_and(|s| s.account == call.account);
    if !owned {
        return Err(StripeError::no_such("checkout.session", id, "session"));
    }
    events.extend(state.expire_if_due(id, call.now));
    state
        .sessions
        .get_mut(id)
        .ok_or_else(|| StripeError::no_such("checkout.session", id, "session"))
}

/// `GET /v1/checkout/sessions/{id}`.
pub(in super::super) async fn retrieve_session(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let route = format!("GET /v1/checkout/sessions/{id}");
    let work: Work = Box::new(move |state, call| {
        let mut events = Vec::new();
        let done = match own_session(state, call, &id, &mut events) {
            Ok(stored) => Done::Ran(StatusCode::OK, json!(stored.session)),
            Err(e) => Done::Refused(e),
        };
        (done, events)
    });
    run(sandbox, headers, route, false, Bytes::new(), work).await
}

/// `POST /v1/checkout/sessions/{id}/expire`.
pub(in super::super) async fn expire_session(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /v1/checkout/sessions/{id}/expire");
    let work: Work = Box::new(move |state, call| {
        let mut events = Vec::new();
        if let Err(e) = call.form.fields().only(&[]) {
            return (Done::Refused(e), events);
        }
        let stored = match own_session(state, call, &id, &mut events) {
            Ok(s) => s,
            Err(e) => return (Done::Refused(e), events),
        };
        if stored.session.status != SessionStatus::Open {
            let e = StripeError::request(
                StatusCode::BAD_REQUEST,
                format!(
                    "This Checkout Session is {}: only an open session can be expired.",
                    stored.session.status.as_str()
                ),
            );
            return (Done::Ran(e.status, e.body()), events);
        }
        stored.session.status = SessionStatus::Expired;
        stored.session.url = None;
        let body = json!(stored.session);
        let stored = stored.clone();
        let request = Some((call.request_id.as_str(), call.idempotency_key.as_deref()));
        events.push(state.event(&stored, "checkout.session.expired", request));
        (Done::Ran(StatusCode::OK, body), events)
    });
    run(sandbox, headers, route, true, body, work).await
}

/// Any other `/stripe/v1/…` request.
pub(in super::super) async fn unknown(method: Method, uri: Uri) -> Response {
    let path = uri.path().strip_prefix("/stripe").unwrap_or(uri.path());
    let e = StripeError::request(
        StatusCode::NOT_FOUND,
        format!(
            "Unrecognized request URL ({method}: {}). The sandbox speaks checkout sessions and webhook endpoints only.",
            super::clip(path, 200)
        ),
    );
    ApiAnswer::error(&e, &random_id("req_", 14)).into_response()
}
