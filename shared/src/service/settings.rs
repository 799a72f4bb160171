//! Tenant settings (`GET/PUT /settings`).

use chrono::{DateTime, Utc};
use tracing::info;

use crate::Error;
use crate::domain::auth::Principal;
use crate::domain::settings::TenantSettings;
use crate::ports::{SettingsReader, SettingsWriter};

/// The caller's tenant settings (any agent); the defaults until an admin saves some.
///
/// # Errors
/// `internal` when the store fails.
pub async fn get_settings(
    reader: &impl SettingsReader,
    principal: &Principal,
) -> Result<TenantSettings, Error> {
    reader.settings(&principal.tenant_id).await
}

/// Replaces the tenant's settings (admins only) with the body, fields left out taking
/// their defaults; returns what is now in force.
///
/// # Errors
/// `403 forbidden` (not an admin, checked first); `422 invalid_body`,
/// `invalid_business_name`, `invalid_time_zone`, `invalid_business_hours` (see
/// [`TenantSettings::parse`]); nothing is written then.
pub async fn put_settings(
    writer: &impl SettingsWriter,
    principal: &Principal,
    body: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<TenantSettings, Error> {
    principal.require_admin()?;
    let settings = TenantSettings::parse(body)?;
    writer
        .put_settings(&principal.tenant_id, &settings, now)
        .await?;
    info!(tenant = %principal.tenant_id, agent = %principal.agent_id, "settings saved");
    Ok(settings)
}
