//! API Gateway (HTTP API, payload 2.0) requests in, JSON responses out.
//!
//! The single place where [`Error`] becomes a status code and an
//! `{"error": {"code", "message"}}` body. Handlers return `Ok(Response)` for every
//! expected failure: an `Err` from a Lambda HTTP handler is a 502 at API Gateway.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{Instrument, error, info_span, warn};

use crate::Error;
use crate::domain::auth::Principal;
use crate::domain::page::PageRequest;

/// Largest JSON body an agent route accepts.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// The status code for an error. Each variant's meaning is documented on [`Error`].
pub fn status_of(err: &Error) -> StatusCode {
    match err {
        Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
        Error::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Upstream { .. } => StatusCode::BAD_GATEWAY,
        Error::Internal(_) | Error::StoreRejected(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

/// The response for an error. Internal causes are logged here and replaced by a generic
/// message; client errors are not logged (they are the client's, and may hold its data).
pub fn error_response(err: &Error) -> Response<Body> {
    let message = match err {
        Error::Internal(cause) | Error::StoreRejected(cause) => {
            error!(cause = %cause, "internal error");
            "something went wrong on our side; try again later".to_owned()
        }
        Error::Upstream { provider, message } => {
            warn!(provider = %provider, cause = %message, "provider call failed");
            format!("the {provider} API did not accept the request")
        }
        other => other.to_string(),
    };
    json(
        status_of(err),
        &ErrorBody {
            error: ErrorDetail {
                code: err.code(),
                message,
            },
        },
    )
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(body) => with_content_type(status, Body::Text(body), "application/json"),
        Err(e) => error_response(&Error::Internal(format!("encode response: {e}"))),
    }
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    with_content_type(status, Body::Text(body.into()), "text/plain; charset=utf-8")
}

fn with_content_type(status: StatusCode, body: Body, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Turns a handler's result into the response, whatever it was.
pub fn respond(result: Result<Response<Body>, Error>) -> Response<Body> {
    result.unwrap_or_else(|e| error_response(&e))
}

/// Runs a function's router for one request inside a span naming the function, API
/// Gateway's request id and the route; every error becomes its response inside that span
/// too, so the log line of an internal error carries all three.
pub async fn serve<'r, F, Fut>(function: &'static str, req: &'r Request, route: F) -> Response<Body>
where
    F: FnOnce(&'r Request) -> Fut,
    Fut: std::future::Future<Output = Result<Response<Body>, Error>>,
{
    let span = info_span!(
        "request",
        function,
        request_id = %request_id(req),
        route = %route_key(req),
    );
    async move { respond(route(req).await) }
        .instrument(span)
        .await
}

fn context(
    req: &Request,
) -> Option<&lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => Some(ctx),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The matched route, e.g. `POST /channels`, as API Gateway reports it.
pub fn route_key(req: &Request) -> &str {
    context(req)
        .and_then(|c| c.route_key.as_deref())
        .unwrap_or("")
}

/// API Gateway's request id, for logs.
pub fn request_id(req: &Request) -> &str {
    context(req)
        .and_then(|c| c.request_id.as_deref())
        .unwrap_or("-")
}

/// The agent behind the request, from the claims of the JWT that API Gateway (or the dev
/// server) has already verified. No claims at all is a 401.
pub fn principal(req: &Request) -> Result<Principal, Error> {
    let claims = context(req)
        .and_then(|c| c.authorizer.as_ref())
        .and_then(|a| a.jwt.as_ref())
        .map(|jwt| &jwt.claims)
        .ok_or_else(|| Error::Unauthorized("a bearer token is required".into()))?;
    Principal::from_claims(|name| claims.get(name).map(String::as_str))
}

/// A path parameter of the route (`{id}`), if present.
pub fn path_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.path_parameters_ref().and_then(|p| p.first(name))
}

/// A query-string value, if present.
pub fn query<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
}

/// `?limit=&cursor=`.
pub fn page_request(req: &Request) -> Result<PageRequest, Error> {
    PageRequest::parse(query(req, "limit"), query(req, "cursor"))
}

/// The request body as a JSON object: 413 when too large, 400 when not JSON, 422 when
/// not an object.
pub fn json_value(req: &Request) -> Result<serde_json::Value, Error> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_JSON_BODY {
        return Err(Error::PayloadTooLarge {
            limit: MAX_JSON_BODY,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::bad_request(
            "invalid_json",
            "a JSON body is required",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        Error::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    if !value.is_object() {
        return Err(Error::validation(
            "invalid_body",
            "the body must be a JSON object",
        ));
    }
    Ok(value)
}

/// The request body as `T` (see [`json_value`]); fields that do not fit are a 422.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, Error> {
    from_json(json_value(req)?)
}

/// A JSON object as `T`; fields that do not fit are a 422.
pub fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| Error::validation("invalid_body", e.to_string()))
}

/// A request header as text, if present and visible ASCII.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Turns an HTTP response into the API Gateway payload 2.0 response JSON.
pub fn to_api_gateway_response(response: Response<Body>) -> serde_json::Value {
    let (parts, body) = response.into_parts();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_owned(),
                serde_json::Value::String(v.to_str().ok()?.to_owned()),
            ))
        })
        .collect();
    let text = match body {
        Body::Text(t) => t,
        Body::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    serde_json::json!({
        "statusCode": parts.status.as_u16(),
        "headers": headers,
        "body": text,
        "isBase64Encoded": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Named {
        name: String,
    }

    fn event(body: &str, content_type: Option<&str>) -> Request {
        let headers = match content_type {
            Some(ct) => serde_json::json!({"content-type": ct}),
            None => serde_json::json!({}),
        };
        let raw = serde_json::json!({
            "version": "2.0",
            "routeKey": "POST /channels",
            "rawPath": "/channels",
            "rawQueryString": "",
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "x", "domainPrefix": "x",
                "http": {"method": "POST", "path": "/channels", "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r1", "routeKey": "POST /channels", "stage": "$default",
                "time": "24/Nov/2026:00:00:00 +0000", "timeEpoch": 0
            },
            "body": body,
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&raw.to_string()).expect("valid event")
    }

    #[test]
    fn malformed_json_is_a_400_and_wrong_shape_a_422() {
        let err = json_body::<Named>(&event("{\"name\":", None)).unwrap_err();
        assert_eq!(
            (status_of(&err), err.code()),
            (StatusCode::BAD_REQUEST, "invalid_json")
        );
        let err = json_body::<Named>(&event("{\"name\":5}", None)).unwrap_err();
        assert_eq!(status_of(&err), StatusCode::UNPROCESSABLE_ENTITY);
        let err = json_body::<Named>(&event("{\"name\":\"a\",\"x\":1}", None)).unwrap_err();
        assert_eq!(err.code(), "invalid_body");
    }

    #[test]
    fn oversize_body_is_a_413() {
        let big = format!("{{\"name\":\"{}\"}}", "a".repeat(MAX_JSON_BODY));
        let err = json_body::<Named>(&event(&big, Some("application/json"))).unwrap_err();
        assert_eq!(status_of(&err), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn json_sent_with_a_form_content_type_is_still_read() {
        let got = json_body::<Named>(&event(
            "{\"name\":\"a\"}",
            Some("application/x-www-form-urlencoded"),
        ));
        assert_eq!(got.unwrap().name, "a");
    }

    #[test]
    fn missing_authorizer_is_a_401() {
        let err = principal(&event("{}", None)).unwrap_err();
        assert_eq!(status_of(&err), StatusCode::UNAUTHORIZED);
    }

    use crate::fakes::CapturedLogs as Captured;

    #[tokio::test]
    async fn an_internal_error_is_logged_with_the_request_id_route_and_function() {
        let captured = Captured::default();
        let sink = captured.clone();
        let _guard = tracing::subscriber::set_default(crate::telemetry::json_subscriber(
            "info",
            move || sink.clone(),
        ));
        let req = event("{}", None);
        let response = serve("chatroom", &req, |_| async {
            Err(Error::Internal("table unreachable".into()))
        })
        .await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let line = captured
            .lines()
            .into_iter()
            .find(|l| l["fields"]["message"] == "internal error")
            .expect("the internal error is logged");
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["span"]["request_id"], "r1");
        assert_eq!(line["span"]["route"], "POST /channels");
        assert_eq!(line["span"]["function"], "chatroom");
    }

    #[test]
    fn internal_errors_say_nothing_internal() {
        let response = error_response(&Error::Internal("table chat-secret missing".into()));
        let body = String::from_utf8(response.body().as_ref().to_vec()).unwrap();
        assert!(!body.contains("chat-secret"));
        assert!(body.contains("internal_error"));
    }
}
