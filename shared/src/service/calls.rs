//! Video calls (SPEC §12): starting a call from a conversation (two role tokens, the
//! customer's link sent through the one send path, a one-time schedule that marks it
//! missed at its expiry), its state, and the signaling: `$connect` with a role token,
//! `signal` frames relayed to the other party through the management API, `$disconnect`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::Error;
use crate::domain::actor::Actor;
use crate::domain::auth::Principal;
use crate::domain::booking::{is_token, new_token, template_with_link, token_hash};
use crate::domain::call::{
    Call, CallStatus, Role, call_id, error_frame, expires_at, is_call_id, notice, parse_frame,
    relayed,
};
use crate::domain::channel::ChannelType;
use crate::domain::ids::{ConversationId, TenantId};
use crate::domain::outbound::{IdempotencyKey, SendMessage};
use crate::domain::schedule::ScheduleInput;
use crate::domain::template::TemplateCall;
use crate::domain::time::rfc3339;
use crate::ports::{
    CallConnection, CallParty, CallStore, ChannelDirectory, ChannelSender, ConversationReader,
    CustomerAliases, JoinOutcome, MediaStore, ObjectStore, OutboundStore, Schedules,
    SettingsReader, Signaling, TemplateStore,
};
use crate::service::outbound::{Outbound, SendRequest, link_refusal};

/// `POST /conversations/{id}/calls`' answer.
#[derive(Debug, Clone, Serialize)]
pub struct CallCreated {
    /// `ca_…`.
    pub id: String,
    /// The agent's page (`…/call/{agent token}`).
    pub agent_url: String,
    /// The customer's page, sent to the customer.
    pub customer_url: String,
    /// The WebSocket API (`{signaling_url}?token={role token}`).
    pub signaling_url: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
    /// The message carrying the customer's link.
    pub message_id: Option<String>,
}

/// `POST /conversations/{id}/calls` body (optional).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// The WhatsApp template carrying the link outside the customer service window (a
    /// parameter `{{url}}` is the link, or it is added last).
    #[serde(default)]
    pub template: Option<TemplateCall>,
}

/// Where the call pages and the signaling live.
#[derive(Debug, Clone, Copy)]
pub struct Links<'a> {
    /// `PUBLIC_BASE_URL`.
    pub public_base_url: &'a str,
    /// `SIGNALING_URL`.
    pub signaling_url: &'a str,
}

fn call_not_found() -> Error {
    Error::NotFound { what: "call" }
}

/// `POST /conversations/{id}/calls`: a call room with two single-use role tokens (256
/// random bits each, stored hashed), the customer's link sent through the send path as the
/// agent (free-form inside the window; on WhatsApp outside it the given template), and a
/// one-time schedule at `expires_at` that marks a call nobody joined `missed`.
///
/// # Errors
/// 404 `conversation`; 422 `invalid_body`, `template_required` and the send path's own
/// refusals (`unknown_template`, `template_parameters`, `window_closed`,
/// `recipient_without_phone`, …), checked before anything is written; 502 when Scheduler
/// or the provider fails (a link refused once the call exists marks it missed).
#[allow(clippy::too_many_arguments)]
pub async fn start<S, Z, OS, D, C, O>(
    store: &S,
    schedules: &Z,
    outbound: &Outbound<OS, D, C, O>,
    principal: &Principal,
    conversation: &str,
    body: Value,
    links: Links<'_>,
    now: DateTime<Utc>,
) -> Result<CallCreated, Error>
where
    S: CallStore + SettingsReader,
    Z: Schedules,
    OS: OutboundStore + ConversationReader + MediaStore + TemplateStore + CustomerAliases,
    D: ChannelDirectory,
    C: ChannelSender,
    O: ObjectStore,
{
    let request: CallRequest = if body.is_null() {
        CallRequest::default()
    } else {
        crate::http::from_json(body)?
    };
    let tenant = &principal.tenant_id;
    let conversation = ConversationId::parse(conversation).map_err(|_| Error::NotFound {
        what: "conversation",
    })?;
    let probe = SendMessage::plain_text("-".into());
    let ((state, channel), settings) = futures::try_join!(
        outbound.check(tenant, &conversation, &probe),
        store.settings(tenant)
    )?;
    let window = state
        .policy
        .window_at(state.last_inbound_at, state.replies_since_inbound, now);
    let as_template = channel == ChannelType::Whatsapp && !window.open;
    if as_template && request.template.is_none() {
        return Err(Error::validation(
            "template_required",
            "the customer service window is closed: give a template to carry the link (a parameter \"{{url}}\", or the link is added last)",
        ));
    }
    let id = call_id();
    let (agent_token, customer_token) = (new_token()?, new_token()?);
    let base = links.public_base_url.trim_end_matches('/');
    let customer_url = format!("{base}/call/{customer_token}");
    let message = match (&request.template, as_template) {
        (Some(call), true) => SendMessage::of_template(template_with_link(call, &customer_url)),
        _ => SendMessage::plain_text(match &settings.business_name {
            Some(name) => format!("{name}: join the video call here: {customer_url}"),
            None => format!("Join the video call here: {customer_url}"),
        }),
    };
    let actor = Actor::agent(principal.agent_id.as_str());
    // The link must be able to go (template, recipient, window, quota) before the call,
    // its tokens and its schedule are made: a refusal writes nothing.
    outbound
        .preflight(&actor, tenant, &conversation, &message, now)
        .await?;
    let expires = expires_at(now);
    let call = Call {
        id: id.clone(),
        conversation_id: conversation.as_str().to_owned(),
        status: CallStatus::Ringing,
        created_by: principal.agent_id.as_str().to_owned(),
        created_at: rfc3339(&now),
        expires_at: rfc3339(&expires),
        started_at: None,
        ended_at: None,
        duration_s: None,
        message_id: None,
    };
    store
        .create_call(
            tenant,
            &call,
            &[
                (token_hash(&agent_token), Role::Agent),
                (token_hash(&customer_token), Role::Customer),
            ],
        )
        .await?;
    let input = ScheduleInput::CallExpiry {
        tenant_id: tenant.to_string(),
        call_id: id.clone(),
    };
    schedules.create_schedule(&id, expires, &input).await?;
    let key = IdempotencyKey::parse(&format!("call-{id}")).ok();
    let sent = outbound
        .send_settled(
            &actor,
            tenant,
            &conversation,
            SendRequest::new(message, key),
            now,
        )
        .await;
    if link_refusal(&sent).is_some() {
        // The link never reached the customer (refused at the send after all, or by the
        // provider): nobody will join.
        store.miss_call(tenant, &id, now).await?;
    }
    let messages = sent?;
    let message_id = messages.first().map(|m| m.id.clone());
    if let Some(m) = &message_id {
        store.set_call_message(tenant, &id, m).await?;
    }
    info!(tenant = %tenant, call_id = %id, "call started");
    Ok(CallCreated {
        id,
        agent_url: format!("{base}/call/{agent_token}"),
        customer_url,
        signaling_url: links.signaling_url.to_owned(),
        expires_at: rfc3339(&expires),
        message_id,
    })
}

/// `GET /calls/{id}`.
///
/// # Errors
/// 404 for an unknown call (another tenant's included).
pub async fn get(store: &impl CallStore, principal: &Principal, id: &str) -> Result<Call, Error> {
    if !is_call_id(id) {
        return Err(call_not_found());
    }
    store
        .call_room(&principal.tenant_id, id)
        .await?
        .map(|r| r.call)
        .ok_or_else(call_not_found)
}

/// The call page's facts for a token: the call and the party; `None` for an unknown token.
///
/// # Errors
/// `Internal` when the store fails.
pub async fn page(store: &impl CallStore, token: &str) -> Result<Option<(Call, Role)>, Error> {
    if !is_token(token) {
        return Ok(None);
    }
    let Some(party) = store.call_token(&token_hash(token)).await? else {
        return Ok(None);
    };
    let Ok(tenant) = TenantId::parse(&party.tenant_id) else {
        return Ok(None);
    };
    Ok(store
        .call_room(&tenant, &party.call_id)
        .await?
        .map(|r| (r.call, party.role)))
}

/// `$connect` with `?token=`: `true` when the connection may stay (the role's token, the
/// call ringing or active, the role not connected yet); the other party, when there, is
/// told `peer_joined`.
///
/// # Errors
/// `Internal` when the store fails.
pub async fn connect(
    store: &impl CallStore,
    signaling: &impl Signaling,
    token: Option<&str>,
    connection_id: &str,
    connected_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let Some(token) = token.filter(|t| is_token(t)) else {
        return Ok(false);
    };
    let Some(party) = store.call_token(&token_hash(token)).await? else {
        return Ok(false);
    };
    match store.join(&party, connection_id, connected_at, now).await? {
        JoinOutcome::Refused => Ok(false),
        JoinOutcome::Joined { peer, started } => {
            if let Some(peer) = peer {
                // The new connection cannot be posted to before `$connect` returns (API
                // Gateway): it learns of its peer from the peer's offer.
                tell(signaling, &peer, &notice("peer_joined")).await;
            }
            info!(tenant = %party.tenant_id, call_id = %party.call_id, role = party.role.as_str(), started, "call party connected");
            Ok(true)
        }
    }
}

async fn tell(signaling: &impl Signaling, connection: &str, data: &str) -> bool {
    post(signaling, connection, data).await == Posted::Delivered
}

/// What became of a post to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Posted {
    Delivered,
    /// `GoneException`: the connection is closed.
    Gone,
    /// Any other failure (throttled, the management API down): the connection may well be
    /// there still.
    Failed,
}

async fn post(signaling: &impl Signaling, connection: &str, data: &str) -> Posted {
    match signaling.post(connection, data).await {
        Ok(true) => Posted::Delivered,
        Ok(false) => Posted::Gone,
        Err(e) => {
            warn!(error = %e, "signaling post failed");
            Posted::Failed
        }
    }
}

/// Whether a frame is the call page's keep-alive, `{"action": "ping"}`: it only keeps the
/// connection from API Gateway's 10-minute idle timeout (WebSocket API quotas) and costs
/// no read.
pub fn is_ping(body: &str) -> bool {
    body.len() <= 64
        && serde_json::from_str::<Value>(body)
            .is_ok_and(|v| v.as_object().is_some_and(|o| o.len() == 1) && v["action"] == "ping")
}

/// A `signal` frame from `connection_id`: relayed to the other party (`offer`, `answer`,
/// `candidate`, `bye`); `bye` then ends the call. An unreadable or oversize frame is
/// answered to the sender with an error frame; a peer that is gone (`GoneException`) is
/// answered `peer_left` and the call ends (unless it connected within the last 10 s: its
/// `$connect` may still be running); a post that fails otherwise (throttled) is
/// answered `not_relayed` and the call goes on. One read per relayed frame (the sender's
/// connection, which names its peer's) and the management API's post; the call is read
/// only while the sender has no peer on record (alone, or the peer's join still on its
/// way).
///
/// # Errors
/// `Internal` when the store fails.
pub async fn signal(
    store: &impl CallStore,
    signaling: &impl Signaling,
    connection_id: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let signal = match parse_frame(body) {
        Ok(s) => s,
        Err(e) => {
            tell(
                signaling,
                connection_id,
                &error_frame(e.code(), &e.to_string()),
            )
            .await;
            return Ok(());
        }
    };
    let Some(CallConnection { party, peer, .. }) = store.connection(connection_id).await? else {
        tell(
            signaling,
            connection_id,
            &error_frame("not_in_a_call", "this connection is in no call"),
        )
        .await;
        return Ok(());
    };
    let peer = match peer {
        Some(peer) => Some(peer),
        None => {
            let tenant = TenantId::parse(&party.tenant_id)
                .map_err(|_| Error::Internal("a connection of no tenant".into()))?;
            let Some(room) = store.call_room(&tenant, &party.call_id).await? else {
                return Ok(());
            };
            room.connection(party.role.other()).map(str::to_owned)
        }
    };
    let posted = match &peer {
        Some(peer) => post(signaling, peer, &relayed(&signal, party.role)).await,
        // Alone so far: the peer gets an offer once it joins (its `peer_joined` asks).
        None => Posted::Delivered,
    };
    if signal.kind == "bye" {
        leave(store, signaling, &party, connection_id, now).await?;
        return Ok(());
    }
    let posted = match (posted, &peer) {
        (Posted::Gone, Some(peer)) if settling(store, peer, now).await? => Posted::Failed,
        (posted, _) => posted,
    };
    match (posted, peer) {
        (Posted::Delivered, _) | (_, None) => {}
        (Posted::Gone, Some(peer)) => {
            // Gone: the peer left without a close we saw. The call ends first, so whoever
            // hears `peer_left` finds it ended.
            let gone = CallParty {
                role: party.role.other(),
                ..party.clone()
            };
            store.leave(&gone, &peer, now).await?;
            tell(signaling, connection_id, &notice("peer_left")).await;
        }
        (Posted::Failed, Some(_)) => {
            // Not relayed, but the peer is not known to be gone: the call goes on and the
            // sender may send it again.
            tell(
                signaling,
                connection_id,
                &error_frame(
                    "not_relayed",
                    "the frame could not be relayed: send it again",
                ),
            )
            .await;
        }
    }
    Ok(())
}

/// How long after `connectedAt` a connection may still be inside its `$connect`: API
/// Gateway answers `GoneException` for a connection whose `$connect` has not returned yet,
/// which is not a party that left (its `$disconnect` still comes if it really goes).
const SETTLING: chrono::Duration = chrono::Duration::seconds(10);

/// Whether `peer` connected so recently that `GoneException` may only mean its `$connect`
/// is still running (one read, on the failure path only).
async fn settling(store: &impl CallStore, peer: &str, now: DateTime<Utc>) -> Result<bool, Error> {
    Ok(store
        .connection(peer)
        .await?
        .and_then(|c| c.connected_at)
        .is_some_and(|at| now - at < SETTLING))
}

/// `$disconnect`: the party left; an active call ends and the other party is told
/// `peer_left`.
///
/// # Errors
/// `Internal` when the store fails.
pub async fn disconnect(
    store: &impl CallStore,
    signaling: &impl Signaling,
    connection_id: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let Some(connection) = store.connection(connection_id).await? else {
        return Ok(());
    };
    leave(store, signaling, &connection.party, connection_id, now).await
}

async fn leave(
    store: &impl CallStore,
    signaling: &impl Signaling,
    party: &CallParty,
    connection_id: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let tenant = TenantId::parse(&party.tenant_id)
        .map_err(|_| Error::Internal("a connection of no tenant".into()))?;
    let peer = store
        .call_room(&tenant, &party.call_id)
        .await?
        .and_then(|r| r.connection(party.role.other()).map(str::to_owned));
    let ended = store.leave(party, connection_id, now).await?;
    if let Some(peer) = peer {
        tell(signaling, &peer, &notice("peer_left")).await;
    }
    if let Some(call) = ended {
        info!(tenant = %party.tenant_id, call_id = %call.id, duration_s = call.duration_s, "call ended");
    }
    Ok(())
}

/// The call's schedule fired: a call still ringing is missed.
///
/// # Errors
/// `Internal` when the store fails.
pub async fn expire(
    store: &impl CallStore,
    tenant: &TenantId,
    call_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let missed = store.miss_call(tenant, call_id, now).await?;
    if missed {
        info!(tenant = %tenant, call_id, "call missed");
    }
    Ok(missed)
}

#[cfg(test)]
mod tests {
    use super::is_ping;

    #[test]
    fn only_the_bare_ping_is_a_keep_alive() {
        assert!(is_ping(r#"{"action":"ping"}"#));
        assert!(is_ping(r#"{ "action" : "ping" }"#));
        for other in [
            r#"{"action":"ping","type":"offer"}"#,
            r#"{"action":"signal","type":"ping"}"#,
            "ping",
            "",
            r#"{"action":"PING"}"#,
        ] {
            assert!(!is_ping(other), "{other}");
        }
    }
}
