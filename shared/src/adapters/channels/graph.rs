//! What WhatsApp, Messenger and Instagram share: the webhook subscription handshake and
//! `X-Hub-Signature-256`, the webhook envelope, the Graph API's transport, its error object
//! and which of its codes are worth a retry.

use serde_json::Value;
use subtle::ConstantTimeEq;

use super::{parse_retry_after, transport_failure};
use crate::Error;
use crate::domain::message::DeliveryError;
use crate::domain::outbound::{Attempt, Receipt};
use crate::ports::{ReadReceipt, RoutedChannel};

/// Graph error codes worth retrying: API throttling (4, 17, 32, 613, 80007), temporary
/// errors (1, 2, 131000, 131016) and WhatsApp rate limits (130429 throughput, 131056 pair
/// rate). Source: Meta's Graph API and WhatsApp Cloud API error code references.
const TRANSIENT: &[i64] = &[1, 2, 4, 17, 32, 613, 80007, 130429, 131000, 131016, 131056];

/// The channel's Graph access token.
///
/// # Errors
/// `Failed` with code 190 (Meta's "invalid access token") when the channel has none.
pub fn token(channel: &RoutedChannel) -> Result<&str, Attempt> {
    channel
        .credentials
        .access_token
        .as_ref()
        .map(|t| t.expose())
        .ok_or_else(|| Attempt::Failed(DeliveryError::explain("190", None)))
}

/// `POST {graph}/{external_id}/messages` (WhatsApp phone number id, Page id or Instagram
/// account id) with the channel's token; the answer classified.
pub async fn post_message(
    client: &reqwest::Client,
    graph: &str,
    channel: &RoutedChannel,
    body: &Value,
) -> Attempt {
    let token = match token(channel) {
        Ok(t) => t,
        Err(failed) => return failed,
    };
    let url = format!("{graph}/{}/messages", channel.channel.external_id);
    let response = match client.post(url).bearer_auth(token).json(body).send().await {
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
        Ok(body) => classify(status, &body, retry_after),
        Err(_) => Attempt::Unknown,
    }
}

/// `POST {graph}/{external_id}/messages` of a read receipt (WhatsApp `status: read`,
/// Messenger/Instagram `sender_action`) with the channel's token: `Sent` on a 2xx (unless
/// WhatsApp answers `success: false`), else `Failed` with Meta's error code.
pub async fn post_receipt(
    client: &reqwest::Client,
    graph: &str,
    channel: &RoutedChannel,
    body: &Value,
) -> ReadReceipt {
    let Ok(token) = token(channel) else {
        return ReadReceipt::Failed { code: "190".into() };
    };
    let url = format!("{graph}/{}/messages", channel.channel.external_id);
    let response = match client.post(url).bearer_auth(token).json(body).send().await {
        Ok(r) => r,
        Err(e) => {
            let code = if e.is_timeout() { "timeout" } else { "connect" };
            return ReadReceipt::Failed { code: code.into() };
        }
    };
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    classify_receipt(status, &answer)
}

/// Reads the answer to a read receipt.
fn classify_receipt(status: u16, answer: &Value) -> ReadReceipt {
    if (200..300).contains(&status) && answer["success"] != Value::Bool(false) {
        return ReadReceipt::Sent;
    }
    let code = answer["error"]["code"]
        .as_i64()
        .map_or_else(|| format!("http_{status}"), |c| c.to_string());
    ReadReceipt::Failed { code }
}

/// Reads a Graph API send answer: WhatsApp's `messages[0].id` or the Send API's
/// `message_id` when accepted; the `error` object's code otherwise.
pub fn classify(status: u16, body: &[u8], retry_after: Option<std::time::Duration>) -> Attempt {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        let id = json["messages"][0]["id"]
            .as_str()
            .or_else(|| json["message_id"].as_str());
        return match id {
            Some(id) => Attempt::Accepted(Receipt {
                id: Some(id.to_owned()),
                recipient: json["contacts"][0]["wa_id"].as_str().map(str::to_owned),
            }),
            None => Attempt::Unknown,
        };
    }
    let error = &json["error"];
    let code = error["code"].as_i64();
    let transient = status == 429
        || status >= 500
        || error["is_transient"].as_bool() == Some(true)
        || code.is_some_and(|c| TRANSIENT.contains(&c));
    let code_text = code.map_or_else(|| format!("http_{status}"), |c| c.to_string());
    if transient {
        return Attempt::Retry {
            code: code_text,
            after: retry_after,
        };
    }
    let title = error["error_data"]["details"]
        .as_str()
        .or_else(|| error["message"].as_str());
    Attempt::Failed(DeliveryError::explain(&code_text, title))
}

/// The largest answer to an administrative call that is read: a page of 100 phone numbers
/// is about 25 KB and a template's answer far less, while the function has 128 MB.
pub const MAX_ADMIN_ANSWER: usize = 1024 * 1024;

/// Graph answers for administrative calls (templates, channel proofs): the JSON (`Null`
/// when the answer is not JSON), or a 422 with Meta's own words (a 502 when Meta failed).
///
/// # Errors
/// `refused_by_meta` (422) for a 4xx; `Upstream` (502) for 429, 5xx, no answer, or an
/// answer over [`MAX_ADMIN_ANSWER`] bytes.
pub async fn admin(request: reqwest::RequestBuilder) -> Result<Value, crate::Error> {
    use crate::Error;
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
    let body = super::read_capped(response, MAX_ADMIN_ANSWER)
        .await
        .map_err(|reason| upstream(format!("HTTP {status}: {reason}")))?;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
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

// Webhooks: the subscription handshake, the signature and the envelope.
/// Longest `hub.challenge` echoed back (Meta sends a short number).
const MAX_CHALLENGE_LEN: usize = 1024;

/// The subscription handshake: Meta calls `GET` with `hub.mode=subscribe`, the verify token
/// configured in the app dashboard and a challenge to echo.
///
/// Returns the challenge to answer with (200, plain text). A wrong mode or token is a 403;
/// the token comparison takes the same time wherever the first difference is.
pub fn verify_subscription(
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&str>,
    expected_token: &str,
) -> Result<String, Error> {
    let token_ok = verify_token
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected_token.as_bytes())));
    if mode != Some("subscribe") || !token_ok {
        return Err(Error::Forbidden(
            "hub.mode must be subscribe and hub.verify_token must match".into(),
        ));
    }
    match challenge {
        Some(c) if !c.is_empty() && c.len() <= MAX_CHALLENGE_LEN => Ok(c.to_owned()),
        _ => Err(Error::bad_request(
            "invalid_challenge",
            "hub.challenge is missing or too long",
        )),
    }
}

/// Verifies `X-Hub-Signature-256: sha256=<hex>`: the HMAC-SHA256 of the raw body with the
/// app secret, compared in constant time. Missing, malformed or wrong → 401.
pub fn verify_signature(app_secret: &str, body: &[u8], header: Option<&str>) -> Result<(), Error> {
    use hmac::{Hmac, Mac};
    let unauthorized = || Error::Unauthorized("X-Hub-Signature-256 is missing or wrong".into());
    let hex_sig = header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .ok_or_else(unauthorized)?;
    let expected = hex::decode(hex_sig).map_err(|_| unauthorized())?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes())
        .map_err(|_| Error::Internal("HMAC key".into()))?;
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| unauthorized())
}

/// `sha256=<hex>` for a body: what Meta sends (used by tests and the provider sandbox).
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub(super) fn text_of(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

pub(super) fn parse_root(body: &[u8]) -> Result<Value, Error> {
    let root: Value = serde_json::from_slice(body).map_err(|e| {
        Error::bad_request("invalid_json", format!("the webhook body is not JSON: {e}"))
    })?;
    if !root.is_object() {
        return Err(Error::bad_request(
            "invalid_json",
            "the webhook body is not a JSON object",
        ));
    }
    Ok(root)
}

pub(super) fn entries(root: &Value) -> &[Value] {
    root["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn graph_answers_are_classified() {
        // WhatsApp answers with the wa_id it resolved the number to (here without the
        // ninth digit of a Brazilian mobile number).
        let ok = br#"{"messaging_product":"whatsapp","contacts":[{"input":"+55 11 91234-5678","wa_id":"551112345678"}],"messages":[{"id":"wamid.X"}]}"#;
        assert_eq!(
            classify(200, ok, None),
            Attempt::Accepted(Receipt {
                id: Some("wamid.X".into()),
                recipient: Some("551112345678".into()),
            })
        );
        let ok = br#"{"recipient_id":"1","message_id":"m_1"}"#;
        assert_eq!(
            classify(200, ok, None),
            Attempt::Accepted(Receipt::id("m_1"))
        );
        assert_eq!(classify(200, b"{}", None), Attempt::Unknown);
        let after = Some(Duration::from_secs(2));
        assert!(matches!(
            classify(429, b"{}", after),
            Attempt::Retry { after: Some(_), .. }
        ));
        assert!(matches!(
            classify(503, b"oops", None),
            Attempt::Retry { .. }
        ));
        let limited = br#"{"error":{"message":"(#131056) pair rate limit","code":131056}}"#;
        assert!(matches!(
            classify(400, limited, None),
            Attempt::Retry { .. }
        ));
        let gone = br#"{"error":{"message":"(#131026) Message undeliverable","code":131026,"error_data":{"details":"Message Undeliverable."}}}"#;
        let Attempt::Failed(e) = classify(400, gone, None) else {
            panic!("permanent")
        };
        assert_eq!(e.code, "131026");
        assert!(e.hint.contains("wa.me"));
    }

    #[test]
    fn receipt_answers_are_sent_or_failed_with_meta_code() {
        let sent = |status, answer: Value| classify_receipt(status, &answer);
        assert_eq!(
            sent(200, serde_json::json!({"success": true})),
            ReadReceipt::Sent
        );
        assert_eq!(
            sent(200, serde_json::json!({"recipient_id": "1"})),
            ReadReceipt::Sent
        );
        assert_eq!(
            sent(200, serde_json::json!({"success": false})),
            ReadReceipt::Failed {
                code: "http_200".into()
            }
        );
        let invalid = serde_json::json!({"error": {"message": "(#131009) Parameter value is not valid", "code": 131009}});
        assert_eq!(
            sent(400, invalid),
            ReadReceipt::Failed {
                code: "131009".into()
            }
        );
        assert_eq!(
            sent(500, Value::Null),
            ReadReceipt::Failed {
                code: "http_500".into()
            }
        );
    }

    #[test]
    fn matching_handshake_echoes_the_challenge() {
        let got = verify_subscription(Some("subscribe"), Some("tok"), Some("1158201444"), "tok");
        assert_eq!(got.unwrap(), "1158201444");
    }

    #[test]
    fn wrong_token_or_mode_is_forbidden() {
        for (mode, token) in [
            (Some("subscribe"), Some("nope")),
            (Some("subscribe"), None),
            (Some("unsubscribe"), Some("tok")),
            (None, Some("tok")),
            (Some("subscribe"), Some("to")),
        ] {
            let err = verify_subscription(mode, token, Some("1"), "tok").unwrap_err();
            assert_eq!(err.code(), "forbidden");
        }
    }

    #[test]
    fn missing_challenge_is_a_bad_request() {
        let err = verify_subscription(Some("subscribe"), Some("tok"), None, "tok").unwrap_err();
        assert_eq!(err.code(), "invalid_challenge");
    }
}
