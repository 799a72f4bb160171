//! `make bench`, calendar and bookings (SPEC §10): the `bookings` handler called directly
//! with API Gateway events over moto, an SDK interceptor recording every request.
//!
//! 1. AWS requests per operation: a slot created, a booking by an agent, its cancel, an
//!    invitation sent, the booking page rendered, a choice on the page. Operations that
//!    message the customer make their own requests first and then the send path's; the
//!    budgets are for their own (a booking: at most 3).
//! 2. The booking page's render time over moto (200 renders, p50/p95), and 100 concurrent
//!    agent bookings of one slot (exactly one 201, 99 `slot_taken`).

use std::time::Instant;

use chrono::{Duration, Utc};
use lambda_http::Request;
use local_stack::bench::{self, CountedClients};
use local_stack::counter::{Recorded, RequestCounter};
use local_stack::moto::Moto;
use local_stack::sandbox::{Sandbox, SandboxConfig};
use local_stack::template::{self, Template};
use local_stack::{BoxError, LOCAL_REGION, LocalSettings, bootstrap};
use serde_json::{Value, json};
use shared::adapters::dynamo::DynamoStore;

/// The WhatsApp channel's phone number id (tenant `bench`, that of `bench::agent_event`).
const PHONE: &str = "1065403577";
/// Renders of the booking page timed.
const RENDERS: usize = 200;
/// Concurrent bookings of one slot.
const RACERS: usize = 100;

fn request(event: &Value) -> Result<Request, BoxError> {
    Ok(lambda_http::request::from_str(&event.to_string())?)
}

/// A public request of the booking page (no authorizer), with a form body for `POST`.
fn page_event(method: &str, token: &str, form: &str) -> Value {
    let headers = json!({"content-type": "application/x-www-form-urlencoded"});
    bench::api_event(
        method,
        "/b/{token}",
        &format!("/b/{token}"),
        json!({"token": token}),
        headers,
        form,
        false,
    )
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One measured operation.
struct Row {
    name: &'static str,
    recorded: Recorded,
    /// How many of its first requests are its own (the rest are the send path's).
    own: usize,
    budget: usize,
}

struct Bench {
    app: bookings::App,
    counter: RequestCounter,
}

impl Bench {
    /// Calls the handler: status, JSON (or HTML as a string) and the requests it sent.
    async fn call(&self, event: Value) -> Result<(u16, Value, Recorded), BoxError> {
        let request = request(&event)?;
        self.counter.take_recorded();
        let response = bookings::handle_http(&self.app, request).await;
        let recorded = self.counter.take_recorded();
        let status = response.status().as_u16();
        let body = response.body().as_ref();
        let value = serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        Ok((status, value, recorded))
    }

    async fn agent(
        &self,
        method: &str,
        route: &str,
        path: &str,
        params: Value,
        body: &Value,
    ) -> Result<(u16, Value, Recorded), BoxError> {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        self.call(bench::agent_event(method, route, path, params, &body))
            .await
    }

    /// Creates a 30-minute slot `days` ahead at `hour` UTC: its id and the requests.
    async fn slot(&self, days: i64, hour: u32) -> Result<(String, Recorded), BoxError> {
        let day = (Utc::now() + Duration::days(days)).date_naive();
        let body = json!({"start": format!("{day}T{hour:02}:00:00Z"), "duration_minutes": 30});
        let (status, reply, recorded) = self
            .agent(
                "POST",
                "/calendar/slots",
                "/calendar/slots",
                Value::Null,
                &body,
            )
            .await?;
        if status != 201 {
            return Err(format!("slot creation answered {status}: {reply}").into());
        }
        let id = reply["items"][0]["id"].as_str().ok_or("no slot id")?;
        Ok((id.to_owned(), recorded))
    }

    async fn book(&self, customer: &str, slot: &str) -> Result<(u16, Value, Recorded), BoxError> {
        let body = json!({"customer_id": customer, "slot_id": slot});
        self.agent("POST", "/bookings", "/bookings", Value::Null, &body)
            .await
    }
}

fn expect(what: &str, status: u16, wanted: u16, reply: &Value) -> Result<(), BoxError> {
    if status == wanted {
        Ok(())
    } else {
        Err(format!("{what} answered {status}, not {wanted}: {reply}").into())
    }
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
    for (name, value) in [
        ("META_GRAPH_URL", format!("{sandbox_url}/graph")),
        ("PUBLIC_BASE_URL", "http://127.0.0.1:3000".to_owned()),
    ] {
        settings.overrides.insert(name.to_owned(), value);
    }
    let template = Template::load(&template::default_path(), LOCAL_REGION)?;
    let sdk = settings.sdk_config();
    bootstrap::create_resources(&template, &sdk).await?;
    let env = bench::function_env(&template, &settings, "bookings")?;
    let config = shared::config::Config::from_source(&env)?;
    let counter = RequestCounter::default();
    let clients = CountedClients::new(&sdk, &counter);
    let app = bookings::App::with_clients(
        &env,
        &config,
        clients.dynamodb.clone(),
        clients.s3.clone(),
        local_stack::functions::local_credentials(),
    )?;
    let bench = Bench { app, counter };
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        env["TABLE_NAME"].clone(),
    );
    let channel = bench::whatsapp_channel(&store, PHONE).await?;
    let customers = ["15551238001", "15551238002"];
    bench::customers_wrote(&store, &channel, &customers).await?;
    let customer = |c: &str| shared::domain::conversation::customer_id(&channel.id, c);
    let (alice, bob) = (customer(customers[0]), customer(customers[1]));

    // Warm the process and moto (not counted): a slot, a booking, its cancel.
    let (warm, _) = bench.slot(1, 6).await?;
    let (_, booked, _) = bench.book(&alice, &warm).await?;
    let warm_booking = booked["id"].as_str().ok_or("no booking id")?.to_owned();
    let path = format!("/bookings/{warm_booking}");
    bench
        .agent(
            "DELETE",
            "/bookings/{id}",
            &path,
            json!({"id": warm_booking}),
            &Value::Null,
        )
        .await?;

    let mut rows = Vec::new();
    let (slot, recorded) = bench.slot(2, 9).await?;
    // The settings (zone), the calendar's version, the slots near it, the transaction.
    rows.push(Row {
        name: "slot created (one)",
        recorded,
        own: 4,
        budget: 4,
    });
    let (status, booked, recorded) = bench.book(&alice, &slot).await?;
    expect("booking", status, 201, &booked)?;
    // The slot, customer and settings in one read, then the transaction; then the send.
    rows.push(Row {
        name: "booking by an agent, confirmation sent",
        recorded,
        own: 2,
        budget: 3,
    });
    let booking = booked["id"].as_str().ok_or("no booking id")?.to_owned();
    let path = format!("/bookings/{booking}");
    let (status, reply, recorded) = bench
        .agent(
            "DELETE",
            "/bookings/{id}",
            &path,
            json!({"id": booking}),
            &Value::Null,
        )
        .await?;
    expect("cancel", status, 200, &reply)?;
    // The booking and the settings (two reads at once), the transaction; then the send.
    rows.push(Row {
        name: "booking cancelled, customer told",
        recorded,
        own: 3,
        budget: 3,
    });
    let path = format!("/customers/{bob}/booking-invitations");
    let (status, invitation, recorded) = bench
        .agent(
            "POST",
            "/customers/{id}/booking-invitations",
            &path,
            json!({"id": bob}),
            &json!({}),
        )
        .await?;
    expect("invitation", status, 201, &invitation)?;
    // The settings, the conversation with its channel (the window), the invitation put;
    // then the send.
    rows.push(Row {
        name: "invitation sent",
        recorded,
        own: 3,
        budget: 3,
    });
    let url = invitation["url"].as_str().ok_or("no url")?;
    let token = url.rsplit('/').next().unwrap_or_default().to_owned();
    let (status, html, recorded) = bench.call(page_event("GET", &token, "")).await?;
    expect("booking page", status, 200, &html)?;
    // The invitation, the settings, the free slots.
    rows.push(Row {
        name: "booking page rendered",
        recorded,
        own: 3,
        budget: 3,
    });
    let (status, html, recorded) = bench
        .call(page_event("POST", &token, &format!("slot_id={slot}")))
        .await?;
    expect("booking page choice", status, 200, &html)?;
    // The invitation, then the slot, customer and settings, then the transaction (which
    // uses the invitation); then the send.
    rows.push(Row {
        name: "booking through the page, confirmation sent",
        recorded,
        own: 3,
        budget: 3,
    });

    println!("\nBookings: AWS requests per operation (handler over moto, counted at the SDK)\n");
    println!("| operation | own requests | budget | result | the send's | requests |");
    println!("|---|---|---|---|---|---|");
    let mut ok = true;
    for row in &rows {
        let ops: Vec<&str> = row
            .recorded
            .sent
            .iter()
            .map(|s| s.operation.as_str())
            .collect();
        let own = row.own.min(ops.len());
        let pass = own <= row.budget && ops.len() >= row.own;
        ok &= pass;
        println!(
            "| {} | {own} | <= {} | {} | {} | {} |",
            row.name,
            row.budget,
            if pass { "pass" } else { "FAIL" },
            ops.len() - own,
            ops.join(", ")
        );
    }

    // The page's render time: a fresh invitation with a week of slots to show.
    for day in 3..10 {
        for hour in [9, 10, 11, 14, 15, 16] {
            bench.slot(day, hour).await?;
        }
    }
    let (_, invitation, _) = bench
        .agent(
            "POST",
            "/customers/{id}/booking-invitations",
            &path,
            json!({"id": bob}),
            &json!({}),
        )
        .await?;
    let token = invitation["url"]
        .as_str()
        .and_then(|u| u.rsplit('/').next())
        .ok_or("no url")?
        .to_owned();
    let mut renders = Vec::with_capacity(RENDERS);
    for _ in 0..RENDERS {
        let started = Instant::now();
        let (status, html, _) = bench.call(page_event("GET", &token, "")).await?;
        renders.push(started.elapsed().as_secs_f64() * 1000.0);
        expect("booking page", status, 200, &html)?;
    }
    renders.sort_by(f64::total_cmp);
    println!(
        "\nBooking page (42 free slots over 7 days), rendered {RENDERS} times over moto: p50 {:.1} ms, p95 {:.1} ms",
        percentile(&renders, 50.0),
        percentile(&renders, 95.0)
    );

    // 100 agents book one slot at once.
    let (contested, _) = bench.slot(12, 9).await?;
    let started = Instant::now();
    let answers = futures::future::join_all((0..RACERS).map(|_| async {
        let started = Instant::now();
        let result = bench.book(&bob, &contested).await;
        (result, started.elapsed().as_secs_f64() * 1000.0)
    }))
    .await;
    let total = started.elapsed().as_secs_f64();
    let mut times = Vec::new();
    let (mut won, mut taken) = (0, 0);
    for (result, ms) in answers {
        let (status, reply, _) = result?;
        times.push(ms);
        match (status, reply["error"]["code"].as_str()) {
            (201, _) => won += 1,
            (409, Some("slot_taken")) => taken += 1,
            _ => return Err(format!("a racing booking answered {status}: {reply}").into()),
        }
    }
    times.sort_by(f64::total_cmp);
    let one_winner = won == 1 && taken == RACERS - 1;
    println!(
        "{RACERS} concurrent bookings of one slot: {won} booked, {taken} slot_taken ({}); answers p50 {:.0} ms, p95 {:.0} ms, all in {total:.1} s",
        if one_winner { "pass" } else { "FAIL" },
        percentile(&times, 50.0),
        percentile(&times, 95.0),
    );
    drop(moto);
    if !ok || !one_winner {
        return Err("a bookings figure missed its budget".into());
    }
    Ok(())
}
