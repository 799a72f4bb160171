//! The tenancy matrix: every agent route of template.yaml with an id in its path, called by
//! another tenant's agent and admin with this tenant's real ids, answers 404 with an error
//! body that shows nothing of this tenant, and changes nothing here.
//!
//! [`TABLE`] says, per route, how the request is made from tenant A's resources and which
//! of A's views must stay the same. A route in template.yaml without a row fails
//! [`every_agent_route_with_an_id_has_a_tenancy_case`], naming it: a new route needs its
//! case. Rows whose route is not in template.yaml (yet) are skipped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use integration_tests::local_stack::LOCAL_REGION;
use integration_tests::local_stack::template::{self, Template};
use integration_tests::{
    FixtureVars, Reply, TestChannel, call, connect_for, fixture, get, post_meta, sandbox_outbox,
    token, unique_meta_id, unique_tenant,
};
use serde_json::{Value, json};
use shared::domain::conversation::conversation_id;
use shared::domain::ids::ChannelId;

/// One route of the matrix.
struct Case {
    /// `METHOD /path` as template.yaml and SPEC §5/§7 write it.
    route: &'static str,
    /// The request path, with tenant A's resources as placeholders (see [`World`]).
    path: &'static str,
    /// The JSON body, with the same placeholders.
    body: Option<&'static str>,
    /// Tenant A's views (GET, as A's admin) that must read the same afterwards.
    probes: &'static [&'static str],
    /// The path names something in the caller's own namespace (an agent is a token's
    /// `sub`, a label a name): another tenant's call may act on its own tenant, so no 404
    /// is required, but it must show nothing of A and leave A unchanged.
    own_namespace: bool,
}

const fn case(
    route: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    probes: &'static [&'static str],
) -> Case {
    Case {
        route,
        path,
        body,
        probes,
        own_namespace: false,
    }
}

const CONVERSATION: &str = "/conversations/{conversation}";
const MESSAGES: &str = "/conversations/{conversation}/messages";
const CUSTOMER: &str = "/customers/{customer}";
const NOTES: &str = "/customers/{customer}/notes";
const SCHEDULED: &str = "/scheduled-messages";

/// Every agent route with an id in its path (SPEC §5 and §7), and how to call it with
/// tenant A's ids.
const TABLE: &[Case] = &[
    // Conversations and messages.
    case(
        "GET /conversations/{id}",
        CONVERSATION,
        None,
        &[CONVERSATION],
    ),
    case(
        "PATCH /conversations/{id}",
        CONVERSATION,
        Some(r#"{"status": "closed"}"#),
        &[CONVERSATION, MESSAGES],
    ),
    case(
        "GET /conversations/{id}/messages",
        MESSAGES,
        None,
        &[MESSAGES],
    ),
    case(
        "POST /conversations/{id}/messages",
        MESSAGES,
        Some(r#"{"kind": "text", "text": "sent by another tenant"}"#),
        &[CONVERSATION, MESSAGES],
    ),
    case(
        "POST /conversations/{id}/read",
        "/conversations/{conversation}/read",
        None,
        &[CONVERSATION, MESSAGES],
    ),
    case(
        "PUT /conversations/{id}/assignee",
        "/conversations/{conversation}/assignee",
        Some(r#"{"agent_id": null}"#),
        &[CONVERSATION, MESSAGES],
    ),
    // Customers, labels on them, notes.
    case("GET /customers/{id}", CUSTOMER, None, &[CUSTOMER]),
    case(
        "PATCH /customers/{id}",
        CUSTOMER,
        Some(r#"{"name": "Renamed by another tenant"}"#),
        &[CUSTOMER, CONVERSATION],
    ),
    case(
        "PUT /customers/{id}/labels/{label}",
        "/customers/{customer}/labels/{shared_label}",
        None,
        &[CUSTOMER, CONVERSATION, MESSAGES],
    ),
    case(
        "DELETE /customers/{id}/labels/{label}",
        "/customers/{customer}/labels/{shared_label}",
        None,
        &[CUSTOMER, CONVERSATION, MESSAGES],
    ),
    case("GET /customers/{id}/notes", NOTES, None, &[NOTES]),
    case(
        "POST /customers/{id}/notes",
        NOTES,
        Some(r#"{"text": "a note from another tenant"}"#),
        &[NOTES],
    ),
    case(
        "DELETE /customers/{id}/notes/{note_id}",
        "/customers/{customer}/notes/{note}",
        None,
        &[NOTES],
    ),
    // The tenant's catalogs.
    case(
        "DELETE /templates/{id}",
        "/templates/{template}",
        None,
        &["/templates"],
    ),
    case(
        "GET /media/{id}",
        "/media/{media}",
        None,
        &["/media/{media}"],
    ),
    case(
        "PUT /faqs/{id}",
        "/faqs/{faq}",
        Some(r#"{"title": "Hijacked", "text": "by another tenant"}"#),
        &["/faqs"],
    ),
    case("DELETE /faqs/{id}", "/faqs/{faq}", None, &["/faqs"]),
    case(
        "POST /faqs/{id}/render",
        "/faqs/{faq}/render",
        Some(r#"{"conversation_id": "{conversation}"}"#),
        &["/faqs"],
    ),
    // Bots: ids an admin chooses, unique per tenant.
    case("GET /bots/{id}", "/bots/{bot}", None, &["/bots"]),
    case("DELETE /bots/{id}", "/bots/{bot}", None, &["/bots"]),
    case(
        "POST /conversations/{id}/bot/exit",
        "/conversations/{conversation}/bot/exit",
        None,
        &[CONVERSATION, MESSAGES],
    ),
    // Scheduled messages: a valid body, so that only the conversation can refuse it.
    case(
        "POST /conversations/{id}/scheduled-messages",
        "/conversations/{conversation}/scheduled-messages",
        Some(
            r#"{"send_at": "{send_at}", "message": {"kind": "text", "text": "scheduled by another tenant"}}"#,
        ),
        &[CONVERSATION, MESSAGES, SCHEDULED],
    ),
    case(
        "DELETE /scheduled-messages/{id}",
        "/scheduled-messages/{scheduled}",
        None,
        &[SCHEDULED, MESSAGES],
    ),
    // Calendar and bookings (SPEC §10).
    case(
        "DELETE /calendar/slots/{id}",
        "/calendar/slots/{slot}",
        None,
        &["/calendar/slots"],
    ),
    case(
        "GET /customers/{id}/bookings",
        "/customers/{customer}/bookings",
        None,
        &["/customers/{customer}/bookings"],
    ),
    case(
        "DELETE /bookings/{id}",
        "/bookings/{booking}",
        None,
        &["/bookings", "/calendar/slots", MESSAGES],
    ),
    case(
        "POST /customers/{id}/booking-invitations",
        "/customers/{customer}/booking-invitations",
        Some("{}"),
        &[MESSAGES],
    ),
    // Payments (SPEC §11): a valid body, so that only the id can refuse it.
    case(
        "PUT /products/{id}",
        "/products/{product}",
        Some(r#"{"name": "Another tenant's product", "price": 100, "currency": "USD"}"#),
        &["/products"],
    ),
    case(
        "DELETE /products/{id}",
        "/products/{product}",
        None,
        &["/products"],
    ),
    case(
        "GET /customers/{id}/payments",
        "/customers/{customer}/payments",
        None,
        &["/customers/{customer}/payments"],
    ),
    case(
        "POST /customers/{id}/payments",
        "/customers/{customer}/payments",
        Some(r#"{"amount": 500, "description": "Another tenant's charge"}"#),
        &[MESSAGES, "/customers/{customer}/payments"],
    ),
    // Video calls (SPEC §12).
    case(
        "POST /conversations/{id}/calls",
        "/conversations/{conversation}/calls",
        Some("{}"),
        &[MESSAGES],
    ),
    case("GET /calls/{id}", "/calls/{call}", None, &[MESSAGES]),
    // Names in the caller's own namespace.
    Case {
        own_namespace: true,
        ..case(
            "PUT /bots/{id}",
            "/bots/{bot}",
            Some(
                r#"{"name": "Another tenant's bot", "trigger": {"type": "first_message"}, "steps": [{"id": "a", "type": "reply", "text": "hi"}]}"#,
            ),
            &["/bots"],
        )
    },
    Case {
        own_namespace: true,
        ..case(
            "PUT /agents/{id}",
            "/agents/{agent}",
            Some(r#"{"name": "Another tenant's agent", "role": "agent"}"#),
            &["/agents"],
        )
    },
    Case {
        own_namespace: true,
        ..case("DELETE /agents/{id}", "/agents/{agent}", None, &["/agents"])
    },
    Case {
        own_namespace: true,
        ..case(
            "DELETE /labels/{name}",
            "/labels/{label}",
            None,
            &["/labels", CUSTOMER],
        )
    },
];

/// `METHOD /path` with every `{param}` as `{}`: routes compare by shape, whatever their
/// parameters are called.
pub(super) fn shape(route: &str) -> String {
    let mut out = String::with_capacity(route.len());
    let mut in_param = false;
    for c in route.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('{');
            }
            '}' => {
                in_param = false;
                out.push('}');
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// The template's agent routes (JWT authorizer), by shape → as written.
fn agent_routes(template: &Template) -> BTreeMap<String, String> {
    template
        .functions()
        .expect("template functions")
        .into_iter()
        .flat_map(|f| f.routes)
        .filter(|r| !r.public)
        .map(|r| {
            let route = format!("{} {}", r.method, r.path);
            (shape(&route), route)
        })
        .collect()
}

/// The routes with an id that [`TABLE`] has no row for, as the template writes them.
fn without_row(routes: &BTreeMap<String, String>) -> Vec<String> {
    let table: BTreeSet<String> = TABLE.iter().map(|c| shape(c.route)).collect();
    routes
        .iter()
        .filter(|(s, _)| s.contains('{') && !table.contains(*s))
        .map(|(_, route)| route.clone())
        .collect()
}

#[test]
fn a_route_without_a_row_is_named_whatever_its_parameters_are_called() {
    let routes: BTreeMap<String, String> = [
        "GET /conversations/{conversation_id}",
        "POST /conversations/{id}/teleport",
        "GET /conversations",
    ]
    .into_iter()
    .map(|r| (shape(r), r.to_owned()))
    .collect();
    assert_eq!(without_row(&routes), ["POST /conversations/{id}/teleport"]);
    assert_eq!(
        shape("DELETE /customers/{id}/notes/{note_id}"),
        "DELETE /customers/{}/notes/{}"
    );
}

#[test]
fn an_answer_that_shows_another_tenants_data_or_is_not_a_404_is_judged_wrong() {
    let reply = |status: u16, body: Value| Reply {
        status,
        text: body.to_string(),
        body,
    };
    let case = &TABLE[0];
    let secrets = ["Sheena Nelson".to_owned(), "cv_01A_abc".to_owned()];
    let sent = "/conversations/cv_01A_abc ";
    let clean = reply(
        404,
        json!({"error": {"code": "not_found", "message": "conversation not found"}}),
    );
    assert!(judge(case, "admin", sent, &clean, &secrets).is_empty());
    let echoing = reply(
        404,
        json!({"error": {"code": "not_found", "message": "cv_01A_abc not found"}}),
    );
    assert!(
        judge(case, "admin", sent, &echoing, &secrets).is_empty(),
        "what B sent may come back"
    );
    let leaking = reply(
        404,
        json!({"error": {"code": "not_found", "message": "Sheena Nelson's"}}),
    );
    assert_eq!(judge(case, "admin", sent, &leaking, &secrets).len(), 1);
    let found = reply(200, json!({"id": "cv_01A_abc"}));
    assert_eq!(judge(case, "admin", sent, &found, &secrets).len(), 1);
    let forbidden = reply(
        403,
        json!({"error": {"code": "forbidden", "message": "admins only"}}),
    );
    assert!(judge(case, "agent", sent, &forbidden, &secrets).is_empty());
    assert_eq!(judge(case, "admin", sent, &forbidden, &secrets).len(), 1);
    let with_data = reply(
        404,
        json!({"error": {"code": "not_found", "message": "x"}, "item": {}}),
    );
    assert_eq!(judge(case, "admin", sent, &with_data, &secrets).len(), 1);
}

#[test]
fn every_agent_route_with_an_id_has_a_tenancy_case() {
    let template =
        Template::load(&template::default_path(), LOCAL_REGION).expect("template.yaml parses");
    let table: BTreeSet<String> = TABLE.iter().map(|c| shape(c.route)).collect();
    assert_eq!(table.len(), TABLE.len(), "a route has two rows");
    for c in TABLE {
        let (method, _) = c.route.split_once(' ').expect("METHOD /path");
        assert_eq!(
            shape(&format!("{method} {}", c.path)),
            shape(c.route),
            "the request path of {} does not fit its route",
            c.route
        );
    }
    let missing = without_row(&agent_routes(&template));
    assert!(
        missing.is_empty(),
        "agent routes with an id and no row in tests/it/tenancy.rs TABLE: {missing:?}; \
         add how to call each with another tenant's ids"
    );
}

/// Tenant A with its resources, made on first use (only through routes the template has),
/// and tenant B, the caller.
struct World {
    a: TestChannel,
    b: String,
    conversation: String,
    customer: String,
    /// Made on first use: placeholder → value.
    made: Mutex<HashMap<&'static str, String>>,
    /// Everything of A that another tenant must never be shown (ids, names, texts).
    secrets: Mutex<Vec<String>>,
    /// A suffix unique to this run.
    tag: String,
    routes: BTreeMap<String, String>,
}

impl World {
    async fn new(routes: BTreeMap<String, String>) -> Self {
        let a = connect_for(
            &unique_tenant(),
            "whatsapp",
            json!({"waba_id": unique_meta_id()}),
        )
        .await;
        let vars = FixtureVars::new(&a, false);
        let reply = post_meta("whatsapp", &vars.render(&fixture("whatsapp/text.json"))).await;
        assert_eq!(reply.status, 200, "A's customer writes: {}", reply.text);
        let conversation = conversation_id(&ChannelId::parse(&a.id).unwrap(), &vars.sender);
        let view = get(&format!("/conversations/{conversation}"), Some(&a.admin())).await;
        assert_eq!(view.status, 200, "{}", view.text);
        let customer = view.body["customer"]["id"]
            .as_str()
            .expect("customer id")
            .to_owned();
        let secrets = vec![
            a.tenant.clone(),
            a.id.clone(),
            a.external_id.clone(),
            vars.sender.clone(),
            conversation.clone(),
            customer.clone(),
            "Sheena Nelson".to_owned(),
            "blue running shoes".to_owned(),
        ];
        Self {
            a,
            b: unique_tenant(),
            conversation,
            customer,
            made: Mutex::default(),
            secrets: Mutex::new(secrets),
            tag: ulid::Ulid::new().to_string().to_lowercase()[..10].to_owned(),
            routes,
        }
    }

    fn keep_secret(&self, value: impl Into<String>) {
        self.secrets.lock().unwrap().push(value.into());
    }

    fn has_route(&self, route: &str) -> bool {
        self.routes.contains_key(&shape(route))
    }

    /// Calls `route` (`METHOD /pattern`) at `path` as A's admin to make a resource; its
    /// answer, which must be 2xx.
    async fn make(&self, route: &str, path: &str, body: Option<Value>, what: &str) -> Reply {
        assert!(
            self.has_route(route),
            "tenant A's {what} is made through {route}, which template.yaml lacks"
        );
        let (method, _) = route.split_once(' ').expect("METHOD /path");
        let reply = call(
            method,
            path,
            Some(&self.a.admin()),
            body.map(|b| b.to_string().into_bytes()),
        )
        .await;
        assert!(
            (200..300).contains(&reply.status),
            "making tenant A's {what} ({route}): {} {}",
            reply.status,
            reply.text
        );
        reply
    }

    /// The value of a placeholder, made now if it is the first use.
    async fn value(&self, name: &str) -> String {
        match name {
            "conversation" => return self.conversation.clone(),
            "customer" => return self.customer.clone(),
            // A time, not A's: an hour ahead, valid for any schedule.
            "send_at" => return (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
            _ => {}
        }
        if let Some(v) = self.made.lock().unwrap().get(name) {
            return v.clone();
        }
        let tag = &self.tag;
        let (key, value): (&'static str, String) = match name {
            "template" => {
                let name = format!("tenancy_{tag}");
                let body = json!({"name": name, "language": "en_US", "category": "UTILITY",
                    "channel_id": self.a.id,
                    "components": [{"type": "BODY", "text": "Hi {{1}}, your order ships today."}]});
                let reply = self
                    .make("POST /templates", "/templates", Some(body), "template")
                    .await;
                self.keep_secret(name);
                ("template", id_of(&reply, "id"))
            }
            "media" => {
                let body = json!({"filename": format!("a-{tag}.jpg"), "content_type": "image/jpeg", "size": 1000});
                let reply = self
                    .make("POST /media", "/media", Some(body), "media")
                    .await;
                self.keep_secret(format!("a-{tag}.jpg"));
                ("media", id_of(&reply, "media_id"))
            }
            "label" => {
                let label = format!("a-only-{tag}");
                let body = json!({"name": label, "color": "#3b82f6"});
                self.make("POST /labels", "/labels", Some(body), "label")
                    .await;
                ("label", label)
            }
            "shared_label" => {
                // A label both tenants have, on A's customer: only the customer differs.
                let label = format!("both-{tag}");
                let body = json!({"name": label, "color": "#16a34a"});
                self.make("POST /labels", "/labels", Some(body.clone()), "label")
                    .await;
                let b = call(
                    "POST",
                    "/labels",
                    Some(&token(&self.b, "admin")),
                    Some(body.to_string().into_bytes()),
                )
                .await;
                assert!((200..300).contains(&b.status), "B's label: {}", b.text);
                let path = format!("/customers/{}/labels/{label}", self.customer);
                self.make(
                    "PUT /customers/{id}/labels/{label}",
                    &path,
                    None,
                    "customer label",
                )
                .await;
                ("shared_label", label)
            }
            "note" => {
                let text = format!("A's private note {tag}");
                let path = format!("/customers/{}/notes", self.customer);
                let reply = self
                    .make(
                        "POST /customers/{id}/notes",
                        &path,
                        Some(json!({"text": text})),
                        "note",
                    )
                    .await;
                self.keep_secret(text);
                ("note", id_of(&reply, "id"))
            }
            "faq" => {
                let title = format!("A's canned reply {tag}");
                let body = json!({"title": title, "text": "Hello {{customer.name}}"});
                let reply = self.make("POST /faqs", "/faqs", Some(body), "FAQ").await;
                self.keep_secret(title);
                ("faq", id_of(&reply, "id"))
            }
            "bot" => {
                let id = format!("bot-a-{tag}");
                let name = format!("A's bot {tag}");
                let path = format!("/bots/{id}");
                let body = json!({"name": name, "trigger": {"type": "keyword", "keywords": ["zebra"]},
                    "steps": [{"id": "hi", "type": "reply", "text": "Hello from A"}]});
                self.make("PUT /bots/{id}", &path, Some(body), "bot").await;
                self.keep_secret(name);
                ("bot", id)
            }
            "scheduled" => {
                // A day ahead: it never fires while the matrix runs.
                let text = format!("A's scheduled message {tag}");
                let path = format!("/conversations/{}/scheduled-messages", self.conversation);
                let send_at = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
                let body = json!({"send_at": send_at, "message": {"kind": "text", "text": text}});
                let reply = self
                    .make(
                        "POST /conversations/{id}/scheduled-messages",
                        &path,
                        Some(body),
                        "scheduled message",
                    )
                    .await;
                self.keep_secret(text);
                ("scheduled", id_of(&reply, "id"))
            }
            "slot" => {
                let start = (chrono::Utc::now() + chrono::Duration::days(3))
                    .format("%Y-%m-%dT09:00:00Z")
                    .to_string();
                let body = json!({"start": start, "duration_minutes": 30});
                let reply = self
                    .make(
                        "POST /calendar/slots",
                        "/calendar/slots",
                        Some(body),
                        "slot",
                    )
                    .await;
                let id = reply.body["items"][0]["id"].as_str().expect("slot id");
                ("slot", id.to_owned())
            }
            "booking" => {
                let start = (chrono::Utc::now() + chrono::Duration::days(4))
                    .format("%Y-%m-%dT09:00:00Z")
                    .to_string();
                let body = json!({"start": start, "duration_minutes": 30});
                let slot = self
                    .make(
                        "POST /calendar/slots",
                        "/calendar/slots",
                        Some(body),
                        "slot",
                    )
                    .await;
                let note = format!("A's booking note {tag}");
                let body = json!({"customer_id": self.customer, "slot_id": slot.body["items"][0]["id"],
                    "note": note});
                let reply = self
                    .make("POST /bookings", "/bookings", Some(body), "booking")
                    .await;
                self.keep_secret(note);
                ("booking", id_of(&reply, "id"))
            }
            "product" => {
                let name = format!("A's product {tag}");
                let body = json!({"name": name, "price": 4500, "currency": "USD"});
                let reply = self
                    .make("POST /products", "/products", Some(body), "product")
                    .await;
                self.keep_secret(name);
                ("product", id_of(&reply, "id"))
            }
            "call" => {
                let path = format!("/conversations/{}/calls", self.conversation);
                let reply = self
                    .make(
                        "POST /conversations/{id}/calls",
                        &path,
                        Some(json!({})),
                        "call",
                    )
                    .await;
                ("call", id_of(&reply, "id"))
            }
            "agent" => {
                let id = format!("agent-a-{tag}");
                let name = format!("Ada of A {tag}");
                let path = format!("/agents/{id}");
                self.make(
                    "PUT /agents/{id}",
                    &path,
                    Some(json!({"name": name, "role": "agent"})),
                    "agent",
                )
                .await;
                self.keep_secret(name);
                ("agent", id)
            }
            other => panic!("TABLE uses an unknown placeholder {{{other}}}"),
        };
        self.keep_secret(value.clone());
        self.made.lock().unwrap().insert(key, value.clone());
        value
    }

    /// A text with every `{placeholder}` replaced by A's value.
    async fn fill(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            let after = &rest[start + 1..];
            let end = after.find('}');
            let name = end.map(|e| &after[..e]);
            match name {
                Some(n)
                    if !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
                {
                    out.push_str(&rest[..start]);
                    out.push_str(&self.value(n).await);
                    rest = &after[n.len() + 1..];
                }
                _ => {
                    out.push_str(&rest[..=start]);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// A's views of the probes the template can serve, as A's admin sees them now.
    async fn snapshot(&self, probes: &[&str]) -> Vec<(String, u16, Value)> {
        let mut out = Vec::new();
        for probe in probes {
            if !self.has_route(&format!("GET {probe}")) {
                continue;
            }
            let path = self.fill(probe).await;
            let reply = get(&path, Some(&self.a.admin())).await;
            out.push((path, reply.status, steady(reply.body)));
        }
        out
    }
}

fn id_of(reply: &Reply, field: &str) -> String {
    reply.body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {}", reply.text))
        .to_owned()
}

/// A view without what changes by itself between two reads (presigned links, times of
/// the last request).
fn steady(mut value: Value) -> Value {
    const MOVING: &[&str] = &["download_url", "last_seen_at", "last_active_at"];
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.retain(|k, _| !MOVING.contains(&k.as_str()));
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

/// What is wrong with another tenant's answer, if anything.
fn judge(case: &Case, role: &str, sent: &str, reply: &Reply, secrets: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let allowed: &[u16] = match (case.own_namespace, role) {
        // Agents may be refused an admin route before anything is read.
        (false, "agent") => &[403, 404],
        (false, _) => &[404],
        (true, _) => &[],
    };
    if case.own_namespace {
        if reply.status >= 500 {
            problems.push(format!(
                "{} as B's {role}: {} {}",
                case.route, reply.status, reply.text
            ));
        }
    } else if !allowed.contains(&reply.status) {
        problems.push(format!(
            "{} as B's {role}: expected {allowed:?}, got {} {}",
            case.route, reply.status, reply.text
        ));
    } else {
        let keys: Vec<&String> = reply
            .body
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        let code = reply.code();
        let expected = if reply.status == 404 {
            "not_found"
        } else {
            "forbidden"
        };
        if keys != ["error"] || code != expected || !reply.body["error"]["message"].is_string() {
            problems.push(format!(
                "{} as B's {role}: not a bare {expected} error: {}",
                case.route, reply.text
            ));
        }
    }
    for secret in secrets.iter().filter(|s| !sent.contains(s.as_str())) {
        if reply.text.contains(secret.as_str()) {
            problems.push(format!(
                "{} as B's {role}: the answer shows A's {secret:?}: {}",
                case.route, reply.text
            ));
        }
    }
    problems
}

#[tokio::test]
async fn another_tenant_gets_404_and_changes_nothing_on_every_route_with_an_id() {
    let routes = agent_routes(&integration_tests::stack().template);
    let world = World::new(routes).await;
    let mut problems = Vec::new();
    let mut ran = Vec::new();
    for case in TABLE {
        if !world.has_route(case.route) {
            eprintln!(
                "tenancy: {} is not in template.yaml yet: skipped",
                case.route
            );
            continue;
        }
        let path = world.fill(case.path).await;
        let body = match case.body {
            Some(b) => Some(world.fill(b).await),
            None => None,
        };
        let before = world.snapshot(case.probes).await;
        let outbox_before = sandbox_outbox(&world.a.external_id).len();
        let sent = format!("{path} {}", body.as_deref().unwrap_or_default());
        let secrets = world.secrets.lock().unwrap().clone();
        let (method, _) = case.route.split_once(' ').expect("METHOD /path");
        for role in ["agent", "admin"] {
            let reply = call(
                method,
                &path,
                Some(&token(&world.b, role)),
                body.clone().map(String::into_bytes),
            )
            .await;
            problems.extend(judge(case, role, &sent, &reply, &secrets));
        }
        let after = world.snapshot(case.probes).await;
        if before != after {
            problems.push(format!(
                "{}: tenant A's views changed: before {before:?}, after {after:?}",
                case.route
            ));
        }
        if sandbox_outbox(&world.a.external_id).len() != outbox_before {
            problems.push(format!(
                "{}: another tenant's call reached A's provider account",
                case.route
            ));
        }
        ran.push(case.route);
    }
    assert!(
        problems.is_empty(),
        "tenancy problems:\n{}",
        problems.join("\n")
    );
    assert!(
        ran.contains(&"GET /conversations/{id}"),
        "the matrix ran nothing: {ran:?}"
    );
}

/// A tenant with one of everything (made as the matrix makes tenant A's), and every agent
/// route with an id mapped to its path parameters filled with that tenant's ids, for the
/// contract conformance run (`conformance.rs`).
pub(super) async fn tenant_with_ids() -> (String, Vec<(String, Vec<(String, String)>)>) {
    let template =
        Template::load(&template::default_path(), LOCAL_REGION).expect("template.yaml parses");
    let routes = agent_routes(&template);
    let world = World::new(routes.clone()).await;
    let mut operations = Vec::new();
    for case in TABLE {
        let Some(written) = routes.get(&shape(case.route)) else {
            continue;
        };
        let (_, route_path) = written.split_once(' ').expect("METHOD /path");
        let mut parameters = Vec::new();
        for (name, filled) in route_path.split('/').zip(case.path.split('/')) {
            if let (Some(name), Some(placeholder)) = (
                name.strip_prefix('{').and_then(|n| n.strip_suffix('}')),
                filled.strip_prefix('{').and_then(|p| p.strip_suffix('}')),
            ) {
                parameters.push((name.to_owned(), world.value(placeholder).await));
            }
        }
        operations.push((written.clone(), parameters));
    }
    (world.a.tenant.clone(), operations)
}
