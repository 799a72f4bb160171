//! The public call page `GET /call/{token}` with odd tokens: every length and character,
//! percent-encoding, another call's token, a token whose call ended, was missed or expired.
//! Unknown → 404, over → 410, never a 5xx, and a page only ever shows its own call's role.

use integration_tests::stack;

use super::{Room, no_server_panic};

async fn page(token: &str) -> (u16, String) {
    let response = reqwest::get(format!("{}/call/{token}", stack().base_url))
        .await
        .expect("the dev server answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn odd_tokens_find_no_call_and_never_fail() {
    let room = Room::open().await;
    let real = room.customer_token.clone();
    let mut tokens: Vec<String> = (0..=100).map(|n| "A".repeat(n)).collect();
    tokens.extend([
        real[..42].to_owned(),
        format!("{real}A"),
        format!("{}=", &real[..42]),
        real.to_lowercase(),
        real.to_uppercase(),
        format!("{}!", &real[..42]),
        format!("{}%2F", &real[..42]),
        format!("{}%00", &real[..42]),
        format!("{}%C3%A9", &real[..41]),
        format!("{}%20", &real[..42]),
        format!("{}+", &real[..42]),
        "..".into(),
        "%2e%2e".into(),
        "%2e%2e%2fcalls".into(),
        "<script>alert(1)</script>".into(),
        "%3Cscript%3E".into(),
        "x".repeat(8 * 1024),
        "%FF%FE".into(),
        "%".into(),
        "%%".into(),
    ]);
    for token in tokens {
        if token == real {
            continue;
        }
        let (status, body) = page(&token).await;
        assert!(
            matches!(status, 404 | 400 | 414 | 431),
            "{}: {status}",
            &token[..token.len().min(60)]
        );
        assert!(!body.contains("<script>alert"), "the token is echoed");
        assert!(
            !body.contains(&room.customer_token) && !body.contains(&room.agent_token),
            "a page for a wrong token shows a real one"
        );
    }
    // Percent-encoding the real token byte by byte reads the same token (or none): never
    // another call, never a 5xx.
    let encoded: String = real.bytes().map(|b| format!("%{b:02X}")).collect();
    let (status, body) = page(&encoded).await;
    assert!(matches!(status, 200 | 404), "{status}");
    if status == 200 {
        assert!(body.contains("\"role\":\"customer\""));
    }
    assert_eq!(page(&real).await.0, 200);
    no_server_panic();
}

#[tokio::test]
async fn each_token_opens_its_own_call_as_its_own_role_only() {
    let first = Room::open().await;
    let second = first.again().await;
    for (room, other) in [(&first, &second), (&second, &first)] {
        let (status, body) = page(&room.agent_token).await;
        assert_eq!(status, 200);
        assert!(body.contains("\"role\":\"agent\"") && body.contains(&room.agent_token));
        assert!(!body.contains(&other.agent_token) && !body.contains(&other.customer_token));
        assert!(
            !body.contains(&room.customer_token),
            "the agent page leaks the customer's token"
        );
        let (status, body) = page(&room.customer_token).await;
        assert_eq!(status, 200);
        assert!(body.contains("\"role\":\"customer\""));
        assert!(
            !body.contains(&room.agent_token),
            "the customer page leaks the agent's token"
        );
    }
}

#[tokio::test]
async fn a_missed_an_ended_and_an_expired_call_are_gone() {
    // Missed by its schedule.
    let missed = Room::open().await;
    missed.fire_expiry().await;
    for token in [&missed.agent_token, &missed.customer_token] {
        assert_eq!(page(token).await.0, 410);
    }
    // Ended by a hang-up.
    let ended = missed.again().await;
    let (mut agent, customer) = ended.pair().await;
    drop(customer);
    assert_eq!(super::next(&mut agent).await["type"], "peer_left");
    ended.until_status("ended").await;
    for token in [&ended.agent_token, &ended.customer_token] {
        assert_eq!(page(token).await.0, 410);
    }
    // Still ringing past its expiry (the schedule has not fired yet).
    let late = missed.again().await;
    expire_now(&late).await;
    for token in [&late.agent_token, &late.customer_token] {
        assert_eq!(page(token).await.0, 410);
    }
    no_server_panic();
}

/// Moves a ringing call's `expires_at` a second into the past (the table, as if 30 minutes
/// had gone by).
pub(crate) async fn expire_now(room: &Room) {
    use aws_sdk_dynamodb::types::AttributeValue;
    let dynamo = aws_sdk_dynamodb::Client::new(&stack().settings.sdk_config());
    let tenant = shared::domain::ids::TenantId::parse(&room.channel.tenant).unwrap();
    let key = shared::adapters::keys::call(&tenant, &room.id);
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    dynamo
        .update_item()
        .table_name(stack().template.local_name("ChatTable").unwrap())
        .key("pk", AttributeValue::S(key.pk))
        .key("sk", AttributeValue::S(key.sk))
        .update_expression("SET expires_at = :e")
        .expression_attribute_values(
            ":e",
            AttributeValue::S(shared::domain::time::rfc3339(&past)),
        )
        .send()
        .await
        .expect("expiry moved");
}
