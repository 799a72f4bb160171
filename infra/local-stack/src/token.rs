//! Local agent tokens: HS256 JWTs signed with `DEV_JWT_SECRET`.
//!
//! In AWS, API Gateway's JWT authorizer verifies Cognito tokens; locally the dev server
//! verifies these instead and hands the handler the same claims.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

use crate::BoxError;

/// Claims of a local agent token.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AgentClaims {
    /// Agent id.
    pub sub: String,
    /// Tenant.
    pub tenant_id: String,
    /// `agent` or `admin`.
    pub role: String,
    /// Expiry, epoch seconds.
    pub exp: i64,
}

impl AgentClaims {
    /// Claims valid for `ttl_seconds` from now.
    pub fn new(tenant_id: &str, role: &str, sub: &str, ttl_seconds: i64) -> Self {
        Self {
            sub: sub.to_owned(),
            tenant_id: tenant_id.to_owned(),
            role: role.to_owned(),
            exp: chrono::Utc::now().timestamp() + ttl_seconds,
        }
    }
}

/// Signs claims with HS256.
pub fn mint(secret: &str, claims: &impl serde::Serialize) -> Result<String, BoxError> {
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// Verifies an HS256 token (signature, `exp` with no leeway, `sub` present) and returns its
/// claims. Any other algorithm, `none` included, is refused.
pub fn verify(secret: &str, token: &str) -> Result<Map<String, Value>, BoxError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.leeway = 0;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<Map<String, Value>>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )?;
    Ok(data.claims)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    #[test]
    fn a_minted_token_verifies_with_the_same_secret_only() {
        let token = mint("s", &AgentClaims::new("acme", "admin", "a1", 60)).unwrap();
        assert_eq!(verify("s", &token).unwrap()["tenant_id"], "acme");
        assert!(verify("other", &token).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let token = mint("s", &AgentClaims::new("acme", "admin", "a1", -5)).unwrap();
        assert!(verify("s", &token).is_err());
    }

    #[test]
    fn alg_none_tokens_are_refused() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let exp = chrono::Utc::now().timestamp() + 60;
        let body = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"a","tenant_id":"t","role":"admin","exp":{exp}}}"#
        ));
        assert!(verify("s", &format!("{header}.{body}.")).is_err());
    }
}
