//! WeChat Official Account API: customer-service messages
//! (`cgi-bin/message/custom/send`), temporary media uploads (`cgi-bin/media/upload`) and
//! access tokens, with WeChat's `errcode` answers classified.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{retry_transport, transport_failure};
use crate::domain::message::DeliveryError;
use crate::domain::outbound::{Attempt, Content, OutboundKind};
use crate::ports::{MediaUpload, Outgoing, RoutedChannel};

/// A token is renewed this long before WeChat says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// Access tokens by AppID, with when to stop using them.
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

    fn put(&self, app_id: &str, token: &str, ttl: Duration) {
        let until = Instant::now()
            + ttl
                .saturating_sub(TOKEN_MARGIN)
                .max(Duration::from_secs(60));
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(app_id.to_owned(), (token.to_owned(), until));
    }
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
        0 if (200..300).contains(&status) => Attempt::Accepted(None),
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

/// One process's view of the WeChat API.
pub struct Client<'a> {
    /// The HTTP client.
    pub http: &'a reqwest::Client,
    /// `WECHAT_API_URL`.
    pub base: &'a str,
    /// Cached tokens.
    pub tokens: &'a TokenCache,
}

impl Client<'_> {
    /// A cached token, or a new one. `stale` is a token WeChat just refused: it is dropped
    /// (unless another call already replaced it).
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
        if let Some(token) = self.tokens.get(app_id, stale) {
            return Ok(token);
        }
        let mut url = url::Url::parse(&format!("{}/cgi-bin/token", self.base))
            .map_err(|_| Attempt::Failed(DeliveryError::explain("bad_wechat_url", None)))?;
        url.query_pairs_mut()
            .append_pair("grant_type", "client_credential")
            .append_pair("appid", app_id)
            .append_pair("secret", secret);
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| retry_transport(&e))?;
        let (status, body, json) = answer(response).await;
        if let Some(token) = json["access_token"].as_str() {
            let ttl = Duration::from_secs(json["expires_in"].as_u64().unwrap_or(7200));
            self.tokens.put(app_id, token, ttl);
            return Ok(token.to_owned());
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
            Attempt::Accepted(None)
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
        cache.put("wx1", "A", Duration::from_secs(7200));
        assert_eq!(cache.get("wx1", None).as_deref(), Some("A"));
        assert_eq!(cache.get("wx1", Some("old")).as_deref(), Some("A"));
        assert_eq!(cache.get("wx1", Some("A")), None);
        assert_eq!(cache.get("wx1", None), None);
    }
}
