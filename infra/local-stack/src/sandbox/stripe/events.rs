//! Events about Checkout Sessions (Stripe's Event object) and their webhook deliveries:
//! posted to each endpoint of the account that enabled the type, signed with the
//! endpoint's secret, and recorded.

use axum::http::header;
use serde::Serialize;
use serde_json::json;

use super::super::{Sandbox, now_epoch_seconds, now_rfc3339};
use super::{API_VERSION, StoredSession, StripeState, random_id};

/// What a delivery's `User-Agent` says (Stripe sends one like it).
const USER_AGENT: &str = "Stripe/1.0 (+https://stripe.com/docs/webhooks; sandbox)";

/// An event made and waiting to be posted.
#[derive(Debug, Clone)]
pub(in super::super) struct PendingEvent {
    pub(super) account: String,
    pub(super) id: String,
    pub(super) kind: String,
    pub(super) session_id: String,
    /// The JSON posted (pretty-printed, as Stripe sends it).
    pub(super) body: String,
}

/// One webhook post, as made and answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StripeDelivery {
    /// Order of recording (1, 2, …).
    pub seq: u64,
    /// `evt_…`.
    pub event_id: String,
    /// `checkout.session.completed`, …
    #[serde(rename = "type")]
    pub event_type: String,
    /// The session the event is about.
    pub session_id: String,
    /// `we_…`.
    pub endpoint_id: String,
    /// Where it was posted.
    pub url: String,
    /// The HTTP status answered; `None` when no answer came.
    pub status: Option<u16>,
    /// Why no answer came.
    pub error: Option<String>,
    /// Whether it went as `application/octet-stream`, which the dev server (like API
    /// Gateway for a binary type) hands to the function base64-encoded.
    pub base64: bool,
    /// When the answer came (RFC 3339, UTC).
    pub at: String,
}

/// One post of an event, as answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryOutcome {
    /// `we_…`.
    pub endpoint_id: String,
    /// Where it was posted.
    pub url: String,
    /// The HTTP status answered; `None` when no answer came.
    pub status: Option<u16>,
    /// Why no answer came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An event sent and its posts (none when no endpoint of the account wants it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventReport {
    /// `evt_…`.
    pub id: String,
    /// The event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Every post, in the order they were started.
    pub deliveries: Vec<DeliveryOutcome>,
}

impl StripeState {
    /// An event of type `kind` about `stored` as it is now; `request` is the API request
    /// that caused it (its `req_…` id and idempotency key), `None` for a customer's act.
    pub(super) fn event(
        &self,
        stored: &StoredSession,
        kind: &str,
        request: Option<(&str, Option<&str>)>,
    ) -> PendingEvent {
        let pending = self
            .endpoints
            .iter()
            .filter(|e| e.account == stored.account && e.wants(kind))
            .count();
        let id = random_id("evt_", 24);
        let body = json!({
            "id": id,
            "object": "event",
            "api_version": API_VERSION,
            "created": now_epoch_seconds(),
            "data": {"object": stored.session},
            "livemode": false,
            "pending_webhooks": pending,
            "request": {
                "id": request.map(|r| r.0),
                "idempotency_key": request.and_then(|r| r.1),
            },
            "type": kind,
        });
        PendingEvent {
            account: stored.account.clone(),
            id,
            kind: kind.to_owned(),
            session_id: stored.session.id.clone(),
            body: serde_json::to_string_pretty(&body).unwrap_or_default(),
        }
    }
}

impl Sandbox {
    /// Posts `event` `copies` times, concurrently, to each endpoint of its account that
    /// wants it; records and answers every post.
    pub(super) async fn deliver(
        &self,
        event: PendingEvent,
        copies: usize,
        base64: bool,
    ) -> EventReport {
        let targets: Vec<(String, String, String)> = self
            .state()
            .stripe
            .endpoints
            .iter()
            .filter(|e| e.account == event.account && e.wants(&event.kind))
            .map(|e| (e.id.clone(), e.url.clone(), e.secret.clone()))
            .collect();
        let posts = targets
            .iter()
            .flat_map(|target| std::iter::repeat_n(target, copies))
            .map(|(endpoint_id, url, secret)| {
                let body = &event.body;
                async move {
                    let answer = self.post_event(url, secret, body, base64).await;
                    (endpoint_id.clone(), url.clone(), answer)
                }
            });
        let answers = futures::future::join_all(posts).await;
        let mut state = self.state();
        let mut deliveries = Vec::with_capacity(answers.len());
        for (endpoint_id, url, answer) in answers {
            let (status, error) = match answer {
                Ok(status) => (Some(status), None),
                Err(e) => (None, Some(e)),
            };
            state.stripe.push_delivery(StripeDelivery {
                seq: 0,
                event_id: event.id.clone(),
                event_type: event.kind.clone(),
                session_id: event.session_id.clone(),
                endpoint_id: endpoint_id.clone(),
                url: url.clone(),
                status,
                error: error.clone(),
                base64,
                at: now_rfc3339(),
            });
            deliveries.push(DeliveryOutcome {
                endpoint_id,
                url,
                status,
                error,
            });
        }
        EventReport {
            id: event.id,
            kind: event.kind,
            deliveries,
        }
    }

    /// Sends events in the background (those the API causes, as Stripe does), one after
    /// the other; outside a runtime they are dropped.
    pub(super) fn deliver_later(&self, events: Vec<PendingEvent>) {
        if events.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let sandbox = self.clone();
        runtime.spawn(async move {
            for event in events {
                sandbox.deliver(event, 1, false).await;
            }
        });
    }

    /// One signed post; the status answered.
    async fn post_event(
        &self,
        url: &str,
        secret: &str,
        body: &str,
        base64: bool,
    ) -> Result<u16, String> {
        let signature = shared::domain::stripe::sign(secret, now_epoch_seconds(), body.as_bytes());
        let content_type = if base64 {
            "application/octet-stream"
        } else {
            "application/json; charset=utf-8"
        };
        let response = self
            .inner
            .http
            .post(url)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::USER_AGENT, USER_AGENT)
            .header("stripe-signature", signature)
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        // Read the answer to its end, so the endpoint's work is over when this returns.
        let _ = response.bytes().await;
        Ok(status)
    }

    /// The deliveries recorded, oldest first, optionally only those about a session, of
    /// an event type or of one event.
    pub fn stripe_deliveries(
        &self,
        session: Option<&str>,
        kind: Option<&str>,
        event: Option<&str>,
    ) -> Vec<StripeDelivery> {
        self.state()
            .stripe
            .deliveries
            .iter()
            .filter(|d| {
                session.is_none_or(|s| d.session_id == s)
                    && kind.is_none_or(|k| d.event_type == k)
                    && event.is_none_or(|e| d.event_id == e)
            })
            .cloned()
            .collect()
    }

    /// Forgets every recorded delivery.
    pub fn clear_stripe_deliveries(&self) {
        self.state().stripe.deliveries.clear();
    }
}
