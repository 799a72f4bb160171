//! `chatroom`: the agent API (health, channels, conversations and messages, read receipts,
//! templates).
//!
//! [`handle`] is what Lambda runs and what the dev server and tests call.

use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::Error;
use shared::adapters::aws::{
    SharedCredentialsProvider, dynamodb_client, scheduler_client, sdk_config,
};
use shared::adapters::cache::CachedDirectory;
use shared::adapters::channels::{CALL_TIMEOUT, Channels};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::scheduler::EventBridgeSchedules;
use shared::config::{Config, ConfigError, ProviderUrls, Source, schedule_target};
use shared::domain::conversation::ConversationFilter;
use shared::domain::customer::CustomerQuery;
use shared::http::{self, json};
use shared::service::{
    changes, channels, conversations, customers, labels, notes, reads, templates,
};

mod bots;
mod workspace;

/// Clients and settings, built once per process.
#[derive(Debug)]
pub struct App {
    store: DynamoStore,
    /// One-time schedules (a snooze's end).
    schedules: EventBridgeSchedules,
    directory: CachedDirectory<DynamoStore>,
    provider: Channels,
}

impl App {
    /// Builds the app from configuration (reads no environment itself).
    pub fn from_source(
        env: &impl Source,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ConfigError> {
        let config = Config::from_source(env)?;
        let sdk = sdk_config(&config.aws, credentials);
        let store = DynamoStore::new(dynamodb_client(&sdk), config.table_name);
        let schedules = EventBridgeSchedules::new(scheduler_client(&sdk), schedule_target(env)?);
        let provider = Channels::new(ProviderUrls::from_source(env)?, CALL_TIMEOUT)
            .map_err(|reason| ConfigError::Invalid {
                name: "META_GRAPH_URL",
                reason,
            })?
            // WeChat tokens through the table: the one a channel's connection fetches is
            // the one its sends use.
            .with_wechat_tokens(store.clone());
        Ok(Self {
            schedules,
            directory: CachedDirectory::new(store.clone()),
            store,
            provider,
        })
    }
}

/// Handles one API Gateway request. Never fails: every error is a response.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::serve("chatroom", &req, |req| route(app, req)).await
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, Error> {
    match http::route_key(req) {
        "GET /health" => Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"}))),
        "POST /channels" => {
            let principal = http::principal(req)?;
            principal.require_admin()?;
            let body = http::json_body(req)?;
            let channel =
                channels::connect_channel(&app.store, &app.provider, &principal, body, Utc::now())
                    .await?;
            Ok(json(StatusCode::CREATED, &channel))
        }
        "GET /conversations" => {
            let principal = http::principal(req)?;
            let filter =
                ConversationFilter::parse(|name| http::query(req, name).map(str::to_owned))?;
            let page = http::page_request(req)?;
            let list = conversations::list_conversations(
                &app.store,
                &principal,
                &filter,
                &page,
                Utc::now(),
            )
            .await?;
            Ok(json(StatusCode::OK, &list))
        }
        "GET /conversations/{id}" => {
            let principal = http::principal(req)?;
            let id = http::path_param(req, "id").unwrap_or_default();
            let conversation =
                conversations::get_conversation(&app.store, &principal, id, Utc::now()).await?;
            Ok(json(StatusCode::OK, &conversation))
        }
        "GET /conversations/{id}/messages" => {
            let principal = http::principal(req)?;
            let id = http::path_param(req, "id").unwrap_or_default();
            let page = http::page_request(req)?;
            let messages = conversations::list_messages(&app.store, &principal, id, &page).await?;
            Ok(json(StatusCode::OK, &messages))
        }
        "GET /channels" => {
            let principal = http::principal(req)?;
            let page = http::page_request(req)?;
            let channels = channels::list_channels(&app.store, &principal, &page).await?;
            Ok(json(StatusCode::OK, &channels))
        }
        "GET /templates" => {
            let principal = http::principal(req)?;
            let page = http::page_request(req)?;
            let list = templates::list_templates(&app.store, &principal, &page).await?;
            Ok(json(StatusCode::OK, &list))
        }
        "POST /templates" => {
            let principal = http::principal(req)?;
            principal.require_admin()?;
            let body = http::json_body(req)?;
            let template = templates::create_template(
                &app.store,
                &app.directory,
                &app.provider,
                &principal,
                body,
                Utc::now(),
            )
            .await?;
            Ok(json(StatusCode::CREATED, &template))
        }
        "DELETE /templates/{id}" => {
            let principal = http::principal(req)?;
            let id = http::path_param(req, "id").unwrap_or_default();
            templates::delete_template(&app.store, &app.directory, &app.provider, &principal, id)
                .await?;
            no_content()
        }
        "PUT /conversations/{id}/assignee" => {
            let principal = http::principal(req)?;
            let id = http::path_param(req, "id").unwrap_or_default();
            let body = http::json_value(req)?;
            let conversation =
                changes::assign(&app.store, &principal, id, &body, Utc::now()).await?;
            Ok(json(StatusCode::OK, &conversation))
        }
        "PATCH /conversations/{id}" => {
            let principal = http::principal(req)?;
            let id = http::path_param(req, "id").unwrap_or_default();
            let body = http::json_body(req)?;
            let conversation =
                changes::set_status(&app.store, &app.schedules, &principal, id, body, Utc::now())
                    .await?;
            Ok(json(StatusCode::OK, &conversation))
        }
        "PUT /customers/{id}/labels/{label}" | "DELETE /customers/{id}/labels/{label}" => {
            let principal = http::principal(req)?;
            let id = http::path_param(req, "id").unwrap_or_default();
            let label = http::path_param(req, "label").unwrap_or_default();
            let add = req.method() == lambda_http::http::Method::PUT;
            let labels =
                changes::set_label(&app.store, &principal, id, label, add, Utc::now()).await?;
            Ok(json(StatusCode::OK, &labels))
        }
        "DELETE /labels/{name}" => {
            let principal = http::principal(req)?;
            let name = http::path_param(req, "name").unwrap_or_default();
            changes::delete_label(&app.store, &principal, name, Utc::now()).await?;
            no_content()
        }
        "POST /conversations/{id}/read" => {
            let principal = http::principal(req)?;
            let id = http::path_param(req, "id").unwrap_or_default();
            let read =
                reads::mark_read(&app.store, &app.directory, &app.provider, &principal, id).await?;
            Ok(json(StatusCode::OK, &read))
        }
        "GET /labels" => {
            let principal = http::principal(req)?;
            let page = http::page_request(req)?;
            let list = labels::list_labels(&app.store, &principal, &page).await?;
            Ok(json(StatusCode::OK, &list))
        }
        "POST /labels" => {
            let principal = http::principal(req)?;
            principal.require_admin()?;
            let body = http::json_body(req)?;
            let label = labels::create_label(&app.store, &principal, &body, Utc::now()).await?;
            Ok(json(StatusCode::CREATED, &label))
        }
        "GET /customers" => {
            let principal = http::principal(req)?;
            let query = CustomerQuery::parse(http::query(req, "q"), http::query(req, "label"))?;
            let page = http::page_request(req)?;
            let list = customers::search_customers(&app.store, &principal, &query, &page).await?;
            Ok(json(StatusCode::OK, &list))
        }
        "GET /customers/{id}" => {
            let principal = http::principal(req)?;
            let id = http::path_param(req, "id").unwrap_or_default();
            let customer = customers::get_customer(&app.store, &principal, id).await?;
            Ok(json(StatusCode::OK, &customer))
        }
        "PATCH /customers/{id}" => {
            let principal = http::principal(req)?;
            let id = http::path_param(req, "id").unwrap_or_default();
            let body = http::json_value(req)?;
            let customer =
                customers::patch_customer(&app.store, &principal, id, body, Utc::now()).await?;
            Ok(json(StatusCode::OK, &customer))
        }
        "GET /customers/{id}/notes" => {
            let principal = http::principal(req)?;
            let id = http::path_param(req, "id").unwrap_or_default();
            let page = http::page_request(req)?;
            let list = notes::list_notes(&app.store, &principal, id, &page).await?;
            Ok(json(StatusCode::OK, &list))
        }
        "POST /customers/{id}/notes" => {
            let principal = http::principal(req)?;
            let id = http::path_param(req, "id").unwrap_or_default();
            let body = http::json_body(req)?;
            let note = notes::add_note(&app.store, &principal, id, &body, Utc::now()).await?;
            Ok(json(StatusCode::CREATED, &note))
        }
        "DELETE /customers/{id}/notes/{note_id}" => {
            let principal = http::principal(req)?;
            let id = http::path_param(req, "id").unwrap_or_default();
            let note_id = http::path_param(req, "note_id").unwrap_or_default();
            notes::delete_note(&app.store, &principal, id, note_id).await?;
            no_content()
        }
        // The agent workspace (SPEC §7): settings, agents, FAQ.
        key if workspace::ROUTES.contains(&key) => workspace::route(app, req, key).await,
        key if bots::ROUTES.contains(&key) => bots::route(app, req, key).await,
        _ => Err(Error::NotFound { what: "route" }),
    }
}

/// An empty `204 No Content`.
fn no_content() -> Result<Response<Body>, Error> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::Empty)
        .map_err(|e| Error::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str = include_str!("../../fixtures/apigw-v2-create-channel.json");

    /// An app whose AWS endpoint accepts no connections: these tests must not reach AWS.
    fn app() -> App {
        let (env, credentials) = shared::fakes::unreachable_aws(&[
            ("SCHEDULE_GROUP_NAME", "schedules"),
            (
                "SCHEDULER_TARGET_ARN",
                "arn:aws:lambda:us-east-1:000000000000:function:scheduler",
            ),
            (
                "SCHEDULER_ROLE_ARN",
                "arn:aws:iam::000000000000:role/invoke",
            ),
        ]);
        App::from_source(&env, credentials).expect("config")
    }

    fn error_code(response: &Response<Body>) -> String {
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        body["error"]["code"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn cognito_agent_posting_a_channel_is_forbidden_before_any_write() {
        let req = lambda_http::request::from_str(CREATE).unwrap();
        let response = handle(&app(), req).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(error_code(&response), "forbidden");
    }

    #[tokio::test]
    async fn request_without_authorizer_claims_is_unauthorized() {
        let mut event: serde_json::Value = serde_json::from_str(CREATE).unwrap();
        event["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("authorizer");
        let req = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response = handle(&app(), req).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn admin_with_a_malformed_body_gets_a_400_without_touching_aws() {
        let event = CREATE
            .replace("\"custom:role\": \"agent\"", "\"custom:role\": \"admin\"")
            .replace("\"body\": \"{", "\"body\": \"{{");
        let req = lambda_http::request::from_str(&event).unwrap();
        let response = handle(&app(), req).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error_code(&response), "invalid_json");
    }
}
