//! `payments`: payment settings, products, payment links and Stripe's webhook (SPEC §11).
//! The only function that reads the tenants' Stripe secrets.
//!
//! Agent routes (JWT): `GET/PUT /settings/payment`, `GET/POST /products`,
//! `PUT/DELETE /products/{id}`, `GET/POST /customers/{id}/payments`. Public routes (no
//! JWT): `POST /webhooks/stripe/{tenant_id}` (Stripe's signature is the credential) and
//! `GET /pay/done` (where Checkout sends the customer after paying). [`handle_http`] is
//! what Lambda runs and what the dev server calls.

use std::time::Duration;

use chrono::Utc;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use shared::Error;
use shared::adapters::aws::{
    DynamoDbClient, SharedCredentialsProvider, dynamodb_client, s3_client, sdk_config,
};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::stripe::Stripe;
use shared::config::{Config, ConfigError, Source, public_base_url, stripe_api_url};
use shared::http::{self, json};
use shared::service::outbound::OutboundSettings;
use shared::service::payments::{self, RequestContext, WebhookOutcome};
use tracing::{Instrument, info_span};

pub use shared::http::to_api_gateway_response;

/// Largest Stripe event accepted (Checkout Session events are a few KB).
const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Clients, the send service, Stripe and the public base URL, built once per process.
#[derive(Debug)]
pub struct App {
    store: DynamoStore,
    outbound: outbound::Service,
    stripe: Stripe,
    public_base_url: String,
}

impl App {
    /// Builds the app from configuration (reads no environment itself).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable that is missing or wrong (`PUBLIC_BASE_URL`,
    /// `STRIPE_API_URL`, and the send service's).
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
        let settings = OutboundSettings::from_source(env)?;
        Ok(Self {
            store: DynamoStore::new(dynamo.clone(), config.table_name.clone()),
            outbound: outbound::service(env, config, dynamo, s3, credentials)?,
            stripe: Stripe::new(
                &stripe_api_url(env)?,
                settings.call_timeout,
                settings.retry.base.max(Duration::from_millis(10)),
            ),
            public_base_url: public_base_url(env)?,
        })
    }
}

/// Handles one API Gateway request. Never fails: every error is a response.
pub async fn handle_http(app: &App, req: Request) -> Response<Body> {
    match http::route_key(&req) {
        "GET /pay/done" => done_page(),
        "POST /webhooks/stripe/{tenant_id}" => {
            let span = info_span!(
                "request",
                function = "payments",
                request_id = %http::request_id(&req),
                route = "POST /webhooks/stripe/{tenant_id}",
            );
            http::respond(stripe_webhook(app, &req).instrument(span).await)
        }
        _ => http::serve("payments", &req, |req| route(app, req)).await,
    }
}

async fn stripe_webhook(app: &App, req: &Request) -> Result<Response<Body>, Error> {
    // API Gateway hands a body it base64-encoded already decoded here: these are the
    // bytes Stripe signed.
    let body: &[u8] = match req.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    };
    if body.len() > MAX_EVENT_BYTES {
        return Err(Error::PayloadTooLarge {
            limit: MAX_EVENT_BYTES,
        });
    }
    let tenant = http::path_param(req, "tenant_id").unwrap_or_default();
    let signature = http::header(req, "stripe-signature");
    let outcome = payments::webhook(
        &app.store,
        &app.outbound,
        tenant,
        signature,
        body,
        Utc::now(),
    )
    .await?;
    let outcome = match outcome {
        WebhookOutcome::Moved(status) => status.as_str(),
        WebhookOutcome::Repeated => "repeated",
        WebhookOutcome::Ignored => "ignored",
    };
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"received": true, "outcome": outcome}),
    ))
}

async fn route(app: &App, req: &Request) -> Result<Response<Body>, Error> {
    let principal = http::principal(req)?;
    let id = http::path_param(req, "id").unwrap_or_default();
    let now = Utc::now();
    let store = &app.store;
    match http::route_key(req) {
        "GET /settings/payment" => Ok(json(
            StatusCode::OK,
            &payments::settings(store, &principal).await?,
        )),
        "PUT /settings/payment" => {
            // The role first: an agent's body is not even read.
            principal.require_admin()?;
            let body = http::json_value(req)?;
            let view = payments::put_settings(store, &principal, body, now).await?;
            Ok(json(StatusCode::OK, &view))
        }
        "GET /products" => {
            let page = http::page_request(req)?;
            Ok(json(
                StatusCode::OK,
                &payments::products(store, &principal, &page).await?,
            ))
        }
        "POST /products" => {
            principal.require_admin()?;
            let body = http::json_value(req)?;
            let product = payments::create_product(store, &principal, body, now).await?;
            Ok(json(StatusCode::CREATED, &product))
        }
        "PUT /products/{id}" => {
            principal.require_admin()?;
            let body = http::json_value(req)?;
            let product = payments::replace_product(store, &principal, id, body, now).await?;
            Ok(json(StatusCode::OK, &product))
        }
        "DELETE /products/{id}" => {
            payments::delete_product(store, &principal, id).await?;
            let mut response = Response::new(Body::Empty);
            *response.status_mut() = StatusCode::NO_CONTENT;
            Ok(response)
        }
        "POST /customers/{id}/payments" => {
            let body = http::json_value(req)?;
            if req.headers().contains_key("idempotency-key")
                && http::header(req, "idempotency-key").is_none()
            {
                return Err(Error::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1-255 visible ASCII characters",
                ));
            }
            let context = RequestContext {
                idempotency_key: http::header(req, "idempotency-key"),
                public_base_url: &app.public_base_url,
                now,
            };
            let payment = payments::request(
                store,
                &app.stripe,
                &app.outbound,
                &principal,
                id,
                body,
                context,
            )
            .await?;
            Ok(json(StatusCode::CREATED, &payment))
        }
        "GET /customers/{id}/payments" => {
            let page = http::page_request(req)?;
            let list = payments::history(store, &principal, id, &page).await?;
            Ok(json(StatusCode::OK, &list))
        }
        _ => Err(Error::NotFound { what: "route" }),
    }
}

/// The page Checkout sends the customer to after paying: static (it reads nothing, shows
/// nothing of the payment); the confirmation comes in the chat once Stripe's webhook says
/// the payment went through.
fn done_page() -> Response<Body> {
    const PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Thank you</title></head><body>\
<main><h1>Thank you</h1><p>Your payment is being confirmed. You can close this page: \
the business will confirm your payment.</p></main></body></html>\n";
    let mut response = Response::new(Body::Text(PAGE.to_owned()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
