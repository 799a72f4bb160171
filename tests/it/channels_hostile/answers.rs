//! Provider answers the proof must not trust: a 200 that is not Graph's answer, pages
//! that never end or point elsewhere, ids that are nearly the one asked, answers too large
//! or too slow for the function, WeChat answering without a token, and provider messages
//! that repeat the credentials.

use std::time::{Duration, Instant};

use integration_tests::{unique_meta_id, unique_tenant};
use serde_json::{Value, json};
use shared::adapters::channels::verify::MAX_PAGES;

use super::{Provider, Scripted, connect_with, stored};

fn messenger(page: &str) -> Value {
    json!({"type": "messenger", "external_id": page, "name": "Page",
        "credentials": {"access_token": "EAAG-hostile"}})
}

fn whatsapp(number: &str, waba: &str) -> Value {
    json!({"type": "whatsapp", "external_id": number, "name": "Line", "waba_id": waba,
        "credentials": {"access_token": "EAAG-hostile"}})
}

fn wechat(original_id: &str, app_id: &str, secret: &str) -> Value {
    json!({"type": "wechat", "external_id": original_id, "name": "WX",
        "credentials": {"app_id": app_id, "app_secret": secret, "token": "wx-token"}})
}

fn gh_id() -> String {
    format!("gh_{}", &unique_meta_id()[6..])
}

/// A page of phone numbers as Graph gives it.
fn numbers_page(ids: &[Value], after: Option<&str>, next: Option<&str>) -> Scripted {
    let mut paging = json!({"cursors": {"before": "b", "after": after}});
    if let Some(next) = next {
        paging["next"] = json!(next);
    }
    Scripted::json(200, &json!({"data": ids, "paging": paging}))
}

/// Connects `body` for a new tenant against a provider answering `answers`: the outcome
/// (`Ok` or the error code), with nothing stored unless it connected.
async fn outcome(answers: Vec<Scripted>, body: &Value) -> (Result<(), String>, Provider) {
    let provider = Provider::start(answers).await;
    let tenant = unique_tenant();
    let external_id = body["external_id"].as_str().unwrap();
    let result = connect_with(&provider.channels(), &tenant, body)
        .await
        .map(drop)
        .map_err(|e| e.code().to_owned());
    let expected = if result.is_ok() {
        (1, true)
    } else {
        (0, false)
    };
    assert_eq!(
        stored(&tenant, external_id).await,
        expected,
        "{body}: {result:?}"
    );
    (result, provider)
}

#[tokio::test]
async fn a_page_is_proven_only_by_a_graph_answer_not_by_any_200() {
    let page = unique_meta_id();
    let (connected, provider) = outcome(
        vec![Scripted::json(
            200,
            &json!({"data": [{"id": "1234567890123456", "name": "Chatroom"}]}),
        )],
        &messenger(&page),
    )
    .await;
    assert_eq!(
        connected,
        Ok(()),
        "the scripted provider answers as Meta does"
    );
    assert!(
        provider.seen()[0].starts_with(&format!("GET /graph/{page}/subscribed_apps")),
        "{:?}",
        provider.seen()
    );

    let answers = [
        // Graph's error object, with a 200 (as a proxy or a batch answer can give it).
        Scripted::json(
            200,
            &json!({"error": {"message": "(#210) A page access token is required to request this resource.",
                "type": "OAuthException", "code": 210}}),
        ),
        Scripted::raw(
            200,
            "text/html",
            "<html><body>Sorry, something went wrong.</body></html>",
        ),
        Scripted::raw(200, "application/json", ""),
        Scripted::json(200, &json!({})),
        Scripted::json(200, &json!({"data": null})),
        Scripted::json(200, &json!(null)),
        Scripted::json(200, &json!([])),
        Scripted::json(204, &json!({})),
    ];
    for answer in answers {
        let shown = String::from_utf8_lossy(&answer.body).into_owned();
        let (connected, _) = outcome(vec![answer], &messenger(&unique_meta_id())).await;
        let code = connected.expect_err(&shown);
        assert!(
            matches!(code.as_str(), "channel_not_verified" | "upstream_error"),
            "{shown}: {code}"
        );
    }
}

#[tokio::test]
async fn pages_that_never_end_or_point_elsewhere_are_read_from_graph_at_most_ten_times() {
    let (number, waba) = (unique_meta_id(), unique_meta_id());
    let elsewhere = Provider::start(vec![numbers_page(
        &[json!({"id": number})],
        Some("x"),
        None,
    )])
    .await;
    // The same cursor forever, and a `next` on another host that lists the number.
    let endless = numbers_page(
        &[json!({"id": unique_meta_id()})],
        Some("again"),
        Some(&format!("{}/graph/{waba}/phone_numbers", elsewhere.url)),
    );
    let (connected, provider) = outcome(vec![endless], &whatsapp(&number, &waba)).await;
    assert_eq!(connected, Err("channel_not_verified".to_owned()));
    let seen = provider.seen();
    assert!(seen.len() <= MAX_PAGES, "{} pages read", seen.len());
    for request in &seen {
        assert!(
            request.starts_with(&format!("GET /graph/{waba}/phone_numbers?")),
            "{request}"
        );
    }
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());

    // A number on the second page is found by the cursor, on Graph itself.
    let (number, waba) = (unique_meta_id(), unique_meta_id());
    let (connected, provider) = outcome(
        vec![
            numbers_page(
                &[json!({"id": unique_meta_id()})],
                Some("c1"),
                Some(&format!("{}/elsewhere", elsewhere.url)),
            ),
            numbers_page(&[json!({"id": number})], Some("c2"), None),
        ],
        &whatsapp(&number, &waba),
    )
    .await;
    assert_eq!(connected, Ok(()));
    let seen = provider.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[1].contains("after=c1"), "{seen:?}");
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
}

#[tokio::test]
async fn ids_that_are_nearly_the_number_prove_nothing() {
    let number = unique_meta_id();
    let near = [
        json!([{"id": format!("{number}1")}, {"id": &number[..number.len() - 1]}]),
        json!([{"id": format!(" {number}")}, {"id": format!("0{number}")}]),
        json!([{"id": number.parse::<u64>().unwrap()}]),
        json!([{"phone_number_id": number}, {"display_phone_number": number}]),
        json!([[number], {"id": [number]}, {"id": {"id": number}}]),
        json!({"id": number}),
    ];
    for data in near {
        let waba = unique_meta_id();
        let answer = Scripted::json(200, &json!({"data": data, "paging": {}}));
        let (connected, _) = outcome(vec![answer], &whatsapp(&number, &waba)).await;
        assert!(connected.is_err(), "{data}");
    }
    // Duplicates of the right id are still the right id.
    let waba = unique_meta_id();
    let answer = Scripted::json(200, &json!({"data": [{"id": number}, {"id": number}]}));
    let (connected, _) = outcome(vec![answer], &whatsapp(&number, &waba)).await;
    assert_eq!(connected, Ok(()));
}

#[tokio::test]
async fn an_instagram_answer_must_be_the_account_itself() {
    let account = unique_meta_id();
    let body = |id: &str| {
        json!({"type": "instagram", "external_id": id, "name": "IG",
            "credentials": {"access_token": "EAAG-hostile"}})
    };
    let (connected, provider) = outcome(
        vec![Scripted::json(
            200,
            &json!({"id": account, "username": "shop"}),
        )],
        &body(&account),
    )
    .await;
    assert_eq!(connected, Ok(()));
    assert!(
        provider.seen()[0].starts_with(&format!("GET /graph/{account}?")),
        "{:?}",
        provider.seen()
    );
    for answer in [
        |id: &str| json!({"id": id.parse::<u64>().unwrap()}),
        |id: &str| json!({"id": format!("{id}0")}),
        |id: &str| json!({"data": [{"id": id}]}),
        |id: &str| json!({"username": id}),
        |_: &str| json!({"error": {"message": "(#100) Unsupported get request", "code": 100}}),
    ] {
        let id = unique_meta_id();
        let (connected, _) = outcome(vec![Scripted::json(200, &answer(&id))], &body(&id)).await;
        assert!(connected.is_err(), "{}", answer(&id));
    }
}

#[tokio::test]
async fn an_answer_larger_than_graph_ever_gives_is_not_read_whole() {
    let (number, waba) = (unique_meta_id(), unique_meta_id());
    // 8 MB: a page of 100 numbers is about 25 KB; the function has 128 MB.
    let padding = "x".repeat(8 * 1024 * 1024);
    let answer = Scripted::json(200, &json!({"data": [{"id": number, "note": padding}]}));
    let (connected, _) = outcome(vec![answer], &whatsapp(&number, &waba)).await;
    assert_eq!(connected, Err("upstream_error".to_owned()));
    // WeChat's token answer is a few hundred bytes.
    let answer = Scripted::json(
        200,
        &json!({"access_token": "tok", "expires_in": 7200, "note": "x".repeat(1024 * 1024)}),
    );
    let app = format!("wx{}", unique_meta_id());
    let (connected, _) = outcome(vec![answer], &wechat(&gh_id(), &app, "wx-secret")).await;
    assert_eq!(connected, Err("upstream_error".to_owned()));
}

#[tokio::test]
async fn a_slow_provider_is_a_502_within_the_functions_timeout() {
    // The chatroom function stops at 10 s (template.yaml's Globals): Graph answering
    // every page in 2.5 s, the number on the fifth, would outlast it.
    let (number, waba) = (unique_meta_id(), unique_meta_id());
    let mut answers: Vec<Scripted> = (0..4)
        .map(|n| {
            numbers_page(
                &[json!({"id": unique_meta_id()})],
                Some(&format!("c{n}")),
                Some("https://graph.facebook.com/next"),
            )
            .after(Duration::from_millis(2500))
        })
        .collect();
    answers.push(
        numbers_page(&[json!({"id": number})], None, None).after(Duration::from_millis(2500)),
    );
    let started = Instant::now();
    let (connected, _) = outcome(answers, &whatsapp(&number, &waba)).await;
    let took = started.elapsed();
    assert_eq!(
        connected,
        Err("upstream_error".to_owned()),
        "after {took:?}"
    );
    // Not a timing assertion: the only way to a 502 here is the proof's budget.
    eprintln!("the slow proof was answered after {took:?}");
}

#[tokio::test]
async fn wechat_answers_without_a_token_connect_nothing() {
    let cases = [
        // Not WeChat's answer: the provider failed, the AppSecret is not blamed.
        (
            json!({"errcode": 0, "errmsg": "ok"}),
            Some("upstream_error"),
        ),
        (
            json!({"access_token": "", "expires_in": 7200}),
            Some("upstream_error"),
        ),
        (
            json!({"access_token": 42, "expires_in": 7200}),
            Some("upstream_error"),
        ),
        (
            json!({"errcode": -1, "errmsg": "system error"}),
            Some("upstream_error"),
        ),
        (
            json!({"errcode": 40001, "errmsg": "invalid credential"}),
            Some("channel_not_verified"),
        ),
        (
            json!({"errcode": 40125, "errmsg": "invalid appsecret"}),
            Some("channel_not_verified"),
        ),
        (
            json!({"errcode": 40164, "errmsg": "invalid ip, not in whitelist"}),
            Some("channel_not_verified"),
        ),
    ];
    for (answer, code) in cases {
        let app = format!("wx{}", unique_meta_id());
        let (connected, provider) = outcome(
            vec![Scripted::json(200, &answer)],
            &wechat(&gh_id(), &app, "wx-secret"),
        )
        .await;
        let got = connected.expect_err(&answer.to_string());
        if let Some(code) = code {
            assert_eq!(got, code, "{answer}");
        }
        assert!(
            provider.seen()[0].starts_with("POST /wechat/cgi-bin/stable_token"),
            "{:?}",
            provider.seen()
        );
    }
    let html = Scripted::raw(200, "text/html", "<html>502 Bad Gateway</html>");
    let (connected, _) = outcome(vec![html], &wechat(&gh_id(), "wx-html", "wx-secret")).await;
    assert_eq!(connected, Err("upstream_error".to_owned()));
    let app = format!("wx{}", unique_meta_id());
    let token = Scripted::json(200, &json!({"access_token": "tok", "expires_in": 7200}));
    let (connected, _) = outcome(vec![token], &wechat(&gh_id(), &app, "wx-secret")).await;
    assert_eq!(connected, Ok(()));
}

#[tokio::test]
async fn a_refusal_never_repeats_the_credentials_even_when_the_provider_does() {
    let tenant = unique_tenant();
    let secret_token = format!("EAAG-{}", unique_meta_id());
    let app_secret = format!("app-secret-{}", unique_meta_id());
    let echo = Scripted::json(
        400,
        &json!({"error": {"message": format!("Malformed access token {secret_token} (appsecret {app_secret})"),
            "type": "OAuthException", "code": 190}}),
    );
    let provider = Provider::start(vec![echo]).await;
    let body = json!({"type": "messenger", "external_id": unique_meta_id(), "name": "Page",
        "credentials": {"access_token": secret_token, "app_secret": app_secret}});
    let refused = connect_with(&provider.channels(), &tenant, &body)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "channel_not_verified");
    let shown = refused.to_string();
    assert!(!shown.contains(&secret_token), "{shown}");
    assert!(!shown.contains(&app_secret), "{shown}");

    let wx_secret = format!("wx-secret-{}", unique_meta_id());
    let echo = Scripted::json(
        200,
        &json!({"errcode": 40125, "errmsg": format!("invalid appsecret {wx_secret}")}),
    );
    let provider = Provider::start(vec![echo]).await;
    let body = wechat(&gh_id(), &format!("wx{}", unique_meta_id()), &wx_secret);
    let refused = connect_with(&provider.channels(), &tenant, &body)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "channel_not_verified");
    assert!(!refused.to_string().contains(&wx_secret), "{refused}");
}

#[tokio::test]
async fn a_template_graph_answers_too_slowly_is_a_502_within_the_functions_timeout() {
    let (number, waba) = (unique_meta_id(), unique_meta_id());
    let proof = numbers_page(&[json!({"id": number})], None, None);
    // Meta answers the creation after 9 s: past the chatroom function's 10 s with the reads.
    let slow = Scripted::json(
        200,
        &json!({"id": "594425479261596", "status": "PENDING", "category": "UTILITY"}),
    )
    .after(Duration::from_secs(9));
    let provider = Provider::start(vec![proof, slow]).await;
    let tenant = unique_tenant();
    let channel = connect_with(&provider.channels(), &tenant, &whatsapp(&number, &waba))
        .await
        .expect("the proof passes");
    let principal = shared::domain::auth::Principal::from_claims(|claim| match claim {
        "sub" => Some("admin-1"),
        "tenant_id" => Some(tenant.as_str()),
        "role" => Some("admin"),
        _ => None,
    })
    .unwrap();
    let new: shared::domain::template::NewTemplate = serde_json::from_value(json!({
        "channel_id": channel.id.to_string(), "name": "order_update", "language": "en_US",
        "category": "UTILITY", "components": [{"type": "BODY", "text": "Your order {{1}} ships today."}]
    }))
    .unwrap();
    let store = super::store();
    let started = Instant::now();
    let created = shared::service::templates::create_template(
        &store,
        &store,
        &provider.channels(),
        &principal,
        new,
        chrono::Utc::now(),
    )
    .await;
    let took = started.elapsed();
    let refused = created.map(drop).expect_err("Meta gave no answer in time");
    assert_eq!(refused.code(), "upstream_error", "after {took:?}");
    assert!(
        refused.to_string().contains("no answer within 7 s"),
        "the provider budget ended it: {refused}"
    );
    let listed = integration_tests::get(
        "/templates",
        Some(&integration_tests::token(&tenant, "admin")),
    )
    .await;
    assert_eq!(
        listed.body["items"],
        json!([]),
        "nothing stored: {}",
        listed.text
    );
}
