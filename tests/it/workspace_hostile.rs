//! Hostile input and races against the agent workspace (SPEC §5, §7): bad input, races, other
//! tenants, list correctness and system messages. Each test names what it attacks.

use futures::future::join_all;
use integration_tests::{
    FixtureVars, Reply, TestChannel, all_messages, call, connect, connect_for, delete_as as delete,
    fixture, get, listed_ids as listed, make_agent, make_label, patch_as, post_json, post_meta,
    put_as, system_events as events, token, unique_tenant,
};
use serde_json::{Value, json};

async fn put(path: &str, bearer: &str, body: Option<Value>) -> Reply {
    put_as(path, bearer, body.as_ref()).await
}

async fn patch(path: &str, bearer: &str, body: Value) -> Reply {
    patch_as(path, bearer, &body).await
}
use shared::domain::conversation::{conversation_id, customer_id};
use shared::domain::ids::ChannelId;

/// A WhatsApp customer writes under profile `name`, `seconds_ago`: (conversation, customer,
/// vars).
async fn writes_as(
    channel: &TestChannel,
    name: &str,
    seconds_ago: i64,
) -> (String, String, FixtureVars) {
    let mut vars = FixtureVars::new(channel, false);
    vars.timestamp -= seconds_ago;
    send(&vars, name, "").await;
    let ch = ChannelId::parse(&channel.id).unwrap();
    (
        conversation_id(&ch, &vars.sender),
        customer_id(&ch, &vars.sender),
        vars,
    )
}

/// The same customer writes again (new message id `suffix`, `later` seconds on).
async fn again(vars: &FixtureVars, name: &str, suffix: &str, later: i64) {
    let mut v = vars.clone();
    v.timestamp += later;
    send(&v, name, suffix).await;
}

async fn send(vars: &FixtureVars, name: &str, suffix: &str) {
    let mut v = vars.clone();
    v.msg_id = format!("{}{suffix}", vars.msg_id);
    let body = v
        .render(&fixture("whatsapp/text.json"))
        .replace("Sheena Nelson", name);
    let reply = post_meta("whatsapp", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

fn customers_path(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://x/customers").unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    format!("/customers?{}", url.query().unwrap_or(""))
}

async fn found(bearer: &str, pairs: &[(&str, &str)]) -> Vec<String> {
    let reply = get(&customers_path(pairs), Some(bearer)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A snooze that has ended is open: its schedule moves the conversation back, so
/// `GET /conversations/{id}` and `status=open` agree (and `status=snoozed` drops it).
#[tokio::test]
async fn adv_a_snooze_that_ended_is_listed_under_open() {
    let channel = connect("whatsapp").await;
    let agent = token(&channel.tenant, "agent");
    let (conversation, _, _) = writes_as(&channel, "Ana", 0).await;
    let until = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let reply = patch(
        &format!("/conversations/{conversation}"),
        &agent,
        json!({"status": "snoozed", "snoozed_until": until}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // The snooze's schedule fires within about a second of its time (the local stand-in).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while listed(&channel.tenant, "status=open").await.is_empty()
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    let shown = get(&format!("/conversations/{conversation}"), Some(&agent)).await;
    assert_eq!(shown.body["status"], "open", "{}", shown.text);
    assert_eq!(
        listed(&channel.tenant, "status=snoozed").await,
        Vec::<String>::new(),
        "no longer snoozed"
    );
    assert_eq!(
        listed(&channel.tenant, "status=open").await,
        vec![conversation.clone()],
        "an ended snooze is listed under open"
    );
}

/// A labelled customer whose provider profile name changes is still found by the label
/// and a name prefix (the membership's name key must follow the customer's).
#[tokio::test]
async fn adv_label_search_follows_a_profile_name_change() {
    let channel = connect("whatsapp").await;
    let agent = token(&channel.tenant, "agent");
    make_label(&channel, "vip").await;
    let (_, customer, vars) = writes_as(&channel, "Alice Old", 5).await;
    let reply = put(&format!("/customers/{customer}/labels/vip"), &agent, None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        found(&agent, &[("label", "vip"), ("q", "alice")]).await,
        vec![customer.clone()]
    );

    // The customer renames their WhatsApp profile and writes again.
    again(&vars, "Bob New", "b", 1).await;
    let shown = get(&format!("/customers/{customer}"), Some(&agent)).await;
    assert_eq!(shown.body["name"], "Bob New", "{}", shown.text);
    assert_eq!(found(&agent, &[("q", "bob")]).await, vec![customer.clone()]);
    assert_eq!(
        found(&agent, &[("label", "vip"), ("q", "bob")]).await,
        vec![customer.clone()],
        "label + new name: the membership still carries the old name key"
    );
}

/// Starting a conversation with a template reopens a closed one: a status change, which
/// SPEC §7 says is recorded by a `status_changed` system message.
#[tokio::test]
async fn adv_a_template_start_that_reopens_writes_a_status_message() {
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
    let agent = token(&tenant, "agent");
    let phone = format!("852{:08}", ulid::Ulid::new().0 % 100_000_000);
    let body = json!({"channel_id": channel.id, "to": phone,
                      "template": {"name": "hello", "language": "en_US", "parameters": ["Ana"]}});
    let start = || post_json("/conversations", Some(&agent), &body);
    let started = start().await;
    assert_eq!(started.status, 202, "{}", started.text);
    let conversation = conversation_id(&ChannelId::parse(&channel.id).unwrap(), &phone);
    let reply = patch(
        &format!("/conversations/{conversation}"),
        &agent,
        json!({"status": "closed"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let started = start().await;
    assert_eq!(started.status, 202, "{}", started.text);
    let shown = get(&format!("/conversations/{conversation}"), Some(&agent)).await;
    assert_eq!(shown.body["status"], "open", "{}", shown.text);
    let changes = events(&tenant, &conversation, "status_changed").await;
    assert_eq!(
        changes.len(),
        2,
        "closed, then reopened by the template: {changes:#?}"
    );
}

/// Several agents put different labels on one customer at once (a bulk action): each is
/// a 200, never a 5xx, and each writes its one system message.
#[tokio::test]
async fn adv_parallel_distinct_labels_on_one_customer_never_5xx() {
    shared::telemetry::init();
    let channel = connect("whatsapp").await;
    let agent = token(&channel.tenant, "agent");
    let names: Vec<String> = (0..12).map(|i| format!("l{i}")).collect();
    for n in &names {
        make_label(&channel, n).await;
    }
    let (conversation, customer, _) = writes_as(&channel, "Ana", 0).await;
    let paths: Vec<String> = names
        .iter()
        .map(|n| format!("/customers/{customer}/labels/{n}"))
        .collect();
    let replies = join_all(paths.iter().map(|p| put(p, &agent, None))).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    let failures: Vec<&str> = replies
        .iter()
        .filter(|r| r.status != 200)
        .map(|r| r.text.as_str())
        .collect();
    assert!(failures.is_empty(), "{statuses:?}: {failures:?}");
    assert_eq!(
        events(&channel.tenant, &conversation, "label_added")
            .await
            .len(),
        names.len()
    );
}

/// Labels put on and taken off concurrently, with customer messages and status changes in
/// between: the lists, the conversation, the customer and the system messages agree.
#[tokio::test]
async fn adv_label_put_delete_status_and_ingest_race_stay_consistent() {
    let channel = connect("whatsapp").await;
    let agent = token(&channel.tenant, "agent");
    make_label(&channel, "hot").await;
    let (conversation, customer, vars) = writes_as(&channel, "Ana", 30).await;
    let label_path = format!("/customers/{customer}/labels/hot");
    let conv_path = format!("/conversations/{conversation}");
    let mut futures = Vec::new();
    for i in 0..6i64 {
        let (agent, lp, cp, vars) = (
            agent.clone(),
            label_path.clone(),
            conv_path.clone(),
            vars.clone(),
        );
        futures.push(tokio::spawn(async move {
            let mut codes = Vec::new();
            let r = if i % 2 == 0 {
                put(&lp, &agent, None).await
            } else {
                delete(&lp, &agent).await
            };
            codes.push(r.status);
            let status = if i % 2 == 0 { "closed" } else { "open" };
            let r = patch(&cp, &agent, json!({"status": status})).await;
            codes.push(r.status);
            again(&vars, "Ana", &format!("r{i}"), i + 1).await;
            codes
        }));
    }
    for f in futures {
        let codes = f.await.unwrap();
        assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    }
    let conv = get(&conv_path, Some(&agent)).await.body;
    let cust = get(&format!("/customers/{customer}"), Some(&agent))
        .await
        .body;
    assert_eq!(
        conv["labels"], cust["labels"],
        "conversation and customer agree"
    );
    let has = conv["labels"] == json!(["hot"]);
    let status = conv["status"].as_str().unwrap().to_owned();
    assert_eq!(
        listed(&channel.tenant, "label=hot").await.len(),
        usize::from(has)
    );
    assert_eq!(
        listed(&channel.tenant, &format!("label=hot&status={status}"))
            .await
            .len(),
        usize::from(has)
    );
    assert_eq!(
        listed(&channel.tenant, &format!("status={status}")).await,
        vec![conversation.clone()]
    );
    let added = events(&channel.tenant, &conversation, "label_added")
        .await
        .len();
    let removed = events(&channel.tenant, &conversation, "label_removed")
        .await
        .len();
    assert_eq!(
        added as i64 - removed as i64,
        i64::from(has),
        "+{added} -{removed}"
    );
}

/// Path parameters with separators, encodings, huge lengths and unicode: 4xx, never 5xx,
/// never another item.
#[tokio::test]
async fn adv_hostile_path_parameters_are_4xx() {
    let channel = connect("whatsapp").await;
    let agent = token(&channel.tenant, "agent");
    let admin = channel.admin();
    let (conversation, customer, _) = writes_as(&channel, "Ana", 0).await;
    let long = "a".repeat(5000);
    let ids = [
        "%23".to_owned(),
        format!("{conversation}%23CONV"),
        format!("{conversation}%2F..%2F"),
        "cv_%23_0123456789abcdef01234567".to_owned(),
        format!("cv_{long}_0123456789abcdef01234567"),
        "cv_%F0%9F%98%80_0123456789abcdef01234567".to_owned(),
        "%00".to_owned(),
        "%20".to_owned(),
        "%FF%FE".to_owned(),
    ];
    for id in &ids {
        for (method, path, body) in [
            ("GET", format!("/conversations/{id}"), None),
            (
                "PATCH",
                format!("/conversations/{id}"),
                Some(json!({"status": "closed"})),
            ),
            (
                "PUT",
                format!("/conversations/{id}/assignee"),
                Some(json!({"agent_id": null})),
            ),
            ("POST", format!("/conversations/{id}/read"), None),
            ("GET", format!("/conversations/{id}/messages"), None),
            ("GET", format!("/customers/{id}"), None),
            (
                "PATCH",
                format!("/customers/{id}"),
                Some(json!({"name": "X"})),
            ),
            ("PUT", format!("/customers/{id}/labels/vip"), None),
            ("PUT", format!("/customers/{customer}/labels/{id}"), None),
            ("DELETE", format!("/customers/{customer}/labels/{id}"), None),
            ("GET", format!("/customers/{id}/notes"), None),
            (
                "POST",
                format!("/customers/{id}/notes"),
                Some(json!({"text": "x"})),
            ),
            ("DELETE", format!("/customers/{customer}/notes/{id}"), None),
            ("DELETE", format!("/labels/{id}"), None),
            (
                "PUT",
                format!("/agents/{id}"),
                Some(json!({"name": "n", "role": "agent"})),
            ),
            ("DELETE", format!("/agents/{id}"), None),
            (
                "PUT",
                format!("/faqs/{id}"),
                Some(json!({"title": "t", "text": "x"})),
            ),
            ("DELETE", format!("/faqs/{id}"), None),
            (
                "POST",
                format!("/faqs/{id}/render"),
                Some(json!({"conversation_id": conversation})),
            ),
        ] {
            let bearer = if method == "GET" { &agent } else { &admin };
            let reply = call(
                method,
                &path,
                Some(bearer),
                body.map(|b| b.to_string().into_bytes()),
            )
            .await;
            assert!(
                (400..500).contains(&reply.status)
                    // A PUT /agents/{id} of any sub without '#' or controls creates it.
                    || (path.starts_with("/agents/") && [200, 204].contains(&reply.status)),
                "{method} {}: {} {}",
                &path[..path.len().min(120)],
                reply.status,
                &reply.text[..reply.text.len().min(300)]
            );
        }
    }
}

/// Bodies of the wrong type, shape or size on the workspace routes: 4xx with a code.
#[tokio::test]
async fn adv_hostile_bodies_are_4xx() {
    let channel = connect("whatsapp").await;
    let admin = channel.admin();
    let (conversation, customer, _) = writes_as(&channel, "Ana", 0).await;
    let big = "x".repeat(70 * 1024);
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"\"s\"".to_vec(),
        b"{".to_vec(),
        b"{\"status\": \"closed\"} trailing".to_vec(),
        vec![0xff, 0xfe, b'{', b'}'],
        format!("{{\"x\": \"{big}\"}}").into_bytes(),
        b"{\"status\": null, \"agent_id\": [], \"name\": {}, \"text\": 1e999}".to_vec(),
        "{\"a\":".repeat(200).into_bytes(),
        format!("{}1{}", "[".repeat(200), "]".repeat(200)).into_bytes(),
    ];
    let routes = [
        ("PATCH", format!("/conversations/{conversation}")),
        ("PUT", format!("/conversations/{conversation}/assignee")),
        ("PATCH", format!("/customers/{customer}")),
        ("POST", format!("/customers/{customer}/notes")),
        ("POST", "/labels".to_owned()),
        ("PUT", "/settings".to_owned()),
        ("PUT", "/agents/a1".to_owned()),
        ("POST", "/faqs".to_owned()),
    ];
    for (method, path) in &routes {
        for body in &bodies {
            let reply = call(method, path, Some(&admin), Some(body.clone())).await;
            assert!(
                (400..500).contains(&reply.status) && !reply.code().is_empty(),
                "{method} {path} {:?}: {} {}",
                String::from_utf8_lossy(&body[..body.len().min(60)]),
                reply.status,
                &reply.text[..reply.text.len().min(300)]
            );
        }
    }
    // Nothing was written by any of them.
    assert!(
        events(&channel.tenant, &conversation, "status_changed")
            .await
            .is_empty()
    );
    assert!(
        events(&channel.tenant, &conversation, "assigned")
            .await
            .is_empty()
    );
}

/// Another tenant's ids, labels and agents: 404 / 422, never its data, never a write.
#[tokio::test]
async fn adv_other_tenants_names_and_ids_do_not_cross() {
    let a = connect("whatsapp").await;
    let b = connect("whatsapp").await;
    make_label(&a, "vip").await;
    make_agent(&a, "shared-agent").await;
    let (conv_a, cust_a, _) = writes_as(&a, "Ana", 0).await;
    let (conv_b, cust_b, _) = writes_as(&b, "Bea", 0).await;
    let agent_b = token(&b.tenant, "agent");

    // B's customer takes A's label name: B has no such label.
    let reply = put(&format!("/customers/{cust_b}/labels/vip"), &agent_b, None).await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "unknown_label"),
        "{}",
        reply.text
    );
    // B assigns its conversation to A's agent.
    let reply = put(
        &format!("/conversations/{conv_b}/assignee"),
        &agent_b,
        Some(json!({"agent_id": "shared-agent"})),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "unknown_agent"),
        "{}",
        reply.text
    );
    // B touches A's conversation and customer.
    for (method, path, body) in [
        (
            "PATCH",
            format!("/conversations/{conv_a}"),
            Some(json!({"status": "closed"})),
        ),
        (
            "PUT",
            format!("/conversations/{conv_a}/assignee"),
            Some(json!({"agent_id": null})),
        ),
        ("PUT", format!("/customers/{cust_a}/labels/vip"), None),
        ("DELETE", format!("/customers/{cust_a}/labels/vip"), None),
        (
            "PATCH",
            format!("/customers/{cust_a}"),
            Some(json!({"name": "pwned"})),
        ),
        (
            "POST",
            format!("/customers/{cust_a}/notes"),
            Some(json!({"text": "x"})),
        ),
        ("GET", format!("/customers/{cust_a}/notes"), None),
        ("POST", format!("/conversations/{conv_a}/read"), None),
        ("DELETE", "/labels/vip".to_owned(), None),
    ] {
        let bearer = if path.starts_with("/labels") {
            b.admin()
        } else {
            agent_b.clone()
        };
        let reply = call(
            method,
            &path,
            Some(&bearer),
            body.map(|b| b.to_string().into_bytes()),
        )
        .await;
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.text);
    }
    let shown = get(
        &format!("/customers/{cust_a}"),
        Some(&token(&a.tenant, "agent")),
    )
    .await;
    assert_eq!(shown.body["name"], "Ana");
    assert!(
        all_messages(&a.tenant, &conv_a)
            .await
            .iter()
            .all(|m| m["direction"] != "system")
    );
    // A's cursor on B's list shows B's conversations only.
    let page = get("/conversations?limit=1", Some(&token(&a.tenant, "agent"))).await;
    if let Some(cursor) = page.body["next_cursor"].as_str() {
        let other = get(&format!("/conversations?cursor={cursor}"), Some(&agent_b)).await;
        assert_eq!(other.status, 200);
        assert!(other.text.find(&conv_a).is_none());
    }
}

/// Pages across the eight shards with a filter that drops most entries, while the
/// listed conversations keep receiving messages: none twice on one walk, newest first.
#[tokio::test]
async fn adv_pages_of_one_with_a_sparse_filter_keep_order_and_lose_nothing() {
    let tenant = unique_tenant();
    let channel = connect_for(&tenant, "whatsapp", json!({})).await;
    let agent = token(&tenant, "agent");
    make_agent(&channel, "agent-1").await;
    let mut mine = Vec::new();
    for i in 0..12i64 {
        let (conversation, _, _) = writes_as(&channel, "Ana", 100 - i).await;
        if i % 3 == 0 {
            let reply = put(
                &format!("/conversations/{conversation}/assignee"),
                &agent,
                Some(json!({"agent_id": "agent-1"})),
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            mine.push(conversation);
        }
    }
    mine.reverse();
    // assignee=agent-1 & status=open & channel: the view is the assignee's; channel and
    // status are checked on what is read.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let q = match &cursor {
            Some(c) => format!("limit=1&assignee=me&status=open&channel=whatsapp&cursor={c}"),
            None => "limit=1&assignee=me&status=open&channel=whatsapp".to_owned(),
        };
        let reply = get(&format!("/conversations?{q}"), Some(&agent)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        for c in reply.body["items"].as_array().unwrap() {
            seen.push(c["id"].as_str().unwrap().to_owned());
        }
        match reply.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, mine);
}

/// An agent renames a customer while another puts a label on it: the label's customers
/// list (by name) must know the new name whichever lands first.
#[tokio::test]
async fn adv_rename_racing_a_label_put_keeps_the_label_search_on_the_new_name() {
    let channel = connect("whatsapp").await;
    let agent = token(&channel.tenant, "agent");
    make_label(&channel, "race").await;
    let mut stale = Vec::new();
    for i in 0..12 {
        let (_, customer, _) = writes_as(&channel, "Alice", 0).await;
        let name = format!("Zed{i}");
        let label_path = format!("/customers/{customer}/labels/race");
        let customer_path = format!("/customers/{customer}");
        let (labelled, renamed) = tokio::join!(
            put(&label_path, &agent, None),
            patch(&customer_path, &agent, json!({"name": name}))
        );
        assert_eq!(labelled.status, 200, "{}", labelled.text);
        assert_eq!(renamed.status, 200, "{}", renamed.text);
        let hits = found(&agent, &[("label", "race"), ("q", &name.to_lowercase())]).await;
        if hits != vec![customer.clone()] {
            stale.push(customer);
        }
    }
    assert!(stale.is_empty(), "not found by label + new name: {stale:?}");
}

/// Hand-made cursors (another list's, keys of another tenant, odd characters): 200 with
/// this tenant's data only, or 400 `invalid_cursor`; never a 5xx.
#[tokio::test]
async fn adv_forged_cursors_are_400_or_harmless() {
    use base64::Engine as _;
    let enc =
        |parts: &[&str]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(parts.join("\n"));
    let channel = connect("whatsapp").await;
    let other = connect("whatsapp").await;
    let agent = token(&channel.tenant, "agent");
    let (_, customer, _) = writes_as(&channel, "Ana", 0).await;
    let (other_conv, other_cust, _) = writes_as(&other, "Ana", 0).await;
    let other_pk = format!("TENANT#{}#CUSTOMER#{other_cust}", other.tenant);
    let cursors = [
        enc(&["name", &format!("ana#{other_cust}"), &other_pk, "CUSTOMER"]),
        enc(&["name", &format!("#{other_cust}"), "x", "y"]),
        enc(&[
            "external",
            &format!("1#{other_cust}"),
            &other_pk,
            "CUSTOMER",
        ]),
        enc(&["label"]),
        enc(&["9999-12-31T23:59:59.999Z#zzz"]),
        enc(&[&format!("2999-01-01T00:00:00.000Z#{other_conv}")]),
        enc(&["\u{0}"]),
        enc(&["a", "b"]),
        "%FF".to_owned(),
        "A".repeat(3000),
    ];
    for cursor in &cursors {
        for path in [
            "/customers".to_owned(),
            "/customers?q=ana".to_owned(),
            "/customers?label=vip".to_owned(),
            "/conversations".to_owned(),
            "/conversations?status=open".to_owned(),
            "/labels".to_owned(),
            "/agents".to_owned(),
            "/faqs".to_owned(),
            format!("/customers/{customer}/notes"),
            format!(
                "/conversations/{}/messages",
                conversation_id(&ChannelId::parse(&channel.id).unwrap(), "x")
            ),
        ] {
            let sep = if path.contains('?') { '&' } else { '?' };
            let reply = get(&format!("{path}{sep}cursor={cursor}"), Some(&agent)).await;
            assert!(
                reply.status == 200 || reply.status == 400 || reply.status == 404,
                "{path} {}: {} {}",
                &cursor[..cursor.len().min(40)],
                reply.status,
                reply.text
            );
            if reply.status == 200 {
                assert!(!reply.text.contains(&other.tenant) && !reply.text.contains(&other_cust));
            }
        }
    }
}

/// Assignment, status changes and customer messages at once on one conversation: every
/// call answers 2xx, and the views, the conversation and its system messages agree.
#[tokio::test]
async fn adv_assignment_status_and_ingest_race_keep_views_and_notes_consistent() {
    shared::telemetry::init();
    let channel = connect("whatsapp").await;
    let agent = token(&channel.tenant, "agent");
    make_agent(&channel, "a1").await;
    make_agent(&channel, "a2").await;
    let (conversation, _, vars) = writes_as(&channel, "Ana", 60).await;
    let conv_path = format!("/conversations/{conversation}");
    let assign_path = format!("{conv_path}/assignee");
    let mut tasks = Vec::new();
    for i in 0..8i64 {
        let (agent, cp, ap, vars) = (
            agent.clone(),
            conv_path.clone(),
            assign_path.clone(),
            vars.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let who = if i % 2 == 0 { json!("a1") } else { json!("a2") };
            let a = put(&ap, &agent, Some(json!({"agent_id": who}))).await;
            let status = ["closed", "open"][usize::try_from(i % 2).unwrap()];
            let s = patch(&cp, &agent, json!({"status": status})).await;
            again(&vars, "Ana", &format!("m{i}"), i + 1).await;
            (a.status, s.status, a.text, s.text)
        }));
    }
    for t in tasks {
        let (a, s, at, st) = t.await.unwrap();
        assert!(a == 200 && s == 200, "{a} {at} / {s} {st}");
    }
    let conv = get(&conv_path, Some(&agent)).await.body;
    let status = conv["status"].as_str().unwrap();
    let assignee = conv["assignee"].as_str().unwrap();
    assert_eq!(
        listed(
            &channel.tenant,
            &format!("assignee={assignee}&status={status}")
        )
        .await,
        vec![conversation.clone()]
    );
    let other = if assignee == "a1" { "a2" } else { "a1" };
    assert!(
        listed(&channel.tenant, &format!("assignee={other}"))
            .await
            .is_empty()
    );
    assert!(listed(&channel.tenant, "assignee=none").await.is_empty());
    // The last assignment note names the assignee, the last status note the status.
    let notes: Vec<Value> = all_messages(&channel.tenant, &conversation)
        .await
        .into_iter()
        .filter(|m| m["direction"] == "system")
        .collect();
    let last_assigned = notes.iter().find(|m| m["event"] == "assigned").unwrap();
    assert!(
        last_assigned["text"]
            .as_str()
            .unwrap()
            .ends_with(&format!("({assignee})")),
        "{notes:#?}"
    );
}

/// A burst of one customer's messages delivered in parallel (Meta sends webhooks
/// concurrently) while an agent labels the customer: every webhook is a 200.
#[tokio::test]
async fn adv_a_burst_of_parallel_webhooks_with_a_label_change_is_all_200() {
    shared::telemetry::init();
    let channel = connect("whatsapp").await;
    let agent = token(&channel.tenant, "agent");
    make_label(&channel, "burst").await;
    let (conversation, customer, vars) = writes_as(&channel, "Ana", 60).await;
    let mut bodies = Vec::new();
    for i in 0..16i64 {
        let mut v = vars.clone();
        v.timestamp += i + 1;
        v.msg_id = format!("{}p{i}", vars.msg_id);
        bodies.push(v.render(&fixture("whatsapp/text.json")));
    }
    let label_path = format!("/customers/{customer}/labels/burst");
    let (hooks, label) = tokio::join!(
        join_all(bodies.iter().map(|b| post_meta("whatsapp", b))),
        put(&label_path, &agent, None)
    );
    let statuses: Vec<u16> = hooks.iter().map(|r| r.status).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(label.status, 200, "{}", label.text);
    let conv = get(&format!("/conversations/{conversation}"), Some(&agent))
        .await
        .body;
    assert_eq!(conv["unread_count"], 17, "{conv}");
}

/// Agent ids follow one rule everywhere: the directory refuses what no token could carry
/// (`|`, over 64 characters), and assignment calls such an id no agent.
#[tokio::test]
async fn adv_agent_ids_agree_between_directory_tokens_assignment_and_filters() {
    let channel = connect("whatsapp").await;
    let (conversation, _, _) = writes_as(&channel, "Ana", 0).await;
    let long = "a".repeat(120);
    for id in ["auth0|5f7c8ec7c33c6c004bbafe82", long.as_str()] {
        let reply = put(
            &format!("/agents/{}", id.replace('|', "%7C")),
            &channel.admin(),
            Some(json!({"name": "Long", "role": "agent"})),
        )
        .await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "invalid_agent_id"),
            "{}",
            reply.text
        );
        let reply = put(
            &format!("/conversations/{conversation}/assignee"),
            &channel.admin(),
            Some(json!({"agent_id": id})),
        )
        .await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "unknown_agent"),
            "{}",
            reply.text
        );
    }
}
