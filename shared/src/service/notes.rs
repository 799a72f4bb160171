//! Notes on customers (SPEC §7): internal, never sent to the customer.

use chrono::{DateTime, Utc};

use crate::Error;
use crate::domain::auth::Principal;
use crate::domain::note::{NewNote, Note, may_delete};
use crate::domain::page::{Page, PageRequest};
use crate::ports::NoteStore;

fn customer_not_found() -> Error {
    Error::NotFound { what: "customer" }
}

/// Adds the caller's note to a customer of its tenant.
///
/// # Errors
/// `422 invalid_note` (checked first); `404 not_found` for an unknown customer.
pub async fn add_note(
    store: &impl NoteStore,
    principal: &Principal,
    customer_id: &str,
    body: &NewNote,
    now: DateTime<Utc>,
) -> Result<Note, Error> {
    let text = body.text()?;
    store
        .add_note(
            &principal.tenant_id,
            customer_id,
            &principal.agent_id,
            &text,
            now,
        )
        .await?
        .ok_or_else(customer_not_found)
}

/// One page of a customer's notes, newest first.
///
/// # Errors
/// `404 not_found` for an unknown customer; `400 invalid_cursor`.
pub async fn list_notes(
    store: &impl NoteStore,
    principal: &Principal,
    customer_id: &str,
    page: &PageRequest,
) -> Result<Page<Note>, Error> {
    store
        .list_notes(&principal.tenant_id, customer_id, page)
        .await?
        .ok_or_else(customer_not_found)
}

/// Deletes a note: its author or an admin.
///
/// # Errors
/// `404 not_found` for an unknown customer or note; `403 forbidden` for anyone else.
pub async fn delete_note(
    store: &impl NoteStore,
    principal: &Principal,
    customer_id: &str,
    note_id: &str,
) -> Result<(), Error> {
    let tenant = &principal.tenant_id;
    let note = store
        .get_note(tenant, customer_id, note_id)
        .await?
        .ok_or(Error::NotFound { what: "note" })?;
    may_delete(principal, &note.author.id)?;
    if !store.delete_note(tenant, customer_id, note_id).await? {
        return Err(Error::NotFound { what: "note" });
    }
    Ok(())
}
