//! Which Meta accounts an access token controls: the sandbox's stand-in for a business's
//! assets in Meta Business Manager, so a channel connected with a token is checked as Meta
//! would check it (the product proves ownership before storing a channel).
//!
//! Granted through `POST /sandbox/meta/assets` (or [`Sandbox::grant_meta`] in process):
//! `{"access_token", "app_secret"?, "waba_id"?, "phone_number_ids"?: [..], "page_ids"?:
//! [..], "instagram_ids"?: [..]}`, added to what the token already has. Answered:
//!
//! - `GET /graph/{waba_id}/phone_numbers` (`fields`, `limit`, `after`): the WABA's numbers,
//!   paged with `paging.cursors` and `paging.next` as Graph pages them;
//! - `GET /graph/{page_id}/subscribed_apps`: the Page's subscribed app, for a token of it;
//! - `GET /graph/{ig_user_id}?fields=id,username`: the account, for a token of it.
//!
//! Refusals as Graph gives them: code 190 (401) for a token it cannot parse, 100 with
//! subcode 33 (400) for an object the token may not see, 100 "Invalid appsecret_proof"
//! (400) when the proof is not the app secret's.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::faults::{GraphError, graph_error};
use super::{Answer, Api, Sandbox, SandboxError, query_map};

/// What one access token controls.
#[derive(Debug, Clone, Default)]
pub(super) struct Grant {
    app_secret: Option<String>,
    /// WABA id → its phone number ids.
    wabas: BTreeMap<String, BTreeSet<String>>,
    pages: BTreeSet<String>,
    instagram: BTreeSet<String>,
}

/// A grant as the control API takes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaAssets {
    /// The token that controls them.
    pub access_token: String,
    /// The app secret of the token's app (then `appsecret_proof` is checked when sent).
    #[serde(default)]
    pub app_secret: Option<String>,
    /// A WhatsApp Business Account.
    #[serde(default)]
    pub waba_id: Option<String>,
    /// Phone number ids under `waba_id`.
    #[serde(default)]
    pub phone_number_ids: Vec<String>,
    /// Facebook Page ids.
    #[serde(default)]
    pub page_ids: Vec<String>,
    /// Instagram professional account ids.
    #[serde(default)]
    pub instagram_ids: Vec<String>,
}

impl Sandbox {
    /// Lets `assets.access_token` control the given accounts (added to what it has).
    ///
    /// # Errors
    /// `BadRequest` for an empty token, or phone numbers without their WABA.
    pub fn grant_meta(&self, assets: MetaAssets) -> Result<(), SandboxError> {
        let bad = |message: &str| SandboxError::BadRequest {
            code: "invalid_assets",
            message: message.to_owned(),
        };
        if assets.access_token.is_empty() {
            return Err(bad("access_token is required"));
        }
        if assets.waba_id.is_none() && !assets.phone_number_ids.is_empty() {
            return Err(bad("phone_number_ids need their waba_id"));
        }
        let mut state = self.state();
        let grant = state.meta_grants.entry(assets.access_token).or_default();
        if assets.app_secret.is_some() {
            grant.app_secret = assets.app_secret;
        }
        if let Some(waba) = assets.waba_id {
            grant
                .wabas
                .entry(waba)
                .or_default()
                .extend(assets.phone_number_ids);
        }
        grant.pages.extend(assets.page_ids);
        grant.instagram.extend(assets.instagram_ids);
        Ok(())
    }
}

/// `POST /sandbox/meta/assets`.
pub(super) async fn grant_route(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let granted = serde_json::from_slice::<MetaAssets>(&body)
        .map_err(|e| SandboxError::BadRequest {
            code: "invalid_assets",
            message: e.to_string(),
        })
        .and_then(|assets| sandbox.grant_meta(assets));
    match granted {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

fn refusal(status: StatusCode, code: i64, subcode: Option<i64>, message: &str) -> Response {
    graph_error(
        Api::Messenger,
        status,
        GraphError {
            code,
            subcode,
            message,
            details: None,
        },
    )
    .into_response()
}

fn not_visible(id: &str) -> Response {
    refusal(
        StatusCode::BAD_REQUEST,
        100,
        Some(33),
        &format!(
            "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
        ),
    )
}

/// The token's grant, checking the token and its `appsecret_proof` as Graph does.
fn grant_of(
    sandbox: &Sandbox,
    headers: &HeaderMap,
    query: &BTreeMap<String, String>,
) -> Result<Grant, Box<Response>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_owned)
        .or_else(|| query.get("access_token").cloned())
        .unwrap_or_default();
    let grant = sandbox.state().meta_grants.get(&token).cloned();
    let Some(grant) = grant else {
        return Err(Box::new(refusal(
            StatusCode::UNAUTHORIZED,
            190,
            None,
            "Invalid OAuth access token - Cannot parse access token \
             (sandbox: no grant has this token; POST /sandbox/meta/assets gives it one)",
        )));
    };
    if let (Some(secret), Some(proof)) = (&grant.app_secret, query.get("appsecret_proof"))
        && *proof != shared::adapters::channels::verify::appsecret_proof(secret, &token)
    {
        return Err(Box::new(refusal(
            StatusCode::BAD_REQUEST,
            100,
            None,
            "Invalid appsecret_proof provided in the API argument",
        )));
    }
    Ok(grant)
}

fn sorted_query(query: Option<&str>) -> BTreeMap<String, String> {
    query_map(query).into_iter().collect()
}

/// Phone numbers a page (Graph's default page size 25, at most 100).
const MAX_LIMIT: usize = 100;

/// `GET /graph/{waba_id}/phone_numbers`.
pub(super) async fn phone_numbers(
    State(sandbox): State<Sandbox>,
    Path(waba): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = sorted_query(query.as_deref());
    let grant = match grant_of(&sandbox, &headers, &query) {
        Ok(g) => g,
        Err(refused) => return *refused,
    };
    let Some(numbers) = grant.wabas.get(&waba) else {
        return not_visible(&waba);
    };
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, MAX_LIMIT);
    let after = query.get("after").cloned().unwrap_or_default();
    let rest: Vec<&String> = numbers
        .iter()
        .filter(|n| after.is_empty() || n.as_str() > after.as_str())
        .collect();
    let page: Vec<Value> = rest
        .iter()
        .take(limit)
        .map(|id| {
            json!({
                "id": id,
                "display_phone_number": format!("+1 555-01{:0>2}", id.len() % 100),
                "verified_name": "Sandbox Business",
                "quality_rating": "GREEN",
                "code_verification_status": "VERIFIED",
            })
        })
        .collect();
    let mut paging = json!({"cursors": {
        "before": page.first().map(|n| n["id"].clone()).unwrap_or(Value::Null),
        "after": page.last().map(|n| n["id"].clone()).unwrap_or(Value::Null),
    }});
    if rest.len() > limit {
        paging["next"] = json!(format!(
            "https://graph.facebook.com/v21.0/{waba}/phone_numbers?limit={limit}&after={}",
            page.last()
                .map(|n| n["id"].as_str().unwrap_or_default())
                .unwrap_or_default()
        ));
    }
    Answer::json(StatusCode::OK, json!({"data": page, "paging": paging})).into_response()
}

/// `GET /graph/{page_id}/subscribed_apps`.
pub(super) async fn subscribed_apps(
    State(sandbox): State<Sandbox>,
    Path(page): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = sorted_query(query.as_deref());
    match grant_of(&sandbox, &headers, &query) {
        Ok(grant) if grant.pages.contains(&page) => Answer::json(
            StatusCode::OK,
            json!({"data": [{"category": "Business", "link": "https://chatroom.example/",
                "name": "Chatroom", "id": "1234567890123456",
                "subscribed_fields": ["messages", "messaging_postbacks"]}]}),
        )
        .into_response(),
        Ok(_) => refusal(
            StatusCode::BAD_REQUEST,
            210,
            None,
            "A page access token is required to request this resource.",
        ),
        Err(refused) => *refused,
    }
}

/// Whether `GET /graph/{id}` asks for an account rather than a stored media file: no file
/// has that id, and some token was granted it as an Instagram account or the request asks
/// for an account's `username` (so a token that does not reach the account learns that,
/// as Graph answers, rather than that the token is unreadable).
pub(super) fn is_account(sandbox: &Sandbox, id: &str, query: Option<&str>) -> bool {
    let state = sandbox.state();
    let asks_username = sorted_query(query)
        .get("fields")
        .is_some_and(|f| f.split(',').any(|field| field.trim() == "username"));
    !state.files.contains_key(id)
        && (asks_username || state.meta_grants.values().any(|g| g.instagram.contains(id)))
}

/// `GET /graph/{id}` for an account (not a stored media file): an Instagram account the
/// token's Page is linked to.
pub(super) fn account(
    sandbox: &Sandbox,
    id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let query = sorted_query(query);
    match grant_of(sandbox, headers, &query) {
        Ok(grant) if grant.instagram.contains(id) => Answer::json(
            StatusCode::OK,
            json!({"id": id, "username": format!("sandbox_{id}")}),
        )
        .into_response(),
        Ok(_) => not_visible(id),
        Err(refused) => *refused,
    }
}
