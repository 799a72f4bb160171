//! Every DynamoDB key of the chat table, and the names of key attributes.
//!
//! Keys are built here and nowhere else. The access patterns they serve are listed in
//! `docs/data-model.md`. Identifiers never contain `#` (see [`crate::domain::ids`]).

use crate::domain::ids::{ChannelId, TenantId};

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// GSI1: a tenant's conversations by last activity.
pub const GSI1: &str = "gsi1";
/// GSI1 partition key attribute.
pub const GSI1_PK: &str = "gsi1pk";
/// GSI1 sort key attribute.
pub const GSI1_SK: &str = "gsi1sk";
/// Item type attribute (`tenant`, `channel`, …), for humans reading the table.
pub const ENTITY: &str = "entity";
/// TTL attribute (epoch seconds). Deletion is late by up to 48 h: never rely on it.
pub const EXPIRES_AT: &str = "expires_at";

/// A primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// Partition key value.
    pub pk: String,
    /// Sort key value.
    pub sk: String,
}

fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

/// The tenant's own record.
pub fn tenant(tenant: &TenantId) -> Key {
    Key {
        pk: tenant_pk(tenant),
        sk: "TENANT".to_owned(),
    }
}

/// Sort key prefix of a tenant's channels.
pub const CHANNEL_PREFIX: &str = "CHANNEL#";

/// A channel (public fields), in its tenant's partition.
pub fn channel(tenant: &TenantId, id: &ChannelId) -> Key {
    Key {
        pk: tenant_pk(tenant),
        sk: format!("{CHANNEL_PREFIX}{id}"),
    }
}

/// A channel's credentials: a separate item so listing channels never reads secrets.
pub fn channel_credentials(tenant: &TenantId, id: &ChannelId) -> Key {
    Key {
        pk: tenant_pk(tenant),
        sk: format!("CREDENTIALS#{id}"),
    }
}

/// The deployment-wide claim on a provider account id; routes webhooks to the tenant.
pub fn channel_external_id(external_id: &str) -> Key {
    Key {
        pk: format!("EXTERNAL#{external_id}"),
        sk: "EXTERNAL".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_and_credentials_share_the_tenant_partition_but_not_the_prefix() {
        let t = TenantId::parse("acme").unwrap();
        let c = ChannelId::parse("01J").unwrap();
        let channel = channel(&t, &c);
        let creds = channel_credentials(&t, &c);
        assert_eq!(channel.pk, creds.pk);
        assert!(channel.sk.starts_with(CHANNEL_PREFIX));
        assert!(!creds.sk.starts_with(CHANNEL_PREFIX));
    }
}
