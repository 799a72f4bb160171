//! A small typed client of the Stripe API subset the payments use (`STRIPE_API_URL`):
//! create and expire Checkout Sessions, form-encoded, with the tenant's secret key as the
//! bearer and an `Idempotency-Key` on every create (Stripe docs, "Idempotent requests"), so
//! a retried create returns the session the first one made.
//!
//! A full SDK crate (async-stripe) generates types for the whole API: far more code than
//! these two calls, in a function that cold-starts on every payment webhook.

use std::time::Duration;

use crate::Error;
use crate::adapters::channels::LazyHttp;
use crate::domain::channel::Secret;
use crate::domain::stripe::{ErrorBody, Session, SessionRequest};

/// Stripe's API host (the default of `STRIPE_API_URL`).
pub const DEFAULT_STRIPE_API_URL: &str = "https://api.stripe.com";
/// Attempts of one call: the first and two retries of a 429, a 5xx or a lost connection
/// (Stripe docs, "Error handling": safe with the same idempotency key).
const ATTEMPTS: u32 = 3;

/// The client, built once per process.
#[derive(Clone)]
pub struct Stripe {
    http: LazyHttp,
    base: String,
    retry_base: Duration,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn upstream(message: impl Into<String>) -> Error {
    Error::Upstream {
        provider: "stripe",
        message: message.into(),
    }
}

impl Stripe {
    /// A client of `base` (no trailing `/`), each call capped at `timeout`.
    pub fn new(base: &str, timeout: Duration, retry_base: Duration) -> Self {
        let http = LazyHttp::new(move || {
            reqwest::Client::builder()
                .connect_timeout(timeout.min(Duration::from_secs(3)))
                .timeout(timeout)
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
        });
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            retry_base,
        }
    }

    /// `POST /v1/checkout/sessions` with `idempotency_key`.
    ///
    /// # Errors
    /// 422 `payment_rejected` (Stripe refused the request: its message), 422
    /// `payment_credentials_rejected` (the secret key), 409 `conflict` (the idempotency key
    /// was used with another request: Stripe's `idempotency_error`); 502 `upstream_error`
    /// when Stripe kept failing (429, 5xx, no answer) after two retries.
    pub async fn create_session(
        &self,
        key: &Secret,
        idempotency_key: &str,
        request: &SessionRequest<'_>,
    ) -> Result<Session, Error> {
        let url = format!("{}/v1/checkout/sessions", self.base);
        let form = request.form();
        let session: Session = self.post(&url, key, Some(idempotency_key), &form).await?;
        if session.url.is_none() {
            return Err(upstream("a Checkout Session without a url"));
        }
        Ok(session)
    }

    /// `POST /v1/checkout/sessions/{id}/expire`: the link stops working.
    ///
    /// # Errors
    /// As [`Stripe::create_session`].
    pub async fn expire_session(&self, key: &Secret, session_id: &str) -> Result<(), Error> {
        let url = format!("{}/v1/checkout/sessions/{session_id}/expire", self.base);
        let _: serde_json::Value = self.post(&url, key, None, &[]).await?;
        Ok(())
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        key: &Secret,
        idempotency_key: Option<&str>,
        form: &[(String, String)],
    ) -> Result<T, Error> {
        let http = self.http.get().map_err(upstream)?;
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(self.retry_base * 2u32.pow(attempt - 1)).await;
            }
            let mut call = http.post(url).bearer_auth(key.expose()).form(form);
            if let Some(k) = idempotency_key {
                call = call.header("Idempotency-Key", k);
            }
            let response = match call.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = format!("no answer: {e}");
                    continue;
                }
            };
            let status = response.status();
            let body = response.bytes().await.unwrap_or_default();
            if status.is_success() {
                return serde_json::from_slice(&body).map_err(|e| {
                    upstream(format!("an answer that is not the expected JSON: {e}"))
                });
            }
            let detail = serde_json::from_slice::<ErrorBody>(&body)
                .map(|b| b.error)
                .unwrap_or_default();
            let message = detail
                .message
                .clone()
                .unwrap_or_else(|| format!("HTTP {status}"));
            if detail.kind == "idempotency_error" {
                return Err(Error::conflict(
                    "conflict",
                    format!("Stripe refused a repeated request with other details: {message}"),
                ));
            }
            match status.as_u16() {
                429 | 500..=599 => last = format!("HTTP {status}: {message}"),
                401 | 403 => {
                    return Err(Error::validation(
                        "payment_credentials_rejected",
                        "Stripe refused the secret key: check it in the payment settings",
                    ));
                }
                409 => {
                    return Err(Error::conflict(
                        "conflict",
                        format!("Stripe refused a repeated request: {message}"),
                    ));
                }
                _ => {
                    return Err(Error::validation(
                        "payment_rejected",
                        format!("Stripe refused the payment link: {message}"),
                    ));
                }
            }
        }
        Err(upstream(last))
    }
}
