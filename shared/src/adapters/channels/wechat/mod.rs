//! WeChat Official Account API: customer-service messages
//! (`cgi-bin/message/custom/send`), temporary media uploads (`cgi-bin/media/upload`) and
//! access tokens, with WeChat's `errcode` answers classified.

mod media;
mod token;
pub mod webhook;

pub use media::{MediaAnswer, media_answer};
pub use token::*;

use std::time::Instant;

use serde_json::{Value, json};

use super::{retry_transport, transport_failure};
use crate::adapters::dynamo::DynamoStore;
use crate::domain::message::DeliveryError;
use crate::domain::outbound::{Attempt, Content, OutboundKind, Receipt, numbered_menu};
use crate::ports::{MediaUpload, Outgoing, RoutedChannel};

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
        // Questions become a numbered menu before this (see `SendMessage::parts`).
        Content::Ask { text, options } => json!({
            "touser": to,
            "msgtype": "text",
            "text": {"content": numbered_menu(text, options)},
        }),
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

/// The largest token or upload answer read (WeChat's are under 1 KB).
const MAX_ANSWER: usize = 64 * 1024;

/// A WeChat answer: its status, raw body, and JSON (`Null` when it is not JSON).
///
/// # Errors
/// `Retry` when the answer is over [`MAX_ANSWER`] bytes or breaks off.
async fn answer(response: reqwest::Response) -> Result<(u16, Vec<u8>, Value), Attempt> {
    let status = response.status().as_u16();
    let body = super::read_capped(response, MAX_ANSWER)
        .await
        .map_err(|_| Attempt::Retry {
            code: "unreadable_answer".into(),
            after: None,
        })?;
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok((status, body, json))
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
    /// The attempt to report: `Failed` 40125 without credentials or when WeChat refuses
    /// them, `Retry` on transport errors and on answers that are neither a token nor an
    /// `errcode`.
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
        let (status, body, json) = answer(response).await?;
        if let Some(token) = json["access_token"].as_str().filter(|t| !t.is_empty()) {
            let ttl = json["expires_in"].as_i64().unwrap_or(7200).max(0);
            return Ok(Fetched {
                token: token.to_owned(),
                fetched_at_ms,
                expires_at_ms: fetched_at_ms.saturating_add(ttl.saturating_mul(1000)),
            });
        }
        Err(match classify(status, &body) {
            // A success without a token, or no JSON at all, is not WeChat's answer (its
            // token endpoints give a token or an `errcode`): asked again, never taken as a
            // verdict on the AppSecret.
            Attempt::Accepted(_) | Attempt::Unknown => Attempt::Retry {
                code: "no_token".into(),
                after: None,
            },
            Attempt::RefreshToken => Attempt::Failed(DeliveryError::explain(
                "40125",
                Some("WeChat gave no access token"),
            )),
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
            let (status, body, json) = answer(response).await?;
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
    fn a_question_goes_to_wechat_as_a_numbered_text_menu() {
        use crate::domain::channel::ChannelType;
        use crate::domain::outbound::{Part, ReplyOption, SendMessage};
        let options = vec![
            ReplyOption {
                id: "hours".into(),
                title: "营业时间".into(),
            },
            ReplyOption {
                id: "person".into(),
                title: "Talk to us".into(),
            },
        ];
        let menu = "您需要什么帮助？\n\n1. 营业时间\n2. Talk to us";
        let b = body(&Outgoing {
            to: "openid",
            content: Content::Ask {
                text: "您需要什么帮助？",
                options: &options,
            },
            delivery: Delivery::Response,
            reference: "r",
        });
        assert_eq!(
            b,
            json!({"touser": "openid", "msgtype": "text", "text": {"content": menu}})
        );
        // The send path turns the question into that text before any body is built.
        let send: SendMessage = serde_json::from_value(json!({
            "kind": "text", "text": "您需要什么帮助？", "options": options,
        }))
        .unwrap();
        assert_eq!(
            send.parts(ChannelType::Wechat).unwrap(),
            vec![Part::Text(menu.to_owned())]
        );
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
}
