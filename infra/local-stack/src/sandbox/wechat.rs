//! The WeChat Official Account API part: access tokens (`cgi-bin/token` and
//! `cgi-bin/stable_token`, isolated from each other as at WeChat, with their daily quotas),
//! customer-service messages and temporary media. Everything is answered with HTTP 200 and
//! an `errcode`, as WeChat does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::faults::wechat_errmsg;
use super::{
    Answer, Api, Fault, Sandbox, Sent, StoredFile, detached, now_epoch_seconds, query_map, unique,
};

/// `stable_token` calls per app per day (then 45009).
const STABLE_DAILY_QUOTA: u64 = 500_000;
/// `force_refresh` calls per app per day (then 45009).
const FORCE_DAILY_QUOTA: u64 = 20;
/// A `force_refresh` sooner than this after the previous one refreshes nothing.
const FORCE_SPACING: Duration = Duration::from_secs(30);

const MESSAGE_TYPES: &[&str] = &[
    "text",
    "image",
    "voice",
    "video",
    "music",
    "news",
    "mpnews",
    "msgmenu",
    "wxcard",
    "miniprogrampage",
];

struct TokenRecord {
    appid: String,
    issued: Instant,
    lifetime: Duration,
    superseded: Option<Instant>,
    /// Replaced by a `force_refresh`: refused at once.
    revoked: bool,
}

/// An app's stable token and its forced refreshes.
#[derive(Default)]
struct StableAccount {
    token: Option<String>,
    last_force: Option<Instant>,
}

/// The daily quotas counted per app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Quota {
    Token,
    Stable,
    Force,
}

/// Access tokens issued, each app's latest `cgi-bin/token` token and its stable token,
/// and the calls counted against each day's quotas.
#[derive(Default)]
pub(super) struct Tokens {
    by_token: HashMap<String, TokenRecord>,
    latest: HashMap<String, String>,
    stable: HashMap<String, StableAccount>,
    /// (app, quota) → (day, calls that day).
    calls: HashMap<(String, Quota), (u64, u64)>,
}

/// Days since the Unix epoch (WeChat's quotas reset daily).
fn today() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

/// A stable token handed out: the token, its remaining life, and whether it is new.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct StableGrant {
    pub(super) token: String,
    pub(super) expires_in: Duration,
    pub(super) issued: bool,
}

/// Why a token is refused: the errcode, and its app when the token was ours once.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TokenRefused {
    pub(super) errcode: i64,
    pub(super) appid: Option<String>,
}

impl Tokens {
    /// Counts a call against the app's daily quota: `false` once it is spent.
    fn within_quota(&mut self, appid: &str, quota: Quota, limit: u64) -> bool {
        let day = today();
        let calls = self
            .calls
            .entry((appid.to_owned(), quota))
            .or_insert((day, 0));
        if calls.0 != day {
            *calls = (day, 0);
        }
        calls.1 += 1;
        calls.1 <= limit
    }

    /// Records a new token (and forgets dead ones).
    fn record(&mut self, appid: &str, now: Instant, lifetime: Duration, grace: Duration) -> String {
        self.by_token.retain(|_, t| {
            now.duration_since(t.issued) < t.lifetime
                && !t.revoked
                && t.superseded.is_none_or(|s| now.duration_since(s) <= grace)
        });
        let token = format!("{}{}", unique(), unique());
        self.by_token.insert(
            token.clone(),
            TokenRecord {
                appid: appid.to_owned(),
                issued: now,
                lifetime,
                superseded: None,
                revoked: false,
            },
        );
        token
    }

    /// A new `cgi-bin/token` token for `appid`; the previous one stops working after
    /// `grace` (stable tokens are not touched).
    pub(super) fn issue(
        &mut self,
        appid: &str,
        now: Instant,
        lifetime: Duration,
        grace: Duration,
    ) -> String {
        let token = self.record(appid, now, lifetime, grace);
        if let Some(old) = self.latest.insert(appid.to_owned(), token.clone()) {
            if let Some(record) = self.by_token.get_mut(&old) {
                record.superseded = Some(now);
            }
        }
        token
    }

    /// `cgi-bin/stable_token`: in normal mode the app's current stable token while more
    /// than `renewal` of its life is left, else a new one (the old one works until it
    /// expires); `force` replaces it at once (the old one dies), at most 20 times a day
    /// and not twice within 30 s (a sooner one hands out the current token). `Err` is the
    /// errcode (45009: a daily quota is spent).
    pub(super) fn stable(
        &mut self,
        appid: &str,
        now: Instant,
        force: bool,
        lifetime: Duration,
        renewal: Duration,
    ) -> Result<StableGrant, i64> {
        if !self.within_quota(appid, Quota::Stable, STABLE_DAILY_QUOTA) {
            return Err(45009);
        }
        let account = self.stable.entry(appid.to_owned()).or_default();
        let last_force = account.last_force;
        let current = account.token.clone().and_then(|t| {
            let record = self.by_token.get(&t)?;
            let age = now.duration_since(record.issued);
            (!record.revoked && age < record.lifetime).then(|| (t, record.lifetime - age))
        });
        let keep = |(token, expires_in): (String, Duration)| StableGrant {
            token,
            expires_in,
            issued: false,
        };
        if force {
            if let Some(current) = current.clone()
                && last_force.is_some_and(|at| now.duration_since(at) < FORCE_SPACING)
            {
                return Ok(keep(current));
            }
            if !self.within_quota(appid, Quota::Force, FORCE_DAILY_QUOTA) {
                return Err(45009);
            }
            if let Some((old, _)) = &current
                && let Some(record) = self.by_token.get_mut(old)
            {
                record.revoked = true;
            }
        } else if let Some(current) = current.clone()
            && current.1 > renewal
        {
            return Ok(keep(current));
        }
        // Stable tokens never supersede anything: the grace does not apply to them.
        let token = self.record(appid, now, lifetime, Duration::MAX);
        let account = self.stable.entry(appid.to_owned()).or_default();
        account.token = Some(token.clone());
        if force {
            account.last_force = Some(now);
        }
        Ok(StableGrant {
            token,
            expires_in: lifetime,
            issued: true,
        })
    }

    /// The app a token belongs to, or WeChat's errcode: 41001 missing, 40001 unknown or
    /// superseded (past the grace), 42001 expired.
    pub(super) fn check(
        &self,
        token: Option<&str>,
        now: Instant,
        grace: Duration,
    ) -> Result<String, TokenRefused> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(TokenRefused {
                errcode: 41001,
                appid: None,
            });
        };
        let Some(record) = self.by_token.get(token) else {
            return Err(TokenRefused {
                errcode: 40001,
                appid: None,
            });
        };
        let refused = |errcode| TokenRefused {
            errcode,
            appid: Some(record.appid.clone()),
        };
        if record.revoked
            || record
                .superseded
                .is_some_and(|s| now.duration_since(s) > grace)
        {
            return Err(refused(40001));
        }
        if now.duration_since(record.issued) >= record.lifetime {
            return Err(refused(42001));
        }
        Ok(record.appid.clone())
    }
}

fn error(errcode: i64) -> Value {
    json!({"errcode": errcode, "errmsg": wechat_errmsg(errcode)})
}

impl Sandbox {
    fn check_wechat_token(&self, token: Option<&str>) -> Result<String, TokenRefused> {
        self.state()
            .tokens
            .check(token, Instant::now(), self.inner.token_grace)
    }

    /// Whether `appid` may use a media id: one it uploaded, or one put by a test.
    fn media_usable(&self, media_id: &str, appid: &str) -> bool {
        self.state()
            .files
            .get(media_id)
            .is_some_and(|f| f.owner.as_deref().is_none_or(|o| o == appid))
    }

    async fn wechat_send(self, query: Option<String>, raw: Bytes) -> Answer {
        let q = query_map(query.as_deref());
        let parsed = serde_json::from_slice::<Value>(&raw);
        let body = parsed
            .as_ref()
            .cloned()
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()));
        let mut sent = Sent {
            api: Api::Wechat,
            account: String::new(),
            to: body["touser"].as_str().unwrap_or_default().to_owned(),
            body,
            answer: Answer::wechat(Value::Null),
            provider_message_id: None,
            injected: false,
            delay_ms: None,
        };
        let appid = match self.check_wechat_token(q.get("access_token").map(String::as_str)) {
            Ok(appid) => appid,
            Err(refused) => {
                sent.account = refused.appid.unwrap_or_default();
                sent.answer = Answer::wechat(error(refused.errcode));
                return self.record(sent);
            }
        };
        sent.account = appid.clone();
        match self.next_fault(&appid, Api::Wechat) {
            Some(Fault::Delay { ms }) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                sent.delay_ms = Some(ms);
            }
            Some(fault) => {
                sent.answer = fault.answer(Api::Wechat);
                sent.injected = true;
                return self.record(sent);
            }
            None => {}
        }
        let outcome = if raw.iter().all(u8::is_ascii_whitespace) {
            Err(44002)
        } else {
            match parsed {
                Ok(v) => validate_wechat(&v, |id| self.media_usable(id, &appid)),
                Err(_) => Err(47001),
            }
        };
        sent.answer = Answer::wechat(error(outcome.err().unwrap_or(0)));
        self.record(sent)
    }
}

/// Checks a `message/custom/send` body: the errcode of the first problem otherwise
/// (40003 no openid, 40008 message type, 44004 empty text, 40007 unknown media id,
/// 44003 / 45008 news article count, 47001 malformed).
pub(super) fn validate_wechat(body: &Value, media_ok: impl Fn(&str) -> bool) -> Result<(), i64> {
    body.as_object().ok_or(47001)?;
    body["touser"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or(40003)?;
    let kind = body["msgtype"]
        .as_str()
        .filter(|k| MESSAGE_TYPES.contains(k))
        .ok_or(40008)?;
    let payload = &body[kind];
    if !payload.is_object() {
        return Err(if kind == "text" { 44004 } else { 47001 });
    }
    let text = |key: &str| {
        payload[key]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|_| ())
            .ok_or(47001)
    };
    let media = |key: &str| {
        payload[key]
            .as_str()
            .filter(|id| !id.is_empty() && media_ok(id))
            .map(|_| ())
            .ok_or(40007)
    };
    match kind {
        "text" => payload["content"]
            .as_str()
            .filter(|c| !c.trim().is_empty())
            .map(|_| ())
            .ok_or(44004),
        "image" | "voice" | "mpnews" => media("media_id"),
        "video" => {
            media("media_id")?;
            if payload.get("thumb_media_id").is_some() {
                media("thumb_media_id")?;
            }
            Ok(())
        }
        "music" => {
            text("musicurl")?;
            text("hqmusicurl")?;
            media("thumb_media_id")
        }
        "news" => {
            let articles = payload["articles"].as_array().ok_or(47001)?;
            match articles.len() {
                0 => return Err(44003),
                1 => {}
                _ => return Err(45008),
            }
            articles
                .iter()
                .all(|a| a["title"].is_string() && a["url"].is_string())
                .then_some(())
                .ok_or(47001)
        }
        "msgmenu" => payload["list"]
            .as_array()
            .filter(|l| {
                !l.is_empty()
                    && l.iter()
                        .all(|i| i["id"].is_string() && i["content"].is_string())
            })
            .map(|_| ())
            .ok_or(47001),
        "wxcard" => text("card_id"),
        _ => {
            text("title")?;
            text("appid")?;
            text("pagepath")?;
            media("thumb_media_id")
        }
    }
}

/// `GET /wechat/cgi-bin/token?grant_type=client_credential&appid=&secret=`.
pub(super) async fn token(State(sandbox): State<Sandbox>, RawQuery(query): RawQuery) -> Response {
    let q = query_map(query.as_deref());
    let param = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let (appid, secret) = (param("appid"), param("secret"));
    let mut state = sandbox.state();
    if !appid.is_empty() {
        *state
            .stats
            .token_fetches
            .entry(appid.to_owned())
            .or_default() += 1;
    }
    let refused = if param("grant_type") != "client_credential" {
        Some(40002)
    } else if appid.is_empty() {
        Some(41002)
    } else if secret.is_empty() {
        Some(41004)
    } else if secret == "wrong" {
        Some(40125)
    } else {
        None
    };
    let refused = refused.or_else(|| {
        (!state
            .tokens
            .within_quota(appid, Quota::Token, sandbox.inner.token_daily_quota))
        .then_some(45009)
    });
    let body = match refused {
        Some(errcode) => error(errcode),
        None => {
            let lifetime = sandbox.inner.token_lifetime;
            let token =
                state
                    .tokens
                    .issue(appid, Instant::now(), lifetime, sandbox.inner.token_grace);
            json!({"access_token": token, "expires_in": lifetime.as_secs()})
        }
    };
    Answer::wechat(body).into_response()
}

/// `POST /wechat/cgi-bin/stable_token` with JSON `{"grant_type": "client_credential",
/// "appid", "secret", "force_refresh"}` (getStableAccessToken: POST JSON only; its
/// tokens are apart from `cgi-bin/token`'s).
pub(super) async fn stable_token(State(sandbox): State<Sandbox>, raw: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&raw) else {
        return Answer::wechat(error(47001)).into_response();
    };
    let param = |k: &str| body[k].as_str().unwrap_or_default();
    let (appid, secret) = (param("appid"), param("secret"));
    let mut state = sandbox.state();
    if !appid.is_empty() {
        let stats = &mut state.stats;
        for counter in [&mut stats.token_fetches, &mut stats.stable_token_fetches] {
            *counter.entry(appid.to_owned()).or_default() += 1;
        }
    }
    let force = match &body["force_refresh"] {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        _ => Err(47001),
    };
    let refused = if param("grant_type") != "client_credential" {
        Some(40002)
    } else if appid.is_empty() {
        Some(41002)
    } else if secret.is_empty() {
        Some(41004)
    } else if secret == "wrong" {
        Some(40125)
    } else {
        force.err()
    };
    if let Some(errcode) = refused {
        return Answer::wechat(error(errcode)).into_response();
    }
    let granted = state.tokens.stable(
        appid,
        Instant::now(),
        force.unwrap_or(false),
        sandbox.inner.token_lifetime,
        sandbox.inner.stable_renewal,
    );
    let body = match granted {
        Ok(grant) => {
            if grant.issued {
                *state
                    .stats
                    .stable_tokens_issued
                    .entry(appid.to_owned())
                    .or_default() += 1;
            }
            json!({"access_token": grant.token, "expires_in": grant.expires_in.as_secs()})
        }
        Err(errcode) => error(errcode),
    };
    Answer::wechat(body).into_response()
}

/// `POST /wechat/cgi-bin/message/custom/send?access_token=`.
pub(super) async fn send(
    State(sandbox): State<Sandbox>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    detached(sandbox.wechat_send(query, body)).await
}

/// Extensions, size limit and its errcode per upload type (WeChat's temporary media rules).
fn upload_rules(kind: &str) -> Option<(&'static [&'static str], usize, i64)> {
    match kind {
        "image" => Some((&["jpg", "jpeg", "png", "gif"], 10 * 1024 * 1024, 40009)),
        "voice" => Some((&["amr", "mp3"], 2 * 1024 * 1024, 40010)),
        "video" => Some((&["mp4"], 10 * 1024 * 1024, 40011)),
        "thumb" => Some((&["jpg", "jpeg"], 64 * 1024, 40006)),
        _ => None,
    }
}

fn mime_of(extension: &str) -> &'static str {
    match extension {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "amr" => "audio/amr",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// `POST /wechat/cgi-bin/media/upload?access_token=&type=` with a multipart `media` file.
pub(super) async fn upload(
    State(sandbox): State<Sandbox>,
    RawQuery(query): RawQuery,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let q = query_map(query.as_deref());
    let appid = match sandbox.check_wechat_token(q.get("access_token").map(String::as_str)) {
        Ok(appid) => appid,
        Err(refused) => return Answer::wechat(error(refused.errcode)).into_response(),
    };
    let kind = q.get("type").map(String::as_str).unwrap_or_default();
    let Some((extensions, max, too_large)) = upload_rules(kind) else {
        return Answer::wechat(error(40004)).into_response();
    };
    let Ok(mut multipart) = multipart else {
        return Answer::wechat(error(41005)).into_response();
    };
    let mut file = None;
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) if field.name() == Some("media") => {
                let filename = field.file_name().unwrap_or_default().to_owned();
                let declared = field.content_type().map(str::to_owned);
                match field.bytes().await {
                    Ok(bytes) => file = Some((filename, declared, bytes)),
                    Err(_) => return Answer::wechat(error(41005)).into_response(),
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => return Answer::wechat(error(41005)).into_response(),
        }
    }
    let Some((filename, declared, bytes)) = file else {
        return Answer::wechat(error(41005)).into_response();
    };
    if bytes.is_empty() {
        return Answer::wechat(error(44001)).into_response();
    }
    // WeChat goes by the file name's extension.
    let extension = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if !extensions.contains(&extension.as_str()) {
        return Answer::wechat(error(40005)).into_response();
    }
    if bytes.len() > max {
        return Answer::wechat(error(too_large)).into_response();
    }
    let mime = declared
        .filter(|m| !m.is_empty() && m != "application/octet-stream")
        .unwrap_or_else(|| mime_of(&extension).to_owned());
    let media_id = format!("wxm_{}", unique());
    sandbox.state().files.insert(
        media_id.clone(),
        StoredFile {
            bytes: bytes.to_vec(),
            mime,
            owner: Some(appid),
        },
    );
    let mut body = json!({"type": kind, "media_id": media_id, "created_at": now_epoch_seconds()});
    if kind == "thumb" {
        // WeChat names the id this way for thumbnails.
        body["thumb_media_id"] = json!(media_id);
    }
    Answer::wechat(body).into_response()
}

/// `GET /wechat/cgi-bin/media/get?access_token=&media_id=`: the file, a video's
/// `{"video_url"}`, or a JSON error served as text/plain (as WeChat does).
pub(super) async fn media_get(
    State(sandbox): State<Sandbox>,
    headers: axum::http::HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let q = query_map(query.as_deref());
    let refused = |errcode: i64| {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            error(errcode).to_string(),
        )
            .into_response()
    };
    let appid = match sandbox.check_wechat_token(q.get("access_token").map(String::as_str)) {
        Ok(appid) => appid,
        Err(refused_token) => return refused(refused_token.errcode),
    };
    let media_id = q.get("media_id").map(String::as_str).unwrap_or_default();
    if !sandbox.media_usable(media_id, &appid) {
        return refused(40007);
    }
    match sandbox.state().files.get(media_id).cloned() {
        // WeChat answers a video with a link to it, not the bytes.
        Some(file) if file.mime.starts_with("video/") => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            let link = json!({"video_url": format!("http://{host}/files/{media_id}")});
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json; encoding=utf-8")],
                link.to_string(),
            )
                .into_response()
        }
        Some(file) => ([(header::CONTENT_TYPE, file.mime)], file.bytes).into_response(),
        None => refused(40007),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_supersedes_the_old_one_after_the_grace() {
        let mut tokens = Tokens::default();
        let start = Instant::now();
        let grace = Duration::from_secs(300);
        let life = Duration::from_secs(7200);
        let first = tokens.issue("wxA", start, life, grace);
        let other_app = tokens.issue("wxB", start, life, grace);
        let second = tokens.issue("wxA", start + Duration::from_secs(10), life, grace);
        let at = |s| start + Duration::from_secs(s);
        assert_eq!(tokens.check(Some(&first), at(20), grace), Ok("wxA".into()));
        assert_eq!(
            tokens.check(Some(&first), at(311), grace),
            Err(TokenRefused {
                errcode: 40001,
                appid: Some("wxA".into())
            })
        );
        assert_eq!(
            tokens.check(Some(&second), at(311), grace),
            Ok("wxA".into())
        );
        assert_eq!(
            tokens.check(Some(&other_app), at(311), grace),
            Ok("wxB".into())
        );
        assert_eq!(
            tokens
                .check(Some(&second), at(7300), grace)
                .map_err(|e| e.errcode),
            Err(42001)
        );
        assert_eq!(
            tokens.check(None, at(0), grace).map_err(|e| e.errcode),
            Err(41001)
        );
        assert_eq!(
            tokens
                .check(Some("forged"), at(0), grace)
                .map_err(|e| e.errcode),
            Err(40001)
        );
    }

    #[test]
    fn custom_messages_are_checked_like_wechat() {
        let known = |id: &str| id == "m1";
        let ok = [
            json!({"touser": "o1", "msgtype": "text", "text": {"content": "hi"}}),
            json!({"touser": "o1", "msgtype": "image", "image": {"media_id": "m1"}}),
            json!({"touser": "o1", "msgtype": "video", "video": {"media_id": "m1", "title": "t"}}),
            json!({"touser": "o1", "msgtype": "news", "news": {"articles": [{"title": "t", "url": "https://x"}]}}),
        ];
        for body in ok {
            assert_eq!(validate_wechat(&body, known), Ok(()), "{body}");
        }
        let bad = [
            (json!({"msgtype": "text", "text": {"content": "hi"}}), 40003),
            (json!({"touser": "o1", "msgtype": "fax"}), 40008),
            (
                json!({"touser": "o1", "msgtype": "text", "text": {"content": ""}}),
                44004,
            ),
            (json!({"touser": "o1", "msgtype": "text"}), 44004),
            (
                json!({"touser": "o1", "msgtype": "image", "image": {"media_id": "m2"}}),
                40007,
            ),
            (
                json!({"touser": "o1", "msgtype": "voice", "voice": {}}),
                40007,
            ),
            (
                json!({"touser": "o1", "msgtype": "news", "news": {"articles": []}}),
                44003,
            ),
            (json!([1]), 47001),
        ];
        for (body, errcode) in bad {
            assert_eq!(validate_wechat(&body, known), Err(errcode), "{body}");
        }
    }
}
