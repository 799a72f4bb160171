//! The public booking page (`GET/POST /b/{token}`): server-rendered HTML from the
//! `templates/booking.html` template (askama escapes every value), one inline style sheet
//! allowed by its hash in a strict Content-Security-Policy, no script, no external
//! resource, and a plain form post that works without JavaScript.

use std::sync::LazyLock;

use askama::Template;
use base64::Engine;
use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use sha2::{Digest, Sha256};
use shared::domain::booking::{Booking, BookingStatus, describe};
use shared::domain::calendar::{StoredSlot, zone_label};
use shared::domain::zone::Zone;
use shared::http;
use shared::service::bookings::{self, Choice, PageState};
use tracing::{Instrument, error, info_span};

use crate::App;

/// The page's only style sheet, inlined (no external resource) and allowed by its hash.
const CSS: &str = include_str!("../templates/booking.css");

/// Largest form body accepted (a slot id is 30 characters).
const MAX_FORM_BODY: usize = 4 * 1024;

/// The Content-Security-Policy: nothing loads or runs but the page's own style sheet, and
/// the form posts only back to this page.
static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
});

/// One free slot as a choice.
struct SlotChoice {
    id: String,
    label: String,
}

/// The free slots of one local day.
struct Day {
    label: String,
    slots: Vec<SlotChoice>,
}

/// A booking as the page shows it.
struct Summary {
    when: String,
    cancelled: bool,
}

#[derive(Template)]
#[template(path = "booking.html")]
struct BookingPage {
    css: &'static str,
    title: String,
    business: Option<String>,
    heading: String,
    lead: Option<String>,
    notice: Option<String>,
    days: Vec<Day>,
    more: bool,
    summary: Option<Summary>,
}

impl BookingPage {
    fn new(business: Option<String>, heading: &str) -> Self {
        let title = match &business {
            Some(name) => format!("{heading} · {name}"),
            None => heading.to_owned(),
        };
        Self {
            css: CSS,
            title,
            business,
            heading: heading.to_owned(),
            lead: None,
            notice: None,
            days: Vec::new(),
            more: false,
            summary: None,
        }
    }
}

/// Free slots grouped by local day, in order.
fn days(slots: &[StoredSlot], zone: Zone) -> Vec<Day> {
    let mut days: Vec<Day> = Vec::new();
    for slot in slots {
        let start = slot.time.start.with_timezone(&zone);
        let end = slot.time.end.with_timezone(&zone);
        let label = start.format("%A %-d %B %Y").to_string();
        let ends = if end.date_naive() == start.date_naive() {
            end.format("%H:%M").to_string()
        } else {
            end.format("%H:%M (%a)").to_string()
        };
        let choice = SlotChoice {
            id: slot.id.clone(),
            label: format!("{} – {ends}", start.format("%H:%M")),
        };
        match days.last_mut() {
            Some(day) if day.label == label => day.slots.push(choice),
            _ => days.push(Day {
                label,
                slots: vec![choice],
            }),
        }
    }
    days
}

fn summary(booking: &Booking, zone: Zone) -> Option<Summary> {
    Some(Summary {
        when: describe(&booking.time()?, zone),
        cancelled: booking.status == BookingStatus::Cancelled,
    })
}

/// The page for a state, with its status code.
fn render_state(state: PageState, notice: Option<&str>) -> (StatusCode, BookingPage) {
    match state {
        PageState::Unknown => {
            let mut page = BookingPage::new(None, "Link not found");
            page.lead = Some(
                "This booking link does not exist. Check that you opened the whole link, or ask for a new one in the chat.".into(),
            );
            (StatusCode::NOT_FOUND, page)
        }
        PageState::Expired { business } => {
            let mut page = BookingPage::new(business, "This link has expired");
            page.lead = Some("Ask for a new booking link in the chat.".into());
            (StatusCode::GONE, page)
        }
        PageState::Used {
            business,
            booking,
            zone,
        } => {
            let mut page = BookingPage::new(business, "This link has been used");
            page.summary = booking.as_ref().and_then(|b| summary(b, zone));
            let cancelled = page.summary.as_ref().is_some_and(|s| s.cancelled);
            page.lead = Some(if cancelled {
                "This booking was cancelled. Ask for a new booking link in the chat.".into()
            } else {
                "A time was already booked with this link. To change it, reply in the chat.".into()
            });
            (StatusCode::GONE, page)
        }
        PageState::Open {
            business,
            zone,
            slots,
            more,
        } => {
            let mut page = BookingPage::new(business, "Choose a time");
            page.lead = Some(if slots.is_empty() {
                "There are no free times right now. Reply in the chat and we will find one."
                    .to_owned()
            } else {
                let at = slots.first().map_or_else(Utc::now, |s| s.time.start);
                format!("Times are shown in {}.", zone_label(zone, at))
            });
            page.days = days(&slots, zone);
            page.more = more;
            page.notice = notice.map(str::to_owned);
            let status = if notice.is_some() {
                StatusCode::CONFLICT
            } else {
                StatusCode::OK
            };
            (status, page)
        }
    }
}

/// `GET /b/{token}` and `POST /b/{token}`.
pub async fn serve(app: &App, req: &Request) -> Response<Body> {
    let span = info_span!(
        "request",
        function = "bookings",
        request_id = %http::request_id(req),
        route = %http::route_key(req),
    );
    async move {
        let token = http::path_param(req, "token").unwrap_or_default();
        let now = Utc::now();
        let result = if req.method() == "POST" {
            post(app, req, token, now).await
        } else {
            bookings::page(&app.store, token, now)
                .await
                .map(|state| render_state(state, None))
        };
        match result {
            Ok((status, page)) => html(status, &page),
            Err(e) => {
                error!(cause = %e, "booking page failed");
                let mut page = BookingPage::new(None, "Something went wrong");
                page.lead = Some("Please try again in a moment.".into());
                html(StatusCode::INTERNAL_SERVER_ERROR, &page)
            }
        }
    }
    .instrument(span)
    .await
}

/// The chosen slot of a form body (`slot_id=…`), if any.
fn chosen_slot(req: &Request) -> Result<Option<String>, StatusCode> {
    let bytes: &[u8] = match req.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    };
    if bytes.len() > MAX_FORM_BODY {
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    Ok(form_urlencoded::parse(bytes)
        .find(|(k, _)| k == "slot_id")
        .map(|(_, v)| v.into_owned()))
}

async fn post(
    app: &App,
    req: &Request,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(StatusCode, BookingPage), shared::Error> {
    let slot_id = match chosen_slot(req) {
        Ok(slot) => slot,
        Err(status) => {
            let mut page = BookingPage::new(None, "That request was too large");
            page.lead = Some("Go back and choose one time.".into());
            return Ok((status, page));
        }
    };
    let choice =
        bookings::choose(&app.store, &app.outbound, token, slot_id.as_deref(), now).await?;
    match choice {
        Choice::Booked {
            business,
            booking,
            zone,
            confirmation_sent,
        } => {
            let mut page = BookingPage::new(business, "You're booked");
            page.lead = Some(if confirmation_sent {
                "We sent the confirmation to your chat too. To change or cancel, reply there."
                    .into()
            } else {
                "Keep this page: we could not send the confirmation to your chat. To change or cancel, reply there."
                    .into()
            });
            page.summary = summary(&booking, zone);
            Ok((StatusCode::OK, page))
        }
        Choice::Taken => {
            let notice = "Sorry, that time was just taken. Please choose another.";
            again(app, token, notice, StatusCode::CONFLICT, now).await
        }
        Choice::NoChoice => {
            let notice = "Please choose a time.";
            again(app, token, notice, StatusCode::UNPROCESSABLE_ENTITY, now).await
        }
        Choice::Closed => {
            let state = bookings::page(&app.store, token, now).await?;
            Ok(render_state(state, None))
        }
    }
}

/// The page again (fresh free slots), with a notice.
async fn again(
    app: &App,
    token: &str,
    notice: &str,
    status: StatusCode,
    now: DateTime<Utc>,
) -> Result<(StatusCode, BookingPage), shared::Error> {
    let state = bookings::page(&app.store, token, now).await?;
    let (_, page) = render_state(state, Some(notice));
    Ok((status, page))
}

fn html(status: StatusCode, page: &BookingPage) -> Response<Body> {
    let (status, body) = match page.render() {
        Ok(body) => (status, body),
        Err(e) => {
            error!(cause = %e, "booking page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned(),
            )
        }
    };
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(csp) = HeaderValue::from_str(&CSP) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    // The token is in the URL: never sent onwards, never kept by a cache.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::calendar::SlotTime;

    fn slot(id: &str, start: &str, minutes: i64) -> StoredSlot {
        let start = shared::domain::time::parse_rfc3339(start).unwrap();
        StoredSlot {
            id: id.into(),
            time: SlotTime {
                start,
                end: start + chrono::Duration::minutes(minutes),
            },
            booking_id: None,
            created_by: "a".into(),
            created_at: "x".into(),
        }
    }

    #[test]
    fn slots_are_grouped_by_local_day() {
        let slots = [
            slot("sl_1", "2026-07-01T22:30:00Z", 30),
            slot("sl_2", "2026-07-01T23:30:00Z", 30),
            slot("sl_3", "2026-07-02T08:00:00Z", 90),
        ];
        let grouped = days(&slots, Zone::parse("Europe/London").unwrap());
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped[0].label, "Wednesday 1 July 2026");
        assert_eq!(grouped[0].slots[0].label, "23:30 – 00:00 (Thu)");
        assert_eq!(grouped[1].label, "Thursday 2 July 2026");
        assert_eq!(grouped[1].slots.len(), 2);
        assert_eq!(grouped[1].slots[1].label, "09:00 – 10:30");
    }

    #[test]
    fn what_a_business_wrote_is_escaped() {
        let page = BookingPage::new(
            Some("<script>alert(1)</script> & Co".into()),
            "Choose a time",
        );
        let html = page.render().unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62; &#38; Co"),
            "{html}"
        );
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_style_sheet() {
        let page = BookingPage::new(None, "Choose a time").render().unwrap();
        assert!(page.contains(&format!("<style>{CSS}</style>")));
        assert!(CSP.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(!page.contains("<script"));
        assert!(!page.contains("http://") && !page.contains("https://"));
    }
}
