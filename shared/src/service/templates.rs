//! WhatsApp templates: created and deleted at Meta in a WhatsApp Business Account (through
//! one of its channels); the stored copy, keyed by the account, is what sends from any
//! phone number of the account are checked against.

use chrono::{DateTime, Utc};

use crate::Error;
use crate::domain::auth::Principal;
use crate::domain::channel::{Channel, ChannelType};
use crate::domain::ids::ChannelId;
use crate::domain::page::{Page, PageRequest};
use crate::domain::template::{
    NewTemplate, Template, TemplateCategory, TemplateStatus, legacy_template_id, template_id,
};
use crate::ports::{ChannelDirectory, ChannelSender, ChannelStore, RoutedChannel, TemplateStore};
use crate::service::within_provider_budget;

/// Most pages of channels read to find a tenant's business accounts (100 channels each).
const MAX_CHANNEL_PAGES: usize = 50;

async fn whatsapp_channel(
    directory: &impl ChannelDirectory,
    principal: &Principal,
    channel_id: &str,
) -> Result<(RoutedChannel, String), Error> {
    let id = ChannelId::parse(channel_id)?;
    let routed = match directory.by_id(&id).await? {
        Some(r) if r.channel.tenant_id == principal.tenant_id => r,
        _ => return Err(Error::validation("unknown_channel", "no such channel")),
    };
    if routed.channel.channel_type != ChannelType::Whatsapp {
        return Err(Error::validation(
            "template_not_supported",
            "message templates exist only for WhatsApp channels",
        ));
    }
    let waba = routed.channel.waba_id.clone().ok_or_else(|| {
        Error::validation(
            "waba_id_required",
            "the channel has no waba_id: templates live in the WhatsApp Business Account",
        )
    })?;
    Ok((routed, waba))
}

/// The channel a new template is created through: the one named, else the first WhatsApp
/// channel of the tenant's only business account.
async fn creating_channel(
    channels: &impl ChannelStore,
    directory: &impl ChannelDirectory,
    principal: &Principal,
    channel_id: Option<&str>,
) -> Result<(RoutedChannel, String), Error> {
    if let Some(id) = channel_id {
        return whatsapp_channel(directory, principal, id).await;
    }
    let mut accounts: Vec<(String, ChannelId)> = Vec::new();
    let mut page = PageRequest {
        limit: 100,
        cursor: None,
    };
    for _ in 0..MAX_CHANNEL_PAGES {
        let found = channels.list_channels(&principal.tenant_id, &page).await?;
        for c in found.items {
            if c.channel_type == ChannelType::Whatsapp
                && let Some(waba) = c.waba_id
                && !accounts.iter().any(|(w, _)| *w == waba)
            {
                accounts.push((waba, c.id));
            }
        }
        match found.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => break,
        }
    }
    match accounts.as_slice() {
        [] => Err(Error::validation(
            "waba_id_required",
            "no WhatsApp channel of this tenant has a waba_id: templates live in the WhatsApp Business Account",
        )),
        [(_, channel)] => whatsapp_channel(directory, principal, channel.as_str()).await,
        _ => Err(Error::validation(
            "channel_required",
            "the tenant has several WhatsApp Business Accounts: name one of its channels in channel_id",
        )),
    }
}

/// `POST /templates` (admin): creates the template at Meta in the business account of
/// `channel_id` (or of the tenant's only account) and stores it with the status Meta
/// answered, keyed by the account.
///
/// # Errors
///
/// `forbidden` (not an admin), `invalid_template`, `unknown_channel`,
/// `template_not_supported` (not WhatsApp), `waba_id_required` (no business account),
/// `channel_required` (no `channel_id` and several business accounts), `template_exists`
/// (409: the account has this name and language), the provider's refusal or no answer
/// within [`super::PROVIDER_BUDGET`] (502; Meta may have created it then: it shows in
/// WhatsApp Manager, and asking again is refused there as a duplicate).
pub async fn create_template(
    store: &(impl TemplateStore + ChannelStore),
    directory: &impl ChannelDirectory,
    provider: &impl ChannelSender,
    principal: &Principal,
    new: NewTemplate,
    now: DateTime<Utc>,
) -> Result<Template, Error> {
    principal.require_admin()?;
    let (header_parameters, body_parameters) = new.validate()?;
    let (channel, waba) =
        creating_channel(store, directory, principal, new.channel_id.as_deref()).await?;
    let id = template_id(&waba, &new.name, &new.language);
    if store
        .get_template(&principal.tenant_id, &id)
        .await?
        .is_some()
    {
        return Err(Error::conflict(
            "template_exists",
            "a template with this name and language exists in this WhatsApp Business Account",
        ));
    }
    let crate::ports::CreatedTemplate {
        id: provider_id,
        status,
        category,
    } = within_provider_budget(
        "Graph",
        provider.create_template(&channel, &waba, &new.graph_body()),
    )
    .await?;
    let template = Template {
        id,
        channel_id: channel.channel.id.to_string(),
        waba_id: Some(waba),
        category: category
            .and_then(|c| {
                serde_json::from_value::<TemplateCategory>(serde_json::Value::String(c)).ok()
            })
            .unwrap_or(new.category),
        name: new.name,
        language: new.language,
        status: TemplateStatus::parse(&status),
        components: new.components,
        header_parameters,
        body_parameters,
        provider_template_id: Some(provider_id),
        reason: None,
        created_at: now,
    };
    store.put_template(&principal.tenant_id, &template).await?;
    Ok(template)
}

/// The template a send from `channel` names: the one of the channel's business account,
/// else one stored before templates were keyed by account and created through this very
/// channel. `None` when there is neither.
///
/// # Errors
///
/// Store failures only.
pub async fn find_for_send(
    store: &impl TemplateStore,
    channel: &Channel,
    name: &str,
    language: &str,
) -> Result<Option<Template>, Error> {
    let tenant = &channel.tenant_id;
    if let Some(waba) = &channel.waba_id
        && let Some(found) = store
            .get_template(tenant, &template_id(waba, name, language))
            .await?
    {
        return Ok(Some(found));
    }
    let legacy = store
        .get_template(tenant, &legacy_template_id(&channel.id, name, language))
        .await?;
    Ok(legacy.filter(|t| t.channel_id == channel.id.as_str()))
}

/// `GET /templates`.
pub async fn list_templates(
    store: &impl TemplateStore,
    principal: &Principal,
    page: &PageRequest,
) -> Result<Page<Template>, Error> {
    store.list_templates(&principal.tenant_id, page).await
}

/// `DELETE /templates/{id}` (admin): deletes this language at Meta (by Meta's id and the
/// name), then here.
pub async fn delete_template(
    store: &impl TemplateStore,
    directory: &impl ChannelDirectory,
    provider: &impl ChannelSender,
    principal: &Principal,
    id: &str,
) -> Result<(), Error> {
    principal.require_admin()?;
    if id.is_empty() || id.len() > 64 {
        return Err(Error::NotFound { what: "template" });
    }
    let template = store
        .get_template(&principal.tenant_id, id)
        .await?
        .ok_or(Error::NotFound { what: "template" })?;
    let (channel, waba) = whatsapp_channel(directory, principal, &template.channel_id).await?;
    within_provider_budget(
        "Graph",
        provider.delete_template(
            &channel,
            &waba,
            &template.name,
            template.provider_template_id.as_deref(),
        ),
    )
    .await?;
    store.delete_template(&principal.tenant_id, id).await
}

/// Applies Meta's `message_template_status_update` decisions; returns how many templates
/// changed (decisions about templates nobody here created are ignored).
pub async fn apply_status_updates(
    store: &impl TemplateStore,
    updates: &[crate::domain::inbound::TemplateStatusUpdate],
) -> Result<usize, Error> {
    let mut applied = 0;
    for u in updates {
        // Meta sends review events; some are not statuses of their own.
        let status = match u.status.to_ascii_uppercase().as_str() {
            // Quality flagged: still sendable until Meta pauses it.
            "FLAGGED" => continue,
            "REINSTATED" | "UNARCHIVED" => TemplateStatus::Approved,
            "DELETED" | "PENDING_DELETION" | "ARCHIVED" | "LIMIT_EXCEEDED" => {
                TemplateStatus::Disabled
            }
            other => TemplateStatus::parse(other),
        };
        if store
            .set_template_status(&u.provider_template_id, status, u.reason.as_deref())
            .await?
        {
            applied += 1;
        }
    }
    Ok(applied)
}
