//! Agent authentication and authorization at the edge and in the handler.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use integration_tests::local_stack::token::{AgentClaims, mint};
use integration_tests::{JWT_SECRET, get, token, unique_tenant};

#[tokio::test]
async fn health_needs_no_token() {
    let reply = get("/health", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["status"], "ok");
}

#[tokio::test]
async fn missing_token_is_401_with_an_error_code() {
    let reply = get("/channels", None).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.code(), "unauthorized");
}

#[tokio::test]
async fn token_signed_with_another_secret_is_401() {
    let forged = mint(
        "not-the-secret",
        &AgentClaims::new(&unique_tenant(), "admin", "a", 600),
    )
    .unwrap();
    assert_eq!(get("/channels", Some(&forged)).await.status, 401);
}

#[tokio::test]
async fn alg_none_token_is_401() {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "sub": "a", "tenant_id": unique_tenant(), "role": "admin",
        "exp": chrono_now() + 600
    });
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    for token in [format!("{header}.{body}."), format!("{header}.{body}")] {
        assert_eq!(get("/channels", Some(&token)).await.status, 401);
    }
}

#[tokio::test]
async fn expired_token_is_401() {
    let expired = mint(
        JWT_SECRET,
        &AgentClaims::new(&unique_tenant(), "admin", "a", -30),
    )
    .unwrap();
    assert_eq!(get("/channels", Some(&expired)).await.status, 401);
}

#[tokio::test]
async fn garbage_and_non_bearer_authorization_are_401() {
    assert_eq!(get("/channels", Some("not.a.jwt")).await.status, 401);
    let reply = integration_tests::call("GET", "/channels", None, None).await;
    assert_eq!(reply.status, 401);
}

#[tokio::test]
async fn token_without_tenant_is_401_and_unknown_role_403() {
    #[derive(serde::Serialize)]
    struct NoTenant {
        sub: String,
        role: String,
        exp: i64,
    }
    let no_tenant = mint(
        JWT_SECRET,
        &NoTenant {
            sub: "a".into(),
            role: "admin".into(),
            exp: chrono_now() + 600,
        },
    )
    .unwrap();
    assert_eq!(get("/channels", Some(&no_tenant)).await.status, 401);
    let root = token(&unique_tenant(), "root");
    let reply = get("/channels", Some(&root)).await;
    assert_eq!((reply.status, reply.code()), (403, "forbidden"));
}

#[tokio::test]
async fn unknown_route_is_404_json() {
    let reply = get("/nope", Some(&token(&unique_tenant(), "admin"))).await;
    assert_eq!((reply.status, reply.code()), (404, "not_found"));
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
