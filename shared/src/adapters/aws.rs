//! The one `SdkConfig` of a process.

use aws_config::{BehaviorVersion, Region};

pub use aws_credential_types::Credentials;
pub use aws_credential_types::provider::SharedCredentialsProvider;

use crate::config::AwsSettings;

/// Builds the process's `SdkConfig` from explicit settings.
///
/// Built directly rather than through the default provider chain, so start-up makes no
/// network call (no IMDS, no STS) and reads no profile files: the region and endpoint come
/// from [`AwsSettings`], the credentials from the given provider. Call once per process and
/// build every client from the result.
pub fn sdk_config(settings: &AwsSettings, credentials: SharedCredentialsProvider) -> SdkConfig {
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(settings.region.clone()))
        .credentials_provider(credentials);
    match &settings.endpoint_url {
        Some(url) => builder = builder.endpoint_url(url.clone()),
        None => builder = builder.http_client(aws_https_client()),
    }
    builder.build()
}

/// The root CAs of every AWS service endpoint: Amazon Root CA 1-4 and the Starfield
/// Services G2 root that cross-signs them (public certificates, as Debian ships them).
const AMAZON_ROOTS: &[u8] = include_bytes!("amazon_roots.pem");

/// The SDK's HTTPS client for AWS itself: rustls with aws-lc, trusting the Amazon roots
/// only. The default client reads and parses the whole system certificate store when a
/// client is built (several milliseconds of every cold start); these five certificates
/// come from the binary. With an endpoint override (the local emulator, a proxy) the
/// SDK's default client and the system store are used instead.
fn aws_https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_ROOTS);
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .unwrap_or_default();
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https()
}

/// Credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`,
/// which is how Lambda hands a function its role's credentials.
pub fn environment_credentials() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(
        aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
    )
}

/// The DynamoDB client type.
pub use aws_sdk_dynamodb::Client as DynamoDbClient;

/// The DynamoDB client of a process (build once, clone freely).
pub fn dynamodb_client(sdk: &SdkConfig) -> DynamoDbClient {
    DynamoDbClient::new(sdk)
}

pub use aws_config::SdkConfig;
/// The EventBridge client type.
pub use aws_sdk_eventbridge::Client as EventBridgeClient;

/// The EventBridge client of a process (build once, clone freely).
pub fn eventbridge_client(sdk: &SdkConfig) -> EventBridgeClient {
    EventBridgeClient::new(sdk)
}

/// The EventBridge Scheduler client type.
pub use aws_sdk_scheduler::Client as SchedulerClient;

/// The EventBridge Scheduler client of a process (build once, clone freely).
pub fn scheduler_client(sdk: &SdkConfig) -> SchedulerClient {
    SchedulerClient::new(sdk)
}

/// The S3 client of a process; path-style addressing when an endpoint override (the local
/// emulator) is set.
pub fn s3_client(sdk: &SdkConfig, settings: &AwsSettings) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(settings.endpoint_url.is_some())
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_amazon_roots_are_five_pem_certificates() {
        let text = std::str::from_utf8(AMAZON_ROOTS).expect("ascii");
        assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        assert_eq!(text.matches("-----END CERTIFICATE-----").count(), 5);
    }

    #[tokio::test]
    async fn clients_for_aws_build_with_the_amazon_roots() {
        let settings = AwsSettings {
            region: "us-east-1".into(),
            endpoint_url: None,
        };
        let credentials =
            SharedCredentialsProvider::new(Credentials::new("k", "s", None, None, "test"));
        let sdk = sdk_config(&settings, credentials);
        assert!(sdk.http_client().is_some());
        // Building a client selects the HTTP client and parses the trust store.
        let _ = dynamodb_client(&sdk);
    }
}
