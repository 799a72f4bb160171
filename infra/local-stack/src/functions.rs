//! The functions the dev server can run, by the binary name template.yaml gives them.
//!
//! Each is the same library handler the Lambda binary wraps, built from the environment the
//! template declares for it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use shared::adapters::aws::{Credentials, SharedCredentialsProvider};

use crate::BoxError;

/// A function handler: API Gateway request in, response out.
pub type Handler =
    Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync>;

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

/// Builds the handler of a binary from its resolved environment.
pub fn build(binary: &str, env: &HashMap<String, String>) -> Result<Handler, BoxError> {
    let fail = |e: shared::config::ConfigError| format!("function {binary}: {e}");
    Ok(match binary {
        "chatroom" => wrap(
            chatroom::App::from_source(env, local_credentials()).map_err(fail)?,
            |app, req| async move { chatroom::handle(&app, req).await },
        ),
        "webhook" => wrap(
            webhook::App::from_source(env, local_credentials()).map_err(fail)?,
            |app, req| async move { webhook::handle(&app, req).await },
        ),
        other => {
            return Err(format!(
                "template.yaml names a binary the dev server does not know: {other}"
            )
            .into());
        }
    })
}
