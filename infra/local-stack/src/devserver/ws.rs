//! The local stand-in of API Gateway's WebSocket APIs, built from template.yaml.
//!
//! Each stage of a WebSocket API is served at `ws://<dev server>/<stage>` (SPEC §12:
//! `/ws`), its management API (`@connections`) at `http://<dev server>/<stage>`:
//! - Upgrade: the `$connect` route's handler gets a CONNECT event before the upgrade
//!   completes; a `statusCode` other than 2xx refuses it with that status (and the
//!   response's `body` and `headers`), as API Gateway does. A response without a
//!   `statusCode`, a failed invocation or one over 29 s refuses it with 502 / 504 (treated
//!   like a malformed proxy response: always return a `statusCode`). No `$connect` route:
//!   every upgrade is accepted.
//! - Text frames select a route by the `RouteSelectionExpression` (`$request.body.action`),
//!   else `$default`, else the client gets API Gateway's `{"message": "Forbidden",
//!   "connectionId", "requestId"}` frame. The handler gets a MESSAGE event; the response's
//!   `body`, when there is one, goes back to the client as a text frame. API Gateway does
//!   that only for a route with a route response (`RouteResponseSelectionExpression`):
//!   locally every route behaves as if it had one.
//! - A text message over 32 KB (API Gateway's frame limit) closes the connection with 1009
//!   without calling a handler. API Gateway counts frames, this stand-in whole messages: a
//!   message fragmented into frames of at most 32 KB each, which API Gateway would pass on
//!   up to 128 KB, is refused here too (browsers send each message as one frame). A binary
//!   frame closes it with 1003 (API Gateway would pass it to `$default`: the signaling
//!   protocol is text only).
//! - A close from either side (the client's close frame, a dropped socket, a 1009/1003, a
//!   `DELETE @connections/{id}`) gives one DISCONNECT event, with the close code
//!   (`disconnectStatusCode`: the client's, 1005 without one, 1006 without a close frame,
//!   or the server's own) and reason.
//! - One handler invocation per event, each in its own task, 29 s at most (API Gateway's
//!   integration timeout); the events of one connection are delivered in order, each
//!   after the previous invocation returned (so DISCONNECT is always last).
//!
//! A connection's life is in [`ws_connection`](super::ws_connection), the management API
//! in [`ws_management`](super::ws_management).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use serde_json::Value;
use tracing::{info, warn};

use super::ws_connection::{Connection, Failure, disconnect, invoke, serve_connection};
use super::ws_event::{self, ConnectionInfo, MESSAGE_LIMIT};
use crate::BoxError;
use crate::functions::WsHandler;
use crate::template::{Template, WsApiSpec, selection_path};

/// Every WebSocket API stage of a template, served beside the HTTP API.
#[derive(Clone, Default)]
pub struct WsGateway {
    stages: Vec<Arc<WsStage>>,
}

/// One stage of a WebSocket API: its routes and open connections.
pub(super) struct WsStage {
    pub(super) name: String,
    api_id: String,
    /// The body path of the route selection expression.
    pub(super) selection: Vec<String>,
    /// Handlers by route key.
    pub(super) routes: HashMap<String, WsHandler>,
    connections: Mutex<HashMap<String, Arc<Connection>>>,
}

impl WsStage {
    /// The open connection with this id.
    pub(super) fn connection(&self, id: &str) -> Option<Arc<Connection>> {
        self.lock().get(id).cloned()
    }

    /// Forgets a connection: the management API answers 410 for it from now on.
    pub(super) fn forget(&self, id: &str) -> Option<Arc<Connection>> {
        self.lock().remove(id)
    }

    /// Registers an accepted connection.
    pub(super) fn register(&self, connection: Arc<Connection>) {
        self.lock().insert(connection.info.id.clone(), connection);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Connection>>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl WsGateway {
    /// The stages of `apis`, each route calling the WebSocket handler of its function
    /// (`handlers`, by the function's logical id).
    ///
    /// # Errors
    /// A route's function has no WebSocket handler, a route selection expression is not
    /// `$request.body.<field>`, or two APIs share a stage name.
    pub fn new(
        apis: &[WsApiSpec],
        handlers: &HashMap<String, WsHandler>,
    ) -> Result<Self, BoxError> {
        let mut stages: Vec<Arc<WsStage>> = Vec::new();
        for api in apis {
            let selection = selection_path(&api.route_selection_expression)?;
            let mut routes = HashMap::new();
            for route in &api.routes {
                let handler = handlers.get(&route.function).ok_or_else(|| {
                    format!(
                        "{} (route {} of {}) has no WebSocket handler",
                        route.function, route.route_key, api.logical_id
                    )
                })?;
                routes.insert(route.route_key.clone(), handler.clone());
            }
            for name in &api.stages {
                if stages.iter().any(|s| &s.name == name) {
                    return Err(format!("two WebSocket APIs have a stage named {name}").into());
                }
                stages.push(Arc::new(WsStage {
                    name: name.clone(),
                    api_id: api.logical_id.to_lowercase(),
                    selection: selection.clone(),
                    routes: routes.clone(),
                    connections: Mutex::default(),
                }));
            }
        }
        Ok(Self { stages })
    }

    /// The stage names served (the URLs' first segment).
    pub fn stages(&self) -> Vec<String> {
        self.stages.iter().map(|s| s.name.clone()).collect()
    }

    /// `GET /<stage>` (the upgrade) and `/<stage>/@connections/{connectionId}` (`POST`,
    /// `GET`, `DELETE`) for every stage. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn router(&self) -> axum::Router {
        let mut router = axum::Router::new();
        for stage in &self.stages {
            let routes = axum::Router::new()
                .route(&format!("/{}", stage.name), get(upgrade))
                .route(
                    &format!("/{}/@connections/{{connection_id}}", stage.name),
                    super::ws_management::routes(),
                )
                .with_state(stage.clone());
            router = router.merge(routes);
        }
        router
    }
}

/// `SIGNALING_URL` (`ws://<authority>/<stage>`) and `SIGNALING_MANAGEMENT_URL`
/// (`http://<authority>/<stage>`) of the template's first WebSocket API stage, for a dev
/// server at `authority` (`127.0.0.1:<port>`); none without a WebSocket API.
///
/// # Errors
/// The template's WebSocket API cannot be read (see [`Template::websocket_apis`]).
pub fn signaling_overrides(
    template: &Template,
    authority: &str,
) -> Result<Vec<(String, String)>, BoxError> {
    let stage = template
        .websocket_apis()?
        .into_iter()
        .find_map(|api| api.stages.into_iter().next());
    Ok(match stage {
        Some(stage) => vec![
            (
                "SIGNALING_URL".to_owned(),
                format!("ws://{authority}/{stage}"),
            ),
            (
                "SIGNALING_MANAGEMENT_URL".to_owned(),
                format!("http://{authority}/{stage}"),
            ),
        ],
        None => Vec::new(),
    })
}

fn status_of(response: &Value) -> Option<StatusCode> {
    let code = response.get("statusCode").and_then(Value::as_u64)?;
    StatusCode::from_u16(u16::try_from(code).ok()?).ok()
}

/// The HTTP answer of a refused upgrade: the handler's status, body and headers.
fn refusal(status: StatusCode, response: &Value) -> Response {
    let body = response
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut out = (status, body).into_response();
    if let Some(headers) = response.get("headers").and_then(Value::as_object) {
        for (name, value) in headers {
            if let (Ok(n), Some(Ok(v))) = (
                HeaderName::try_from(name.as_str()),
                value.as_str().map(HeaderValue::from_str),
            ) {
                out.headers_mut().insert(n, v);
            }
        }
    }
    out
}

fn gateway_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"message": message}).to_string();
    (status, [("content-type", "application/json")], body).into_response()
}

async fn upgrade(
    State(stage): State<Arc<WsStage>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    ws: WebSocketUpgrade,
) -> Response {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let info = ConnectionInfo {
        id: ws_event::new_id(),
        connected_at: Utc::now(),
        source_ip: peer.ip().to_string(),
        user_agent: text("user-agent").unwrap_or_default(),
        domain_name: text("host").unwrap_or_else(|| "127.0.0.1".to_owned()),
        stage: stage.name.clone(),
        api_id: stage.api_id.clone(),
    };
    if let Some(handler) = stage.routes.get("$connect") {
        let event = ws_event::connect_event(&info, &headers, uri.query(), Utc::now());
        let refused = match invoke(handler, event).await {
            Ok(response) => match status_of(&response) {
                Some(s) if s.is_success() => None,
                Some(s) => Some(refusal(s, &response)),
                None => {
                    warn!(connection_id = %info.id, "the $connect response has no statusCode");
                    Some(gateway_error(
                        StatusCode::BAD_GATEWAY,
                        "Internal server error",
                    ))
                }
            },
            Err(Failure::Failed) => Some(gateway_error(
                StatusCode::BAD_GATEWAY,
                "Internal server error",
            )),
            Err(Failure::Timeout) => Some(gateway_error(
                StatusCode::GATEWAY_TIMEOUT,
                "Endpoint request timed out",
            )),
        };
        if let Some(response) = refused {
            info!(connection_id = %info.id, status = response.status().as_u16(), "websocket connect refused");
            return response;
        }
    }
    info!(connection_id = %info.id, stage = %stage.name, "websocket connected");
    let failed_stage = stage.clone();
    let failed_info = info.clone();
    ws.max_frame_size(MESSAGE_LIMIT)
        .max_message_size(MESSAGE_LIMIT)
        .on_failed_upgrade(move |_| {
            // $connect accepted it: its DISCONNECT is still due.
            tokio::spawn(async move {
                disconnect(
                    &failed_stage,
                    &failed_info,
                    1006,
                    "Connection closed abnormally",
                )
                .await;
            });
        })
        .on_upgrade(move |socket| serve_connection(stage, info, socket))
}
