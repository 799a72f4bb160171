//! The proxy events API Gateway's WebSocket APIs send a Lambda integration (the shape of
//! `aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest`), the ids it makes, its
//! route selection and its error frames. Pure: no sockets, no clock of its own.

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Map, Value, json};

/// API Gateway's WebSocket frame size limit (32 KB): a client frame over it closes the
/// connection with 1009. Locally a *message* over it does (see the module docs of `ws`).
pub const FRAME_LIMIT: usize = 32 * 1024;
/// API Gateway's WebSocket message payload limit (128 KB), also the largest
/// `PostToConnection` body.
pub const MESSAGE_LIMIT: usize = 128 * 1024;

/// A connection as the events describe it.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// `connectionId`.
    pub id: String,
    /// `connectedAt`.
    pub connected_at: DateTime<Utc>,
    /// `identity.sourceIp`: the client's address.
    pub source_ip: String,
    /// `identity.userAgent`: the upgrade request's `User-Agent` (empty without one).
    pub user_agent: String,
    /// `domainName`: the upgrade request's `Host` (`127.0.0.1:<port>`).
    pub domain_name: String,
    /// `stage`.
    pub stage: String,
    /// `apiId`.
    pub api_id: String,
}

/// An id in the form of API Gateway's connection and request ids: 15 random letters and
/// digits, then `=` (`L0SM9cOFvHcCIhw=`). About 89 random bits; never `/` or `+`, so a
/// connection id needs no escaping in `@connections/{connectionId}`.
pub fn new_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut id: String = (0..15)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    id.push('=');
    id
}

fn request_context(
    info: &ConnectionInfo,
    route_key: &str,
    event_type: &str,
    now: DateTime<Utc>,
) -> Value {
    let request_id = new_id();
    json!({
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "messageDirection": "IN",
        "stage": info.stage,
        "connectedAt": info.connected_at.timestamp_millis(),
        "requestTimeEpoch": now.timestamp_millis(),
        "identity": {"sourceIp": info.source_ip, "userAgent": info.user_agent},
        "requestId": request_id,
        "domainName": info.domain_name,
        "connectionId": info.id,
        "apiId": info.api_id,
    })
}

/// `headers` (the last value of each name) and `multiValueHeaders` (all of them).
fn header_maps(pairs: impl IntoIterator<Item = (String, String)>) -> (Value, Value) {
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (name, value) in pairs {
        single.insert(name.clone(), Value::String(value.clone()));
        match multi.get_mut(&name) {
            Some(Value::Array(values)) => values.push(Value::String(value)),
            _ => {
                multi.insert(name, json!([value]));
            }
        }
    }
    (Value::Object(single), Value::Object(multi))
}

/// The `$connect` event: the upgrade request's headers (names lower-case, as hyper reads
/// them, plus the `x-forwarded-*` API Gateway adds) and query (`queryStringParameters`
/// keeps the last value of a repeated name, `multiValueQueryStringParameters` all; both
/// absent without a query), `messageId`/`disconnect*` null as API Gateway sends them.
pub fn connect_event(
    info: &ConnectionInfo,
    headers: &HeaderMap,
    query: Option<&str>,
    now: DateTime<Utc>,
) -> Value {
    let mut context = request_context(info, "$connect", "CONNECT", now);
    for field in ["messageId", "disconnectStatusCode", "disconnectReason"] {
        context[field] = Value::Null;
    }
    let forwarded = [
        ("x-forwarded-for", info.source_ip.clone()),
        ("x-forwarded-port", port_of(&info.domain_name)),
        ("x-forwarded-proto", "http".to_owned()),
    ];
    let pairs = headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .filter(|(n, _)| !n.starts_with("x-forwarded-"))
        .chain(forwarded.map(|(n, v)| (n.to_owned(), v)));
    let (headers, multi_headers) = header_maps(pairs);
    let mut event = json!({
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "requestContext": context,
        "isBase64Encoded": false,
    });
    let query: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if !query.is_empty() {
        let (single, multi) = header_maps(query);
        event["queryStringParameters"] = single;
        event["multiValueQueryStringParameters"] = multi;
    }
    event
}

fn port_of(authority: &str) -> String {
    authority
        .rsplit_once(':')
        .map(|(_, p)| p.to_owned())
        .unwrap_or_else(|| "80".to_owned())
}

/// A `MESSAGE` event: the text frame as `body`, the selected route, a fresh `messageId`.
/// No headers (API Gateway sends none after `$connect`).
pub fn message_event(
    info: &ConnectionInfo,
    route_key: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Value {
    let mut context = request_context(info, route_key, "MESSAGE", now);
    context["messageId"] = Value::String(new_id());
    json!({"requestContext": context, "body": body, "isBase64Encoded": false})
}

/// The `$disconnect` event, with the close code and reason.
pub fn disconnect_event(
    info: &ConnectionInfo,
    code: u16,
    reason: &str,
    now: DateTime<Utc>,
) -> Value {
    let mut context = request_context(info, "$disconnect", "DISCONNECT", now);
    context["disconnectStatusCode"] = json!(code);
    context["disconnectReason"] = json!(reason);
    let pairs = [
        ("host", info.domain_name.as_str()),
        ("x-api-key", ""),
        ("x-forwarded-for", ""),
        ("x-restapi", ""),
    ]
    .map(|(n, v)| (n.to_owned(), v.to_owned()));
    let (headers, multi_headers) = header_maps(pairs);
    json!({
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "requestContext": context,
        "isBase64Encoded": false,
    })
}

/// The route a text frame selects: the string at `path` in its JSON body when a route has
/// that key (route keys starting with `$` are never selected by the body), else
/// `$default` when declared, else `None` (API Gateway answers a `Forbidden` error frame).
pub fn select_route(
    body: &str,
    path: &[String],
    has_route: impl Fn(&str) -> bool,
) -> Option<String> {
    let selected = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        path.iter()
            .try_fold(&v, |v, field| v.get(field))
            .and_then(Value::as_str)
            .filter(|key| !key.starts_with('$') && has_route(key))
            .map(str::to_owned)
    });
    selected.or_else(|| has_route("$default").then(|| "$default".to_owned()))
}

/// The frame API Gateway sends a client when it cannot deliver its message (`Forbidden`: no
/// route; `Internal server error`: the integration failed; `Endpoint request timed out`).
pub fn error_frame(message: &str, connection_id: &str, request_id: &str) -> String {
    json!({"message": message, "connectionId": connection_id, "requestId": request_id}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;

    fn info() -> ConnectionInfo {
        ConnectionInfo {
            id: "L0SM9cOFvHcCIhw=".into(),
            connected_at: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            source_ip: "127.0.0.1".into(),
            user_agent: "test".into(),
            domain_name: "127.0.0.1:3000".into(),
            stage: "ws".into(),
            api_id: "local".into(),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_001_000).unwrap()
    }

    #[test]
    fn ids_look_like_api_gateways() {
        let id = new_id();
        assert_eq!(id.len(), 16);
        assert!(id.ends_with('='));
        assert!(id[..15].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(id, new_id());
    }

    #[test]
    fn the_connect_event_parses_as_the_typed_websocket_event() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:3000".parse().unwrap());
        headers.insert("sec-websocket-version", "13".parse().unwrap());
        let event = connect_event(&info(), &headers, Some("token=a%2Bb&x=1&x=2"), now());
        assert_eq!(
            event["queryStringParameters"],
            json!({"token": "a+b", "x": "2"})
        );
        assert_eq!(
            event["multiValueQueryStringParameters"]["x"],
            json!(["1", "2"])
        );
        assert_eq!(event["headers"]["x-forwarded-port"], "3000");
        let typed: ApiGatewayWebsocketProxyRequest = serde_json::from_value(event).unwrap();
        let c = &typed.request_context;
        assert_eq!(c.route_key.as_deref(), Some("$connect"));
        assert_eq!(c.event_type.as_deref(), Some("CONNECT"));
        assert_eq!(c.connection_id.as_deref(), Some("L0SM9cOFvHcCIhw="));
        assert_eq!(c.connected_at, 1_700_000_000_123);
        assert_eq!(c.request_time_epoch, 1_700_000_001_000);
        assert_eq!(
            c.request_time.as_deref(),
            Some("14/Nov/2023:22:13:21 +0000")
        );
        assert_eq!(c.request_id, c.extended_request_id);
        assert_eq!(c.identity.source_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(typed.query_string_parameters.first("token"), Some("a+b"));
        assert_eq!(typed.headers["sec-websocket-version"], "13");
        assert!(
            connect_event(&info(), &headers, None, now())
                .get("queryStringParameters")
                .is_none()
        );
    }

    #[test]
    fn message_and_disconnect_events_parse_as_the_typed_websocket_event() {
        let typed: ApiGatewayWebsocketProxyRequest = serde_json::from_value(message_event(
            &info(),
            "signal",
            "{\"action\":\"signal\"}",
            now(),
        ))
        .unwrap();
        assert_eq!(typed.request_context.event_type.as_deref(), Some("MESSAGE"));
        assert_eq!(typed.request_context.route_key.as_deref(), Some("signal"));
        assert!(typed.request_context.message_id.is_some());
        assert_eq!(typed.body.as_deref(), Some("{\"action\":\"signal\"}"));
        let typed: ApiGatewayWebsocketProxyRequest =
            serde_json::from_value(disconnect_event(&info(), 1009, "Message too big", now()))
                .unwrap();
        assert_eq!(
            typed.request_context.event_type.as_deref(),
            Some("DISCONNECT")
        );
        assert_eq!(typed.request_context.disconnect_status_code, Some(1009));
        assert_eq!(typed.headers["host"], "127.0.0.1:3000");
    }

    #[test]
    fn routes_are_selected_by_the_body_then_default() {
        let path = ["action".to_owned()];
        let only_signal = |k: &str| k == "signal";
        let with_default = |k: &str| k == "signal" || k == "$default";
        assert_eq!(
            select_route(r#"{"action":"signal"}"#, &path, only_signal).as_deref(),
            Some("signal")
        );
        assert_eq!(
            select_route(r#"{"action":"other"}"#, &path, only_signal),
            None
        );
        assert_eq!(select_route("not json", &path, only_signal), None);
        assert_eq!(
            select_route(r#"{"action":7}"#, &path, with_default).as_deref(),
            Some("$default")
        );
        assert_eq!(
            select_route(r#"{"action":"$default"}"#, &path, only_signal),
            None
        );
        let nested = ["a".to_owned(), "b".to_owned()];
        assert_eq!(
            select_route(r#"{"a":{"b":"signal"}}"#, &nested, only_signal).as_deref(),
            Some("signal")
        );
    }
}
