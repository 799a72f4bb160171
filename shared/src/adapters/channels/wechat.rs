//! WeChat Official Account API: customer-service messages
//! (`cgi-bin/message/custom/send`), temporary media uploads (`cgi-bin/media/upload`) and
//! access tokens, with WeChat's `errcode` answers classified.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{retry_transport, transport_failure};
use crate::adapters::dynamo::DynamoStore;
use crate::domain::message::DeliveryError;
use crate::domain::outbound::{Attempt, Content, OutboundKind, Receipt};
use crate::ports::{FetchBody, MediaFetcher, MediaUpload, Outgoing, RoutedChannel};

/// A token is renewed this long before it expires: inside WeChat's last five minutes, when
/// `stable_token` hands out the next token (the old one works until it expires).
pub const REFRESH_BEFORE: Duration = Duration::from_secs(240);
/// How long one process may hold the refresh lease (above one call's time cap).
pub const LEASE: Duration = Duration::from_secs(15);
/// How long a process waits for another's refresh before fetching a token itself
/// (harmless: `stable_token` hands every caller the same token).
pub const WAIT: Duration = Duration::from_secs(3);
/// Between two reads of the token item while another process refreshes it.
const POLL: Duration = Duration::from_millis(100);

/// When tokens are renewed and how long a refresh may take (tests shorten them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenTimings {
    /// Renew this long before the token expires ([`REFRESH_BEFORE`]).
    pub refresh_before: Duration,
    /// The refresh lease ([`LEASE`]).
    pub lease: Duration,
    /// The wait for another process's refresh ([`WAIT`]).
    pub wait: Duration,
}

impl Default for TokenTimings {
    fn default() -> Self {
        Self {
            refresh_before: REFRESH_BEFORE,
            lease: LEASE,
            wait: WAIT,
        }
    }
}

/// The token item of an AppID as stored (epoch milliseconds).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// The token, once one was fetched.
    pub token: Option<String>,
    /// When WeChat said it expires.
    pub expires_at_ms: i64,
    /// When it was fetched.
    pub fetched_at_ms: i64,
    /// Until when a process holds the refresh lease.
    pub lease_until_ms: Option<i64>,
}

/// Which token a refresh replaces: the lease is taken only while it is still there.
#[derive(Clone, PartialEq, Eq)]
pub enum Replacing {
    /// A token expiring at or before this time (or none).
    Due {
        /// Epoch milliseconds.
        expiring_before_ms: i64,
    },
    /// The token WeChat refused.
    Refused(String),
}

/// A refresh lease to take.
#[derive(Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who takes it (one id per attempt).
    pub holder: String,
    /// Now (epoch milliseconds).
    pub now_ms: i64,
    /// When it runs out.
    pub until_ms: i64,
    /// The token it replaces.
    pub replacing: Replacing,
}

/// A token WeChat refused, and when this process started replacing it.
#[derive(Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The refused token.
    pub token: String,
    /// Epoch milliseconds.
    pub since_ms: i64,
}

/// What a process does with the token item it just read.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenStep {
    /// Use this token (it works until `expires_at_ms`).
    Use {
        /// The token.
        token: String,
        /// When it expires.
        expires_at_ms: i64,
    },
    /// Take the lease and fetch a new token.
    Refresh(Replacing),
    /// Another process is fetching and there is no usable token: read again shortly.
    Wait,
}

/// The lease decision (pure): use the stored token, refresh it, or wait for the process
/// that is refreshing it. A due token is still used while another process replaces it; a
/// refused one is replaced only while it is still the stored one (and was stored before
/// this process's refusal), so N processes refusing the same token cause one refresh.
pub fn decide(
    stored: Option<&StoredToken>,
    now_ms: i64,
    refused: Option<&Refusal>,
    refresh_before: Duration,
) -> TokenStep {
    let margin = i64::try_from(refresh_before.as_millis()).unwrap_or(i64::MAX);
    let leased = stored
        .and_then(|s| s.lease_until_ms)
        .is_some_and(|until| until > now_ms);
    let due = Replacing::Due {
        expiring_before_ms: now_ms.saturating_add(margin),
    };
    let Some((stored, token)) = stored.and_then(|s| s.token.as_deref().map(|t| (s, t))) else {
        return if leased {
            TokenStep::Wait
        } else {
            TokenStep::Refresh(due)
        };
    };
    if let Some(r) = refused
        && r.token == token
        && stored.fetched_at_ms < r.since_ms
    {
        return if leased {
            TokenStep::Wait
        } else {
            TokenStep::Refresh(Replacing::Refused(token.to_owned()))
        };
    }
    let usable = TokenStep::Use {
        token: token.to_owned(),
        expires_at_ms: stored.expires_at_ms,
    };
    if stored.expires_at_ms <= now_ms {
        if leased {
            TokenStep::Wait
        } else {
            TokenStep::Refresh(due)
        }
    } else if stored.expires_at_ms.saturating_sub(margin) <= now_ms && !leased {
        TokenStep::Refresh(due)
    } else {
        usable
    }
}

/// Tokens are never printed: the `Debug` of the token types hides them.
const HIDDEN: &str = "***";

impl std::fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredToken")
            .field("token", &self.token.as_ref().map(|_| HIDDEN))
            .field("expires_at_ms", &self.expires_at_ms)
            .field("fetched_at_ms", &self.fetched_at_ms)
            .field("lease_until_ms", &self.lease_until_ms)
            .finish()
    }
}

impl std::fmt::Debug for Replacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Due { expiring_before_ms } => f
                .debug_struct("Due")
                .field("expiring_before_ms", expiring_before_ms)
                .finish(),
            Self::Refused(_) => f.debug_tuple("Refused").field(&HIDDEN).finish(),
        }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("holder", &self.holder)
            .field("now_ms", &self.now_ms)
            .field("until_ms", &self.until_ms)
            .field("replacing", &self.replacing)
            .finish()
    }
}

impl std::fmt::Debug for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refusal")
            .field("token", &HIDDEN)
            .field("since_ms", &self.since_ms)
            .finish()
    }
}

impl std::fmt::Debug for TokenStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Use { expires_at_ms, .. } => f
                .debug_struct("Use")
                .field("token", &HIDDEN)
                .field("expires_at_ms", expires_at_ms)
                .finish(),
            Self::Refresh(replacing) => f.debug_tuple("Refresh").field(replacing).finish(),
            Self::Wait => f.write_str("Wait"),
        }
    }
}

/// Now, in epoch milliseconds.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Access tokens by AppID, with when this process stops using them (then it reads the
/// shared item again).
#[derive(Clone, Default)]
pub struct TokenCache(Arc<Mutex<HashMap<String, (String, Instant)>>>);

impl TokenCache {
    fn get(&self, app_id: &str, stale: Option<&str>) -> Option<String> {
        let mut tokens = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match tokens.get(app_id) {
            Some((token, _)) if stale == Some(token.as_str()) => {
                tokens.remove(app_id);
                None
            }
            Some((token, until)) if *until > Instant::now() => Some(token.clone()),
            _ => None,
        }
    }

    /// Keeps a token until `margin` before it expires (not at all when it is due).
    fn put(&self, app_id: &str, token: &str, expires_at_ms: i64, margin: Duration) {
        let left = u64::try_from(expires_at_ms.saturating_sub(now_ms())).unwrap_or(0);
        let Some(keep) = Duration::from_millis(left).checked_sub(margin) else {
            return;
        };
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(app_id.to_owned(), (token.to_owned(), Instant::now() + keep));
    }
}

/// Where a process gets WeChat access tokens: its own cache in front of the deployment's
/// token item (when it has the table), which one process at a time refreshes with
/// `cgi-bin/stable_token`.
#[derive(Clone, Default)]
pub struct Tokens {
    cache: TokenCache,
    store: Option<DynamoStore>,
    timings: TokenTimings,
}

impl Tokens {
    /// Tokens shared through the table.
    pub fn shared(store: DynamoStore, timings: TokenTimings) -> Self {
        Self {
            cache: TokenCache::default(),
            store: Some(store),
            timings,
        }
    }
}

/// A token as WeChat gave it.
struct Fetched {
    token: String,
    fetched_at_ms: i64,
    expires_at_ms: i64,
}

/// The WeChat media type an outbound kind is uploaded as (`image`, `voice`, `video`).
pub fn media_type(kind: OutboundKind) -> &'static str {
    match kind {
        OutboundKind::Audio => "voice",
        OutboundKind::Video => "video",
        _ => "image",
    }
}

/// The body of `cgi-bin/message/custom/send`; media by an uploaded `media_id`.
pub fn body(message: &Outgoing<'_>) -> Value {
    let to = message.to;
    match &message.content {
        Content::Media { kind, source, .. } => {
            let t = media_type(*kind);
            let mut body = json!({"touser": to, "msgtype": t});
            body[t] = json!({"media_id": source});
            body
        }
        Content::Text(t) => json!({"touser": to, "msgtype": "text", "text": {"content": t}}),
        // Refused before (templates are WhatsApp-only); kept total for the type.
        Content::Template { name, .. } => {
            json!({"touser": to, "msgtype": "text", "text": {"content": name}})
        }
    }
}

/// Reads a WeChat API answer (HTTP 200 with `errcode`; 0 is success). Source: WeChat
/// Official Account global return codes (-1 busy, 40001/40014/42001 token invalid or
/// expired, 45015/45047 customer-service window and quota).
pub fn classify(status: u16, body: &[u8]) -> Attempt {
    if status == 429 || status >= 500 {
        return Attempt::Retry {
            code: format!("http_{status}"),
            after: None,
        };
    }
    let json: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) if (200..300).contains(&status) => return Attempt::Unknown,
        Err(_) => {
            return Attempt::Failed(DeliveryError::explain(&format!("http_{status}"), None));
        }
    };
    match json["errcode"].as_i64().unwrap_or(0) {
        0 if (200..300).contains(&status) => Attempt::Accepted(Receipt::default()),
        0 => Attempt::Failed(DeliveryError::explain(&format!("http_{status}"), None)),
        -1 => Attempt::Retry {
            code: "-1".into(),
            after: None,
        },
        40001 | 40014 | 42001 => Attempt::RefreshToken,
        code => Attempt::Failed(DeliveryError::explain(
            &code.to_string(),
            json["errmsg"].as_str(),
        )),
    }
}

/// A WeChat answer: its status, raw body, and JSON (`Null` when it is not JSON).
async fn answer(response: reqwest::Response) -> (u16, Vec<u8>, Value) {
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default().to_vec();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, body, json)
}

/// The AppID and AppSecret of a WeChat channel.
fn app(channel: &RoutedChannel) -> Result<(&str, &str), Attempt> {
    let c = &channel.credentials;
    match (&c.app_id, &c.app_secret) {
        (Some(id), Some(secret)) => Ok((id.expose(), secret.expose())),
        _ => Err(Attempt::Failed(DeliveryError::explain(
            "40125",
            Some("The channel has no WeChat AppID/AppSecret; reconnect it."),
        ))),
    }
}

/// What an account's token is kept under (this process's cache and the table's item): the
/// AppID with a fingerprint of the AppSecret. An AppID is public, so a channel that names
/// one without holding its secret never gets that account's token.
pub fn token_account(app_id: &str, secret: &str) -> String {
    use sha2::{Digest, Sha256};
    let fingerprint = hex::encode(&Sha256::digest(secret.as_bytes())[..8]);
    format!("{app_id}#{fingerprint}")
}

/// One process's view of the WeChat API.
pub struct Client<'a> {
    /// The HTTP client.
    pub http: &'a reqwest::Client,
    /// `WECHAT_API_URL`.
    pub base: &'a str,
    /// Where tokens come from.
    pub tokens: &'a Tokens,
}

impl Client<'_> {
    /// The account's token: this process's cached one, else the deployment's stored one,
    /// else a new one fetched under the lease. `stale` is a token WeChat just refused: it
    /// is replaced once (unless another process already replaced it).
    ///
    /// # Errors
    /// The attempt to report: `Failed` 40125 without credentials or when WeChat gives no
    /// token, `Retry` on transport errors.
    pub async fn token(
        &self,
        channel: &RoutedChannel,
        stale: Option<&str>,
    ) -> Result<String, Attempt> {
        let (app_id, secret) = app(channel)?;
        let account = token_account(app_id, secret);
        let account = account.as_str();
        if let Some(token) = self.tokens.cache.get(account, stale) {
            return Ok(token);
        }
        let Some(store) = &self.tokens.store else {
            return self.fetch_and_keep(app_id, secret).await;
        };
        let timings = self.tokens.timings;
        let refusal = stale.map(|token| Refusal {
            token: token.to_owned(),
            since_ms: now_ms(),
        });
        let started = Instant::now();
        loop {
            let now = now_ms();
            let stored = match store.wechat_token(account).await {
                Ok(stored) => stored,
                Err(error) => {
                    tracing::warn!(%error, "wechat token item unreadable; fetching directly");
                    return self.fetch_and_keep(app_id, secret).await;
                }
            };
            match decide(
                stored.as_ref(),
                now,
                refusal.as_ref(),
                timings.refresh_before,
            ) {
                TokenStep::Use {
                    token,
                    expires_at_ms,
                } => {
                    self.tokens
                        .cache
                        .put(account, &token, expires_at_ms, timings.refresh_before);
                    return Ok(token);
                }
                TokenStep::Refresh(replacing) => {
                    let lease = Lease {
                        holder: ulid::Ulid::new().to_string(),
                        now_ms: now,
                        until_ms: now
                            .saturating_add(i64::try_from(timings.lease.as_millis()).unwrap_or(0)),
                        replacing,
                    };
                    match store.lease_wechat_token(account, &lease).await {
                        Ok(true) => {
                            return self.refresh(store, app_id, secret, &lease.holder).await;
                        }
                        // Another process took it, or replaced the token: read again.
                        Ok(false) => {}
                        Err(error) => {
                            tracing::warn!(%error, "wechat token lease failed; fetching directly");
                            return self.fetch_and_keep(app_id, secret).await;
                        }
                    }
                }
                TokenStep::Wait => {}
            }
            if started.elapsed() >= timings.wait {
                tracing::warn!(
                    "wechat token refresh by another process is late; fetching directly"
                );
                return self.fetch_and_keep(app_id, secret).await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fetches under the lease, stores the token for every process and ends the lease.
    async fn refresh(
        &self,
        store: &DynamoStore,
        app_id: &str,
        secret: &str,
        holder: &str,
    ) -> Result<String, Attempt> {
        let account = token_account(app_id, secret);
        let fetched = match self.fetch(app_id, secret).await {
            Ok(f) => f,
            Err(failed) => {
                if let Err(error) = store.release_wechat_token(&account, holder).await {
                    tracing::warn!(%error, "wechat token lease not released");
                }
                return Err(failed);
            }
        };
        match store
            .save_wechat_token(
                &account,
                holder,
                &fetched.token,
                fetched.fetched_at_ms,
                fetched.expires_at_ms,
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!("wechat token lease ran out before the token was stored"),
            Err(error) => tracing::warn!(%error, "wechat token not stored"),
        }
        self.keep(&account, &fetched);
        Ok(fetched.token)
    }

    async fn fetch_and_keep(&self, app_id: &str, secret: &str) -> Result<String, Attempt> {
        let fetched = self.fetch(app_id, secret).await?;
        self.keep(&token_account(app_id, secret), &fetched);
        Ok(fetched.token)
    }

    fn keep(&self, account: &str, fetched: &Fetched) {
        self.tokens.cache.put(
            account,
            &fetched.token,
            fetched.expires_at_ms,
            self.tokens.timings.refresh_before,
        );
    }

    /// `POST cgi-bin/stable_token` in normal mode: the account's current token (the same
    /// for every caller until WeChat renews it in its last five minutes; a new token never
    /// cuts an old one short).
    async fn fetch(&self, app_id: &str, secret: &str) -> Result<Fetched, Attempt> {
        let url = format!("{}/cgi-bin/stable_token", self.base);
        let body = json!({
            "grant_type": "client_credential",
            "appid": app_id,
            "secret": secret,
            "force_refresh": false,
        });
        let fetched_at_ms = now_ms();
        let response = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| retry_transport(&e))?;
        let (status, body, json) = answer(response).await;
        if let Some(token) = json["access_token"].as_str().filter(|t| !t.is_empty()) {
            let ttl = json["expires_in"].as_i64().unwrap_or(7200).max(0);
            return Ok(Fetched {
                token: token.to_owned(),
                fetched_at_ms,
                expires_at_ms: fetched_at_ms.saturating_add(ttl.saturating_mul(1000)),
            });
        }
        Err(match classify(status, &body) {
            Attempt::Accepted(_) | Attempt::Unknown | Attempt::RefreshToken => Attempt::Failed(
                DeliveryError::explain("40125", Some("WeChat gave no access token")),
            ),
            other => other,
        })
    }

    async fn post_send(&self, token: &str, body: &Value) -> Attempt {
        let url = format!("{}/cgi-bin/message/custom/send", self.base);
        let sent = self
            .http
            .post(url)
            .query(&[("access_token", token)])
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return transport_failure(&e),
        };
        let status = response.status().as_u16();
        match response.bytes().await {
            Ok(body) => classify(status, &body),
            Err(_) => Attempt::Unknown,
        }
    }

    /// Sends a customer-service message; a refused token is replaced once.
    pub async fn send(&self, channel: &RoutedChannel, body: &Value) -> Attempt {
        let token = match self.token(channel, None).await {
            Ok(t) => t,
            Err(failed) => return failed,
        };
        match self.post_send(&token, body).await {
            // Expired or replaced: once more, fresh.
            Attempt::RefreshToken => match self.token(channel, Some(&token)).await {
                Ok(fresh) => match self.post_send(&fresh, body).await {
                    Attempt::RefreshToken => Attempt::Failed(DeliveryError::explain(
                        "42001",
                        Some("access token refused"),
                    )),
                    other => other,
                },
                Err(failed) => failed,
            },
            other => other,
        }
    }

    /// Uploads a file as temporary media; its `media_id`.
    ///
    /// # Errors
    /// The attempt to report (an answer without a `media_id` is worth a retry: an upload
    /// reaches no customer).
    pub async fn upload(
        &self,
        channel: &RoutedChannel,
        file: &MediaUpload<'_>,
    ) -> Result<String, Attempt> {
        let mut stale = None;
        for _ in 0..2 {
            let token = self.token(channel, stale.as_deref()).await?;
            let part = reqwest::multipart::Part::bytes(file.bytes.to_vec())
                .file_name(file.filename.to_owned())
                .mime_str(file.mime_type)
                .map_err(|_| {
                    Attempt::Failed(DeliveryError::explain("40005", Some("invalid file type")))
                })?;
            let form = reqwest::multipart::Form::new().part("media", part);
            let url = format!("{}/cgi-bin/media/upload", self.base);
            let response = self
                .http
                .post(url)
                .query(&[
                    ("access_token", token.as_str()),
                    ("type", media_type(file.kind)),
                ])
                .multipart(form)
                .send()
                .await
                .map_err(|e| retry_transport(&e))?;
            let (status, body, json) = answer(response).await;
            if let Some(id) = json["media_id"].as_str() {
                return Ok(id.to_owned());
            }
            match classify(status, &body) {
                Attempt::RefreshToken => stale = Some(token),
                Attempt::Accepted(_) | Attempt::Unknown => {
                    return Err(Attempt::Retry {
                        code: "upload".into(),
                        after: None,
                    });
                }
                other => return Err(other),
            }
        }
        Err(Attempt::Failed(DeliveryError::explain(
            "42001",
            Some("access token refused"),
        )))
    }
}

/// The largest JSON answer `media/get` gives instead of a file (an error, a `video_url`).
const MEDIA_ANSWER_CAP: usize = 16 * 1024;

async fn read_small<B: FetchBody>(body: &mut B, cap: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next_chunk().await? {
        out.extend_from_slice(&chunk);
        if out.len() > cap {
            return Err("WeChat's answer is too large".into());
        }
    }
    Ok(out)
}

/// Whether a `media/get` answer is JSON rather than the file (WeChat sends its errors and
/// video links as `application/json` or `text/plain`).
fn is_json_answer(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| c.starts_with("application/json") || c.starts_with("text/plain"))
}

/// What a JSON `media/get` answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaAnswer {
    /// A video: its download link.
    VideoUrl(String),
    /// The token was refused (40001/40014/42001).
    RefreshToken,
    /// No file: the reason for the agent.
    Unavailable(String),
}

/// Reads a JSON `media/get` answer (pure).
pub fn media_answer(body: &[u8]) -> MediaAnswer {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return MediaAnswer::Unavailable(
            "WeChat could not give the media: no file in the answer".into(),
        );
    };
    if let Some(url) = json["video_url"].as_str().filter(|u| !u.is_empty()) {
        return MediaAnswer::VideoUrl(url.to_owned());
    }
    match json["errcode"].as_i64() {
        Some(40001 | 40014 | 42001) => MediaAnswer::RefreshToken,
        code => MediaAnswer::Unavailable(
            format!(
                "WeChat could not give the media: {} {}",
                code.map_or_else(|| "no file in the answer".to_owned(), |c| c.to_string()),
                json["errmsg"].as_str().unwrap_or("")
            )
            .trim_end()
            .to_owned(),
        ),
    }
}

/// A video link as fetched: WeChat hands out `http://` links; anything but the local
/// sandbox is asked over https (the fetch guard allows nothing else).
fn video_link(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed)
            if parsed.scheme() == "http"
                && !matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) =>
        {
            let _ = parsed.set_scheme("https");
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

impl Client<'_> {
    /// A customer's file behind a WeChat `media_id` (`cgi-bin/media/get`, with the
    /// deployment's token): the file's body, or for a video the file behind the
    /// `video_url` WeChat answers with. Every request goes through `fetcher` (the SSRF
    /// guard); a refused token is replaced once.
    ///
    /// # Errors
    /// Why the file is unavailable, for the agent (tokens never appear in it).
    pub async fn open_media<F: MediaFetcher>(
        &self,
        fetcher: &F,
        channel: &RoutedChannel,
        media_id: &str,
    ) -> Result<F::Body, String> {
        let mut stale: Option<String> = None;
        for _ in 0..2 {
            let token =
                self.token(channel, stale.as_deref())
                    .await
                    .map_err(|failed| match failed {
                        Attempt::Failed(e) => {
                            format!("WeChat gave no access token: {} ({})", e.reason, e.code)
                        }
                        _ => "WeChat could not be reached for an access token".to_owned(),
                    })?;
            let mut url = url::Url::parse(&format!("{}/cgi-bin/media/get", self.base))
                .map_err(|_| "WECHAT_API_URL is not a URL".to_owned())?;
            url.query_pairs_mut()
                .append_pair("access_token", &token)
                .append_pair("media_id", media_id);
            let mut body = fetcher
                .get(url.as_str(), None)
                .await
                .map_err(|reason| format!("the download failed: {reason}"))?;
            if !is_json_answer(body.content_type()) {
                return Ok(body);
            }
            let answer = read_small(&mut body, MEDIA_ANSWER_CAP).await?;
            match media_answer(&answer) {
                MediaAnswer::VideoUrl(video) => {
                    return fetcher
                        .get(&video_link(&video), None)
                        .await
                        .map_err(|reason| format!("the video download failed: {reason}"));
                }
                MediaAnswer::RefreshToken => stale = Some(token),
                MediaAnswer::Unavailable(reason) => return Err(reason),
            }
        }
        Err("WeChat refused the account's access token twice".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outbound::Delivery;

    #[test]
    fn wechat_bodies_use_uploaded_media_ids() {
        let out = |content| {
            body(&Outgoing {
                to: "openid",
                content,
                delivery: Delivery::Response,
                reference: "r",
            })
        };
        let b = out(Content::Text("你好"));
        assert_eq!(b["touser"], "openid");
        assert_eq!(b["msgtype"], "text");
        assert_eq!(b["text"]["content"], "你好");
        let b = out(Content::Media {
            kind: OutboundKind::Audio,
            source: "MEDIA1",
            caption: None,
            filename: "a.amr",
        });
        assert_eq!(b["msgtype"], "voice");
        assert_eq!(b["voice"]["media_id"], "MEDIA1");
    }

    #[test]
    fn wechat_answers_are_classified() {
        assert_eq!(
            classify(200, br#"{"errcode":0,"errmsg":"ok"}"#),
            Attempt::Accepted(Receipt::default())
        );
        assert_eq!(
            classify(200, br#"{"errcode":42001}"#),
            Attempt::RefreshToken
        );
        assert_eq!(
            classify(200, br#"{"errcode":40001}"#),
            Attempt::RefreshToken
        );
        assert!(matches!(
            classify(200, br#"{"errcode":-1}"#),
            Attempt::Retry { .. }
        ));
        let Attempt::Failed(e) = classify(
            200,
            br#"{"errcode":45047,"errmsg":"out of response count limit"}"#,
        ) else {
            panic!("permanent")
        };
        assert_eq!(e.code, "45047");
    }

    #[test]
    fn a_refused_token_is_dropped_unless_already_replaced() {
        let cache = TokenCache::default();
        let in_two_hours = now_ms() + 7_200_000;
        cache.put("wx1", "A", in_two_hours, REFRESH_BEFORE);
        assert_eq!(cache.get("wx1", None).as_deref(), Some("A"));
        assert_eq!(cache.get("wx1", Some("old")).as_deref(), Some("A"));
        assert_eq!(cache.get("wx1", Some("A")), None);
        assert_eq!(cache.get("wx1", None), None);
        // A token inside its renewal margin is not kept at all.
        cache.put("wx2", "B", now_ms() + 60_000, REFRESH_BEFORE);
        assert_eq!(cache.get("wx2", None), None);
    }

    fn stored(token: &str, expires_at_ms: i64, lease_until_ms: Option<i64>) -> StoredToken {
        StoredToken {
            token: Some(token.into()),
            expires_at_ms,
            fetched_at_ms: 1_000,
            lease_until_ms,
        }
    }

    #[test]
    fn a_fresh_stored_token_is_used_and_a_missing_one_fetched_unless_leased() {
        let margin = Duration::from_secs(240);
        let now = 10_000_000;
        let fresh = stored("A", now + 7_000_000, None);
        assert_eq!(
            decide(Some(&fresh), now, None, margin),
            TokenStep::Use {
                token: "A".into(),
                expires_at_ms: now + 7_000_000
            }
        );
        assert_eq!(
            decide(None, now, None, margin),
            TokenStep::Refresh(Replacing::Due {
                expiring_before_ms: now + 240_000
            })
        );
        let leased_empty = StoredToken {
            token: None,
            expires_at_ms: 0,
            fetched_at_ms: 0,
            lease_until_ms: Some(now + 5_000),
        };
        assert_eq!(
            decide(Some(&leased_empty), now, None, margin),
            TokenStep::Wait
        );
        // A lease that ran out is no lease.
        let abandoned = StoredToken {
            lease_until_ms: Some(now - 1),
            ..leased_empty
        };
        assert!(matches!(
            decide(Some(&abandoned), now, None, margin),
            TokenStep::Refresh(Replacing::Due { .. })
        ));
    }

    #[test]
    fn a_due_token_is_refreshed_by_one_process_while_the_others_keep_using_it() {
        let margin = Duration::from_secs(240);
        let now = 10_000_000;
        let due = stored("A", now + 100_000, None);
        assert!(matches!(
            decide(Some(&due), now, None, margin),
            TokenStep::Refresh(Replacing::Due { .. })
        ));
        let being_refreshed = stored("A", now + 100_000, Some(now + 10_000));
        assert_eq!(
            decide(Some(&being_refreshed), now, None, margin),
            TokenStep::Use {
                token: "A".into(),
                expires_at_ms: now + 100_000
            }
        );
        // Expired and being refreshed: nothing to use, wait.
        let expired = stored("A", now - 1, Some(now + 10_000));
        assert_eq!(decide(Some(&expired), now, None, margin), TokenStep::Wait);
    }

    #[test]
    fn a_refused_token_is_replaced_once_only_while_it_is_still_stored() {
        let margin = Duration::from_secs(240);
        let now = 10_000_000;
        let refusal = Refusal {
            token: "A".into(),
            since_ms: now - 10,
        };
        let still_a = stored("A", now + 7_000_000, None);
        assert_eq!(
            decide(Some(&still_a), now, Some(&refusal), margin),
            TokenStep::Refresh(Replacing::Refused("A".into()))
        );
        let a_being_replaced = stored("A", now + 7_000_000, Some(now + 10_000));
        assert_eq!(
            decide(Some(&a_being_replaced), now, Some(&refusal), margin),
            TokenStep::Wait
        );
        let replaced = stored("B", now + 7_000_000, None);
        assert!(matches!(
            decide(Some(&replaced), now, Some(&refusal), margin),
            TokenStep::Use { token, .. } if token == "B"
        ));
        // WeChat confirmed the same token after this refusal: it is used, not fetched again.
        let confirmed = StoredToken {
            fetched_at_ms: now,
            ..still_a
        };
        assert!(matches!(
            decide(Some(&confirmed), now, Some(&refusal), margin),
            TokenStep::Use { token, .. } if token == "A"
        ));
    }

    #[test]
    fn token_types_never_print_the_token() {
        let shown = format!(
            "{:?} {:?} {:?}",
            stored("SECRET-TOKEN", 1, None),
            TokenStep::Refresh(Replacing::Refused("SECRET-TOKEN".into())),
            TokenStep::Use {
                token: "SECRET-TOKEN".into(),
                expires_at_ms: 1
            }
        );
        assert!(!shown.contains("SECRET-TOKEN"), "{shown}");
    }

    #[test]
    fn media_get_json_answers_are_read() {
        assert_eq!(
            media_answer(br#"{"video_url":"http://203.205.1.1/v.mp4"}"#),
            MediaAnswer::VideoUrl("http://203.205.1.1/v.mp4".into())
        );
        assert_eq!(
            media_answer(br#"{"errcode":42001,"errmsg":"access_token expired"}"#),
            MediaAnswer::RefreshToken
        );
        let MediaAnswer::Unavailable(reason) =
            media_answer(br#"{"errcode":40007,"errmsg":"invalid media_id"}"#)
        else {
            panic!("unavailable")
        };
        assert_eq!(
            reason,
            "WeChat could not give the media: 40007 invalid media_id"
        );
        assert!(matches!(
            media_answer(b"<html>"),
            MediaAnswer::Unavailable(_)
        ));
    }

    #[test]
    fn video_links_are_fetched_over_https_except_from_the_local_sandbox() {
        assert_eq!(
            video_link("http://vweixinf.tc.qq.com/v.mp4?x=1"),
            "https://vweixinf.tc.qq.com/v.mp4?x=1"
        );
        assert_eq!(
            video_link("http://127.0.0.1:4000/files/v"),
            "http://127.0.0.1:4000/files/v"
        );
        assert_eq!(video_link("https://a.qpic.cn/v"), "https://a.qpic.cn/v");
    }
}
