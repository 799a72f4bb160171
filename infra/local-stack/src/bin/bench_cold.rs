//! `make bench`, release bootstraps: size, cold start and peak memory.
//!
//! Each bootstrap built by `cargo lambda build --release` is started as Lambda starts it,
//! against a loopback mock of the Lambda Runtime API, with the environment template.yaml
//! gives the function. Init is the time from spawn to its first
//! `GET /2018-06-01/runtime/invocation/next`. Every provider URL points at a tripwire
//! listener; a second series also points the AWS endpoint there, so any network call at
//! start-up is counted. A hello-world
//! `lambda_http` bootstrap, built and started the same way, is the reference. Peak RSS
//! (`VmHWM`) is read after 1000 real invocations over moto and the provider sandbox.
//!
//! Usage: `bench_cold <x86_64 lambda dir> [<arm64 lambda dir>]` (each holds
//! `<binary>/bootstrap`).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use chrono::Utc;
use local_stack::bench;
use local_stack::moto::Moto;
use local_stack::sandbox::{Sandbox, SandboxConfig};
use local_stack::template::{self, Template};
use local_stack::{BoxError, LOCAL_REGION, LocalSettings, bootstrap};
use serde_json::{Value, json};
use shared::adapters::dynamo::DynamoStore;
use shared::domain::ids::TenantId;
use tokio::process::{Child, Command};
use tokio::sync::Notify;

const RUNS: usize = 30;
const INVOCATIONS: usize = 1000;
const INIT_P50_BUDGET_MS: f64 = 10.0;
const SIZE_BUDGET_MIB: f64 = 8.0;
const TEXT_RSS_BUDGET_MB: f64 = 32.0;
const MEDIA_RSS_BUDGET_MB: f64 = 64.0;
const APP_SECRET: &str = "bench-app-secret";
const MP4_SIZE: usize = 16 * 1024 * 1024 - 4096;

/// The mock Runtime API's state for one process.
#[derive(Default)]
struct Runtime {
    events: Mutex<VecDeque<Value>>,
    first_next: Mutex<Option<Instant>>,
    answered: Mutex<Vec<(String, u16)>>,
    errors: Mutex<Vec<String>>,
    changed: Notify,
}

async fn next(State(rt): State<Arc<Runtime>>) -> impl IntoResponse {
    rt.first_next
        .lock()
        .expect("runtime state")
        .get_or_insert_with(Instant::now);
    rt.changed.notify_waiters();
    loop {
        let event = rt.events.lock().expect("runtime state").pop_front();
        if let Some(event) = event {
            let id = ulid::Ulid::new().to_string();
            let deadline = (Utc::now().timestamp_millis() + 30_000).to_string();
            let mut headers = HeaderMap::new();
            headers.insert("lambda-runtime-aws-request-id", id.parse().expect("header"));
            headers.insert(
                "lambda-runtime-deadline-ms",
                deadline.parse().expect("header"),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench"
                    .parse()
                    .expect("header"),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                "Root=1-bench".parse().expect("header"),
            );
            return (StatusCode::OK, headers, event.to_string());
        }
        // No event queued: hold the call like Lambda does between invocations.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn response(
    State(rt): State<Arc<Runtime>>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> StatusCode {
    let status = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["statusCode"].as_u64())
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(200);
    rt.answered
        .lock()
        .expect("runtime state")
        .push((id, status));
    rt.changed.notify_waiters();
    StatusCode::ACCEPTED
}

async fn error(State(rt): State<Arc<Runtime>>, body: String) -> StatusCode {
    rt.errors.lock().expect("runtime state").push(body);
    rt.changed.notify_waiters();
    StatusCode::ACCEPTED
}

/// Starts a mock Runtime API; returns its state and `host:port`.
async fn runtime_api(events: Vec<Value>) -> Result<(Arc<Runtime>, String), BoxError> {
    let rt = Arc::new(Runtime::default());
    rt.events.lock().expect("runtime state").extend(events);
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(rt.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((rt, addr))
}

/// A listener that only counts connections: where every outside URL points during init.
async fn tripwire() -> Result<(Arc<Mutex<usize>>, String), BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = format!("http://{}", listener.local_addr()?);
    let count = Arc::new(Mutex::new(0usize));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            *seen.lock().expect("tripwire") += 1;
            drop(socket);
        }
    });
    Ok((count, addr))
}

/// What Lambda adds to a function's environment, plus the template's variables.
fn lambda_env(
    function_env: &HashMap<String, String>,
    runtime: &str,
    name: &str,
) -> HashMap<String, String> {
    let mut env = function_env.clone();
    for (k, v) in [
        ("AWS_LAMBDA_RUNTIME_API", runtime),
        ("AWS_LAMBDA_FUNCTION_NAME", name),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/24/[$LATEST]bench"),
        ("AWS_REGION", LOCAL_REGION),
        ("AWS_DEFAULT_REGION", LOCAL_REGION),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_SESSION_TOKEN", "local"),
        ("_HANDLER", "bootstrap"),
        ("TZ", ":UTC"),
        ("RUST_LOG", "warn"),
    ] {
        env.insert(k.to_owned(), v.to_owned());
    }
    env
}

fn spawn(bootstrap: &Path, env: &HashMap<String, String>) -> Result<Child, BoxError> {
    Ok(Command::new(bootstrap)
        .env_clear()
        .envs(env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

/// Spawn → first `GET /next`, once.
async fn init_once(bootstrap: &Path, env: &HashMap<String, String>) -> Result<Duration, BoxError> {
    let (rt, addr) = runtime_api(Vec::new()).await?;
    let env = lambda_env(env, &addr, "bench");
    let started = Instant::now();
    let mut child = spawn(bootstrap, &env)?;
    let limit = started + Duration::from_secs(10);
    loop {
        let first = *rt.first_next.lock().expect("runtime state");
        if let Some(at) = first {
            child.kill().await.ok();
            return Ok(at - started);
        }
        if let Some(status) = child.try_wait()? {
            return Err(format!("{} exited during init: {status}", bootstrap.display()).into());
        }
        if Instant::now() > limit {
            child.kill().await.ok();
            return Err(format!("{} did not call /next within 10 s", bootstrap.display()).into());
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs `events` through one process; returns its peak RSS and the answers' statuses.
async fn invoke_all(
    bootstrap: &Path,
    env: &HashMap<String, String>,
    events: Vec<Value>,
) -> Result<(f64, Vec<u16>), BoxError> {
    let total = events.len();
    let (rt, addr) = runtime_api(events).await?;
    let env = lambda_env(env, &addr, "bench");
    let mut child = spawn(bootstrap, &env)?;
    let pid = child.id().ok_or("no pid")?;
    let limit = Instant::now() + Duration::from_secs(600);
    loop {
        let done = rt.answered.lock().expect("runtime state").len()
            + rt.errors.lock().expect("runtime state").len();
        if done >= total {
            break;
        }
        if child.try_wait()?.is_some() || Instant::now() > limit {
            return Err(format!(
                "{} stopped after {done} of {total} invocations",
                bootstrap.display()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rss = peak_rss_mb(pid);
    child.kill().await.ok();
    let errors = rt.errors.lock().expect("runtime state").len();
    if errors > 0 {
        return Err(format!("{errors} invocations failed").into());
    }
    let statuses = rt
        .answered
        .lock()
        .expect("runtime state")
        .iter()
        .map(|(_, s)| *s)
        .collect();
    Ok((rss, statuses))
}

struct Row {
    name: String,
    measured: String,
    budget: String,
    ok: Option<bool>,
}

fn row(
    rows: &mut Vec<Row>,
    name: impl Into<String>,
    measured: String,
    budget: &str,
    ok: Option<bool>,
) {
    rows.push(Row {
        name: name.into(),
        measured,
        budget: budget.to_owned(),
        ok,
    });
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let x86 = args
        .first()
        .ok_or("usage: bench_cold <x86_64 lambda dir> [<arm64 lambda dir>]")?;
    let arm = args.get(1);
    let template = Template::load(&template::default_path(), LOCAL_REGION)?;
    let binaries: Vec<String> = template
        .functions()?
        .into_iter()
        .map(|f| f.binary)
        .collect();
    let mut rows = Vec::new();

    // Size of each stripped bootstrap.
    for (arch, dir) in [("x86_64", Some(x86)), ("arm64", arm)] {
        let Some(dir) = dir else { continue };
        for name in binaries.iter().map(String::as_str).chain(["hello"]) {
            let path = dir.join(name).join("bootstrap");
            let mib = std::fs::metadata(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .len() as f64
                / 1048576.0;
            let budgeted = name != "hello";
            row(
                &mut rows,
                format!("size, {name} ({arch})"),
                format!("{mib:.2} MiB"),
                if budgeted { "≤ 8 MiB" } else { "reference" },
                budgeted.then_some(mib <= SIZE_BUDGET_MIB),
            );
        }
    }

    // One TLS stack: the rustls versions linked into the workspace's normal dependencies.
    let tree =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "tree",
                "--workspace",
                "--edges",
                "normal",
                "--prefix",
                "none",
                "--target",
                "all",
            ])
            .output()?;
    let mut rustls: Vec<String> = String::from_utf8_lossy(&tree.stdout)
        .lines()
        .filter(|l| l.starts_with("rustls v"))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    rustls.sort();
    rustls.dedup();
    row(
        &mut rows,
        "rustls versions in `cargo tree` (normal dependencies, all targets)",
        rustls.join(", "),
        "1",
        Some(rustls.len() == 1),
    );

    // Cold start, twice per function. As deployed: the template's environment, no AWS
    // endpoint override, so the SDK takes its production client (Amazon roots compiled
    // in); provider URLs point at the tripwire, and an AWS call during init would fail
    // the start (there is no route to AWS here). Then with `AWS_ENDPOINT_URL` at the
    // tripwire too, so any AWS call during init is counted; that is the emulator's path
    // (the SDK's default client, reading the system certificate store), slower, and shown
    // for reference.
    let (calls, wire) = tripwire().await?;
    let mut settings = LocalSettings::from_env(wire.clone())?;
    for name in ["META_GRAPH_URL", "WECHAT_API_URL"] {
        settings.overrides.insert(name.into(), wire.clone());
    }
    let mut inits = Vec::new();
    for name in std::iter::once("hello").chain(binaries.iter().map(String::as_str)) {
        let deployed = match template.functions()?.into_iter().find(|f| f.binary == name) {
            Some(f) => template.resolve_environment(&f, &settings.overrides)?,
            None => HashMap::new(),
        };
        let mut overridden = deployed.clone();
        overridden.insert("AWS_ENDPOINT_URL".into(), wire.clone());
        let bootstrap = x86.join(name).join("bootstrap");
        let mut measured = Vec::new();
        for env in [&deployed, &overridden] {
            let mut times = Vec::new();
            for _ in 0..RUNS {
                times.push(init_once(&bootstrap, env).await?);
            }
            times.sort();
            measured.push((percentile(&times, 0.5), percentile(&times, 0.95)));
        }
        inits.push((name.to_owned(), measured[0], measured[1]));
    }
    let hello_p50 = inits[0].1.0;
    for (name, (p50, p95), (wired_p50, wired_p95)) in &inits {
        if name == "hello" {
            row(
                &mut rows,
                "cold start, hello-world lambda_http (reference)",
                format!("p50 {p50:.1} ms, p95 {p95:.1} ms"),
                "reference",
                None,
            );
            continue;
        }
        row(
            &mut rows,
            format!("cold start, {name}"),
            format!(
                "p50 {p50:.1} ms, p95 {p95:.1} ms ({:.1}× hello)",
                p50 / hello_p50
            ),
            "p50 ≤ 10 ms",
            Some(*p50 <= INIT_P50_BUDGET_MS),
        );
        row(
            &mut rows,
            format!("cold start, {name}, with an AWS endpoint override (emulator path)"),
            format!("p50 {wired_p50:.1} ms, p95 {wired_p95:.1} ms"),
            "reference",
            None,
        );
    }
    let network = *calls.lock().expect("tripwire");
    row(
        &mut rows,
        format!(
            "network calls during init ({} starts)",
            2 * RUNS * inits.len()
        ),
        network.to_string(),
        "0",
        Some(network == 0),
    );

    // Peak memory over 1000 invocations, against moto and the provider sandbox.
    let moto = Moto::start(0)?;
    let mut settings = LocalSettings::from_env(moto.endpoint())?;
    settings
        .overrides
        .insert("META_APP_SECRET".into(), APP_SECRET.into());
    let sandbox = Sandbox::new(SandboxConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandbox_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(sandbox.clone().serve(listener));
    settings
        .overrides
        .insert("META_GRAPH_URL".into(), format!("{sandbox_url}/graph"));
    settings
        .overrides
        .insert("WECHAT_API_URL".into(), format!("{sandbox_url}/wechat"));
    let sdk = settings.sdk_config();
    bootstrap::create_resources(&template, &sdk).await?;
    // The emulator's URL comes with the settings: AWS_ENDPOINT_URL points at moto.
    let env_of = |binary: &str| bench::function_env(&template, &settings, binary);
    let webhook_env = env_of("webhook")?;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        webhook_env["TABLE_NAME"].clone(),
    );
    let phone = "1065403522";
    let channel = bench::whatsapp_channel(&store, phone).await?;
    let customers: Vec<String> = (0..20).map(|i| format!("1555123{i:04}")).collect();

    let events = (0..INVOCATIONS)
        .map(|i| {
            let customer = &customers[i % customers.len()];
            let body = bench::whatsapp_text(
                phone,
                customer,
                &format!("wamid.cold.{i}"),
                &format!("hello {i}"),
            );
            bench::meta_webhook_event("/webhooks/whatsapp", &body, APP_SECRET)
        })
        .collect();
    let (rss, statuses) =
        invoke_all(&x86.join("webhook").join("bootstrap"), &webhook_env, events).await?;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    row(
        &mut rows,
        format!("peak RSS, webhook: {INVOCATIONS} inbound texts ({ok} answered 200)"),
        format!("{rss:.1} MB"),
        "≤ 32 MB",
        Some(rss <= TEXT_RSS_BUDGET_MB && ok == INVOCATIONS),
    );

    let outbound_env = env_of("outbound")?;
    let events = (0..INVOCATIONS)
        .map(|i| {
            let conversation = shared::domain::conversation::conversation_id(
                &channel.id,
                &customers[i % customers.len()],
            );
            let path = format!("/conversations/{conversation}/messages");
            let body = json!({"kind": "text", "text": format!("reply {i} 👋")}).to_string();
            bench::agent_event(
                "POST",
                "/conversations/{id}/messages",
                &path,
                json!({"id": conversation}),
                &body,
            )
        })
        .collect();
    let (rss, statuses) = invoke_all(
        &x86.join("outbound").join("bootstrap"),
        &outbound_env,
        events,
    )
    .await?;
    let ok = statuses.iter().filter(|s| **s == 202).count();
    row(
        &mut rows,
        format!("peak RSS, outbound: {INVOCATIONS} text sends ({ok} answered 202)"),
        format!("{rss:.1} MB"),
        "≤ 32 MB",
        Some(rss <= TEXT_RSS_BUDGET_MB && ok == INVOCATIONS),
    );

    let chatroom_env = env_of("chatroom")?;
    let events = (0..INVOCATIONS)
        .map(|_| bench::agent_event("GET", "/conversations", "/conversations", Value::Null, ""))
        .collect();
    let (rss, statuses) = invoke_all(
        &x86.join("chatroom").join("bootstrap"),
        &chatroom_env,
        events,
    )
    .await?;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    row(
        &mut rows,
        format!("peak RSS, chatroom: {INVOCATIONS} conversation lists ({ok} answered 200)"),
        format!("{rss:.1} MB"),
        "≤ 32 MB",
        Some(rss <= TEXT_RSS_BUDGET_MB && ok == INVOCATIONS),
    );
    // Media: upload forms, with five 16 MB MP4 validations among them.
    let media_env = env_of("media")?;
    let tenant = TenantId::parse("bench")?;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let video = local_stack::media_files::mp4(MP4_SIZE);
    let mut validations = Vec::new();
    for n in 0..5 {
        let id = format!("01BENCHCOLDMP4{n}");
        shared::ports::MediaStore::create_media(
            &store,
            &shared::domain::media::MediaRecord {
                id: id.clone(),
                tenant_id: tenant.clone(),
                status: shared::domain::media::MediaStatus::Pending,
                filename: "clip.mp4".into(),
                mime_type: "video/mp4".into(),
                kind: shared::domain::media::MediaKind::Video,
                size: MP4_SIZE as u64,
                sha256: None,
                reason_code: None,
                reason: None,
                created_at: Utc::now(),
                inbound: false,
                version: None,
            },
        )
        .await?;
        let key = shared::domain::media::quarantine_key(&tenant, &id);
        s3.put_object()
            .bucket(&media_env["MEDIA_BUCKET"])
            .key(&key)
            .content_type("video/mp4")
            .body(video.clone().into())
            .send()
            .await?;
        validations.push(json!({
            "version": "0", "id": ulid::Ulid::new().to_string(), "detail-type": "Object Created", "source": "aws.s3",
            "account": "123456789012", "time": Utc::now().to_rfc3339(), "region": LOCAL_REGION, "resources": [],
            "detail": {"version": "0", "bucket": {"name": media_env["MEDIA_BUCKET"]}, "object": {"key": key, "size": MP4_SIZE}}
        }));
    }
    let form =
        json!({"filename": "photo.jpg", "content_type": "image/jpeg", "size": 200_000}).to_string();
    let mut events: Vec<Value> = (0..INVOCATIONS - validations.len())
        .map(|_| bench::agent_event("POST", "/media", "/media", Value::Null, &form))
        .collect();
    for (n, v) in validations.into_iter().enumerate() {
        events.insert(100 + n * 200, v);
    }
    let (rss, statuses) =
        invoke_all(&x86.join("media").join("bootstrap"), &media_env, events).await?;
    let forms = statuses.iter().filter(|s| **s == 201).count();
    let mut valid = 0;
    for n in 0..5 {
        let id = format!("01BENCHCOLDMP4{n}");
        let record = shared::ports::MediaStore::get_media(&store, &tenant, &id).await?;
        if record.is_some_and(|r| r.status == shared::domain::media::MediaStatus::Valid) {
            valid += 1;
        }
    }
    row(
        &mut rows,
        format!(
            "peak RSS, media: {INVOCATIONS} invocations ({forms} upload forms; {valid} of 5 16 MB MP4s validated as valid)"
        ),
        format!("{rss:.1} MB"),
        "≤ 64 MB",
        Some(rss <= MEDIA_RSS_BUDGET_MB && forms == INVOCATIONS - 5 && valid == 5),
    );
    drop(moto);

    println!(
        "\nRelease bootstraps (cargo lambda build --release), started through a mock Lambda Runtime API\n"
    );
    println!("| figure | measured | budget | result |");
    println!("|---|---|---|---|");
    let mut failed = false;
    for r in &rows {
        let result = match r.ok {
            Some(true) => "pass",
            Some(false) => {
                failed = true;
                "FAIL"
            }
            None => "—",
        };
        println!("| {} | {} | {} | {result} |", r.name, r.measured, r.budget);
    }
    if failed {
        return Err("a release bootstrap is over its budget".into());
    }
    Ok(())
}
