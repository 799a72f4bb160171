//! The send rules as sentences, over the in-memory fakes: no emulator, no network.

use chrono::{DateTime, Duration as Span, Utc};
use serde_json::json;

use super::*;
use crate::domain::media::{MediaKind, MediaRecord, MediaStatus};
use crate::domain::message::DeliveryStatus;
use crate::domain::outbound::{Attempt, RetryPolicy};
use crate::domain::system::SystemEvent;
use crate::fakes::{self, InMemoryStore, MemoryObjects, RecordingSender};

type Service = Outbound<InMemoryStore, InMemoryStore, RecordingSender, MemoryObjects>;

struct World {
    service: Service,
    store: InMemoryStore,
    sender: RecordingSender,
    tenant: TenantId,
    now: DateTime<Utc>,
    /// What the service's clock reads (the world's time until moved).
    clock: std::sync::Arc<std::sync::Mutex<DateTime<Utc>>>,
}

fn world() -> World {
    let store = InMemoryStore::default();
    let sender = RecordingSender::default();
    let settings = OutboundSettings {
        retry: RetryPolicy {
            base: Duration::from_millis(1),
            ..RetryPolicy::default()
        },
        ..OutboundSettings::default()
    };
    let now = DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let clock = std::sync::Arc::new(std::sync::Mutex::new(now));
    let reads = clock.clone();
    World {
        service: Outbound::new(
            store.clone(),
            store.clone(),
            sender.clone(),
            MemoryObjects::default(),
            settings,
        )
        .with_clock(Clock::new(move || *reads.lock().unwrap())),
        store,
        sender,
        tenant: TenantId::parse("acme").unwrap(),
        now,
        clock,
    }
}

impl World {
    /// Moves the service's clock to `later` after the world's time.
    fn clock_at(&self, later: Span) {
        *self.clock.lock().unwrap() = self.now + later;
    }

    /// A conversation on a new channel whose customer wrote `hours` ago.
    fn conversation(
        &self,
        channel_type: ChannelType,
        human_agent: bool,
        hours: i64,
        replies: u32,
    ) -> ConversationId {
        let channel = fakes::channel(&self.tenant, channel_type, human_agent);
        let state = fakes::conversation(
            &channel,
            "15551234567",
            Some(self.now - Span::hours(hours)),
            replies,
        );
        self.store.add_channel(channel);
        let id = ConversationId::parse(&state.id).unwrap();
        self.store.put_conversation(&self.tenant, state);
        id
    }

    async fn send(
        &self,
        actor: &Actor,
        conversation: &ConversationId,
        body: serde_json::Value,
        key: Option<&str>,
    ) -> Result<Vec<Message>, Error> {
        self.send_later(actor, conversation, body, key, Span::zero())
            .await
    }

    /// [`World::send`], `later` after the world's time.
    async fn send_later(
        &self,
        actor: &Actor,
        conversation: &ConversationId,
        body: serde_json::Value,
        key: Option<&str>,
        later: Span,
    ) -> Result<Vec<Message>, Error> {
        self.service
            .send(
                actor,
                &self.tenant,
                conversation,
                request(&body, key),
                self.now + later,
            )
            .await
    }

    /// [`Outbound::send_settled`] (as a schedule's fire sends), `later` after the world's
    /// time.
    async fn send_settled_later(
        &self,
        conversation: &ConversationId,
        body: serde_json::Value,
        key: &str,
        later: Span,
    ) -> Result<Vec<Message>, Error> {
        self.service
            .send_settled(
                &agent(),
                &self.tenant,
                conversation,
                request(&body, Some(key)),
                self.now + later,
            )
            .await
    }

    /// A bot turn's send (conditional on the bot state version `version`), at `now`.
    async fn send_bot_turn(
        &self,
        conversation: &ConversationId,
        key: &str,
        version: u64,
        now: DateTime<Utc>,
    ) -> Result<Vec<Message>, Error> {
        let message = serde_json::from_value(hi()).unwrap();
        let request = SendRequest::new(message, Some(IdempotencyKey::parse(key).unwrap()))
            .for_bot_turn(version);
        self.service
            .send(&bot(), &self.tenant, conversation, request, now)
            .await
    }

    /// A send by `actor` whose invocation ends while its provider call is on its way
    /// (accepted, never settled).
    async fn send_interrupted(
        &self,
        actor: &Actor,
        conversation: &ConversationId,
        body: serde_json::Value,
        key: &str,
    ) {
        self.sender.hold_next();
        let send = self.send(actor, conversation, body, Some(key));
        let ended = tokio::time::timeout(Duration::from_millis(50), send).await;
        assert!(ended.is_err(), "the held send never ends");
    }

    fn stored(&self, conversation: &ConversationId) -> Vec<Message> {
        self.store.messages_of(&self.tenant, conversation.as_str())
    }
}

/// A request as the agents' route makes it of `body` (its hash is the body's text's).
fn request(body: &serde_json::Value, key: Option<&str>) -> SendRequest {
    SendRequest {
        message: serde_json::from_value(body.clone()).unwrap(),
        idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
        body_hash: digest(body.to_string().as_bytes()),
        bot_version: None,
    }
}

fn agent() -> Actor {
    Actor::agent("agent-1")
}

fn bot() -> Actor {
    Actor::Bot { id: "bot-1".into() }
}

fn hi() -> serde_json::Value {
    json!({"kind": "text", "text": "hi"})
}

fn code(result: Result<Vec<Message>, Error>) -> &'static str {
    result.map(|_| ()).unwrap_err().code()
}

#[tokio::test]
async fn whatsapp_free_form_goes_out_inside_24_hours_and_needs_a_template_after() {
    let w = world();
    let open = w.conversation(ChannelType::Whatsapp, false, 23, 0);
    let sent = w.send(&agent(), &open, hi(), None).await.unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(w.stored(&open)[0].status, DeliveryStatus::Sent);
    let closed = w.conversation(ChannelType::Whatsapp, false, 25, 0);
    assert_eq!(
        code(w.send(&agent(), &closed, hi(), None).await),
        "template_required"
    );
    assert!(
        w.stored(&closed).is_empty(),
        "nothing recorded on a refusal"
    );
    assert_eq!(w.sender.sent().len(), 1, "nothing reached the provider");
}

#[tokio::test]
async fn messenger_tags_an_agents_late_reply_human_agent_and_refuses_a_bots() {
    let w = world();
    let late = w.conversation(ChannelType::Messenger, true, 30, 0);
    w.send(&agent(), &late, hi(), None).await.unwrap();
    assert_eq!(w.sender.sent()[0].delivery, Delivery::HumanAgent);
    assert_eq!(
        code(w.send(&bot(), &late, hi(), None).await),
        "window_closed"
    );
    let fresh = w.conversation(ChannelType::Messenger, true, 1, 0);
    w.send(&bot(), &fresh, hi(), None).await.unwrap();
    assert_eq!(w.sender.sent()[1].delivery, Delivery::Response);
    let gone = w.conversation(ChannelType::Messenger, true, 24 * 7 + 1, 0);
    assert_eq!(
        code(w.send(&agent(), &gone, hi(), None).await),
        "window_closed"
    );
}

#[tokio::test]
async fn instagram_has_the_human_agent_band_only_with_the_channel_flag() {
    let w = world();
    let without = w.conversation(ChannelType::Instagram, false, 30, 0);
    assert_eq!(
        code(w.send(&agent(), &without, hi(), None).await),
        "window_closed"
    );
    let with = w.conversation(ChannelType::Instagram, true, 30, 0);
    w.send(&agent(), &with, hi(), None).await.unwrap();
    assert_eq!(w.sender.sent()[0].delivery, Delivery::HumanAgent);
}

#[tokio::test]
async fn wechat_takes_five_replies_per_customer_message_counting_every_part() {
    let w = world();
    let c = w.conversation(ChannelType::Wechat, false, 1, 3);
    w.send(&agent(), &c, hi(), None).await.unwrap();
    // One left: a send of two parts (an image then its caption) does not fit.
    w.store
        .put_media(media("m1", MediaKind::Image, "image/jpeg", &w.tenant));
    let two = json!({"kind": "image", "media_id": "m1", "caption": "look"});
    assert_eq!(code(w.send(&agent(), &c, two, None).await), "window_closed");
    w.send(&agent(), &c, hi(), None).await.unwrap();
    assert_eq!(
        code(w.send(&agent(), &c, hi(), None).await),
        "window_closed"
    );
    let state = w.store.conversation(&w.tenant, c.as_str()).unwrap();
    assert_eq!(state.replies_since_inbound, 5);
    assert_eq!(w.sender.sent().len(), 2);
}

#[tokio::test]
async fn a_repeated_idempotency_key_sends_once_and_answers_the_same_messages() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 1, 0);
    let first = w.send(&agent(), &c, hi(), Some("k-1")).await.unwrap();
    let again = w.send(&agent(), &c, hi(), Some("k-1")).await.unwrap();
    assert_eq!(first[0].id, again[0].id);
    assert_eq!(w.sender.sent().len(), 1);
    let other = json!({"kind": "text", "text": "something else"});
    assert_eq!(
        code(w.send(&agent(), &c, other, Some("k-1")).await),
        "idempotency_key_reused"
    );
}

#[tokio::test]
async fn a_caption_the_channel_cannot_carry_goes_as_a_second_message_after_the_media() {
    let w = world();
    let c = w.conversation(ChannelType::Messenger, true, 1, 0);
    w.store
        .put_media(media("m1", MediaKind::Image, "image/jpeg", &w.tenant));
    let body = json!({"kind": "image", "media_id": "m1", "caption": "our menu"});
    let messages = w.send(&agent(), &c, body, None).await.unwrap();
    assert_eq!(messages.len(), 2);
    let sent = w.sender.sent();
    assert!(
        sent[0]
            .content
            .starts_with("image:https://objects.test/clean/")
    );
    assert_eq!(sent[1].content, "our menu");
}

#[tokio::test]
async fn wechat_media_is_uploaded_then_sent_by_its_id() {
    let w = world();
    let c = w.conversation(ChannelType::Wechat, false, 1, 0);
    w.store
        .put_media(media("v1", MediaKind::Audio, "audio/amr", &w.tenant));
    w.service
        .objects
        .put("clean/acme/v1", b"#!AMR\n\x04".to_vec());
    let body = json!({"kind": "audio", "media_id": "v1"});
    w.send(&agent(), &c, body, None).await.unwrap();
    assert_eq!(w.sender.uploads(), vec!["v1.amr".to_owned()]);
    assert_eq!(w.sender.sent()[0].content, "audio:upload-v1.amr");
}

#[tokio::test]
async fn transient_failures_are_retried_and_a_permanent_one_is_failed_with_a_system_message() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 1, 0);
    let busy = || Attempt::Retry {
        code: "130429".into(),
        after: None,
    };
    w.sender.answer([busy(), busy()]);
    w.send(&agent(), &c, hi(), None).await.unwrap();
    assert_eq!(w.sender.sent().len(), 3);
    assert_eq!(w.stored(&c)[0].status, DeliveryStatus::Sent);

    let gone = crate::domain::message::DeliveryError::explain("131026", None);
    w.sender.answer([Attempt::Failed(gone)]);
    let failed = w.send(&agent(), &c, hi(), None).await.unwrap();
    let stored = w.stored(&c);
    let message = stored.iter().find(|m| m.id == failed[0].id).unwrap();
    assert_eq!(message.status, DeliveryStatus::Failed);
    assert_eq!(message.error.as_ref().unwrap().code, "131026");
    let notes: Vec<_> = stored
        .iter()
        .filter(|m| m.event == Some(SystemEvent::DeliveryFailed))
        .collect();
    assert_eq!(notes.len(), 1, "one system message for the one failure");
    assert_eq!(notes[0].actor, Some(Actor::System));
    assert_eq!(notes[0].error.as_ref().unwrap().code, "131026");
}

#[tokio::test]
async fn an_unknown_outcome_is_never_sent_again_and_stays_pending() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 1, 0);
    w.sender.answer([Attempt::Unknown]);
    w.send(&agent(), &c, hi(), None).await.unwrap();
    assert_eq!(w.sender.sent().len(), 1);
    let stored = w.stored(&c);
    assert_eq!(stored[0].status, DeliveryStatus::Pending);
    assert_eq!(stored[0].error.as_ref().unwrap().code, "outcome_unknown");
}

#[tokio::test]
async fn a_send_its_invocation_left_unsettled_is_sent_by_a_repeat_once_its_budget_is_over() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 1, 0);
    w.send_interrupted(&agent(), &c, hi(), "k-crash").await;
    assert_eq!(w.stored(&c)[0].status, DeliveryStatus::Pending);
    assert!(w.sender.sent().is_empty(), "the provider never got it");
    // A repeat while the first send could still be running answers it as it is.
    let early = w
        .send_later(&agent(), &c, hi(), Some("k-crash"), Span::seconds(30))
        .await
        .unwrap();
    assert_eq!(early[0].status, DeliveryStatus::Pending);
    assert!(w.sender.sent().is_empty());
    // After the budget and the margin, the repeat takes it over and sends it, as its actor.
    let late = w
        .send_later(&agent(), &c, hi(), Some("k-crash"), Span::seconds(90))
        .await
        .unwrap();
    assert_eq!(w.sender.sent().len(), 1);
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].id, early[0].id, "the same message, not a new one");
    assert_eq!(late[0].status, DeliveryStatus::Sent);
    assert_eq!(late[0].actor, Some(agent()));
    let again = w
        .send_later(&agent(), &c, hi(), Some("k-crash"), Span::minutes(10))
        .await
        .unwrap();
    assert_eq!(again[0].status, DeliveryStatus::Sent);
    assert_eq!(w.sender.sent().len(), 1, "sent once");
    assert_eq!(w.stored(&c).len(), 1);
}

#[tokio::test]
async fn repeats_racing_for_an_unsettled_send_send_it_once() {
    let w = world();
    let c = w.conversation(ChannelType::Messenger, false, 1, 0);
    w.send_interrupted(&agent(), &c, hi(), "k-race").await;
    let later = Span::minutes(2);
    let ada = agent();
    let (a, b, d) = tokio::join!(
        w.send_later(&ada, &c, hi(), Some("k-race"), later),
        w.send_later(&ada, &c, hi(), Some("k-race"), later),
        w.send_later(&ada, &c, hi(), Some("k-race"), later),
    );
    for answer in [a, b, d] {
        assert_eq!(answer.unwrap().len(), 1);
    }
    assert_eq!(w.sender.sent().len(), 1);
    assert_eq!(w.stored(&c)[0].status, DeliveryStatus::Sent);
}

#[tokio::test]
async fn an_unsettled_send_the_window_no_longer_allows_fails_with_a_system_message() {
    let w = world();
    // WeChat: the send reserved replies; resuming it does not count them twice.
    let c = w.conversation(ChannelType::Wechat, false, 1, 3);
    w.send_interrupted(&agent(), &c, hi(), "k-wechat").await;
    let resumed = w
        .send_later(&agent(), &c, hi(), Some("k-wechat"), Span::minutes(2))
        .await
        .unwrap();
    assert_eq!(resumed[0].status, DeliveryStatus::Sent, "{resumed:?}");
    // A bot's Messenger send whose customer, it turns out, wrote 47 hours before.
    let late = w.conversation(ChannelType::Messenger, true, 23, 0);
    w.send_interrupted(&bot(), &late, hi(), "k-late").await;
    // The window when it is taken over is what counts (closed for a bot past 24 h).
    let mut state = w.store.conversation(&w.tenant, late.as_str()).unwrap();
    state.last_inbound_at = Some(w.now - Span::hours(47));
    w.store.put_conversation(&w.tenant, state);
    let refused = w
        .send_later(&bot(), &late, hi(), Some("k-late"), Span::minutes(2))
        .await
        .unwrap();
    assert_eq!(refused[0].status, DeliveryStatus::Failed);
    assert_eq!(refused[0].error.as_ref().unwrap().code, "window_closed");
    let notes = w.stored(&late).len();
    assert_eq!(notes, 2, "the message and its delivery_failed note");
}

#[tokio::test]
async fn an_unknown_outcome_is_not_taken_over_by_a_late_repeat() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 1, 0);
    w.sender.answer([Attempt::Unknown]);
    w.send(&agent(), &c, hi(), Some("k-unknown")).await.unwrap();
    let later = w
        .send_later(&agent(), &c, hi(), Some("k-unknown"), Span::minutes(5))
        .await
        .unwrap();
    assert_eq!(later[0].status, DeliveryStatus::Pending);
    assert_eq!(w.sender.sent().len(), 1, "never sent again");
}

#[tokio::test]
async fn every_message_records_the_actor_that_sent_it() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 1, 0);
    let schedule = Actor::Schedule {
        id: "sm-1".into(),
        on_behalf_of: "agent-1".into(),
    };
    let answered = w.send(&schedule, &c, hi(), None).await.unwrap();
    assert_eq!(answered[0].actor, Some(schedule.clone()));
    assert_eq!(w.stored(&c)[0].actor, Some(schedule));
}

#[tokio::test]
async fn another_tenants_conversation_is_not_found() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 1, 0);
    let other = TenantId::parse("globex").unwrap();
    let request = SendRequest::new(serde_json::from_value(hi()).unwrap(), None);
    let err = w
        .service
        .send(&agent(), &other, &c, request, w.now)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
    assert!(w.sender.sent().is_empty());
}

#[tokio::test]
async fn a_sender_without_an_http_body_repeating_its_key_sends_once() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 1, 0);
    let key = || Some(IdempotencyKey::parse("bot-turn-wamid.1").unwrap());
    let message = || serde_json::from_value::<SendMessage>(hi()).unwrap();
    let first = SendRequest::new(message(), key());
    let again = SendRequest::new(message(), key());
    assert_eq!(first.body_hash, again.body_hash);
    let a = w
        .service
        .send(&bot(), &w.tenant, &c, first, w.now)
        .await
        .unwrap();
    let b = w
        .service
        .send(&bot(), &w.tenant, &c, again, w.now)
        .await
        .unwrap();
    assert_eq!(a[0].id, b[0].id);
    assert_eq!(w.sender.sent().len(), 1);
    let other = serde_json::from_value(json!({"kind": "text", "text": "bye"})).unwrap();
    let err = w
        .service
        .send(&bot(), &w.tenant, &c, SendRequest::new(other, key()), w.now)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "idempotency_key_reused");
}

#[tokio::test]
async fn a_wa_id_whatsapp_answered_for_another_number_is_linked_to_the_conversation() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 1, 0);
    // The conversation is keyed by 5511912345678; WhatsApp resolved it without the ninth
    // digit.
    w.sender
        .answer([Attempt::Accepted(crate::domain::outbound::Receipt {
            id: Some("wamid.1".into()),
            recipient: Some("551112345678".into()),
        })]);
    w.send(&agent(), &c, hi(), None).await.unwrap();
    let channel = c.channel().unwrap();
    assert_eq!(
        w.store.alias_of(&channel, "551112345678").as_deref(),
        Some("15551234567")
    );
    // The same number answered: nothing to link.
    w.sender
        .answer([Attempt::Accepted(crate::domain::outbound::Receipt {
            id: Some("wamid.2".into()),
            recipient: Some("15551234567".into()),
        })]);
    w.send(&agent(), &c, hi(), None).await.unwrap();
    assert_eq!(w.store.alias_of(&channel, "15551234567"), None);
}

#[tokio::test]
async fn a_whatsapp_customer_known_only_by_a_username_id_is_refused_not_sent_to() {
    let w = world();
    let channel = fakes::channel(&w.tenant, ChannelType::Whatsapp, false);
    let state = fakes::conversation(
        &channel,
        "US.13491208655302741918",
        Some(w.now - Span::hours(1)),
        0,
    );
    w.store.add_channel(channel);
    let c = ConversationId::parse(&state.id).unwrap();
    w.store.put_conversation(&w.tenant, state);
    assert_eq!(
        code(w.send(&agent(), &c, hi(), None).await),
        "recipient_without_phone"
    );
    assert!(w.sender.sent().is_empty());
    assert!(w.stored(&c).is_empty());
}

fn media(id: &str, kind: MediaKind, mime: &str, tenant: &TenantId) -> MediaRecord {
    let ext = mime.rsplit('/').next().unwrap_or("bin");
    MediaRecord {
        id: id.into(),
        tenant_id: tenant.clone(),
        status: MediaStatus::Valid,
        filename: format!("{id}.{ext}"),
        mime_type: mime.into(),
        kind,
        size: 1000,
        sha256: None,
        reason_code: None,
        reason: None,
        created_at: Utc::now(),
        inbound: false,
        version: None,
    }
}

#[tokio::test]
async fn a_long_caption_on_a_channel_that_sends_it_as_text_is_accepted() {
    let w = world();
    let c = w.conversation(ChannelType::Messenger, true, 1, 0);
    w.store
        .put_media(media("m1", MediaKind::Image, "image/jpeg", &w.tenant));
    // 1,500 characters: over WhatsApp's caption limit, within Messenger's text limit.
    let caption = "a".repeat(1500);
    let body = json!({"kind": "image", "media_id": "m1", "caption": caption});
    let messages = w.send(&agent(), &c, body, None).await.unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(w.sender.sent()[1].content, caption);
}

#[tokio::test]
async fn a_repeated_key_answers_the_first_messages_after_the_window_closed() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 23, 0);
    let first = w.send(&agent(), &c, hi(), Some("late-1")).await.unwrap();
    let later = w
        .send_later(&agent(), &c, hi(), Some("late-1"), Span::hours(48))
        .await
        .unwrap();
    assert_eq!(first[0].id, later[0].id);
    assert_eq!(w.sender.sent().len(), 1);
}

#[tokio::test]
async fn a_bot_send_left_unsettled_is_not_sent_once_the_bot_was_stopped() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 1, 0);
    let mut state = w.store.conversation(&w.tenant, c.as_str()).unwrap();
    state.bot.version = 7;
    w.store.put_conversation(&w.tenant, state);
    w.sender.hold_next();
    let first = w.send_bot_turn(&c, "bot-turn-wamid.9-0", 7, w.now);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), first)
            .await
            .is_err()
    );
    // An agent answered meanwhile: the bot was stopped (its state moved on).
    let mut state = w.store.conversation(&w.tenant, c.as_str()).unwrap();
    state.bot.version = 8;
    w.store.put_conversation(&w.tenant, state);
    // The turn's event comes again, minutes later.
    let resumed = w
        .send_bot_turn(&c, "bot-turn-wamid.9-0", 7, w.now + Span::minutes(3))
        .await;
    assert!(
        w.sender.sent().is_empty(),
        "the stopped bot's message went out"
    );
    let stored = w.stored(&c);
    assert_eq!(stored[0].status, DeliveryStatus::Failed, "{resumed:?}");
    assert_eq!(stored[0].error.as_ref().unwrap().code, "bot_stopped");
}

#[tokio::test]
async fn a_message_the_provider_took_whose_settle_failed_is_not_sent_again_by_a_late_repeat() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 1, 0);
    w.store.fail_next_settle();
    w.send(&agent(), &c, hi(), Some("k-settle")).await.unwrap();
    assert_eq!(w.sender.sent().len(), 1, "the provider has it");
    // The caller repeats it later (a retry, a re-delivered event), after the take-over wait.
    let again = w
        .send_later(&agent(), &c, hi(), Some("k-settle"), Span::minutes(3))
        .await
        .unwrap();
    assert_eq!(w.sender.sent().len(), 1, "sent twice: {again:?}");
    assert_eq!(again[0].status, DeliveryStatus::Pending);
    assert_eq!(again[0].error.as_ref().unwrap().code, "outcome_unknown");
}

/// A bot turn's send whose invocation ends while its provider call is on its way.
async fn bot_send_interrupted(w: &World, c: &ConversationId, key: &str, now: DateTime<Utc>) {
    w.sender.hold_next();
    let send = w.send_bot_turn(c, key, 0, now);
    let ended = tokio::time::timeout(Duration::from_millis(50), send).await;
    assert!(ended.is_err(), "the held send never ends");
}

#[tokio::test]
async fn a_bot_turn_resumed_with_its_turn_time_takes_over_the_send_its_invocation_left() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 1, 0);
    // The turn's sends are stamped with the turn's time, the first time and on every
    // re-delivery of its event.
    let turn = w.now;
    bot_send_interrupted(&w, &c, "bot-turn-wamid.1-0", turn).await;
    // The event comes again 3 minutes later; the turn resumes with the same time.
    w.clock_at(Span::minutes(3));
    let resumed = w
        .send_bot_turn(&c, "bot-turn-wamid.1-0", 0, turn)
        .await
        .unwrap();
    assert_eq!(w.sender.sent().len(), 1, "never sent: {resumed:?}");
    assert_eq!(w.stored(&c)[0].status, DeliveryStatus::Sent);
    assert_eq!(w.stored(&c)[0].actor, Some(bot()));
}

#[tokio::test]
async fn a_send_accepted_late_with_an_earlier_time_is_not_taken_over_while_it_may_run() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 1, 0);
    // A turn claimed 10 minutes ago whose send is accepted only now (a resumed turn):
    // its message is stamped with the turn's time.
    let turn = w.now;
    w.clock_at(Span::minutes(10));
    bot_send_interrupted(&w, &c, "bot-turn-wamid.2-0", turn).await;
    // A concurrent re-delivery of the same event: that send may still be running, so the
    // delivery fails to be made again later (a pending answer would end the turn).
    let racing = w.send_bot_turn(&c, "bot-turn-wamid.2-0", 0, turn).await;
    let error = racing.expect_err("an unsettled send answered as done");
    assert!(!error.is_client_error(), "{error}");
    assert!(w.sender.sent().is_empty(), "taken over while it may run");
    // Once the budget and the margin have passed since it was accepted, it is taken over.
    w.clock_at(Span::minutes(12));
    w.send_bot_turn(&c, "bot-turn-wamid.2-0", 0, turn)
        .await
        .unwrap();
    assert_eq!(w.sender.sent().len(), 1);
}

#[tokio::test]
async fn a_split_send_whose_second_part_was_left_sends_only_that_part_on_a_late_repeat() {
    let w = world();
    let c = w.conversation(ChannelType::Messenger, true, 1, 0);
    w.store
        .put_media(media("m1", MediaKind::Image, "image/jpeg", &w.tenant));
    let body = json!({"kind": "image", "media_id": "m1", "caption": "our menu"});
    // The image goes and is settled; the invocation ends on the caption's call.
    w.sender.hold_nth(2);
    let ada = agent();
    let send = w.send(&ada, &c, body.clone(), Some("k-split"));
    assert!(
        tokio::time::timeout(Duration::from_millis(50), send)
            .await
            .is_err()
    );
    assert_eq!(w.sender.sent().len(), 1);
    let resumed = w
        .send_later(&agent(), &c, body, Some("k-split"), Span::minutes(2))
        .await
        .unwrap();
    let sent = w.sender.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1].content, "our menu", "only the caption again");
    assert_eq!(resumed.len(), 2);
    assert!(resumed.iter().all(|m| m.status == DeliveryStatus::Sent));
}

#[tokio::test]
async fn an_unsettled_send_whose_body_makes_other_parts_now_fails_visibly() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 1, 0);
    w.send_interrupted(&agent(), &c, hi(), "k-parts").await;
    // Its record lists more parts than the body makes now.
    w.store.double_idempotency_refs(c.as_str());
    // A schedule's fire retried late: a settled answer, not pending for good.
    let resumed = w
        .send_settled_later(&c, hi(), "k-parts", Span::minutes(3))
        .await
        .unwrap();
    assert!(w.sender.sent().is_empty(), "sent without its parts");
    assert!(resumed.iter().all(|m| m.status == DeliveryStatus::Failed));
    assert_eq!(
        resumed[0].error.as_ref().unwrap().code,
        "send_not_resumable"
    );
    let stored = w.stored(&c);
    assert_eq!(stored.len(), 2, "the message and its delivery_failed note");
    assert_eq!(stored[0].status, DeliveryStatus::Failed);
}

#[tokio::test]
async fn an_unsettled_template_send_whose_template_was_paused_since_fails_visibly() {
    let w = world();
    // WhatsApp, 30 hours after the customer wrote: templates only.
    let c = w.conversation(ChannelType::Whatsapp, false, 30, 0);
    let template = crate::domain::template::Template {
        id: crate::domain::template::template_id("waba-1", "order_update", "en"),
        channel_id: c.channel().unwrap().to_string(),
        waba_id: Some("waba-1".into()),
        name: "order_update".into(),
        language: "en".into(),
        category: crate::domain::template::TemplateCategory::Utility,
        status: crate::domain::template::TemplateStatus::Approved,
        components: vec![json!({"type": "BODY", "text": "Your order shipped"})],
        header_parameters: 0,
        body_parameters: 0,
        provider_template_id: Some("tpl-1".into()),
        reason: None,
        created_at: w.now,
    };
    w.store.put_template_now(&w.tenant, template.clone());
    let body = json!({"kind": "template", "template": {"name": "order_update", "language": "en"}});
    w.send_interrupted(&agent(), &c, body.clone(), "k-template")
        .await;
    // Meta paused it meanwhile (low quality).
    w.store.put_template_now(
        &w.tenant,
        crate::domain::template::Template {
            status: crate::domain::template::TemplateStatus::Paused,
            ..template
        },
    );
    let resumed = w
        .send_later(&agent(), &c, body, Some("k-template"), Span::minutes(2))
        .await
        .unwrap();
    assert!(w.sender.sent().is_empty(), "a paused template went out");
    assert_eq!(resumed[0].status, DeliveryStatus::Failed);
    assert_eq!(
        w.stored(&c).len(),
        2,
        "the message and its delivery_failed note"
    );
}

#[tokio::test]
async fn a_settled_answer_never_passes_a_send_still_without_outcome_for_a_settled_one() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 1, 0);
    w.send_interrupted(&agent(), &c, hi(), "scheduled-sm-1")
        .await;
    let fire = async |later: Span| {
        w.send_settled_later(&c, hi(), "scheduled-sm-1", later)
            .await
    };
    // The schedule's fire is retried a minute later: the send may still be running, so the
    // answer says to deliver again (not a pending message the schedule records as sent).
    let early = fire(Span::seconds(60)).await;
    let error = early.expect_err("an unsettled send answered as settled");
    assert!(!error.is_client_error(), "{error}");
    assert!(w.sender.sent().is_empty());
    // Lambda's second retry, 2 minutes after the first: taken over and sent, once.
    let late = fire(Span::minutes(3)).await.unwrap();
    assert_eq!(late[0].status, DeliveryStatus::Sent);
    assert_eq!(w.sender.sent().len(), 1);
    let again = fire(Span::minutes(4)).await.unwrap();
    assert_eq!(again[0].status, DeliveryStatus::Sent);
    assert_eq!(w.sender.sent().len(), 1, "sent once");
}

#[tokio::test]
#[ignore = "open: a taken-over WeChat send is checked against the reply count less its own \
            parts, but reserves nothing: once the customer wrote again (the count restarts) it \
            goes beyond the new message's 5 replies, which WeChat refuses (45047)"]
async fn a_taken_over_wechat_send_counts_against_the_replies_of_the_message_it_goes_after() {
    let w = world();
    let c = w.conversation(ChannelType::Wechat, false, 1, 4);
    w.send_interrupted(&agent(), &c, hi(), "k-quota").await;
    // The customer writes again (the count restarts) and agents use its 5 replies.
    let mut state = w.store.conversation(&w.tenant, c.as_str()).unwrap();
    state.last_inbound_at = Some(w.now + Span::seconds(30));
    state.replies_since_inbound = 0;
    w.store.put_conversation(&w.tenant, state);
    for _ in 0..5 {
        w.send_later(&agent(), &c, hi(), None, Span::minutes(1))
            .await
            .unwrap();
    }
    let resumed = w
        .send_later(&agent(), &c, hi(), Some("k-quota"), Span::minutes(2))
        .await
        .unwrap();
    assert_eq!(w.sender.sent().len(), 5, "a sixth reply went out");
    assert_eq!(resumed[0].status, DeliveryStatus::Failed);
    assert_eq!(resumed[0].error.as_ref().unwrap().code, "window_closed");
}

#[tokio::test]
async fn an_agents_messenger_send_taken_over_after_24_hours_goes_with_the_human_agent_tag() {
    let w = world();
    // Accepted 23 h after the customer wrote (a standard response then), taken over 2 h
    // later: Meta judges the send when it gets it, past 24 h.
    let c = w.conversation(ChannelType::Messenger, true, 23, 0);
    w.send_interrupted(&agent(), &c, hi(), "k-tag").await;
    let resumed = w
        .send_later(&agent(), &c, hi(), Some("k-tag"), Span::hours(2))
        .await
        .unwrap();
    assert_eq!(resumed[0].status, DeliveryStatus::Sent);
    assert_eq!(w.sender.sent()[0].delivery, Delivery::HumanAgent);
}

#[tokio::test]
async fn a_whatsapp_free_form_send_taken_over_after_24_hours_fails_without_reaching_meta() {
    let w = world();
    let c = w.conversation(ChannelType::Whatsapp, false, 23, 0);
    w.send_interrupted(&agent(), &c, hi(), "k-late-wa").await;
    let resumed = w
        .send_later(&agent(), &c, hi(), Some("k-late-wa"), Span::hours(2))
        .await
        .unwrap();
    assert!(w.sender.sent().is_empty(), "sent outside the window");
    assert_eq!(resumed[0].status, DeliveryStatus::Failed);
    assert_eq!(resumed[0].error.as_ref().unwrap().code, "template_required");
}
