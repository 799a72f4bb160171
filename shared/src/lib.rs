//! The chatroom domain crate.
//!
//! - [`domain`]: newtypes and pure rules, no I/O and no AWS or Lambda types.
//! - [`ports`]: the traits the use cases need (stores, publishers, senders).
//! - [`service`]: use cases written against the ports.
//! - [`adapters`]: the AWS implementations of the ports; SDK types live only there.
//! - [`http`]: API Gateway request parsing and the one error → response mapping.
//! - [`config`]: process configuration read once at start-up.
//! - `fuzzing` (feature `fuzzing`, and in tests): the fuzz targets over every parser of
//!   untrusted bytes.

pub mod adapters;
pub mod config;
pub mod domain;
#[cfg(any(test, feature = "test-util"))]
pub mod fakes;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
#[cfg(test)]
mod fuzzing_tests;
pub mod http;
pub mod ports;
pub mod service;
pub mod telemetry;

pub use domain::error::Error;
