//! Public tokens on the other kind of route, beside the public rows of the tenancy matrix
//! (`tenancy_public.rs`, the pages opened with the other kind's token): a call's role
//! token posting the booking form, a booking invitation's token at `$connect`.

use integration_tests::{call, post_json, token};
use serde_json::json;

use crate::calls::join;
use crate::calls_hostile::{Room, no_server_panic};

/// A booking invitation for the room's customer: the token of its URL.
async fn invitation_token(room: &Room) -> String {
    let customer =
        shared::domain::conversation::customer_of_conversation(&room.conversation).unwrap();
    let reply = post_json(
        &format!("/customers/{customer}/booking-invitations"),
        Some(&token(&room.channel.tenant, "agent")),
        &json!({}),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let url = reply.body["url"].as_str().unwrap();
    url.rsplit('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_token_works_only_on_the_kind_of_route_it_was_made_for() {
    let room = Room::open().await;
    let invitation = invitation_token(&room).await;
    for call_token in [&room.agent_token, &room.customer_token] {
        let posted = reqwest::Client::new()
            .post(format!(
                "{}/b/{call_token}",
                integration_tests::stack().base_url
            ))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("slot_id=x")
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status().as_u16(), 404);
    }
    assert_eq!(join(&room.signaling, &invitation).await.err(), Some(403));
    // Each still works where it belongs.
    let own = call("GET", &format!("/b/{invitation}"), None, None).await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert!(join(&room.signaling, &room.customer_token).await.is_ok());
    no_server_panic();
}
