//! EventBridge adapter: domain events onto the bus, at most 10 entries per PutEvents.

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::Error;
use crate::ports::{DomainEvent, EventPublisher};

/// PutEvents accepts at most 10 entries.
const MAX_ENTRIES: usize = 10;
/// `source` of every event this backend publishes.
pub use crate::domain::events::SOURCE;

/// Publishes to one bus through a shared client.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus: String,
}

impl EventBridgePublisher {
    /// Wraps a client (built once per process) and the bus name from configuration.
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), Error> {
        let mut failed = 0;
        for chunk in events.chunks(MAX_ENTRIES) {
            let entries = chunk
                .iter()
                .map(|e| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(SOURCE)
                        .detail_type(e.detail_type())
                        .detail(e.detail().to_string())
                        .build()
                })
                .collect::<Vec<_>>();
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| Error::Internal(format!("put events: {}", DisplayErrorContext(e))))?;
            failed += out.failed_entry_count();
        }
        if failed > 0 {
            return Err(Error::Internal(format!(
                "{failed} events were refused by the bus"
            )));
        }
        Ok(())
    }
}
