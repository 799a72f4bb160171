//! WhatsApp message templates at the Graph API: create, list and delete per business
//! account, with Meta's review outcome chosen by the name (`pending_…`, `rejected_…`).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::faults::{GraphError, graph_error};
use super::graph::check_token;
use super::{Answer, Api, Sandbox, query_map};

/// A WhatsApp message template of a business account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Template {
    id: String,
    name: String,
    language: String,
    status: &'static str,
    category: String,
    components: Value,
}

fn template_error(status: StatusCode, subcode: Option<i64>, title: &str, detail: &str) -> Answer {
    let mut answer = graph_error(
        Api::Messenger,
        status,
        GraphError {
            code: 100,
            subcode,
            message: "Invalid parameter",
            details: None,
        },
    );
    answer.body["error"]["error_user_title"] = json!(title);
    answer.body["error"]["error_user_msg"] = json!(detail);
    answer
}

/// The template a creation request describes, or why it is refused.
fn parse_template(body: &[u8]) -> Result<(String, String, String, Value), Answer> {
    let bad =
        |detail: &str| template_error(StatusCode::BAD_REQUEST, None, "Invalid parameter", detail);
    let v: Value = serde_json::from_slice(body).map_err(|_| bad("the body is not JSON"))?;
    let name = v["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("name is required"))?;
    if name.len() > 512
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(bad(
            "name may hold only lowercase letters, digits and underscores (at most 512)",
        ));
    }
    let language = v["language"]
        .as_str()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| bad("language is required"))?;
    let category = v["category"]
        .as_str()
        .map(str::to_ascii_uppercase)
        .filter(|c| ["MARKETING", "UTILITY", "AUTHENTICATION"].contains(&c.as_str()))
        .ok_or_else(|| bad("category must be MARKETING, UTILITY or AUTHENTICATION"))?;
    let components = v["components"]
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad("components must be a non-empty array"))?;
    let mut has_body = false;
    for c in components {
        match c["type"].as_str().map(str::to_ascii_uppercase).as_deref() {
            Some("BODY") => {
                has_body = true;
                if c["text"].as_str().is_none_or(str::is_empty) {
                    return Err(bad("the BODY component needs text"));
                }
            }
            Some("HEADER" | "FOOTER" | "BUTTONS") => {}
            _ => {
                return Err(bad(
                    "component type must be HEADER, BODY, FOOTER or BUTTONS",
                ));
            }
        }
    }
    if !has_body {
        return Err(bad("a BODY component is required"));
    }
    Ok((
        name.to_owned(),
        language.to_owned(),
        category,
        Value::Array(components.clone()),
    ))
}

/// `POST /graph/{waba_id}/message_templates`.
pub(super) async fn create(
    State(sandbox): State<Sandbox>,
    Path(waba): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(answer) = check_token(&headers, query.as_deref(), Api::Messenger) {
        return answer.into_response();
    }
    let (name, language, category, components) = match parse_template(&body) {
        Ok(t) => t,
        Err(answer) => return answer.into_response(),
    };
    let status = if name.starts_with("pending_") {
        "PENDING"
    } else if name.starts_with("rejected_") {
        "REJECTED"
    } else {
        "APPROVED"
    };
    let mut state = sandbox.state();
    state.next_template_id += 1;
    let id = state.next_template_id.to_string();
    let templates = state.templates.entry(waba).or_default();
    if templates
        .iter()
        .any(|t| t.name == name && t.language == language)
    {
        return template_error(
            StatusCode::BAD_REQUEST,
            Some(2388024),
            "Message template already exists",
            &format!("There is already {language} content for this template ({name})."),
        )
        .into_response();
    }
    templates.push(Template {
        id: id.clone(),
        name,
        language,
        status,
        category: category.clone(),
        components,
    });
    Answer::json(
        StatusCode::OK,
        json!({"id": id, "status": status, "category": category}),
    )
    .into_response()
}

/// `GET /graph/{waba_id}/message_templates?name=&status=`.
pub(super) async fn list(
    State(sandbox): State<Sandbox>,
    Path(waba): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(answer) = check_token(&headers, query.as_deref(), Api::Messenger) {
        return answer.into_response();
    }
    let q = query_map(query.as_deref());
    let data: Vec<Template> = sandbox
        .state()
        .templates
        .get(&waba)
        .map(|ts| {
            ts.iter()
                .filter(|t| q.get("name").is_none_or(|n| t.name.contains(n.as_str())))
                .filter(|t| {
                    q.get("status")
                        .is_none_or(|s| t.status.eq_ignore_ascii_case(s))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    Answer::json(
        StatusCode::OK,
        json!({"data": data, "paging": {"cursors": {"before": "", "after": ""}}}),
    )
    .into_response()
}

/// `DELETE /graph/{waba_id}/message_templates?name=[&hsm_id=]`: every language of the
/// name (or the one template `hsm_id`).
pub(super) async fn delete(
    State(sandbox): State<Sandbox>,
    Path(waba): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(answer) = check_token(&headers, query.as_deref(), Api::Messenger) {
        return answer.into_response();
    }
    let q = query_map(query.as_deref());
    let Some(name) = q.get("name").filter(|n| !n.is_empty()) else {
        return template_error(
            StatusCode::BAD_REQUEST,
            None,
            "Invalid parameter",
            "name is required",
        )
        .into_response();
    };
    let hsm_id = q.get("hsm_id");
    let mut state = sandbox.state();
    let templates = state.templates.entry(waba).or_default();
    let before = templates.len();
    templates.retain(|t| !(t.name == *name && hsm_id.is_none_or(|id| t.id == *id)));
    if templates.len() == before {
        return template_error(
            StatusCode::BAD_REQUEST,
            None,
            "Message template not found",
            &format!("No message template named {name} exists in this account."),
        )
        .into_response();
    }
    Answer::json(StatusCode::OK, json!({"success": true})).into_response()
}
