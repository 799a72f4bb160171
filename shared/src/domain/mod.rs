//! Pure domain: types that parse their input and rules that need no I/O.

pub mod actor;
pub mod auth;
pub mod changes;
pub mod channel;
pub mod conversation;
pub mod customer;
pub mod error;
pub mod events;
pub mod fetch;
pub mod ids;
pub mod inbound;
pub mod label;
pub mod limits;
pub mod media;
pub mod message;
pub mod note;
pub mod outbound;
pub mod page;
pub mod sniff;
pub mod system;
pub mod template;
pub mod text;
pub mod time;
pub mod views;
pub mod window;
// The agent workspace (SPEC §7): settings, agents, FAQ.
pub mod agent;
pub mod booking;
pub mod bot;
pub mod calendar;
pub mod call;
pub mod faq;
pub mod payment;
pub mod schedule;
pub mod settings;
pub mod stripe;
