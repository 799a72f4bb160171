//! Part 1: AWS requests per fire, `scheduler::handle_event` called directly with the
//! schedule's input (as Scheduler invokes the function) over counted SDK clients.

use chrono::Utc;
use lambda_http::Request;
use local_stack::bench::{self, CountedClients};
use local_stack::counter::{Recorded, RequestCounter, Sent};
use local_stack::sandbox::Sandbox;
use local_stack::template::Template;
use local_stack::{BoxError, LocalSettings};
use serde_json::{Value, json};
use shared::adapters::dynamo::DynamoStore;

/// Budget: AWS requests of a fire besides its send (claim, conversation read, settle).
const OWN_BUDGET: usize = 4;
/// Budget: AWS requests of a repeated delivery of a fired message (the claim).
const REPEAT_BUDGET: usize = 1;
/// The WhatsApp channel's phone number id (tenant `bench`, that of `bench::agent_event`).
const PHONE: &str = "1065403599";

fn request(event: &Value) -> Result<Request, BoxError> {
    Ok(lambda_http::request::from_str(&event.to_string())?)
}

/// Time the requests took, in ms.
fn moto_ms(recorded: &Recorded) -> f64 {
    recorded
        .sent
        .iter()
        .map(|s| s.elapsed.as_secs_f64() * 1000.0)
        .sum()
}

/// A request's operation and time at moto (Scheduler's REST requests named).
fn named(sent: &Sent) -> String {
    let op = sent.operation.as_str();
    let op = match op.split_once(' ') {
        Some(("POST", uri)) if uri.contains("/schedules/") => "CreateSchedule",
        Some(("DELETE", uri)) if uri.contains("/schedules/") => "DeleteSchedule",
        _ => op,
    };
    format!("{op} {:.0} ms", sent.elapsed.as_secs_f64() * 1000.0)
}

fn ops(sent: &[String]) -> String {
    if sent.is_empty() {
        "-".to_owned()
    } else {
        sent.join(", ")
    }
}

/// One fire as measured.
struct Fire {
    name: &'static str,
    outcome: &'static str,
    recorded: Recorded,
    /// The outcome it should have.
    expected: &'static str,
    /// Whether it should send (its middle requests are then the send path's).
    sends: bool,
    /// Budget of the fire's own requests.
    budget: usize,
}

impl Fire {
    /// The fire's own requests and the send's: a fire that sends makes its claim and its
    /// conversation read first and its settle last (`schedules::fire`); between them are
    /// the send path's.
    fn split(&self) -> (Vec<String>, Vec<String>) {
        let all: Vec<String> = self.recorded.sent.iter().map(named).collect();
        if !self.sends || all.len() < 3 {
            return (all, Vec::new());
        }
        let mut own = all[..2].to_vec();
        own.push(all[all.len() - 1].clone());
        (own, all[2..all.len() - 1].to_vec())
    }
}

/// The scheduler function over counted clients.
struct Counted {
    app: scheduler::App,
    counter: RequestCounter,
}

impl Counted {
    /// Schedules a text an hour ahead on `conversation` (tenant `bench`): its id and the
    /// requests the creation sent.
    async fn schedule(
        &self,
        conversation: &str,
        text: &str,
    ) -> Result<(String, Recorded), BoxError> {
        let send_at = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let body = json!({"send_at": send_at, "message": {"kind": "text", "text": text}});
        let path = format!("/conversations/{conversation}/scheduled-messages");
        let event = bench::agent_event(
            "POST",
            "/conversations/{id}/scheduled-messages",
            &path,
            json!({"id": conversation}),
            &body.to_string(),
        );
        let request = request(&event)?;
        self.counter.take_recorded();
        let response = scheduler::handle_http(&self.app, request).await;
        let recorded = self.counter.take_recorded();
        let reply: Value = serde_json::from_slice(response.body().as_ref()).unwrap_or_default();
        if response.status() != 201 {
            return Err(format!("scheduling answered {}: {reply}", response.status()).into());
        }
        Ok((reply["id"].as_str().ok_or("no id")?.to_owned(), recorded))
    }

    /// Delivers the schedule's input of `id` as Scheduler would: the outcome and requests.
    async fn fire(&self, id: &str) -> Result<(&'static str, Recorded), BoxError> {
        let input = json!({"kind": "scheduled_message", "tenant_id": "bench", "scheduled_id": id});
        self.counter.take_recorded();
        let outcome = scheduler::handle_event(&self.app, &input).await?;
        Ok((outcome, self.counter.take_recorded()))
    }
}

/// Measures and prints the fires; false when one is over its budget, ended otherwise than
/// it should, or the provider did not get exactly the one send.
pub async fn run(
    template: &Template,
    settings: &LocalSettings,
    sandbox: &Sandbox,
) -> Result<bool, BoxError> {
    let sdk = settings.sdk_config();
    let env = bench::function_env(template, settings, "scheduler")?;
    let config = shared::config::Config::from_source(&env)?;
    let counter = RequestCounter::default();
    let clients = CountedClients::new(&sdk, &counter);
    let app = scheduler::App::with_clients(
        &env,
        &config,
        clients.dynamodb.clone(),
        clients.s3.clone(),
        clients.scheduler.clone(),
        local_stack::functions::local_credentials(),
    )?;
    let counted = Counted { app, counter };
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        env["TABLE_NAME"].clone(),
    );
    let channel = bench::whatsapp_channel(&store, PHONE).await?;
    // One customer wrote a minute ago (window open), another 25 hours ago (closed).
    let now = Utc::now();
    let (open, closed) = ("15551239001", "15551239002");
    for (customer, at) in [
        (open, now - chrono::Duration::minutes(1)),
        (closed, now - chrono::Duration::hours(25)),
    ] {
        let items = vec![local_stack::bench::customer_text(customer, at)];
        let ingested = shared::service::ingest::ingest_items(&store, &channel, items, now).await;
        if let Some(e) = ingested.error {
            return Err(e.into());
        }
    }
    let conversation = |c: &str| shared::domain::conversation::conversation_id(&channel.id, c);

    // A first fire warms the process and moto (neither counted).
    let (warm_up, _) = counted
        .schedule(&conversation(open), "Good morning")
        .await?;
    counted.fire(&warm_up).await?;
    let sent_before = sandbox.outbox(Some(PHONE), None).len();

    let mut fires = Vec::new();
    let (id, _) = counted
        .schedule(&conversation(open), "Your table is ready")
        .await?;
    let (outcome, recorded) = counted.fire(&id).await?;
    fires.push(Fire {
        name: "fire that sends (window open)",
        outcome,
        recorded,
        expected: "sent",
        sends: true,
        budget: OWN_BUDGET,
    });
    let (outcome, recorded) = counted.fire(&id).await?;
    fires.push(Fire {
        name: "repeated delivery of the fired one",
        outcome,
        recorded,
        expected: "nothing",
        sends: false,
        budget: REPEAT_BUDGET,
    });
    let (late, creation) = counted
        .schedule(&conversation(closed), "Your table is ready")
        .await?;
    let (outcome, recorded) = counted.fire(&late).await?;
    fires.push(Fire {
        name: "fire outside the window, no fallback",
        outcome,
        recorded,
        expected: "failed",
        sends: false,
        budget: OWN_BUDGET,
    });
    let provider_sends = sandbox.outbox(Some(PHONE), None).len() - sent_before;
    // Their schedules (an hour ahead) are not part 2's.
    let scheduler = aws_sdk_scheduler::Client::new(&sdk);
    for name in [&warm_up, &id, &late] {
        scheduler
            .delete_schedule()
            .group_name(&env["SCHEDULE_GROUP_NAME"])
            .name(name)
            .send()
            .await?;
    }

    println!(
        "\nAWS requests per fire (scheduler::handle_event over moto, counted at the SDK, \
         after one warm-up fire; the fire's own: claim, conversation read, settle; ms at \
         moto: the requests' time, moto otherwise idle)\n"
    );
    println!(
        "| fire | outcome | requests | fire's own | budget | send's own | result | ms at moto | fire's own sent | send's own sent |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut ok = true;
    for fire in &fires {
        let (own, send) = fire.split();
        let pass = own.len() <= fire.budget
            && fire.outcome == fire.expected
            && (fire.sends || send.is_empty());
        ok &= pass;
        println!(
            "| {} | {} | {} | {} | <= {} | {} | {} | {:.0} | {} | {} |",
            fire.name,
            fire.outcome,
            fire.recorded.sent.len(),
            own.len(),
            fire.budget,
            send.len(),
            if pass { "pass" } else { "FAIL" },
            moto_ms(&fire.recorded),
            ops(&own),
            ops(&send),
        );
    }
    let created: Vec<String> = creation.sent.iter().map(named).collect();
    println!(
        "\nScheduling one (`POST /conversations/{{id}}/scheduled-messages`): {} requests, {:.0} ms at moto ({})",
        created.len(),
        moto_ms(&creation),
        ops(&created),
    );
    println!("\nProvider sends at the sandbox for the three fires: {provider_sends} (expected 1)");
    Ok(ok && provider_sends == 1)
}
