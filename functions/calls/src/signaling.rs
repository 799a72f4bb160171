//! API Gateway's management API (`@connections`) as the [`Signaling`] port: a post to a
//! connection, `GoneException` meaning it is gone. The endpoint is the WebSocket API's
//! own (`https://{domainName}/{stage}` from the event) unless `SIGNALING_MANAGEMENT_URL`
//! names one (locally: the dev server, which answers the management API itself).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use shared::Error;
use shared::ports::Signaling;

/// Management API clients by endpoint, built once per endpoint (one per deployment).
#[derive(Clone)]
pub struct Management {
    sdk: aws_config::SdkConfig,
    fixed: Option<String>,
    clients: Arc<Mutex<HashMap<String, Client>>>,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("fixed", &self.fixed)
            .finish_non_exhaustive()
    }
}

impl Management {
    /// Clients from `sdk`; `fixed` overrides every event's endpoint.
    pub fn new(sdk: aws_config::SdkConfig, fixed: Option<String>) -> Self {
        Self {
            sdk,
            fixed,
            clients: Arc::default(),
        }
    }

    /// The port for an event whose API is at `endpoint`.
    pub fn for_endpoint(&self, endpoint: Option<&str>) -> Connections {
        let endpoint = self
            .fixed
            .clone()
            .or_else(|| endpoint.map(str::to_owned))
            .unwrap_or_default();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let client = clients
            .entry(endpoint.clone())
            .or_insert_with(|| {
                let config = aws_sdk_apigatewaymanagement::config::Builder::from(&self.sdk)
                    .endpoint_url(endpoint)
                    .build();
                Client::from_conf(config)
            })
            .clone();
        Connections { client }
    }
}

/// The management API of one WebSocket API.
pub struct Connections {
    client: Client,
}

impl Signaling for Connections {
    async fn post(&self, connection_id: &str, data: &str) -> Result<bool, Error> {
        let result = self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(data.as_bytes().to_vec()))
            .send()
            .await;
        match result.map_err(aws_sdk_apigatewaymanagement::error::SdkError::into_service_error) {
            Ok(_) => Ok(true),
            Err(PostToConnectionError::GoneException(_)) => Ok(false),
            Err(other) => Err(Error::Upstream {
                provider: "apigateway",
                message: aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&other)
                    .to_string(),
            }),
        }
    }
}
