//! Claiming channels that are not yours (issue 18), from the outside: ids that would reach
//! into the provider's URL, a WeChat channel naming a Meta account, provider answers the
//! proof must not trust (a 200 that is not Graph's answer, endless or foreign pages, huge
//! or slow answers, WeChat answering without a token), and public tokens used on the other
//! kind of page.
//!
//! The id and token tests go through the dev server and the sandbox. The provider-answer
//! tests run the same use case the chatroom function runs (`connect_channel` with the
//! function's provider clients and a real store in moto) against a scripted provider of
//! their own, since the stack's sandbox answers only as Meta and WeChat should.
//!
//! Every refusal is a 4xx (or a 502 when the provider misbehaves) and stores nothing.

mod answers;
mod ids;
mod tokens;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use integration_tests::{get, stack, token};
use serde_json::Value;
use shared::Error;
use shared::adapters::channels::{CALL_TIMEOUT, Channels, ProviderUrls};
use shared::adapters::dynamo::DynamoStore;
use shared::domain::auth::Principal;
use shared::domain::channel::{Channel, ConnectChannel};

/// One answer of the scripted provider.
#[derive(Debug, Clone)]
pub(crate) struct Scripted {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Waited before the answer.
    pub delay: Duration,
}

impl Scripted {
    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Self {
        Self::raw(status, "application/json", body.to_string())
    }

    /// Any answer.
    pub fn raw(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type,
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// The same answer, after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Script {
    /// Answered in order; the last one again once the others are used.
    answers: VecDeque<Scripted>,
    /// `METHOD path?query` of every request, in order.
    seen: Vec<String>,
}

/// A provider (Graph and WeChat at once) that answers what the test scripted, and
/// remembers what it was asked.
#[derive(Clone)]
pub(crate) struct Provider {
    pub url: String,
    script: Arc<Mutex<Script>>,
}

impl Provider {
    /// Starts one on a free loopback port, answering `answers` in order.
    pub async fn start(answers: Vec<Scripted>) -> Self {
        let script = Arc::new(Mutex::new(Script {
            answers: answers.into(),
            seen: Vec::new(),
        }));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, script }
    }

    /// The requests it got: `METHOD path?query`.
    pub fn seen(&self) -> Vec<String> {
        self.script.lock().unwrap().seen.clone()
    }

    /// The chatroom function's provider clients, pointed here (the function's call cap;
    /// WeChat tokens through the table, as the function keeps them).
    pub fn channels(&self) -> Channels {
        Channels::new(
            ProviderUrls {
                graph: format!("{}/graph", self.url),
                wechat: format!("{}/wechat", self.url),
            },
            CALL_TIMEOUT,
        )
        .unwrap()
        .with_wechat_tokens(store())
    }
}

async fn answer(State(script): State<Arc<Mutex<Script>>>, request: Request) -> Response {
    let next = {
        let mut script = script.lock().unwrap();
        let uri = request.uri();
        let seen = format!(
            "{} {}",
            request.method(),
            uri.path_and_query().map_or(uri.path(), |p| p.as_str())
        );
        script.seen.push(seen);
        if script.answers.len() > 1 {
            script.answers.pop_front()
        } else {
            script.answers.front().cloned()
        }
    };
    let Some(next) = next else {
        return StatusCode::NOT_FOUND.into_response();
    };
    tokio::time::sleep(next.delay).await;
    (
        StatusCode::from_u16(next.status).unwrap(),
        [(header::CONTENT_TYPE, next.content_type)],
        next.body,
    )
        .into_response()
}

/// The stack's table, through a store of this test's own.
pub(crate) fn store() -> DynamoStore {
    DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&stack().settings.sdk_config()),
        stack().template.local_name("ChatTable").unwrap(),
    )
}

/// `POST /channels` as `tenant`'s admin, through the use case the chatroom function runs,
/// with `provider`'s clients.
pub(crate) async fn connect_with(
    provider: &Channels,
    tenant: &str,
    body: &Value,
) -> Result<Channel, Error> {
    let principal = Principal::from_claims(|claim| match claim {
        "sub" => Some("admin-1"),
        "tenant_id" => Some(tenant),
        "role" => Some("admin"),
        _ => None,
    })
    .unwrap();
    let request: ConnectChannel = serde_json::from_value(body.clone()).unwrap();
    shared::service::channels::connect_channel(
        &store(),
        provider,
        &principal,
        request,
        chrono::Utc::now(),
    )
    .await
}

/// Whether anything of a channel was stored: the tenant's list and the deployment-wide
/// claim on the external id.
pub(crate) async fn stored(tenant: &str, external_id: &str) -> (usize, bool) {
    let listed = get("/channels", Some(&token(tenant, "admin"))).await;
    let items = listed.body["items"].as_array().map_or(0, Vec::len);
    let claim = aws_sdk_dynamodb::Client::new(&stack().settings.sdk_config())
        .get_item()
        .table_name(stack().template.local_name("ChatTable").unwrap())
        .key("pk", AttributeValue::S(format!("EXTERNAL#{external_id}")))
        .key("sk", AttributeValue::S("EXTERNAL".to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    (items, claim.item().is_some())
}
