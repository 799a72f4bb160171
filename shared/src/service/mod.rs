//! Use cases. Each takes the ports it needs and the caller's identity, never AWS types.

pub mod changes;
pub mod channels;
pub mod conversations;
pub mod customers;
pub mod ingest;
pub mod labels;
pub mod media;
pub mod notes;
pub mod outbound;
pub mod payments;
pub mod reads;
pub mod schedules;
pub mod templates;
// The agent workspace (SPEC §7).
pub mod agents;
pub mod bookings;
pub mod bots;
pub mod calls;
pub mod faqs;
pub mod settings;

use std::future::Future;
use std::time::Duration;

use crate::Error;

/// How long a request may wait for a provider's administrative answer (the proof of a
/// channel, every page of it; a template's creation or deletion): the chatroom function
/// stops at 10 s (`template.yaml`, `Globals`), and what the provider said must still be
/// stored after it.
pub const PROVIDER_BUDGET: Duration = Duration::from_secs(7);

/// `call`'s result, or `Upstream` (502) naming `provider` when it takes longer than
/// [`PROVIDER_BUDGET`] (the call is dropped).
///
/// # Errors
/// `call`'s own, or the 502 above.
pub(crate) async fn within_provider_budget<T>(
    provider: &'static str,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(PROVIDER_BUDGET, call)
        .await
        .map_err(|_| Error::Upstream {
            provider,
            message: format!("no answer within {} s", PROVIDER_BUDGET.as_secs()),
        })?
}
