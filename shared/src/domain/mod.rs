//! Pure domain: types that parse their input and rules that need no I/O.

pub mod auth;
pub mod channel;
pub mod error;
pub mod ids;
pub mod meta;
pub mod page;
pub mod time;
