//! Payments (SPEC §11): payment settings and products, payment links through Stripe
//! Checkout sent through the one send path, the history, and Stripe's webhook moving each
//! payment once however often and in whatever order its events come.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use tracing::{info, warn};

use crate::Error;
use crate::adapters::stripe::Stripe;
use crate::domain::actor::Actor;
use crate::domain::auth::Principal;
use crate::domain::booking::template_with_link;
use crate::domain::channel::ChannelType;
use crate::domain::conversation::conversation_of_customer;
use crate::domain::customer::is_customer_id;
use crate::domain::ids::{ConversationId, TenantId};
use crate::domain::message::DeliveryError;
use crate::domain::outbound::{IdempotencyKey, SendMessage};
use crate::domain::page::{Page, PageRequest};
use crate::domain::payment::{
    Payment, PaymentRequest, PaymentSettingsRequest, PaymentSettingsView, PaymentStatus, Product,
    ProductRequest, is_payment_id, is_product_id, link_text, payment_id, payment_id_for_key,
    product_id, thank_you_text,
};
use crate::domain::stripe::{Event, SessionRequest, verify};
use crate::domain::system::SystemMessage;
use crate::domain::time::rfc3339;
use crate::ports::{
    ChannelDirectory, ChannelSender, ConversationReader, CustomerAliases, CustomerStore,
    InboundStore, MediaStore, ObjectStore, OutboundStore, PaymentSettlement, PaymentStore,
    TemplateStore,
};
use crate::service::outbound::{Outbound, SendRequest, link_refusal};

/// The path of the page Checkout sends the customer to after paying (under
/// `PUBLIC_BASE_URL`).
pub const DONE_PATH: &str = "/pay/done";

fn product_not_found() -> Error {
    Error::NotFound { what: "product" }
}

fn customer_not_found() -> Error {
    Error::NotFound { what: "customer" }
}

/// `GET /settings/payment` (any agent: no secret is shown).
///
/// # Errors
/// `Internal` when the store fails.
pub async fn settings(
    store: &impl PaymentStore,
    principal: &Principal,
) -> Result<PaymentSettingsView, Error> {
    Ok(store.payment_settings(&principal.tenant_id).await?.view())
}

/// `PUT /settings/payment` (admin): provider, currency and secrets (a secret left out
/// keeps its value).
///
/// # Errors
/// 403 for an agent; 422 `invalid_body`, and those of
/// [`crate::domain::payment::PaymentSettings::apply`].
pub async fn put_settings(
    store: &impl PaymentStore,
    principal: &Principal,
    body: Value,
    now: DateTime<Utc>,
) -> Result<PaymentSettingsView, Error> {
    principal.require_admin()?;
    let request: PaymentSettingsRequest = crate::http::from_json(body)?;
    let tenant = &principal.tenant_id;
    let current = store.payment_settings(tenant).await?;
    let next = current.apply(&request)?;
    store.put_payment_settings(tenant, &next, now).await?;
    info!(tenant = %tenant, ready = next.missing().is_empty(), "payment settings stored");
    Ok(next.view())
}

/// `GET /products`: the catalog, oldest first (one page).
///
/// # Errors
/// `Internal` when the store fails.
pub async fn products(
    store: &impl PaymentStore,
    principal: &Principal,
    page: &PageRequest,
) -> Result<Page<Product>, Error> {
    store.products(&principal.tenant_id, page).await
}

/// `POST /products` (admin).
///
/// # Errors
/// 403; 422 `invalid_body`, `invalid_name`, `invalid_amount`, `invalid_currency`,
/// `too_many_products`.
pub async fn create_product(
    store: &impl PaymentStore,
    principal: &Principal,
    body: Value,
    now: DateTime<Utc>,
) -> Result<Product, Error> {
    principal.require_admin()?;
    let request: ProductRequest = crate::http::from_json(body)?;
    let at = rfc3339(&now);
    let product = request.product(product_id(), at.clone(), &at)?;
    store.create_product(&principal.tenant_id, &product).await?;
    Ok(product)
}

/// `PUT /products/{id}` (admin): replaces name, price and currency. Payments already
/// requested keep the price they were made with.
///
/// # Errors
/// 403; 404; the checks of `POST /products`.
pub async fn replace_product(
    store: &impl PaymentStore,
    principal: &Principal,
    id: &str,
    body: Value,
    now: DateTime<Utc>,
) -> Result<Product, Error> {
    principal.require_admin()?;
    let request: ProductRequest = crate::http::from_json(body)?;
    if !is_product_id(id) {
        return Err(product_not_found());
    }
    let tenant = &principal.tenant_id;
    let existing = store
        .get_product(tenant, id)
        .await?
        .ok_or_else(product_not_found)?;
    let product = request.product(id.to_owned(), existing.created_at, &rfc3339(&now))?;
    if !store.replace_product(tenant, &product).await? {
        return Err(product_not_found());
    }
    Ok(product)
}

/// `DELETE /products/{id}` (admin).
///
/// # Errors
/// 403; 404.
pub async fn delete_product(
    store: &impl PaymentStore,
    principal: &Principal,
    id: &str,
) -> Result<(), Error> {
    principal.require_admin()?;
    if !is_product_id(id) || !store.delete_product(&principal.tenant_id, id).await? {
        return Err(product_not_found());
    }
    Ok(())
}

/// What a payment request needs besides its body.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// The client's `Idempotency-Key`, if any: a retried request answers the same payment
    /// (and Stripe the same Checkout Session).
    pub idempotency_key: Option<&'a str>,
    /// `PUBLIC_BASE_URL`.
    pub public_base_url: &'a str,
    /// Now.
    pub now: DateTime<Utc>,
}

/// `POST /customers/{id}/payments`: a Stripe Checkout Session for products or an amount,
/// its link sent to the customer through the send path (free-form inside the window; on
/// WhatsApp outside it, the given template with the link as a parameter). Requests: one
/// read (payment settings, settings, products), the conversation as the send reads it,
/// Stripe, one transaction (the payment with its `payment_requested` system message), the
/// send's own, and the message's id recorded.
///
/// # Errors
/// 404 `customer` / `product`; 409 `payment_not_configured` (settings incomplete or no
/// product), `conflict` (the `Idempotency-Key` reused with another body); 422
/// `invalid_body`, `invalid_items`, `invalid_amount`, `invalid_name`, `invalid_currency`,
/// `mixed_currencies`, `invalid_expiry`, `template_required`, `payment_rejected`,
/// `payment_credentials_rejected`, and the send's refusals (the link is then expired at
/// Stripe and the payment `expired`); 502 `upstream_error` when Stripe or the provider
/// fails.
#[allow(clippy::too_many_arguments)]
pub async fn request<S, OS, D, C, O>(
    store: &S,
    stripe: &Stripe,
    outbound: &Outbound<OS, D, C, O>,
    principal: &Principal,
    customer_id: &str,
    body: Value,
    context: RequestContext<'_>,
) -> Result<Payment, Error>
where
    S: PaymentStore + InboundStore,
    OS: OutboundStore + ConversationReader + MediaStore + TemplateStore + CustomerAliases,
    D: ChannelDirectory,
    C: ChannelSender,
    O: ObjectStore,
{
    let now = context.now;
    let request_hash = crate::service::outbound::digest(body.to_string().as_bytes());
    let request: PaymentRequest = crate::http::from_json(body)?;
    let product_ids = request.product_ids()?;
    let minutes = request.link_minutes()?;
    let tenant = &principal.tenant_id;
    let conversation = conversation_of_customer(customer_id)
        .and_then(|c| ConversationId::parse(&c).ok())
        .filter(|_| is_customer_id(customer_id))
        .ok_or_else(customer_not_found)?;
    if product_ids.iter().any(|id| !is_product_id(id)) {
        return Err(product_not_found());
    }
    let id = match context.idempotency_key {
        Some(key) => {
            IdempotencyKey::parse(key)?;
            payment_id_for_key(tenant.as_str(), customer_id, key)
        }
        None => payment_id(),
    };
    // The settings and products, and the conversation as the send reads it (404 for an
    // unknown customer, and its window), at once.
    let probe = SendMessage::plain_text("-".into());
    let (inputs, target) = futures::join!(
        store.payment_inputs(tenant, &product_ids, &id),
        outbound.check(tenant, &conversation, &probe)
    );
    let (state, channel) = target.map_err(|e| match e {
        Error::NotFound { .. } => customer_not_found(),
        other => other,
    })?;
    let inputs = inputs?;
    // A minute's margin inside Stripe's 30 min–24 h window, so the clocks of the two ends
    // (and the request's own time on the way) never put a boundary value outside it.
    let mut expires_at = now
        + Duration::minutes(minutes).clamp(Duration::minutes(31), Duration::minutes(24 * 60 - 1));
    if context.idempotency_key.is_some() {
        // The key's first request fixes what Stripe is sent (its expiry), so a retry, or
        // a concurrent copy, sends the same parameters and gets the same session.
        let (first_hash, first_expiry) = store
            .reserve_payment(tenant, &id, &request_hash, expires_at)
            .await?;
        if first_hash != request_hash {
            return Err(Error::validation(
                "idempotency_key_reused",
                "this Idempotency-Key was used with another request: use a new key for a new payment",
            ));
        }
        expires_at = first_expiry;
        if let Some(existing) = inputs.existing {
            if let Some(reason) = &existing.not_sent_reason {
                // Its link never went: a retry must not look like a success.
                return Err(Error::conflict(
                    "payment_link_not_sent",
                    format!(
                        "this request's link was not sent ({reason}): send a new request with a new key"
                    ),
                ));
            }
            // A retried request: the payment as it is.
            return Ok(existing);
        }
    }
    let missing = inputs.payment.missing();
    let (Some(currency), Some(secret_key), true) = (
        inputs.payment.currency,
        inputs.payment.secret_key.clone(),
        missing.is_empty(),
    ) else {
        return Err(Error::conflict(
            "payment_not_configured",
            format!(
                "payments need their settings and at least one product first: missing {}",
                missing.join(", ")
            ),
        ));
    };
    let priced = request.price(&inputs.products, currency)?;
    let business = inputs.settings.business_name.clone();
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
    // The message as it will go (a link of Checkout's longest length), checked by the send
    // path's rules (body length, template, recipient, window, quota) before any session.
    let actor = Actor::agent(principal.agent_id.as_str());
    let placeholder = format!("https://checkout.stripe.com/c/pay/{}", "x".repeat(300));
    let planned = match (&request.template, as_template) {
        (Some(call), true) => SendMessage::of_template(template_with_link(call, &placeholder)),
        _ => SendMessage::plain_text(link_text(business.as_deref(), &priced, &placeholder)),
    };
    outbound
        .preflight(&actor, tenant, &conversation, &planned, now)
        .await?;
    let mut metadata = vec![
        ("tenant_id", tenant.to_string()),
        ("conversation_id", conversation.as_str().to_owned()),
        ("customer_id", customer_id.to_owned()),
        (
            "description",
            priced.description.chars().take(450).collect(),
        ),
    ];
    if let Some(name) = &business {
        metadata.push(("business", name.clone()));
    }
    let session = stripe
        .create_session(
            &secret_key,
            &id,
            &SessionRequest {
                currency: priced.currency.code().to_ascii_lowercase(),
                items: &priced.items,
                expires_at: expires_at.timestamp(),
                success_url: format!(
                    "{}{DONE_PATH}",
                    context.public_base_url.trim_end_matches('/')
                ),
                payment_id: &id,
                metadata,
            },
        )
        .await?;
    let url = session.url.clone().unwrap_or_default();
    let payment = Payment {
        id: id.clone(),
        customer_id: customer_id.to_owned(),
        conversation_id: conversation.as_str().to_owned(),
        status: PaymentStatus::Open,
        amount: priced.amount,
        currency: priced.currency.code(),
        items: priced.items.clone(),
        description: priced.description.clone(),
        url: url.clone(),
        session_id: session.id.clone(),
        expires_at: rfc3339(&expires_at),
        created_by: principal.agent_id.as_str().to_owned(),
        created_at: rfc3339(&now),
        message_id: None,
        paid_at: None,
        updated_at: None,
        not_sent_reason: None,
    };
    let note = SystemMessage::payment_requested(&payment, actor.clone());
    if !store.create_payment(tenant, &payment, &note, now).await? {
        // A retried request (same Idempotency-Key): the payment as it is.
        return store
            .get_payment(tenant, &id)
            .await?
            .ok_or_else(|| Error::Internal("a payment that exists and does not".into()));
    }
    let message = match (&request.template, as_template) {
        (Some(call), true) => SendMessage::of_template(template_with_link(call, &url)),
        _ => SendMessage::plain_text(link_text(business.as_deref(), &priced, &url)),
    };
    let key = IdempotencyKey::parse(&format!("payment-{id}")).ok();
    let sent = outbound
        .send_settled(
            &actor,
            tenant,
            &conversation,
            SendRequest::new(message, key),
            now,
        )
        .await;
    if let Some(reason) = link_refusal(&sent) {
        // The link never reached the customer: it stops working, and the history says why.
        if let Err(e) = stripe.expire_session(&secret_key, &session.id).await {
            warn!(tenant = %tenant, payment_id = %id, error = %e, "the unsent link's session was not expired");
        }
        store.void_payment(tenant, &id, &reason, now).await?;
        let error = DeliveryError {
            code: "payment_link_not_sent".into(),
            reason: format!("Payment link not sent ({reason}); it no longer works"),
            hint: "Send a new payment link once the customer can be reached".into(),
        };
        store
            .record_system_message(
                tenant,
                conversation.as_str(),
                &SystemMessage::delivery_failed(&error),
                now,
            )
            .await?;
        return Err(match sent {
            Err(e) => e,
            Ok(_) => Error::Upstream {
                provider: channel.as_str(),
                message: format!("the payment link was refused: {reason}"),
            },
        });
    }
    let messages = sent?;
    let mut payment = payment;
    if let Some(first) = messages.first() {
        store.set_payment_message(tenant, &id, &first.id).await?;
        payment.message_id = Some(first.id.clone());
    }
    info!(tenant = %tenant, payment_id = %id, amount = payment.amount, currency = %payment.currency, "payment link sent");
    Ok(payment)
}

/// `GET /customers/{id}/payments`: the history, newest first.
///
/// # Errors
/// 404 for an unknown customer (another tenant's included); 400 `invalid_cursor`.
pub async fn history(
    store: &(impl PaymentStore + CustomerStore),
    principal: &Principal,
    customer_id: &str,
    page: &PageRequest,
) -> Result<Page<Payment>, Error> {
    if !is_customer_id(customer_id) {
        return Err(customer_not_found());
    }
    let tenant = &principal.tenant_id;
    let page = store.list_payments(tenant, customer_id, page).await?;
    if page.items.is_empty()
        && page.next_cursor.is_none()
        && store.get_customer(tenant, customer_id).await?.is_none()
    {
        return Err(customer_not_found());
    }
    Ok(page)
}

/// What a Stripe webhook delivery came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The payment moved.
    Moved(PaymentStatus),
    /// The event was applied before.
    Repeated,
    /// Nothing to do (another event type, a payment not where the event moves from).
    Ignored,
}

/// `POST /webhooks/stripe/{tenant_id}`: checks the `Stripe-Signature` over the raw body
/// with the tenant's webhook secret, then moves the payment the event names once (the
/// event's id recorded with the move), with a system message; paid, the customer is
/// thanked through the send path. Requests: the payment settings, the transaction, and
/// the thank-you's own.
///
/// # Errors
/// 400 `invalid_signature` (a missing, malformed, stale or wrong signature, or a tenant
/// without a webhook secret: nothing is read further or written), `invalid_json`;
/// `Internal` when the store fails (Stripe delivers again).
pub async fn webhook<S, OS, D, C, O>(
    store: &S,
    outbound: &Outbound<OS, D, C, O>,
    tenant_id: &str,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<WebhookOutcome, Error>
where
    S: PaymentStore + InboundStore,
    OS: OutboundStore + ConversationReader + MediaStore + TemplateStore + CustomerAliases,
    D: ChannelDirectory,
    C: ChannelSender,
    O: ObjectStore,
{
    let refused = |why: &str| Error::bad_request("invalid_signature", why.to_owned());
    let tenant =
        TenantId::parse(tenant_id).map_err(|_| refused("no webhook secret for this endpoint"))?;
    let settings = store.payment_settings(&tenant).await?;
    let secret = settings
        .webhook_secret
        .ok_or_else(|| refused("no webhook secret for this endpoint"))?;
    verify(signature, body, secret.expose(), now.timestamp())
        .map_err(|e| refused(&e.to_string()))?;
    let event: Event = serde_json::from_slice(body)
        .map_err(|_| Error::bad_request("invalid_json", "the event is not Stripe's event JSON"))?;
    let Some(outcome) = event.outcome() else {
        return Ok(WebhookOutcome::Ignored);
    };
    let session = &event.data.object;
    let meta = &session.metadata;
    let (Some(payment), Some(conversation)) = (
        meta.payment_id.as_deref().filter(|p| is_payment_id(p)),
        meta.conversation_id.as_deref(),
    ) else {
        warn!(tenant = %tenant, event = %event.id, "a Checkout Session event without our metadata; ignored");
        return Ok(WebhookOutcome::Ignored);
    };
    if meta.tenant_id.as_deref() != Some(tenant.as_str()) {
        warn!(tenant = %tenant, event = %event.id, "a Checkout Session event of another tenant; ignored");
        return Ok(WebhookOutcome::Ignored);
    }
    let (to, from) = outcome.transition();
    let amount = session.amount_total.unwrap_or_default();
    let currency = session
        .currency
        .as_deref()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let description = meta.description.clone().unwrap_or_default();
    let note = SystemMessage::payment_settled(&description, amount, &currency, to);
    let settled = store
        .settle_payment(
            &tenant,
            payment,
            conversation,
            &event.id,
            (to, from),
            note.as_ref(),
            now,
        )
        .await?;
    info!(tenant = %tenant, payment_id = payment, event = %event.id, kind = %event.kind, settled = ?settled, "Stripe event");
    let result = match settled {
        PaymentSettlement::Moved => WebhookOutcome::Moved(to),
        PaymentSettlement::Repeated => WebhookOutcome::Repeated,
        PaymentSettlement::NotApplicable => return Ok(WebhookOutcome::Ignored),
    };
    if to == PaymentStatus::Paid {
        // A re-delivery sends again with the same key: the send path answers from the
        // first acceptance, or makes the send a failed first attempt did not.
        let first = settled == PaymentSettlement::Moved;
        thank(
            store,
            outbound,
            &tenant,
            conversation,
            payment,
            meta.business.as_deref(),
            (amount, &currency),
            first,
            now,
        )
        .await?;
    }
    Ok(result)
}

/// Thanks the customer for a payment (once: the send's idempotency key is the payment's).
#[allow(clippy::too_many_arguments)]
async fn thank<S, OS, D, C, O>(
    store: &S,
    outbound: &Outbound<OS, D, C, O>,
    tenant: &TenantId,
    conversation: &str,
    payment: &str,
    business: Option<&str>,
    (amount, currency): (i64, &str),
    first: bool,
    now: DateTime<Utc>,
) -> Result<(), Error>
where
    S: InboundStore,
    OS: OutboundStore + ConversationReader + MediaStore + TemplateStore + CustomerAliases,
    D: ChannelDirectory,
    C: ChannelSender,
    O: ObjectStore,
{
    let Ok(conversation) = ConversationId::parse(conversation) else {
        return Ok(());
    };
    let key = IdempotencyKey::parse(&format!("payment-paid-{payment}")).ok();
    let message = SendMessage::plain_text(thank_you_text(business, amount, currency));
    match outbound
        .send(
            &Actor::System,
            tenant,
            &conversation,
            SendRequest::new(message, key),
            now,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_client_error() => {
            // The window rules keep it from going out: said once, in the conversation.
            if first {
                let error = DeliveryError {
                    code: e.code().to_owned(),
                    reason: format!("The payment's thank-you was not sent to the customer: {e}"),
                    hint: "Thank the customer once they write again".into(),
                };
                store
                    .record_system_message(
                        tenant,
                        conversation.as_str(),
                        &SystemMessage::delivery_failed(&error),
                        now,
                    )
                    .await?;
            }
            Ok(())
        }
        // Stripe delivers the event again; the next delivery sends it.
        Err(e) => Err(e),
    }
}
