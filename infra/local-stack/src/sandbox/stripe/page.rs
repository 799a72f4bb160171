//! The checkout page a customer opens from the payment link: the lines and the total, and
//! a "Pay" button that is a plain form post (no script, no external resource). Paying
//! completes the session as paid, posts `checkout.session.completed` and, once the
//! endpoints have answered, sends the browser to `success_url` (303).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shared::domain::payment::Currency;

use super::super::{Sandbox, now_epoch_seconds};
use super::control::{StripeControlError, StripePay};
use super::{PaymentStatus, SessionStatus, StoredSession};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f6f7fb;color:#1a1f36}\
main{max-width:28rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:8px}\
.badge{display:inline-block;background:#ffde92;color:#5a3b00;border-radius:4px;padding:.2rem .5rem;font-size:.85rem}\
table{width:100%;border-collapse:collapse;margin:1rem 0}td,th{padding:.4rem 0;text-align:left}\
td+td,th+th{text-align:right}tfoot th{border-top:1px solid #ddd}\
button{width:100%;min-height:44px;font-size:1rem;background:#635bff;color:#fff;border:0;border-radius:6px}\
.small{color:#697386;font-size:.85rem}";

/// `&`, `<`, `>`, `"` and `'` escaped for HTML text and attributes.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An amount as a person reads it (`12.50 USD`).
fn money(amount: i64, currency: &str) -> String {
    Currency::parse(currency).map_or_else(
        |_| format!("{amount} {}", currency.to_ascii_uppercase()),
        |c| c.format(amount),
    )
}

fn html(status: StatusCode, title: &str, main: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>\
         <p class=\"badge\">Stripe sandbox: test mode, no money moves</p>{main}</main></body></html>",
        escape(title)
    );
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The page of a session that can no longer be paid.
fn closed(stored: &StoredSession) -> (String, String) {
    let s = &stored.session;
    match (s.status, s.payment_status) {
        (SessionStatus::Complete, PaymentStatus::Paid) => (
            "Paid".into(),
            format!(
                "<h1>Paid</h1><p>This payment of {} is complete. Thank you!</p>",
                escape(&money(s.amount_total, &s.currency))
            ),
        ),
        // A delayed method: still processing, or failed later.
        (SessionStatus::Complete, PaymentStatus::Unpaid) => (
            "Payment submitted".into(),
            "<h1>Payment submitted</h1><p>This payment was submitted with a delayed method; \
             the business hears of its result. It can't be paid again here.</p>"
                .into(),
        ),
        _ => (
            "Expired".into(),
            "<h1>Expired</h1><p>This payment link has expired and can no longer be paid. \
             Ask the business for a new one.</p>"
                .into(),
        ),
    }
}

fn open(stored: &StoredSession) -> (String, String) {
    let s = &stored.session;
    let total = escape(&money(s.amount_total, &s.currency));
    let rows: String = stored
        .lines
        .iter()
        .map(|l| {
            format!(
                "<tr><td>{} &times; {}</td><td>{}</td></tr>",
                escape(&l.name),
                l.quantity,
                escape(&money(
                    l.quantity.saturating_mul(l.unit_amount),
                    &s.currency
                ))
            )
        })
        .collect();
    let expires = chrono::DateTime::from_timestamp(s.expires_at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let main = format!(
        "<h1>{total}</h1><table><tbody>{rows}</tbody>\
         <tfoot><tr><th>Total</th><th>{total}</th></tr></tfoot></table>\
         <form method=\"post\" action=\"/stripe/checkout/{id}/pay\">\
         <button type=\"submit\">Pay {total}</button></form>\
         <p class=\"small\">This link expires at {expires}.</p>",
        id = escape(&s.id),
    );
    (format!("Pay {}", money(s.amount_total, &s.currency)), main)
}

fn not_found() -> Response {
    html(
        StatusCode::NOT_FOUND,
        "Not found",
        "<h1>Not found</h1><p>There is no such payment link.</p>",
    )
}

/// `GET /stripe/checkout/{id}`.
pub(in super::super) async fn show(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
) -> Response {
    let (stored, due) = {
        let mut state = sandbox.state();
        let due = state.stripe.expire_if_due(&id, now_epoch_seconds());
        (state.stripe.sessions.get(&id).cloned(), due)
    };
    sandbox.deliver_later(due.into_iter().collect());
    let Some(stored) = stored else {
        return not_found();
    };
    let (title, main) = if stored.session.status == SessionStatus::Open {
        open(&stored)
    } else {
        closed(&stored)
    };
    html(StatusCode::OK, &title, &main)
}

/// `POST /stripe/checkout/{id}/pay`: paid, then 303 to `success_url` (with
/// `{CHECKOUT_SESSION_ID}` replaced by the id, as Stripe does), or a "Paid" page when
/// the session has none.
pub(in super::super) async fn pay(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
) -> Response {
    match sandbox.stripe_pay(&id, StripePay::default()).await {
        Ok(_) => {
            let stored = sandbox.state().stripe.sessions.get(&id).cloned();
            let Some(stored) = stored else {
                return not_found();
            };
            match &stored.session.success_url {
                Some(url) => {
                    let target = url.replace("{CHECKOUT_SESSION_ID}", &stored.session.id);
                    match HeaderValue::from_str(&target) {
                        Ok(location) => {
                            (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
                        }
                        Err(_) => {
                            let (title, main) = closed(&stored);
                            html(StatusCode::OK, &title, &main)
                        }
                    }
                }
                None => {
                    let (title, main) = closed(&stored);
                    html(StatusCode::OK, &title, &main)
                }
            }
        }
        Err(StripeControlError::NotOpen(_)) => {
            let stored = sandbox.state().stripe.sessions.get(&id).cloned();
            match stored {
                Some(stored) => {
                    let (title, main) = closed(&stored);
                    html(StatusCode::CONFLICT, &title, &main)
                }
                None => not_found(),
            }
        }
        Err(_) => not_found(),
    }
}
