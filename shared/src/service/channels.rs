//! Connecting and listing channels.

use chrono::{DateTime, Utc};
use tracing::info;

use crate::Error;
use crate::domain::auth::Principal;
use crate::domain::channel::{Channel, ChannelType, ConnectChannel};
use crate::domain::ids::ChannelId;
use crate::domain::page::{Page, PageRequest};
use crate::ports::{ChannelStore, ChannelVerifier};
use crate::service::within_provider_budget;

/// Connects a channel to the caller's tenant (admins only).
///
/// The role is checked before the request is looked at, so an agent learns nothing about
/// validation rules. The provider must then vouch that the credentials control the account
/// ([`ChannelVerifier`]) within [`super::PROVIDER_BUDGET`]; the `external_id` is claimed
/// deployment-wide by the store.
///
/// # Errors
/// `forbidden` (403) for an agent; 422 for a request the platform's rules refuse
/// (`invalid_external_id`, `invalid_waba_id`, `invalid_credentials`, …),
/// `waba_id_required` and `channel_not_verified` (the provider's refusal); `Upstream`
/// (502) when the provider failed, gave no readable answer or none within the budget;
/// `external_id_taken` (409) once proven, when the account is connected already.
pub async fn connect_channel(
    store: &impl ChannelStore,
    verifier: &impl ChannelVerifier,
    principal: &Principal,
    request: ConnectChannel,
    now: DateTime<Utc>,
) -> Result<Channel, Error> {
    principal.require_admin()?;
    let (channel, credentials) =
        request.into_channel(principal.tenant_id.clone(), ChannelId::generate(), now)?;
    // Before the uniqueness check: whoever cannot prove an account learns nothing about
    // whether it is connected somewhere.
    let provider = match channel.channel_type {
        ChannelType::Wechat => "WeChat",
        _ => "Graph",
    };
    within_provider_budget(provider, verifier.verify(&channel, &credentials)).await?;
    store.create_channel(&channel, &credentials).await?;
    info!(
        tenant = %channel.tenant_id,
        channel_id = %channel.id,
        channel_type = %channel.channel_type,
        "channel connected"
    );
    Ok(channel)
}

/// Lists the caller's channels (any role).
pub async fn list_channels(
    store: &impl ChannelStore,
    principal: &Principal,
    page: &PageRequest,
) -> Result<Page<Channel>, Error> {
    store.list_channels(&principal.tenant_id, page).await
}
