//! Webhook endpoints of an account (`/stripe/v1/webhook_endpoints`): where its events are
//! posted, which types each wants (`enabled_events`, `*` for all), and the signing secret
//! (`whsec_…`), shown once, at creation, as Stripe does.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::super::Sandbox;
use super::api::{Call, Done, Work, run};
use super::params::{Fields, Param};
use super::{Endpoint, MAX_ENDPOINTS, StripeError, StripeState, random_id};

/// Whether `kind` reads as an event type (`checkout.session.completed`) or is `*`.
pub(super) fn is_event_type(kind: &str) -> bool {
    kind == "*"
        || (kind.len() <= 100
            && kind.contains('.')
            && kind.split('.').all(|part| {
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            }))
}

fn new_endpoint(state: &mut StripeState, call: &Call) -> Result<Endpoint, StripeError> {
    let fields: Fields<'_> = call.form.fields();
    fields.only(&[
        "url",
        "enabled_events",
        "description",
        "metadata",
        "api_version",
    ])?;
    let url = fields.required_text("url")?;
    let valid_url = ["http://", "https://"]
        .iter()
        .any(|s| url.strip_prefix(s).is_some_and(|rest| !rest.is_empty()))
        && !url.contains(char::is_whitespace);
    if !valid_url {
        return Err(StripeError::param("url", "Invalid URL: url"));
    }
    let items = fields
        .array("enabled_events")?
        .filter(|items| !items.is_empty())
        .ok_or_else(|| StripeError::missing("enabled_events"))?;
    let mut enabled_events = Vec::with_capacity(items.len());
    for (name, param) in items {
        match param {
            Param::Text(kind) if is_event_type(kind) => {
                enabled_events.push(kind.clone());
            }
            _ => {
                return Err(StripeError::param(
                    &name,
                    format!(
                        "Invalid {name}: not an event type (e.g. checkout.session.completed, or *)"
                    ),
                ));
            }
        }
    }
    let metadata = super::create::metadata(&fields)?;
    let owned = state
        .endpoints
        .iter()
        .filter(|e| e.account == call.account)
        .count();
    if owned >= MAX_ENDPOINTS {
        return Err(StripeError::request(
            StatusCode::BAD_REQUEST,
            format!("An account has at most {MAX_ENDPOINTS} webhook endpoints."),
        ));
    }
    Ok(Endpoint {
        id: random_id("we_", 24),
        account: call.account.clone(),
        url: url.to_owned(),
        enabled_events,
        secret: random_id("whsec_", 32),
        description: fields.text("description")?.map(str::to_owned),
        metadata,
        created: call.now,
    })
}

/// `POST /v1/webhook_endpoints`.
pub(in super::super) async fn create(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = "POST /v1/webhook_endpoints".to_owned();
    let work: Work = Box::new(|state, call| {
        let done = match new_endpoint(state, call) {
            Ok(endpoint) => {
                let body = endpoint.object(true);
                state.endpoints.push(endpoint);
                Done::Ran(StatusCode::OK, body)
            }
            Err(e) => Done::Refused(e),
        };
        (done, Vec::new())
    });
    run(sandbox, headers, route, true, body, work).await
}

/// `GET /v1/webhook_endpoints`: the account's endpoints, newest first (one page).
pub(in super::super) async fn list(State(sandbox): State<Sandbox>, headers: HeaderMap) -> Response {
    let route = "GET /v1/webhook_endpoints".to_owned();
    let work: Work = Box::new(|state, call| {
        let data: Vec<Value> = state
            .endpoints
            .iter()
            .rev()
            .filter(|e| e.account == call.account)
            .map(|e| e.object(false))
            .collect();
        let body = json!({
            "object": "list",
            "data": data,
            "has_more": false,
            "url": "/v1/webhook_endpoints",
        });
        (Done::Ran(StatusCode::OK, body), Vec::new())
    });
    run(sandbox, headers, route, false, Bytes::new(), work).await
}

/// `DELETE /v1/webhook_endpoints/{id}`.
pub(in super::super) async fn delete(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let route = format!("DELETE /v1/webhook_endpoints/{id}");
    let work: Work = Box::new(move |state, call| {
        let before = state.endpoints.len();
        state
            .endpoints
            .retain(|e| !(e.id == id && e.account == call.account));
        let done = if state.endpoints.len() < before {
            let body = json!({"id": id, "object": "webhook_endpoint", "deleted": true});
            Done::Ran(StatusCode::OK, body)
        } else {
            Done::Refused(StripeError::no_such(
                "webhook_endpoint",
                &id,
                "webhook_endpoint",
            ))
        };
        (done, Vec::new())
    });
    run(sandbox, headers, route, false, Bytes::new(), work).await
}
