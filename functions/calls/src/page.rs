//! The call page (`GET /call/{token}`): server-rendered HTML (askama), one inline style
//! sheet and one inline script, each allowed by its hash in a strict
//! Content-Security-Policy that lets the page connect only to the signaling WebSocket API.
//! The script gets the camera and microphone, connects to the signaling with the page's
//! token and runs "perfect negotiation" (both sides may start; the customer yields).

use std::sync::LazyLock;

use askama::Template;
use base64::Engine;
use chrono::Utc;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use sha2::{Digest, Sha256};
use shared::domain::call::CallStatus;
use shared::http;
use shared::service::calls;
use tracing::error;

use crate::App;

const CSS: &str = include_str!("../templates/call.css");
const JS: &str = include_str!("../templates/call.js");

fn hash(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
}

static STYLE_HASH: LazyLock<String> = LazyLock::new(|| hash(CSS));
static SCRIPT_HASH: LazyLock<String> = LazyLock::new(|| hash(JS));

#[derive(Template)]
#[template(path = "call.html")]
struct CallPage {
    css: &'static str,
    js: &'static str,
    title: String,
    initial: &'static str,
    status_text: String,
    /// The script's configuration (JSON), when the call can be joined.
    config: Option<String>,
}

/// `GET /call/{token}`.
pub async fn serve(app: &App, req: &Request) -> Response<Body> {
    let token = http::path_param(req, "token").unwrap_or_default();
    let (status, page) = match calls::page(&app.store, token).await {
        Ok(None) => (
            StatusCode::NOT_FOUND,
            closed("Call not found", "This call link does not exist."),
        ),
        Ok(Some((call, role))) => {
            let over = matches!(call.status, CallStatus::Ended | CallStatus::Missed)
                || shared::domain::time::parse_rfc3339(&call.expires_at)
                    .is_some_and(|e| e <= Utc::now() && call.status == CallStatus::Ringing);
            if over {
                (
                    StatusCode::GONE,
                    closed("This call has ended", "Ask for a new call in the chat."),
                )
            } else {
                let config = serde_json::json!({
                    "signaling": app.signaling_url,
                    "token": token,
                    "role": role.as_str(),
                    "stun": app.stun_urls,
                })
                .to_string()
                .replace('<', "\\u003c");
                (
                    StatusCode::OK,
                    CallPage {
                        css: CSS,
                        js: JS,
                        title: "Video call".into(),
                        initial: "waiting",
                        status_text: "Starting…".into(),
                        config: Some(config),
                    },
                )
            }
        }
        Err(e) => {
            error!(cause = %e, "call page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                closed("Something went wrong", "Please try again in a moment."),
            )
        }
    };
    html(status, &page, &app.signaling_url)
}

fn closed(title: &str, text: &str) -> CallPage {
    CallPage {
        css: CSS,
        js: JS,
        title: title.into(),
        initial: "ended",
        status_text: text.into(),
        config: None,
    }
}

fn html(status: StatusCode, page: &CallPage, signaling: &str) -> Response<Body> {
    let (status, body) = match page.render() {
        Ok(body) => (status, body),
        Err(e) => {
            error!(cause = %e, "call page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned(),
            )
        }
    };
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; connect-src {signaling}; media-src 'self' blob: mediastream:; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        *STYLE_HASH, *SCRIPT_HASH
    );
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(self), microphone=(self)"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_inlines_exactly_what_its_policy_allows() {
        let page = CallPage {
            css: CSS,
            js: JS,
            title: "Video call".into(),
            initial: "waiting",
            status_text: "Starting…".into(),
            config: Some(r#"{"signaling":"ws://x","token":"t","role":"agent","stun":[]}"#.into()),
        }
        .render()
        .unwrap();
        assert!(page.contains(&format!("<script>{JS}</script>")));
        assert!(page.contains(&format!("<style>{CSS}</style>")));
        assert!(!page.contains("http://") && !page.contains("https://"));
    }
}
