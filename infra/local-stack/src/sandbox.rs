//! The provider sandbox: a loopback stand-in for Meta's Graph API (WhatsApp Cloud API,
//! the Messenger/Instagram Send API, message templates, media), WeChat's Official
//! Account API (access tokens, customer-service messages, media) and the part of Stripe's
//! API the payments use (Checkout Sessions, webhook endpoints, signed events; see
//! [`stripe`]), for `make dev` and the integration tests.
//!
//! It checks what the functions send the way the providers do and answers in their shapes,
//! records every send call in an outbox, injects failures per account (queued, or at random
//! with a seed) and posts customer messages and delivery statuses to the dev server as
//! correctly signed webhooks, so a developer can chat with themselves.
//!
//! `META_GRAPH_URL` points at `{sandbox}/graph`, `WECHAT_API_URL` at `{sandbox}/wechat` and
//! `STRIPE_API_URL` at `{sandbox}/stripe`.
//!
//! | route | what |
//! |---|---|
//! | `POST /graph/{account}/messages` | WhatsApp Cloud API or Messenger/Instagram Send API |
//! | `GET/POST/DELETE /graph/{waba_id}/message_templates` | WhatsApp templates |
//! | `GET /graph/{media_id}`, `GET /files/{id}` | WhatsApp media URL lookup, the file |
//! | `GET /wechat/cgi-bin/token` | access token (a new one supersedes the old; 2,000 a day per app, then 45009) |
//! | `POST /wechat/cgi-bin/stable_token` | stable access token (the same one until its last five minutes; `force_refresh` replaces it) |
//! | `POST /wechat/cgi-bin/message/custom/send` | customer-service message |
//! | `POST /wechat/cgi-bin/media/upload`, `GET /wechat/cgi-bin/media/get` | media (videos as a `video_url`, as WeChat answers them) |
//! | `GET/DELETE /sandbox/outbox?account=&to=` | what was sent (every call, failed ones too) |
//! | `POST /sandbox/fail`, `POST /sandbox/chaos` | failure injection per account |
//! | `GET /sandbox/stats` | token fetches per app (both endpoints; `stable_token` ones and the tokens it issued apart), sends per account |
//! | `POST /sandbox/customer-message`, `POST /sandbox/status` | signed webhooks to the dev server |
//! | `POST /stripe/v1/checkout/sessions`, `GET /stripe/v1/checkout/sessions/{id}`, `POST /stripe/v1/checkout/sessions/{id}/expire` | Stripe Checkout Sessions |
//! | `GET/POST /stripe/v1/webhook_endpoints`, `DELETE /stripe/v1/webhook_endpoints/{id}` | Stripe webhook endpoints |
//! | `GET /stripe/checkout/{id}`, `POST /stripe/checkout/{id}/pay` | the page a customer pays on |
//! | `POST /sandbox/stripe/sessions/{id}/pay`, `POST /sandbox/stripe/sessions/{id}/events` | pay a session / send an event, as a test |
//! | `GET/DELETE /sandbox/stripe/deliveries`, `GET /sandbox/stripe/stats` | Stripe webhook deliveries; sessions per idempotency key |
//!
//! Every control route has a method on [`Sandbox`] too. Control errors are
//! `{"error": {"code", "message"}}` with a 4xx; provider routes answer as the provider does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod assets;
mod faults;
mod graph;
mod options;
pub mod stripe;
mod templates;
mod webhooks;
mod wechat;

#[cfg(test)]
mod receipt_tests;
#[cfg(test)]
mod stripe_tests;
#[cfg(test)]
mod tests;

pub use assets::MetaAssets;
pub use faults::{ChaosSettings, Fault};
pub use stripe::{
    PayOutcome, StripeControlError, StripeDelivery, StripeEventRequest, StripePay, StripeReport,
    StripeStats,
};
pub use webhooks::{CustomerMessage, StatusWebhook, WebhookReply};

/// Largest request body accepted (WeChat video uploads go up to 10 MB).
const MAX_BODY: usize = 20 * 1024 * 1024;
/// Outbox entries kept; the oldest go first (a long `make dev` session stays bounded,
/// and a whole integration-test run fits).
const MAX_OUTBOX: usize = 100_000;
/// How long WeChat keeps a superseded access token working: "the old token stays valid for
/// five minutes after a refresh" (Official Account docs, "Get access token").
pub const WECHAT_TOKEN_GRACE: Duration = Duration::from_secs(300);
/// An access token's life (`expires_in`), both endpoints.
pub const WECHAT_TOKEN_LIFETIME: Duration = Duration::from_secs(7200);
/// `stable_token` in normal mode hands out a new token only in its current token's last
/// five minutes ("普通模式下平台会提前5分钟更新access_token", getStableAccessToken docs).
pub const WECHAT_STABLE_RENEWAL: Duration = Duration::from_secs(300);
/// `cgi-bin/token` calls per app per day (then errcode 45009).
pub const WECHAT_TOKEN_DAILY_QUOTA: u64 = 2000;

/// How the sandbox is set up.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The dev server webhooks go to, e.g. `http://127.0.0.1:3000`; settable later with
    /// [`Sandbox::set_webhook_base`].
    pub webhook_base: Option<String>,
    /// The Meta app secret that signs webhooks (`META_APP_SECRET` of the dev server).
    pub meta_app_secret: String,
    /// How long a superseded WeChat access token keeps working ([`WECHAT_TOKEN_GRACE`] by
    /// default, as at WeChat; zero makes a new token invalidate the old one at once).
    pub wechat_token_grace: Duration,
    /// An access token's life ([`WECHAT_TOKEN_LIFETIME`]; tests shorten it).
    pub wechat_token_lifetime: Duration,
    /// The last part of a stable token's life in which `stable_token` hands out the next
    /// one ([`WECHAT_STABLE_RENEWAL`]).
    pub wechat_stable_renewal: Duration,
    /// `cgi-bin/token` calls per app per day ([`WECHAT_TOKEN_DAILY_QUOTA`]).
    pub wechat_token_daily_quota: u64,
}

impl Default for SandboxConfig {
    /// No webhook target, the dev app secret, WeChat's grace.
    fn default() -> Self {
        Self {
            webhook_base: None,
            meta_app_secret: "dev-app-secret".to_owned(),
            wechat_token_grace: WECHAT_TOKEN_GRACE,
            wechat_token_lifetime: WECHAT_TOKEN_LIFETIME,
            wechat_stable_renewal: WECHAT_STABLE_RENEWAL,
            wechat_token_daily_quota: WECHAT_TOKEN_DAILY_QUOTA,
        }
    }
}

/// The provider API a send call went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// WhatsApp Cloud API (`messaging_product: whatsapp`).
    Whatsapp,
    /// Messenger Platform Send API (Messenger and Instagram).
    Messenger,
    /// WeChat customer-service message.
    Wechat,
}

/// One send call as the sandbox saw and answered it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxItem {
    /// Order of arrival at the answer (1, 2, …), over all accounts.
    pub seq: u64,
    /// Which API.
    pub api: Api,
    /// phone_number_id, page / Instagram account id, or WeChat appid (empty when a WeChat
    /// token was unknown).
    pub account: String,
    /// The recipient: WhatsApp id, PSID / IGSID, or openid (empty when absent).
    pub to: String,
    /// The request JSON (the raw text as a JSON string when it was not JSON).
    pub body: Value,
    /// HTTP status answered.
    pub status: u16,
    /// The answer JSON.
    pub response: Value,
    /// `wamid…` / `m_…` when accepted (WeChat gives none).
    pub provider_message_id: Option<String>,
    /// Whether the answer was an injected failure.
    pub injected: bool,
    /// An injected delay before the call was processed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// When it was answered (RFC 3339, UTC).
    pub at: String,
}

/// Send calls of one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SendCounts {
    /// Calls answered with success.
    pub accepted: u64,
    /// Calls answered with an error (injected or not).
    pub failed: u64,
}

/// Counters since start.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// WeChat token requests per appid, `cgi-bin/token` and `cgi-bin/stable_token` (refused
    /// ones too).
    pub token_fetches: BTreeMap<String, u64>,
    /// Of those, `cgi-bin/stable_token` requests per appid.
    pub stable_token_fetches: BTreeMap<String, u64>,
    /// New tokens `cgi-bin/stable_token` issued per appid (a request answered with the
    /// current token issues none).
    pub stable_tokens_issued: BTreeMap<String, u64>,
    /// Send calls per account.
    pub sends: BTreeMap<String, SendCounts>,
}

/// A control-API failure; each variant documents its status.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// 400: the request is malformed or names nothing usable.
    #[error("{message}")]
    BadRequest {
        /// Snake-case code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// 409: no dev server to post webhooks to ([`Sandbox::set_webhook_base`]).
    #[error("no webhook target: the sandbox does not know the dev server's URL")]
    NoWebhookTarget,
    /// 502: the dev server could not be reached.
    #[error("the dev server could not be reached: {0}")]
    WebhookUnreachable(String),
}

impl SandboxError {
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status of the error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NoWebhookTarget => StatusCode::CONFLICT,
            Self::WebhookUnreachable(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The snake-case code of the error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } => code,
            Self::NoWebhookTarget => "no_webhook_target",
            Self::WebhookUnreachable(_) => "webhook_unreachable",
        }
    }
}

impl IntoResponse for SandboxError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code(), "message": self.to_string()}});
        Answer::json(self.status(), body).into_response()
    }
}

/// A stored file: WhatsApp media, a Messenger attachment URL, WeChat media.
#[derive(Debug, Clone)]
struct StoredFile {
    bytes: Vec<u8>,
    mime: String,
    /// The WeChat appid that uploaded it; files put by a test belong to every app.
    owner: Option<String>,
}

/// Everything the sandbox remembers.
#[derive(Default)]
struct SandboxState {
    webhook_base: Option<String>,
    files: HashMap<String, StoredFile>,
    outbox: VecDeque<OutboxItem>,
    next_seq: u64,
    faults: HashMap<String, VecDeque<Fault>>,
    chaos: HashMap<String, faults::Chaos>,
    tokens: wechat::Tokens,
    stats: Stats,
    templates: HashMap<String, Vec<templates::Template>>,
    next_template_id: u64,
    stripe: stripe::StripeState,
    /// Which Meta accounts each access token controls.
    meta_grants: HashMap<String, assets::Grant>,
}

struct Inner {
    meta_app_secret: String,
    token_grace: Duration,
    token_lifetime: Duration,
    stable_renewal: Duration,
    token_daily_quota: u64,
    http: reqwest::Client,
    state: Mutex<SandboxState>,
}

/// The sandbox; clones share one state.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").finish_non_exhaustive()
    }
}

/// A send call's record before it gets its sequence number.
struct Sent {
    api: Api,
    account: String,
    to: String,
    body: Value,
    answer: Answer,
    provider_message_id: Option<String>,
    injected: bool,
    delay_ms: Option<u64>,
}

impl Sandbox {
    /// A sandbox with nothing stored.
    pub fn new(config: SandboxConfig) -> Self {
        let http = reqwest::Client::builder()
            // Webhooks go to loopback: a proxy from the environment must not catch them.
            .no_proxy()
            // The methods are called from many runtimes (one per test): a pooled connection
            // would die with the runtime that opened it.
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client without TLS settings always builds");
        Self {
            inner: Arc::new(Inner {
                meta_app_secret: config.meta_app_secret,
                token_grace: config.wechat_token_grace,
                token_lifetime: config.wechat_token_lifetime,
                stable_renewal: config.wechat_stable_renewal,
                token_daily_quota: config.wechat_token_daily_quota,
                http,
                state: Mutex::new(SandboxState {
                    webhook_base: config.webhook_base,
                    next_template_id: 1_000_000_000_000_000,
                    ..SandboxState::default()
                }),
            }),
        }
    }

    /// Every route (provider APIs and the control API).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/graph/{id}", get(graph::media_lookup))
            .route("/graph/{id}/messages", post(graph::send))
            .route("/graph/{id}/phone_numbers", get(assets::phone_numbers))
            .route("/graph/{id}/subscribed_apps", get(assets::subscribed_apps))
            .route("/sandbox/meta/assets", post(assets::grant_route))
            .route(
                "/graph/{id}/message_templates",
                get(templates::list)
                    .post(templates::create)
                    .delete(templates::delete),
            )
            .route("/files/{id}", get(graph::download))
            .route("/wechat/cgi-bin/token", get(wechat::token))
            .route("/wechat/cgi-bin/stable_token", post(wechat::stable_token))
            .route("/wechat/cgi-bin/message/custom/send", post(wechat::send))
            .route("/wechat/cgi-bin/media/upload", post(wechat::upload))
            .route("/wechat/cgi-bin/media/get", get(wechat::media_get))
            .route(
                "/sandbox/outbox",
                get(outbox_route).delete(clear_outbox_route),
            )
            .route("/sandbox/fail", post(fail_route))
            .route("/sandbox/chaos", post(chaos_route))
            .route("/sandbox/stats", get(stats_route))
            .route("/sandbox/customer-message", post(customer_message_route))
            .route("/sandbox/status", post(status_route))
            .route(
                "/stripe/v1/checkout/sessions",
                post(stripe::api::create_session),
            )
            .route(
                "/stripe/v1/checkout/sessions/{id}",
                get(stripe::api::retrieve_session),
            )
            .route(
                "/stripe/v1/checkout/sessions/{id}/expire",
                post(stripe::api::expire_session),
            )
            .route(
                "/stripe/v1/webhook_endpoints",
                get(stripe::endpoints::list).post(stripe::endpoints::create),
            )
            .route(
                "/stripe/v1/webhook_endpoints/{id}",
                delete(stripe::endpoints::delete),
            )
            .route("/stripe/v1/{*rest}", any(stripe::api::unknown))
            .route("/stripe/checkout/{id}", get(stripe::page::show))
            .route("/stripe/checkout/{id}/pay", post(stripe::page::pay))
            .route(
                "/sandbox/stripe/sessions/{id}/pay",
                post(stripe::control::pay_route),
            )
            .route(
                "/sandbox/stripe/sessions/{id}/events",
                post(stripe::control::event_route),
            )
            .route(
                "/sandbox/stripe/deliveries",
                get(stripe::control::deliveries_route)
                    .delete(stripe::control::clear_deliveries_route),
            )
            .route("/sandbox/stripe/stats", get(stripe::control::stats_route))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self.clone())
    }

    /// Serves [`Sandbox::router`] on the listener until the task is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Serves a file: `GET /graph/{id}` answers like the Graph API media lookup (url,
    /// mime_type, sha256, file_size), `GET /files/{id}` returns the bytes, and so does
    /// WeChat's `media/get` except for videos, which it answers with a `video_url` to
    /// `/files/{id}` (as WeChat does). Replaces a file of the same id.
    pub fn put_file(&self, id: &str, bytes: Vec<u8>, mime: &str) {
        self.state().files.insert(
            id.to_owned(),
            StoredFile {
                bytes,
                mime: mime.to_owned(),
                owner: None,
            },
        );
    }

    /// Sets the dev server webhooks go to (e.g. `http://127.0.0.1:3000`).
    pub fn set_webhook_base(&self, url: String) {
        self.state().webhook_base = Some(url.trim_end_matches('/').to_owned());
    }

    /// The send calls recorded, oldest first, optionally only those of an account and/or
    /// to a recipient.
    pub fn outbox(&self, account: Option<&str>, to: Option<&str>) -> Vec<OutboxItem> {
        self.state()
            .outbox
            .iter()
            .filter(|i| account.is_none_or(|a| i.account == a) && to.is_none_or(|t| i.to == t))
            .cloned()
            .collect()
    }

    /// Forgets every recorded send call.
    pub fn clear_outbox(&self) {
        self.state().outbox.clear();
    }

    /// Queues failures for the next send calls to `account`, one per call, in order;
    /// they come before any chaos.
    pub fn fail_next(&self, account: &str, faults: impl IntoIterator<Item = Fault>) {
        self.state()
            .faults
            .entry(account.to_owned())
            .or_default()
            .extend(faults);
    }

    /// Makes sends to `account` fail at random (seeded); both rates zero turns it off.
    pub fn set_chaos(&self, account: &str, settings: ChaosSettings) -> Result<(), SandboxError> {
        settings.check()?;
        let mut state = self.state();
        if settings.is_off() {
            state.chaos.remove(account);
        } else {
            state
                .chaos
                .insert(account.to_owned(), faults::Chaos::new(settings));
        }
        Ok(())
    }

    /// Token fetches and send counts since start.
    pub fn stats(&self) -> Stats {
        self.state().stats.clone()
    }

    fn state(&self) -> MutexGuard<'_, SandboxState> {
        // A panic elsewhere while holding the lock leaves plain data behind: keep serving.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The next failure for a send to `account`: a queued one, else a chaos draw.
    fn next_fault(&self, account: &str, api: Api) -> Option<Fault> {
        let mut state = self.state();
        if let Some(fault) = state.faults.get_mut(account).and_then(VecDeque::pop_front) {
            return Some(fault);
        }
        state.chaos.get_mut(account).and_then(|c| c.draw(api))
    }

    /// Records a send call in the outbox and the counters; returns its answer.
    fn record(&self, sent: Sent) -> Answer {
        let accepted = sent.answer.is_success();
        let mut state = self.state();
        state.next_seq += 1;
        let counts = state.stats.sends.entry(sent.account.clone()).or_default();
        if accepted {
            counts.accepted += 1;
        } else {
            counts.failed += 1;
        }
        let item = OutboxItem {
            seq: state.next_seq,
            api: sent.api,
            account: sent.account,
            to: sent.to,
            body: sent.body,
            status: sent.answer.status.as_u16(),
            response: sent.answer.body.clone(),
            provider_message_id: sent.provider_message_id,
            injected: sent.injected,
            delay_ms: sent.delay_ms,
            at: now_rfc3339(),
        };
        if state.outbox.len() >= MAX_OUTBOX {
            state.outbox.pop_front();
        }
        state.outbox.push_back(item);
        sent.answer
    }
}

/// A provider-style JSON answer.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    body: Value,
    /// `Retry-After` seconds (Graph 429).
    retry_after: Option<u64>,
    content_type: &'static str,
}

impl Answer {
    fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body,
            retry_after: None,
            content_type: "application/json",
        }
    }

    /// WeChat answers everything with HTTP 200.
    fn wechat(body: Value) -> Self {
        Self {
            content_type: "application/json; encoding=utf-8",
            ..Self::json(StatusCode::OK, body)
        }
    }

    /// Success: a 2xx status, and for WeChat `errcode` 0 (or none).
    fn is_success(&self) -> bool {
        self.status.is_success() && self.body["errcode"].as_i64().unwrap_or(0) == 0
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, self.content_type)],
            self.body.to_string(),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Runs a send call on its own task: a client that gives up (a timeout test) does not
/// cancel the call, which is still processed and recorded, as at the provider.
async fn detached<F>(work: F) -> Response
where
    F: Future<Output = Answer> + Send + 'static,
{
    match tokio::spawn(work).await {
        Ok(answer) => answer.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn now_epoch_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A short random id like Graph's `fbtrace_id`.
fn trace_id() -> String {
    ulid::Ulid::new().to_string()[16..].to_owned()
}

/// A fresh unique id (upper-case letters and digits).
fn unique() -> String {
    ulid::Ulid::new().to_string()
}

/// Query parameters; a key given twice keeps the last value.
fn query_map(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// A control request body as `T`.
fn control_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, SandboxError> {
    serde_json::from_slice(body)
        .map_err(|e| SandboxError::bad_request("invalid_json", format!("the body: {e}")))
}

async fn not_found() -> Response {
    let body = json!({"error": {"code": "not_found", "message": "no such sandbox route"}});
    Answer::json(StatusCode::NOT_FOUND, body).into_response()
}

async fn outbox_route(State(sandbox): State<Sandbox>, RawQuery(query): RawQuery) -> Response {
    let q = query_map(query.as_deref());
    let account = q
        .get("account")
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    let to = q.get("to").map(String::as_str).filter(|s| !s.is_empty());
    let items = sandbox.outbox(account, to);
    Answer::json(StatusCode::OK, json!({ "items": items })).into_response()
}

async fn clear_outbox_route(State(sandbox): State<Sandbox>) -> Response {
    sandbox.clear_outbox();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct FailRequest {
    account: String,
    next: Vec<Value>,
}

async fn fail_route(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let result = control_body::<FailRequest>(&body).and_then(|request| {
        if request.account.is_empty() {
            return Err(SandboxError::bad_request(
                "missing_account",
                "account is required",
            ));
        }
        let faults = request
            .next
            .iter()
            .enumerate()
            .map(|(i, f)| {
                Fault::parse(f).map_err(|e| {
                    SandboxError::bad_request("invalid_fault", format!("next[{i}]: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let queued = faults.len();
        sandbox.fail_next(&request.account, faults);
        Ok(json!({"account": request.account, "queued": queued}))
    });
    match result {
        Ok(body) => Answer::json(StatusCode::OK, body).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct ChaosRequest {
    account: String,
    #[serde(flatten)]
    settings: ChaosSettings,
}

async fn chaos_route(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let result = control_body::<ChaosRequest>(&body).and_then(|request| {
        if request.account.is_empty() {
            return Err(SandboxError::bad_request(
                "missing_account",
                "account is required",
            ));
        }
        sandbox.set_chaos(&request.account, request.settings)?;
        Ok(json!({"account": request.account, "chaos": !request.settings.is_off()}))
    });
    match result {
        Ok(body) => Answer::json(StatusCode::OK, body).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn stats_route(State(sandbox): State<Sandbox>) -> Response {
    Answer::json(StatusCode::OK, json!(sandbox.stats())).into_response()
}

async fn customer_message_route(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let result = match control_body::<CustomerMessage>(&body) {
        Ok(message) => sandbox.customer_message(message).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(reply) => Answer::json(StatusCode::OK, json!(reply)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn status_route(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let result = match control_body::<StatusWebhook>(&body) {
        Ok(status) => sandbox.status(status).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(reply) => Answer::json(StatusCode::OK, json!(reply)).into_response(),
        Err(e) => e.into_response(),
    }
}
