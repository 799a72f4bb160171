//! Connecting and listing channels: roles, tenant isolation, uniqueness, bad input.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{
    call, get, grant_meta, post_json, stack, token, unique_meta_id, unique_tenant,
};
use serde_json::{Value, json};
use tokio::sync::Barrier;

/// A WhatsApp channel's body, its number granted to its token in the sandbox (so the
/// connection proves it).
fn whatsapp(external_id: &str) -> Value {
    let body = json!({
        "type": "whatsapp",
        "external_id": external_id,
        "name": "Sales line",
        "waba_id": "102290129340398",
        "credentials": {"access_token": "EAAG-secret-token-value"}
    });
    grant_meta(&body);
    body
}

#[tokio::test]
async fn admin_connects_a_channel_that_only_its_tenant_sees() {
    let (a, b) = (unique_tenant(), unique_tenant());
    let external_id = unique_meta_id();
    let created = post_json(
        "/channels",
        Some(&token(&a, "admin")),
        &whatsapp(&external_id),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["type"], "whatsapp");
    assert_eq!(created.body["external_id"], external_id.as_str());
    assert_eq!(created.body["name"], "Sales line");
    let id = created.body["id"].as_str().expect("id").to_owned();

    let listed = get("/channels", Some(&token(&a, "agent"))).await;
    assert_eq!(listed.status, 200);
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(listed.body["next_cursor"], Value::Null);

    let other = get("/channels", Some(&token(&b, "admin"))).await;
    assert_eq!(other.status, 200);
    assert_eq!(other.body["items"], json!([]));
}

#[tokio::test]
async fn credentials_are_stored_but_never_returned() {
    let tenant = unique_tenant();
    let external_id = unique_meta_id();
    let created = post_json(
        "/channels",
        Some(&token(&tenant, "admin")),
        &whatsapp(&external_id),
    )
    .await;
    assert_eq!(created.status, 201);
    let listed = get("/channels", Some(&token(&tenant, "admin"))).await;
    for text in [&created.text, &listed.text] {
        assert!(!text.contains("EAAG-secret-token-value"));
        assert!(!text.contains("credentials"));
        assert!(!text.contains("access_token"));
    }
    // Stored in the routing record, for webhooks and senders to use.
    let dynamo = aws_sdk_dynamodb::Client::new(&stack().settings.sdk_config());
    let table = stack().template.local_name("ChatTable").unwrap();
    let item = dynamo
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("EXTERNAL#{external_id}")))
        .key("sk", AttributeValue::S("EXTERNAL".to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = item.item().expect("credentials item");
    assert_eq!(
        item["access_token"].as_s().unwrap(),
        "EAAG-secret-token-value"
    );
}

#[tokio::test]
async fn agent_role_gets_403_on_post_channels_and_nothing_is_written() {
    let tenant = unique_tenant();
    let reply = post_json(
        "/channels",
        Some(&token(&tenant, "agent")),
        &whatsapp(&unique_meta_id()),
    )
    .await;
    assert_eq!((reply.status, reply.code()), (403, "forbidden"));
    // Even a malformed body: the role is checked first.
    let reply = call(
        "POST",
        "/channels",
        Some(&token(&tenant, "agent")),
        Some(b"{".to_vec()),
    )
    .await;
    assert_eq!(reply.status, 403);
    let listed = get("/channels", Some(&token(&tenant, "admin"))).await;
    assert_eq!(listed.body["items"], json!([]));
}

#[tokio::test]
async fn an_external_id_is_unique_across_the_deployment() {
    let external_id = unique_meta_id();
    let (a, b) = (unique_tenant(), unique_tenant());
    let first = post_json(
        "/channels",
        Some(&token(&a, "admin")),
        &whatsapp(&external_id),
    )
    .await;
    assert_eq!(first.status, 201);
    let taken = post_json(
        "/channels",
        Some(&token(&b, "admin")),
        &whatsapp(&external_id),
    )
    .await;
    assert_eq!((taken.status, taken.code()), (409, "external_id_taken"));
    let again = post_json(
        "/channels",
        Some(&token(&a, "admin")),
        &whatsapp(&external_id),
    )
    .await;
    assert_eq!(again.status, 409);
    // The losing tenant got nothing half-written.
    let listed = get("/channels", Some(&token(&b, "admin"))).await;
    assert_eq!(listed.body["items"], json!([]));
    let listed = get("/channels", Some(&token(&a, "admin"))).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_connects_of_one_external_id_have_exactly_one_winner() {
    const CALLERS: usize = 20;
    let external_id = Arc::new(unique_meta_id());
    let barrier = Arc::new(Barrier::new(CALLERS));
    let tenants: Vec<String> = (0..CALLERS).map(|_| unique_tenant()).collect();
    let tasks: Vec<_> = tenants
        .iter()
        .cloned()
        .map(|tenant| {
            let (barrier, external_id) = (barrier.clone(), external_id.clone());
            tokio::spawn(async move {
                let body = whatsapp(&external_id);
                barrier.wait().await;
                post_json("/channels", Some(&token(&tenant, "admin")), &body)
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        CALLERS - 1,
        "{statuses:?}"
    );
    let mut stored = 0;
    for tenant in &tenants {
        stored += get("/channels", Some(&token(tenant, "admin"))).await.body["items"]
            .as_array()
            .unwrap()
            .len();
    }
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn every_channel_type_connects_with_its_own_fields() {
    let tenant = unique_tenant();
    let admin = token(&tenant, "admin");
    let bodies = [
        json!({"type": "messenger", "external_id": unique_meta_id(), "name": "Page",
               "credentials": {"access_token": "p"}}),
        json!({"type": "instagram", "external_id": unique_meta_id(), "name": "IG",
               "credentials": {"access_token": "i"}, "human_agent": true}),
        json!({"type": "wechat", "external_id": format!("gh_{}", &unique_meta_id()[..12]), "name": "WX",
               "credentials": {"app_id": "wx1", "app_secret": "s", "token": "t"}, "window_hours": 48}),
    ];
    for body in &bodies {
        grant_meta(body);
        let reply = post_json("/channels", Some(&admin), body).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    let listed = get("/channels", Some(&admin)).await;
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let wechat = items.iter().find(|c| c["type"] == "wechat").unwrap();
    assert_eq!(wechat["window_hours"], 48);
    let messenger = items.iter().find(|c| c["type"] == "messenger").unwrap();
    assert_eq!(messenger["human_agent"], true);
}

#[tokio::test]
async fn malformed_bodies_get_4xx_with_a_code_and_write_nothing() {
    let tenant = unique_tenant();
    let admin = token(&tenant, "admin");
    let id = unique_meta_id();
    let mut unknown_field = whatsapp(&id);
    unknown_field["owner"] = json!("someone-else");
    let mut wrong_type = whatsapp(&id);
    wrong_type["name"] = json!(42);
    let mut bad_type = whatsapp(&id);
    bad_type["type"] = json!("telegram");
    let mut tenant_in_body = whatsapp(&id);
    tenant_in_body["tenant_id"] = json!("someone-else");
    let mut unknown_credential = whatsapp(&id);
    unknown_credential["credentials"]["password"] = json!("x");
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"".to_vec(), 400, "invalid_json"),
        (b"{".to_vec(), 400, "invalid_json"),
        (b"not json".to_vec(), 400, "invalid_json"),
        (b"[1,2]".to_vec(), 422, "invalid_body"),
        (b"null".to_vec(), 422, "invalid_body"),
        (vec![0xff, 0xfe, 0x7b], 400, "invalid_json"),
        (json!({}).to_string().into_bytes(), 422, "invalid_body"),
        (unknown_field.to_string().into_bytes(), 422, "invalid_body"),
        (wrong_type.to_string().into_bytes(), 422, "invalid_body"),
        (bad_type.to_string().into_bytes(), 422, "invalid_body"),
        (tenant_in_body.to_string().into_bytes(), 422, "invalid_body"),
        (unknown_credential.to_string().into_bytes(), 422, "invalid_body"),
        (
            json!({"type": "whatsapp", "external_id": "abc", "name": "n", "credentials": {"access_token": "t"}})
                .to_string()
                .into_bytes(),
            422,
            "invalid_external_id",
        ),
        (
            json!({"type": "whatsapp", "external_id": unique_meta_id(), "name": "n", "credentials": {}})
                .to_string()
                .into_bytes(),
            422,
            "invalid_credentials",
        ),
        (
            format!("{{\"name\":\"{}\"}}", "x".repeat(70 * 1024)).into_bytes(),
            413,
            "payload_too_large",
        ),
    ];
    for (body, status, code) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let reply = call("POST", "/channels", Some(&admin), Some(body)).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{shown}");
        assert!(
            !reply.body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .is_empty()
        );
    }
    let listed = get("/channels", Some(&admin)).await;
    assert_eq!(listed.body["items"], json!([]));
}

#[tokio::test]
async fn channels_page_with_a_cursor_and_bad_paging_is_400() {
    let tenant = unique_tenant();
    let admin = token(&tenant, "admin");
    for _ in 0..3 {
        let reply = post_json("/channels", Some(&admin), &whatsapp(&unique_meta_id())).await;
        assert_eq!(reply.status, 201);
    }
    let first = get("/channels?limit=2", Some(&admin)).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = get(&format!("/channels?limit=2&cursor={cursor}"), Some(&admin)).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body["items"].as_array().unwrap().len(), 1);
    let mut ids: Vec<_> = first.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["items"].as_array().unwrap())
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);

    for bad in [
        "/channels?limit=0",
        "/channels?limit=101",
        "/channels?limit=x",
    ] {
        let reply = get(bad, Some(&admin)).await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "invalid_limit"),
            "{bad}"
        );
    }
    let reply = get("/channels?cursor=%21%21", Some(&admin)).await;
    assert_eq!((reply.status, reply.code()), (400, "invalid_cursor"));
}

/// Posts `body` as `tenant`'s admin: the status, the error code, and the tenant's channels
/// afterwards.
async fn try_connect(tenant: &str, body: &Value) -> (u16, String, usize) {
    let admin = token(tenant, "admin");
    let reply = post_json("/channels", Some(&admin), body).await;
    let listed = get("/channels", Some(&admin)).await;
    (
        reply.status,
        reply.code().to_owned(),
        listed.body["items"].as_array().unwrap().len(),
    )
}

#[tokio::test]
async fn a_channel_is_stored_only_when_its_provider_vouches_for_the_credentials() {
    let tenant = unique_tenant();
    let number = unique_meta_id();
    // A token Meta does not know, and one that controls another WABA only.
    let mut unknown_token = whatsapp(&number);
    unknown_token["credentials"]["access_token"] = json!(format!("EAAG-{}", unique_meta_id()));
    let elsewhere = format!("EAAG-{}", unique_meta_id());
    grant_meta(&json!({"type": "whatsapp", "external_id": unique_meta_id(),
        "waba_id": unique_meta_id(), "credentials": {"access_token": elsewhere}}));
    let mut other_waba = whatsapp(&number);
    other_waba["credentials"]["access_token"] = json!(elsewhere);
    // The right token, but the number is not under the WABA named.
    let mut wrong_waba = whatsapp(&number);
    wrong_waba["waba_id"] = json!(unique_meta_id());
    let mut no_waba = whatsapp(&number);
    no_waba.as_object_mut().unwrap().remove("waba_id");
    // The right token, with an app secret that is not its app's.
    let proven = format!("EAAG-{}", unique_meta_id());
    let mut with_secret = whatsapp(&number);
    with_secret["credentials"] = json!({"access_token": proven, "app_secret": "the-app-secret"});
    grant_meta(&with_secret);
    let mut wrong_secret = with_secret.clone();
    wrong_secret["credentials"]["app_secret"] = json!("another-apps-secret");
    for (body, code) in [
        (&unknown_token, "channel_not_verified"),
        (&other_waba, "channel_not_verified"),
        (&wrong_waba, "channel_not_verified"),
        (&no_waba, "waba_id_required"),
        (&wrong_secret, "channel_not_verified"),
    ] {
        assert_eq!(
            try_connect(&tenant, body).await,
            (422, code.to_owned(), 0),
            "{body}"
        );
    }
    assert_eq!(
        try_connect(&tenant, &with_secret).await,
        (201, String::new(), 1)
    );

    // Messenger: a token of another Page; Instagram: an account the token does not reach.
    let page = json!({"type": "messenger", "external_id": unique_meta_id(), "name": "Page",
        "credentials": {"access_token": format!("EAAG-page-{}", unique_meta_id())}});
    let instagram = json!({"type": "instagram", "external_id": unique_meta_id(), "name": "IG",
        "credentials": {"access_token": format!("EAAG-ig-{}", unique_meta_id())}});
    grant_meta(
        &json!({"type": "messenger", "external_id": unique_meta_id(),
        "credentials": page["credentials"]}),
    );
    grant_meta(
        &json!({"type": "instagram", "external_id": unique_meta_id(),
        "credentials": instagram["credentials"]}),
    );
    // A granted token asking for an account it does not reach hears that, not that the
    // token is unreadable.
    let unseen = post_json("/channels", Some(&token(&tenant, "admin")), &instagram).await;
    assert!(
        unseen.text.contains("(#100)") && !unseen.text.contains("Cannot parse"),
        "{}",
        unseen.text
    );
    for (stored, body) in [(1, &page), (2, &instagram)] {
        assert_eq!(
            try_connect(&tenant, body).await,
            (422, "channel_not_verified".to_owned(), stored),
            "{body}"
        );
        grant_meta(body);
        assert_eq!(try_connect(&tenant, body).await.0, 201, "{body}");
    }

    // WeChat: the AppSecret must yield a token.
    let mut wechat = json!({"type": "wechat", "external_id": format!("gh_{}", &unique_meta_id()[..12]),
        "name": "WX", "credentials": {"app_id": "wx-verify", "app_secret": "wrong", "token": "t"}});
    let reply = post_json("/channels", Some(&token(&tenant, "admin")), &wechat).await;
    assert_eq!((reply.status, reply.code()), (422, "channel_not_verified"));
    assert!(reply.text.contains("40125"), "{}", reply.text);
    assert!(
        !reply.text.contains("wrong"),
        "the secret is not echoed: {}",
        reply.text
    );
    wechat["credentials"]["app_secret"] = json!("right");
    assert_eq!(try_connect(&tenant, &wechat).await, (201, String::new(), 4));
}

#[tokio::test]
async fn nobody_claims_a_connected_account_without_its_credentials_nor_learns_that_it_is_connected()
{
    let (owner, intruder) = (unique_tenant(), unique_tenant());
    let number = unique_meta_id();
    let body = whatsapp(&number);
    assert_eq!(try_connect(&owner, &body).await.0, 201);
    // The same ids with a token of the intruder's own: refused as unproven, not as taken.
    let mut claim = body.clone();
    claim["credentials"]["access_token"] = json!(format!("EAAG-{}", unique_meta_id()));
    grant_meta(&json!({"type": "whatsapp", "external_id": unique_meta_id(),
        "waba_id": body["waba_id"], "credentials": claim["credentials"]}));
    assert_eq!(
        try_connect(&intruder, &claim).await,
        (422, "channel_not_verified".to_owned(), 0)
    );
}

#[tokio::test]
async fn a_number_on_a_later_page_of_its_waba_is_found() {
    let token_value = format!("EAAG-big-{}", unique_meta_id());
    let waba = unique_meta_id();
    let numbers: Vec<String> = (0..150).map(|_| unique_meta_id()).collect();
    integration_tests::sandbox()
        .grant_meta(local_stack::sandbox::MetaAssets {
            access_token: token_value.clone(),
            waba_id: Some(waba.clone()),
            phone_number_ids: numbers.clone(),
            ..Default::default()
        })
        .unwrap();
    // Graph lists them in id order, 100 a page: the greatest is on the second page.
    let last = numbers.iter().max().unwrap();
    let body = json!({"type": "whatsapp", "external_id": last, "name": "Line 150",
        "waba_id": waba, "credentials": {"access_token": token_value}});
    assert_eq!(try_connect(&unique_tenant(), &body).await.0, 201);
}
