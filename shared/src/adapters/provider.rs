//! The providers' send APIs: Graph API (WhatsApp Cloud API, Messenger, Instagram) and the
//! WeChat Official Account API, with WeChat access tokens cached per account.
//!
//! Calls are never retried here: [`crate::service::outbound`] decides from the classified
//! answer. URLs with tokens or secrets are never logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Error;
use crate::domain::message::DeliveryError;
use crate::domain::outbound::{Attempt, classify_graph, classify_wechat, parse_retry_after};
use crate::ports::{ProviderApi, RoutedChannel};

/// Time to connect; a request that never connected was not sent and may be retried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default whole-call cap; a call cut after connecting has an unknown outcome.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A WeChat token is renewed this long before WeChat says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// The provider APIs, one client per process.
#[derive(Clone)]
pub struct ProviderClient {
    http: LazyHttp,
    graph_url: String,
    wechat_url: String,
    /// WeChat access tokens by AppID, with when to stop using them.
    tokens: Arc<Mutex<HashMap<String, (String, Instant)>>>,
}

impl std::fmt::Debug for ProviderClient {
    /// Never prints the cached WeChat tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderClient")
            .field("graph_url", &self.graph_url)
            .field("wechat_url", &self.wechat_url)
            .finish_non_exhaustive()
    }
}

/// A reqwest client built on first use. Building one loads the system's root certificates
/// (a few milliseconds of file reads and parsing), which a cold start should not pay for a
/// client the invocation may never use (most chatroom and media requests call no provider).
#[derive(Clone)]
pub struct LazyHttp {
    cell: Arc<std::sync::OnceLock<Result<reqwest::Client, String>>>,
    builder: Arc<dyn Fn() -> reqwest::ClientBuilder + Send + Sync>,
}

impl LazyHttp {
    /// A client that `builder` configures, built when first asked for.
    pub fn new(builder: impl Fn() -> reqwest::ClientBuilder + Send + Sync + 'static) -> Self {
        Self {
            cell: Arc::default(),
            builder: Arc::new(builder),
        }
    }

    /// The client (built now if it is the first call).
    pub fn get(&self) -> Result<&reqwest::Client, String> {
        self.cell
            .get_or_init(|| (self.builder)().build().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl std::fmt::Debug for LazyHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyHttp")
            .field("built", &self.cell.get().is_some())
            .finish()
    }
}

/// Why a WeChat token could not be had, as a send attempt.
type TokenError = Attempt;

impl ProviderClient {
    /// Builds the client: base URLs, and the cap on one call.
    pub fn new(graph_url: &str, wechat_url: &str, call_timeout: Duration) -> Result<Self, String> {
        url::Url::parse(graph_url).map_err(|e| format!("META_GRAPH_URL: {e}"))?;
        url::Url::parse(wechat_url).map_err(|e| format!("WECHAT_API_URL: {e}"))?;
        let http = LazyHttp::new(move || {
            reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT.min(call_timeout))
                .timeout(call_timeout)
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
        });
        Ok(Self {
            http,
            graph_url: graph_url.trim_end_matches('/').to_owned(),
            wechat_url: wechat_url.trim_end_matches('/').to_owned(),
            tokens: Arc::default(),
        })
    }

    /// The HTTP client, built on first use.
    fn client(&self) -> Result<&reqwest::Client, Attempt> {
        self.http.get().map_err(|reason| {
            tracing::error!(%reason, "provider HTTP client");
            Attempt::Retry {
                code: "http_client".into(),
                after: None,
            }
        })
    }

    fn admin_client(&self) -> Result<&reqwest::Client, Error> {
        self.http
            .get()
            .map_err(|reason| Error::Internal(format!("provider HTTP client: {reason}")))
    }

    fn meta_token(channel: &RoutedChannel) -> Result<&str, Attempt> {
        channel
            .credentials
            .access_token
            .as_ref()
            .map(|t| t.expose())
            .ok_or_else(|| Attempt::Failed(DeliveryError::explain("190", None)))
    }

    fn wechat_app(channel: &RoutedChannel) -> Result<(&str, &str), Attempt> {
        let c = &channel.credentials;
        match (&c.app_id, &c.app_secret) {
            (Some(id), Some(secret)) => Ok((id.expose(), secret.expose())),
            _ => Err(Attempt::Failed(DeliveryError::explain(
                "40125",
                Some("The channel has no WeChat AppID/AppSecret; reconnect it."),
            ))),
        }
    }

    /// A cached token, or a new one from `cgi-bin/token`. `stale` is a token WeChat just
    /// refused: it is dropped (unless another call already replaced it).
    async fn wechat_token(
        &self,
        channel: &RoutedChannel,
        stale: Option<&str>,
    ) -> Result<String, TokenError> {
        let (app_id, secret) = Self::wechat_app(channel)?;
        {
            let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            match tokens.get(app_id) {
                Some((token, _)) if stale == Some(token.as_str()) => {
                    tokens.remove(app_id);
                }
                Some((token, until)) if *until > Instant::now() => return Ok(token.clone()),
                _ => {}
            }
        }
        let mut url = url::Url::parse(&format!("{}/cgi-bin/token", self.wechat_url))
            .map_err(|_| Attempt::Failed(DeliveryError::explain("bad_wechat_url", None)))?;
        url.query_pairs_mut()
            .append_pair("grant_type", "client_credential")
            .append_pair("appid", app_id)
            .append_pair("secret", secret);
        let response = self
            .client()?
            .get(url)
            .send()
            .await
            .map_err(|e| retry_transport(&e))?;
        let (status, body, json) = wechat_answer(response).await;
        if let Some(token) = json["access_token"].as_str() {
            let ttl = Duration::from_secs(json["expires_in"].as_u64().unwrap_or(7200));
            let until = Instant::now()
                + ttl
                    .saturating_sub(TOKEN_MARGIN)
                    .max(Duration::from_secs(60));
            self.tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(app_id.to_owned(), (token.to_owned(), until));
            return Ok(token.to_owned());
        }
        Err(match classify_wechat(status, &body) {
            Attempt::Accepted(_) | Attempt::Unknown | Attempt::RefreshToken => Attempt::Failed(
                DeliveryError::explain("40125", Some("WeChat gave no access token")),
            ),
            other => other,
        })
    }

    async fn post_graph(&self, path: &str, token: &str, body: &Value) -> Attempt {
        let url = format!("{}/{path}", self.graph_url);
        let http = match self.client() {
            Ok(h) => h,
            Err(failed) => return failed,
        };
        let sent = http.post(url).bearer_auth(token).json(body).send().await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return transport_failure(&e),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        match response.bytes().await {
            Ok(body) => classify_graph(status, &body, retry_after),
            Err(_) => Attempt::Unknown,
        }
    }

    async fn post_wechat_send(&self, token: &str, body: &Value) -> Attempt {
        let url = format!("{}/cgi-bin/message/custom/send", self.wechat_url);
        let http = match self.client() {
            Ok(h) => h,
            Err(failed) => return failed,
        };
        let sent = http
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
            Ok(body) => classify_wechat(status, &body),
            Err(_) => Attempt::Unknown,
        }
    }

    /// Graph answers for template management: the JSON, or a 422 with Meta's own words
    /// (or a 502 when Meta failed).
    async fn graph_admin(&self, request: reqwest::RequestBuilder) -> Result<Value, Error> {
        let upstream = |message: String| Error::Upstream {
            provider: "Graph",
            message,
        };
        let response = request.send().await.map_err(|e| {
            upstream(format!(
                "unreachable ({})",
                if e.is_timeout() { "timeout" } else { "connect" }
            ))
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"]["error_user_msg"]
            .as_str()
            .or_else(|| body["error"]["message"].as_str())
            .unwrap_or("no details")
            .to_owned();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(upstream(format!("HTTP {status}: {message}")));
        }
        Err(Error::validation("refused_by_meta", message))
    }
}

/// A transport error on a call that reaches no customer (a token fetch, a media upload):
/// always worth a retry.
fn retry_transport(e: &reqwest::Error) -> Attempt {
    Attempt::Retry {
        code: if e.is_timeout() { "timeout" } else { "connect" }.into(),
        after: None,
    }
}

/// A WeChat answer: its status, raw body, and JSON (`Null` when it is not JSON).
async fn wechat_answer(response: reqwest::Response) -> (u16, Vec<u8>, Value) {
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default().to_vec();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, body, json)
}

/// What a transport error means for a send: never connected → retry; otherwise the
/// request may have reached the provider → unknown.
fn transport_failure(e: &reqwest::Error) -> Attempt {
    if e.is_connect() {
        Attempt::Retry {
            code: "connect".into(),
            after: None,
        }
    } else if e.is_builder() {
        Attempt::Failed(DeliveryError::explain(
            "bad_request",
            Some("The request could not be built."),
        ))
    } else {
        Attempt::Unknown
    }
}

impl ProviderApi for ProviderClient {
    async fn send(&self, channel: &RoutedChannel, body: &Value) -> Attempt {
        use crate::domain::channel::ChannelType;
        if channel.channel.channel_type != ChannelType::Wechat {
            let token = match Self::meta_token(channel) {
                Ok(t) => t,
                Err(failed) => return failed,
            };
            let path = format!("{}/messages", channel.channel.external_id);
            return self.post_graph(&path, token, body).await;
        }
        let token = match self.wechat_token(channel, None).await {
            Ok(t) => t,
            Err(failed) => return failed,
        };
        match self.post_wechat_send(&token, body).await {
            // Expired or replaced (another process fetched a new one): once more, fresh.
            Attempt::RefreshToken => match self.wechat_token(channel, Some(&token)).await {
                Ok(fresh) => match self.post_wechat_send(&fresh, body).await {
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

    async fn upload_wechat_media(
        &self,
        channel: &RoutedChannel,
        media_type: &str,
        filename: &str,
        mime: &str,
        bytes: Vec<u8>,
    ) -> Result<String, Attempt> {
        let mut stale = None;
        for _ in 0..2 {
            let token = self.wechat_token(channel, stale.as_deref()).await?;
            let part = reqwest::multipart::Part::bytes(bytes.clone())
                .file_name(filename.to_owned())
                .mime_str(mime)
                .map_err(|_| {
                    Attempt::Failed(DeliveryError::explain("40005", Some("invalid file type")))
                })?;
            let form = reqwest::multipart::Form::new().part("media", part);
            let url = format!("{}/cgi-bin/media/upload", self.wechat_url);
            let response = self
                .client()?
                .post(url)
                .query(&[("access_token", token.as_str()), ("type", media_type)])
                .multipart(form)
                .send()
                .await
                .map_err(|e| retry_transport(&e))?;
            let (status, body, json) = wechat_answer(response).await;
            if let Some(id) = json["media_id"].as_str() {
                return Ok(id.to_owned());
            }
            match classify_wechat(status, &body) {
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

    async fn create_template(
        &self,
        channel: &RoutedChannel,
        waba_id: &str,
        body: &Value,
    ) -> Result<(String, String, Option<String>), Error> {
        let token = Self::meta_token(channel).map_err(|_| {
            Error::validation("channel_credentials", "the channel has no access token")
        })?;
        let url = format!("{}/{waba_id}/message_templates", self.graph_url);
        let answer = self
            .graph_admin(self.admin_client()?.post(url).bearer_auth(token).json(body))
            .await?;
        let id = answer["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Upstream {
                provider: "Graph",
                message: "template created without an id".into(),
            })?;
        let status = answer["status"].as_str().unwrap_or("PENDING").to_owned();
        Ok((id, status, answer["category"].as_str().map(str::to_owned)))
    }

    async fn delete_template(
        &self,
        channel: &RoutedChannel,
        waba_id: &str,
        name: &str,
        hsm_id: Option<&str>,
    ) -> Result<(), Error> {
        let token = Self::meta_token(channel).map_err(|_| {
            Error::validation("channel_credentials", "the channel has no access token")
        })?;
        let url = format!("{}/{waba_id}/message_templates", self.graph_url);
        let mut query = vec![("name", name)];
        if let Some(id) = hsm_id {
            query.push(("hsm_id", id));
        }
        self.graph_admin(
            self.admin_client()?
                .delete(url)
                .bearer_auth(token)
                .query(&query),
        )
        .await
        .map(|_| ())
    }
}
