//! Meta subscription handshake.

use integration_tests::{META_VERIFY_TOKEN, get};

#[tokio::test]
async fn meta_handshake_echoes_the_challenge_as_plain_text() {
    for provider in ["whatsapp", "messenger", "instagram"] {
        let path = format!(
            "/webhooks/{provider}?hub.mode=subscribe&hub.verify_token={META_VERIFY_TOKEN}&hub.challenge=1158201444"
        );
        let reply = get(&path, None).await;
        assert_eq!(reply.status, 200, "{provider}");
        assert_eq!(reply.text, "1158201444");
    }
}

#[tokio::test]
async fn meta_handshake_with_a_wrong_token_is_403() {
    let reply = get(
        "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        None,
    )
    .await;
    assert_eq!((reply.status, reply.code()), (403, "forbidden"));
    let reply = get("/webhooks/messenger", None).await;
    assert_eq!(reply.status, 403);
}
