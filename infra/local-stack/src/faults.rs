//! A loopback proxy in front of the emulator that makes DynamoDB fail the way it fails in
//! AWS, for tests of what survives it: throttling (`ProvisionedThroughputExceededException`,
//! HTTP 400, before the request reaches the table) and `InternalServerError` (HTTP 500),
//! either before the request is applied or after it was (the answer lost on the way back,
//! the case DynamoDB documents for writes that "may have succeeded").
//!
//! Every function, stand-in and the SDK's own retries go through it when a stack is
//! started with [`crate::stack::Hooks::dynamodb_faults`]. Rates are per mille and may be
//! changed while the stack runs (zero while a test sets up).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rand::Rng;

/// How often DynamoDB requests fail, and how many did.
#[derive(Debug, Default)]
pub struct DynamoFaults {
    /// Per mille of requests throttled before they reach the table.
    pub throttle: AtomicU32,
    /// Per mille of requests answered 500 before they reach the table.
    pub error_before: AtomicU32,
    /// Per mille of requests applied, then answered 500.
    pub error_after: AtomicU32,
    /// Requests that failed so far, by kind: throttled, failed before, failed after.
    pub injected: [AtomicUsize; 3],
    /// DynamoDB requests seen.
    pub requests: AtomicUsize,
}

impl DynamoFaults {
    /// Sets the three rates (per mille).
    pub fn set(&self, throttle: u32, error_before: u32, error_after: u32) {
        self.throttle.store(throttle, Ordering::SeqCst);
        self.error_before.store(error_before, Ordering::SeqCst);
        self.error_after.store(error_after, Ordering::SeqCst);
    }

    /// Requests failed so far: throttled, failed before, failed after.
    pub fn counts(&self) -> [usize; 3] {
        [0, 1, 2].map(|i| self.injected[i].load(Ordering::SeqCst))
    }
}

#[derive(Clone)]
struct Proxy {
    target: String,
    faults: Arc<DynamoFaults>,
    http: reqwest::Client,
    /// `ClientRequestToken`s of transactions the table applied. DynamoDB answers a repeat
    /// of one (within 10 minutes) with success and applies nothing; the SDK sets one per
    /// `TransactWriteItems` call and keeps it across its retries. The emulator ignores the
    /// token, so the proxy keeps that promise for it.
    applied: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// The `ClientRequestToken` of a `TransactWriteItems` request.
fn transaction_token(target: &str, body: &[u8]) -> Option<String> {
    if target != "DynamoDB_20120810.TransactWriteItems" {
        return None;
    }
    let body: serde_json::Value = serde_json::from_slice(body).ok()?;
    body["ClientRequestToken"].as_str().map(str::to_owned)
}

fn dynamo_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/x-amz-json-1.0")],
        serde_json::json!({"__type": kind, "message": message}).to_string(),
    )
        .into_response()
}

fn throttled() -> Response {
    dynamo_error(
        StatusCode::BAD_REQUEST,
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
    )
}

fn internal() -> Response {
    dynamo_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "com.amazonaws.dynamodb.v20120810#InternalServerError",
        "Internal server error",
    )
}

async fn forward(
    State(proxy): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let dynamo = target.starts_with("DynamoDB_20120810.");
    let token = transaction_token(&target, &body);
    if let Some(token) = &token
        && proxy.applied.lock().is_ok_and(|a| a.contains(token))
    {
        return (
            StatusCode::OK,
            [("content-type", "application/x-amz-json-1.0")],
            "{}",
        )
            .into_response();
    }
    let mut after = false;
    if dynamo {
        proxy.faults.requests.fetch_add(1, Ordering::SeqCst);
        let draw = rand::rng().random_range(0..1000u32);
        let throttle = proxy.faults.throttle.load(Ordering::SeqCst);
        let before = proxy.faults.error_before.load(Ordering::SeqCst);
        let later = proxy.faults.error_after.load(Ordering::SeqCst);
        if draw < throttle {
            proxy.faults.injected[0].fetch_add(1, Ordering::SeqCst);
            return throttled();
        }
        if draw < throttle + before {
            proxy.faults.injected[1].fetch_add(1, Ordering::SeqCst);
            return internal();
        }
        after = draw < throttle + before + later;
    }
    let url = format!(
        "{}{}",
        proxy.target,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut request = proxy.http.request(method, url).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("emulator unreachable: {e}"),
            )
                .into_response();
        }
    };
    let status = answer.status();
    let answer_headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    if let Some(token) = token
        && status.is_success()
        && let Ok(mut applied) = proxy.applied.lock()
    {
        applied.insert(token);
    }
    if after {
        proxy.faults.injected[2].fetch_add(1, Ordering::SeqCst);
        return internal();
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &answer_headers {
        if name != "content-length" && name != "transfer-encoding" {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// Serves the proxy to `target` (the emulator's URL) on a free loopback port: its URL and
/// the server task.
///
/// # Errors
/// The port cannot be bound.
pub async fn start(
    target: String,
    faults: Arc<DynamoFaults>,
) -> Result<(String, tokio::task::JoinHandle<()>), crate::BoxError> {
    let proxy = Proxy {
        target: target.trim_end_matches('/').to_owned(),
        faults,
        applied: Arc::default(),
        http: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(64)
            .build()?,
    };
    let router = Router::new()
        .fallback(|state: State<Proxy>, req: Request| async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
                .await
                .unwrap_or_default();
            forward(state, parts.method, parts.uri, parts.headers, bytes).await
        })
        .with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the fault proxy stopped");
        }
    });
    Ok((url, task))
}
