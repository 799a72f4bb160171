//! The chatbot routes (SPEC §8): the tenant's bots and Exit Bot. The bots themselves run
//! in the `bots` function, off `MessageReceived` events.

use chrono::Utc;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::Error;
use shared::http::{self, json};
use shared::service::bots;

use crate::App;

/// The routes served here, as API Gateway names them.
pub(crate) const ROUTES: [&str; 5] = [
    "GET /bots",
    "GET /bots/{id}",
    "PUT /bots/{id}",
    "DELETE /bots/{id}",
    "POST /conversations/{id}/bot/exit",
];

/// Answers one of [`ROUTES`].
pub(crate) async fn route(app: &App, req: &Request, route: &str) -> Result<Response<Body>, Error> {
    let principal = http::principal(req)?;
    let store = &app.store;
    let id = http::path_param(req, "id").unwrap_or_default();
    match route {
        "GET /bots" => Ok(json(
            StatusCode::OK,
            &bots::list_bots(store, &principal).await?,
        )),
        "GET /bots/{id}" => Ok(json(
            StatusCode::OK,
            &bots::get_bot(store, &principal, id).await?,
        )),
        "PUT /bots/{id}" => {
            // The role before the body: an agent learns nothing from a bad one.
            principal.require_admin()?;
            let body = http::json_value(req)?;
            let (bot, created) = bots::put_bot(store, &principal, id, body, Utc::now()).await?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json(status, &bot))
        }
        "DELETE /bots/{id}" => {
            bots::delete_bot(store, &principal, id).await?;
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::Empty)
                .map_err(|e| Error::Internal(e.to_string()))
        }
        _ => {
            let conversation = bots::exit_bot(store, &principal, id, Utc::now()).await?;
            Ok(json(StatusCode::OK, &conversation))
        }
    }
}
