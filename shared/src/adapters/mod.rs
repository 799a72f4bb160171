//! AWS implementations of the ports. SDK types never leave this module.

pub mod aws;
pub mod cache;
pub mod channels;
pub mod dynamo;
pub mod eventbridge;
pub mod fetch;
pub mod keys;
pub mod s3;
pub mod scheduler;
pub mod stripe;
