//! Counts the AWS requests a client sends (every attempt, retries included), by the
//! operation named in `x-amz-target` (DynamoDB, EventBridge) or S3's `x-id` / HTTP method.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;

/// An SDK interceptor recording each request sent.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    sent: Arc<Mutex<Vec<String>>>,
}

impl RequestCounter {
    /// The operations sent since the last call, in order.
    pub fn take(&self) -> Vec<String> {
        self.sent
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let operation = match request.headers().get("x-amz-target") {
            Some(target) => target.rsplit('.').next().unwrap_or(target).to_owned(),
            // S3 names the operation in `x-id`, except for a few plain verbs.
            None => {
                let uri = request.uri();
                match uri.split("x-id=").nth(1) {
                    Some(id) => id.split('&').next().unwrap_or(id).to_owned(),
                    None => match request.method() {
                        "HEAD" => "HeadObject".to_owned(),
                        "PUT" => "PutObject".to_owned(),
                        method => format!("{method} {uri}"),
                    },
                }
            }
        };
        if let Ok(mut sent) = self.sent.lock() {
            sent.push(operation);
        }
        Ok(())
    }
}
