//! Connecting and listing channels.

use chrono::{DateTime, Utc};
use tracing::info;

use crate::Error;
use crate::domain::auth::Principal;
use crate::domain::channel::{Channel, ConnectChannel};
use crate::domain::ids::ChannelId;
use crate::domain::page::{Page, PageRequest};
use crate::ports::{ChannelStore, ChannelVerifier};

/// Connects a channel to the caller's tenant (admins only).
///
/// The role is checked before the request is looked at, so an agent learns nothing about
/// validation rules. The provider must then vouch that the credentials control the account
/// ([`ChannelVerifier`]); the `external_id` is claimed deployment-wide by the store.
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
    verifier.verify(&channel, &credentials).await?;
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
