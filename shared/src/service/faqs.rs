//! The FAQ catalog (`GET/POST /faqs`, `PUT/DELETE /faqs/{id}`) and rendering an entry
//! for a conversation (`POST /faqs/{id}/render`).
//!
//! Any agent reads, searches and renders; only admins write (the catalog is the
//! business's voice, like templates and settings).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::Error;
use crate::domain::auth::Principal;
use crate::domain::faq::{Faq, FaqInput, FaqQuery, RenderValues, render};
use crate::domain::ids::ConversationId;
use crate::domain::page::{Page, PageRequest};
use crate::ports::{
    AgentDirectory, ConversationReader, CustomerContacts, FaqStore, SettingsReader,
};

fn not_found() -> Error {
    Error::NotFound { what: "faq" }
}

/// Whether `id` could be one of our FAQ ids (a ULID); others are 404 without a read.
fn is_faq_id(id: &str) -> bool {
    ulid::Ulid::from_string(id).is_ok()
}

/// A page of the caller's FAQ entries, oldest first; with `q`, those whose title,
/// shortcut or text contains it, ignoring case and accents.
///
/// # Errors
/// `400 invalid_query` (over 200 characters), `400 invalid_cursor`.
pub async fn list_faqs(
    store: &impl FaqStore,
    principal: &Principal,
    q: Option<&str>,
    page: &PageRequest,
) -> Result<Page<Faq>, Error> {
    let query = FaqQuery::parse(q)?;
    store
        .search_faqs(&principal.tenant_id, query.as_ref(), page)
        .await
}

/// Adds an entry (admins only).
///
/// # Errors
/// `403 forbidden` (checked first); `422 invalid_title`, `invalid_text`,
/// `invalid_shortcut`, `unknown_placeholder`; `409 duplicate_shortcut`,
/// `409 faq_limit_reached` (1,000 entries).
pub async fn create_faq(
    store: &impl FaqStore,
    principal: &Principal,
    input: FaqInput,
    now: DateTime<Utc>,
) -> Result<Faq, Error> {
    principal.require_admin()?;
    let draft = input.parse()?;
    let faq = Faq {
        id: ulid::Ulid::new().to_string(),
        title: draft.title,
        text: draft.text,
        shortcut: draft.shortcut,
        created_at: now,
        updated_at: now,
    };
    store.create_faq(&principal.tenant_id, &faq).await?;
    info!(tenant = %principal.tenant_id, faq_id = %faq.id, "FAQ created");
    Ok(faq)
}

/// Replaces an entry's title, text and shortcut (admins only; a shortcut left out is
/// removed).
///
/// # Errors
/// As [`create_faq`] (without the limit), and `404 not_found` for an id the tenant does
/// not have.
pub async fn replace_faq(
    store: &impl FaqStore,
    principal: &Principal,
    id: &str,
    input: FaqInput,
    now: DateTime<Utc>,
) -> Result<Faq, Error> {
    principal.require_admin()?;
    let draft = input.parse()?;
    if !is_faq_id(id) {
        return Err(not_found());
    }
    let faq = store
        .replace_faq(&principal.tenant_id, id, &draft, now)
        .await?
        .ok_or_else(not_found)?;
    info!(tenant = %principal.tenant_id, faq_id = %faq.id, "FAQ replaced");
    Ok(faq)
}

/// Removes an entry (admins only), freeing its shortcut.
///
/// # Errors
/// `403 forbidden` (checked first); `404 not_found`.
pub async fn delete_faq(
    store: &impl FaqStore,
    principal: &Principal,
    id: &str,
) -> Result<(), Error> {
    principal.require_admin()?;
    if !is_faq_id(id) || !store.delete_faq(&principal.tenant_id, id).await? {
        return Err(not_found());
    }
    info!(tenant = %principal.tenant_id, faq_id = %id, "FAQ deleted");
    Ok(())
}

/// `POST /faqs/{id}/render` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderRequest {
    /// The conversation whose customer the text is for.
    pub conversation_id: String,
}

/// `{"text": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    /// The entry's text with its placeholders filled.
    pub text: String,
}

/// An entry's text filled for a conversation (any agent): `{{customer.name}}` is the
/// conversation's customer name (else the customer item's), `{{customer.phone}}` the
/// customer's recorded phone (else on WhatsApp `+<wa_id>`), `{{agent.name}}` the caller's
/// name in the agent directory, `{{business.name}}` the settings' business name. A value
/// that is missing renders as empty text.
///
/// Reads: the entry, the conversation, the caller's agent item and the settings at once,
/// then the customer's item.
///
/// # Errors
/// `404 not_found` for an entry or a conversation the tenant does not have.
pub async fn render_faq(
    store: &(impl FaqStore + ConversationReader + CustomerContacts + AgentDirectory + SettingsReader),
    principal: &Principal,
    id: &str,
    request: RenderRequest,
) -> Result<Rendered, Error> {
    let tenant = &principal.tenant_id;
    let no_conversation = || Error::NotFound {
        what: "conversation",
    };
    if !is_faq_id(id) {
        return Err(not_found());
    }
    let conversation_id =
        ConversationId::parse(&request.conversation_id).map_err(|_| no_conversation())?;
    let (faq, conversation, agent, settings) = futures::try_join!(
        store.get_faq(tenant, id),
        store.get_conversation(tenant, conversation_id.as_str()),
        store.get_agent(tenant, principal.agent_id.as_str()),
        store.settings(tenant),
    )?;
    let faq = faq.ok_or_else(not_found)?;
    let conversation = conversation.ok_or_else(no_conversation)?;
    let contact = store
        .customer_contact(tenant, &conversation.customer.id)
        .await?
        .unwrap_or_default();
    let values = RenderValues {
        customer_name: conversation
            .customer
            .name
            .filter(|n| !n.trim().is_empty())
            .or_else(|| contact.name.clone()),
        customer_phone: contact.display_phone(),
        agent_name: agent.map(|a| a.name),
        business_name: settings.business_name,
    };
    Ok(Rendered {
        text: render(&faq.text, &values),
    })
}

#[cfg(test)]
#[path = "faqs_tests.rs"]
mod tests;
