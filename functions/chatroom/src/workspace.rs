//! The agent workspace routes (SPEC §7): tenant settings, the agent directory and the
//! FAQ catalog. Each request is parsed once into a [`Call`] (the role is checked before
//! the body is read), then one service answers it.

use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::Error;
use shared::domain::agent::PutAgent;
use shared::domain::auth::Principal;
use shared::domain::faq::FaqInput;
use shared::domain::page::PageRequest;
use shared::http::{self, json};
use shared::service::faqs::RenderRequest;
use shared::service::{agents, faqs, settings};

use crate::App;

/// The routes served here, as API Gateway names them.
pub(crate) const ROUTES: [&str; 10] = [
    "GET /settings",
    "PUT /settings",
    "GET /agents",
    "PUT /agents/{id}",
    "DELETE /agents/{id}",
    "GET /faqs",
    "POST /faqs",
    "PUT /faqs/{id}",
    "DELETE /faqs/{id}",
    "POST /faqs/{id}/render",
];

/// Routes for admins only.
const ADMIN_ROUTES: [&str; 6] = [
    "PUT /settings",
    "PUT /agents/{id}",
    "DELETE /agents/{id}",
    "POST /faqs",
    "PUT /faqs/{id}",
    "DELETE /faqs/{id}",
];

/// One workspace request, parsed.
enum Call {
    GetSettings,
    PutSettings(serde_json::Value),
    ListAgents(PageRequest),
    PutAgent(String, PutAgent),
    DeleteAgent(String),
    ListFaqs(Option<String>, PageRequest),
    CreateFaq(FaqInput),
    ReplaceFaq(String, FaqInput),
    DeleteFaq(String),
    RenderFaq(String, RenderRequest),
}

/// The caller and the call: 401 without claims, 403 for an agent on an admin route
/// (before the body is looked at), then 400/413/422 for the body or query.
fn parse(req: &Request, route: &str) -> Result<(Principal, Call), Error> {
    let principal = http::principal(req)?;
    if ADMIN_ROUTES.contains(&route) {
        principal.require_admin()?;
    }
    let id = || http::path_param(req, "id").unwrap_or_default().to_owned();
    let call = match route {
        "GET /settings" => Call::GetSettings,
        "PUT /settings" => Call::PutSettings(http::json_value(req)?),
        "GET /agents" => Call::ListAgents(http::page_request(req)?),
        "PUT /agents/{id}" => Call::PutAgent(id(), http::json_body(req)?),
        "DELETE /agents/{id}" => Call::DeleteAgent(id()),
        "GET /faqs" => Call::ListFaqs(
            http::query(req, "q").map(str::to_owned),
            http::page_request(req)?,
        ),
        "POST /faqs" => Call::CreateFaq(http::json_body(req)?),
        "PUT /faqs/{id}" => Call::ReplaceFaq(id(), http::json_body(req)?),
        "DELETE /faqs/{id}" => Call::DeleteFaq(id()),
        "POST /faqs/{id}/render" => Call::RenderFaq(id(), http::json_body(req)?),
        _ => return Err(Error::NotFound { what: "route" }),
    };
    Ok((principal, call))
}

fn no_content() -> Result<Response<Body>, Error> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::Empty)
        .map_err(|e| Error::Internal(e.to_string()))
}

/// Answers one of [`ROUTES`].
pub(crate) async fn route(app: &App, req: &Request, route: &str) -> Result<Response<Body>, Error> {
    let (principal, call) = parse(req, route)?;
    let store = &app.store;
    let now = Utc::now();
    match call {
        Call::GetSettings => {
            let s = settings::get_settings(store, &principal).await?;
            Ok(json(StatusCode::OK, &s))
        }
        Call::PutSettings(body) => {
            let s = settings::put_settings(store, &principal, &body, now).await?;
            Ok(json(StatusCode::OK, &s))
        }
        Call::ListAgents(page) => {
            let list = agents::list_agents(store, &principal, &page).await?;
            Ok(json(StatusCode::OK, &list))
        }
        Call::PutAgent(id, body) => {
            let agent = agents::put_agent(store, &principal, &id, body, now).await?;
            Ok(json(StatusCode::OK, &agent))
        }
        Call::DeleteAgent(id) => {
            agents::delete_agent(store, &principal, &id).await?;
            no_content()
        }
        Call::ListFaqs(q, page) => {
            let list = faqs::list_faqs(store, &principal, q.as_deref(), &page).await?;
            Ok(json(StatusCode::OK, &list))
        }
        Call::CreateFaq(input) => {
            let faq = faqs::create_faq(store, &principal, input, now).await?;
            Ok(json(StatusCode::CREATED, &faq))
        }
        Call::ReplaceFaq(id, input) => {
            let faq = faqs::replace_faq(store, &principal, &id, input, now).await?;
            Ok(json(StatusCode::OK, &faq))
        }
        Call::DeleteFaq(id) => {
            faqs::delete_faq(store, &principal, &id).await?;
            no_content()
        }
        Call::RenderFaq(id, request) => {
            let rendered = faqs::render_faq(store, &principal, &id, request).await?;
            Ok(json(StatusCode::OK, &rendered))
        }
    }
}
