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
    if let Some(url) = &settings.endpoint_url {
        builder = builder.endpoint_url(url.clone());
    }
    builder.build()
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

/// The S3 client of a process; path-style addressing when an endpoint override (the local
/// emulator) is set.
pub fn s3_client(sdk: &SdkConfig, settings: &AwsSettings) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(settings.endpoint_url.is_some())
            .build(),
    )
}
