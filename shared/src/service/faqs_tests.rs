use chrono::Utc;

use super::*;
use crate::domain::agent::{AgentProfile, AgentRef};
use crate::domain::auth::Role;
use crate::domain::channel::ChannelType;
use crate::domain::faq::CustomerContact;
use crate::domain::ids::{AgentId, TenantId};
use crate::fakes::{InMemoryStore, channel, conversation};
use crate::ports::{AgentStore, SettingsWriter};

fn principal(tenant: &str, role: Role) -> Principal {
    Principal {
        agent_id: AgentId::parse("agent-1").unwrap(),
        tenant_id: TenantId::parse(tenant).unwrap(),
        role,
    }
}

fn input(title: &str, text: &str, shortcut: Option<&str>) -> FaqInput {
    FaqInput {
        title: title.into(),
        text: text.into(),
        shortcut: shortcut.map(str::to_owned),
    }
}

const TEXT: &str =
    "Hi {{customer.name}} ({{customer.phone}}), {{ agent.name }} from {{business.name}} here.";

/// A WhatsApp conversation of `tenant` with a customer named `name`: its id.
fn whatsapp_conversation(store: &InMemoryStore, tenant: &TenantId, name: Option<&str>) -> String {
    let routed = channel(tenant, ChannelType::Whatsapp, false);
    let mut c = conversation(&routed, "15551234567", Some(Utc::now()), 0);
    c.customer.name = name.map(str::to_owned);
    store.put_conversation(tenant, c.clone());
    store.put_customer_contact(
        tenant,
        &c.customer.id,
        CustomerContact {
            wa_id: Some("15551234567".into()),
            external_id: Some("15551234567".into()),
            channel_type: Some(ChannelType::Whatsapp),
            ..Default::default()
        },
    );
    c.id
}

async fn render_for(
    store: &InMemoryStore,
    p: &Principal,
    faq: &str,
    conversation: &str,
) -> Result<String, Error> {
    let request = RenderRequest {
        conversation_id: conversation.into(),
    };
    render_faq(store, p, faq, request).await.map(|r| r.text)
}

#[tokio::test]
async fn a_reply_is_filled_for_the_conversations_customer_the_agent_and_the_business() {
    let store = InMemoryStore::default();
    let admin = principal("acme", Role::Admin);
    let faq = create_faq(
        &store,
        &admin,
        input("Greeting", TEXT, Some("hi")),
        Utc::now(),
    )
    .await
    .unwrap();
    let conversation = whatsapp_conversation(&store, &admin.tenant_id, Some("Zoë"));
    let profile = AgentProfile {
        name: "Ana".into(),
        role: Role::Agent,
    };
    let id = AgentRef::parse("agent-1").unwrap();
    store
        .put_agent(&admin.tenant_id, &id, &profile, Utc::now())
        .await
        .unwrap();
    let settings = crate::domain::settings::TenantSettings {
        business_name: Some("Café Luna".into()),
        ..Default::default()
    };
    store
        .put_settings(&admin.tenant_id, &settings, Utc::now())
        .await
        .unwrap();

    let agent = principal("acme", Role::Agent);
    assert_eq!(
        render_for(&store, &agent, &faq.id, &conversation)
            .await
            .unwrap(),
        "Hi Zoë (+15551234567), Ana from Café Luna here."
    );
}

#[tokio::test]
async fn missing_values_render_empty_for_an_unnamed_customer_unknown_agent_and_no_settings() {
    let store = InMemoryStore::default();
    let admin = principal("acme", Role::Admin);
    let faq = create_faq(&store, &admin, input("Greeting", TEXT, None), Utc::now())
        .await
        .unwrap();
    let routed = channel(&admin.tenant_id, ChannelType::Messenger, false);
    let c = conversation(&routed, "psid-1", Some(Utc::now()), 0);
    store.put_conversation(&admin.tenant_id, c.clone());
    assert_eq!(
        render_for(&store, &admin, &faq.id, &c.id).await.unwrap(),
        "Hi  (),  from  here."
    );
}

#[tokio::test]
async fn another_tenants_entry_or_conversation_is_not_found() {
    let store = InMemoryStore::default();
    let acme = principal("acme", Role::Admin);
    let other = principal("other", Role::Admin);
    let faq = create_faq(&store, &acme, input("T", "x", None), Utc::now())
        .await
        .unwrap();
    let theirs = whatsapp_conversation(&store, &other.tenant_id, None);
    let ours = whatsapp_conversation(&store, &acme.tenant_id, None);

    let err = render_for(&store, &other, &faq.id, &theirs)
        .await
        .unwrap_err();
    assert_eq!(err, Error::NotFound { what: "faq" });
    let err = render_for(&store, &acme, &faq.id, &theirs)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::NotFound {
            what: "conversation"
        }
    );
    assert!(render_for(&store, &acme, &faq.id, &ours).await.is_ok());
    for bad in ["", "a#b", "cv x"] {
        let err = render_for(&store, &acme, &faq.id, bad).await.unwrap_err();
        assert_eq!(err.code(), "not_found", "{bad:?}");
    }
    let err = replace_faq(&store, &other, &faq.id, input("T", "y", None), Utc::now())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
    assert_eq!(
        delete_faq(&store, &other, &faq.id)
            .await
            .unwrap_err()
            .code(),
        "not_found"
    );
}

#[tokio::test]
async fn agents_read_and_render_but_only_admins_write() {
    let store = InMemoryStore::default();
    let agent = principal("acme", Role::Agent);
    let err = create_faq(&store, &agent, input("T", "{{bad}}", None), Utc::now())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        "forbidden",
        "the role is checked before the body"
    );
    assert_eq!(
        delete_faq(&store, &agent, "01J").await.unwrap_err().code(),
        "forbidden"
    );
    let page = PageRequest::parse(None, None).unwrap();
    assert!(list_faqs(&store, &agent, Some("x"), &page).await.is_ok());
}

#[tokio::test]
async fn a_shortcut_is_unique_per_tenant_and_freed_by_a_replace() {
    let store = InMemoryStore::default();
    let admin = principal("acme", Role::Admin);
    let first = create_faq(&store, &admin, input("A", "a", Some("hours")), Utc::now())
        .await
        .unwrap();
    let err = create_faq(&store, &admin, input("B", "b", Some("hours")), Utc::now())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "duplicate_shortcut");
    let other = principal("other", Role::Admin);
    assert!(
        create_faq(&store, &other, input("B", "b", Some("hours")), Utc::now())
            .await
            .is_ok()
    );
    replace_faq(
        &store,
        &admin,
        &first.id,
        input("A", "a", Some("open")),
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(
        create_faq(&store, &admin, input("B", "b", Some("hours")), Utc::now())
            .await
            .is_ok()
    );
}
