//! Process configuration, read once at start-up.
//!
//! Every value comes from the environment template.yaml gives the function (the dev server
//! builds the same environment locally). A missing or malformed variable stops start-up
//! with an error naming it.

use std::collections::HashMap;
use std::time::Duration;

pub use crate::service::outbound::OutboundSettings;

/// A configuration problem found at start-up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set (or is empty).
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where configuration values come from: the process environment, or a map (dev server,
/// tests) holding exactly what template.yaml would set.
pub trait Source {
    /// The value of a variable, if set.
    fn get(&self, name: &str) -> Option<String>;

    /// The value of a required variable; empty counts as missing.
    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or(ConfigError::Missing(name))
    }

    /// The value of an optional variable; empty counts as unset.
    fn optional(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty())
    }
}

/// The process environment.
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Source for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

/// How to reach AWS. Region and endpoint come from the environment only: no IMDS or STS call
/// is ever made to find them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// `AWS_REGION` (Lambda always sets it).
    pub region: String,
    /// `AWS_ENDPOINT_URL`: unset in AWS; the emulator's URL locally.
    pub endpoint_url: Option<String>,
}

impl AwsSettings {
    /// Reads `AWS_REGION` and `AWS_ENDPOINT_URL`.
    pub fn from_source(env: &impl Source) -> Result<Self, ConfigError> {
        let endpoint_url = env.optional("AWS_ENDPOINT_URL");
        if let Some(url) = &endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                name: "AWS_ENDPOINT_URL",
                reason: "must start with http:// or https://".into(),
            });
        }
        Ok(Self {
            region: env.required("AWS_REGION")?,
            endpoint_url,
        })
    }
}

/// Settings every function shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How to reach AWS.
    pub aws: AwsSettings,
    /// `TABLE_NAME`: the DynamoDB table holding tenants, channels, conversations, messages.
    pub table_name: String,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    /// Reads the configuration from any [`Source`].
    pub fn from_source(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            aws: AwsSettings::from_source(env)?,
            table_name: env.required("TABLE_NAME")?,
        })
    }
}

/// Meta webhook settings (webhook function).
#[derive(Clone, PartialEq, Eq)]
pub struct MetaSettings {
    /// `META_APP_SECRET`: signs webhook bodies (`X-Hub-Signature-256`).
    pub app_secret: String,
    /// `META_VERIFY_TOKEN`: echoed back by Meta in the subscription handshake.
    pub verify_token: String,
    /// `META_GRAPH_URL`: Graph API base URL, including the version.
    pub graph_url: String,
    /// `META_APP_ID` (optional): echoes of messages this app sent are not stored twice.
    pub app_id: Option<String>,
}

impl std::fmt::Debug for MetaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaSettings")
            .field("graph_url", &self.graph_url)
            .finish_non_exhaustive()
    }
}

/// The Graph API base URL when `META_GRAPH_URL` is not set.
pub const DEFAULT_META_GRAPH_URL: &str = "https://graph.facebook.com/v21.0";
/// The WeChat API base URL when `WECHAT_API_URL` is not set.
pub const DEFAULT_WECHAT_API_URL: &str = "https://api.weixin.qq.com";

impl MetaSettings {
    /// Reads `META_APP_SECRET`, `META_VERIFY_TOKEN` (required), `META_GRAPH_URL` and
    /// `META_APP_ID` (optional).
    pub fn from_source(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            app_secret: env.required("META_APP_SECRET")?,
            verify_token: env.required("META_VERIFY_TOKEN")?,
            graph_url: env
                .optional("META_GRAPH_URL")
                .unwrap_or_else(|| DEFAULT_META_GRAPH_URL.to_owned()),
            app_id: env.optional("META_APP_ID"),
        })
    }
}

/// A duration in milliseconds from `name`, if set.
fn millis(env: &impl Source, name: &'static str) -> Result<Option<Duration>, ConfigError> {
    env.optional(name)
        .map(|v| {
            v.trim()
                .parse()
                .map(Duration::from_millis)
                .map_err(|_| ConfigError::Invalid {
                    name,
                    reason: "must be a whole number of milliseconds".into(),
                })
        })
        .transpose()
}

/// A base URL from `name` (or its default): absolute, http or https.
fn base_url(env: &impl Source, name: &'static str, default: &str) -> Result<String, ConfigError> {
    let value = env.optional(name).unwrap_or_else(|| default.to_owned());
    match url::Url::parse(&value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(value.trim_end_matches('/').to_owned())
        }
        _ => Err(ConfigError::Invalid {
            name,
            reason: "must be an absolute http(s) URL".into(),
        }),
    }
}

/// `PUBLIC_BASE_URL`: where the public pages (`/b/{token}`, `/call/{token}`) are served, an
/// absolute http(s) URL without a trailing `/` (SPEC §6).
///
/// # Errors
/// [`ConfigError::Missing`] when unset, [`ConfigError::Invalid`] when not an http(s) URL.
pub fn public_base_url(env: &impl Source) -> Result<String, ConfigError> {
    let value = env.required("PUBLIC_BASE_URL")?;
    base_url(env, "PUBLIC_BASE_URL", &value)
}

/// `STRIPE_API_URL`: Stripe's API base (default Stripe's own host; locally the provider
/// sandbox), without a trailing `/` (SPEC §6).
///
/// # Errors
/// [`ConfigError::Invalid`] when not an http(s) URL.
pub fn stripe_api_url(env: &impl Source) -> Result<String, ConfigError> {
    base_url(
        env,
        "STRIPE_API_URL",
        crate::adapters::stripe::DEFAULT_STRIPE_API_URL,
    )
}

/// The provider APIs' base URLs (`META_GRAPH_URL`, `WECHAT_API_URL`), without a trailing
/// `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUrls {
    /// Graph API base, with the version.
    pub graph: String,
    /// WeChat API base.
    pub wechat: String,
}

impl ProviderUrls {
    /// Reads `META_GRAPH_URL` and `WECHAT_API_URL` (each defaulting to the provider's own
    /// host).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable that is not an http(s) URL.
    pub fn from_source(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            graph: base_url(env, "META_GRAPH_URL", DEFAULT_META_GRAPH_URL)?,
            wechat: base_url(env, "WECHAT_API_URL", DEFAULT_WECHAT_API_URL)?,
        })
    }
}

impl OutboundSettings {
    /// Reads `OUTBOUND_CALL_TIMEOUT_MS` (default 10 s), `OUTBOUND_RETRY_BASE_MS` (default
    /// 250 ms) and `OUTBOUND_SEND_BUDGET_MS` (default 25 s: the function's 29 s timeout
    /// less time to record the outcome).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable that is not a number of milliseconds,
    /// or a budget not at least a second longer than one call.
    pub fn from_source(env: &impl Source) -> Result<Self, ConfigError> {
        let mut settings = Self::default();
        if let Some(timeout) = millis(env, "OUTBOUND_CALL_TIMEOUT_MS")? {
            settings.call_timeout = timeout;
        }
        if let Some(base) = millis(env, "OUTBOUND_RETRY_BASE_MS")? {
            settings.retry.base = base;
        }
        if let Some(budget) = millis(env, "OUTBOUND_SEND_BUDGET_MS")? {
            settings.budget = budget;
        }
        // A call starts only while a whole one still fits in the budget: a budget of one
        // call (or less) would never start any.
        if settings.budget < settings.call_timeout + std::time::Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                name: "OUTBOUND_SEND_BUDGET_MS",
                reason: "must exceed OUTBOUND_CALL_TIMEOUT_MS by at least 1000 (a call starts only while a whole one fits)".into(),
            });
        }
        Ok(settings)
    }
}

/// Where one-time schedules go (scheduled messages, snoozes): `SCHEDULE_GROUP_NAME`,
/// `SCHEDULER_TARGET_ARN` (the `scheduler` function), `SCHEDULER_ROLE_ARN` (the role
/// Scheduler assumes to invoke it) and `SCHEDULER_DLQ_ARN` (optional).
///
/// # Errors
/// [`ConfigError::Missing`] for a required variable.
pub fn schedule_target(
    env: &impl Source,
) -> Result<crate::adapters::scheduler::ScheduleTarget, ConfigError> {
    Ok(crate::adapters::scheduler::ScheduleTarget {
        group: env.required("SCHEDULE_GROUP_NAME")?,
        function_arn: env.required("SCHEDULER_TARGET_ARN")?,
        role_arn: env.required("SCHEDULER_ROLE_ARN")?,
        dead_letter_arn: env.optional("SCHEDULER_DLQ_ARN").filter(|v| !v.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn missing_variable_is_named() {
        let err = Config::from_source(&env(&[("AWS_REGION", "eu-west-1")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing("TABLE_NAME"));
        assert!(err.to_string().contains("TABLE_NAME"));
    }

    #[test]
    fn empty_variable_counts_as_missing() {
        let err = Config::from_source(&env(&[("AWS_REGION", ""), ("TABLE_NAME", "t")]));
        assert_eq!(err.unwrap_err(), ConfigError::Missing("AWS_REGION"));
    }

    #[test]
    fn endpoint_is_optional_and_checked() {
        let c = Config::from_source(&env(&[("AWS_REGION", "eu-west-1"), ("TABLE_NAME", "t")]));
        assert_eq!(c.unwrap().aws.endpoint_url, None);
        let err = Config::from_source(&env(&[
            ("AWS_REGION", "eu-west-1"),
            ("TABLE_NAME", "t"),
            ("AWS_ENDPOINT_URL", "localhost:5000"),
        ]));
        assert!(matches!(
            err,
            Err(ConfigError::Invalid {
                name: "AWS_ENDPOINT_URL",
                ..
            })
        ));
    }

    #[test]
    fn meta_settings_default_the_graph_url_and_hide_secrets() {
        let m = MetaSettings::from_source(&env(&[
            ("META_APP_SECRET", "s3cr3t"),
            ("META_VERIFY_TOKEN", "v"),
        ]))
        .unwrap();
        assert_eq!(m.graph_url, DEFAULT_META_GRAPH_URL);
        assert!(!format!("{m:?}").contains("s3cr3t"));
    }

    #[test]
    fn outbound_settings_name_the_variable_that_is_wrong() {
        let s = OutboundSettings::from_source(&env(&[])).unwrap();
        assert_eq!(s, OutboundSettings::default());
        let s = OutboundSettings::from_source(&env(&[
            ("OUTBOUND_CALL_TIMEOUT_MS", "500"),
            ("OUTBOUND_SEND_BUDGET_MS", "2000"),
        ]))
        .unwrap();
        assert_eq!(s.call_timeout, Duration::from_millis(500));
        assert_eq!(s.budget, Duration::from_millis(2000));
        let err = OutboundSettings::from_source(&env(&[("OUTBOUND_RETRY_BASE_MS", "soon")]));
        assert!(matches!(
            err,
            Err(ConfigError::Invalid {
                name: "OUTBOUND_RETRY_BASE_MS",
                ..
            })
        ));
        let one_call = OutboundSettings::from_source(&env(&[
            ("OUTBOUND_CALL_TIMEOUT_MS", "10000"),
            ("OUTBOUND_SEND_BUDGET_MS", "10000"),
        ]));
        assert!(
            matches!(
                one_call,
                Err(ConfigError::Invalid {
                    name: "OUTBOUND_SEND_BUDGET_MS",
                    ..
                })
            ),
            "a budget of exactly one call never starts a call"
        );
        let err = OutboundSettings::from_source(&env(&[("OUTBOUND_SEND_BUDGET_MS", "10")]));
        assert!(matches!(
            err,
            Err(ConfigError::Invalid {
                name: "OUTBOUND_SEND_BUDGET_MS",
                ..
            })
        ));
    }

    #[test]
    fn provider_urls_default_and_are_checked() {
        let u = ProviderUrls::from_source(&env(&[])).unwrap();
        assert_eq!(u.graph, DEFAULT_META_GRAPH_URL);
        assert_eq!(u.wechat, DEFAULT_WECHAT_API_URL);
        let err = ProviderUrls::from_source(&env(&[("WECHAT_API_URL", "api.weixin")]));
        assert!(matches!(
            err,
            Err(ConfigError::Invalid {
                name: "WECHAT_API_URL",
                ..
            })
        ));
    }
}
