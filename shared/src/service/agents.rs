//! The agent directory (`GET /agents`, `PUT/DELETE /agents/{id}`).

use chrono::{DateTime, Utc};
use tracing::info;

use crate::Error;
use crate::domain::agent::{Agent, AgentRef, PutAgent};
use crate::domain::auth::Principal;
use crate::domain::page::{Page, PageRequest};
use crate::ports::AgentStore;

/// A page of the caller's tenant's agents, by id (any agent).
///
/// # Errors
/// `400 invalid_cursor`; `internal` when the store fails.
pub async fn list_agents(
    store: &impl AgentStore,
    principal: &Principal,
    page: &PageRequest,
) -> Result<Page<Agent>, Error> {
    store.list_agents(&principal.tenant_id, page).await
}

/// Creates or replaces the agent `id` (the JWT `sub`) with a name and role (admins only).
///
/// # Errors
/// `403 forbidden` (not an admin, checked first); `422 invalid_agent_id`,
/// `invalid_name`, `invalid_role`; nothing is written then.
pub async fn put_agent(
    store: &impl AgentStore,
    principal: &Principal,
    id: &str,
    body: PutAgent,
    now: DateTime<Utc>,
) -> Result<Agent, Error> {
    principal.require_admin()?;
    let id = AgentRef::parse(id)?;
    let profile = body.parse()?;
    let agent = store
        .put_agent(&principal.tenant_id, &id, &profile, now)
        .await?;
    info!(tenant = %principal.tenant_id, agent = %principal.agent_id, "agent saved");
    Ok(agent)
}

/// Removes the agent `id` from the directory (admins only).
///
/// # Errors
/// `403 forbidden` (not an admin, checked first); `404 not_found` when `id` is not an
/// agent of the tenant.
pub async fn delete_agent(
    store: &impl AgentStore,
    principal: &Principal,
    id: &str,
) -> Result<(), Error> {
    principal.require_admin()?;
    let not_found = Error::NotFound { what: "agent" };
    let Ok(id) = AgentRef::parse(id) else {
        return Err(not_found);
    };
    if !store.delete_agent(&principal.tenant_id, &id).await? {
        return Err(not_found);
    }
    info!(tenant = %principal.tenant_id, agent = %principal.agent_id, "agent removed");
    Ok(())
}
