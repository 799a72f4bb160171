//! `make bench`, video calls (SPEC §12): the `calls` handler fed the WebSocket events API
//! Gateway sends, over moto, with DynamoDB requests counted at the SDK and the management
//! API's `PostToConnection` counted at a loopback stand-in of it.
//!
//! AWS requests per relayed signaling frame (goal ≤ 2: the budget), per `$connect`
//! and per hang-up, and the handler's time for each over moto.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::Router;
use axum::routing::post;
use chrono::Utc;
use local_stack::bench::{self, CountedClients};
use local_stack::counter::RequestCounter;
use local_stack::devserver::ws_event::{self, ConnectionInfo};
use local_stack::moto::Moto;
use local_stack::sandbox::{Sandbox, SandboxConfig};
use local_stack::template::{self, Template};
use local_stack::{BoxError, LOCAL_REGION, LocalSettings, bootstrap};
use serde_json::{Value, json};
use shared::adapters::dynamo::DynamoStore;

/// The WhatsApp channel's phone number id (tenant `bench`, that of `bench::agent_event`).
const PHONE: &str = "1065403599";
const CUSTOMER: &str = "15551238001";
/// Frames relayed each way.
const FRAMES: usize = 100;
/// The WebSocket API's stage, as the template names it.
const STAGE: &str = "ws";

struct Bench {
    app: calls::App,
    counter: RequestCounter,
    posts: Arc<AtomicUsize>,
}

/// What one event cost.
struct Cost {
    status: u64,
    dynamodb: Vec<String>,
    posts: usize,
    ms: f64,
}

impl Bench {
    async fn event(&self, event: Value) -> Cost {
        self.counter.take_recorded();
        let posts = self.posts.load(Ordering::SeqCst);
        let started = Instant::now();
        let answer = calls::handle_websocket(&self.app, event).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        Cost {
            status: answer["statusCode"].as_u64().unwrap_or_default(),
            dynamodb: self
                .counter
                .take_recorded()
                .sent
                .into_iter()
                .map(|s| s.operation)
                .collect(),
            posts: self.posts.load(Ordering::SeqCst) - posts,
            ms,
        }
    }
}

fn connection(authority: &str) -> ConnectionInfo {
    ConnectionInfo {
        id: ws_event::new_id(),
        connected_at: Utc::now(),
        source_ip: "127.0.0.1".into(),
        user_agent: "bench".into(),
        domain_name: authority.to_owned(),
        stage: STAGE.into(),
        api_id: "bench".into(),
    }
}

fn signal(kind: &str) -> String {
    json!({"action": "signal", "type": kind, "payload": {"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}).to_string()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        ))
        .with_writer(std::io::stderr)
        .init();
    let moto = Moto::start(0)?;
    let mut settings = LocalSettings::from_env(moto.endpoint())?;
    let sandbox = Sandbox::new(SandboxConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandbox_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(sandbox.clone().serve(listener));

    // The management API: every post answered 200 and counted.
    let posts = Arc::new(AtomicUsize::new(0));
    let counted = posts.clone();
    let management = Router::new().route(
        "/{stage}/@connections/{id}",
        post(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let authority = listener.local_addr()?.to_string();
    tokio::spawn(async move { axum::serve(listener, management).await });
    for (name, value) in [
        ("META_GRAPH_URL", format!("{sandbox_url}/graph")),
        ("PUBLIC_BASE_URL", "http://127.0.0.1:3000".to_owned()),
        ("SIGNALING_URL", format!("ws://{authority}/{STAGE}")),
        (
            "SIGNALING_MANAGEMENT_URL",
            format!("http://{authority}/{STAGE}"),
        ),
    ] {
        settings.overrides.insert(name.to_owned(), value);
    }
    let template = Template::load(&template::default_path(), LOCAL_REGION)?;
    let sdk = settings.sdk_config();
    bootstrap::create_resources(&template, &sdk).await?;
    let env = bench::function_env(&template, &settings, "calls")?;
    let config = shared::config::Config::from_source(&env)?;
    let counter = RequestCounter::default();
    let clients = CountedClients::new(&sdk, &counter);
    let app = calls::App::with_clients(
        &env,
        &config,
        calls::Clients {
            dynamodb: clients.dynamodb.clone(),
            s3: clients.s3.clone(),
            scheduler: clients.scheduler.clone(),
        },
        sdk.clone(),
        local_stack::functions::local_credentials(),
    )?;
    let bench = Bench {
        app,
        counter,
        posts,
    };
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        env["TABLE_NAME"].clone(),
    );
    let channel = bench::whatsapp_channel(&store, PHONE).await?;
    bench::customers_wrote(&store, &channel, &[CUSTOMER]).await?;
    let conversation = shared::domain::conversation::conversation_id(&channel.id, CUSTOMER);

    let mut rows: Vec<(String, Cost, Option<usize>)> = Vec::new();
    let mut relays = Vec::new();
    for run in 0..2 {
        let path = format!("/conversations/{conversation}/calls");
        let request = lambda_http::request::from_str(
            &bench::agent_event(
                "POST",
                "/conversations/{id}/calls",
                &path,
                json!({"id": conversation}),
                "{}",
            )
            .to_string(),
        )?;
        let response = calls::handle_http(&bench.app, request).await;
        let call: Value = serde_json::from_slice(response.body().as_ref())?;
        if response.status() != 201 {
            return Err(format!("start call answered {}: {call}", response.status()).into());
        }
        let token = |url: &Value| {
            url.as_str()
                .and_then(|u| u.rsplit('/').next())
                .unwrap_or_default()
                .to_owned()
        };
        let (agent, customer) = (connection(&authority), connection(&authority));
        let connect = |who: &ConnectionInfo, token: String| {
            ws_event::connect_event(
                who,
                &Default::default(),
                Some(&format!("token={token}")),
                Utc::now(),
            )
        };
        let joined = bench
            .event(connect(&agent, token(&call["agent_url"])))
            .await;
        let second = bench
            .event(connect(&customer, token(&call["customer_url"])))
            .await;
        for cost in [&joined, &second] {
            if cost.status != 200 {
                return Err(format!("$connect answered {}", cost.status).into());
            }
        }
        for i in 0..FRAMES * 2 {
            let from = if i % 2 == 0 { &agent } else { &customer };
            let cost = bench
                .event(ws_event::message_event(
                    from,
                    "signal",
                    &signal("candidate"),
                    Utc::now(),
                ))
                .await;
            if cost.posts != 1 {
                return Err(format!("a frame was posted {} times", cost.posts).into());
            }
            relays.push(cost);
        }
        let bye = bench
            .event(ws_event::message_event(
                &customer,
                "signal",
                &signal("bye"),
                Utc::now(),
            ))
            .await;
        let left = bench
            .event(ws_event::disconnect_event(
                &agent,
                1000,
                "Client closed",
                Utc::now(),
            ))
            .await;
        if run == 1 {
            rows.push(("$connect, the first party".into(), joined, None));
            rows.push((
                "$connect, the second party (the call starts)".into(),
                second,
                None,
            ));
            rows.push(("signal bye (the call ends)".into(), bye, None));
            rows.push(("$disconnect after the call ended".into(), left, None));
        }
    }
    // The first call's frames warmed the process and moto; the second's are measured.
    let measured = relays.split_off(FRAMES * 2);
    let mut ms: Vec<f64> = measured.iter().map(|c| c.ms).collect();
    ms.sort_by(f64::total_cmp);
    let most = measured
        .iter()
        .map(|c| c.dynamodb.len() + c.posts)
        .max()
        .unwrap_or_default();
    let relay = Cost {
        status: 200,
        dynamodb: measured[0].dynamodb.clone(),
        posts: measured[0].posts,
        ms: percentile(&ms, 0.5),
    };
    rows.insert(
        2,
        (
            format!(
                "signal, relayed ({} frames, most {most} requests; ms p50 {:.1}, p95 {:.1})",
                measured.len(),
                percentile(&ms, 0.5),
                percentile(&ms, 0.95)
            ),
            relay,
            Some(2),
        ),
    );

    println!(
        "\nVideo calls: AWS requests per signaling event (handler over moto; DynamoDB counted at the SDK, PostToConnection at the management API)\n"
    );
    println!("| event | AWS requests | budget | result | ms over moto | requests |");
    println!("|---|---|---|---|---|---|");
    let mut ok = most <= 2;
    for (name, cost, budget) in &rows {
        let total = cost.dynamodb.len() + cost.posts;
        let mut ops = cost.dynamodb.clone();
        ops.extend(std::iter::repeat_n(
            "PostToConnection".to_owned(),
            cost.posts,
        ));
        let (budget, pass) = match budget {
            Some(b) => (format!("<= {b}"), total <= *b),
            None => ("—".to_owned(), true),
        };
        ok &= pass;
        println!(
            "| {name} | {total} | {budget} | {} | {:.1} | {} |",
            if pass { "pass" } else { "FAIL" },
            cost.ms,
            ops.join(", ")
        );
    }
    drop(moto);
    if !ok {
        return Err("a calls figure missed its budget".into());
    }
    Ok(())
}
