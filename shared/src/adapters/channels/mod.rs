//! The channel providers' APIs, one module per provider: request bodies, answer
//! classification, tokens and media transfer live with the client that speaks them.
//!
//! - [`whatsapp`]: WhatsApp Cloud API (Graph API) messages, read receipts and templates.
//! - [`messenger`]: Messenger and Instagram (both the Graph API Send API).
//! - [`wechat`]: WeChat Official Account customer-service messages, tokens and media.
//! - [`verify`]: the proof, at connection, that a channel's credentials control its account.
//!
//! [`Channels`] implements the one [`ChannelSender`] port; the `match` on channel type is
//! here and nowhere else. Calls are never retried here: [`crate::service::outbound`]
//! decides from the classified [`Attempt`]. URLs with tokens or secrets are never logged.

pub mod graph;
pub mod messenger;
pub mod verify;
pub mod wechat;
pub mod whatsapp;

use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::adapters::dynamo::DynamoStore;
use crate::domain::channel::ChannelType;
use crate::domain::events::EventMedia;
use crate::domain::message::DeliveryError;
use crate::domain::outbound::Attempt;
use crate::ports::CreatedTemplate;
use crate::ports::{
    ChannelSender, FetchBody, MediaFetcher, MediaUpload, OpenedMedia, Outgoing, ProviderMedia,
    ReadReceipt, RoutedChannel,
};

/// Time to connect; a request that never connected was not sent and may be retried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default whole-call cap; a call cut after connecting has an unknown outcome.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub use crate::config::ProviderUrls;

/// The provider clients, one per process.
#[derive(Clone)]
pub struct Channels {
    http: LazyHttp,
    urls: Arc<ProviderUrls>,
    wechat_tokens: wechat::Tokens,
}

impl std::fmt::Debug for Channels {
    /// Never prints cached tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("urls", &self.urls)
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
    ///
    /// # Errors
    /// The reason the client could not be built (its TLS set-up failed).
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

impl Channels {
    /// Builds the clients: base URLs, and the cap on one call.
    ///
    /// # Errors
    /// A base URL that does not parse, naming its variable.
    pub fn new(urls: ProviderUrls, call_timeout: Duration) -> Result<Self, String> {
        url::Url::parse(&urls.graph).map_err(|e| format!("META_GRAPH_URL: {e}"))?;
        url::Url::parse(&urls.wechat).map_err(|e| format!("WECHAT_API_URL: {e}"))?;
        let http = LazyHttp::new(move || {
            reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT.min(call_timeout))
                .timeout(call_timeout)
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
        });
        let urls = ProviderUrls {
            graph: urls.graph.trim_end_matches('/').to_owned(),
            wechat: urls.wechat.trim_end_matches('/').to_owned(),
        };
        Ok(Self {
            http,
            urls: Arc::new(urls),
            wechat_tokens: wechat::Tokens::default(),
        })
    }

    /// Shares WeChat access tokens with every other process through the table (one token
    /// per account for the whole deployment, refreshed under a lease). Without it a
    /// process keeps its own (tests of other parts only).
    #[must_use]
    pub fn with_wechat_tokens(self, store: DynamoStore) -> Self {
        self.with_wechat_token_timings(store, wechat::TokenTimings::default())
    }

    /// [`Channels::with_wechat_tokens`] with other timings (tests shorten them).
    #[must_use]
    pub fn with_wechat_token_timings(
        mut self,
        store: DynamoStore,
        timings: wechat::TokenTimings,
    ) -> Self {
        self.wechat_tokens = wechat::Tokens::shared(store, timings);
        self
    }

    /// The base URLs.
    pub fn urls(&self) -> &ProviderUrls {
        &self.urls
    }

    /// The HTTP client for a send, built on first use.
    fn client(&self) -> Result<&reqwest::Client, Attempt> {
        self.http.get().map_err(|reason| {
            tracing::error!(%reason, "provider HTTP client");
            Attempt::Retry {
                code: "http_client".into(),
                after: None,
            }
        })
    }

    /// The HTTP client for an agent's administrative call (templates).
    fn admin_client(&self) -> Result<&reqwest::Client, Error> {
        self.http
            .get()
            .map_err(|reason| Error::Internal(format!("provider HTTP client: {reason}")))
    }

    fn wechat(&self) -> Result<wechat::Client<'_>, Attempt> {
        Ok(wechat::Client {
            http: self.client()?,
            base: &self.urls.wechat,
            tokens: &self.wechat_tokens,
        })
    }
}

impl ChannelSender for Channels {
    async fn send(&self, channel: &RoutedChannel, message: &Outgoing<'_>) -> Attempt {
        let client = match self.client() {
            Ok(c) => c,
            Err(failed) => return failed,
        };
        match channel.channel.channel_type {
            ChannelType::Whatsapp => {
                let body = whatsapp::body(message);
                graph::post_message(client, &self.urls.graph, channel, &body).await
            }
            ChannelType::Messenger | ChannelType::Instagram => {
                let body = messenger::body(message);
                graph::post_message(client, &self.urls.graph, channel, &body).await
            }
            ChannelType::Wechat => match self.wechat() {
                Ok(wechat) => wechat.send(channel, &wechat::body(message)).await,
                Err(failed) => failed,
            },
        }
    }

    async fn mark_read(
        &self,
        channel: &RoutedChannel,
        customer: &str,
        provider_message_id: &str,
    ) -> ReadReceipt {
        let body = match channel.channel.channel_type {
            ChannelType::Whatsapp => whatsapp::read_body(provider_message_id),
            // The same account and token as the sends (`/{page_id}/messages` is the Page's
            // `/me/messages`; Instagram's goes through its account id likewise).
            ChannelType::Messenger | ChannelType::Instagram => messenger::seen_body(customer),
            ChannelType::Wechat => return ReadReceipt::NotSupported,
        };
        match self.http.get() {
            Ok(client) => graph::post_receipt(client, &self.urls.graph, channel, &body).await,
            Err(reason) => {
                tracing::error!(%reason, "provider HTTP client");
                ReadReceipt::Failed {
                    code: "http_client".into(),
                }
            }
        }
    }

    async fn upload_media(
        &self,
        channel: &RoutedChannel,
        file: &MediaUpload<'_>,
    ) -> Result<String, Attempt> {
        match channel.channel.channel_type {
            ChannelType::Wechat => self.wechat()?.upload(channel, file).await,
            // Meta fetches our presigned link itself: nothing is uploaded.
            ChannelType::Whatsapp | ChannelType::Messenger | ChannelType::Instagram => {
                Err(Attempt::Failed(DeliveryError::explain(
                    "bad_request",
                    Some("this channel takes media by link"),
                )))
            }
        }
    }

    async fn create_template(
        &self,
        channel: &RoutedChannel,
        waba_id: &str,
        body: &serde_json::Value,
    ) -> Result<CreatedTemplate, Error> {
        let client = self.admin_client()?;
        whatsapp::create_template(client, &self.urls.graph, channel, waba_id, body).await
    }

    async fn delete_template(
        &self,
        channel: &RoutedChannel,
        waba_id: &str,
        name: &str,
        hsm_id: Option<&str>,
    ) -> Result<(), Error> {
        let client = self.admin_client()?;
        whatsapp::delete_template(client, &self.urls.graph, channel, waba_id, name, hsm_id).await
    }
}

impl ProviderMedia for Channels {
    async fn open_media<F: MediaFetcher>(
        &self,
        fetcher: &F,
        channel: &RoutedChannel,
        media: &EventMedia,
    ) -> Result<OpenedMedia<F::Body>, String> {
        let by_id = || {
            media
                .provider_media_id
                .as_deref()
                .ok_or_else(|| "the message named no media id".to_owned())
        };
        match channel.channel.channel_type {
            ChannelType::Whatsapp => {
                whatsapp::open_media(fetcher, &self.urls.graph, channel, by_id()?).await
            }
            ChannelType::Messenger | ChannelType::Instagram => {
                messenger::open_media(fetcher, media.url.as_deref()).await
            }
            ChannelType::Wechat => {
                let client = self
                    .wechat()
                    .map_err(|_| "the HTTP client could not start".to_owned())?;
                let body = client.open_media(fetcher, channel, by_id()?).await?;
                Ok(OpenedMedia {
                    body,
                    mime_type: None,
                    sha256: None,
                })
            }
        }
    }
}

/// Reads a provider's answer whole, refusing one of more than `cap` bytes (declared or
/// sent) before it fills the function's memory.
///
/// # Errors
/// Why it was not read: too large, or the answer broke off (timeout or connection).
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, String> {
    let too_large = || format!("the answer is over {cap} bytes");
    if response
        .content_length()
        .is_some_and(|declared| declared > cap as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > cap {
                    return Err(too_large());
                }
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err("the answer timed out".into()),
            Err(_) => return Err("the answer broke off".into()),
        }
    }
}

/// Reads a small answer (a lookup, an error) whole, refusing more than `cap` bytes.
async fn read_small<B: FetchBody>(body: &mut B, cap: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next_chunk().await? {
        out.extend_from_slice(&chunk);
        if out.len() > cap {
            return Err("the provider's answer is too large".into());
        }
    }
    Ok(out)
}

/// A transport error on a call that reaches no customer (a token fetch, a media upload):
/// always worth a retry.
fn retry_transport(e: &reqwest::Error) -> Attempt {
    Attempt::Retry {
        code: if e.is_timeout() { "timeout" } else { "connect" }.into(),
        after: None,
    }
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

/// Parses `Retry-After` (RFC 9110 §10.2.3): delay seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-24T09:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("3", t0), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 09:00:05 GMT", t0),
            Some(Duration::from_secs(5))
        );
        assert_eq!(parse_retry_after("soon", t0), None);
    }

    #[test]
    fn base_urls_are_checked_and_trimmed() {
        let urls = |g: &str| ProviderUrls {
            graph: g.into(),
            wechat: "https://api.weixin.qq.com/".into(),
        };
        let c = Channels::new(urls("https://graph.facebook.com/v21.0/"), CALL_TIMEOUT).unwrap();
        assert_eq!(c.urls().graph, "https://graph.facebook.com/v21.0");
        assert_eq!(c.urls().wechat, "https://api.weixin.qq.com");
        let err = Channels::new(urls("not a url"), CALL_TIMEOUT).unwrap_err();
        assert!(err.starts_with("META_GRAPH_URL"));
    }
}
