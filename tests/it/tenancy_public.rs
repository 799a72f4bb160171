//! The tenancy matrix's public rows: the routes without an authorizer whose path names a
//! token or an id (the booking page, the call page, Stripe's and WeChat's webhooks). Two
//! tenants, A and B, each with one of everything; every row uses one tenant's credential
//! against the other's data and checks that the answer shows nothing of the other, that
//! nothing of the other changed, and that a token of one kind opens no page of another.
//!
//! [`PUBLIC`] lists the rows; a public route with a path parameter in template.yaml
//! without a row fails [`every_public_route_with_a_parameter_has_a_tenancy_case`].

use std::collections::BTreeSet;

use integration_tests::local_stack::LOCAL_REGION;
use integration_tests::local_stack::template::{self, Template};
use integration_tests::{
    FixtureVars, TestChannel, all_tenant_messages, connect_for, customer_wrote, fixture, get,
    post_json, post_wechat, put_as, stack, token, unique_tenant, wechat_query,
};
use serde_json::{Value, json};
use shared::domain::conversation::customer_of_conversation;

use super::payments::{configure, history, request_payment};
use super::tenancy::shape;

/// Every public route with a path parameter, as template.yaml writes it, that
/// [`one_tenants_public_token_or_id_never_reaches_anothers_data`] exercises.
const PUBLIC: &[&str] = &[
    "GET /b/{token}",
    "POST /b/{token}",
    "GET /call/{token}",
    "POST /webhooks/stripe/{tenant_id}",
    "GET /webhooks/wechat/{channel_id}",
    "POST /webhooks/wechat/{channel_id}",
];

#[test]
fn every_public_route_with_a_parameter_has_a_tenancy_case() {
    let template =
        Template::load(&template::default_path(), LOCAL_REGION).expect("template.yaml parses");
    let rows: BTreeSet<String> = PUBLIC.iter().map(|r| shape(r)).collect();
    let missing: Vec<String> = template
        .functions()
        .expect("template functions")
        .into_iter()
        .flat_map(|f| f.routes)
        .filter(|r| r.public && r.path.contains('{'))
        .map(|r| format!("{} {}", r.method, r.path))
        .filter(|route| !rows.contains(&shape(route)))
        .collect();
    assert!(
        missing.is_empty(),
        "public routes with a parameter and no row in tests/it/tenancy_public.rs: {missing:?}"
    );
}

/// One tenant with a booking invitation, a free slot, a call, a Stripe payment link and a
/// WeChat channel.
struct Side {
    whatsapp: TestChannel,
    wechat: TestChannel,
    conversation: String,
    business: String,
    slot: String,
    booking_token: String,
    call_tokens: [String; 2],
    payment: Value,
    stripe_secret: String,
    /// What the other tenant must never be shown.
    secrets: Vec<String>,
}

impl Side {
    async fn new(letter: &str) -> Self {
        let tenant = unique_tenant();
        let whatsapp = connect_for(&tenant, "whatsapp", json!({})).await;
        let wechat = connect_for(&tenant, "wechat", json!({})).await;
        let (conversation, wa_id) = customer_wrote(&whatsapp, "whatsapp", 1).await;
        let customer = customer_of_conversation(&conversation).expect("a conversation id");
        let admin = whatsapp.admin();
        let agent = token(&tenant, "agent");
        let tag = &ulid::Ulid::new().to_string()[..10];
        let business = format!("Business {letter} {tag}");
        let reply = put_as(
            "/settings",
            &admin,
            Some(&json!({"business_name": business, "time_zone": "UTC"})),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let start = (chrono::Utc::now() + chrono::Duration::days(3))
            .format("%Y-%m-%dT09:00:00Z")
            .to_string();
        let slots = post_json(
            "/calendar/slots",
            Some(&agent),
            &json!({"start": start, "duration_minutes": 30}),
        )
        .await;
        assert_eq!(slots.status, 201, "{}", slots.text);
        let slot = slots.body["items"][0]["id"]
            .as_str()
            .expect("slot id")
            .to_owned();
        let invitation = post_json(
            &format!("/customers/{customer}/booking-invitations"),
            Some(&agent),
            &json!({}),
        )
        .await;
        assert_eq!(invitation.status, 201, "{}", invitation.text);
        let call = post_json(
            &format!("/conversations/{conversation}/calls"),
            Some(&agent),
            &json!({}),
        )
        .await;
        assert_eq!(call.status, 201, "{}", call.text);
        let (_, stripe_secret) = configure(&whatsapp, "USD", 1000).await;
        let description = format!("Deposit of {letter} {tag}");
        let payment = request_payment(
            &whatsapp,
            &conversation,
            &json!({"amount": 500, "description": description}),
        )
        .await;
        assert_eq!(payment.status, 201, "{}", payment.text);
        let last = |v: &Value| {
            v.as_str()
                .and_then(|u| u.rsplit('/').next())
                .expect("a URL")
                .to_owned()
        };
        let secrets = vec![
            tenant.clone(),
            whatsapp.id.clone(),
            whatsapp.external_id.clone(),
            wechat.id.clone(),
            wa_id,
            conversation.clone(),
            customer,
            business.clone(),
            slot.clone(),
            description,
            call.body["id"].as_str().expect("call id").to_owned(),
            payment.body["id"].as_str().expect("payment id").to_owned(),
        ];
        Self {
            booking_token: last(&invitation.body["url"]),
            call_tokens: [
                last(&call.body["agent_url"]),
                last(&call.body["customer_url"]),
            ],
            whatsapp,
            wechat,
            conversation,
            business,
            slot,
            payment: payment.body,
            stripe_secret,
            secrets,
        }
    }

    /// What can change through a public route, as this tenant's admin reads it.
    async fn state(&self) -> Value {
        let admin = self.whatsapp.admin();
        let slots = get("/calendar/slots", Some(&admin)).await;
        let bookings = get("/bookings", Some(&admin)).await;
        assert_eq!(
            (slots.status, bookings.status),
            (200, 200),
            "{}",
            bookings.text
        );
        json!({
            "slots": slots.body,
            "bookings": bookings.body,
            "payments": history(&self.whatsapp, &self.conversation).await,
            "messages": all_tenant_messages(&self.whatsapp.tenant).await.len(),
        })
    }

    /// Problems if `text` (an answer to the other tenant's request) shows this side's data.
    fn leaks(&self, route: &str, text: &str) -> Vec<String> {
        self.secrets
            .iter()
            .filter(|s| text.contains(s.as_str()))
            .map(|s| format!("{route}: the answer shows the other tenant's {s:?}"))
            .collect()
    }
}

/// A public page: status and body.
async fn open(path: &str) -> (u16, String) {
    let response = reqwest::get(format!("{}{path}", stack().base_url))
        .await
        .expect("the dev server answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Posts a form or a body to a public route: status and body.
async fn post(
    path: &str,
    content_type: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", stack().base_url))
        .header("content-type", content_type)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("the dev server answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// A Stripe event that says `payment` (of `tenant`) was paid.
fn paid_event(tenant: &str, payment: &Value) -> Vec<u8> {
    json!({
        "id": format!("evt_test_{}", ulid::Ulid::new()), "object": "event",
        "type": "checkout.session.completed",
        "data": {"object": {"id": payment["session_id"], "object": "checkout.session",
            "payment_status": "paid", "amount_total": 500, "currency": "usd",
            "metadata": {"tenant_id": tenant, "payment_id": payment["id"]}}}
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn one_tenants_public_token_or_id_never_reaches_anothers_data() {
    let (a, b) = tokio::join!(Side::new("A"), Side::new("B"));
    let (a_before, b_before) = (a.state().await, b.state().await);
    let mut problems = Vec::new();
    let mut ran = BTreeSet::new();

    // Each page opens with its own token and shows only its own tenant; a token of the
    // other kind opens nothing.
    for (mine, other) in [(&a, &b), (&b, &a)] {
        let route = "GET /b/{token}";
        let (status, html) = open(&format!("/b/{}", mine.booking_token)).await;
        if status != 200 || !html.contains(&mine.business) || !html.contains(&mine.slot) {
            problems.push(format!("{route}: own token: {status} {html}"));
        }
        problems.extend(other.leaks(route, &html));
        for wrong in &mine.call_tokens {
            let (status, html) = open(&format!("/b/{wrong}")).await;
            if status != 404 {
                problems.push(format!("{route}: a call token: {status} {html}"));
            }
        }
        ran.insert(route);

        let route = "GET /call/{token}";
        for own in &mine.call_tokens {
            let (status, html) = open(&format!("/call/{own}")).await;
            if status != 200 {
                problems.push(format!("{route}: own token: {status} {html}"));
            }
            problems.extend(other.leaks(route, &html));
        }
        let (status, html) = open(&format!("/call/{}", mine.booking_token)).await;
        if status != 404 {
            problems.push(format!("{route}: a booking token: {status} {html}"));
        }
        ran.insert(route);

        // A's invitation cannot book B's slot (nor B's, A's).
        let route = "POST /b/{token}";
        let (status, html) = post(
            &format!("/b/{}", mine.booking_token),
            "application/x-www-form-urlencoded",
            &[],
            format!("slot_id={}", other.slot).into_bytes(),
        )
        .await;
        if !(400..500).contains(&status) {
            problems.push(format!("{route}: the other tenant's slot: {status} {html}"));
        }
        problems.extend(other.leaks(route, &html));
        ran.insert(route);

        // Stripe: an event naming the other tenant's payment, signed with this tenant's
        // endpoint secret, neither at the other's endpoint nor at this one moves it.
        let route = "POST /webhooks/stripe/{tenant_id}";
        let event = paid_event(&other.whatsapp.tenant, &other.payment);
        let now = chrono::Utc::now().timestamp();
        let signature = shared::domain::stripe::sign(&mine.stripe_secret, now, &event);
        for target in [&other.whatsapp.tenant, &mine.whatsapp.tenant] {
            let (status, text) = post(
                &format!("/webhooks/stripe/{target}"),
                "application/json",
                &[("Stripe-Signature", signature.clone())],
                event.clone(),
            )
            .await;
            if status >= 500 || (target == &other.whatsapp.tenant && status != 400) {
                problems.push(format!("{route}: to {target}: {status} {text}"));
            }
        }
        ran.insert(route);

        // WeChat: requests signed with this tenant's token at the other's channel.
        let forged = TestChannel {
            wechat_token: mine.wechat.wechat_token.clone(),
            ..other.wechat.clone()
        };
        let route = "GET /webhooks/wechat/{channel_id}";
        let (status, text) = open(&format!(
            "/webhooks/wechat/{}?{}&echostr=4821",
            other.wechat.id,
            wechat_query(&forged.wechat_token)
        ))
        .await;
        if status != 401 || text.contains("4821") {
            problems.push(format!(
                "{route}: signed with another token: {status} {text}"
            ));
        }
        ran.insert(route);

        let route = "POST /webhooks/wechat/{channel_id}";
        let vars = FixtureVars::new(&forged, true);
        let reply = post_wechat(&forged, &vars.render(&fixture("wechat/text.xml"))).await;
        if reply.status != 401 {
            problems.push(format!(
                "{route}: signed with another token: {} {}",
                reply.status, reply.text
            ));
        }
        ran.insert(route);
    }

    for (side, before) in [(&a, a_before), (&b, b_before)] {
        let after = side.state().await;
        if after != before {
            problems.push(format!(
                "tenant {}'s data changed: before {before}, after {after}",
                side.whatsapp.tenant
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "public tenancy problems:\n{}",
        problems.join("\n")
    );
    let expected: BTreeSet<&str> = PUBLIC.iter().copied().collect();
    assert_eq!(ran, expected, "every row ran");
}
