//! `bookings`: the calendar, bookings and booking invitations (SPEC §10).
//!
//! Agent routes (JWT): `GET/POST /calendar/slots`, `DELETE /calendar/slots/{id}`,
//! `POST /bookings`, `GET /bookings`, `DELETE /bookings/{id}`, `GET /customers/{id}/bookings`,
//! `POST /customers/{id}/booking-invitations`. Public routes (no JWT; the token is the
//! credential): `GET /b/{token}` (the booking page) and `POST /b/{token}` (the choice, a
//! plain form post). [`handle_http`] is what Lambda runs and what the dev server calls.
//! Messages to customers go through the shared send service.

mod page;

use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::Error;
use shared::adapters::aws::{
    DynamoDbClient, SharedCredentialsProvider, dynamodb_client, s3_client, sdk_config,
};
use shared::adapters::dynamo::DynamoStore;
use shared::config::{Config, ConfigError, Source, public_base_url};
use shared::http::{self, json};
use shared::service::bookings;

pub use shared::http::to_api_gateway_response;

/// Clients, the send service and the public base URL, built once per process.
#[derive(Debug)]
pub struct App {
    store: DynamoStore,
    outbound: outbound::Service,
    public_base_url: String,
}

impl App {
    /// Builds the app from configuration (reads no environment itself).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable that is missing or wrong (`PUBLIC_BASE_URL`,
    /// and the send service's).
    pub fn from_source(
        env: &impl Source,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ConfigError> {
        let config = Config::from_source(env)?;
        let sdk = sdk_config(&config.aws, credentials.clone());
        Self::with_clients(
            env,
            &config,
            dynamodb_client(&sdk),
            s3_client(&sdk, &config.aws),
            credentials,
        )
    }

    /// Builds the app around given clients (measurements attach interceptors to them).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable that is missing or wrong.
    pub fn with_clients(
        env: &impl Source,
        config: &Config,
        dynamo: DynamoDbClient,
        s3: aws_sdk_s3::Client,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            store: DynamoStore::new(dynamo.clone(), config.table_name.clone()),
            outbound: outbound::service(env, config, dynamo, s3, credentials)?,
            public_base_url: public_base_url(env)?,
        })
    }
}

/// Handles one API Gateway request. Never fails: every error is a response (an HTML page on
/// the public routes, JSON elsewhere).
pub async fn handle_http(app: &App, req: Request) -> Response<Body> {
    let key = http::route_key(&req);
    if key == "GET /b/{token}" || key == "POST /b/{token}" {
        return page::serve(app, &req).await;
    }
    http::serve("bookings", &req, |req| route(app, req)).await
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, Error> {
    let principal = http::principal(req)?;
    let id = http::path_param(req, "id").unwrap_or_default();
    let now = Utc::now();
    let store = &app.store;
    match http::route_key(req) {
        "POST /calendar/slots" => {
            let body = http::json_value(req)?;
            let slots = bookings::create_slots(store, &principal, body, now).await?;
            Ok(json(
                StatusCode::CREATED,
                &serde_json::json!({"items": slots}),
            ))
        }
        "GET /calendar/slots" => {
            let page = http::page_request(req)?;
            let filters = (
                http::query(req, "from"),
                http::query(req, "to"),
                http::query(req, "available"),
            );
            let list = bookings::list_slots(store, &principal, filters, &page, now).await?;
            Ok(json(StatusCode::OK, &list))
        }
        "DELETE /calendar/slots/{id}" => {
            bookings::delete_slot(store, &principal, id).await?;
            Ok(no_content())
        }
        "POST /bookings" => {
            let body = http::json_value(req)?;
            let created = bookings::book(store, &app.outbound, &principal, body, now).await?;
            Ok(json(StatusCode::CREATED, &created))
        }
        "GET /bookings" => {
            let page = http::page_request(req)?;
            let filters = (http::query(req, "from"), http::query(req, "to"));
            let list = bookings::list(store, &principal, None, filters, &page, now).await?;
            Ok(json(StatusCode::OK, &list))
        }
        "GET /customers/{id}/bookings" => {
            let page = http::page_request(req)?;
            let filters = (http::query(req, "from"), http::query(req, "to"));
            let list = bookings::list(store, &principal, Some(id), filters, &page, now).await?;
            Ok(json(StatusCode::OK, &list))
        }
        "DELETE /bookings/{id}" => {
            let cancelled = bookings::cancel(store, &app.outbound, &principal, id, now).await?;
            Ok(json(StatusCode::OK, &cancelled))
        }
        "POST /customers/{id}/booking-invitations" => {
            let body = optional_json(req)?;
            let created = bookings::invite(
                store,
                &app.outbound,
                &principal,
                id,
                body,
                &app.public_base_url,
                now,
            )
            .await?;
            Ok(json(StatusCode::CREATED, &created))
        }
        _ => Err(Error::NotFound { what: "route" }),
    }
}

/// A JSON body that may be left out (`null` then).
fn optional_json(req: &Request) -> Result<serde_json::Value, Error> {
    let empty = match req.body() {
        Body::Empty => true,
        Body::Text(t) => t.trim().is_empty(),
        Body::Binary(b) => b.is_empty(),
        _ => false,
    };
    if empty {
        Ok(serde_json::Value::Null)
    } else {
        http::json_value(req)
    }
}

fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}
