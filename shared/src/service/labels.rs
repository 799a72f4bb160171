//! The tenant's label catalog (SPEC §7): any agent lists it, admins add to it.

use chrono::{DateTime, Utc};

use crate::Error;
use crate::domain::auth::Principal;
use crate::domain::label::{Label, NewLabel};
use crate::domain::page::{Page, PageRequest};
use crate::ports::LabelStore;

/// Adds a label to the caller's catalog (admins only: the catalog is the tenant's
/// vocabulary, like its channels and templates).
///
/// # Errors
/// `403 forbidden` for an agent (before any read or write); `422 invalid_label`,
/// `422 invalid_color`; `409 duplicate_label`.
pub async fn create_label(
    store: &impl LabelStore,
    principal: &Principal,
    body: &NewLabel,
    now: DateTime<Utc>,
) -> Result<Label, Error> {
    principal.require_admin()?;
    let label = body.parse(now)?;
    store.create_label(&principal.tenant_id, &label).await?;
    Ok(label)
}

/// One page of the caller's catalog, by name (any agent).
///
/// # Errors
/// `400 invalid_cursor`.
pub async fn list_labels(
    store: &impl LabelStore,
    principal: &Principal,
    page: &PageRequest,
) -> Result<Page<Label>, Error> {
    store.list_labels(&principal.tenant_id, page).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::auth::Role;
    use crate::domain::ids::{AgentId, TenantId};
    use crate::domain::label::LabelName;
    use crate::fakes::InMemoryStore;
    use crate::ports::LabelCatalog;

    fn principal(tenant: &str, role: Role) -> Principal {
        Principal {
            agent_id: AgentId::parse("a1").unwrap(),
            tenant_id: TenantId::parse(tenant).unwrap(),
            role,
        }
    }

    fn body(name: &str, color: &str) -> NewLabel {
        NewLabel {
            name: name.into(),
            color: color.into(),
        }
    }

    fn page() -> PageRequest {
        PageRequest::parse(None, None).unwrap()
    }

    #[tokio::test]
    async fn an_admin_adds_a_label_once_and_every_agent_of_the_tenant_sees_it() {
        let store = InMemoryStore::default();
        let admin = principal("acme", Role::Admin);
        let label = create_label(&store, &admin, &body("vip", "#FFAA00"), Utc::now())
            .await
            .unwrap();
        assert_eq!(label.color.as_str(), "#ffaa00");
        let again = create_label(&store, &admin, &body("vip", "#000000"), Utc::now()).await;
        assert_eq!(again.unwrap_err().code(), "duplicate_label");

        let listed = list_labels(&store, &principal("acme", Role::Agent), &page())
            .await
            .unwrap();
        assert_eq!(listed.items, vec![label.clone()]);
        let name = LabelName::parse("vip").unwrap();
        let found = store.get_label(&admin.tenant_id, &name).await.unwrap();
        assert_eq!(found, Some(label));
        let other = principal("globex", Role::Agent);
        assert!(
            list_labels(&store, &other, &page())
                .await
                .unwrap()
                .items
                .is_empty()
        );
        assert_eq!(
            store.get_label(&other.tenant_id, &name).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn an_agent_may_not_add_a_label_and_bad_names_and_colors_are_refused() {
        let store = InMemoryStore::default();
        let agent = principal("acme", Role::Agent);
        let refused = create_label(&store, &agent, &body("vip", "#ffaa00"), Utc::now()).await;
        assert_eq!(refused.unwrap_err().code(), "forbidden");
        let admin = principal("acme", Role::Admin);
        for (name, color, code) in [
            ("VIP", "#ffaa00", "invalid_label"),
            ("vip", "red", "invalid_color"),
        ] {
            let err = create_label(&store, &admin, &body(name, color), Utc::now())
                .await
                .unwrap_err();
            assert_eq!(err.code(), code);
        }
        assert!(
            list_labels(&store, &admin, &page())
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }
}
