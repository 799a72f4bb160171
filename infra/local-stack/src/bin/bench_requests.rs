//! `make bench`, AWS requests and cost per operation: the webhook, outbound, media and bots
//! handlers over moto with an SDK interceptor recording every request they send (the
//! outbound function talks to the provider sandbox), the DynamoDB capacity units those
//! requests consumed (`local_stack::capacity`), the handlers' wall time, and what an
//! inbound and an outbound text cost per million at us-east-1 list prices
//! (`local_stack::cost`).

use std::time::{Duration, Instant};

use chrono::Utc;
use lambda_http::Request;
use local_stack::bench::{self, CountedClients};
use local_stack::capacity::{self, Schema, Units};
use local_stack::cost::{self, Arch, Bill, Prices, Usage};
use local_stack::counter::{ItemProbe, Recorded, RequestCounter};
use local_stack::moto::Moto;
use local_stack::template::{self, Template};
use local_stack::{BoxError, LOCAL_REGION, LocalSettings, bootstrap};
use serde_json::{Value, json};
use shared::adapters::dynamo::DynamoStore;
use shared::domain::auth::Principal;
use shared::domain::inbound::{InboundMessage, WebhookItem};
use shared::domain::message::{Direction, MessageKind};
use shared::service::bots::TurnOutcome;

const APP_SECRET: &str = "bench-app-secret";
/// Invocations measured per kind for the cost figures.
const SAMPLES: usize = 25;
/// Assumed latency of one DynamoDB or EventBridge request inside AWS (same region).
const AWS_CALL_MS: f64 = 5.0;
/// Assumed latency of one WhatsApp Cloud API send (`POST /{phone_number_id}/messages`).
const PROVIDER_CALL_MS: f64 = 200.0;
/// WhatsApp statuses each outbound message gets (each its own webhook).
const STATUSES: [&str; 3] = ["sent", "delivered", "read"];
/// Goal: USD per million inbound texts.
const INBOUND_GOAL_USD: f64 = 5.0;

fn request(event: &Value) -> Result<Request, BoxError> {
    Ok(lambda_http::request::from_str(&event.to_string())?)
}

/// One handler invocation as measured.
struct Call {
    recorded: Recorded,
    wall: Duration,
    /// API Gateway metered requests (request and answer sizes).
    api_requests: f64,
    /// Bytes of log lines the handler wrote.
    log_bytes: u64,
}

/// What one invocation used.
#[derive(Debug, Clone, Default)]
struct Sample {
    requests: usize,
    units: Units,
    /// Table write units of `TransactWriteItems` (what standard writes would halve).
    transactional_writes: f64,
    /// Items those transactions wrote.
    transactional_items: usize,
    /// The largest item written, in bytes (DynamoDB's size), before or after.
    largest_item: u64,
    events: u64,
    api_requests: f64,
    log_bytes: u64,
    /// Wall time minus the probe's reads.
    moto_ms: f64,
    /// Of which waiting for moto.
    aws_ms: f64,
    provider_calls: usize,
}

impl Sample {
    fn of(call: &Call, provider_calls: usize) -> Result<Self, BoxError> {
        if call.recorded.overlapped {
            return Err("two AWS requests were in flight at once: units unreliable".into());
        }
        let schema = Schema::chat_table();
        let mut sample = Sample {
            requests: call.recorded.sent.len(),
            api_requests: call.api_requests,
            log_bytes: call.log_bytes,
            provider_calls,
            ..Sample::default()
        };
        for sent in &call.recorded.sent {
            sample.aws_ms += sent.elapsed.as_secs_f64() * 1000.0;
            let Some(exchange) = &sent.exchange else {
                continue;
            };
            if sent.operation == "PutEvents" {
                sample.events += capacity::event_chunks(&exchange.request);
                continue;
            }
            let largest = exchange.before.iter().chain(&exchange.after).flatten();
            for item in largest {
                sample.largest_item = sample.largest_item.max(capacity::item_size(item));
            }
            let units = capacity::units(exchange, &schema);
            if sent.operation == "TransactWriteItems" && exchange.status == 200 {
                sample.transactional_writes += units.write;
                sample.transactional_items += exchange
                    .request
                    .get("TransactItems")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
            }
            sample.units += units;
        }
        sample.moto_ms = (call.wall.saturating_sub(call.recorded.probing)).as_secs_f64() * 1000.0;
        Ok(sample)
    }

    /// The handler's own time: everything but waiting for AWS.
    fn own_ms(&self) -> f64 {
        (self.moto_ms - self.aws_ms).max(0.0)
    }

    /// The duration in AWS: own time plus the assumed latencies.
    fn model_ms(&self) -> f64 {
        self.own_ms()
            + self.requests as f64 * AWS_CALL_MS
            + self.provider_calls as f64 * PROVIDER_CALL_MS
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Many invocations of one kind, summarized.
struct Kind {
    name: &'static str,
    samples: Vec<Sample>,
}

impl Kind {
    fn mean(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        mean(self.samples.iter().map(f))
    }

    fn median(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        median(self.samples.iter().map(f).collect())
    }

    fn units(&self) -> Units {
        Units {
            read: self.mean(|s| s.units.read),
            write: self.mean(|s| s.units.write),
            index_write: self.mean(|s| s.units.index_write),
        }
    }

    /// Usage of one invocation, Lambda billed at the AWS model (`model`) or as measured.
    fn usage(&self, model: bool) -> Usage {
        Usage {
            api_requests: self.mean(|s| s.api_requests),
            invocations: 1.0,
            billed_ms: self.mean(|s| cost::billed_ms(if model { s.model_ms() } else { s.moto_ms })),
            units: self.units(),
            events: self.mean(|s| s.events as f64),
            log_bytes: self.mean(|s| s.log_bytes as f64),
        }
    }
}

fn units_of(recorded: &Recorded) -> Units {
    let schema = Schema::chat_table();
    let mut units = Units::default();
    for sent in &recorded.sent {
        if let Some(exchange) = sent
            .exchange
            .as_ref()
            .filter(|_| sent.operation != "PutEvents")
        {
            units += capacity::units(exchange, &schema);
        }
    }
    units
}

fn usd(v: f64) -> String {
    if v >= 0.995 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let logs = bench::LogMeter::default();
    if !logs.install() {
        return Err("a log subscriber was installed already".into());
    }
    let moto = Moto::start(0)?;
    let mut settings = LocalSettings::from_env(moto.endpoint())?;
    settings
        .overrides
        .insert("META_APP_SECRET".into(), APP_SECRET.into());
    let sandbox =
        local_stack::sandbox::Sandbox::new(local_stack::sandbox::SandboxConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandbox_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(sandbox.clone().serve(listener));
    settings
        .overrides
        .insert("META_GRAPH_URL".into(), format!("{sandbox_url}/graph"));
    let template = Template::load(&template::default_path(), LOCAL_REGION)?;
    let sdk = settings.sdk_config();
    bootstrap::create_resources(&template, &sdk).await?;

    let env = bench::function_env(&template, &settings, "webhook")?;
    let counter = RequestCounter::with_probe(ItemProbe::start(&settings)?);
    let clients = CountedClients::new(&sdk, &counter);
    let config = shared::config::Config::from_source(&env)?;
    let app = webhook::App::with_clients(
        &env,
        &config,
        clients.dynamodb.clone(),
        clients.eventbridge.clone(),
    )?;

    // A connected WhatsApp channel.
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        env["TABLE_NAME"].clone(),
    );
    let phone = "1065403522";
    let channel = bench::whatsapp_channel(&store, phone).await?;

    let mut rows: Vec<(&str, Recorded, usize)> = Vec::new();
    let send = |body: String| {
        let app = &app;
        let counter = &counter;
        let logs = &logs;
        async move {
            let event = bench::meta_webhook_event("/webhooks/whatsapp", &body, APP_SECRET);
            let request = request(&event)?;
            counter.take_recorded();
            logs.take();
            let started = Instant::now();
            let response = webhook::handle(app, request).await;
            let wall = started.elapsed();
            if response.status() != 200 {
                return Err(BoxError::from(format!(
                    "webhook answered {}",
                    response.status()
                )));
            }
            Ok::<_, BoxError>(Call {
                recorded: counter.take_recorded(),
                wall,
                api_requests: cost::api_requests(body.len(), response.body().len()),
                log_bytes: logs.take(),
            })
        }
    };
    let text_saying = |customer: &str, wamid: &str, text: &str| {
        bench::whatsapp_text(phone, customer, wamid, text)
    };
    let text = |customer: &str, wamid: &str| text_saying(customer, wamid, "hello");
    let call = send(text("15551230001", "wamid.bench.cold")).await?;
    // WhatsApp messages read their customer's aliases (phone number, business-scoped user
    // id, a wa_id the Graph API answered) in one batch, and the conversation (its status,
    // assignee and labels place the message in the list views): directory, aliases,
    // conversation, write, event.
    rows.push((
        "inbound text, first for the process (directory read)",
        call.recorded,
        5,
    ));
    let call = send(text("15551230002", "wamid.bench.warm")).await?;
    rows.push(("inbound text, new conversation", call.recorded, 4));
    let call = send(text("15551230002", "wamid.bench.warm")).await?;
    rows.push(("inbound text, re-delivered", call.recorded, 4));
    // The customer's next message, a second later (it moves the conversation in its views).
    let next = Utc::now().timestamp() + 1;
    let again = bench::whatsapp_text_at(phone, "15551230002", "wamid.bench.again", "hi", next);
    let call = send(again).await?;
    rows.push(("inbound text, conversation exists", call.recorded, 4));
    let long = "a".repeat(1000);
    let body = bench::whatsapp_text_at(phone, "15551230002", "wamid.bench.long", &long, next + 1);
    let call = send(body).await?;
    rows.push((
        "inbound text of 1,000 characters, conversation exists",
        call.recorded,
        4,
    ));

    // An outbound message recorded, then its status.
    let outbound = InboundMessage {
        provider_message_id: "wamid.bench.out".into(),
        customer: "15551230002".into(),
        customer_name: None,
        direction: Direction::Outbound,
        kind: MessageKind::Text,
        text: Some("reply".into()),
        media: None,
        reply_to: None,
        timestamp: Some(Utc::now()),
        opens_window: false,
        raw: serde_json::Value::Null,
        identity: Default::default(),
        standby: false,
    };
    let ingested = shared::service::ingest::ingest_items(
        &store,
        &channel,
        vec![WebhookItem::Message(outbound)],
        Utc::now(),
    )
    .await;
    if let Some(e) = ingested.error {
        return Err(e.into());
    }
    let status =
        |wamid: &str, status: &str| bench::whatsapp_status(phone, "15551230002", wamid, status);
    let call = send(status("wamid.bench.out", "delivered")).await?;
    rows.push(("status update, message exists", call.recorded, 2));
    let call = send(status("wamid.bench.out", "delivered")).await?;
    rows.push(("status update, repeated (stale)", call.recorded, 2));
    let call = send(status("wamid.bench.unknown", "delivered")).await?;
    // Not found under its id: the status also looks for an alias of the customer (one read).
    rows.push((
        "status update, message not recorded yet (kept)",
        call.recorded,
        3,
    ));

    // An agent answers the customer who wrote above: outbound text.
    let outbound_env = bench::function_env(&template, &settings, "outbound")?;
    let outbound_app = outbound::App::with_clients(
        &outbound_env,
        &config,
        clients.dynamodb.clone(),
        clients.s3.clone(),
        local_stack::functions::local_credentials(),
    )?;
    let conversation = shared::domain::conversation::conversation_id(&channel.id, "15551230002");
    let answer = |text: String| {
        let outbound_app = &outbound_app;
        let counter = &counter;
        let logs = &logs;
        let conversation = conversation.clone();
        async move {
            let body = json!({"kind": "text", "text": text}).to_string();
            let path = format!("/conversations/{conversation}/messages");
            let event = bench::agent_event(
                "POST",
                "/conversations/{id}/messages",
                &path,
                json!({"id": conversation}),
                &body,
            );
            let request = request(&event)?;
            counter.take_recorded();
            logs.take();
            let started = Instant::now();
            let response = outbound::handle(outbound_app, request).await;
            let wall = started.elapsed();
            if response.status() != 202 {
                return Err(BoxError::from(format!(
                    "outbound answered {}",
                    response.status()
                )));
            }
            Ok::<_, BoxError>(Call {
                recorded: counter.take_recorded(),
                wall,
                api_requests: cost::api_requests(body.len(), response.body().len()),
                log_bytes: logs.take(),
            })
        }
    };
    let call = answer("Thanks, on it".into()).await?;
    rows.push((
        "outbound text, first for the process (directory read)",
        call.recorded,
        3,
    ));
    let call = answer("Your order ships today".into()).await?;
    rows.push(("outbound text", call.recorded, 3));
    if sandbox.outbox(Some(phone), None).len() != 2 {
        return Err("the sandbox did not receive both sends".into());
    }

    // Media: the upload form, the browser's upload (not ours), then validation.
    let media_env = bench::function_env(&template, &settings, "media")?;
    let media_app = media::App::with_clients(
        &media_env,
        &config,
        clients.dynamodb.clone(),
        clients.s3.clone(),
        local_stack::functions::local_credentials(),
    )?;
    let png = local_stack::media_files::png(0);
    let form = json!({"filename": "photo.png", "content_type": "image/png", "size": png.len()})
        .to_string();
    let upload_form = request(&bench::agent_event(
        "POST",
        "/media",
        "/media",
        Value::Null,
        &form,
    ))?;
    counter.take_recorded();
    let response = media::handle_http(&media_app, upload_form).await;
    if response.status() != 201 {
        return Err(format!("POST /media answered {}", response.status()).into());
    }
    let ticket: serde_json::Value = serde_json::from_slice(response.body().as_ref())?;
    let mut media_requests = counter.take_recorded();
    let key = ticket["upload"]["fields"]["key"]
        .as_str()
        .ok_or("no key")?
        .to_owned();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    )
    .put_object()
    .bucket(&media_env["MEDIA_BUCKET"])
    .key(&key)
    .content_type("image/png")
    .body(png.clone().into())
    .send()
    .await?;
    let event = json!({
        "version": "0", "id": "bench", "detail-type": "Object Created", "source": "aws.s3",
        "account": "123456789012", "time": Utc::now().to_rfc3339(), "region": LOCAL_REGION,
        "resources": [], "detail": {"version": "0", "bucket": {"name": media_env["MEDIA_BUCKET"]},
        "object": {"key": key, "size": png.len()}}
    });
    let validation = media::validate_event(&media_app, &event).await?;
    if validation.outcome != "valid" {
        return Err(format!("the upload was {}", validation.outcome).into());
    }
    media_requests.sent.extend(counter.take_recorded().sent);
    rows.push((
        "media upload -> valid (form, then validation)",
        media_requests,
        4,
    ));

    // Bot turns: the bots function's handler called with the `MessageReceived` event the
    // webhook published for each customer message (as EventBridge would deliver it).
    let admin = Principal::from_claims(|claim| match claim {
        "sub" => Some("agent-1"),
        "tenant_id" => Some("bench"),
        "role" => Some("admin"),
        _ => None,
    })?;
    for (id, bot) in [
        ("prices", bench::keyword_bot()),
        ("appointments", bench::ask_bot()),
    ] {
        shared::service::bots::put_bot(&store, &admin, id, bot, Utc::now()).await?;
    }
    let bots_env = bench::function_env(&template, &settings, "bots")?;
    // Sends that did not reach the sandbox: the rows are printed, then the run fails.
    let mut problems: Vec<String> = Vec::new();
    let bots_app = bots::App::with_clients(
        &bots_env,
        &config,
        clients.dynamodb.clone(),
        clients.s3.clone(),
        local_stack::functions::local_credentials(),
    )?;
    // The event of a customer message, ingested through the webhook.
    let received = |body: String| {
        let send = &send;
        async move {
            let call = send(body).await?;
            bench::published_events(&call.recorded)
                .into_iter()
                .find(|e| e["detail-type"] == "MessageReceived")
                .ok_or_else(|| BoxError::from("the webhook published no MessageReceived"))
        }
    };
    let turn = |event: Value, expected: TurnOutcome| {
        let bots_app = &bots_app;
        let counter = &counter;
        async move {
            counter.take_recorded();
            let outcome = bots::handle_event(bots_app, &event).await?;
            let recorded = counter.take_recorded();
            if outcome != expected {
                return Err(BoxError::from(format!(
                    "bot turn: {outcome:?}, expected {expected:?}"
                )));
            }
            Ok::<_, BoxError>(recorded)
        }
    };
    let sent_to = |customer: &str| sandbox.outbox(Some(phone), Some(customer)).len();
    let keyword = received(text_saying(
        "15551230010",
        "wamid.bench.bot.1",
        "What's the price?",
    ))
    .await?;
    let recorded = turn(keyword.clone(), TurnOutcome::Turned).await?;
    // The turn's inputs in one BatchGetItem (conversation, message, settings, bot catalog),
    // the claim (one TransactWriteItems: claim item, bot state, bot_started, bot_exited),
    // the send path's own requests (its idempotency look-up, the conversation with the
    // channel, the acceptance transaction, the provider's answer recorded), the settle.
    rows.push(("bot turn, keyword bot sends one reply", recorded, 6));
    if sent_to("15551230010") != 1 {
        problems.push("the keyword bot's reply did not reach the sandbox".to_owned());
    }
    let other = received(text_saying(
        "15551230011",
        "wamid.bench.bot.2",
        "hello there",
    ))
    .await?;
    let recorded = turn(other, TurnOutcome::NoTurn).await?;
    // The same one read; no bot matches, nothing is written.
    rows.push(("bot turn, no bot matches", recorded, 1));
    let ask = received(text_saying(
        "15551230012",
        "wamid.bench.bot.3",
        "An appointment please",
    ))
    .await?;
    let recorded = turn(ask.clone(), TurnOutcome::Turned).await?;
    // As the keyword reply, the question going out as reply buttons (no bot_exited).
    rows.push((
        "bot turn, ask sent as reply buttons (bot starts)",
        recorded,
        6,
    ));
    let recorded = turn(ask, TurnOutcome::Duplicate).await?;
    // The read, which holds the claim: settled, nothing more.
    rows.push((
        "bot turn, event re-delivered (claim found settled)",
        recorded,
        1,
    ));
    let tap = bench::whatsapp_button_reply(
        phone,
        "15551230012",
        "wamid.bench.bot.4",
        ("yes", "Yes"),
        Utc::now().timestamp() + 1,
    );
    let recorded = turn(received(tap).await?, TurnOutcome::Turned).await?;
    // The button reply moves the bot to its reply step: read, claim (bot state moved,
    // bot_exited as it completes), the send path's requests, the settle.
    rows.push(("bot turn, button reply moves to a reply step", recorded, 6));
    if sent_to("15551230012") != 2 {
        problems.push("the ask bot's question and reply did not both reach the sandbox".to_owned());
    }
    let recorded = turn(keyword, TurnOutcome::Duplicate).await?;
    // The read only: it holds the claim, settled (the bot completed, and bots are
    // blocked on the conversation, but the claim answers first).
    rows.push((
        "bot turn, event re-delivered after the bot completed",
        recorded,
        1,
    ));
    if sent_to("15551230010") > 1 || sent_to("15551230012") > 2 {
        problems.push("a re-delivered event made a bot send again".to_owned());
    }

    println!("\nAWS requests per operation (handlers over moto, counted at the SDK)\n");
    println!("| operation | requests | budget | result | RRU | WRU (table + index) | sent |");
    println!("|---|---|---|---|---|---|---|");
    let mut failed = false;
    for (name, recorded, budget) in &rows {
        let sent: Vec<&str> = recorded.sent.iter().map(|s| s.operation.as_str()).collect();
        let ok = sent.len() <= *budget;
        failed |= !ok;
        let reads = sent
            .iter()
            .filter(|op| {
                op.starts_with("Get") || op.starts_with("Query") || op.starts_with("Batch")
            })
            .count();
        let units = units_of(recorded);
        println!(
            "| {name} | {} | <= {budget} | {} | {} | {} ({} + {}) | {} |",
            sent.len(),
            if ok { "pass" } else { "FAIL" },
            units.read,
            units.writes(),
            units.write,
            units.index_write,
            if reads == 0 {
                sent.join(", ")
            } else {
                format!("{} ({reads} read)", sent.join(", "))
            },
        );
    }

    // Cost: many warm invocations of each kind a message causes.
    let mut inbound = Kind {
        name: "webhook: inbound text, conversation exists",
        samples: Vec::new(),
    };
    let mut outbound = Kind {
        name: "outbound: agent text",
        samples: Vec::new(),
    };
    let mut statuses: Vec<Kind> = STATUSES
        .iter()
        .map(|s| Kind {
            name: match *s {
                "sent" => "webhook: status sent (after the send settled it)",
                "delivered" => "webhook: status delivered",
                _ => "webhook: status read",
            },
            samples: Vec::new(),
        })
        .collect();
    // Inbound: a customer writing a message a second after the last one (each moves the
    // conversation in gsi1, as messages seconds apart do); the first creates it.
    let base = Utc::now().timestamp() - SAMPLES as i64 - 5;
    let customer = "15551230003";
    send(bench::whatsapp_text_at(
        phone,
        customer,
        "wamid.bench.first",
        "hi",
        base,
    ))
    .await?;
    for i in 0..SAMPLES {
        let wamid = format!("wamid.bench.in.{i}");
        let at = base + 1 + i as i64;
        let call = send(bench::whatsapp_text_at(
            phone, customer, &wamid, "hello", at,
        ))
        .await?;
        inbound.samples.push(Sample::of(&call, 0)?);
    }
    for i in 0..SAMPLES {
        let call = answer(format!("Reply number {i}")).await?;
        outbound.samples.push(Sample::of(&call, 1)?);
        let wamid = sandbox
            .outbox(Some(phone), None)
            .last()
            .and_then(|sent| sent.provider_message_id.clone())
            .ok_or("the sandbox gave no wamid")?;
        for (kind, name) in statuses.iter_mut().zip(STATUSES) {
            let call = send(status(&wamid, name)).await?;
            kind.samples.push(Sample::of(&call, 0)?);
        }
    }
    drop(moto);

    println!(
        "\nPer invocation, {SAMPLES} warm runs each (means; Lambda ms are medians). \"AWS model\" = the \
         handler's own time + {AWS_CALL_MS} ms per AWS request + {PROVIDER_CALL_MS} ms per WhatsApp send\n"
    );
    println!(
        "| invocation | AWS requests | RRU | WRU (table + index) | largest item written | events | log bytes | ms over moto | of which AWS calls | own ms | AWS model ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let kinds: Vec<&Kind> = std::iter::once(&inbound)
        .chain(std::iter::once(&outbound))
        .chain(statuses.iter())
        .collect();
    for kind in &kinds {
        let units = kind.units();
        println!(
            "| {} | {:.1} | {:.2} | {:.2} ({:.2} + {:.2}) | {:.0} B | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} |",
            kind.name,
            kind.mean(|s| s.requests as f64),
            units.read,
            units.writes(),
            units.write,
            units.index_write,
            kind.samples
                .iter()
                .map(|s| s.largest_item as f64)
                .fold(0.0, f64::max),
            kind.mean(|s| s.events as f64),
            kind.mean(|s| s.log_bytes as f64),
            kind.median(|s| s.moto_ms),
            kind.median(|s| s.aws_ms),
            kind.median(Sample::own_ms),
            kind.median(Sample::model_ms),
        );
    }

    let prices = Prices::US_EAST_1;
    let message_usage = |kinds: &[&Kind], model: bool| {
        let mut usage = Usage::default();
        for kind in kinds {
            usage.add(&kind.usage(model));
        }
        usage
    };
    let inbound_kinds = [&inbound];
    let outbound_kinds: Vec<&Kind> = std::iter::once(&outbound).chain(statuses.iter()).collect();
    let messages: [(&str, &[&Kind]); 2] = [
        ("1M inbound texts (1 webhook each)", &inbound_kinds),
        (
            "1M outbound texts (1 send + 3 status webhooks each)",
            &outbound_kinds,
        ),
    ];
    println!(
        "\nCost per 1,000,000 messages, USD, us-east-1 on-demand list prices checked {} \
         (Lambda arm64, 128 MB, at the AWS model duration; x86_64 and the moto-measured duration for comparison)\n",
        cost::PRICES_CHECKED
    );
    println!(
        "| messages | API Gateway | Lambda requests | Lambda duration | DynamoDB reads | DynamoDB writes | EventBridge | CloudWatch Logs | total arm64 | total x86_64 | total arm64, moto duration |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut bills = Vec::new();
    for (name, kinds) in messages {
        let usage = message_usage(kinds, true);
        let bill = Bill::of(&usage, &prices, Arch::Arm64);
        let x86 = Bill::of(&usage, &prices, Arch::X86_64);
        let measured = Bill::of(&message_usage(kinds, false), &prices, Arch::Arm64);
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | **{}** | {} | {} |",
            usd(bill.api_gateway),
            usd(bill.lambda_requests),
            usd(bill.lambda_duration),
            usd(bill.dynamodb_reads),
            usd(bill.dynamodb_writes),
            usd(bill.eventbridge),
            usd(bill.logs),
            usd(bill.total()),
            usd(x86.total()),
            usd(measured.total()),
        );
        bills.push((name, usage, bill));
    }

    println!();
    for (name, usage, bill) in &bills {
        let total = bill.total();
        let ranked: Vec<String> = bill
            .ranked()
            .iter()
            .filter(|(_, v)| *v > 0.0)
            .map(|(service, v)| format!("{service} {} ({:.0} %)", usd(*v), v / total * 100.0))
            .collect();
        println!(
            "{name}: ${} = {}; DynamoDB {:.2} WRU ({:.2} table + {:.2} index) and {:.2} RRU per message.",
            usd(total),
            ranked.join(", "),
            usage.units.writes(),
            usage.units.write,
            usage.units.index_write,
            usage.units.read,
        );
    }

    // What would halve an inbound text: levers priced from the measured usage.
    let (_, usage, bill) = &bills[0];
    let tx = inbound.mean(|s| s.transactional_writes);
    let tx_items = inbound.mean(|s| s.transactional_items as f64);
    let per_item = if tx_items > 0.0 { tx / tx_items } else { 0.0 };
    let wru = prices.dynamodb_write_per_million;
    let levers = [
        (
            "standard writes instead of one TransactWriteItems (the dedupe stays a conditional put)",
            tx / 2.0 * wru,
        ),
        (
            "two items fewer per message in the transaction (the PID# claim folded into the message item, the customer item written only when it changes)",
            2.0 * per_item * wru,
        ),
        (
            "no list-view index writes per message (e.g. views sorted at minute precision: later messages of the same minute move no entry)",
            usage.units.index_write * prices.dynamodb_write_per_million,
        ),
        (
            "no MessageReceived event for texts (publish only what a rule consumes: has_media)",
            bill.eventbridge,
        ),
        (
            "Meta webhooks on a Lambda function URL instead of API Gateway (signature already checked in the handler)",
            bill.api_gateway,
        ),
    ];
    println!(
        "\nTo halve an inbound text (${} -> ${}), levers and what each saves per million:",
        usd(bill.total()),
        usd(bill.total() / 2.0)
    );
    for (lever, saves) in levers {
        println!("- {lever}: -${}", usd(saves));
    }
    // Both write levers together: the remaining items as standard writes.
    let standard_fewer = (tx - (tx_items - 2.0).max(0.0) * per_item / 2.0) * wru;
    println!(
        "- both write levers together: -${} (${}); with no event for texts as well: ${}",
        usd(standard_fewer),
        usd(bill.total() - standard_fewer),
        usd(bill.total() - standard_fewer - bill.eventbridge),
    );

    if !problems.is_empty() {
        println!("\nBot turns:");
        for problem in &problems {
            println!("- FAIL: {problem}");
        }
        return Err("the bot turns did not all reach the provider sandbox".into());
    }
    if failed {
        return Err("an operation is over its request budget".into());
    }
    if bill.total() > INBOUND_GOAL_USD {
        return Err(format!(
            "an inbound text costs ${} per million, over the ${INBOUND_GOAL_USD} goal",
            usd(bill.total())
        )
        .into());
    }
    Ok(())
}
