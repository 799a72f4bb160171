//! `POST /conversations/{id}/read`: an agent has read a conversation (SPEC §7).
//!
//! The read state is ours: the unread count goes to 0 first, then the customer's latest
//! message is marked read at the provider (WhatsApp blue ticks, Messenger/Instagram
//! "seen"). A provider that refuses or cannot be reached does not undo the read: the answer
//! says what became of the receipt. Reading is not a state change that writes a system
//! message.

use serde::Serialize;

use crate::Error;
use crate::domain::auth::Principal;
use crate::domain::channel::ChannelType;
use crate::domain::conversation::ConversationState;
use crate::domain::ids::ChannelId;
use crate::ports::{ChannelDirectory, ChannelSender, ReadMarker, ReadReceipt, RoutedChannel};

/// What became of the read receipt at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderReceipt {
    /// The provider took it.
    Sent,
    /// The provider refused it or could not be reached (logged; the read stands).
    Failed,
    /// The channel has no read receipts (WeChat).
    NotSupported,
    /// The customer has not written yet: nothing to mark.
    None,
}

/// The answer of `POST /conversations/{id}/read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReadOutcome {
    /// The conversation's unread count now (always 0).
    pub unread_count: u32,
    /// What became of the receipt at the provider.
    pub provider_receipt: ProviderReceipt,
}

/// Marks a conversation of the caller's tenant read (any agent): `unread_count` 0 in one
/// conditional write, then the customer's latest message read at the provider.
///
/// # Errors
/// `not_found` (404) for an unknown id or another tenant's, with nothing written;
/// `internal_error` when the store fails. A provider failure is not an error
/// (`provider_receipt: "failed"`).
pub async fn mark_read(
    store: &impl ReadMarker,
    directory: &impl ChannelDirectory,
    provider: &impl ChannelSender,
    principal: &Principal,
    conversation_id: &str,
) -> Result<ReadOutcome, Error> {
    let conversation = store
        .mark_conversation_read(&principal.tenant_id, conversation_id)
        .await?
        .ok_or(Error::NotFound {
            what: "conversation",
        })?;
    let provider_receipt = receipt(directory, provider, principal, &conversation).await;
    Ok(ReadOutcome {
        unread_count: conversation.unread_count,
        provider_receipt,
    })
}

async fn receipt(
    directory: &impl ChannelDirectory,
    provider: &impl ChannelSender,
    principal: &Principal,
    conversation: &ConversationState,
) -> ProviderReceipt {
    let Some(latest) = conversation.last_inbound_provider_message_id.as_deref() else {
        return ProviderReceipt::None;
    };
    let channel_type = conversation.policy.channel_type;
    if channel_type == ChannelType::Wechat {
        return ProviderReceipt::NotSupported;
    }
    let failed = |code: &str| {
        tracing::warn!(
            tenant = %principal.tenant_id,
            conversation_id = %conversation.id,
            channel = channel_type.as_str(),
            code,
            "read receipt not sent"
        );
        ProviderReceipt::Failed
    };
    let channel = match routed_channel(directory, principal, &conversation.channel_id).await {
        Ok(Some(channel)) => channel,
        Ok(None) => return failed("channel_gone"),
        Err(e) => {
            tracing::error!(error = %e, "read receipt: channel lookup");
            return failed("channel_lookup");
        }
    };
    match provider
        .mark_read(&channel, &conversation.customer.external_id, latest)
        .await
    {
        ReadReceipt::Sent => ProviderReceipt::Sent,
        ReadReceipt::NotSupported => ProviderReceipt::NotSupported,
        ReadReceipt::Failed { code } => failed(&code),
    }
}

/// The conversation's channel with its credentials, if it is still the tenant's.
async fn routed_channel(
    directory: &impl ChannelDirectory,
    principal: &Principal,
    channel_id: &str,
) -> Result<Option<RoutedChannel>, Error> {
    let Ok(id) = ChannelId::parse(channel_id) else {
        return Ok(None);
    };
    Ok(directory
        .by_id(&id)
        .await?
        .filter(|r| r.channel.tenant_id == principal.tenant_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::auth::Role;
    use crate::domain::ids::{AgentId, TenantId};
    use crate::fakes::{self, InMemoryStore, ReadCall, RecordingSender};
    use crate::ports::ConversationReader;

    struct World {
        store: InMemoryStore,
        sender: RecordingSender,
        channel: RoutedChannel,
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    fn world(kind: ChannelType) -> World {
        let store = InMemoryStore::default();
        let channel = fakes::channel(&tenant("acme"), kind, false);
        store.add_channel(channel.clone());
        World {
            store,
            sender: RecordingSender::default(),
            channel,
        }
    }

    impl World {
        /// A conversation on `channel` with `unread` customer messages, the latest `latest`.
        fn conversation_on(
            &self,
            channel: &RoutedChannel,
            customer: &str,
            unread: u32,
            latest: Option<&str>,
        ) -> String {
            let mut state = fakes::conversation(channel, customer, None, 0);
            state.unread_count = unread;
            state.last_inbound_provider_message_id = latest.map(str::to_owned);
            let id = state.id.clone();
            self.store
                .put_conversation(&channel.channel.tenant_id, state);
            id
        }

        fn conversation(&self, customer: &str, unread: u32, latest: Option<&str>) -> String {
            self.conversation_on(&self.channel.clone(), customer, unread, latest)
        }

        async fn read(&self, tenant_name: &str, id: &str) -> Result<ReadOutcome, Error> {
            let principal = Principal {
                agent_id: AgentId::parse("agent-1").unwrap(),
                tenant_id: tenant(tenant_name),
                role: Role::Agent,
            };
            mark_read(&self.store, &self.store, &self.sender, &principal, id).await
        }

        async fn unread(&self, id: &str) -> u32 {
            self.store
                .get_conversation(&tenant("acme"), id)
                .await
                .unwrap()
                .unwrap()
                .unread_count
        }
    }

    #[tokio::test]
    async fn reading_a_whatsapp_conversation_zeroes_it_and_marks_the_latest_wamid_read() {
        let w = world(ChannelType::Whatsapp);
        let id = w.conversation("15551234567", 2, Some("wamid.LATEST"));
        let outcome = w.read("acme", &id).await.unwrap();
        assert_eq!(
            outcome,
            ReadOutcome {
                unread_count: 0,
                provider_receipt: ProviderReceipt::Sent
            }
        );
        assert_eq!(w.unread(&id).await, 0);
        assert_eq!(
            w.sender.reads(),
            [ReadCall {
                channel_id: w.channel.channel.id.to_string(),
                customer: "15551234567".into(),
                provider_message_id: "wamid.LATEST".into(),
            }]
        );
    }

    #[tokio::test]
    async fn a_messenger_read_goes_to_the_customer_psid() {
        let w = world(ChannelType::Messenger);
        let id = w.conversation("24011234567890", 1, Some("m_1"));
        let outcome = w.read("acme", &id).await.unwrap();
        assert_eq!(outcome.provider_receipt, ProviderReceipt::Sent);
        assert_eq!(w.sender.reads()[0].customer, "24011234567890");
    }

    #[tokio::test]
    async fn a_refused_receipt_still_reads_the_conversation() {
        let w = world(ChannelType::Whatsapp);
        let id = w.conversation("15551234567", 3, Some("wamid.OLD"));
        w.sender.answer_reads([ReadReceipt::Failed {
            code: "131009".into(),
        }]);
        let outcome = w.read("acme", &id).await.unwrap();
        assert_eq!(
            outcome,
            ReadOutcome {
                unread_count: 0,
                provider_receipt: ProviderReceipt::Failed
            }
        );
        assert_eq!(w.unread(&id).await, 0);
    }

    #[tokio::test]
    async fn a_failed_receipt_is_logged_with_its_code_and_no_customer_data() {
        let captured = fakes::CapturedLogs::default();
        let sink = captured.clone();
        let _guard = tracing::subscriber::set_default(crate::telemetry::json_subscriber(
            "info",
            move || sink.clone(),
        ));
        let w = world(ChannelType::Whatsapp);
        let id = w.conversation("15551234567", 1, Some("wamid.SECRET"));
        w.sender.answer_reads([ReadReceipt::Failed {
            code: "131047".into(),
        }]);
        w.read("acme", &id).await.unwrap();
        let line = captured
            .lines()
            .into_iter()
            .find(|l| l["fields"]["message"] == "read receipt not sent")
            .expect("the failure is logged");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["fields"]["code"], "131047");
        assert_eq!(line["fields"]["channel"], "whatsapp");
        assert_eq!(line["fields"]["conversation_id"], id.as_str());
        let text = line.to_string();
        assert!(!text.contains("15551234567") && !text.contains("wamid.SECRET"));
    }

    #[tokio::test]
    async fn wechat_has_no_receipt_and_is_not_called() {
        let w = world(ChannelType::Wechat);
        let id = w.conversation("oUser1", 1, Some("24012345678"));
        let outcome = w.read("acme", &id).await.unwrap();
        assert_eq!(outcome.provider_receipt, ProviderReceipt::NotSupported);
        assert_eq!(w.unread(&id).await, 0);
        assert!(w.sender.reads().is_empty());
    }

    #[tokio::test]
    async fn a_conversation_the_customer_never_wrote_in_has_nothing_to_mark() {
        let w = world(ChannelType::Whatsapp);
        let id = w.conversation("15551234567", 0, None);
        let outcome = w.read("acme", &id).await.unwrap();
        assert_eq!(outcome.provider_receipt, ProviderReceipt::None);
        assert!(w.sender.reads().is_empty());
    }

    #[tokio::test]
    async fn another_tenants_or_an_unknown_conversation_is_404_and_untouched() {
        let w = world(ChannelType::Whatsapp);
        let id = w.conversation("15551234567", 2, Some("wamid.A"));
        for (tenant_name, conversation) in [("globex", id.as_str()), ("acme", "cv_nope")] {
            let err = w.read(tenant_name, conversation).await.unwrap_err();
            assert_eq!(err.code(), "not_found");
        }
        assert_eq!(w.unread(&id).await, 2);
        assert!(w.sender.reads().is_empty());
    }

    #[tokio::test]
    async fn a_channel_gone_from_the_directory_is_a_failed_receipt_not_an_error() {
        let w = world(ChannelType::Instagram);
        let gone = fakes::channel(&tenant("acme"), ChannelType::Instagram, false);
        let id = w.conversation_on(&gone, "1789", 1, Some("aWdfZAG"));
        let outcome = w.read("acme", &id).await.unwrap();
        assert_eq!(
            outcome,
            ReadOutcome {
                unread_count: 0,
                provider_receipt: ProviderReceipt::Failed
            }
        );
        assert!(w.sender.reads().is_empty());
    }
}
