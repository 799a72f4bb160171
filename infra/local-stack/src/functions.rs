//! The functions the dev server can run, by the binary name template.yaml gives them.
//!
//! Each is the same library handler the Lambda binary wraps, built from the environment the
//! template declares for it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::future::BoxFuture;
use lambda_http::{Body, Request, Response};
use shared::adapters::aws::{Credentials, SharedCredentialsProvider};

use crate::BoxError;

/// A function handler: API Gateway request in, response out.
pub type Handler =
    Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync>;

/// An EventBridge-triggered handler: event JSON in; `Err` means "retry".
pub type EventHandler = Arc<
    dyn Fn(serde_json::Value) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// An API Gateway WebSocket handler: the proxy event JSON API Gateway sends (`requestContext`
/// with `routeKey`, `eventType` CONNECT / MESSAGE / DISCONNECT, `connectionId`, …) in, the
/// proxy response JSON (`{"statusCode": 200, "body"?: "..."}`) out.
pub type WsHandler =
    Arc<dyn Fn(serde_json::Value) -> BoxFuture<'static, serde_json::Value> + Send + Sync>;

/// What a binary serves: HTTP routes, and for some, EventBridge events or WebSocket routes
/// (one app per binary, as in one Lambda process).
pub struct Built {
    /// The HTTP handler (`None` for a function without HTTP routes).
    pub http: Option<Handler>,
    /// The event handler, for functions with `EventBridgeRule` events.
    pub event: Option<EventHandler>,
    /// The WebSocket handler, for the function a WebSocket API's integration invokes.
    pub websocket: Option<WsHandler>,
}

/// Credentials for the emulator (it checks none).
pub fn local_credentials() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new(
        "local",
        "local",
        None,
        None,
        "local-stack",
    ))
}

fn wrap<A, F, Fut>(app: A, f: F) -> Handler
where
    A: Send + Sync + 'static,
    F: Fn(Arc<A>, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let app = Arc::new(app);
    Arc::new(move |req| Box::pin(f(app.clone(), req)))
}

/// Builds the handlers of a binary from its resolved environment.
pub fn build(binary: &str, env: &HashMap<String, String>) -> Result<Built, BoxError> {
    let fail = |e: shared::config::ConfigError| format!("function {binary}: {e}");
    Ok(match binary {
        "chatroom" => Built {
            http: Some(wrap(
                chatroom::App::from_source(env, local_credentials()).map_err(fail)?,
                |app, req| async move { chatroom::handle(&app, req).await },
            )),
            event: None,
            websocket: None,
        },
        "webhook" => Built {
            http: Some(wrap(
                webhook::App::from_source(env, local_credentials()).map_err(fail)?,
                |app, req| async move { webhook::handle(&app, req).await },
            )),
            event: None,
            websocket: None,
        },
        "bookings" => Built {
            http: Some(wrap(
                bookings::App::from_source(env, local_credentials()).map_err(fail)?,
                |app, req| async move { bookings::handle_http(&app, req).await },
            )),
            event: None,
            websocket: None,
        },
        "calls" => {
            let app = Arc::new(calls::App::from_source(env, local_credentials()).map_err(fail)?);
            let http_app = app.clone();
            let http: Handler = Arc::new(move |req| {
                let app = http_app.clone();
                Box::pin(async move { calls::handle_http(&app, req).await })
            });
            let websocket: WsHandler = Arc::new(move |event| {
                let app = app.clone();
                Box::pin(async move { calls::handle_websocket(&app, event).await })
            });
            Built {
                http: Some(http),
                event: None,
                websocket: Some(websocket),
            }
        }
        "payments" => Built {
            http: Some(wrap(
                payments::App::from_source(env, local_credentials()).map_err(fail)?,
                |app, req| async move { payments::handle_http(&app, req).await },
            )),
            event: None,
            websocket: None,
        },
        "outbound" => Built {
            http: Some(wrap(
                outbound::App::from_source(env, local_credentials()).map_err(fail)?,
                |app, req| async move { outbound::handle(&app, req).await },
            )),
            event: None,
            websocket: None,
        },
        "media" => {
            let app = Arc::new(media::App::from_source(env, local_credentials()).map_err(fail)?);
            let http_app = app.clone();
            let http: Handler = Arc::new(move |req| {
                let app = http_app.clone();
                Box::pin(async move { media::handle_http(&app, req).await })
            });
            let event: EventHandler = Arc::new(move |event| {
                let app = app.clone();
                Box::pin(async move {
                    media::handle_event(&app, &event)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            });
            Built {
                http: Some(http),
                event: Some(event),
                websocket: None,
            }
        }
        "scheduler" => {
            let app =
                Arc::new(scheduler::App::from_source(env, local_credentials()).map_err(fail)?);
            let http_app = app.clone();
            let http: Handler = Arc::new(move |req| {
                let app = http_app.clone();
                Box::pin(async move { scheduler::handle_http(&app, req).await })
            });
            let event: EventHandler = Arc::new(move |event| {
                let app = app.clone();
                Box::pin(async move {
                    scheduler::handle_event(&app, &event)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            });
            Built {
                http: Some(http),
                event: Some(event),
                websocket: None,
            }
        }
        "bots" => {
            let app = Arc::new(bots::App::from_source(env, local_credentials()).map_err(fail)?);
            let event: EventHandler = Arc::new(move |event| {
                let app = app.clone();
                Box::pin(async move {
                    bots::handle_event(&app, &event)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            });
            Built {
                http: None,
                event: Some(event),
                websocket: None,
            }
        }
        other => {
            return Err(format!(
                "template.yaml names a binary the dev server does not know: {other}"
            )
            .into());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LOCAL_REGION;
    use crate::template::{Template, default_path};

    /// Every function starts with the environment template.yaml gives it (only the
    /// secrets and the emulator's endpoint supplied), so a setting that cannot work in AWS
    /// (say, a send budget of exactly one provider call) fails here, not in a deployment.
    #[test]
    fn every_function_starts_with_the_templates_own_settings() {
        let template = Template::load(&default_path(), LOCAL_REGION).unwrap();
        let secrets: HashMap<String, String> = [
            ("META_APP_SECRET", "secret"),
            ("META_VERIFY_TOKEN", "token"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for function in template.functions().unwrap() {
            let mut env = template.resolve_environment(&function, &secrets).unwrap();
            env.insert("AWS_REGION".into(), LOCAL_REGION.into());
            env.insert("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into());
            if let Err(e) = build(&function.binary, &env) {
                panic!(
                    "{} does not start with its template settings: {e}",
                    function.binary
                );
            }
        }
    }
}
