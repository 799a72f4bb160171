//! The WebSocket API's management API, answered by the dev server itself at
//! `/<stage>/@connections/{connectionId}`, the way `aws-sdk-apigatewaymanagement` expects
//! it (endpoint `http://127.0.0.1:<port>/<stage>`; SigV4 signatures are not checked):
//! - `POST` (`PostToConnection`): the body goes to the client as one text frame (binary
//!   when it is not UTF-8); `200`, empty. Over 128 KB: `413 PayloadTooLargeException`.
//! - `GET` (`GetConnection`): `200 {connectedAt, identity: {sourceIp, userAgent},
//!   lastActiveAt}`, times in RFC 3339 (UTC, milliseconds).
//! - `DELETE` (`DeleteConnection`): closes it (close code 1000); `204`.
//! - A connection that is unknown, closing or closed: `410` with `x-amzn-ErrorType:
//!   GoneException` and `{"message": ...}` (the SDK reads the error type from that header).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::Message;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::ws::WsStage;
use super::ws_connection::Connection;
use super::ws_event::{self, MESSAGE_LIMIT};

/// `POST`, `GET` and `DELETE` of `@connections/{connection_id}`.
pub(super) fn routes() -> MethodRouter<Arc<WsStage>> {
    post(post_to_connection)
        .get(get_connection)
        .delete(delete_connection)
}

fn answer(status: StatusCode, error_type: Option<&str>, body: String) -> Response {
    let mut response = (status, [("content-type", "application/json")], body).into_response();
    let headers = response.headers_mut();
    if let Ok(id) = ws_event::new_id().parse() {
        headers.insert("x-amzn-requestid", id);
    }
    if let Some(Ok(kind)) = error_type.map(str::parse) {
        headers.insert("x-amzn-errortype", kind);
    }
    response
}

fn gone() -> Response {
    let body = json!({"message": "the connection is unknown or closed"}).to_string();
    answer(StatusCode::GONE, Some("GoneException"), body)
}

/// The connection, unless it is unknown or closing.
fn open(stage: &WsStage, id: &str) -> Option<Arc<Connection>> {
    stage.connection(id).filter(|c| c.closing().is_none())
}

async fn post_to_connection(
    State(stage): State<Arc<WsStage>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if body.len() > MESSAGE_LIMIT {
        let message = json!({"message": "the data is over the 128 KB message limit"});
        return answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("PayloadTooLargeException"),
            message.to_string(),
        );
    }
    let Some(connection) = open(&stage, &id) else {
        return gone();
    };
    let frame = match std::str::from_utf8(&body) {
        Ok(text) => Message::text(text),
        Err(_) => Message::Binary(body),
    };
    connection.send(frame);
    answer(StatusCode::OK, None, String::new())
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn get_connection(State(stage): State<Arc<WsStage>>, Path(id): Path<String>) -> Response {
    let Some(connection) = open(&stage, &id) else {
        return gone();
    };
    let info = &connection.info;
    let body = json!({
        "connectedAt": timestamp(info.connected_at),
        "identity": {"sourceIp": info.source_ip, "userAgent": info.user_agent},
        "lastActiveAt": timestamp(connection.last_active()),
    });
    answer(StatusCode::OK, None, body.to_string())
}

async fn delete_connection(State(stage): State<Arc<WsStage>>, Path(id): Path<String>) -> Response {
    let Some(connection) = open(&stage, &id) else {
        return gone();
    };
    stage.forget(&id);
    connection.close(1000, "");
    answer(StatusCode::NO_CONTENT, None, String::new())
}
