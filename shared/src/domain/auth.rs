//! Who is calling: the agent, its tenant and its role, read from verified token claims.
//!
//! The token itself is verified before the handler runs (API Gateway's JWT authorizer in
//! AWS, the dev server locally); this module only interprets the claims it carries.

use crate::Error;
use crate::domain::ids::{AgentId, TenantId};

/// What an agent may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Works conversations.
    Agent,
    /// Also configures the tenant: channels, templates, bots, settings.
    Admin,
}

impl Role {
    /// Parses the `role` claim.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "agent" => Some(Self::Agent),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// The authenticated caller of an agent route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`.
    pub agent_id: AgentId,
    /// The only tenant this caller can see.
    pub tenant_id: TenantId,
    /// What the caller may do.
    pub role: Role,
}

impl Principal {
    /// Reads `sub`, `tenant_id` and `role` from verified claims.
    ///
    /// Cognito ID tokens carry custom attributes as `custom:tenant_id` / `custom:role`, so
    /// those names are accepted too. Missing or malformed identity claims are a 401; a role
    /// this API does not know is a 403 (the caller is authenticated, just not allowed).
    pub fn from_claims<'a>(claim: impl Fn(&str) -> Option<&'a str>) -> Result<Self, Error> {
        let pick = |name: &str| claim(name).or_else(|| claim(&format!("custom:{name}")));
        let invalid = |what: &str| Error::Unauthorized(format!("the token has no valid {what}"));
        let agent_id = claim("sub")
            .and_then(|s| AgentId::parse(s).ok())
            .ok_or_else(|| invalid("sub claim"))?;
        let tenant_id = pick("tenant_id")
            .and_then(|s| TenantId::parse(s).ok())
            .ok_or_else(|| invalid("tenant_id claim"))?;
        let role = pick("role").ok_or_else(|| invalid("role claim"))?;
        let role = Role::parse(role)
            .ok_or_else(|| Error::Forbidden("the token's role may not use this API".into()))?;
        Ok(Self {
            agent_id,
            tenant_id,
            role,
        })
    }

    /// Succeeds only for admins (403 otherwise).
    pub fn require_admin(&self) -> Result<(), Error> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Agent => Err(Error::Forbidden("this action needs the admin role".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn principal(pairs: &[(&str, &str)]) -> Result<Principal, Error> {
        let claims: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Principal::from_claims(|name| claims.get(name).map(String::as_str))
    }

    #[test]
    fn claims_with_sub_tenant_and_role_make_a_principal() {
        let p = principal(&[("sub", "a1"), ("tenant_id", "acme"), ("role", "admin")]).unwrap();
        assert_eq!(p.tenant_id.as_str(), "acme");
        assert_eq!(p.role, Role::Admin);
        assert!(p.require_admin().is_ok());
    }

    #[test]
    fn cognito_custom_attribute_names_are_accepted() {
        let p = principal(&[
            ("sub", "a1"),
            ("custom:tenant_id", "acme"),
            ("custom:role", "agent"),
        ])
        .unwrap();
        assert_eq!(p.role, Role::Agent);
    }

    #[test]
    fn missing_tenant_is_unauthorized() {
        let err = principal(&[("sub", "a1"), ("role", "admin")]).unwrap_err();
        assert_eq!(err.code(), "unauthorized");
    }

    #[test]
    fn tenant_with_key_separator_is_unauthorized() {
        let err = principal(&[("sub", "a1"), ("tenant_id", "a#b"), ("role", "admin")]);
        assert_eq!(err.unwrap_err().code(), "unauthorized");
    }

    #[test]
    fn unknown_role_is_forbidden() {
        let err = principal(&[("sub", "a1"), ("tenant_id", "acme"), ("role", "root")]);
        assert_eq!(err.unwrap_err().code(), "forbidden");
    }

    #[test]
    fn agents_are_not_admins() {
        let p = principal(&[("sub", "a1"), ("tenant_id", "acme"), ("role", "agent")]).unwrap();
        assert_eq!(p.require_admin().unwrap_err().code(), "forbidden");
    }
}
