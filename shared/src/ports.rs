//! Ports: what the use cases need from the outside world, one narrow trait per concern.
//!
//! Adapters in [`crate::adapters`] implement them over AWS; tests may implement them in
//! memory. Futures are `Send` so handlers can run on any Tokio runtime.

use std::future::Future;

use crate::Error;
use crate::domain::channel::{Channel, Credentials};
use crate::domain::ids::TenantId;
use crate::domain::page::{Page, PageRequest};

/// Storage of connected channels.
pub trait ChannelStore: Send + Sync {
    /// Stores a new channel with its credentials, atomically.
    ///
    /// Fails with [`Error::Conflict`] (`external_id_taken`) when any tenant already connected
    /// a channel with the same `external_id`; nothing is written in that case.
    fn create_channel(
        &self,
        channel: &Channel,
        credentials: &Credentials,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// One page of a tenant's channels, oldest first.
    fn list_channels(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Channel>, Error>> + Send;
}
