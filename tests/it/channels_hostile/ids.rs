//! Ids and claims through the API: ids that would reach into the Graph URL, a WeChat
//! channel (proven by its AppID/AppSecret alone) naming a Meta account's id, another
//! spelling of a connected id, tenants racing with valid grants of their own, and routes
//! that would change a connected channel.

use std::sync::Arc;

use integration_tests::{call, get, grant_meta, post_json, token, unique_meta_id, unique_tenant};
use serde_json::{Value, json};
use tokio::sync::Barrier;

use super::stored;

/// Posts `body` as `tenant`'s admin: the status and the error code.
async fn connect(tenant: &str, body: &Value) -> (u16, String) {
    let reply = post_json("/channels", Some(&token(tenant, "admin")), body).await;
    (reply.status, reply.code().to_owned())
}

/// The deployment-wide routing record's access token for `external_id`.
async fn routed_token(external_id: &str) -> Option<String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let stack = integration_tests::stack();
    let item = aws_sdk_dynamodb::Client::new(&stack.settings.sdk_config())
        .get_item()
        .table_name(stack.template.local_name("ChatTable").unwrap())
        .key("pk", AttributeValue::S(format!("EXTERNAL#{external_id}")))
        .key("sk", AttributeValue::S("EXTERNAL".to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    item.item()
        .and_then(|i| i.get("access_token"))
        .and_then(|v| v.as_s().ok())
        .cloned()
}

#[tokio::test]
async fn ids_that_would_reach_into_the_graph_url_are_refused_before_any_call() {
    let tenant = unique_tenant();
    let hostile = [
        "1/phone_numbers",
        "1?fields=id",
        "1#x",
        "..",
        "1/..",
        "%2F1",
        "1%2F2",
        "1&fields=id,username",
        " 1",
        "1 ",
        "1\t",
        "1\n",
        "１２３",
        "٣٤٥",
        "me",
        "",
        "-1",
        "+1",
        "1e5",
        "0x1F",
        "1.0",
        "1\u{0}",
        &"1".repeat(33),
    ];
    for id in hostile {
        // As each Meta type's external id, granted so that only the id could fail.
        for kind in ["whatsapp", "messenger", "instagram"] {
            let mut body = json!({"type": kind, "external_id": id, "name": "n",
                "credentials": {"access_token": format!("EAAG-{}", unique_meta_id())}});
            if kind == "whatsapp" {
                body["waba_id"] = json!(unique_meta_id());
            }
            grant_meta(&body);
            assert_eq!(
                connect(&tenant, &body).await,
                (422, "invalid_external_id".to_owned()),
                "{kind} {id:?}"
            );
        }
        // As the WABA of a WhatsApp number.
        let body = json!({"type": "whatsapp", "external_id": unique_meta_id(), "name": "n",
            "waba_id": id, "credentials": {"access_token": format!("EAAG-{}", unique_meta_id())}});
        assert_eq!(
            connect(&tenant, &body).await,
            (422, "invalid_waba_id".to_owned()),
            "waba {id:?}"
        );
        // As a WeChat original id after its prefix.
        let body = json!({"type": "wechat", "external_id": format!("gh_{id}"), "name": "n",
            "credentials": {"app_id": "wx-ids", "app_secret": "s", "token": "t"}});
        if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            continue;
        }
        assert_eq!(
            connect(&tenant, &body).await,
            (422, "invalid_external_id".to_owned()),
            "wechat gh_{id:?}"
        );
    }
    assert_eq!(stored(&tenant, "1").await.0, 0);
}

#[tokio::test]
async fn a_wechat_channel_never_holds_a_meta_accounts_id() {
    // The WeChat proof ties the AppID/AppSecret to nothing else: any business with a
    // WeChat account of its own passes it, whatever external_id it names.
    let (owner, intruder) = (unique_tenant(), unique_tenant());
    let squat = |id: &str| {
        json!({"type": "wechat", "external_id": id, "name": "Not mine",
            "credentials": {"app_id": "wx-intruder", "app_secret": "intruder-secret", "token": "t"}})
    };

    // A Page nobody connected yet: the intruder cannot take its id first.
    let page = unique_meta_id();
    assert_eq!(
        connect(&intruder, &squat(&page)).await,
        (422, "invalid_external_id".to_owned())
    );
    let body = json!({"type": "messenger", "external_id": page, "name": "Page",
        "credentials": {"access_token": format!("EAAG-{}", unique_meta_id())}});
    grant_meta(&body);
    assert_eq!(connect(&owner, &body).await, (201, String::new()));

    // A connected number: the intruder does not learn that it is connected (no 409).
    let number = unique_meta_id();
    let body = json!({"type": "whatsapp", "external_id": number, "name": "Line",
        "waba_id": unique_meta_id(), "credentials": {"access_token": format!("EAAG-{}", unique_meta_id())}});
    grant_meta(&body);
    assert_eq!(connect(&owner, &body).await, (201, String::new()));
    assert_eq!(
        connect(&intruder, &squat(&number)).await,
        (422, "invalid_external_id".to_owned())
    );
    assert_eq!(stored(&intruder, &number).await, (0, true));
}

#[tokio::test]
async fn a_meta_id_is_spelled_one_way_only() {
    // Graph ids are positive integers without leading zeros; another spelling of a
    // connected id would be a second claim on the same account (webhooks name it the
    // canonical way).
    let (owner, other) = (unique_tenant(), unique_tenant());
    let page = unique_meta_id();
    let body = json!({"type": "messenger", "external_id": page, "name": "Page",
        "credentials": {"access_token": format!("EAAG-{}", unique_meta_id())}});
    grant_meta(&body);
    assert_eq!(connect(&owner, &body).await, (201, String::new()));
    for alias in [format!("0{page}"), format!("00{page}"), "0".to_owned()] {
        let mut again = body.clone();
        again["external_id"] = json!(alias);
        grant_meta(&again);
        assert_eq!(
            connect(&other, &again).await,
            (422, "invalid_external_id".to_owned()),
            "{alias}"
        );
    }
    let zero_waba = json!({"type": "whatsapp", "external_id": unique_meta_id(), "name": "n",
        "waba_id": format!("0{}", unique_meta_id()), "credentials": {"access_token": "EAAG-z"}});
    grant_meta(&zero_waba);
    assert_eq!(
        connect(&other, &zero_waba).await,
        (422, "invalid_waba_id".to_owned())
    );
    assert_eq!(stored(&other, "0").await, (0, false));
}

#[tokio::test]
async fn an_unproven_claim_on_a_connected_page_or_account_is_unproven_not_taken() {
    let (owner, intruder) = (unique_tenant(), unique_tenant());
    for kind in ["messenger", "instagram"] {
        let id = unique_meta_id();
        let owner_token = format!("EAAG-owner-{}", unique_meta_id());
        let body = json!({"type": kind, "external_id": id, "name": "Mine",
            "credentials": {"access_token": owner_token}});
        grant_meta(&body);
        assert_eq!(connect(&owner, &body).await, (201, String::new()));
        // A real token of the intruder's own (Meta knows it; it controls another account),
        // and the same with an app secret of its own.
        let intruder_token = format!("EAAG-intruder-{}", unique_meta_id());
        grant_meta(&json!({"type": kind, "external_id": unique_meta_id(),
            "credentials": {"access_token": intruder_token, "app_secret": "intruder-app"}}));
        for credentials in [
            json!({"access_token": intruder_token}),
            json!({"access_token": intruder_token, "app_secret": "intruder-app"}),
            json!({"access_token": owner_token.replace("owner", "OWNER")}),
        ] {
            let claim = json!({"type": kind, "external_id": id, "name": "Mine now",
                "credentials": credentials});
            let (status, code) = connect(&intruder, &claim).await;
            assert_eq!(
                (status, code.as_str()),
                (422, "channel_not_verified"),
                "{claim}"
            );
        }
        assert_eq!(stored(&intruder, &id).await, (0, true));
        assert_eq!(routed_token(&id).await, Some(owner_token), "{kind}");
    }
}

#[tokio::test]
async fn tenants_racing_with_valid_grants_of_their_own_make_one_channel() {
    const TENANTS: usize = 8;
    let (number, waba) = (unique_meta_id(), unique_meta_id());
    let barrier = Arc::new(Barrier::new(TENANTS));
    let tasks: Vec<_> = (0..TENANTS)
        .map(|_| {
            let tenant = unique_tenant();
            let body = json!({"type": "whatsapp", "external_id": number, "name": "Line",
                "waba_id": waba, "credentials": {"access_token": format!("EAAG-{}", unique_meta_id())}});
            grant_meta(&body);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let outcome = connect(&tenant, &body).await;
                (tenant, body["credentials"]["access_token"].clone(), outcome)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (tenant, token_value, outcome) = task.await.unwrap();
        match outcome {
            (201, _) => winners.push((tenant, token_value)),
            (409, code) => assert_eq!(code, "external_id_taken"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (tenant, token_value) = &winners[0];
    assert_eq!(stored(tenant, &number).await, (1, true));
    assert_eq!(routed_token(&number).await.as_deref(), token_value.as_str());
}

#[tokio::test]
async fn no_route_changes_a_connected_channel() {
    let tenant = unique_tenant();
    let admin = token(&tenant, "admin");
    let body = json!({"type": "messenger", "external_id": unique_meta_id(), "name": "Page",
        "credentials": {"access_token": format!("EAAG-{}", unique_meta_id())}});
    grant_meta(&body);
    let created = post_json("/channels", Some(&admin), &body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let before = get("/channels", Some(&admin)).await.body;
    let change = json!({"external_id": unique_meta_id(), "name": "Hijacked",
        "credentials": {"access_token": "EAAG-other"}})
    .to_string()
    .into_bytes();
    for method in ["PATCH", "PUT", "DELETE", "POST"] {
        for path in [
            format!("/channels/{id}"),
            format!("/channels/{id}/credentials"),
        ] {
            let reply = call(method, &path, Some(&admin), Some(change.clone())).await;
            assert!(
                matches!(reply.status, 404 | 405),
                "{method} {path}: {}",
                reply.status
            );
            assert!(!reply.code().is_empty(), "{method} {path}: {}", reply.text);
        }
    }
    assert_eq!(get("/channels", Some(&admin)).await.body, before);
    let external_id = body["external_id"].as_str().unwrap();
    assert_eq!(
        routed_token(external_id).await.as_ref(),
        body["credentials"]["access_token"]
            .as_str()
            .map(str::to_owned)
            .as_ref()
    );
}
