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
