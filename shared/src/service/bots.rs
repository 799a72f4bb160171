//! Chatbots (SPEC §8): the bot catalog's routes, Exit Bot, and the runner that makes one
//! bot turn per inbound customer message.
//!
//! A turn reads its inputs in one request (conversation, message, settings, bots),
//! decides ([`crate::domain::bot::decide`]), claims the turn with one transaction keyed by
//! the message (the bot state, `bot_started`/`bot_exited` and the sends to make), sends
//! through the one send path as the bot, and settles the claim. A re-delivered event finds
//! the claim: settled, it does nothing; not settled (the first invocation failed midway),
//! it makes the same sends again with the same idempotency keys, which the send path
//! answers from the first acceptance instead of sending twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::Error;
use crate::domain::actor::Actor;
use crate::domain::auth::Principal;
use crate::domain::bot::{
    Bot, BotInput, CompiledBot, Decision, Exit, ExitReason, InboundTurn, SendAllowance, answer_of,
    decide, parse_bot_id, turn_time,
};
use crate::domain::changes::Change;
use crate::domain::channel::ChannelType;
use crate::domain::conversation::Conversation;
use crate::domain::events::MessageReceived;
use crate::domain::ids::{ConversationId, TenantId};
use crate::domain::message::{Direction, MessageKind};
use crate::domain::outbound::{IdempotencyKey, OutboundKind, SendMessage};
use crate::domain::page::{Page, PageRequest};
use crate::domain::window::{WECHAT_REPLIES_PER_MESSAGE, WindowMode};
use crate::ports::{
    AgentDirectory, BotCatalog, BotTurns, ChannelDirectory, ChannelSender, ChannelStore,
    ClaimOutcome, ClaimedSends, ConversationChanges, ConversationReader, CustomerAliases,
    MediaStore, ObjectStore, OutboundStore, TemplateStore, TurnClaim,
};
use crate::service::outbound::{Outbound, SendRequest};

/// Times a turn is decided again when the bot state moved under it.
const TURN_ATTEMPTS: u32 = 4;

// ---- The catalog: GET /bots, GET/PUT/DELETE /bots/{id} ----

/// `GET /bots`: every bot of the tenant, by id (one page: a tenant's bots fit one item).
///
/// # Errors
/// `Internal` when the store fails.
pub async fn list_bots(store: &impl BotCatalog, principal: &Principal) -> Result<Page<Bot>, Error> {
    let (mut bots, _) = store.bots(&principal.tenant_id).await?;
    bots.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Page {
        items: bots,
        next_cursor: None,
    })
}

/// `GET /bots/{id}`.
///
/// # Errors
/// 404 `bot`; 422 `invalid_bot_id`.
pub async fn get_bot(
    store: &impl BotCatalog,
    principal: &Principal,
    id: &str,
) -> Result<Bot, Error> {
    let id = parse_bot_id(id)?;
    let (bots, _) = store.bots(&principal.tenant_id).await?;
    bots.into_iter()
        .find(|b| b.id == id)
        .ok_or(Error::NotFound { what: "bot" })
}

/// `PUT /bots/{id}` (admin): creates or replaces a bot, checked as a whole. Returns the
/// bot and whether it was created.
///
/// # Errors
/// 403 for agents; 422 `invalid_bot`, `invalid_bot_id`, `invalid_body` (bad JSON shape),
/// `unknown_channel` (a channel id that is not the tenant's), `unknown_agent` (a handover
/// to a non-agent), `unknown_media` / `media_not_ready` / `media_rejected` (a reply's
/// media), `too_many_bots`; 409 `conflict` when concurrent writes keep colliding.
pub async fn put_bot<S>(
    store: &S,
    principal: &Principal,
    id: &str,
    body: Value,
    now: DateTime<Utc>,
) -> Result<(Bot, bool), Error>
where
    S: BotCatalog + ChannelStore + AgentDirectory + MediaStore,
{
    principal.require_admin()?;
    let id = parse_bot_id(id)?;
    let input: BotInput = crate::http::from_json(body)?;
    let tenant = &principal.tenant_id;
    let mut channels = Vec::new();
    let mut page = PageRequest {
        limit: 100,
        cursor: None,
    };
    loop {
        let found = store.list_channels(tenant, &page).await?;
        channels.extend(found.items);
        match found.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => break,
        }
    }
    for wanted in &input.channel_ids {
        if !channels.iter().any(|c| c.id.as_str() == wanted) {
            return Err(Error::validation(
                "unknown_channel",
                format!(
                    "channel_ids: `{}` is not a channel of this tenant",
                    wanted.chars().take(64).collect::<String>()
                ),
            ));
        }
    }
    // The channel types it will run on: its channels, else all of the tenant's (all
    // types when none is connected yet).
    let mut types: Vec<ChannelType> = channels
        .iter()
        .filter(|c| {
            input.channel_ids.is_empty() || input.channel_ids.iter().any(|w| w == c.id.as_str())
        })
        .map(|c| c.channel_type)
        .collect();
    if types.is_empty() {
        types = ChannelType::ALL.to_vec();
    }
    let mut input = input;
    for step in &mut input.steps {
        if let Some(agent) = &step.assign_to
            && store.get_agent(tenant, agent).await?.is_none()
        {
            return Err(Error::validation(
                "unknown_agent",
                format!(
                    "step `{}`: assign_to is not an agent of this tenant",
                    step.id
                ),
            ));
        }
        if let Some(media_id) = &step.media_id {
            step.kind = Some(media_kind(store, tenant, &step.id, media_id).await?);
        }
    }
    for attempt in 0..TURN_ATTEMPTS {
        let (mut bots, version) = store.bots(tenant).await?;
        let existing = bots.iter().position(|b| b.id == id);
        let created_at = existing.map(|i| bots[i].created_at.clone());
        let bot =
            input
                .clone()
                .into_bot(&id, &types, created_at, &crate::domain::time::rfc3339(&now))?;
        match existing {
            Some(i) => bots[i] = bot.clone(),
            None => bots.push(bot.clone()),
        }
        if store.save_bots(tenant, &bots, version).await? {
            info!(tenant = %tenant, bot_id = %id, created = existing.is_none(), "bot saved");
            return Ok((bot, existing.is_none()));
        }
        warn!(tenant = %tenant, attempt, "bot catalog changed meanwhile; saving again");
    }
    Err(Error::conflict(
        "conflict",
        "the bots were being changed by someone else; try again",
    ))
}

/// The send kind of a reply's media: the record must be a `valid` upload of the tenant.
async fn media_kind(
    store: &impl MediaStore,
    tenant: &TenantId,
    step: &str,
    media_id: &str,
) -> Result<OutboundKind, Error> {
    use crate::domain::media::{MediaKind, MediaStatus};
    let refuse = |code: &'static str, why: &str| {
        Err(Error::validation(code, format!("step `{step}`: {why}")))
    };
    let Some(record) = store.get_media(tenant, media_id).await? else {
        return refuse("unknown_media", "no media with this media_id");
    };
    match record.status {
        MediaStatus::Valid => {}
        MediaStatus::Pending => {
            return refuse("media_not_ready", "the media is still being checked");
        }
        MediaStatus::Rejected => return refuse("media_rejected", "the media was rejected"),
    }
    Ok(match record.kind {
        MediaKind::Image => OutboundKind::Image,
        MediaKind::Sticker => OutboundKind::Sticker,
        MediaKind::Audio => OutboundKind::Audio,
        MediaKind::Video => OutboundKind::Video,
        MediaKind::Document => OutboundKind::File,
    })
}

/// `DELETE /bots/{id}` (admin). A conversation it runs on stops at its next message
/// (`bot_exited`, reason `bot_changed`).
///
/// # Errors
/// 403 for agents; 404 `bot`; 409 `conflict` when concurrent writes keep colliding.
pub async fn delete_bot(
    store: &impl BotCatalog,
    principal: &Principal,
    id: &str,
) -> Result<(), Error> {
    principal.require_admin()?;
    let id = parse_bot_id(id)?;
    let tenant = &principal.tenant_id;
    for _ in 0..TURN_ATTEMPTS {
        let (mut bots, version) = store.bots(tenant).await?;
        let before = bots.len();
        bots.retain(|b| b.id != id);
        if bots.len() == before {
            return Err(Error::NotFound { what: "bot" });
        }
        if store.save_bots(tenant, &bots, version).await? {
            info!(tenant = %tenant, bot_id = %id, "bot deleted");
            return Ok(());
        }
    }
    Err(Error::conflict(
        "conflict",
        "the bots were being changed by someone else; try again",
    ))
}

// ---- Exit Bot ----

/// `POST /conversations/{id}/bot/exit` (the seed's Exit Bot): stops the running bot with a
/// `bot_exited` system message (reason `exit_bot`, the agent as actor) and returns the
/// conversation. With no bot running it changes nothing (a repeat click is harmless); a
/// bot whose timeout passed is recorded as timed out.
///
/// # Errors
/// 404 for an unknown conversation; `Internal` when the store fails.
pub async fn exit_bot<S>(
    store: &S,
    principal: &Principal,
    conversation_id: &str,
    now: DateTime<Utc>,
) -> Result<Conversation, Error>
where
    S: BotTurns + ConversationReader,
{
    let tenant = &principal.tenant_id;
    let id = ConversationId::parse(conversation_id).map_err(|_| Error::NotFound {
        what: "conversation",
    })?;
    for _ in 0..TURN_ATTEMPTS {
        let state = store
            .get_conversation(tenant, id.as_str())
            .await?
            .ok_or(Error::NotFound {
                what: "conversation",
            })?;
        let Some(active) = &state.bot.active else {
            return Ok(state.view(now));
        };
        let exit = if active.runs_at(now) {
            Exit {
                reason: ExitReason::ExitBot,
                actor: Actor::agent(principal.agent_id.as_str()),
                at: now,
                assign_to: None,
            }
        } else {
            Exit {
                reason: ExitReason::Timeout,
                actor: Actor::System,
                at: active.deadline(),
                assign_to: None,
            }
        };
        if store
            .stop_bot(tenant, id.as_str(), &state.bot, &exit)
            .await?
        {
            info!(tenant = %tenant, conversation_id, reason = exit.reason.as_str(), "bot stopped");
            let after =
                store
                    .get_conversation(tenant, id.as_str())
                    .await?
                    .ok_or(Error::NotFound {
                        what: "conversation",
                    })?;
            return Ok(after.view(now));
        }
    }
    Err(Error::conflict(
        "conversation_busy",
        "the conversation kept changing; try again",
    ))
}

// ---- The runner ----

/// Compiled bots, kept per process by tenant, id and save time (compiling 400 keywords
/// costs more than a turn).
#[derive(Debug, Default, Clone)]
pub struct BotCache {
    compiled: Arc<Mutex<CompiledByBot>>,
}

/// Compiled bots by (tenant, bot id).
type CompiledByBot = HashMap<(String, String), Arc<CompiledBot>>;

/// Most compiled bots kept; beyond, the cache starts again.
const CACHE_MAX: usize = 1000;

impl BotCache {
    /// The tenant's bots compiled (from the cache when unchanged). A bot whose stored
    /// pattern no longer compiles is skipped with a warning.
    pub fn compile(&self, tenant: &TenantId, bots: &[Bot]) -> Vec<Arc<CompiledBot>> {
        let mut cache = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() > CACHE_MAX {
            cache.clear();
        }
        bots.iter()
            .filter_map(|bot| {
                let key = (tenant.to_string(), bot.id.clone());
                if let Some(hit) = cache.get(&key).filter(|c| c.bot == *bot) {
                    return Some(hit.clone());
                }
                match CompiledBot::new(bot.clone()) {
                    Ok(c) => {
                        let c = Arc::new(c);
                        cache.insert(key, c.clone());
                        Some(c)
                    }
                    Err(e) => {
                        warn!(tenant = %tenant, bot_id = %bot.id, error = %e, "bot skipped");
                        None
                    }
                }
            })
            .collect()
    }
}

/// What one event came to (logged, and returned to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnOutcome {
    /// Not a message a bot answers (outbound, standby, a reaction, …).
    Ignored,
    /// No bot acts on it.
    NoTurn,
    /// A bot acted (sends made, state moved).
    Turned,
    /// Its turn was already made (a re-delivery).
    Duplicate,
    /// The conversation or message is gone.
    Missing,
}

/// Whether a bot answers this kind of message: a customer's words, choices and media; not
/// reactions, provider notices, WeChat events, referrals or story mentions.
fn answerable(kind: Option<MessageKind>) -> bool {
    !matches!(
        kind,
        Some(
            MessageKind::Reaction
                | MessageKind::System
                | MessageKind::Event
                | MessageKind::Referral
                | MessageKind::StoryMention
                | MessageKind::Unsupported
        )
    )
}

fn idempotency_key(message_id: &str, n: usize) -> Option<IdempotencyKey> {
    IdempotencyKey::parse(&format!("bot-turn-{message_id}-{n}")).ok()
}

/// Makes the bot turn of one `MessageReceived` event (SPEC §8). Exactly one turn per
/// inbound message, however often the event comes.
///
/// # Errors
/// `Internal` when the store fails (the event is delivered again and the turn resumes).
pub async fn run_turn<S, OS, D, C, O>(
    store: &S,
    outbound: &Outbound<OS, D, C, O>,
    cache: &BotCache,
    event: &MessageReceived,
    now: DateTime<Utc>,
) -> Result<TurnOutcome, Error>
where
    S: BotTurns + ConversationChanges,
    OS: OutboundStore + ConversationReader + MediaStore + TemplateStore + CustomerAliases,
    D: ChannelDirectory,
    C: ChannelSender,
    O: ObjectStore,
{
    if event.direction != Some(Direction::Inbound) || event.standby || !answerable(event.kind) {
        return Ok(TurnOutcome::Ignored);
    }
    let Ok(tenant) = TenantId::parse(&event.tenant_id) else {
        return Ok(TurnOutcome::Ignored);
    };
    let conversation_id = event.conversation_id.as_str();
    for _ in 0..TURN_ATTEMPTS {
        let Some(inputs) = store
            .turn_inputs(
                &tenant,
                conversation_id,
                &event.created_at,
                &event.message_id,
            )
            .await?
        else {
            warn!(tenant = %tenant, conversation_id, message_id = %event.message_id, "bot turn: conversation or message missing");
            return Ok(TurnOutcome::Missing);
        };
        // A re-delivery: the turn was made (or claimed by an invocation that failed
        // midway: its sends are made again, answered by their first acceptance).
        if let Some(taken) = inputs.claimed {
            if taken.settled {
                return Ok(TurnOutcome::Duplicate);
            }
            info!(tenant = %tenant, conversation_id, "bot turn resumed");
            return finish_turn(store, outbound, &tenant, event, taken, now).await;
        }
        let state = &inputs.conversation;
        if inputs.message.direction != Direction::Inbound
            || (state.bot.active.is_none() && inputs.bots.is_empty())
        {
            return Ok(TurnOutcome::NoTurn);
        }
        let bots = cache.compile(&tenant, &inputs.bots);
        let window =
            state
                .policy
                .window_at(state.last_inbound_at, state.replies_since_inbound, now);
        let allowance = SendAllowance {
            free_form: window.mode == WindowMode::FreeForm,
            replies_left: if state.policy.channel_type == ChannelType::Wechat {
                usize::try_from(
                    WECHAT_REPLIES_PER_MESSAGE.saturating_sub(state.replies_since_inbound),
                )
                .unwrap_or(0)
            } else {
                usize::MAX
            },
        };
        let message = &inputs.message;
        let answer = answer_of(&message.raw);
        let turn_input = InboundTurn {
            channel: state.policy.channel_type,
            channel_id: &state.channel_id,
            customer_id: &state.customer.id,
            text: message.text.as_deref(),
            answer: answer.as_deref(),
            at: message.created_at,
            first_message: inputs.conversation_created_at == Some(message.created_at),
            business_open: inputs.settings.is_open_at(message.created_at),
            agent_caught_up: state.unread_count == 0,
        };
        let Decision::Turn(turn) = decide(&bots, &state.bot, &turn_input, allowance) else {
            return Ok(TurnOutcome::NoTurn);
        };
        let claim = TurnClaim {
            tenant: tenant.clone(),
            conversation_id: conversation_id.to_owned(),
            message_id: event.message_id.clone(),
            seen_version: state.bot.version,
            at: now,
            turn: *turn,
        };
        let taken = match store.claim_turn(&claim).await? {
            ClaimOutcome::Claimed => {
                info!(
                    tenant = %tenant,
                    conversation_id,
                    bot_id = %claim.turn.bot_id,
                    starts = claim.turn.starts,
                    sends = claim.turn.sends.len(),
                    exit = claim.turn.exit.as_ref().map_or("none", |e| e.reason.as_str()),
                    "bot turn claimed"
                );
                ClaimedSends {
                    assign_to: claim.turn.exit.as_ref().and_then(|e| e.assign_to.clone()),
                    version: claim.seen_version + 1,
                    bot_id: claim.turn.bot_id,
                    at: claim.at,
                    sends: claim.turn.sends,
                    settled: false,
                }
            }
            ClaimOutcome::Taken(taken) if taken.settled => return Ok(TurnOutcome::Duplicate),
            ClaimOutcome::Taken(taken) => {
                info!(tenant = %tenant, conversation_id, "bot turn resumed");
                taken
            }
            ClaimOutcome::Moved => continue,
            ClaimOutcome::Gone => return Ok(TurnOutcome::Missing),
        };
        return finish_turn(store, outbound, &tenant, event, taken, now).await;
    }
    Err(Error::Internal(
        "bot turn: the conversation kept changing".into(),
    ))
}

/// Makes a claimed turn's sends, its handover's assignment, and settles the claim.
async fn finish_turn<S, OS, D, C, O>(
    store: &S,
    outbound: &Outbound<OS, D, C, O>,
    tenant: &TenantId,
    event: &MessageReceived,
    taken: ClaimedSends,
    now: DateTime<Utc>,
) -> Result<TurnOutcome, Error>
where
    S: BotTurns + ConversationChanges,
    OS: OutboundStore + ConversationReader + MediaStore + TemplateStore + CustomerAliases,
    D: ChannelDirectory,
    C: ChannelSender,
    O: ObjectStore,
{
    let conversation_id = event.conversation_id.as_str();
    let turn = TurnSends {
        message_id: &event.message_id,
        bot_id: &taken.bot_id,
        at: taken.at,
        version: taken.version,
        sends: &taken.sends,
    };
    send_all(store, outbound, tenant, conversation_id, &turn).await?;
    if let Some(agent) = &taken.assign_to {
        let actor = Actor::Bot {
            id: taken.bot_id.clone(),
        };
        let change = Change::Assign(Some(agent.clone()));
        if let Err(e) = store
            .change_conversation(tenant, conversation_id, &change, &actor, now)
            .await
        {
            if e.is_client_error() {
                warn!(tenant = %tenant, conversation_id, agent = %agent, error = %e, "bot handover could not assign");
            } else {
                return Err(e);
            }
        }
    }
    if !taken.sends.is_empty() || taken.assign_to.is_some() {
        store
            .settle_turn(tenant, conversation_id, &event.message_id)
            .await?;
    }
    Ok(TurnOutcome::Turned)
}

/// A claimed turn's messages and what they are sent under.
struct TurnSends<'a> {
    /// The inbound message the turn answers (its sends' idempotency keys derive from it).
    message_id: &'a str,
    bot_id: &'a str,
    /// The turn's base time.
    at: DateTime<Utc>,
    /// The bot state version the turn left: each send is conditional on it.
    version: u64,
    sends: &'a [SendMessage],
}

/// Sends a turn's messages in order as the bot, each with its own idempotency key and
/// time, each conditional on the bot state the turn left: once an agent replies, Exit Bot
/// or another turn moves it, the rest is not sent. A refusal (window closed meanwhile,
/// media gone) stops the bot and the rest.
async fn send_all<S, OS, D, C, O>(
    store: &S,
    outbound: &Outbound<OS, D, C, O>,
    tenant: &TenantId,
    conversation_id: &str,
    turn: &TurnSends<'_>,
) -> Result<(), Error>
where
    S: BotTurns,
    OS: OutboundStore + ConversationReader + MediaStore + TemplateStore + CustomerAliases,
    D: ChannelDirectory,
    C: ChannelSender,
    O: ObjectStore,
{
    let bot_id = turn.bot_id;
    let actor = Actor::Bot {
        id: bot_id.to_owned(),
    };
    let Ok(conversation) = ConversationId::parse(conversation_id) else {
        return Ok(());
    };
    for (i, message) in turn.sends.iter().enumerate() {
        let request = SendRequest::new(message.clone(), idempotency_key(turn.message_id, i))
            .for_bot_turn(turn.version);
        let when = turn_time(turn.at, i + 1);
        match outbound
            .send(&actor, tenant, &conversation, request, when)
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == "bot_stopped" => {
                info!(tenant = %tenant, conversation_id, bot_id, sent = i, "bot stopped during its turn; the rest is not sent");
                return Ok(());
            }
            Err(e) if e.is_client_error() => {
                warn!(tenant = %tenant, conversation_id, bot_id, code = e.code(), "bot send refused; stopping the bot");
                let reason = match e.code() {
                    "window_closed" | "template_required" => ExitReason::WindowClosed,
                    _ => ExitReason::SendFailed,
                };
                stop_after_refusal(store, tenant, conversation_id, bot_id, reason, when).await?;
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Stops `bot_id` if it still runs on the conversation (a refused send).
async fn stop_after_refusal(
    store: &impl BotTurns,
    tenant: &TenantId,
    conversation_id: &str,
    bot_id: &str,
    reason: ExitReason,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    let exit = Exit {
        reason,
        actor: Actor::System,
        at,
        assign_to: None,
    };
    for _ in 0..TURN_ATTEMPTS {
        // The latest state: the turn's own claim moved it.
        let Some(state) = store.conversation_bot(tenant, conversation_id).await? else {
            return Ok(());
        };
        if state.active.as_ref().is_none_or(|a| a.bot_id != bot_id) {
            return Ok(());
        }
        if store
            .stop_bot(tenant, conversation_id, &state, &exit)
            .await?
        {
            return Ok(());
        }
    }
    Ok(())
}
