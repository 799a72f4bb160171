//! Invitations: their terms (expiry edges, ranges, bad bodies), the slots a link offers
//! (its range, not yet started, never another tenant's), a provider refusing the link,
//! and the token shown nowhere but in the creation answer.

use chrono::{Duration, Utc};
use serde_json::json;

use super::{Desk, choose, open, table, token_of, utc_at};

/// `POST /customers/{id}/booking-invitations` of the desk's customer.
async fn invitations_path(desk: &Desk) -> String {
    format!("/customers/{}/booking-invitations", desk.customer)
}

#[tokio::test]
async fn an_invitation_offers_only_its_range_and_slots_not_yet_started() {
    let desk = Desk::new("whatsapp").await;
    let day = (Utc::now() + Duration::days(3)).date_naive();
    let at = |h: u32| format!("{day}T{h:02}:00:00Z");
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for h in [8, 9, 10, 12, 13] {
            ids.push(desk.slot(&at(h), 30).await);
        }
        ids
    };
    let url = desk.invite(&json!({"from": at(9), "to": at(12)})).await;
    let page = open(&url).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let offered: Vec<&String> = ids
        .iter()
        .filter(|id| page.text.contains(&format!("value=\"{id}\"")))
        .collect();
    assert_eq!(
        offered,
        [&ids[1], &ids[2]],
        "from is inclusive, to exclusive"
    );
    let before = desk.state().await;
    for id in [&ids[0], &ids[3], &ids[4]] {
        let page = choose(&url, id).await;
        assert_eq!(page.status, 409, "{id}: {}", page.text);
    }
    assert_eq!(
        desk.state().await,
        before,
        "nothing outside the range is booked"
    );

    // A slot that started after the link was sent: neither offered nor bookable.
    let late = desk.slot(&utc_at(4, 9, 0), 30).await;
    let url = desk.invite(&json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let started = Utc::now() - Duration::milliseconds(500);
    let (dynamo, table) = table();
    let tenant = shared::domain::ids::TenantId::parse(&desk.channel.tenant).unwrap();
    let key = shared::adapters::keys::slot(&tenant, &late);
    let when = |t: chrono::DateTime<Utc>| {
        aws_sdk_dynamodb::types::AttributeValue::S(shared::domain::time::rfc3339(&t))
    };
    dynamo
        .update_item()
        .table_name(table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(key.pk))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(key.sk))
        .update_expression("SET #s = :s, #e = :e")
        .expression_attribute_names("#s", "start")
        .expression_attribute_names("#e", "end")
        .expression_attribute_values(":s", when(started))
        .expression_attribute_values(":e", when(started + Duration::minutes(30)))
        .send()
        .await
        .unwrap();
    let page = open(&url).await;
    assert!(!page.text.contains(&late), "{}", page.text);
    let before = desk.state().await;
    let chosen = choose(&url, &late).await;
    assert_eq!(chosen.status, 409, "{}", chosen.text);
    let booked = desk
        .post(
            "/bookings",
            &json!({"customer_id": desk.customer, "slot_id": late}),
        )
        .await;
    assert_eq!(
        (booked.status, booked.code()),
        (422, "slot_in_past"),
        "{}",
        booked.text
    );
    assert_eq!(desk.state().await, before);
}

#[tokio::test]
async fn invitation_expiry_edges() {
    let desk = Desk::new("whatsapp").await;
    let path = invitations_path(&desk).await;
    let in_secs = |s: i64| (Utc::now() + Duration::seconds(s)).to_rfc3339();
    let before = desk.state().await;
    for body in [
        json!({"expires_at": in_secs(45)}),
        json!({"expires_at": in_secs(-1)}),
        json!({"expires_at": in_secs(30 * 86_400 + 60)}),
        json!({"expires_at": "2030-01-01T00:00:00"}),
        json!({"expires_at": ""}),
        json!({"expires_in_hours": 0}),
        json!({"expires_in_hours": -1}),
        json!({"expires_in_hours": 721}),
        json!({"expires_in_hours": i64::MAX}),
        json!({"expires_at": in_secs(3600), "expires_in_hours": 1}),
    ] {
        let reply = desk.post(&path, &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "invalid_expiry"),
            "{body}: {}",
            reply.text
        );
    }
    for body in [
        json!({"expires_in_hours": 1.5}),
        json!({"expires_in_hours": "72"}),
        json!({"expires_at": 1_900_000_000}),
    ] {
        let reply = desk.post(&path, &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "invalid_body"),
            "{body}: {}",
            reply.text
        );
    }
    assert_eq!(
        desk.state().await,
        before,
        "a refused invitation sends nothing"
    );
    for body in [
        json!({"expires_at": in_secs(65)}),
        json!({"expires_at": in_secs(30 * 86_400 - 60)}),
        json!({"expires_in_hours": 720}),
        json!({"expires_in_hours": 1, "from": null, "to": null}),
    ] {
        let reply = desk.post(&path, &body).await;
        assert_eq!(reply.status, 201, "{body}: {}", reply.text);
        assert!(reply.body["expires_at"].as_str().unwrap().ends_with('Z'));
    }
    let offset = (Utc::now() + Duration::hours(30))
        .with_timezone(&chrono::FixedOffset::east_opt(14 * 3600).unwrap())
        .to_rfc3339();
    let reply = desk.post(&path, &json!({"expires_at": offset})).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let expires =
        chrono::DateTime::parse_from_rfc3339(reply.body["expires_at"].as_str().unwrap()).unwrap();
    let wanted = chrono::DateTime::parse_from_rfc3339(&offset).unwrap();
    assert!(
        (expires - wanted).num_milliseconds().abs() < 1000,
        "{expires} vs {wanted}"
    );

    // The link runs out between opening the page and choosing: the expired page, nothing booked.
    let slot = desk.slot(&utc_at(2, 9, 0), 30).await;
    let url = desk.invite(&json!({})).await;
    let hash = shared::domain::booking::token_hash(token_of(&url));
    let (dynamo, table) = table();
    let soon = shared::domain::time::rfc3339(&(Utc::now() + Duration::seconds(2)));
    dynamo
        .update_item()
        .table_name(table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("INVITE#{hash}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("INVITE".into()),
        )
        .update_expression("SET invite_expires_at = :t")
        .expression_attribute_values(":t", aws_sdk_dynamodb::types::AttributeValue::S(soon))
        .send()
        .await
        .unwrap();
    assert_eq!(open(&url).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let before = desk.state().await;
    let page = choose(&url, &slot).await;
    assert_eq!(page.status, 410, "{}", page.text);
    assert!(page.text.contains("expired"), "{}", page.text);
    assert_eq!(desk.state().await, before);
}

#[tokio::test]
async fn bad_invitation_bodies_send_nothing() {
    let desk = Desk::new("whatsapp").await;
    let path = invitations_path(&desk).await;
    let before = desk.state().await;
    for (body, status, code) in [
        (b"{".to_vec(), 400, "invalid_json"),
        (b"null".to_vec(), 422, "invalid_body"),
        (b"[]".to_vec(), 422, "invalid_body"),
        (b"\"x\"".to_vec(), 422, "invalid_body"),
        (vec![0xff, 0xfe], 400, "invalid_json"),
        (
            json!({"pad": "x".repeat(70_000)}).to_string().into_bytes(),
            413,
            "payload_too_large",
        ),
        (
            json!({"template": "x"}).to_string().into_bytes(),
            422,
            "invalid_body",
        ),
        (
            json!({"template": {"name": 5}}).to_string().into_bytes(),
            422,
            "invalid_body",
        ),
        (
            json!({"from": 5}).to_string().into_bytes(),
            422,
            "invalid_body",
        ),
        (
            json!({"from": "soon"}).to_string().into_bytes(),
            422,
            "invalid_range",
        ),
        (
            json!({"to": "2020-01-01"}).to_string().into_bytes(),
            422,
            "invalid_range",
        ),
        (
            json!({"to": "2020-01-01T00:00:00Z"})
                .to_string()
                .into_bytes(),
            422,
            "invalid_range",
        ),
        (
            json!({"from": "2030-01-03", "to": "2030-01-02"})
                .to_string()
                .into_bytes(),
            422,
            "invalid_range",
        ),
        (
            json!({"from": "2030-01-01", "to": "2030-01-01T00:00:00Z"})
                .to_string()
                .into_bytes(),
            422,
            "invalid_range",
        ),
    ] {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let reply = integration_tests::call("POST", &path, Some(&desk.agent), Some(body)).await;
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{shown}: {}",
            reply.text
        );
    }
    assert_eq!(desk.state().await, before);
}

#[tokio::test]
async fn an_invitation_whose_range_ends_after_year_9999_still_opens_or_is_refused() {
    let desk = Desk::new("whatsapp").await;
    desk.slot(&utc_at(2, 9, 0), 30).await;
    let path = invitations_path(&desk).await;
    for body in [
        json!({"to": "9999-12-31T23:59:59-23:59"}),
        json!({"from": "9999-12-31T23:59:59-23:59"}),
    ] {
        let before = desk.state().await;
        let reply = desk.post(&path, &body).await;
        if reply.status == 201 {
            let page = open(reply.body["url"].as_str().unwrap()).await;
            assert_eq!(page.status, 200, "{body}: {}", page.text);
        } else {
            assert_eq!(
                (reply.status, reply.code()),
                (422, "invalid_range"),
                "{body}: {}",
                reply.text
            );
            assert_eq!(desk.state().await, before);
        }
    }
}

#[tokio::test]
async fn a_link_never_shows_or_books_another_tenants_slots() {
    let mine = Desk::new("whatsapp").await;
    let theirs = Desk::new("whatsapp").await;
    let my_slot = mine.slot(&utc_at(2, 9, 0), 30).await;
    let their_slot = theirs.slot(&utc_at(2, 10, 0), 30).await;
    let url = mine.invite(&json!({})).await;
    let page = open(&url).await;
    assert!(
        page.text.contains(&my_slot) && !page.text.contains(&their_slot),
        "{}",
        page.text
    );
    let theirs_before = theirs.state().await;
    let chosen = choose(&url, &their_slot).await;
    assert_eq!(chosen.status, 409, "{}", chosen.text);
    assert_eq!(theirs.state().await, theirs_before);
    // Their link books their slot for their customer, never mine.
    let their_url = theirs.invite(&json!({})).await;
    assert_eq!(choose(&their_url, &my_slot).await.status, 409);
    let booked = choose(&their_url, &their_slot).await;
    assert_eq!(booked.status, 200, "{}", booked.text);
    assert!(mine.all("/bookings?limit=100").await.is_empty());
    let theirs_now = theirs.all("/bookings?limit=100").await;
    assert_eq!(theirs_now.len(), 1);
    assert_eq!(theirs_now[0]["customer_id"], theirs.customer.as_str());
}

#[tokio::test]
async fn the_token_is_shown_only_in_the_creation_answer() {
    let desk = Desk::new("whatsapp").await;
    let slot = desk.slot(&utc_at(2, 9, 0), 30).await;
    let url = desk.invite(&json!({})).await;
    let token = token_of(&url).to_owned();
    let page = open(&url).await;
    assert!(
        !page.text.contains(&token),
        "the page names its token: {}",
        page.text
    );
    let booked = choose(&url, &slot).await;
    assert!(!booked.text.contains(&token));
    assert!(!open(&url).await.text.contains(&token));
    let texts = [
        desk.get("/bookings").await.text,
        desk.get(&format!("/customers/{}/bookings", desk.customer))
            .await
            .text,
        desk.get("/calendar/slots").await.text,
    ];
    for text in &texts {
        assert!(!text.contains(&token), "{text}");
    }
    for system in desk.state().await.system {
        assert!(!system.to_string().contains(&token), "{system}");
    }
    // Stored only as its hash.
    let (dynamo, table) = table();
    let hash = shared::domain::booking::token_hash(&token);
    let item = dynamo
        .get_item()
        .table_name(table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("INVITE#{hash}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("INVITE".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("the invitation is stored by the hash of its token");
    assert!(!format!("{item:?}").contains(&token), "{item:?}");
}

#[tokio::test]
async fn a_link_the_provider_refused_does_not_work() {
    let desk = Desk::new("whatsapp").await;
    desk.slot(&utc_at(2, 9, 0), 30).await;
    integration_tests::sandbox_fail(
        &desk.channel.external_id,
        vec![json!({"status": 400, "code": 131026})],
    );
    let reply = desk.post(&invitations_path(&desk).await, &json!({})).await;
    assert!(
        reply.status == 502 || (400..500).contains(&reply.status),
        "a refused link is not created: {}",
        reply.text
    );
    // The link the provider saw (and refused) does not open.
    let attempts = integration_tests::sandbox_outbox(&desk.channel.external_id);
    let text = attempts
        .iter()
        .rev()
        .find(|a| a["to"] == desk.wa_id.as_str())
        .map(|a| {
            a["body"]["text"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .expect("the refused attempt is in the sandbox");
    let url = text
        .split_whitespace()
        .find(|w| w.contains("/b/"))
        .expect("the link in the refused message");
    let page = open(url).await;
    assert_eq!(page.status, 404, "a link the customer never got opens");
}
