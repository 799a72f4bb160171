//! The agent workspace (SPEC §7): tenant settings, the agent directory and the FAQ
//! catalog, over HTTP against the local stack.

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{
    FixtureVars, Reply, TestChannel, call, connect_for, delete_as as delete, fixture, get,
    post_json, post_meta, put_as, stack, token, unique_tenant,
};
use serde_json::{Value, json};
use shared::adapters::keys::{self, Key};

async fn put_json(path: &str, bearer: &str, body: &Value) -> Reply {
    put_as(path, bearer, Some(body)).await
}
use shared::domain::conversation::{conversation_id, customer_id};
use shared::domain::ids::{ChannelId, TenantId};

fn dynamo() -> (aws_sdk_dynamodb::Client, String) {
    let client = aws_sdk_dynamodb::Client::new(&stack().settings.sdk_config());
    let table = stack().template.local_name("ChatTable").unwrap();
    (client, table)
}

/// Sets one attribute of an item straight in the table (what another feature would write).
async fn set_attribute(key: Key, name: &str, value: AttributeValue) {
    let (client, table) = dynamo();
    client
        .update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(key.pk))
        .key("sk", AttributeValue::S(key.sk))
        .update_expression("SET #a = :v")
        .expression_attribute_names("#a", name)
        .expression_attribute_values(":v", value)
        .send()
        .await
        .expect("update item");
}

fn no_hours() -> Value {
    json!({"mon": [], "tue": [], "wed": [], "thu": [], "fri": [], "sat": [], "sun": []})
}

// ---- Settings ----

#[tokio::test]
async fn settings_are_the_defaults_until_an_admin_saves_them_then_read_back_as_saved() {
    let tenant = unique_tenant();
    let agent = token(&tenant, "agent");
    let admin = token(&tenant, "admin");

    let defaults = get("/settings", Some(&agent)).await;
    assert_eq!(defaults.status, 200, "{}", defaults.text);
    assert_eq!(
        defaults.body,
        json!({"business_name": null, "time_zone": "UTC", "business_hours": no_hours(),
               "auto_assign": false})
    );

    let saved = put_json(
        "/settings",
        &admin,
        &json!({"business_name": "Café Luna", "time_zone": "Asia/Hong_Kong", "auto_assign": true,
                "business_hours": {"mon": [["14:00", "18:00"], ["09:00", "12:00"]],
                                   "sat": [["10:00", "24:00"]]}}),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    let mut expected = json!({"business_name": "Café Luna", "time_zone": "Asia/Hong_Kong",
                              "business_hours": no_hours(), "auto_assign": true});
    expected["business_hours"]["mon"] = json!([["09:00", "12:00"], ["14:00", "18:00"]]);
    expected["business_hours"]["sat"] = json!([["10:00", "24:00"]]);
    assert_eq!(saved.body, expected);
    let read = get("/settings", Some(&agent)).await;
    assert_eq!(read.body, expected, "any agent reads what the admin saved");

    // A PUT replaces everything: what it leaves out goes back to its default.
    let replaced = put_json("/settings", &admin, &json!({"time_zone": "Europe/Paris"})).await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    let paris = json!({"business_name": null, "time_zone": "Europe/Paris",
                       "business_hours": no_hours(), "auto_assign": false});
    assert_eq!(get("/settings", Some(&agent)).await.body, paris);

    // Another feature's attribute on the item neither breaks the read nor is lost.
    let key = keys::settings(&TenantId::parse(&tenant).unwrap());
    set_attribute(
        key.clone(),
        "payment_provider",
        AttributeValue::S("stripe".into()),
    )
    .await;
    assert_eq!(get("/settings", Some(&agent)).await.body, paris);
    assert_eq!(put_json("/settings", &admin, &paris).await.status, 200);
    let (client, table) = dynamo();
    let item = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(key.pk))
        .key("sk", AttributeValue::S(key.sk))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        item.item().unwrap()["payment_provider"].as_s().unwrap(),
        "stripe"
    );
}

#[tokio::test]
async fn each_bad_setting_is_a_422_with_its_code_and_changes_nothing() {
    let tenant = unique_tenant();
    let admin = token(&tenant, "admin");
    let good = json!({"business_name": "Acme", "time_zone": "America/New_York",
                      "business_hours": {"fri": [["09:00", "17:00"]]}});
    assert_eq!(put_json("/settings", &admin, &good).await.status, 200);
    let before = get("/settings", Some(&admin)).await.body;

    let cases = [
        (
            json!({"time_zone": "Mars/Olympus_Mons"}),
            "invalid_time_zone",
        ),
        (json!({"time_zone": ""}), "invalid_time_zone"),
        (
            json!({"business_hours": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}),
            "invalid_business_hours",
        ),
        (
            json!({"business_hours": {"mon": [["18:00", "09:00"]]}}),
            "invalid_business_hours",
        ),
        (
            json!({"business_hours": {"mon": [["09:00", "25:00"]]}}),
            "invalid_business_hours",
        ),
        (
            json!({"business_hours": {"mon": [["9am", "5pm"]]}}),
            "invalid_business_hours",
        ),
        (
            json!({"business_hours": {"funday": [["09:00", "17:00"]]}}),
            "invalid_business_hours",
        ),
        (json!({"business_name": ""}), "invalid_business_name"),
        (
            json!({"business_name": "x".repeat(201)}),
            "invalid_business_name",
        ),
        (
            json!({"business_name": "Acme", "currency": "HKD"}),
            "invalid_body",
        ),
        (json!({"auto_assign": "yes"}), "invalid_body"),
    ];
    for (body, code) in cases {
        let reply = put_json("/settings", &admin, &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, code),
            "{body}: {}",
            reply.text
        );
    }
    assert_eq!(get("/settings", Some(&admin)).await.body, before);
}

// ---- Roles ----

#[tokio::test]
async fn an_agent_reads_the_workspace_but_gets_403_on_every_admin_route() {
    let tenant = unique_tenant();
    let agent = token(&tenant, "agent");
    let faq = post_json(
        "/faqs",
        Some(&token(&tenant, "admin")),
        &json!({"title": "Hours", "text": "We open at 9."}),
    )
    .await;
    assert_eq!(faq.status, 201, "{}", faq.text);
    let id = faq.body["id"].as_str().unwrap();

    for path in ["/settings", "/agents", "/faqs"] {
        assert_eq!(get(path, Some(&agent)).await.status, 200, "{path}");
    }
    let body = json!({"name": "x", "role": "admin", "title": "x", "text": "x"});
    let refused = [
        call("PUT", "/settings", Some(&agent), Some(b"{}".to_vec())).await,
        put_json(
            "/agents/agent-1",
            &agent,
            &json!({"name": "Me", "role": "admin"}),
        )
        .await,
        delete("/agents/agent-1", &agent).await,
        post_json("/faqs", Some(&agent), &json!({"title": "T", "text": "t"})).await,
        put_json(&format!("/faqs/{id}"), &agent, &body).await,
        delete(&format!("/faqs/{id}"), &agent).await,
    ];
    for reply in refused {
        assert_eq!(
            (reply.status, reply.code()),
            (403, "forbidden"),
            "{}",
            reply.text
        );
    }
    assert_eq!(
        get("/faqs", Some(&agent)).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        get("/agents", Some(&agent)).await.body,
        json!({"items": [], "next_cursor": null})
    );
}

// ---- Agents ----

#[tokio::test]
async fn an_admin_creates_replaces_lists_and_removes_agents() {
    let tenant = unique_tenant();
    let admin = token(&tenant, "admin");
    let created = put_json(
        "/agents/agent-7",
        &admin,
        &json!({"name": " Ana ", "role": "agent"}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!(created.body["id"], "agent-7");
    assert_eq!(created.body["name"], "Ana");
    assert_eq!(created.body["role"], "agent");
    let replaced = put_json(
        "/agents/agent-7",
        &admin,
        &json!({"name": "Ana Lima", "role": "admin"}),
    )
    .await;
    assert_eq!(replaced.status, 200);
    assert_eq!(replaced.body["role"], "admin");
    assert_eq!(replaced.body["created_at"], created.body["created_at"]);
    let second = put_json(
        "/agents/agent-3",
        &admin,
        &json!({"name": "Bo", "role": "agent"}),
    )
    .await;
    assert_eq!(second.status, 200);

    let page = get("/agents?limit=1", Some(&token(&tenant, "agent"))).await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(page.body["items"][0]["id"], "agent-3");
    let cursor = page.body["next_cursor"].as_str().expect("a second page");
    let next = get(&format!("/agents?limit=1&cursor={cursor}"), Some(&admin)).await;
    assert_eq!(next.body["items"][0], replaced.body);

    for (path, body, code) in [
        (
            "/agents/agent-7",
            json!({"name": "", "role": "agent"}),
            "invalid_name",
        ),
        (
            "/agents/agent-7",
            json!({"name": "Ana", "role": "owner"}),
            "invalid_role",
        ),
        (
            "/agents/agent-7",
            json!({"name": "Ana", "role": "agent", "x": 1}),
            "invalid_body",
        ),
    ] {
        let reply = put_json(path, &admin, &body).await;
        assert_eq!((reply.status, reply.code()), (422, code), "{}", reply.text);
    }
    let long = format!("/agents/{}", "a".repeat(129));
    let reply = put_json(&long, &admin, &json!({"name": "Ana", "role": "agent"})).await;
    assert_eq!((reply.status, reply.code()), (422, "invalid_agent_id"));
    let reply = put_json(
        "/agents/a%23b",
        &admin,
        &json!({"name": "Ana", "role": "agent"}),
    )
    .await;
    assert_eq!((reply.status, reply.code()), (422, "invalid_agent_id"));

    let other_admin = token(&unique_tenant(), "admin");
    assert_eq!(delete("/agents/agent-7", &other_admin).await.status, 404);
    assert_eq!(delete("/agents/agent-7", &admin).await.status, 204);
    assert_eq!(delete("/agents/agent-7", &admin).await.status, 404);
    assert_eq!(delete("/agents/a%23b", &admin).await.status, 404);
    let left = get("/agents", Some(&admin)).await;
    assert_eq!(left.body["items"].as_array().unwrap().len(), 1);
}

// ---- FAQ ----

async fn create_faq(admin: &str, body: Value) -> Value {
    let reply = post_json("/faqs", Some(admin), &body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body
}

#[tokio::test]
async fn faq_entries_are_created_replaced_and_deleted_within_their_bounds() {
    let tenant = unique_tenant();
    let admin = token(&tenant, "admin");
    let faq = create_faq(
        &admin,
        json!({"title": "Opening hours", "text": "We open at 9.", "shortcut": "hours"}),
    )
    .await;
    let id = faq["id"].as_str().unwrap().to_owned();
    assert_eq!(faq["shortcut"], "hours");
    assert_eq!(faq["created_at"], faq["updated_at"]);
    let plain = create_faq(&admin, json!({"title": "Returns", "text": "30 days."})).await;
    assert_eq!(plain["shortcut"], Value::Null);

    let dup = post_json(
        "/faqs",
        Some(&admin),
        &json!({"title": "B", "text": "b", "shortcut": "hours"}),
    )
    .await;
    assert_eq!((dup.status, dup.code()), (409, "duplicate_shortcut"));
    let unknown = post_json(
        "/faqs",
        Some(&admin),
        &json!({"title": "B", "text": "Hi {{ customer.email }}"}),
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (422, "unknown_placeholder")
    );
    assert!(unknown.text.contains("customer.email"), "{}", unknown.text);
    for (body, code) in [
        (json!({"title": "", "text": "t"}), "invalid_title"),
        (
            json!({"title": "t", "text": "x".repeat(4097)}),
            "invalid_text",
        ),
        (
            json!({"title": "t", "text": "t", "shortcut": "Not Valid"}),
            "invalid_shortcut",
        ),
        (
            json!({"title": "t", "text": "Hi {{customer.name"}),
            "unknown_placeholder",
        ),
        (json!({"title": "t"}), "invalid_body"),
    ] {
        let reply = post_json("/faqs", Some(&admin), &body).await;
        assert_eq!((reply.status, reply.code()), (422, code), "{body}");
    }

    // Replacing moves the shortcut: the old one is free again.
    let replaced = put_json(
        &format!("/faqs/{id}"),
        &admin,
        &json!({"title": "Hours", "text": "We open at 10.", "shortcut": "open"}),
    )
    .await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    assert_eq!(replaced.body["created_at"], faq["created_at"]);
    assert_eq!(replaced.body["text"], "We open at 10.");
    create_faq(
        &admin,
        json!({"title": "Old", "text": "o", "shortcut": "hours"}),
    )
    .await;
    let taken = put_json(
        &format!("/faqs/{}", plain["id"].as_str().unwrap()),
        &admin,
        &json!({"title": "Returns", "text": "30 days.", "shortcut": "open"}),
    )
    .await;
    assert_eq!((taken.status, taken.code()), (409, "duplicate_shortcut"));

    let missing = put_json(
        "/faqs/01JZZZZZZZZZZZZZZZZZZZZZZZ",
        &admin,
        &json!({"title": "t", "text": "t"}),
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(delete(&format!("/faqs/{id}"), &admin).await.status, 204);
    assert_eq!(delete(&format!("/faqs/{id}"), &admin).await.status, 404);
    assert_eq!(delete("/faqs/not-an-id", &admin).await.status, 404);
    create_faq(
        &admin,
        json!({"title": "Again", "text": "a", "shortcut": "open"}),
    )
    .await;
}

#[tokio::test]
async fn another_tenants_faq_id_is_404_everywhere_and_never_listed() {
    let ours = token(&unique_tenant(), "admin");
    let theirs_tenant = unique_tenant();
    let theirs = token(&theirs_tenant, "admin");
    let faq = create_faq(
        &ours,
        json!({"title": "Secret", "text": "s", "shortcut": "s"}),
    )
    .await;
    let id = faq["id"].as_str().unwrap();
    let path = format!("/faqs/{id}");

    let replaced = put_json(&path, &theirs, &json!({"title": "Mine", "text": "m"})).await;
    assert_eq!((replaced.status, replaced.code()), (404, "not_found"));
    assert_eq!(delete(&path, &theirs).await.status, 404);
    let rendered = post_json(
        &format!("{path}/render"),
        Some(&token(&theirs_tenant, "agent")),
        &json!({"conversation_id": "cv_x_000000000000000000000000"}),
    )
    .await;
    assert_eq!(rendered.status, 404);
    assert!(!rendered.text.contains("Secret"));
    let listed = get("/faqs?q=secret", Some(&theirs)).await;
    assert_eq!(listed.body, json!({"items": [], "next_cursor": null}));
    // Their own shortcut "s" is free: shortcuts are per tenant.
    create_faq(
        &theirs,
        json!({"title": "Theirs", "text": "t", "shortcut": "s"}),
    )
    .await;
    assert_eq!(
        get("/faqs", Some(&ours)).await.body["items"][0]["title"],
        "Secret"
    );
}

#[tokio::test]
async fn search_ignores_case_and_accents_in_title_shortcut_and_text_and_pages() {
    let tenant = unique_tenant();
    let admin = token(&tenant, "admin");
    let agent = token(&tenant, "agent");
    let cafe = create_faq(
        &admin,
        json!({"title": "Café menu", "text": "Espresso, latte."}),
    )
    .await;
    let crepe = create_faq(
        &admin,
        json!({"title": "Dessert", "text": "Nos CRÊPES sont faites maison.", "shortcut": "crepes"}),
    )
    .await;
    create_faq(
        &admin,
        json!({"title": "Parking", "text": "Behind the building."}),
    )
    .await;
    let hours = create_faq(
        &admin,
        json!({"title": "Hours", "text": "The CAFE opens at 8.", "shortcut": "open-cafe"}),
    )
    .await;

    let titles = |reply: &Reply| -> Vec<String> {
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let found = get("/faqs?q=cafe", Some(&agent)).await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(titles(&found), ["Café menu", "Hours"]);
    assert_eq!(found.body["items"][0], cafe);
    assert_eq!(
        titles(&get("/faqs?q=CAF%C3%89", Some(&agent)).await),
        ["Café menu", "Hours"]
    );
    assert_eq!(
        titles(&get("/faqs?q=crepes%20sont", Some(&agent)).await),
        ["Dessert"]
    );
    assert_eq!(
        get("/faqs?q=crepes", Some(&agent)).await.body["items"][0],
        crepe
    );
    assert_eq!(
        titles(&get("/faqs?q=open-cafe", Some(&agent)).await),
        ["Hours"]
    );
    assert_eq!(
        titles(&get("/faqs?q=tea", Some(&agent)).await),
        Vec::<String>::new()
    );
    assert_eq!(
        titles(&get("/faqs?q=%20", Some(&agent)).await).len(),
        4,
        "blank = all"
    );

    // One match per page: the cursor continues after the last one shown.
    let first = get("/faqs?q=cafe&limit=1", Some(&agent)).await;
    assert_eq!(titles(&first), ["Café menu"]);
    let cursor = first.body["next_cursor"].as_str().expect("more matches");
    let second = get(
        &format!("/faqs?q=cafe&limit=1&cursor={cursor}"),
        Some(&agent),
    )
    .await;
    assert_eq!(second.body["items"][0], hours);
    if let Some(cursor) = second.body["next_cursor"].as_str() {
        let third = get(
            &format!("/faqs?q=cafe&limit=1&cursor={cursor}"),
            Some(&agent),
        )
        .await;
        assert_eq!(third.body, json!({"items": [], "next_cursor": null}));
    }
    let too_long = get(&format!("/faqs?q={}", "a".repeat(201)), Some(&agent)).await;
    assert_eq!((too_long.status, too_long.code()), (400, "invalid_query"));
}

#[tokio::test]
async fn a_full_catalog_refuses_new_entries_until_one_is_deleted() {
    let tenant = unique_tenant();
    let admin = token(&tenant, "admin");
    let first = create_faq(
        &admin,
        json!({"title": "One", "text": "1", "shortcut": "one"}),
    )
    .await;
    // As if 999 more had been added: the counter is what the cap is checked against.
    let tenant_id = TenantId::parse(&tenant).unwrap();
    set_attribute(
        keys::faq_catalog(&tenant_id),
        "count",
        AttributeValue::N("1000".into()),
    )
    .await;
    let full = post_json(
        "/faqs",
        Some(&admin),
        &json!({"title": "Two", "text": "2", "shortcut": "two"}),
    )
    .await;
    assert_eq!((full.status, full.code()), (409, "faq_limit_reached"));
    // Nothing of the refused entry was written: its shortcut is still free.
    assert_eq!(
        get("/faqs", Some(&admin)).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        delete(&format!("/faqs/{}", first["id"].as_str().unwrap()), &admin)
            .await
            .status,
        204
    );
    create_faq(
        &admin,
        json!({"title": "Two", "text": "2", "shortcut": "two"}),
    )
    .await;
}

#[tokio::test]
async fn concurrent_creates_with_one_shortcut_make_exactly_one_entry() {
    let tenant = unique_tenant();
    let admin = token(&tenant, "admin");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(6));
    let tasks = (0..6).map(|i| {
        let (admin, barrier) = (admin.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            let body = json!({"title": format!("T{i}"), "text": "t", "shortcut": "same"});
            post_json("/faqs", Some(&admin), &body).await
        })
    });
    let replies = futures::future::join_all(tasks).await;
    let statuses: Vec<(u16, String)> = replies
        .into_iter()
        .map(|r| r.expect("task"))
        .map(|r| (r.status, r.code().to_owned()))
        .collect();
    assert_eq!(
        statuses.iter().filter(|(s, _)| *s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|(s, c)| *s == 201 || (*s == 409 && c == "duplicate_shortcut")),
        "{statuses:?}"
    );
    assert_eq!(
        get("/faqs", Some(&admin)).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// A WhatsApp customer ("Sheena Nelson", the fixture's profile) wrote: the channel,
/// the customer's number and the conversation id.
async fn customer_wrote(tenant: &str) -> (TestChannel, String, String) {
    let channel = connect_for(tenant, "whatsapp", json!({})).await;
    let vars = FixtureVars::new(&channel, false);
    let reply = post_meta("whatsapp", &vars.render(&fixture("whatsapp/text.json"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let conversation = conversation_id(&ChannelId::parse(&channel.id).unwrap(), &vars.sender);
    (channel, vars.sender, conversation)
}

#[tokio::test]
async fn a_reply_renders_every_placeholder_and_leaves_missing_values_empty() {
    let tenant = unique_tenant();
    let admin = token(&tenant, "admin");
    let agent = token(&tenant, "agent");
    let (channel, number, conversation) = customer_wrote(&tenant).await;
    let faq = create_faq(
        &admin,
        json!({"title": "Greeting", "text":
               "Hi {{customer.name}} ({{ customer.phone }}), {{agent.name}} of {{business.name}} here."}),
    )
    .await;
    let render = format!("/faqs/{}/render", faq["id"].as_str().unwrap());
    let body = json!({"conversation_id": conversation});

    // No agent directory entry, no settings: those render empty.
    let bare = post_json(&render, Some(&agent), &body).await;
    assert_eq!(bare.status, 200, "{}", bare.text);
    assert_eq!(
        bare.body,
        json!({"text": format!("Hi Sheena Nelson (+{number}),  of  here.")})
    );

    assert_eq!(
        put_json(
            "/agents/agent-1",
            &admin,
            &json!({"name": "Ana", "role": "agent"})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        put_json("/settings", &admin, &json!({"business_name": "Café Luna"}))
            .await
            .status,
        200
    );
    // A phone recorded on the customer wins over the WhatsApp number.
    let customer = customer_id(&ChannelId::parse(&channel.id).unwrap(), &number);
    set_attribute(
        keys::customer(&TenantId::parse(&tenant).unwrap(), &customer),
        "phone",
        AttributeValue::S("+85291234567".into()),
    )
    .await;
    let full = post_json(&render, Some(&agent), &body).await;
    assert_eq!(
        full.body["text"],
        "Hi Sheena Nelson (+85291234567), Ana of Café Luna here."
    );

    // Another tenant's conversation, an unknown one, or a missing field.
    let (_, _, elsewhere) = customer_wrote(&unique_tenant()).await;
    let foreign = post_json(
        &render,
        Some(&agent),
        &json!({"conversation_id": elsewhere}),
    )
    .await;
    assert_eq!((foreign.status, foreign.code()), (404, "not_found"));
    assert!(!foreign.text.contains("Sheena"));
    let unknown = post_json(
        &render,
        Some(&agent),
        &json!({"conversation_id": "cv_nope"}),
    )
    .await;
    assert_eq!(unknown.status, 404);
    let missing = post_json(&render, Some(&agent), &json!({})).await;
    assert_eq!((missing.status, missing.code()), (422, "invalid_body"));
    let no_faq = post_json(
        "/faqs/01JZZZZZZZZZZZZZZZZZZZZZZZ/render",
        Some(&agent),
        &body,
    )
    .await;
    assert_eq!(no_faq.status, 404);
}
