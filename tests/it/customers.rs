//! Customers, their notes and the label catalog (SPEC §7): a WhatsApp customer written by
//! a real webhook, then read, edited and searched by agents; every search is served by an
//! index and every other tenant's id is a 404.

use integration_tests::local_stack::token::{AgentClaims, mint};
use integration_tests::{
    FixtureVars, JWT_SECRET, TestChannel, call, connect_for, delete_as as delete, fixture, get,
    patch_as as patch, post_json, post_meta, token, unique_tenant,
};
use serde_json::{Value, json};
use shared::domain::conversation::{conversation_id, customer_id};
use shared::domain::ids::ChannelId;

/// A token of `tenant` for the agent `sub`.
fn token_of(tenant: &str, role: &str, sub: &str) -> String {
    mint(JWT_SECRET, &AgentClaims::new(tenant, role, sub, 600)).expect("token")
}

/// A phone number no other test uses: `852` and 8 more digits (11, E.164).
fn unique_phone() -> String {
    format!("852{:08}", ulid::Ulid::new().0 % 100_000_000)
}

/// The customer `from` writes to a WhatsApp channel under the profile name `name`
/// (the `whatsapp/text.json` fixture); its customer and conversation ids.
async fn whatsapp_writes(channel: &TestChannel, from: &str, name: &str) -> (String, String) {
    let mut vars = FixtureVars::new(channel, false);
    vars.sender = from.to_owned();
    let body = vars
        .render(&fixture("whatsapp/text.json"))
        .replace("Sheena Nelson", name);
    let reply = post_meta("whatsapp", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let channel_id = ChannelId::parse(&channel.id).unwrap();
    (
        customer_id(&channel_id, from),
        conversation_id(&channel_id, from),
    )
}

/// `/customers?…` with the pairs percent-encoded.
fn customers_path(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://x/customers").unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    format!("/customers?{}", url.query().unwrap_or(""))
}

/// The ids of every page of a search, in order.
async fn search(bearer: &str, pairs: &[(&str, &str)]) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let mut all: Vec<(&str, &str)> = pairs.to_vec();
        if let Some(c) = &cursor {
            all.push(("cursor", c));
        }
        let reply = get(&customers_path(&all), Some(bearer)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        for item in reply.body["items"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_owned());
        }
        match reply.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
    panic!("a search never ended");
}

#[tokio::test]
async fn a_whatsapp_customer_is_read_and_found_by_accented_name_phone_and_provider_id_prefixes() {
    let tenant = unique_tenant();
    let channel = connect_for(&tenant, "whatsapp", json!({})).await;
    let agent = token(&tenant, "agent");
    let phone = unique_phone();
    let (id, conversation) = whatsapp_writes(&channel, &phone, "Zoë Ålvarez-Núñez").await;
    let (other, _) = whatsapp_writes(&channel, &unique_phone(), "Bob Smith").await;

    let reply = get(&format!("/customers/{id}"), Some(&agent)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let c = &reply.body;
    assert_eq!(c["id"], id.as_str());
    assert_eq!(c["name"], "Zoë Ålvarez-Núñez");
    assert_eq!(c["external_id"], phone.as_str());
    assert_eq!(c["channel"], "whatsapp");
    assert_eq!(c["channel_id"], channel.id.as_str());
    assert_eq!(c["phone"], format!("+{phone}"));
    assert_eq!(c["email"], Value::Null);
    assert_eq!(c["labels"], json!([]));
    assert_eq!(c["attributes"], json!({}));
    assert_eq!(c["conversation_ids"], json!([conversation]));
    assert!(c["created_at"].is_string() && c["last_inbound_at"].is_string());

    for q in ["zoe", "ZOË ÅL", "  zoë alvarez-nunez ", "Zoe Alvarez"] {
        assert_eq!(search(&agent, &[("q", q)]).await, [id.as_str()], "{q:?}");
    }
    assert!(
        search(&agent, &[("q", "alvarez")]).await.is_empty(),
        "a prefix, not a word"
    );
    assert_eq!(search(&agent, &[("q", "bob")]).await, [other.as_str()]);
    // The phone prefix with or without '+': the number and the provider id (the same
    // digits on WhatsApp) find the customer once.
    for q in [
        format!("+{}", &phone[..8]),
        phone[..9].to_owned(),
        phone.clone(),
    ] {
        assert_eq!(search(&agent, &[("q", &q)]).await, [id.as_str()], "{q:?}");
    }
    let mut everyone = search(&agent, &[]).await;
    assert_eq!(
        everyone,
        [other.clone(), id.clone()],
        "by name: bob, then zoe"
    );
    everyone = search(&agent, &[("limit", "1")]).await;
    assert_eq!(everyone.len(), 2);
}

#[tokio::test]
async fn a_messenger_customer_is_found_by_its_provider_id_prefix_and_paged_once() {
    let tenant = unique_tenant();
    let messenger = connect_for(&tenant, "messenger", json!({})).await;
    let agent = token(&tenant, "agent");
    let mut found = Vec::new();
    let mut psids = Vec::new();
    for n in 0..3 {
        let mut vars = FixtureVars::new(&messenger, false);
        vars.sender = format!("77{:016}", ulid::Ulid::new().0 % 10u128.pow(14) * 100 + n);
        let reply = post_meta("messenger", &vars.render(&fixture("messenger/text.json"))).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        found.push(customer_id(
            &ChannelId::parse(&messenger.id).unwrap(),
            &vars.sender,
        ));
        psids.push(vars.sender);
    }
    let reply = get(&format!("/customers/{}", found[0]), Some(&agent)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["channel"], "messenger");
    assert_eq!(reply.body["phone"], Value::Null, "a PSID is no phone");
    // Digits: read as a phone prefix (nothing there), then as a provider id prefix.
    let mut got = search(&agent, &[("q", "77"), ("limit", "1")]).await;
    got.sort();
    found.sort();
    assert_eq!(got, found, "every customer once over pages of one");
    assert_eq!(
        search(&agent, &[("q", &psids[1])]).await,
        [customer_id(
            &ChannelId::parse(&messenger.id).unwrap(),
            &psids[1]
        )]
    );
}

#[tokio::test]
async fn an_agents_name_survives_the_next_message_and_shows_on_the_conversation() {
    let tenant = unique_tenant();
    let channel = connect_for(&tenant, "whatsapp", json!({})).await;
    let agent = token(&tenant, "agent");
    let phone = unique_phone();
    let (id, conversation) = whatsapp_writes(&channel, &phone, "Zoë Ålvarez").await;
    let path = format!("/customers/{id}");

    let reply = patch(&path, &agent, &json!({"name": "  Zoé (VIP)  "})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["name"], "Zoé (VIP)");
    assert_eq!(reply.body["profile_name"], "Zoë Ålvarez");

    // The customer writes again under the profile name: the agent's name stays.
    whatsapp_writes(&channel, &phone, "Zoë Ålvarez").await;
    let reply = get(&path, Some(&agent)).await;
    assert_eq!(reply.body["name"], "Zoé (VIP)");
    let conv = get(&format!("/conversations/{conversation}"), Some(&agent)).await;
    assert_eq!(conv.status, 200, "{}", conv.text);
    assert_eq!(conv.body["customer"]["name"], "Zoé (VIP)");
    let listed = get("/conversations", Some(&agent)).await;
    assert_eq!(listed.body["items"][0]["customer"]["name"], "Zoé (VIP)");
    assert_eq!(search(&agent, &[("q", "zoe (v")]).await, [id.as_str()]);
    assert!(search(&agent, &[("q", "zoe al")]).await.is_empty());

    // Back to the profile name, which the next message may change.
    let reply = patch(&path, &agent, &json!({"name": null})).await;
    assert_eq!(reply.body["name"], "Zoë Ålvarez");
    whatsapp_writes(&channel, &phone, "Zoë A.").await;
    let conv = get(&format!("/conversations/{conversation}"), Some(&agent)).await;
    assert_eq!(conv.body["customer"]["name"], "Zoë A.");
    assert_eq!(search(&agent, &[("q", "zoe a.")]).await, [id.as_str()]);
    assert!(search(&agent, &[("q", "zoe (v")]).await.is_empty());

    // Phone, email and attributes; a new message keeps the agent's phone in the index.
    let reply = patch(
        &path,
        &agent,
        &json!({"phone": "+447700900123", "email": "zoe@example.com",
                "attributes": {"tier": "gold", "city": "Lyon"}}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["phone"], "+447700900123");
    assert_eq!(reply.body["email"], "zoe@example.com");
    whatsapp_writes(&channel, &phone, "Zoë A.").await;
    assert_eq!(search(&agent, &[("q", "+4477009")]).await, [id.as_str()]);
    let reply = patch(
        &path,
        &agent,
        &json!({"attributes": {"city": null, "plan": "pro"}, "email": null}),
    )
    .await;
    assert_eq!(
        reply.body["attributes"],
        json!({"tier": "gold", "plan": "pro"})
    );
    assert_eq!(reply.body["email"], Value::Null);
    let reply = get(&path, Some(&agent)).await;
    assert_eq!(
        reply.body["attributes"],
        json!({"tier": "gold", "plan": "pro"})
    );
    let reply = patch(&path, &agent, &json!({"phone": null})).await;
    assert_eq!(reply.body["phone"], format!("+{phone}"));
    assert!(search(&agent, &[("q", "+4477009")]).await.is_empty());
    assert_eq!(search(&agent, &[("q", &phone[..8])]).await, [id]);
}

#[tokio::test]
async fn a_customer_started_by_the_business_is_found_by_its_number() {
    let tenant = unique_tenant();
    let waba = integration_tests::unique_meta_id();
    let channel = connect_for(&tenant, "whatsapp", json!({"waba_id": waba})).await;
    let created = post_json(
        "/templates",
        Some(&channel.admin()),
        &json!({"name": "hello", "language": "en_US", "category": "UTILITY",
                "components": [{"type": "BODY", "text": "Hi {{1}}"}]}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let phone = unique_phone();
    let agent = token(&tenant, "agent");
    let started = post_json(
        "/conversations",
        Some(&agent),
        &json!({"channel_id": channel.id, "to": phone,
                "template": {"name": "hello", "language": "en_US", "parameters": ["Ana"]}}),
    )
    .await;
    assert_eq!(started.status, 202, "{}", started.text);
    let id = customer_id(&ChannelId::parse(&channel.id).unwrap(), &phone);
    assert_eq!(search(&agent, &[("q", &phone[..6])]).await, [id.as_str()]);
    assert_eq!(search(&agent, &[]).await, [id.as_str()]);
    let reply = patch(&format!("/customers/{id}"), &agent, &json!({"name": "Ana"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["name"], "Ana");
}

#[tokio::test]
async fn every_bad_patch_is_a_422_with_its_own_code_and_writes_nothing() {
    let tenant = unique_tenant();
    let channel = connect_for(&tenant, "whatsapp", json!({})).await;
    let agent = token(&tenant, "agent");
    let (id, _) = whatsapp_writes(&channel, &unique_phone(), "Ana").await;
    let path = format!("/customers/{id}");
    let before = get(&path, Some(&agent)).await.body;
    let fifty: serde_json::Map<String, Value> =
        (0..50).map(|i| (format!("k{i}"), json!("v"))).collect();
    let reply = patch(&path, &agent, &json!({"attributes": fifty})).await;
    assert_eq!(
        reply.status, 200,
        "fifty attributes are fine: {}",
        reply.text
    );
    let full = get(&path, Some(&agent)).await.body;

    let cases = [
        (json!({"name": "Ana", "nickname": "A"}), "unknown_field"),
        (json!({"name": ""}), "invalid_name"),
        (json!({"name": "   "}), "invalid_name"),
        (json!({"name": "x".repeat(201)}), "invalid_name"),
        (json!({"name": 7}), "invalid_name"),
        (json!({"name": "Ana", "email": "ana@"}), "invalid_email"),
        (json!({"email": "Ana <ana@example.com>"}), "invalid_email"),
        (json!({"email": 1}), "invalid_email"),
        (json!({"phone": "85291234567"}), "invalid_phone"),
        (json!({"phone": "+0851234567"}), "invalid_phone"),
        (json!({"phone": "+1234567"}), "invalid_phone"),
        (json!({"phone": "+8529123456789012"}), "invalid_phone"),
        (json!({"phone": "+852 9123 4567"}), "invalid_phone"),
        (json!({"attributes": ["a"]}), "invalid_attributes"),
        (json!({"attributes": {"": "x"}}), "invalid_attributes"),
        (
            json!({"attributes": {"k".repeat(41): "x"}}),
            "invalid_attributes",
        ),
        (
            json!({"attributes": {"k": "v".repeat(501)}}),
            "invalid_attributes",
        ),
        (json!({"attributes": {"k": 5}}), "invalid_attributes"),
        (
            json!({"name": "New", "attributes": {"one_more": "v"}}),
            "invalid_attributes",
        ),
        (json!(["name"]), "invalid_body"),
    ];
    for (body, code) in cases {
        let reply = patch(&path, &agent, &body).await;
        assert_eq!((reply.status, reply.code()), (422, code), "{body}");
    }
    let reply = call("PATCH", &path, Some(&agent), Some(b"{\"name\":".to_vec())).await;
    assert_eq!((reply.status, reply.code()), (400, "invalid_json"));
    let after = get(&path, Some(&agent)).await.body;
    assert_eq!(after, full, "nothing written");
    assert_eq!(after["name"], before["name"]);
    let reply = get(&customers_path(&[("q", &"a".repeat(201))]), Some(&agent)).await;
    assert_eq!((reply.status, reply.code()), (400, "invalid_query"));
    let reply = get(&customers_path(&[("label", "Not A Label")]), Some(&agent)).await;
    assert_eq!((reply.status, reply.code()), (422, "invalid_label"));
    let reply = get(&customers_path(&[("cursor", "bm90IG91cnM")]), Some(&agent)).await;
    assert_eq!((reply.status, reply.code()), (400, "invalid_cursor"));
}

#[tokio::test]
async fn notes_name_their_author_and_only_the_author_or_an_admin_deletes_one() {
    let tenant = unique_tenant();
    let channel = connect_for(&tenant, "whatsapp", json!({})).await;
    let (id, _) = whatsapp_writes(&channel, &unique_phone(), "Ana").await;
    let named = call(
        "PUT",
        "/agents/agent-1",
        Some(&token(&tenant, "admin")),
        Some(
            json!({"name": "Alice Agent", "role": "agent"})
                .to_string()
                .into_bytes(),
        ),
    )
    .await;
    assert_eq!(named.status, 200, "{}", named.text);
    let author = token_of(&tenant, "agent", "agent-1");
    let colleague = token_of(&tenant, "agent", "agent-2");
    let admin = token_of(&tenant, "admin", "boss");
    let notes = format!("/customers/{id}/notes");

    let first = post_json(
        &notes,
        Some(&author),
        &json!({"text": "  Prefers mornings \n"}),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.body["text"], "Prefers mornings");
    assert_eq!(
        first.body["author"],
        json!({"id": "agent-1", "name": "Alice Agent"})
    );
    assert!(first.body["created_at"].is_string());
    let second = post_json(
        &notes,
        Some(&colleague),
        &json!({"text": "Asked for a refund"}),
    )
    .await;
    assert_eq!(second.status, 201, "{}", second.text);
    assert_eq!(
        second.body["author"],
        json!({"id": "agent-2", "name": null})
    );
    let third = post_json(&notes, Some(&author), &json!({"text": "x".repeat(5000)})).await;
    assert_eq!(third.status, 201, "{}", third.text);

    for (body, code) in [
        (json!({"text": ""}), "invalid_note"),
        (json!({"text": " \n\t "}), "invalid_note"),
        (json!({"text": "x".repeat(5001)}), "invalid_note"),
        (json!({"text": "hi", "pinned": true}), "invalid_body"),
        (json!({"text": 5}), "invalid_body"),
    ] {
        let reply = post_json(&notes, Some(&author), &body).await;
        assert_eq!((reply.status, reply.code()), (422, code), "{body}");
    }

    let page = get(&format!("{notes}?limit=2"), Some(&colleague)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], third.body["id"], "newest first");
    assert_eq!(items[1]["id"], second.body["id"]);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let rest = get(
        &format!("{notes}?limit=2&cursor={cursor}"),
        Some(&colleague),
    )
    .await;
    assert_eq!(rest.body["items"][0]["id"], first.body["id"]);
    assert_eq!(rest.body["items"][0]["author"]["name"], "Alice Agent");

    let first_path = format!("{notes}/{}", first.body["id"].as_str().unwrap());
    let second_path = format!("{notes}/{}", second.body["id"].as_str().unwrap());
    let third_path = format!("{notes}/{}", third.body["id"].as_str().unwrap());
    let reply = delete(&first_path, &colleague).await;
    assert_eq!((reply.status, reply.code()), (403, "forbidden"));
    assert_eq!(delete(&first_path, &author).await.status, 204);
    assert_eq!(delete(&first_path, &author).await.status, 404);
    assert_eq!(delete(&second_path, &admin).await.status, 204);
    assert_eq!(delete(&third_path, &author).await.status, 204);
    assert_eq!(
        delete(&format!("{notes}/not-a-note"), &admin).await.status,
        404
    );
    let left = get(&notes, Some(&author)).await;
    assert_eq!(left.body, json!({"items": [], "next_cursor": null}));
}

#[tokio::test]
async fn another_tenants_customer_is_a_404_on_every_route_and_nothing_changes() {
    let tenant = unique_tenant();
    let channel = connect_for(&tenant, "whatsapp", json!({})).await;
    let phone = unique_phone();
    let (id, _) = whatsapp_writes(&channel, &phone, "Ana").await;
    let owner = token(&tenant, "admin");
    let note = post_json(
        &format!("/customers/{id}/notes"),
        Some(&owner),
        &json!({"text": "private"}),
    )
    .await;
    assert_eq!(note.status, 201, "{}", note.text);
    let note_id = note.body["id"].as_str().unwrap();

    let stranger_tenant = unique_tenant();
    let stranger = token(&stranger_tenant, "admin");
    let customer = format!("/customers/{id}");
    let notes = format!("{customer}/notes");
    let replies = [
        get(&customer, Some(&stranger)).await,
        patch(&customer, &stranger, &json!({"name": "Mallory"})).await,
        get(&notes, Some(&stranger)).await,
        post_json(&notes, Some(&stranger), &json!({"text": "hi"})).await,
        delete(&format!("{notes}/{note_id}"), &stranger).await,
        get("/customers/cu_000000000000000000000000", Some(&owner)).await,
        get("/customers/..%2F..%2Fetc", Some(&owner)).await,
    ];
    for reply in replies {
        assert_eq!(
            (reply.status, reply.code()),
            (404, "not_found"),
            "{}",
            reply.text
        );
        assert!(!reply.text.contains("Ana") && !reply.text.contains("private"));
    }
    assert!(search(&stranger, &[]).await.is_empty());
    assert!(search(&stranger, &[("q", &phone)]).await.is_empty());
    let reply = get(&customer, Some(&owner)).await;
    assert_eq!(reply.body["name"], "Ana");
    let listed = get(&notes, Some(&owner)).await;
    assert_eq!(listed.body["items"][0]["text"], "private");
}

#[tokio::test]
async fn labels_are_created_by_admins_once_and_listed_to_agents_of_their_tenant() {
    let tenant = unique_tenant();
    let admin = token(&tenant, "admin");
    let agent = token(&tenant, "agent");
    let reply = post_json(
        "/labels",
        Some(&agent),
        &json!({"name": "vip", "color": "#ffaa00"}),
    )
    .await;
    assert_eq!((reply.status, reply.code()), (403, "forbidden"));
    let reply = post_json(
        "/labels",
        Some(&admin),
        &json!({"name": "vip", "color": "#FFAA00"}),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["name"], "vip");
    assert_eq!(reply.body["color"], "#ffaa00");
    assert!(reply.body["created_at"].is_string());
    let again = post_json(
        "/labels",
        Some(&admin),
        &json!({"name": "vip", "color": "#000000"}),
    )
    .await;
    assert_eq!((again.status, again.code()), (409, "duplicate_label"));
    for (body, code) in [
        (json!({"name": "VIP", "color": "#000000"}), "invalid_label"),
        (json!({"name": "a b", "color": "#000000"}), "invalid_label"),
        (
            json!({"name": "x".repeat(41), "color": "#000000"}),
            "invalid_label",
        ),
        (json!({"name": "new", "color": "red"}), "invalid_color"),
        (json!({"name": "new", "color": "#12345"}), "invalid_color"),
        (json!({"name": "new"}), "invalid_body"),
        (
            json!({"name": "new", "color": "#000000", "x": 1}),
            "invalid_body",
        ),
    ] {
        let reply = post_json("/labels", Some(&admin), &body).await;
        assert_eq!((reply.status, reply.code()), (422, code), "{body}");
    }
    let reply = post_json(
        "/labels",
        Some(&admin),
        &json!({"name": "follow-up", "color": "#00ff00"}),
    )
    .await;
    assert_eq!(reply.status, 201);
    let listed = get("/labels", Some(&agent)).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let names: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["follow-up", "vip"]);
    let page = get("/labels?limit=1", Some(&agent)).await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let next = get(&format!("/labels?limit=1&cursor={cursor}"), Some(&agent)).await;
    assert_eq!(next.body["items"][0]["name"], "vip");
    let other = get("/labels", Some(&token(&unique_tenant(), "agent"))).await;
    assert_eq!(other.body, json!({"items": [], "next_cursor": null}));
}

/// Puts `label` (in the catalog) on a customer through `PUT /customers/{id}/labels/{label}`.
async fn label(tenant: &str, customer: &str, label: &str) {
    let path = format!("/customers/{customer}/labels/{label}");
    let reply = call("PUT", &path, Some(&token(tenant, "agent")), None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn a_label_filter_reads_the_labels_members_and_combines_with_q() {
    let tenant = unique_tenant();
    let channel = connect_for(&tenant, "whatsapp", json!({})).await;
    let agent = token(&tenant, "agent");
    let (ana_phone, bea_phone) = (unique_phone(), unique_phone());
    let (ana, _) = whatsapp_writes(&channel, &ana_phone, "Ana Lima").await;
    let (bea, _) = whatsapp_writes(&channel, &bea_phone, "Ana Bea").await;
    let (cid, _) = whatsapp_writes(&channel, &unique_phone(), "Carla").await;
    let vip = json!({"name": "vip", "color": "#ffaa00"});
    let created = post_json("/labels", Some(&token(&tenant, "admin")), &vip).await;
    assert_eq!(created.status, 201, "{}", created.text);
    label(&tenant, &ana, "vip").await;
    label(&tenant, &cid, "vip").await;

    assert_eq!(
        search(&agent, &[("label", "vip")]).await,
        [ana.clone(), cid.clone()]
    );
    assert_eq!(
        search(&agent, &[("label", "vip"), ("limit", "1")]).await,
        [ana.clone(), cid]
    );
    assert_eq!(
        search(&agent, &[("label", "vip"), ("q", "ANA")]).await,
        [ana.as_str()]
    );
    assert_eq!(
        search(&agent, &[("q", "ana")]).await,
        [bea.clone(), ana.clone()]
    );
    assert_eq!(
        search(&agent, &[("label", "vip"), ("q", &ana_phone[..9])]).await,
        [ana.as_str()]
    );
    assert!(
        search(&agent, &[("label", "vip"), ("q", &bea_phone)])
            .await
            .is_empty()
    );
    assert!(search(&agent, &[("label", "gold")]).await.is_empty());
    let reply = get(&format!("/customers/{ana}"), Some(&agent)).await;
    assert_eq!(reply.body["labels"], json!(["vip"]));
}

#[tokio::test]
async fn a_forged_search_cursor_is_a_400_or_stays_in_the_callers_index() {
    let tenant = unique_tenant();
    let channel = connect_for(&tenant, "whatsapp", json!({})).await;
    let agent = token(&tenant, "agent");
    let (id, _) = whatsapp_writes(&channel, &unique_phone(), "Ana").await;
    use base64::Engine;
    let forge =
        |parts: &[&str]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(parts.join("\n"));
    let foreign = forge(&["name", "#cu_x", "TENANT#victim", "CUSTOMER#cu_x"]);
    let reply = get(&customers_path(&[("cursor", &foreign)]), Some(&agent)).await;
    assert!(reply.status == 200 || reply.status == 400, "{}", reply.text);
    if reply.status == 200 {
        let items = reply.body["items"].as_array().unwrap();
        assert!(items.iter().all(|c| c["id"] == id.as_str()));
    }
    for parts in [
        vec!["phone", "99#cu_x", "a", "b"],
        vec!["name", "zzz#cu_x", "a", "b"],
        vec!["label"],
        vec!["name", "nohash", "a", "b"],
    ] {
        let reply = get(
            &customers_path(&[("q", "ana"), ("cursor", &forge(&parts))]),
            Some(&agent),
        )
        .await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "invalid_cursor"),
            "{parts:?}"
        );
    }
}

#[tokio::test]
async fn parallel_patches_of_different_attributes_all_land() {
    let tenant = unique_tenant();
    let channel = connect_for(&tenant, "whatsapp", json!({})).await;
    let agent = token(&tenant, "agent");
    let (id, _) = whatsapp_writes(&channel, &unique_phone(), "Ana").await;
    let path = format!("/customers/{id}");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(6));
    let patches = (0..6).map(|i| {
        let (barrier, path, agent) = (barrier.clone(), path.clone(), agent.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            patch(
                &path,
                &agent,
                &json!({"attributes": {format!("k{i}"): "v"}}),
            )
            .await
        })
    });
    for reply in futures::future::join_all(patches).await {
        let reply = reply.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let reply = get(&path, Some(&agent)).await;
    let expected: serde_json::Map<String, Value> =
        (0..6).map(|i| (format!("k{i}"), json!("v"))).collect();
    assert_eq!(reply.body["attributes"], Value::Object(expected));
}
