//! Calendar, bookings and booking invitations (SPEC §10): slots created without overlaps,
//! bookings with exactly one winner per slot, cancels that free the slot, invitation links,
//! and the public page's reads and booking. Every message to the customer (confirmations,
//! cancellations, invitation links) goes through the one send path; when the channel's
//! rules keep one from going out, the conversation gets a system message saying so.

use crate::domain::zone::Zone;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::Error;
use crate::domain::actor::Actor;
use crate::domain::auth::Principal;
use crate::domain::booking::{
    Booking, BookingRequest, BookingStatus, BookingView, Invitation, InvitationRequest,
    InvitationState, booking_id, cancellation_text, confirmation_text, describe, invitation_id,
    invitation_text, is_booking_id, is_token, new_token, parse_note, template_with_link,
    token_hash,
};
use crate::domain::calendar::{
    MAX_DAYS_AHEAD, Slot, SlotRequest, SlotTime, StoredSlot, days_after, expand, first_overlap,
    is_slot_id, parse_filter, parse_filter_end, slot_id, zoned,
};
use crate::domain::channel::ChannelType;
use crate::domain::conversation::conversation_of_customer;
use crate::domain::customer::is_customer_id;
use crate::domain::ids::{ConversationId, TenantId};
use crate::domain::message::{DeliveryError, DeliveryStatus};
use crate::domain::outbound::{IdempotencyKey, OutboundKind, SendMessage};
use crate::domain::page::{Page, PageRequest};
use crate::domain::settings::TenantSettings;
use crate::domain::system::SystemMessage;
use crate::domain::template::TemplateCall;
use crate::domain::time::{parse_rfc3339, rfc3339};
use crate::ports::{
    BookOutcome, BookingStore, ChannelDirectory, ChannelSender, ConversationReader,
    CustomerAliases, CustomerStore, InboundStore, MediaStore, ObjectStore, OutboundStore,
    SettingsReader, SlotDeletion, TemplateStore,
};
use crate::service::outbound::{Outbound, SendRequest};

/// How far back a booking list reaches without `from`, in days.
const BOOKINGS_DAYS_BACK: i64 = 366;

/// How many times a slot creation reads and checks again when another creation moved the
/// calendar meanwhile.
const CREATE_ATTEMPTS: u32 = 12;

/// What became of a message to the customer (a confirmation, a cancellation notice, an
/// invitation link): sent (with the message's id and status) or not (with why; the
/// conversation has a system message saying so).
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    /// The message, when it was accepted.
    pub message_id: Option<String>,
    /// Its status (`sent`, `failed`, `pending`), when accepted.
    pub status: Option<DeliveryStatus>,
    /// Why it could not go out.
    pub error: Option<NoticeError>,
}

/// Why a message to the customer could not go out.
#[derive(Debug, Clone, Serialize)]
pub struct NoticeError {
    /// The send path's code (`template_required`, `window_closed`, …) or the provider's.
    pub code: String,
    /// What happened.
    pub message: String,
}

/// A booking as `DELETE /bookings/{id}` answers it: the booking and the notice to the
/// customer.
#[derive(Debug, Clone, Serialize)]
pub struct BookingCancelled {
    /// The booking.
    #[serde(flatten)]
    pub booking: BookingView,
    /// The cancellation notice (all null when it was cancelled before).
    pub notification: Notice,
}

/// A booking as `POST /bookings` answers it: the booking and its confirmation.
#[derive(Debug, Clone, Serialize)]
pub struct BookingCreated {
    /// The booking.
    #[serde(flatten)]
    pub booking: BookingView,
    /// The confirmation message.
    pub confirmation: Notice,
}

/// `POST /customers/{id}/booking-invitations`' answer.
#[derive(Debug, Clone, Serialize)]
pub struct InvitationCreated {
    /// `bi_…`.
    pub id: String,
    /// The link `…/b/{token}` (the token is shown only here).
    pub url: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
    /// The message carrying the link.
    pub message_id: Option<String>,
    /// Its status.
    pub message_status: Option<DeliveryStatus>,
    /// Whether the link went as a template (the window was closed).
    pub sent_as_template: bool,
}

fn slot_not_found() -> Error {
    Error::NotFound { what: "slot" }
}

fn customer_not_found() -> Error {
    Error::NotFound { what: "customer" }
}

/// `POST /calendar/slots`: the slots the body makes, in the tenant's zone, after checking
/// them against each other and the calendar (no overlaps). All or none are written.
///
/// # Errors
/// The 422s of [`expand`], and `overlapping_slots` naming the slot it overlaps; 409
/// `conflict` when other creations kept moving the calendar.
pub async fn create_slots(
    store: &(impl BookingStore + SettingsReader),
    principal: &Principal,
    body: Value,
    now: DateTime<Utc>,
) -> Result<Vec<Slot>, Error> {
    let request: SlotRequest = crate::http::from_json(body)?;
    let tenant = &principal.tenant_id;
    let settings = store.settings(tenant).await?;
    let zone = settings.time_zone;
    let times = expand(&request, zone, now)?;
    let created_at = rfc3339(&now);
    let slots: Vec<StoredSlot> = times
        .iter()
        .map(|time| StoredSlot {
            id: slot_id(time.start),
            time: *time,
            booking_id: None,
            created_by: principal.agent_id.as_str().to_owned(),
            created_at: created_at.clone(),
        })
        .collect();
    let (Some(first), Some(last)) = (times.first(), times.last()) else {
        return Ok(Vec::new());
    };
    for attempt in 0..CREATE_ATTEMPTS {
        let (version, existing) = store
            .calendar_snapshot(tenant, first.start, last.end)
            .await?;
        let existing_times: Vec<SlotTime> = existing.iter().map(|s| s.time).collect();
        if let Some((new, old)) = first_overlap(&times, &existing_times) {
            let id = existing
                .iter()
                .find(|s| s.time == *old)
                .map(|s| s.id.as_str())
                .unwrap_or_default();
            return Err(Error::validation(
                "overlapping_slots",
                format!(
                    "the slot at {} overlaps slot {id} ({} to {})",
                    zoned(new.start, zone),
                    zoned(old.start, zone),
                    zoned(old.end, zone)
                ),
            ));
        }
        if store.create_slots(tenant, &slots, version).await? {
            info!(tenant = %tenant, count = slots.len(), "slots created");
            return Ok(slots.iter().map(|s| s.view(zone)).collect());
        }
        // Another creation moved the calendar: wait a little (jittered, growing) and check
        // again against what it made.
        let jitter = u64::from(ulid::Ulid::new().random() as u16 % 20);
        tokio::time::sleep(std::time::Duration::from_millis(
            10 * u64::from(attempt + 1) + jitter,
        ))
        .await;
    }
    Err(Error::conflict(
        "conflict",
        "the calendar kept changing while these slots were checked; try again",
    ))
}

/// The `from`/`to` of a list: RFC 3339 or local dates; `from` defaults to `default_from`,
/// `to` to `default_days` after `from`.
fn range(
    from: Option<&str>,
    to: Option<&str>,
    zone: Zone,
    default_from: DateTime<Utc>,
    default_days: i64,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Error> {
    let from = match from.filter(|f| !f.is_empty()) {
        Some(f) => parse_filter(f, zone, "from")?,
        None => default_from,
    };
    let to = match to.filter(|t| !t.is_empty()) {
        Some(t) => parse_filter_end(t, zone, "to")?,
        None => days_after(from, default_days),
    };
    if to <= from {
        return Err(Error::bad_request(
            "invalid_filter",
            "to must be after from",
        ));
    }
    Ok((from, to))
}

/// `GET /calendar/slots?from=&to=&available=`: slots starting in `[from, to)` (default:
/// from now), earliest first, in the tenant's zone.
///
/// # Errors
/// 400 `invalid_filter` (times, or `available` not `true`/`false`), `invalid_cursor`.
pub async fn list_slots(
    store: &(impl BookingStore + SettingsReader),
    principal: &Principal,
    filters: (Option<&str>, Option<&str>, Option<&str>),
    page: &PageRequest,
    now: DateTime<Utc>,
) -> Result<Page<Slot>, Error> {
    let tenant = &principal.tenant_id;
    let available = match filters.2.filter(|a| !a.is_empty()) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(Error::bad_request(
                "invalid_filter",
                "available must be true or false",
            ));
        }
    };
    let settings = store.settings(tenant).await?;
    let zone = settings.time_zone;
    let (from, to) = range(filters.0, filters.1, zone, now, MAX_DAYS_AHEAD + 1)?;
    let page = store.slots(tenant, from, to, available, page).await?;
    Ok(Page {
        items: page.items.iter().map(|s| s.view(zone)).collect(),
        next_cursor: page.next_cursor,
    })
}

/// `DELETE /calendar/slots/{id}`: deletes a free slot.
///
/// # Errors
/// 404 for an unknown slot; 409 `slot_booked` while a booking holds it.
pub async fn delete_slot(
    store: &impl BookingStore,
    principal: &Principal,
    id: &str,
) -> Result<(), Error> {
    if !is_slot_id(id) {
        return Err(slot_not_found());
    }
    match store.delete_slot(&principal.tenant_id, id).await? {
        SlotDeletion::Deleted => Ok(()),
        SlotDeletion::Booked => Err(Error::conflict(
            "slot_booked",
            "a booking holds this slot: cancel the booking first",
        )),
        SlotDeletion::Missing => Err(slot_not_found()),
    }
}

/// The ports a booking's use cases need besides the send service.
pub trait BookingPorts: BookingStore + SettingsReader + InboundStore {}
impl<T: BookingStore + SettingsReader + InboundStore> BookingPorts for T {}

/// `POST /bookings`: books a slot for a customer (201), confirms it to the customer.
///
/// # Errors
/// 422 `invalid_body`, `invalid_note`, `slot_in_past`; 404 `customer` / `slot`; 409
/// `slot_taken` when another booking holds the slot (however many ask at once, one wins).
pub async fn book<S, OS, D, C, O>(
    store: &S,
    outbound: &Outbound<OS, D, C, O>,
    principal: &Principal,
    body: Value,
    now: DateTime<Utc>,
) -> Result<BookingCreated, Error>
where
    S: BookingPorts,
    OS: OutboundStore + ConversationReader + MediaStore + TemplateStore + CustomerAliases,
    D: ChannelDirectory,
    C: ChannelSender,
    O: ObjectStore,
{
    let request: BookingRequest = crate::http::from_json(body)?;
    let note = parse_note(request.note.as_deref())?;
    let tenant = &principal.tenant_id;
    if !is_customer_id(&request.customer_id) {
        return Err(customer_not_found());
    }
    if !is_slot_id(&request.slot_id) {
        return Err(slot_not_found());
    }
    let inputs = store
        .booking_inputs(tenant, &request.slot_id, &request.customer_id)
        .await?;
    if !inputs.customer_exists {
        return Err(customer_not_found());
    }
    let slot = inputs.slot.ok_or_else(slot_not_found)?;
    let actor = Actor::agent(principal.agent_id.as_str());
    let booking = new_booking(&slot, &request.customer_id, note, actor.clone(), None, now)?;
    match write_booking(store, tenant, &booking, &inputs.settings, None, now).await? {
        BookOutcome::Booked => {}
        BookOutcome::SlotTaken => return Err(slot_taken()),
        BookOutcome::SlotGone => return Err(slot_not_found()),
        BookOutcome::InvitationSpent => {
            return Err(Error::Internal(
                "an agent's booking has no invitation".into(),
            ));
        }
    }
    let zone = inputs.settings.time_zone;
    let note = Note {
        purpose: "booking",
        label: "Booking confirmation",
        text: confirmation_text(inputs.settings.business_name.as_deref(), &slot.time, zone),
        template: request.template.as_ref(),
        when: describe(&slot.time, zone),
    };
    let confirmation = notify(store, outbound, &actor, tenant, &booking, note, now).await?;
    Ok(BookingCreated {
        booking: booking.view(inputs.settings.time_zone),
        confirmation,
    })
}

fn slot_taken() -> Error {
    Error::conflict("slot_taken", "this slot is already booked: choose another")
}

fn new_booking(
    slot: &StoredSlot,
    customer_id: &str,
    note: Option<String>,
    booked_by: Actor,
    invitation_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<Booking, Error> {
    if slot.time.start <= now {
        return Err(Error::validation(
            "slot_in_past",
            "this slot has already started",
        ));
    }
    let conversation_id = conversation_of_customer(customer_id).ok_or_else(customer_not_found)?;
    Ok(Booking {
        id: booking_id(),
        slot_id: slot.id.clone(),
        customer_id: customer_id.to_owned(),
        conversation_id,
        start: rfc3339(&slot.time.start),
        end: rfc3339(&slot.time.end),
        status: BookingStatus::Confirmed,
        note,
        booked_by,
        invitation_id,
        created_at: rfc3339(&now),
        cancelled_at: None,
        cancelled_by: None,
    })
}

/// The booking's transaction, with its `booking_created` system message.
async fn write_booking(
    store: &impl BookingStore,
    tenant: &TenantId,
    booking: &Booking,
    settings: &TenantSettings,
    invitation: Option<&str>,
    now: DateTime<Utc>,
) -> Result<BookOutcome, Error> {
    let time = booking
        .time()
        .ok_or_else(|| Error::Internal("a new booking without times".into()))?;
    let note = SystemMessage::booking_created(&time, settings.time_zone, booking.booked_by.clone());
    let outcome = store.book(tenant, booking, &note, invitation, now).await?;
    if outcome == BookOutcome::Booked {
        info!(tenant = %tenant, booking_id = %booking.id, slot_id = %booking.slot_id, "slot booked");
    }
    Ok(outcome)
}

/// Sends `text` to the booking's customer through the send path as `actor`, with an
/// idempotency key of `purpose` and the booking (a retried request sends once). When the
/// channel's rules refuse it, the conversation gets a `delivery_failed` system message.
async fn notify<S, OS, D, C, O>(
    store: &S,
    outbound: &Outbound<OS, D, C, O>,
    actor: &Actor,
    tenant: &TenantId,
    booking: &Booking,
    note: Note<'_>,
    now: DateTime<Utc>,
) -> Result<Notice, Error>
where
    S: InboundStore,
    OS: OutboundStore + ConversationReader + MediaStore + TemplateStore + CustomerAliases,
    D: ChannelDirectory,
    C: ChannelSender,
    O: ObjectStore,
{
    let conversation = ConversationId::parse(&booking.conversation_id)
        .map_err(|_| Error::Internal("a booking without a conversation".into()))?;
    let purpose = note.purpose;
    let key = IdempotencyKey::parse(&format!("{purpose}-{}", booking.id)).ok();
    let request = SendRequest::new(SendMessage::plain_text(note.text), key);
    let mut sent = outbound
        .send_settled(actor, tenant, &conversation, request, now)
        .await;
    // WhatsApp outside the window: the template the agent gave, if any.
    if let (Err(e), Some(call)) = (&sent, note.template) {
        if e.code() == "template_required" {
            let key = IdempotencyKey::parse(&format!("{purpose}-template-{}", booking.id)).ok();
            let message = SendMessage::of_template(with_time(call, &note.when));
            sent = outbound
                .send_settled(
                    actor,
                    tenant,
                    &conversation,
                    SendRequest::new(message, key),
                    now,
                )
                .await;
        }
    }
    let label = note.label;
    match sent {
        Ok(messages) => {
            let first = messages.first();
            Ok(Notice {
                message_id: first.map(|m| m.id.clone()),
                status: first.map(|m| m.status),
                error: first.and_then(|m| m.error.as_ref()).map(|e| NoticeError {
                    code: e.code.clone(),
                    message: e.reason.clone(),
                }),
            })
        }
        Err(e) => {
            // The booking is written: its message failing never fails the request.
            let client = e.is_client_error();
            let message = if client {
                e.to_string()
            } else {
                "the message could not be sent now; tell the customer another way".to_owned()
            };
            if client {
                let error = DeliveryError {
                    code: e.code().to_owned(),
                    reason: format!("{label} not sent ({e})"),
                    hint: "Tell the customer another way, or send it once they write again".into(),
                };
                let note = SystemMessage::delivery_failed(&error);
                if let Err(failed) = store
                    .record_system_message(tenant, conversation.as_str(), &note, now)
                    .await
                {
                    warn!(tenant = %tenant, booking_id = %booking.id, error = %failed, "the system message of an unsent booking message was not written");
                }
            }
            warn!(tenant = %tenant, booking_id = %booking.id, code = e.code(), cause = %e, "a booking message could not go out");
            Ok(Notice {
                message_id: None,
                status: None,
                error: Some(NoticeError {
                    code: e.code().to_owned(),
                    message,
                }),
            })
        }
    }
}

/// A message about a booking to the customer.
struct Note<'a> {
    /// The idempotency key's prefix (`booking`, `booking-cancel`).
    purpose: &'static str,
    /// What the agent reads when it does not go out (`Booking confirmation`).
    label: &'static str,
    /// The text.
    text: String,
    /// The WhatsApp template for outside the window, if the agent gave one.
    template: Option<&'a TemplateCall>,
    /// The booking's time as the customer reads it (a template's `{{time}}`).
    when: String,
}

/// The placeholder a confirmation template's parameter may hold for the booking's time.
pub const TIME_PLACEHOLDER: &str = "{{time}}";

/// A template's parameters with `{{time}}` replaced by the booking's time.
fn with_time(call: &TemplateCall, when: &str) -> TemplateCall {
    let mut call = call.clone();
    for p in &mut call.parameters {
        if p == TIME_PLACEHOLDER {
            when.clone_into(p);
        }
    }
    call
}

/// `DELETE /bookings/{id}`: cancels a booking and frees its slot (one transaction), tells
/// the customer. Cancelling a cancelled booking answers it as it is.
///
/// # Errors
/// 404 for an unknown booking; 409 `booking_started` once its time has begun.
pub async fn cancel<S, OS, D, C, O>(
    store: &S,
    outbound: &Outbound<OS, D, C, O>,
    principal: &Principal,
    id: &str,
    now: DateTime<Utc>,
) -> Result<BookingCancelled, Error>
where
    S: BookingPorts,
    OS: OutboundStore + ConversationReader + MediaStore + TemplateStore + CustomerAliases,
    D: ChannelDirectory,
    C: ChannelSender,
    O: ObjectStore,
{
    let not_found = || Error::NotFound { what: "booking" };
    if !is_booking_id(id) {
        return Err(not_found());
    }
    let tenant = &principal.tenant_id;
    let (booking, settings) =
        futures::try_join!(store.get_booking(tenant, id), store.settings(tenant))?;
    let booking = booking.ok_or_else(not_found)?;
    let zone = settings.time_zone;
    let time = booking
        .time()
        .ok_or_else(|| Error::Internal("a stored booking without times".into()))?;
    let unchanged = |booking: Booking| BookingCancelled {
        booking: booking.view(zone),
        notification: Notice {
            message_id: None,
            status: None,
            error: None,
        },
    };
    if booking.status == BookingStatus::Cancelled {
        return Ok(unchanged(booking));
    }
    if time.start <= now {
        return Err(Error::conflict(
            "booking_started",
            "this booking's time has begun: it can no longer be cancelled",
        ));
    }
    let actor = Actor::agent(principal.agent_id.as_str());
    let after = Booking {
        status: BookingStatus::Cancelled,
        cancelled_at: Some(rfc3339(&now)),
        cancelled_by: Some(actor.clone()),
        ..booking
    };
    let note = SystemMessage::booking_cancelled(&time, zone, actor.clone());
    if !store.cancel_booking(tenant, &after, &note, now).await? {
        // Cancelled meanwhile by another request: answer it as it is now.
        let now_stored = store.get_booking(tenant, id).await?.ok_or_else(not_found)?;
        return Ok(unchanged(now_stored));
    }
    info!(tenant = %tenant, booking_id = id, "booking cancelled");
    let note = Note {
        purpose: "booking-cancel",
        label: "Booking cancellation notice",
        text: cancellation_text(settings.business_name.as_deref(), &time, zone),
        template: None,
        when: describe(&time, zone),
    };
    let notice = notify(store, outbound, &actor, tenant, &after, note, now).await?;
    Ok(BookingCancelled {
        booking: after.view(zone),
        notification: notice,
    })
}

/// `GET /bookings?from=&to=` and `GET /customers/{id}/bookings`: bookings starting in
/// `[from, to)` (default: from a year ago, with no end short of the furthest slot), earliest
/// first, in the tenant's zone.
///
/// # Errors
/// 404 `customer` for an unknown customer (another tenant's included); 400
/// `invalid_filter`, `invalid_cursor`.
pub async fn list(
    store: &(impl BookingStore + SettingsReader + CustomerStore),
    principal: &Principal,
    customer: Option<&str>,
    filters: (Option<&str>, Option<&str>),
    page: &PageRequest,
    now: DateTime<Utc>,
) -> Result<Page<BookingView>, Error> {
    if customer.is_some_and(|c| !is_customer_id(c)) {
        return Err(customer_not_found());
    }
    let tenant = &principal.tenant_id;
    let settings = store.settings(tenant).await?;
    let zone = settings.time_zone;
    // By default every booking from a year ago on (slots start at most MAX_DAYS_AHEAD out).
    let back = Duration::days(BOOKINGS_DAYS_BACK);
    let (from, to) = range(
        filters.0,
        filters.1,
        zone,
        now - back,
        BOOKINGS_DAYS_BACK + MAX_DAYS_AHEAD + 1,
    )?;
    let page = store
        .list_bookings(tenant, customer, from, to, page)
        .await?;
    // An empty page of a customer's bookings: 404 when there is no such customer (here).
    if let Some(id) = customer.filter(|_| page.items.is_empty() && page.next_cursor.is_none()) {
        if store.get_customer(tenant, id).await?.is_none() {
            return Err(customer_not_found());
        }
    }
    Ok(Page {
        items: page.items.into_iter().map(|b| b.view(zone)).collect(),
        next_cursor: page.next_cursor,
    })
}

/// `POST /customers/{id}/booking-invitations`: a single-use link to the booking page, sent
/// in the customer's conversation (free-form inside the window; on WhatsApp outside it, the
/// given template with the link as a parameter). Nothing is kept when the link cannot be
/// sent.
///
/// # Errors
/// 404 `customer`; 422 `invalid_body`, `invalid_expiry`, `invalid_range`,
/// `template_required` (WhatsApp outside the window without a template), and the send's
/// own errors (window, template).
pub async fn invite<S, OS, D, C, O>(
    store: &S,
    outbound: &Outbound<OS, D, C, O>,
    principal: &Principal,
    customer_id: &str,
    body: Value,
    public_base_url: &str,
    now: DateTime<Utc>,
) -> Result<InvitationCreated, Error>
where
    S: BookingPorts,
    OS: OutboundStore + ConversationReader + MediaStore + TemplateStore + CustomerAliases,
    D: ChannelDirectory,
    C: ChannelSender,
    O: ObjectStore,
{
    let request: InvitationRequest = if body.is_null() {
        InvitationRequest::default()
    } else {
        crate::http::from_json(body)?
    };
    let tenant = &principal.tenant_id;
    let conversation = conversation_of_customer(customer_id)
        .and_then(|c| ConversationId::parse(&c).ok())
        .ok_or_else(customer_not_found)?;
    let settings = store.settings(tenant).await?;
    let terms = request.terms(settings.time_zone, now)?;
    let token = new_token()?;
    let url = format!("{}/b/{token}", public_base_url.trim_end_matches('/'));
    let link_text = SendMessage::plain_text(invitation_text(
        settings.business_name.as_deref(),
        &url,
        terms.expires_at,
        settings.time_zone,
    ));
    // The conversation as a send reads it: 404 for an unknown customer, and its window.
    let (state, channel) = outbound
        .check(tenant, &conversation, &link_text)
        .await
        .map_err(|e| match e {
            Error::NotFound { .. } => customer_not_found(),
            other => other,
        })?;
    let window = state
        .policy
        .window_at(state.last_inbound_at, state.replies_since_inbound, now);
    let message = match (&request.template, channel, window.open) {
        (Some(call), ChannelType::Whatsapp, false) => {
            SendMessage::of_template(template_with_link(call, &url))
        }
        (None, ChannelType::Whatsapp, false) => {
            return Err(Error::validation(
                "template_required",
                "the customer service window is closed: give a template to carry the link (a parameter \"{{url}}\", or the link is added last)",
            ));
        }
        _ => link_text,
    };
    let sent_as_template = message.kind == OutboundKind::Template;
    let invitation = Invitation {
        id: invitation_id(),
        tenant_id: tenant.to_string(),
        customer_id: customer_id.to_owned(),
        conversation_id: conversation.as_str().to_owned(),
        from: rfc3339(&terms.from),
        to: rfc3339(&terms.to),
        expires_at: rfc3339(&terms.expires_at),
        created_by: principal.agent_id.as_str().to_owned(),
        created_at: rfc3339(&now),
        booking_id: None,
    };
    let hash = token_hash(&token);
    store.put_invitation(&hash, &invitation).await?;
    let key = IdempotencyKey::parse(&format!("invitation-{}", invitation.id)).ok();
    let actor = Actor::agent(principal.agent_id.as_str());
    let sent = outbound
        .send_settled(
            &actor,
            tenant,
            &conversation,
            SendRequest::new(message, key),
            now,
        )
        .await;
    let messages = match sent {
        Ok(messages) => messages,
        Err(e) => {
            // The link never reached the customer: it must not work either.
            if let Err(cleanup) = store.delete_invitation(&hash).await {
                warn!(tenant = %tenant, invitation_id = %invitation.id, error = %cleanup, "an unsent invitation was left");
            }
            return Err(e);
        }
    };
    let first = messages.first();
    if let Some(refused) = first.filter(|m| m.status == DeliveryStatus::Failed) {
        // The provider refused it for good: the link never reached the customer.
        if let Err(cleanup) = store.delete_invitation(&hash).await {
            warn!(tenant = %tenant, invitation_id = %invitation.id, error = %cleanup, "an unsent invitation was left");
        }
        let reason = refused
            .error
            .as_ref()
            .map(|e| format!("{} ({})", e.reason, e.code))
            .unwrap_or_default();
        return Err(Error::Upstream {
            provider: channel.as_str(),
            message: format!("the invitation message was refused: {reason}"),
        });
    }
    info!(tenant = %tenant, invitation_id = %invitation.id, sent_as_template, "booking invitation sent");
    Ok(InvitationCreated {
        id: invitation.id,
        url,
        expires_at: invitation.expires_at,
        message_id: first.map(|m| m.id.clone()),
        message_status: first.map(|m| m.status),
        sent_as_template,
    })
}

/// What the public booking page shows for a token.
#[derive(Debug, Clone)]
pub enum PageState {
    /// No such invitation (404).
    Unknown,
    /// Its time ran out (410).
    Expired {
        /// The business's name.
        business: Option<String>,
    },
    /// A booking was made through it (410): the booking.
    Used {
        /// The business's name.
        business: Option<String>,
        /// The booking made (absent if it cannot be read).
        booking: Option<Box<Booking>>,
        /// The tenant's zone.
        zone: Zone,
    },
    /// The customer may choose: the free slots offered.
    Open {
        /// The business's name.
        business: Option<String>,
        /// The tenant's zone.
        zone: Zone,
        /// Free slots, earliest first.
        slots: Vec<StoredSlot>,
        /// Whether more exist than are shown.
        more: bool,
    },
}

/// Most slots the booking page lists.
pub const PAGE_SLOTS: u16 = 100;

async fn invitation_of_token(
    store: &impl BookingStore,
    token: &str,
) -> Result<Option<(Invitation, TenantId, String)>, Error> {
    if !is_token(token) {
        return Ok(None);
    }
    let hash = token_hash(token);
    let Some(invitation) = store.get_invitation(&hash).await? else {
        return Ok(None);
    };
    let Ok(tenant) = TenantId::parse(&invitation.tenant_id) else {
        return Ok(None);
    };
    Ok(Some((invitation, tenant, hash)))
}

/// `GET /b/{token}`: what the page shows.
///
/// # Errors
/// `Internal` when the store fails.
pub async fn page(
    store: &(impl BookingStore + SettingsReader),
    token: &str,
    now: DateTime<Utc>,
) -> Result<PageState, Error> {
    let Some((invitation, tenant, _)) = invitation_of_token(store, token).await? else {
        return Ok(PageState::Unknown);
    };
    let settings = store.settings(&tenant).await?;
    let business = settings.business_name.clone();
    let zone = settings.time_zone;
    match invitation.state(now) {
        InvitationState::Expired => Ok(PageState::Expired { business }),
        InvitationState::Used => {
            let booking = match &invitation.booking_id {
                Some(id) => store.get_booking(&tenant, id).await?.map(Box::new),
                None => None,
            };
            Ok(PageState::Used {
                business,
                booking,
                zone,
            })
        }
        InvitationState::Open => {
            let (Some(from), Some(to)) = (
                parse_rfc3339(&invitation.from),
                parse_rfc3339(&invitation.to),
            ) else {
                return Err(Error::Internal("an invitation without its range".into()));
            };
            let request = PageRequest {
                limit: PAGE_SLOTS,
                cursor: None,
            };
            let found = store
                .slots(&tenant, from.max(now), to, Some(true), &request)
                .await?;
            Ok(PageState::Open {
                business,
                zone,
                more: found.next_cursor.is_some(),
                slots: found.items,
            })
        }
    }
}

/// What a slot choice on the public page came to.
#[derive(Debug, Clone)]
pub enum Choice {
    /// Booked: the confirmation page.
    Booked {
        /// The business's name.
        business: Option<String>,
        /// The booking.
        booking: Box<Booking>,
        /// The tenant's zone.
        zone: Zone,
        /// Whether the confirmation message went out (else the page is the only record
        /// the customer has).
        confirmation_sent: bool,
    },
    /// The slot was taken meanwhile, is gone, or is not one the invitation offers: the
    /// page again, with a notice.
    Taken,
    /// No slot chosen (the form sent none, or not a slot id): the page again, asking.
    NoChoice,
    /// The invitation cannot book (unknown, used or expired): that page.
    Closed,
}

/// `POST /b/{token}` with the form's `slot_id`: books the slot for the invited customer,
/// confirms it to them. Three requests: the invitation, the slot with the settings, and
/// the booking's transaction (which also marks the invitation used).
///
/// # Errors
/// `Internal` when the store fails.
pub async fn choose<S, OS, D, C, O>(
    store: &S,
    outbound: &Outbound<OS, D, C, O>,
    token: &str,
    slot_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Choice, Error>
where
    S: BookingPorts,
    OS: OutboundStore + ConversationReader + MediaStore + TemplateStore + CustomerAliases,
    D: ChannelDirectory,
    C: ChannelSender,
    O: ObjectStore,
{
    let Some((invitation, tenant, hash)) = invitation_of_token(store, token).await? else {
        return Ok(Choice::Closed);
    };
    if invitation.state(now) != InvitationState::Open {
        return Ok(Choice::Closed);
    }
    let Some(slot_id) = slot_id.filter(|id| is_slot_id(id)) else {
        return Ok(Choice::NoChoice);
    };
    let inputs = store
        .booking_inputs(&tenant, slot_id, &invitation.customer_id)
        .await?;
    let Some(slot) = inputs.slot.filter(|s| invitation.offers(&s.time)) else {
        return Ok(Choice::Taken);
    };
    if slot.booking_id.is_some() || slot.time.start <= now {
        return Ok(Choice::Taken);
    }
    let actor = Actor::Customer {
        id: invitation.customer_id.clone(),
    };
    let booking = new_booking(
        &slot,
        &invitation.customer_id,
        None,
        actor,
        Some(invitation.id.clone()),
        now,
    )?;
    match write_booking(store, &tenant, &booking, &inputs.settings, Some(&hash), now).await? {
        BookOutcome::Booked => {}
        BookOutcome::SlotTaken | BookOutcome::SlotGone => return Ok(Choice::Taken),
        BookOutcome::InvitationSpent => return Ok(Choice::Closed),
    }
    // The product confirms a booking the customer made themselves.
    let zone = inputs.settings.time_zone;
    let note = Note {
        purpose: "booking",
        label: "Booking confirmation",
        text: confirmation_text(inputs.settings.business_name.as_deref(), &slot.time, zone),
        template: None,
        when: describe(&slot.time, zone),
    };
    let notice = notify(
        store,
        outbound,
        &Actor::System,
        &tenant,
        &booking,
        note,
        now,
    )
    .await?;
    Ok(Choice::Booked {
        business: inputs.settings.business_name,
        booking: Box::new(booking),
        zone: inputs.settings.time_zone,
        confirmation_sent: notice.error.is_none() && notice.status != Some(DeliveryStatus::Failed),
    })
}
