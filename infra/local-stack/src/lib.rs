//! The local stack: moto on loopback, the template's resources created in it, and the dev
//! server routing requests to the functions' handlers exactly as API Gateway would.
//!
//! `make dev` runs the `dev` binary; the integration tests use [`Stack`] directly.

use std::collections::HashMap;

use aws_config::SdkConfig;
use shared::config::{AwsSettings, DEFAULT_META_GRAPH_URL, DEFAULT_WECHAT_API_URL};

pub mod bench;
pub mod bootstrap;
pub mod capacity;
pub mod cost;
pub mod counter;
pub mod devserver;
pub mod faults;
pub mod functions;
pub mod media_files;
pub mod moto;
pub mod sandbox;
pub mod schedules;
pub mod stack;
pub mod standin;
pub mod template;
pub mod token;

/// Errors of local tooling (never part of a Lambda binary).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Region of the local stack.
pub const LOCAL_REGION: &str = "us-east-1";

/// The local stack's settings, from the environment with SPEC §6 defaults.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// `PORT` of the dev server (default 3000).
    pub port: u16,
    /// Moto's URL.
    pub aws_endpoint: String,
    /// `DEV_JWT_SECRET` (default `dev-jwt-secret`).
    pub jwt_secret: String,
    /// Values for variables the template takes from secrets or deploy parameters:
    /// `META_APP_SECRET`, `META_VERIFY_TOKEN`, `META_GRAPH_URL`, `WECHAT_API_URL`, and the
    /// media fetch policy (loopback allowed for the provider sandbox).
    pub overrides: HashMap<String, String>,
}

impl LocalSettings {
    /// Reads the settings from the process environment, defaulting what is unset.
    pub fn from_env(aws_endpoint: String) -> Result<Self, BoxError> {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let port = var("PORT", "3000")
            .parse()
            .map_err(|_| "PORT must be a port number")?;
        let overrides = [
            ("META_APP_SECRET", var("META_APP_SECRET", "dev-app-secret")),
            (
                "META_VERIFY_TOKEN",
                var("META_VERIFY_TOKEN", "dev-verify-token"),
            ),
            (
                "META_GRAPH_URL",
                var("META_GRAPH_URL", DEFAULT_META_GRAPH_URL),
            ),
            (
                "WECHAT_API_URL",
                var("WECHAT_API_URL", DEFAULT_WECHAT_API_URL),
            ),
        ];
        Ok(Self {
            port,
            aws_endpoint,
            jwt_secret: var("DEV_JWT_SECRET", "dev-jwt-secret"),
            overrides: overrides
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        })
    }

    /// What Lambda itself adds to a function's environment, pointed at the emulator.
    pub fn lambda_environment(&self) -> HashMap<String, String> {
        HashMap::from([
            ("AWS_REGION".to_owned(), LOCAL_REGION.to_owned()),
            ("AWS_ENDPOINT_URL".to_owned(), self.aws_endpoint.clone()),
        ])
    }

    /// An `SdkConfig` for the emulator (bootstrap, tests).
    pub fn sdk_config(&self) -> SdkConfig {
        shared::adapters::aws::sdk_config(
            &AwsSettings {
                region: LOCAL_REGION.to_owned(),
                endpoint_url: Some(self.aws_endpoint.clone()),
            },
            functions::local_credentials(),
        )
    }
}
