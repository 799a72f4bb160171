//! Part 2: scheduled messages due in the same minute on the local stack, created through
//! the API and fired by the schedule stand-in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use futures::StreamExt;
use local_stack::devserver::DevServer;
use local_stack::sandbox::{CustomerMessage, OutboxItem, Sandbox};
use local_stack::schedules::{self, ScheduleTarget};
use local_stack::template::Template;
use local_stack::token::{AgentClaims, mint};
use local_stack::{BoxError, LocalSettings};
use reqwest::Method;
use serde_json::{Value, json};
use shared::domain::ids::ChannelId;

use crate::observe::{self, Invocations, Samples};
use crate::{ms_between, parse_time, spread};

/// Scheduled messages due in the same minute (the first argument may ask for another).
pub const MESSAGES: usize = 1_000;
/// Conversations they are spread over (their customers wrote just before).
pub const CONVERSATIONS: usize = 50;
/// The first is due this long after the bench starts creating them.
const LEAD: Duration = Duration::from_secs(20);
/// They are due evenly over this span.
const SPREAD: Duration = Duration::from_secs(60);
/// `POST`s in flight at once while creating.
const CREATE_CONCURRENCY: usize = 16;
/// How long after the last is due the bench waits for every one to settle.
const GRACE: Duration = Duration::from_secs(75);
/// The tenant (part 1 uses `bench`).
const TENANT: &str = "schedbench";
/// The WhatsApp channel's phone number id.
const PHONE: &str = "1065403598";

/// The dev server with both stand-ins, started as the test harness and `make dev` start
/// it (the schedule stand-in's handler recorded in `invocations`): its base URL and its
/// tasks.
async fn start_dev_server(
    template: &Template,
    settings: &LocalSettings,
    sandbox: &Sandbox,
    invocations: &Invocations,
) -> Result<(String, Vec<tokio::task::JoinHandle<()>>), BoxError> {
    let sdk = settings.sdk_config();
    let server = DevServer::new(template, settings)?;
    let mut tasks = local_stack::standin::start(&sdk, server.event_rules()).await?;
    tasks.extend(server.schedule_target().map(|target| {
        let target = ScheduleTarget {
            handler: invocations.wrap(target.handler),
            ..target
        };
        schedules::start(&sdk, target)
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    sandbox.set_webhook_base(base.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = server.serve(listener, std::future::pending()).await {
            tracing::error!(error = %e, "the dev server stopped");
        }
    }));
    Ok((base, tasks))
}

/// The dev server's API as an agent (or admin) of [`TENANT`].
struct Api {
    http: reqwest::Client,
    base: String,
    agent: String,
    admin: String,
}

impl Api {
    fn new(settings: &LocalSettings, base: String) -> Result<Self, BoxError> {
        let token = |role: &str, sub: &str| {
            mint(
                &settings.jwt_secret,
                &AgentClaims::new(TENANT, role, sub, 3600),
            )
        };
        Ok(Self {
            http: reqwest::Client::builder().no_proxy().build()?,
            base,
            agent: token("agent", "agent-1")?,
            admin: token("admin", "admin-1")?,
        })
    }

    /// A request as `token`: the status and the JSON answer (`Null` when not JSON).
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(u16, Value), BoxError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .query(query);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Every scheduled message of the tenant (`GET /scheduled-messages`, all pages).
    async fn all_scheduled(&self) -> Result<Vec<Value>, BoxError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("limit", "100")];
            if let Some(c) = &cursor {
                query.push(("cursor", c));
            }
            let path = "/scheduled-messages";
            let (status, body) = self
                .send(Method::GET, path, &self.agent, &query, None)
                .await?;
            if status != 200 {
                return Err(format!("GET {path} answered {status}: {body}").into());
            }
            items.extend(body["items"].as_array().cloned().unwrap_or_default());
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(items),
            }
        }
    }
}

/// Connects the WhatsApp channel and has [`CONVERSATIONS`] customers write (through the
/// sandbox's signed webhooks, so their window is open): the conversation ids.
async fn open_conversations(api: &Api, sandbox: &Sandbox) -> Result<Vec<String>, BoxError> {
    let connect = local_stack::bench::proven_whatsapp_channel(
        sandbox,
        PHONE,
        "EAAG-bench",
        "schedules bench",
    )?;
    let (status, channel) = api
        .send(Method::POST, "/channels", &api.admin, &[], Some(&connect))
        .await?;
    if status != 201 {
        return Err(format!("connecting the channel answered {status}: {channel}").into());
    }
    let channel_id = ChannelId::parse(channel["id"].as_str().ok_or("no channel id")?)?;
    let customers: Vec<String> = (0..CONVERSATIONS)
        .map(|i| format!("1555200{i:04}"))
        .collect();
    let wrote = futures::stream::iter(customers.iter().map(|customer| {
        sandbox.customer_message(CustomerMessage {
            channel: "whatsapp".into(),
            account: PHONE.into(),
            from: customer.clone(),
            text: Some("Hi, can you remind me later?".into()),
            ..CustomerMessage::default()
        })
    }))
    .buffer_unordered(8)
    .collect::<Vec<_>>()
    .await;
    for reply in wrote {
        let reply = reply.map_err(|e| format!("customer message: {e}"))?;
        if reply.status != 200 {
            return Err(format!("a customer's webhook answered {}", reply.status).into());
        }
    }
    Ok(customers
        .iter()
        .map(|c| shared::domain::conversation::conversation_id(&channel_id, c))
        .collect())
}

/// When each message is due: evenly over [`SPREAD`] from `first`, to the second.
struct Plan {
    messages: usize,
    first: DateTime<Utc>,
}

impl Plan {
    fn due(&self, i: usize) -> DateTime<Utc> {
        let step = SPREAD.as_millis() as i64 / self.messages as i64;
        (self.first + chrono::Duration::milliseconds(step * i as i64)).trunc_subsecs(0)
    }

    fn last(&self) -> DateTime<Utc> {
        self.due(self.messages - 1)
    }

    fn text(i: usize) -> String {
        format!("Scheduled reminder #{i}")
    }
}

/// The messages as created: their ids by index, and how the creation went.
struct Created {
    ids: Vec<String>,
    post_ms: Vec<f64>,
    took: Duration,
    ended: DateTime<Utc>,
}

impl Created {
    /// When each is due, by id.
    fn due_by_id(&self, plan: &Plan) -> HashMap<&str, DateTime<Utc>> {
        self.ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), plan.due(i)))
            .collect()
    }
}

/// Creates the plan's messages through the API, [`CREATE_CONCURRENCY`] at a time, message
/// `i` on conversation `i % CONVERSATIONS`.
async fn create_all(api: &Api, conversations: &[String], plan: &Plan) -> Result<Created, BoxError> {
    let started = Instant::now();
    let results = futures::stream::iter(0..plan.messages)
        .map(|i| async move {
            let body = json!({
                "send_at": plan.due(i).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "message": {"kind": "text", "text": Plan::text(i)},
            });
            let conversation = &conversations[i % conversations.len()];
            let path = format!("/conversations/{conversation}/scheduled-messages");
            let posted = Instant::now();
            let (status, reply) = api
                .send(Method::POST, &path, &api.agent, &[], Some(&body))
                .await?;
            if status != 201 {
                return Err(BoxError::from(format!(
                    "scheduling #{i} answered {status}: {reply}"
                )));
            }
            let id = reply["id"].as_str().ok_or("no id")?.to_owned();
            Ok((i, id, posted.elapsed()))
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut created = Created {
        ids: vec![String::new(); plan.messages],
        post_ms: Vec::new(),
        took: started.elapsed(),
        ended: Utc::now(),
    };
    for result in results {
        let (i, id, took) = result?;
        created.post_ms.push(took.as_secs_f64() * 1000.0);
        created.ids[i] = id;
    }
    Ok(created)
}

/// Lists the schedule group once, as the stand-in does every poll: schedules, pages, time.
async fn list_group(
    template: &Template,
    settings: &LocalSettings,
) -> Result<(usize, usize, Duration), BoxError> {
    let scheduler = aws_sdk_scheduler::Client::new(&settings.sdk_config());
    let group = template.local_name("ScheduleGroup")?;
    let started = Instant::now();
    let (mut listed, mut pages, mut token) = (0, 0, None);
    loop {
        let out = scheduler
            .list_schedules()
            .group_name(&group)
            .set_next_token(token)
            .max_results(100)
            .send()
            .await?;
        pages += 1;
        listed += out.schedules().len();
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok((listed, pages, started.elapsed()));
        }
    }
}

/// A send the provider accepted (not an injected failure).
fn accepted(item: &OutboxItem) -> bool {
    item.status == 200 && !item.injected
}

fn unsettled(m: &Value) -> bool {
    matches!(m["status"].as_str(), Some("scheduled" | "sending"))
}

/// Waits until the provider has a send for each (the sandbox records in process), then
/// until none is scheduled or sending, or [`GRACE`] after the last is due: the messages as
/// listed then.
async fn wait_settled(api: &Api, sandbox: &Sandbox, plan: &Plan) -> Result<Vec<Value>, BoxError> {
    let deadline = plan.last() + chrono::Duration::from_std(GRACE)?;
    while Utc::now() < deadline {
        let outbox = sandbox.outbox(Some(PHONE), None);
        if outbox.iter().filter(|i| accepted(i)).count() >= plan.messages {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut items = api.all_scheduled().await?;
    while Utc::now() < deadline && items.iter().any(unsettled) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        items = api.all_scheduled().await?;
    }
    Ok(items)
}

/// What came of the messages: statuses, provider sends per message, times from due.
struct Tally {
    statuses: Vec<String>,
    unsettled: usize,
    listed: usize,
    once: usize,
    never: usize,
    twice: usize,
    send_calls: usize,
    sent_ms: Vec<f64>,
    settled_ms: Vec<f64>,
    last_sent: Option<DateTime<Utc>>,
}

impl Tally {
    fn of(items: &[Value], outbox: &[OutboxItem], plan: &Plan, created: &Created) -> Self {
        let due_of_id = created.due_by_id(plan);
        let mut statuses: HashMap<&str, usize> = HashMap::new();
        let mut settled_ms = Vec::new();
        for m in items {
            *statuses
                .entry(m["status"].as_str().unwrap_or("?"))
                .or_default() += 1;
            let due = m["id"].as_str().and_then(|id| due_of_id.get(id));
            if let (Some(due), Some(settled)) = (due, parse_time(&m["settled_at"])) {
                settled_ms.push(ms_between(*due, settled));
            }
        }
        let index_of: HashMap<String, usize> =
            (0..plan.messages).map(|i| (Plan::text(i), i)).collect();
        let mut sends = vec![0usize; plan.messages];
        let (mut sent_ms, mut last_sent) = (Vec::new(), None);
        for item in outbox.iter().filter(|i| accepted(i)) {
            let text = item.body["text"]["body"].as_str();
            let Some(&i) = text.and_then(|t| index_of.get(t)) else {
                continue;
            };
            sends[i] += 1;
            if let Some(at) = parse_time(&json!(item.at)) {
                sent_ms.push(ms_between(plan.due(i), at));
                last_sent = last_sent.max(Some(at));
            }
        }
        let mut counts: Vec<String> = statuses.iter().map(|(s, n)| format!("{s} {n}")).collect();
        counts.sort();
        Self {
            statuses: counts,
            unsettled: items.iter().filter(|m| unsettled(m)).count(),
            listed: items.len(),
            once: sends.iter().filter(|&&n| n == 1).count(),
            never: sends.iter().filter(|&&n| n == 0).count(),
            twice: sends.iter().filter(|&&n| n > 1).count(),
            send_calls: outbox.len(),
            sent_ms,
            settled_ms,
            last_sent,
        }
    }

    /// Every message listed, fired, and sent to the provider exactly once.
    fn ok(&self, messages: usize) -> bool {
        self.listed == messages && self.unsettled == 0 && self.once == messages
    }
}

/// Runs and prints part 2; false when a message was not fired or not sent exactly once.
pub async fn run(
    template: &Template,
    settings: &LocalSettings,
    sandbox: &Sandbox,
    messages: usize,
) -> Result<bool, BoxError> {
    let invocations = Invocations::default();
    let (base, mut tasks) = start_dev_server(template, settings, sandbox, &invocations).await?;
    let probes = Samples::default();
    let env = local_stack::bench::function_env(template, settings, "scheduler")?;
    tasks.push(observe::probe_moto(
        settings,
        env["TABLE_NAME"].clone(),
        probes.clone(),
    ));
    let result = measure(
        template,
        settings,
        sandbox,
        messages,
        base,
        &invocations,
        &probes,
    )
    .await;
    // Stopped before moto, so that none reports it gone.
    for task in tasks {
        task.abort();
    }
    result
}

async fn measure(
    template: &Template,
    settings: &LocalSettings,
    sandbox: &Sandbox,
    messages: usize,
    base: String,
    invocations: &Invocations,
    probes: &Samples,
) -> Result<bool, BoxError> {
    let api = Api::new(settings, base)?;
    let conversations = open_conversations(&api, sandbox).await?;
    let started = Instant::now();
    let plan = Plan {
        messages,
        first: (Utc::now() + chrono::Duration::from_std(LEAD)?).trunc_subsecs(0),
    };
    let mut created = create_all(&api, &conversations, &plan).await?;
    let (listed, pages, listing) = list_group(template, settings).await?;
    let items = wait_settled(&api, sandbox, &plan).await?;
    let total = started.elapsed();
    let mut tally = Tally::of(&items, &sandbox.outbox(Some(PHONE), None), &plan, &created);

    println!(
        "\n{messages} scheduled messages due in the same minute (local stack: moto, the dev \
         server's functions, the provider sandbox, the schedule stand-in polling every {} ms \
         and firing {} at a time)\n",
        schedules::POLL.as_millis(),
        schedules::CONCURRENCY,
    );
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| created (`POST /conversations/{{id}}/scheduled-messages`, {CREATE_CONCURRENCY} in flight, {CONVERSATIONS} conversations) | {messages} in {:.1} s = {:.0}/s; each {} |",
        created.took.as_secs_f64(),
        messages as f64 / created.took.as_secs_f64(),
        spread(&mut created.post_ms),
    );
    println!(
        "| due | {} to {} UTC (creation ended {:+.1} s from the first due) |",
        plan.first.format("%H:%M:%S"),
        plan.last().format("%H:%M:%S"),
        ms_between(plan.first, created.ended) / 1000.0,
    );
    println!(
        "| one listing of the schedule group (as the stand-in does each poll) | {listed} schedules in {pages} pages, {:.0} ms |",
        listing.as_secs_f64() * 1000.0
    );
    println!(
        "| scheduled messages by status | {} |",
        tally.statuses.join(", ")
    );
    println!(
        "| not fired (scheduled or sending at the end) | {} |",
        tally.unsettled
    );
    println!(
        "| provider sends per message (sandbox outbox, accepted) | exactly 1: {}; none: {}; 2 or more: {} ({} send calls in all) |",
        tally.once, tally.never, tally.twice, tally.send_calls
    );
    println!(
        "| due (`send_at`) -> sent (outbox `at`) | {} |",
        spread(&mut tally.sent_ms)
    );
    println!(
        "| due -> fire started (`settled_at`, the fire's clock) | {} |",
        spread(&mut tally.settled_ms)
    );
    observe::print_rows(
        &invocations.take(),
        &created.due_by_id(&plan),
        probes,
        plan.first,
        messages as f64 / SPREAD.as_secs_f64(),
    );
    if let Some(last) = tally.last_sent {
        println!(
            "| last send after the last due | {:.1} s |",
            ms_between(plan.last(), last) / 1000.0
        );
    }
    println!(
        "| wall time, creation to all settled | {:.1} s |",
        total.as_secs_f64()
    );
    Ok(tally.ok(messages))
}
