//! `make bench`, scheduled messages (SPEC §9):
//!
//! 1. AWS requests per fire ([`fires`]): the scheduler's `handle_event` called directly
//!    with a schedule's input over moto, an SDK interceptor recording every request: a fire
//!    that sends (the fire's own requests and the send's), a repeated delivery, a fire
//!    outside the WhatsApp window without fallback;
//! 2. 1,000 scheduled messages due in the same minute ([`scale`]) on the local stack (moto,
//!    the dev server's functions, the provider sandbox, the event and schedule stand-ins):
//!    created through `POST /conversations/{id}/scheduled-messages` over 50 conversations
//!    of one WhatsApp channel, then waited for until settled. Every one must fire and reach
//!    the provider exactly once; the time from `send_at` to the provider's send is printed,
//!    with where it went ([`observe`]).
//!
//! The first argument may ask for another number of messages (e.g. 200 for a quick run).

mod fires;
mod observe;
mod scale;

use std::time::Instant;

use chrono::{DateTime, Utc};
use local_stack::moto::Moto;
use local_stack::sandbox::{Sandbox, SandboxConfig};
use local_stack::template::{self, Template};
use local_stack::{BoxError, LOCAL_REGION, LocalSettings, bootstrap};
use serde_json::Value;

/// `META_APP_SECRET` of the bench's stack (the sandbox signs webhooks with it).
const APP_SECRET: &str = "bench-app-secret";

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50, p95 and max of durations in ms (sorts them).
fn spread(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms (n = {})",
        percentile(values, 50.0),
        percentile(values, 95.0),
        values.last().copied().unwrap_or(f64::NAN),
        values.len()
    )
}

/// Milliseconds from `from` to `to` (negative when `to` is earlier).
fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64
}

/// An RFC 3339 string value as an instant.
fn parse_time(value: &Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // Warnings and errors only (the stand-in's failed invocations, the functions' errors).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        ))
        .with_writer(std::io::stderr)
        .init();
    let messages = match std::env::args().nth(1) {
        Some(n) => n.parse::<usize>()?,
        None => scale::MESSAGES,
    };
    if messages < scale::CONVERSATIONS {
        return Err(format!("at least {} messages", scale::CONVERSATIONS).into());
    }
    let started = Instant::now();
    let moto = Moto::start(0)?;
    let mut settings = LocalSettings::from_env(moto.endpoint())?;
    let sandbox = Sandbox::new(SandboxConfig {
        meta_app_secret: APP_SECRET.to_owned(),
        ..SandboxConfig::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandbox_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(sandbox.clone().serve(listener));
    for (name, value) in [
        ("META_APP_SECRET", APP_SECRET.to_owned()),
        ("META_GRAPH_URL", format!("{sandbox_url}/graph")),
        ("WECHAT_API_URL", format!("{sandbox_url}/wechat")),
    ] {
        settings.overrides.insert(name.to_owned(), value);
    }
    let template = Template::load(&template::default_path(), LOCAL_REGION)?;
    bootstrap::create_resources(&template, &settings.sdk_config()).await?;

    let fires_ok = fires::run(&template, &settings, &sandbox).await?;
    let scale_ok = scale::run(&template, &settings, &sandbox, messages).await?;
    println!(
        "\nbench_schedules took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    drop(moto);
    if !fires_ok {
        return Err("a fire is over its request budget or did not do what it should".into());
    }
    if !scale_ok {
        return Err(
            "a scheduled message was not fired, or not sent to the provider exactly once".into(),
        );
    }
    Ok(())
}
