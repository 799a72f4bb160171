//! [`InMemoryStore`] as the workspace's stores: settings, the agent directory, the FAQ
//! catalog (unique shortcuts, the catalog cap) and customers' contact attributes.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::{InMemoryStore, lock};
use crate::Error;
use crate::domain::agent::{Agent, AgentProfile, AgentRef};
use crate::domain::faq::{CATALOG_MAX, CustomerContact, Faq, FaqDraft, FaqQuery};
use crate::domain::ids::TenantId;
use crate::domain::page::{Page, PageRequest};
use crate::domain::settings::TenantSettings;
use crate::ports::{
    AgentDirectory, AgentStore, CustomerContacts, FaqStore, SettingsReader, SettingsWriter,
};

/// (tenant, id).
type Slot = (String, String);

#[derive(Debug, Default)]
pub(super) struct Workspace {
    settings: HashMap<String, TenantSettings>,
    agents: BTreeMap<Slot, Agent>,
    faqs: BTreeMap<Slot, Faq>,
    contacts: HashMap<Slot, CustomerContact>,
}

fn slot(tenant: &TenantId, id: &str) -> Slot {
    (tenant.to_string(), id.to_owned())
}

impl InMemoryStore {
    /// Stores a customer's contact attributes (what the customer item would hold).
    pub fn put_customer_contact(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        contact: CustomerContact,
    ) {
        lock(&self.workspace)
            .contacts
            .insert(slot(tenant, customer_id), contact);
    }
}

impl SettingsReader for InMemoryStore {
    async fn settings(&self, tenant: &TenantId) -> Result<TenantSettings, Error> {
        Ok(lock(&self.workspace)
            .settings
            .get(tenant.as_str())
            .cloned()
            .unwrap_or_default())
    }
}

impl SettingsWriter for InMemoryStore {
    async fn put_settings(
        &self,
        tenant: &TenantId,
        settings: &TenantSettings,
        _at: DateTime<Utc>,
    ) -> Result<(), Error> {
        lock(&self.workspace)
            .settings
            .insert(tenant.to_string(), settings.clone());
        Ok(())
    }
}

impl AgentDirectory for InMemoryStore {
    async fn get_agent(&self, tenant: &TenantId, id: &str) -> Result<Option<Agent>, Error> {
        Ok(lock(&self.workspace).agents.get(&slot(tenant, id)).cloned())
    }
}

impl AgentStore for InMemoryStore {
    async fn put_agent(
        &self,
        tenant: &TenantId,
        id: &AgentRef,
        profile: &AgentProfile,
        at: DateTime<Utc>,
    ) -> Result<Agent, Error> {
        let mut w = lock(&self.workspace);
        let created_at = w
            .agents
            .get(&slot(tenant, id.as_str()))
            .map_or(at, |a| a.created_at);
        let agent = Agent {
            id: id.clone(),
            name: profile.name.clone(),
            role: profile.role,
            created_at,
        };
        w.agents.insert(slot(tenant, id.as_str()), agent.clone());
        Ok(agent)
    }

    async fn list_agents(
        &self,
        tenant: &TenantId,
        _page: &PageRequest,
    ) -> Result<Page<Agent>, Error> {
        let items = lock(&self.workspace)
            .agents
            .iter()
            .filter(|((t, _), _)| t == tenant.as_str())
            .map(|(_, a)| a.clone())
            .collect();
        Ok(Page {
            items,
            next_cursor: None,
        })
    }

    async fn delete_agent(&self, tenant: &TenantId, id: &AgentRef) -> Result<bool, Error> {
        Ok(lock(&self.workspace)
            .agents
            .remove(&slot(tenant, id.as_str()))
            .is_some())
    }
}

fn shortcut_taken(w: &Workspace, tenant: &TenantId, faq: &Faq) -> bool {
    faq.shortcut.is_some()
        && w.faqs.iter().any(|((t, id), other)| {
            t == tenant.as_str() && *id != faq.id && other.shortcut == faq.shortcut
        })
}

fn duplicate() -> Error {
    Error::conflict(
        "duplicate_shortcut",
        "another FAQ entry already uses this shortcut",
    )
}

impl FaqStore for InMemoryStore {
    async fn create_faq(&self, tenant: &TenantId, faq: &Faq) -> Result<(), Error> {
        let mut w = lock(&self.workspace);
        if shortcut_taken(&w, tenant, faq) {
            return Err(duplicate());
        }
        let count = w.faqs.keys().filter(|(t, _)| t == tenant.as_str()).count();
        if count >= CATALOG_MAX as usize {
            return Err(Error::conflict(
                "faq_limit_reached",
                "the FAQ catalog is full",
            ));
        }
        w.faqs.insert(slot(tenant, &faq.id), faq.clone());
        Ok(())
    }

    async fn replace_faq(
        &self,
        tenant: &TenantId,
        id: &str,
        draft: &FaqDraft,
        at: DateTime<Utc>,
    ) -> Result<Option<Faq>, Error> {
        let mut w = lock(&self.workspace);
        let Some(current) = w.faqs.get(&slot(tenant, id)).cloned() else {
            return Ok(None);
        };
        let replaced = Faq {
            title: draft.title.clone(),
            text: draft.text.clone(),
            shortcut: draft.shortcut.clone(),
            updated_at: at,
            ..current
        };
        if shortcut_taken(&w, tenant, &replaced) {
            return Err(duplicate());
        }
        w.faqs.insert(slot(tenant, id), replaced.clone());
        Ok(Some(replaced))
    }

    async fn delete_faq(&self, tenant: &TenantId, id: &str) -> Result<bool, Error> {
        Ok(lock(&self.workspace)
            .faqs
            .remove(&slot(tenant, id))
            .is_some())
    }

    async fn get_faq(&self, tenant: &TenantId, id: &str) -> Result<Option<Faq>, Error> {
        Ok(lock(&self.workspace).faqs.get(&slot(tenant, id)).cloned())
    }

    async fn search_faqs(
        &self,
        tenant: &TenantId,
        query: Option<&FaqQuery>,
        _page: &PageRequest,
    ) -> Result<Page<Faq>, Error> {
        let items = lock(&self.workspace)
            .faqs
            .iter()
            .filter(|((t, _), f)| t == tenant.as_str() && query.is_none_or(|q| q.matches(f)))
            .map(|(_, f)| f.clone())
            .collect();
        Ok(Page {
            items,
            next_cursor: None,
        })
    }
}

impl CustomerContacts for InMemoryStore {
    async fn customer_contact(
        &self,
        tenant: &TenantId,
        customer_id: &str,
    ) -> Result<Option<CustomerContact>, Error> {
        Ok(lock(&self.workspace)
            .contacts
            .get(&slot(tenant, customer_id))
            .cloned())
    }
}
