//! One accepted WebSocket connection of the stand-in (see [`ws`](super::ws)): its frames
//! read and routed, its events delivered to the handlers in order, its frames written, its
//! close (from either side) turned into one DISCONNECT event.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{Notify, mpsc};
use tracing::info;

use super::ws::WsStage;
use super::ws_event::{self, ConnectionInfo, FRAME_LIMIT};
use crate::functions::WsHandler;

/// API Gateway's integration timeout (29 s).
const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(29);
/// How long a connection the server closes waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// An open connection, as the management API sees it.
pub(super) struct Connection {
    pub(super) info: ConnectionInfo,
    last_active: Mutex<DateTime<Utc>>,
    out: mpsc::UnboundedSender<Message>,
    /// The close the server started (code, reason), if it did.
    closing: Mutex<Option<(u16, String)>>,
    close_started: Notify,
}

impl Connection {
    /// Queues a frame for the client (dropped once the socket is gone).
    pub(super) fn send(&self, message: Message) {
        self.touch();
        let _ = self.out.send(message);
    }

    pub(super) fn touch(&self) {
        *self.last_active.lock().unwrap_or_else(|e| e.into_inner()) = Utc::now();
    }

    pub(super) fn last_active(&self) -> DateTime<Utc> {
        *self.last_active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the server's close (once): the close frame goes out, the reader waits for
    /// the client's answer at most [`CLOSE_WAIT`].
    pub(super) fn close(&self, code: u16, reason: &str) {
        let mut closing = self.closing.lock().unwrap_or_else(|e| e.into_inner());
        if closing.is_none() {
            *closing = Some((code, reason.to_owned()));
            let _ = self.out.send(Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from(reason),
            })));
            self.close_started.notify_one();
        }
    }

    pub(super) fn closing(&self) -> Option<(u16, String)> {
        self.closing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Why an invocation gave no response.
pub(super) enum Failure {
    Timeout,
    Failed,
}

/// One invocation, in its own task, within the integration timeout.
pub(super) async fn invoke(handler: &WsHandler, event: Value) -> Result<Value, Failure> {
    let task = tokio::spawn(handler(event));
    match tokio::time::timeout(INTEGRATION_TIMEOUT, task).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(_)) => Err(Failure::Failed),
        Err(_) => Err(Failure::Timeout),
    }
}

pub(super) async fn disconnect(stage: &WsStage, info: &ConnectionInfo, code: u16, reason: &str) {
    if let Some(handler) = stage.routes.get("$disconnect") {
        let _ = invoke(
            handler,
            ws_event::disconnect_event(info, code, reason, Utc::now()),
        )
        .await;
    }
    info!(connection_id = %info.id, code, "websocket disconnected");
}

/// A text frame routed to its handler, for the connection's event worker.
enum Event {
    Message { route_key: String, body: String },
    Disconnect { code: u16, reason: String },
}

pub(super) async fn serve_connection(stage: Arc<WsStage>, info: ConnectionInfo, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut outbox) = mpsc::unbounded_channel::<Message>();
    let connection = Arc::new(Connection {
        info,
        last_active: Mutex::new(Utc::now()),
        out,
        closing: Mutex::new(None),
        close_started: Notify::new(),
    });
    let id = connection.info.id.clone();
    stage.register(connection.clone());
    let writer = tokio::spawn(async move {
        while let Some(message) = outbox.recv().await {
            let last = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || last {
                break;
            }
        }
    });
    let (events, queue) = mpsc::unbounded_channel();
    let worker = tokio::spawn(deliver(stage.clone(), connection.clone(), queue));
    let (code, reason) = read(&stage, &connection, &mut stream, &events).await;
    stage.forget(&id);
    let _ = events.send(Event::Disconnect { code, reason });
    drop(events);
    let _ = worker.await;
    // The last senders go: the writer ends once the close frame (if any) is out.
    drop(connection);
    let mut writer = writer;
    if tokio::time::timeout(CLOSE_WAIT, &mut writer).await.is_err() {
        writer.abort();
    }
}

/// Reads the client's frames until the socket closes; returns the close code and reason.
async fn read(
    stage: &WsStage,
    connection: &Connection,
    stream: &mut futures::stream::SplitStream<WebSocket>,
    events: &mpsc::UnboundedSender<Event>,
) -> (u16, String) {
    let mut client_close: Option<(u16, String)> = None;
    loop {
        if client_close.is_some() || connection.closing().is_some() {
            // Closing: the management API answers 410 from now on.
            stage.forget(&connection.info.id);
        }
        let next = match connection.closing() {
            // No answer in time reads as the end of the socket.
            Some(_) => tokio::time::timeout(CLOSE_WAIT, stream.next())
                .await
                .unwrap_or_default(),
            None => tokio::select! {
                next = stream.next() => next,
                () = connection.close_started.notified() => continue,
            },
        };
        match next {
            Some(Ok(Message::Text(text))) => {
                if connection.closing().is_some() {
                    continue;
                }
                connection.touch();
                receive(stage, connection, text.as_str(), events);
            }
            Some(Ok(Message::Binary(_))) => {
                connection.close(1003, "Binary frames are not supported")
            }
            Some(Ok(Message::Close(frame))) => {
                client_close = Some(match frame {
                    Some(f) => (f.code, f.reason.as_str().to_owned()),
                    None => (1005, "Client-side close frame status not set".to_owned()),
                });
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => connection.touch(),
            Some(Err(e)) => {
                if connection.closing().is_none() && client_close.is_none() && too_large(e) {
                    connection.close(1009, "Message too big");
                    // The rest of the frame cannot be read: the socket ends here.
                }
                break;
            }
            None => break,
        }
    }
    connection
        .closing()
        .or(client_close)
        .unwrap_or_else(|| (1006, "Connection closed abnormally".to_owned()))
}

fn too_large(error: axum::Error) -> bool {
    let inner = error.into_inner();
    matches!(
        inner.downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}

/// One text frame: refused over the frame limit, else routed (or answered `Forbidden`).
fn receive(
    stage: &WsStage,
    connection: &Connection,
    text: &str,
    events: &mpsc::UnboundedSender<Event>,
) {
    if text.len() > FRAME_LIMIT {
        connection.close(1009, "Message too big");
        return;
    }
    match ws_event::select_route(text, &stage.selection, |k| stage.routes.contains_key(k)) {
        Some(route_key) => {
            let _ = events.send(Event::Message {
                route_key,
                body: text.to_owned(),
            });
        }
        None => connection.send(Message::text(ws_event::error_frame(
            "Forbidden",
            &connection.info.id,
            &ws_event::new_id(),
        ))),
    }
}

/// The connection's event worker: one invocation at a time, in arrival order.
async fn deliver(
    stage: Arc<WsStage>,
    connection: Arc<Connection>,
    mut queue: mpsc::UnboundedReceiver<Event>,
) {
    while let Some(event) = queue.recv().await {
        match event {
            Event::Message { route_key, body } => {
                let Some(handler) = stage.routes.get(&route_key) else {
                    continue;
                };
                let event =
                    ws_event::message_event(&connection.info, &route_key, &body, Utc::now());
                let request_id = event["requestContext"]["requestId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let frame = match invoke(handler, event).await {
                    Ok(response) => response
                        .get("body")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    Err(Failure::Failed) => Some(ws_event::error_frame(
                        "Internal server error",
                        &connection.info.id,
                        &request_id,
                    )),
                    Err(Failure::Timeout) => Some(ws_event::error_frame(
                        "Endpoint request timed out",
                        &connection.info.id,
                        &request_id,
                    )),
                };
                if let Some(frame) = frame.filter(|f| !f.is_empty()) {
                    connection.send(Message::text(frame));
                }
            }
            Event::Disconnect { code, reason } => {
                disconnect(&stage, &connection.info, code, &reason).await
            }
        }
    }
}
