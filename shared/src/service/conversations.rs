//! Reading conversations and messages (any agent of the tenant).

use chrono::{DateTime, Utc};

use crate::Error;
use crate::domain::auth::Principal;
use crate::domain::conversation::{Conversation, ConversationFilter, Message};
use crate::domain::page::{Page, PageRequest};
use crate::ports::ConversationReader;

/// A page of the caller's conversations, most recent activity first.
pub async fn list_conversations(
    reader: &impl ConversationReader,
    principal: &Principal,
    filter: &ConversationFilter,
    page: &PageRequest,
    now: DateTime<Utc>,
) -> Result<Page<Conversation>, Error> {
    let filter = filter.clone().for_agent(principal.agent_id.as_str());
    let states = reader
        .list_conversations(&principal.tenant_id, &filter, page, now)
        .await?;
    Ok(Page {
        items: states.items.into_iter().map(|s| s.view(now)).collect(),
        next_cursor: states.next_cursor,
    })
}

/// One conversation of the caller's tenant (404 for any other).
pub async fn get_conversation(
    reader: &impl ConversationReader,
    principal: &Principal,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Conversation, Error> {
    reader
        .get_conversation(&principal.tenant_id, id)
        .await?
        .map(|s| s.view(now))
        .ok_or(Error::NotFound {
            what: "conversation",
        })
}

/// A page of a conversation's messages, newest first (404 for another tenant's).
pub async fn list_messages(
    reader: &impl ConversationReader,
    principal: &Principal,
    conversation_id: &str,
    page: &PageRequest,
) -> Result<Page<Message>, Error> {
    if reader
        .get_conversation(&principal.tenant_id, conversation_id)
        .await?
        .is_none()
    {
        return Err(Error::NotFound {
            what: "conversation",
        });
    }
    reader
        .list_messages(&principal.tenant_id, conversation_id, page)
        .await
}
