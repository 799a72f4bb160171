//! Read receipts (WhatsApp `status: read`, Messenger/Instagram `mark_seen`) sent by the
//! real provider client to the sandbox: accepted with Meta's answers, recorded in the
//! outbox, and failed on demand like a send.

use chrono::Utc;
use serde_json::{Value, json};
use shared::adapters::channels::{CALL_TIMEOUT, Channels, ProviderUrls};
use shared::domain::channel::{Channel, ChannelType, Credentials, Secret};
use shared::domain::ids::{ChannelId, TenantId};
use shared::ports::{ChannelSender, ReadReceipt, RoutedChannel};

use super::*;

async fn serve() -> (Sandbox, String) {
    let sandbox = Sandbox::new(SandboxConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(sandbox.clone().serve(listener));
    (sandbox, url)
}

fn client(url: &str) -> Channels {
    let urls = ProviderUrls {
        graph: format!("{url}/graph"),
        wechat: format!("{url}/wechat"),
    };
    Channels::new(urls, CALL_TIMEOUT).expect("client")
}

fn channel(kind: ChannelType, account: &str) -> RoutedChannel {
    RoutedChannel {
        channel: Channel {
            id: ChannelId::generate(),
            tenant_id: TenantId::parse("acme").expect("tenant"),
            channel_type: kind,
            external_id: account.to_owned(),
            name: "Test".into(),
            waba_id: None,
            human_agent: false,
            window_hours: 24,
            created_at: Utc::now(),
        },
        credentials: Credentials {
            access_token: Some(Secret::new("EAAG-test")),
            ..Credentials::default()
        },
    }
}

#[tokio::test]
async fn a_whatsapp_read_receipt_is_accepted_and_recorded_as_meta_answers_it() {
    let (sandbox, url) = serve().await;
    let receipt = client(&url)
        .mark_read(
            &channel(ChannelType::Whatsapp, "5001"),
            "15551234567",
            "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQTdCRjA",
        )
        .await;
    assert_eq!(receipt, ReadReceipt::Sent);
    let outbox = sandbox.outbox(Some("5001"), None);
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].api, Api::Whatsapp);
    assert_eq!(
        outbox[0].body,
        json!({"messaging_product": "whatsapp", "status": "read",
            "message_id": "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQTdCRjA"})
    );
    assert_eq!(outbox[0].response, json!({"success": true}));
    assert_eq!(
        outbox[0].provider_message_id, None,
        "a receipt is no message"
    );
}

#[tokio::test]
async fn messenger_and_instagram_mark_seen_goes_to_the_customer_on_the_account() {
    let (sandbox, url) = serve().await;
    let provider = client(&url);
    for (kind, account, customer) in [
        (ChannelType::Messenger, "page-5002", "psid-1"),
        (ChannelType::Instagram, "ig-5003", "igsid-1"),
    ] {
        let receipt = provider
            .mark_read(&channel(kind, account), customer, "m_ignored")
            .await;
        assert_eq!(receipt, ReadReceipt::Sent, "{kind:?}");
        let outbox = sandbox.outbox(Some(account), Some(customer));
        assert_eq!(outbox.len(), 1, "{kind:?}");
        assert_eq!(outbox[0].api, Api::Messenger);
        assert_eq!(
            outbox[0].body,
            json!({"recipient": {"id": customer}, "sender_action": "mark_seen"})
        );
        assert_eq!(outbox[0].response, json!({"recipient_id": customer}));
    }
}

#[tokio::test]
async fn a_failure_queued_for_the_account_fails_the_next_receipt_then_it_passes() {
    let (sandbox, url) = serve().await;
    let provider = client(&url);
    let wa = channel(ChannelType::Whatsapp, "5004");
    let fault = |v: Value| Fault::parse(&v).expect("fault");
    sandbox.fail_next(
        "5004",
        [
            fault(json!({"status": 500})),
            fault(json!({"status": 400, "code": 131009})),
        ],
    );
    let first = provider.mark_read(&wa, "1555", "wamid.A").await;
    assert!(matches!(first, ReadReceipt::Failed { .. }), "{first:?}");
    let second = provider.mark_read(&wa, "1555", "wamid.A").await;
    assert_eq!(
        second,
        ReadReceipt::Failed {
            code: "131009".into()
        }
    );
    assert_eq!(
        provider.mark_read(&wa, "1555", "wamid.A").await,
        ReadReceipt::Sent
    );
    let outbox = sandbox.outbox(Some("5004"), None);
    assert_eq!(
        outbox
            .iter()
            .map(|i| (i.status, i.injected))
            .collect::<Vec<_>>(),
        [(500, true), (400, true), (200, false)]
    );
}

#[tokio::test]
async fn wechat_has_no_receipt_and_calls_nothing() {
    let (sandbox, url) = serve().await;
    let receipt = client(&url)
        .mark_read(&channel(ChannelType::Wechat, "gh_5005"), "oUser", "1")
        .await;
    assert_eq!(receipt, ReadReceipt::NotSupported);
    assert!(sandbox.outbox(None, None).is_empty());
}

#[test]
fn receipts_meta_would_refuse_are_refused() {
    use super::graph::{validate_messenger, validate_whatsapp};
    for body in [
        json!({"messaging_product": "whatsapp", "status": "read"}),
        json!({"messaging_product": "whatsapp", "status": "delivered", "message_id": "wamid.A"}),
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.A", "to": "1"}),
    ] {
        assert!(validate_whatsapp(&body).is_err(), "{body}");
    }
    for body in [
        json!({"recipient": {"id": "1"}, "sender_action": "mark_read"}),
        json!({"recipient": {"id": "1"}, "sender_action": "mark_seen", "message": {"text": "x"}}),
        json!({"sender_action": "mark_seen"}),
    ] {
        assert!(validate_messenger(&body).is_err(), "{body}");
    }
}
