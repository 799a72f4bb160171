//! WhatsApp templates: created and deleted at Meta through the channel's business account;
//! the stored copy is what sends are checked against.

use chrono::{DateTime, Utc};

use crate::Error;
use crate::domain::auth::Principal;
use crate::domain::channel::ChannelType;
use crate::domain::ids::ChannelId;
use crate::domain::page::{Page, PageRequest};
use crate::domain::template::{
    NewTemplate, Template, TemplateCategory, TemplateStatus, template_id,
};
use crate::ports::{ChannelDirectory, ChannelSender, RoutedChannel, TemplateStore};

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

/// `POST /templates` (admin): creates the template at Meta and stores it with the status
/// Meta answered.
pub async fn create_template(
    store: &impl TemplateStore,
    directory: &impl ChannelDirectory,
    provider: &impl ChannelSender,
    principal: &Principal,
    new: NewTemplate,
    now: DateTime<Utc>,
) -> Result<Template, Error> {
    principal.require_admin()?;
    let (header_parameters, body_parameters) = new.validate()?;
    let (channel, waba) = whatsapp_channel(directory, principal, &new.channel_id).await?;
    let id = template_id(&channel.channel.id, &new.name, &new.language);
    if store
        .get_template(&principal.tenant_id, &id)
        .await?
        .is_some()
    {
        return Err(Error::conflict(
            "template_exists",
            "a template with this name and language exists on this channel",
        ));
    }
    let crate::ports::CreatedTemplate {
        id: provider_id,
        status,
        category,
    } = provider
        .create_template(&channel, &waba, &new.graph_body())
        .await?;
    let template = Template {
        id,
        channel_id: channel.channel.id.to_string(),
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
    provider
        .delete_template(
            &channel,
            &waba,
            &template.name,
            template.provider_template_id.as_deref(),
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
