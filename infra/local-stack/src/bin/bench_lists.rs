//! `make bench`, conversation lists at scale: one tenant with 10,000 conversations seeded
//! through the ingest (`InboundStore::record_message`), 1 % of them matching each filter
//! (set through the agents' change path, `ConversationChanges::change_conversation`), and
//! the first page of 20 of each filter read with `ConversationReader::list_conversations`
//! over moto, with an SDK interceptor counting the requests, the index entries the
//! queries read (`ScannedCount`) and the conversations read back (`BatchGetItem`); and
//! `status=open` (89 %), the inbox's usual list.
//!
//! Targets (the list-views issue): at most 40 index entries read per page of 20, a filtered
//! page within 1.5× the unfiltered page's time, at most 2 AWS requests per agent change.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use local_stack::bench::{self, CountedClients};
use local_stack::counter::{Recorded, RequestCounter};
use local_stack::moto::Moto;
use local_stack::template::{self, Template};
use local_stack::{BoxError, LOCAL_REGION, LocalSettings, bootstrap};
use shared::adapters::dynamo::DynamoStore;
use shared::domain::actor::Actor;
use shared::domain::agent::{AgentProfile, AgentRef};
use shared::domain::auth::Role;
use shared::domain::changes::Change;
use shared::domain::channel::Channel;
use shared::domain::conversation::{ConversationFilter, ConversationStatus};
use shared::domain::ids::TenantId;
use shared::domain::inbound::{CustomerIdentity, InboundMessage};
use shared::domain::label::{Label, LabelColor, LabelName};
use shared::domain::message::{Direction, MessageKind};
use shared::domain::page::PageRequest;
use shared::ports::{
    AgentStore, ConversationChanges, ConversationReader, InboundStore, LabelStore,
    Recorded as Stored,
};

/// Conversations of the tenant (the first argument may ask for another multiple of 100, at
/// least 2,000 so that each 1 % filter fills a page).
const CONVERSATIONS: usize = 10_000;
/// Writes in flight at once while seeding.
const CONCURRENCY: usize = 32;
/// Measured reads of each list page (after one warm-up), interleaved across filters.
const RUNS: usize = 10;
/// The page size the targets are stated for.
const PAGE: u16 = 20;
/// Target: index entries read (`ScannedCount`, all queries) per page of 20.
const SCANNED_BUDGET: u64 = 40;
/// Target: a filtered page's median time over the unfiltered page's.
const TIME_BUDGET: f64 = 1.5;
/// Measured calls of each change.
const CHANGE_RUNS: usize = 20;
/// Target: AWS requests per change.
const CHANGE_BUDGET: usize = 2;

/// Agents and labels the seeding uses.
const RARE_AGENT: &str = "a-rare";
const BULK_AGENT: &str = "a-bulk";
const RARE_LABEL: &str = "rare";
const COMMON_LABEL: &str = "common";

/// What conversation `i` (0 = oldest) is, by `i % 100`: each 1 % filter takes one residue,
/// `common` (10 %) and snoozed (10 %) overlap on one (1 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seeded(usize);

impl Seeded {
    fn k(self) -> usize {
        self.0 % 100
    }
    fn second_channel(self) -> bool {
        self.k() == 0
    }
    fn rare_label(self) -> bool {
        self.k() == 1
    }
    fn assignee(self) -> Option<&'static str> {
        match self.k() {
            2 => Some(RARE_AGENT),
            4 => None,
            _ => Some(BULK_AGENT),
        }
    }
    fn status(self) -> ConversationStatus {
        match self.k() {
            3 => ConversationStatus::Closed,
            19..=28 => ConversationStatus::Snoozed,
            _ => ConversationStatus::Open,
        }
    }
    fn common_label(self) -> bool {
        (10..=19).contains(&self.k())
    }

    /// The changes that make it so, in order.
    fn changes(self, now: DateTime<Utc>) -> Result<Vec<Change>, BoxError> {
        let label = |name: &str| -> Result<Change, BoxError> {
            Ok(Change::Label {
                name: LabelName::parse(name)?,
                add: true,
            })
        };
        let mut changes = Vec::new();
        if let Some(agent) = self.assignee() {
            changes.push(Change::Assign(Some(agent.to_owned())));
        }
        match self.status() {
            ConversationStatus::Open => {}
            ConversationStatus::Snoozed => changes.push(Change::status(
                ConversationStatus::Snoozed,
                Some(now + chrono::Duration::days(300)),
                now,
            )?),
            status => changes.push(Change::status(status, None, now)?),
        }
        if self.rare_label() {
            changes.push(label(RARE_LABEL)?);
        }
        if self.common_label() {
            changes.push(label(COMMON_LABEL)?);
        }
        Ok(changes)
    }
}

/// One filter measured: its query string and which seeded conversations match it.
struct Filter {
    query: String,
    matches: Box<dyn Fn(Seeded) -> bool>,
}

/// One page read, as counted.
struct Read {
    ids: Vec<String>,
    recorded: Recorded,
    wall: Duration,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `work(i)` for every `i` below `n`, [`CONCURRENCY`] at a time.
async fn concurrently<F, Fut>(n: usize, work: F) -> Result<Duration, BoxError>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    let started = Instant::now();
    let mut results = futures::stream::iter(0..n)
        .map(work)
        .buffer_unordered(CONCURRENCY);
    while let Some(result) = results.next().await {
        result?;
    }
    Ok(started.elapsed())
}

fn text_message(customer: &str, wamid: &str, at: DateTime<Utc>) -> InboundMessage {
    InboundMessage {
        provider_message_id: wamid.to_owned(),
        customer: customer.to_owned(),
        customer_name: Some(format!("Customer {customer}")),
        direction: Direction::Inbound,
        kind: MessageKind::Text,
        text: Some("hello".into()),
        media: None,
        reply_to: None,
        timestamp: Some(at),
        opens_window: true,
        raw: serde_json::Value::Null,
        identity: CustomerIdentity {
            phone: Some(customer.to_owned()),
            ..CustomerIdentity::default()
        },
        standby: false,
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let conversations = match std::env::args().nth(1) {
        Some(n) => n.parse::<usize>()?,
        None => CONVERSATIONS,
    };
    if conversations % 100 != 0 || conversations < 100 * usize::from(PAGE) {
        return Err("the number of conversations must be a multiple of 100, at least 2,000".into());
    }
    let moto = Moto::start(0)?;
    let settings = LocalSettings::from_env(moto.endpoint())?;
    let template = Template::load(&template::default_path(), LOCAL_REGION)?;
    let sdk = settings.sdk_config();
    bootstrap::create_resources(&template, &sdk).await?;
    let env = bench::function_env(&template, &settings, "chatroom")?;
    let table = env["TABLE_NAME"].clone();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table.clone());
    let counter = RequestCounter::default();
    let counted = DynamoStore::new(CountedClients::new(&sdk, &counter).dynamodb, table.clone());
    let tenant = TenantId::parse("bench")?;

    // The catalog and the agents the changes need.
    for name in [RARE_LABEL, COMMON_LABEL] {
        let label = Label {
            name: LabelName::parse(name)?,
            color: LabelColor::parse("#3b82f6")?,
            created_at: Utc::now(),
        };
        store.create_label(&tenant, &label).await?;
    }
    for agent in [RARE_AGENT, BULK_AGENT] {
        let profile = AgentProfile {
            name: format!("Agent {agent}"),
            role: Role::Agent,
        };
        store
            .put_agent(&tenant, &AgentRef::parse(agent)?, &profile, Utc::now())
            .await?;
    }

    // Seeding: one customer message per conversation, a second apart, oldest first.
    let main_channel = bench::whatsapp_channel(&store, "1065403522").await?;
    let second_channel = bench::whatsapp_channel(&store, "1065403523").await?;
    let base = Utc::now() - chrono::Duration::seconds(conversations as i64 + 3600);
    let ids: std::sync::Mutex<HashMap<usize, String>> = std::sync::Mutex::default();
    let seeding = concurrently(conversations, |i| {
        let (store, ids) = (&store, &ids);
        let channel: &Channel = if Seeded(i).second_channel() {
            &second_channel
        } else {
            &main_channel
        };
        async move {
            let at = base + chrono::Duration::seconds(i as i64);
            let message = text_message(&format!("1555{i:07}"), &format!("wamid.lists.{i}"), at);
            match store.record_message(channel, &message, Utc::now()).await? {
                Stored::Stored(r) => {
                    ids.lock()
                        .map_err(|_| "poisoned")?
                        .insert(i, r.conversation_id);
                    Ok(())
                }
                Stored::Duplicate => Err(format!("message {i} was a duplicate").into()),
            }
        }
    })
    .await?;
    let ids = ids.into_inner().map_err(|_| "poisoned")?;
    println!(
        "\nConversation lists at scale: {conversations} conversations of one tenant seeded through \
         the ingest (record_message, {CONCURRENCY} at a time) in {:.1} s, {:.1} ms each",
        seeding.as_secs_f64(),
        ms(seeding) / conversations as f64,
    );
    let id_of = |i: usize| ids[&i].clone();

    // The filters' matches, through the agents' change path.
    let now = Utc::now();
    let actor = Actor::agent("agent-1");
    let mut change_count = 0;
    let mut plans = Vec::new();
    for i in 0..conversations {
        let changes = Seeded(i).changes(now)?;
        change_count += changes.len();
        plans.push(changes);
    }
    let changing = concurrently(conversations, |i| {
        let (store, tenant, actor, changes) = (&store, &tenant, &actor, &plans[i]);
        let id = id_of(i);
        async move {
            for change in changes {
                store
                    .change_conversation(tenant, &id, change, actor, now)
                    .await?;
            }
            Ok(())
        }
    })
    .await?;
    println!(
        "{change_count} changes through the change path (change_conversation; a conversation's \
         in order, {CONCURRENCY} conversations at a time) in {:.1} s, {:.1} ms each",
        changing.as_secs_f64(),
        ms(changing) / change_count as f64,
    );

    let filters = [
        Filter {
            query: String::new(),
            matches: Box::new(|_| true),
        },
        Filter {
            query: format!("label={RARE_LABEL}"),
            matches: Box::new(Seeded::rare_label),
        },
        Filter {
            query: format!("assignee={RARE_AGENT}"),
            matches: Box::new(|s| s.assignee() == Some(RARE_AGENT)),
        },
        Filter {
            query: "assignee=none".into(),
            matches: Box::new(|s| s.assignee().is_none()),
        },
        Filter {
            query: format!("channel_id={}", second_channel.id),
            matches: Box::new(Seeded::second_channel),
        },
        Filter {
            query: "status=closed".into(),
            matches: Box::new(|s| s.status() == ConversationStatus::Closed),
        },
        // Not a 1 % filter, but the inbox's usual one: it also reads the snoozed views
        // (an ended snooze lists as open), twice the shards.
        Filter {
            query: "status=open".into(),
            matches: Box::new(|s| s.status() == ConversationStatus::Open),
        },
        Filter {
            query: format!("label={COMMON_LABEL}&status=snoozed"),
            matches: Box::new(|s| s.common_label() && s.status() == ConversationStatus::Snoozed),
        },
    ];
    let read = |filter: &Filter| {
        let (counted, counter, tenant) = (&counted, &counter, &tenant);
        let query: HashMap<String, String> = form_urlencoded::parse(filter.query.as_bytes())
            .into_owned()
            .collect();
        async move {
            let filter = ConversationFilter::parse(|name| query.get(name).cloned())?;
            let page = PageRequest {
                limit: PAGE,
                cursor: None,
            };
            counter.take_recorded();
            let started = Instant::now();
            let listed = counted
                .list_conversations(tenant, &filter, &page, Utc::now())
                .await?;
            let wall = started.elapsed();
            Ok::<_, BoxError>(Read {
                ids: listed.items.into_iter().map(|c| c.id).collect(),
                recorded: counter.take_recorded(),
                wall,
            })
        }
    };
    // Interleaved: run r reads every filter once, so all see the same emulator load.
    let mut reads: Vec<Vec<Read>> = filters.iter().map(|_| Vec::new()).collect();
    for run in 0..=RUNS {
        for (filter, kept) in filters.iter().zip(reads.iter_mut()) {
            let r = read(filter).await?;
            if run > 0 {
                kept.push(r);
            }
        }
    }

    println!(
        "\nFirst page of {PAGE} of each filter (1 % of conversations match each filtered one but \
         status=open), \
         {RUNS} runs interleaved after one warm-up; targets: <= {SCANNED_BUDGET} index entries \
         read, <= {TIME_BUDGET}x the unfiltered page's median time\n"
    );
    println!(
        "| filter | matching | items | newest first | AWS requests | ScannedCount (Query) | items read (BatchGetItem) | median ms | x unfiltered | result |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let unfiltered_ms = median(reads[0].iter().map(|r| ms(r.wall)).collect());
    let mut failed = false;
    for (filter, runs) in filters.iter().zip(&reads) {
        let matching: Vec<usize> = (0..conversations)
            .rev()
            .filter(|i| (filter.matches)(Seeded(*i)))
            .collect();
        let expected: Vec<String> = matching
            .iter()
            .take(usize::from(PAGE))
            .map(|i| id_of(*i))
            .collect();
        let items = runs.iter().map(|r| r.ids.len()).min().unwrap_or(0);
        let right = runs.iter().all(|r| r.ids == expected);
        let worst = |f: &dyn Fn(&Read) -> u64| runs.iter().map(f).max().unwrap_or(0);
        let requests = worst(&|r| r.recorded.sent.len() as u64);
        let scanned = worst(&|r| r.recorded.read().scanned);
        let batch_items = worst(&|r| r.recorded.read().batch_items);
        let median_ms = median(runs.iter().map(|r| ms(r.wall)).collect());
        let ratio = median_ms / unfiltered_ms;
        let ok = items == usize::from(PAGE)
            && right
            && scanned <= SCANNED_BUDGET
            && ratio <= TIME_BUDGET;
        failed |= !ok;
        let name = if filter.query.is_empty() {
            "(none)".to_owned()
        } else {
            filter
                .query
                .replace(&second_channel.id.to_string(), "<second>")
        };
        println!(
            "| {name} | {} | {items} | {} | {requests} | {scanned} | {batch_items} | {median_ms:.1} | {ratio:.2} | {} |",
            matching.len(),
            if right { "yes" } else { "NO" },
            if ok { "pass" } else { "FAIL" },
        );
    }

    // Requests per change, each on conversations that change (no repeat).
    let targets: Vec<String> = (0..CHANGE_RUNS).map(|n| id_of(n * 100 + 60)).collect();
    let rare = LabelName::parse(RARE_LABEL)?;
    let changes = [
        ("assignment", Change::Assign(Some(RARE_AGENT.to_owned()))),
        (
            "status change (close)",
            Change::status(ConversationStatus::Closed, None, now)?,
        ),
        (
            "label add",
            Change::Label {
                name: rare.clone(),
                add: true,
            },
        ),
        (
            "label remove",
            Change::Label {
                name: rare,
                add: false,
            },
        ),
    ];
    println!("\nAWS requests per change ({CHANGE_RUNS} calls each, counted at the SDK)\n");
    println!("| change | calls | requests per call (max) | budget | median ms | result | sent |");
    println!("|---|---|---|---|---|---|---|");
    for (name, change) in &changes {
        let mut most = 0;
        let mut times = Vec::new();
        let mut sent = String::new();
        for id in &targets {
            counter.take_recorded();
            let started = Instant::now();
            counted
                .change_conversation(&tenant, id, change, &actor, Utc::now())
                .await?;
            times.push(ms(started.elapsed()));
            let recorded = counter.take_recorded();
            if recorded.sent.len() >= most {
                most = recorded.sent.len();
                sent = recorded
                    .sent
                    .iter()
                    .map(|s| s.operation.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
            }
        }
        let ok = most <= CHANGE_BUDGET;
        failed |= !ok;
        println!(
            "| {name} | {CHANGE_RUNS} | {most} | <= {CHANGE_BUDGET} | {:.1} | {} | {sent} |",
            median(times),
            if ok { "pass" } else { "FAIL" },
        );
    }
    drop(moto);

    if failed {
        return Err("a list page or a change is over its target".into());
    }
    Ok(())
}
