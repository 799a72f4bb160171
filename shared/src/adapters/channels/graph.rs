//! What WhatsApp, Messenger and Instagram share: the Graph API's transport, its error
//! object and which of its codes are worth a retry.

use serde_json::Value;

use super::{parse_retry_after, transport_failure};
use crate::domain::message::DeliveryError;
use crate::domain::outbound::{Attempt, Receipt};
use crate::ports::RoutedChannel;

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

/// Graph answers for administrative calls (templates): the JSON, or a 422 with Meta's own
/// words (a 502 when Meta failed).
///
/// # Errors
/// `refused_by_meta` (422) for a 4xx; `Upstream` (502) for 429, 5xx or no answer.
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
}
