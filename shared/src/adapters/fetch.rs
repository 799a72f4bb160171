//! Fetching provider media over HTTPS behind the SSRF guard of [`FetchPolicy`].
//!
//! Every name is resolved by a resolver that drops internal addresses, so the checked
//! address is the one connected to (no DNS rebinding); every redirect is checked again;
//! bodies are read in chunks with a size cap, and every call has a time cap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;

use crate::domain::fetch::FetchPolicy;
use crate::ports::{FetchBody, MediaFetcher};

/// Whole-request time cap (connect, headers and body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(120);
/// Most redirects followed.
const MAX_REDIRECTS: usize = 3;

struct GuardedResolver(Arc<FetchPolicy>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| policy.address_allowed(a.ip()))
                .collect();
            if found.is_empty() {
                return Err("the host resolves only to internal addresses".into());
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

/// An HTTP client that fetches only what the policy allows.
#[derive(Debug, Clone)]
pub struct GuardedFetcher {
    client: crate::adapters::channels::LazyHttp,
    policy: Arc<FetchPolicy>,
}

impl GuardedFetcher {
    /// Builds the client once per process.
    pub fn new(policy: FetchPolicy) -> Result<Self, String> {
        let policy = Arc::new(policy);
        let redirect_policy = policy.clone();
        let resolver_policy = policy.clone();
        let builder = move || {
            let redirect_policy = redirect_policy.clone();
            reqwest::Client::builder()
                .dns_resolver(Arc::new(GuardedResolver(resolver_policy.clone())))
                .redirect(Policy::custom(move |attempt| {
                    if attempt.previous().len() >= MAX_REDIRECTS {
                        attempt.error("too many redirects")
                    } else if redirect_policy.check(attempt.url()).is_ok() {
                        attempt.follow()
                    } else {
                        attempt.error("redirect to a URL that is not a provider media host")
                    }
                }))
                // A proxy would resolve names itself, around the guarded resolver.
                .no_proxy()
                .timeout(FETCH_TIMEOUT)
                .connect_timeout(Duration::from_secs(5))
        };
        Ok(Self {
            client: crate::adapters::channels::LazyHttp::new(builder),
            policy,
        })
    }
}

/// A response body read in chunks.
#[derive(Debug)]
pub struct GuardedBody {
    response: reqwest::Response,
    content_type: Option<String>,
}

impl FetchBody for GuardedBody {
    fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    fn declared_len(&self) -> Option<u64> {
        self.response.content_length()
    }

    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        self.response
            .chunk()
            .await
            .map(|c| c.map(|b| b.to_vec()))
            .map_err(|e| format!("the download failed: {}", without_url(&e)))
    }
}

fn without_url(e: &reqwest::Error) -> String {
    // Provider URLs carry access tokens: never repeat them.
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}

impl MediaFetcher for GuardedFetcher {
    type Body = GuardedBody;

    async fn get(&self, url: &str, bearer: Option<&str>) -> Result<GuardedBody, String> {
        let parsed =
            url::Url::parse(url).map_err(|_| "the provider gave an invalid URL".to_owned())?;
        self.policy.check(&parsed).map_err(str::to_owned)?;
        let mut request = self
            .client
            .get()
            .map_err(|e| format!("the HTTP client could not start: {e}"))?
            .get(parsed);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("the provider could not be reached: {}", without_url(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the provider answered HTTP {}", status.as_u16()));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(GuardedBody {
            response,
            content_type,
        })
    }
}
