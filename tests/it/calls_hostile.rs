//! Video calls under attack (SPEC §12, issue 17), from the outside over the local stack:
//! hostile bodies and other tenants' ids on the HTTP routes, odd tokens on the call page
//! and at `$connect`, hostile frames on the WebSocket API (not JSON, wrong types, 32 KB,
//! binary, floods, after `bye`), parties racing to connect, to hang up and to leave while
//! the other sends, and the call's expiry fired at the wrong moments or many times.
//!
//! Every refusal is a 4xx with a code (a `$connect` refusal a 403), never a 5xx nor a
//! panic in the dev server; a refused request writes nothing; each system message is
//! written once; no frame reaches anybody outside its call.
//!
//! Tests marked `#[ignore = "defect: …"]` show a defect of the code; they pass once it is
//! fixed.

mod bodies;
mod connect;
mod endings;
mod frames;
mod page;

use std::sync::{Mutex, OnceLock};

use integration_tests::{
    TestChannel, accepted_sends_to, all_messages, connect as connect_channel, customer_wrote, get,
    post_json, stack, system_events, token,
};
use serde_json::{Value, json};

pub(crate) use super::calls::{Socket, join, next, phantom_connection, quiet, say};

/// A call started in a customer's conversation (201), and what its parties need.
pub(crate) struct Room {
    pub channel: TestChannel,
    pub conversation: String,
    /// The customer's id at the provider (the outbox's `to`).
    pub customer: String,
    /// An agent's bearer token of the tenant.
    pub agent: String,
    pub id: String,
    pub signaling: String,
    pub agent_token: String,
    pub customer_token: String,
}

/// The last path segment of a call page URL: the role token.
pub(crate) fn token_of(url: &Value) -> String {
    url.as_str()
        .expect("a URL")
        .rsplit('/')
        .next()
        .expect("a segment")
        .to_owned()
}

impl Room {
    /// A new tenant whose WhatsApp customer wrote an hour ago, and a call started there.
    pub async fn open() -> Self {
        let channel = connect_channel("whatsapp").await;
        let (conversation, customer) = customer_wrote(&channel, "whatsapp", 1).await;
        Self::start(channel, conversation, customer).await
    }

    /// Another call in the same conversation.
    pub async fn again(&self) -> Self {
        Self::start(
            self.channel.clone(),
            self.conversation.clone(),
            self.customer.clone(),
        )
        .await
    }

    async fn start(channel: TestChannel, conversation: String, customer: String) -> Self {
        server_panics();
        let agent = token(&channel.tenant, "agent");
        let started = post_json(
            &format!("/conversations/{conversation}/calls"),
            Some(&agent),
            &json!({}),
        )
        .await;
        assert_eq!(started.status, 201, "{}", started.text);
        let call = started.body;
        Self {
            id: call["id"].as_str().expect("id").to_owned(),
            signaling: call["signaling_url"]
                .as_str()
                .expect("signaling")
                .to_owned(),
            agent_token: token_of(&call["agent_url"]),
            customer_token: token_of(&call["customer_url"]),
            channel,
            conversation,
            customer,
            agent,
        }
    }

    /// `GET /calls/{id}` as the tenant's agent (200): the call.
    pub async fn view(&self) -> Value {
        let view = get(&format!("/calls/{}", self.id), Some(&self.agent)).await;
        assert_eq!(view.status, 200, "{}", view.text);
        view.body
    }

    /// Waits (5 s at most) until the call has `status`.
    pub async fn until_status(&self, status: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let view = self.view().await;
            if view["status"] == status || std::time::Instant::now() > deadline {
                assert_eq!(view["status"], status, "{view}");
                return view;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// How many system messages with `event` this call wrote in its conversation.
    pub async fn events(&self, event: &str) -> usize {
        system_events(&self.channel.tenant, &self.conversation, event)
            .await
            .into_iter()
            .filter(|m| m["reason"] == self.id.as_str())
            .count()
    }

    /// `call_started`, `call_ended`, `call_missed` counts of this call.
    pub async fn tally(&self) -> [usize; 3] {
        [
            self.events("call_started").await,
            self.events("call_ended").await,
            self.events("call_missed").await,
        ]
    }

    /// Connects with the agent's token.
    pub async fn agent_joins(&self) -> Result<Socket, u16> {
        join(&self.signaling, &self.agent_token).await
    }

    /// Connects with the customer's token.
    pub async fn customer_joins(&self) -> Result<Socket, u16> {
        join(&self.signaling, &self.customer_token).await
    }

    /// Both parties connected (the agent first, told `peer_joined`), the call active.
    pub async fn pair(&self) -> (Socket, Socket) {
        let mut agent = self.agent_joins().await.expect("the agent joins");
        let customer = self.customer_joins().await.expect("the customer joins");
        assert_eq!(next(&mut agent).await, json!({"type": "peer_joined"}));
        (agent, customer)
    }

    /// Fires the call's expiry as EventBridge Scheduler would (the schedule's input).
    pub async fn fire_expiry(&self) {
        let fire = integration_tests::scheduler_handler();
        fire(json!({"kind": "call_expiry", "tenant_id": self.channel.tenant, "call_id": self.id}))
            .await
            .expect("the expiry is handled");
    }

    /// What a refused request must leave as it was: the conversation's messages, the sends
    /// to the customer and the tenant's calls.
    pub async fn snapshot(&self) -> Snapshot {
        snapshot(&self.channel, &self.conversation, &self.customer).await
    }
}

/// What a refused request must leave as it was.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snapshot {
    pub messages: Vec<Value>,
    pub sends: usize,
    pub calls: Vec<String>,
}

pub(crate) async fn snapshot(
    channel: &TestChannel,
    conversation: &str,
    customer: &str,
) -> Snapshot {
    server_panics();
    Snapshot {
        messages: all_messages(&channel.tenant, conversation).await,
        sends: accepted_sends_to(&channel.external_id, customer).len(),
        calls: call_items(&channel.tenant).await,
    }
}

/// The ids of the tenant's call items in the table (scanned, consistently).
pub(crate) async fn call_items(tenant: &str) -> Vec<String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let dynamo = aws_sdk_dynamodb::Client::new(&stack().settings.sdk_config());
    let table = stack().template.local_name("ChatTable").expect("table");
    let tenant = shared::domain::ids::TenantId::parse(tenant).expect("tenant");
    let prefix = shared::adapters::keys::call(&tenant, "")
        .pk
        .trim_end_matches('#')
        .to_owned();
    let mut ids = Vec::new();
    let mut start = None;
    loop {
        let page = dynamo
            .scan()
            .table_name(&table)
            .consistent_read(true)
            .filter_expression("begins_with(pk, :p) AND #e = :call")
            .expression_attribute_names("#e", shared::adapters::keys::ENTITY)
            .expression_attribute_values(":p", AttributeValue::S(prefix.clone()))
            .expression_attribute_values(":call", AttributeValue::S("call".into()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for item in page.items() {
            if let Some(AttributeValue::S(id)) = item.get("id") {
                ids.push(id.clone());
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    ids.sort();
    ids
}

/// The calls function's WebSocket handler, built as the dev server builds it: events fed
/// to it directly arrive as API Gateway sends them, with no ordering per connection (API
/// Gateway invokes a connection's routes concurrently).
pub(crate) fn ws_handler() -> local_stack::functions::WsHandler {
    local_stack::devserver::built(&stack().template, &stack().settings, "calls")
        .expect("the calls function builds")
        .websocket
        .expect("calls handles WebSocket events")
}

/// The panics of the dev server's threads since the first call (made as each test here
/// starts). A test's own panics (its assertions) run on its own threads and are not
/// counted.
pub(crate) fn server_panics() -> Vec<String> {
    static PANICS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    static HOOK: OnceLock<()> = OnceLock::new();
    let panics = PANICS.get_or_init(Mutex::default);
    HOOK.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            if thread.name() == Some(integration_tests::DEV_SERVER_THREAD) {
                PANICS
                    .get_or_init(Mutex::default)
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(info.to_string());
            }
            previous(info);
        }));
    });
    panics.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Asserts that no dev server thread panicked.
pub(crate) fn no_server_panic() {
    let panics = server_panics();
    assert!(panics.is_empty(), "the dev server panicked: {panics:?}");
}

/// Sends a text frame as is (not necessarily JSON).
pub(crate) async fn say_raw(socket: &mut Socket, text: impl Into<String>) {
    use futures::SinkExt;
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            text.into().into(),
        ))
        .await
        .expect("sent");
}

/// A signal frame of `kind` with `payload`.
pub(crate) fn signal(kind: &str, payload: Value) -> Value {
    json!({"action": "signal", "type": kind, "payload": payload})
}

/// The close code the server ends `socket` with (5 s at most), skipping text frames.
pub(crate) async fn close_code(socket: &mut Socket) -> Option<u16> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
            Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
        }
    }
}

/// Every text frame arriving within `ms` milliseconds, as JSON.
pub(crate) async fn drain(socket: &mut Socket, ms: u64) -> Vec<Value> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(ms);
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                out.push(serde_json::from_str(&text).unwrap_or(Value::String(text.to_string())));
            }
            Ok(Some(Ok(_))) => {}
            Ok(None) | Ok(Some(Err(_))) | Err(_) => return out,
        }
    }
}
