//! Every DynamoDB key of the chat table, and the names of key attributes.
//!
//! Keys are built here and nowhere else. The access patterns they serve are listed in
//! `docs/data-model.md`. Identifiers never contain `#` (see [`crate::domain::ids`]).

use crate::domain::conversation::ConversationStatus;
use crate::domain::ids::{ChannelId, TenantId};
use crate::domain::views::View;

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

/// The deployment-wide claim on a provider account id: the routing record (channel and
/// credentials) that webhooks and senders read. Its conditional write makes the id unique.
pub fn channel_external_id(external_id: &str) -> Key {
    Key {
        pk: format!("EXTERNAL#{external_id}"),
        sk: "EXTERNAL".to_owned(),
    }
}

/// The routing record by our channel id (WeChat webhooks carry the id in their path).
pub fn channel_route(id: &ChannelId) -> Key {
    Key {
        pk: format!("ROUTE#{id}"),
        sk: "ROUTE".to_owned(),
    }
}

/// A customer, in its own partition (with its notes): every message updates it, so a
/// tenant's customers must not share one partition.
pub fn customer(tenant: &TenantId, id: &str) -> Key {
    Key {
        pk: customer_items_pk(tenant, id),
        sk: "CUSTOMER".to_owned(),
    }
}

/// The tenant-wide prefix of alias partitions on a channel (the alias follows it).
fn alias_pk_prefix(tenant: &TenantId, channel: &ChannelId) -> String {
    format!("TENANT#{tenant}#ALIAS#{channel}#")
}

/// An alias of a customer's provider id on a channel (WhatsApp: a business-scoped user id,
/// or the `wa_id` the Graph API answered for a number we started a conversation with), in
/// its own partition (every WhatsApp webhook reads them); it names the id the customer's
/// conversation is keyed by.
pub fn customer_alias(tenant: &TenantId, channel: &ChannelId, alias: &str) -> Key {
    Key {
        pk: format!("{}{alias}", alias_pk_prefix(tenant, channel)),
        sk: "ALIAS".to_owned(),
    }
}

/// The alias an alias key names (see [`customer_alias`]).
pub fn alias_of<'a>(tenant: &TenantId, channel: &ChannelId, pk: &'a str) -> Option<&'a str> {
    pk.strip_prefix(&alias_pk_prefix(tenant, channel))
}

/// A conversation, first item of its own partition (its messages follow): every message
/// updates it, so a tenant's conversations must not share one partition.
pub fn conversation(tenant: &TenantId, id: &str) -> Key {
    Key {
        pk: messages_pk(tenant, id),
        sk: "CONV".to_owned(),
    }
}

/// The sort key all list views share: latest activity, then id (RFC 3339 sorts by time).
pub fn conversation_activity(last_message_at: &str, id: &str) -> String {
    format!("{last_message_at}#{id}")
}

/// The conversation id of a view sort key (see [`conversation_activity`]).
pub fn conversation_of_activity(activity: &str) -> Option<&str> {
    activity.split_once('#').map(|(_, id)| id)
}

/// The sort key attribute every list view index shares.
pub const VIEW_SK: &str = GSI1_SK;

/// The partition of one shard of a list view (see [`crate::domain::views`]). Agent ids
/// and label names never contain `#`; unassigned has its own word.
pub fn view_partition(tenant: &TenantId, view: &View, shard: u8) -> String {
    let status = |s: &Option<ConversationStatus>| match s {
        Some(s) => format!("ST#{}#", s.as_str()),
        None => String::new(),
    };
    let body = match view {
        View::All => String::new(),
        View::Status(s) => status(&Some(*s)),
        View::Assignee(Some(agent), s) => format!("AS#{agent}#{}", status(s)),
        View::Assignee(None, s) => format!("UNASSIGNED#{}", status(s)),
        View::Channel(id, s) => format!("CH#{id}#{}", status(s)),
        View::Label(name, s) => format!("LB#{name}#{}", status(s)),
        View::BotActive => "BOT#".to_owned(),
    };
    format!("TENANT#{tenant}#CONVS#{body}{shard}")
}

/// Sort key of a conversation's label membership items, in the conversation's partition.
pub const LABEL_MEMBER_PREFIX: &str = "LABEL#";

/// The membership of a conversation (its customer) in a label: lists it under the label.
pub fn label_member(tenant: &TenantId, conversation_id: &str, label: &str) -> Key {
    Key {
        pk: messages_pk(tenant, conversation_id),
        sk: format!("{LABEL_MEMBER_PREFIX}{label}"),
    }
}

/// Customers by label (GSI7 partition, on membership items; sorted by customer name key).
pub fn customers_by_label(tenant: &TenantId, label: &str) -> String {
    format!("TENANT#{tenant}#CUSTOMERS#LABEL#{label}")
}

/// Partition of a conversation's messages.
pub fn messages_pk(tenant: &TenantId, conversation_id: &str) -> String {
    format!("TENANT#{tenant}#CONV#{conversation_id}")
}

/// Sort key prefix of messages.
pub const MESSAGE_PREFIX: &str = "MSG#";

/// A message: ordered by its time (RFC 3339, UTC, millis), then id.
pub fn message(tenant: &TenantId, conversation_id: &str, created_at: &str, id: &str) -> Key {
    Key {
        pk: messages_pk(tenant, conversation_id),
        sk: format!("{MESSAGE_PREFIX}{created_at}#{id}"),
    }
}

/// Sort key prefix of provider message ids in a conversation's partition.
pub const PROVIDER_MESSAGE_PREFIX: &str = "PID#";

/// A provider message id (wamid, mid, MsgId) in its conversation: deduplicates deliveries
/// (its conditional write) and holds the delivery status, so a status webhook is one
/// conditional update on a key derived from the channel, the customer and that id.
pub fn provider_message(
    tenant: &TenantId,
    conversation_id: &str,
    provider_message_id: &str,
) -> Key {
    Key {
        pk: messages_pk(tenant, conversation_id),
        sk: format!("{PROVIDER_MESSAGE_PREFIX}{provider_message_id}"),
    }
}

/// A media record, in its tenant's partition.
pub fn media(tenant: &TenantId, id: &str) -> Key {
    Key {
        pk: tenant_pk(tenant),
        sk: format!("MEDIA#{id}"),
    }
}

/// An `Idempotency-Key` of a send, in its conversation's partition (the key is hashed, so
/// any visible characters may be used).
pub fn idempotency(tenant: &TenantId, conversation_id: &str, key_hash: &str) -> Key {
    Key {
        pk: messages_pk(tenant, conversation_id),
        sk: format!("IDEM#{key_hash}"),
    }
}

/// Where a template with Meta's id lives (status webhooks name only that id).
pub fn provider_template(provider_template_id: &str) -> Key {
    Key {
        pk: format!("PTEMPLATE#{provider_template_id}"),
        sk: "PTEMPLATE".to_owned(),
    }
}

/// Sort key prefix of a tenant's templates.
pub const TEMPLATE_PREFIX: &str = "TEMPLATE#";

/// A WhatsApp template, in its tenant's partition.
pub fn template(tenant: &TenantId, id: &str) -> Key {
    Key {
        pk: tenant_pk(tenant),
        sk: format!("{TEMPLATE_PREFIX}{id}"),
    }
}

/// The deployment-wide WeChat access token of one AppID: the token, its expiry and the
/// refresh lease (every process sending or fetching media for the account reads it).
pub fn wechat_token(app_id: &str) -> Key {
    Key {
        pk: format!("WXTOKEN#{app_id}"),
        sk: "WXTOKEN".to_owned(),
    }
}

// ---- The agent workspace (SPEC §7) ----

/// The tenant's settings (business name, time zone, business hours), one item.
pub fn settings(tenant: &TenantId) -> Key {
    Key {
        pk: tenant_pk(tenant),
        sk: "SETTINGS".to_owned(),
    }
}

/// Sort key prefix of a tenant's agents.
pub const AGENT_PREFIX: &str = "AGENT#";

/// An agent of the tenant (the JWT `sub`), in its tenant's partition.
pub fn agent(tenant: &TenantId, id: &str) -> Key {
    Key {
        pk: tenant_pk(tenant),
        sk: format!("{AGENT_PREFIX}{id}"),
    }
}

/// Sort key prefix of a tenant's label catalog.
pub const LABEL_PREFIX: &str = "LABEL#";

/// A label of the tenant's catalog, in its tenant's partition.
pub fn label(tenant: &TenantId, name: &str) -> Key {
    Key {
        pk: tenant_pk(tenant),
        sk: format!("{LABEL_PREFIX}{name}"),
    }
}

/// Sort key prefix of a tenant's FAQ entries (canned replies).
pub const FAQ_PREFIX: &str = "FAQ#";

/// A FAQ entry, in its tenant's partition.
pub fn faq(tenant: &TenantId, id: &str) -> Key {
    Key {
        pk: tenant_pk(tenant),
        sk: format!("{FAQ_PREFIX}{id}"),
    }
}

/// The claim on an FAQ shortcut (names the entry holding it): its conditional put makes
/// shortcuts unique per tenant. Not under [`FAQ_PREFIX`], so listings never see it.
pub fn faq_shortcut(tenant: &TenantId, shortcut: &str) -> Key {
    Key {
        pk: tenant_pk(tenant),
        sk: format!("FAQSHORTCUT#{shortcut}"),
    }
}

/// The tenant's FAQ catalog counter (`count`), bounded by a condition on every create.
pub fn faq_catalog(tenant: &TenantId) -> Key {
    Key {
        pk: tenant_pk(tenant),
        sk: "FAQCATALOG".to_owned(),
    }
}

/// Partition of one customer's own items (its notes).
pub fn customer_items_pk(tenant: &TenantId, customer_id: &str) -> String {
    format!("TENANT#{tenant}#CUSTOMER#{customer_id}")
}

/// Sort key prefix of a customer's notes.
pub const NOTE_PREFIX: &str = "NOTE#";

/// A note on a customer (`note_id` is a ULID, so notes sort by creation).
pub fn note(tenant: &TenantId, customer_id: &str, note_id: &str) -> Key {
    Key {
        pk: customer_items_pk(tenant, customer_id),
        sk: format!("{NOTE_PREFIX}{note_id}"),
    }
}

// ---- Customer search (gsi7, gsi8, gsi9; projections KEYS_ONLY) ----
//
// Every index sort key ends with `#<customer id>` (ids never contain `#`), so an index entry
// names its customer without a projected attribute; results are read back from the table.

/// GSI7: customers by display name (and, in a label's partition, by label then name).
pub const GSI7: &str = "gsi7";
/// GSI7 partition key attribute.
pub const GSI7_PK: &str = "gsi7pk";
/// GSI7 sort key attribute.
pub const GSI7_SK: &str = "gsi7sk";
/// GSI8: customers by phone digits.
pub const GSI8: &str = "gsi8";
/// GSI8 partition key attribute.
pub const GSI8_PK: &str = "gsi8pk";
/// GSI8 sort key attribute.
pub const GSI8_SK: &str = "gsi8sk";
/// GSI9: customers by provider id (external id).
pub const GSI9: &str = "gsi9";
/// GSI9 partition key attribute.
pub const GSI9_PK: &str = "gsi9pk";
/// GSI9 sort key attribute.
pub const GSI9_SK: &str = "gsi9sk";

/// Longest folded name kept in a [`customer_name_key`], in bytes (an index sort key holds
/// at most 1024 bytes, and NFKD folding may lengthen a name several times).
pub const NAME_KEY_MAX_BYTES: usize = 200;

/// GSI7 partition of all of a tenant's customers, by name.
pub fn customers_by_name(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}#CUSTOMERS")
}

/// The name search prefix of a text: folded (case, accents; [`crate::domain::text::fold`])
/// and cut to [`NAME_KEY_MAX_BYTES`] at a character boundary.
pub fn name_prefix(text: &str) -> String {
    let mut folded = crate::domain::text::fold(text);
    if folded.len() > NAME_KEY_MAX_BYTES {
        let mut end = NAME_KEY_MAX_BYTES;
        while !folded.is_char_boundary(end) {
            end -= 1;
        }
        folded.truncate(end);
    }
    folded
}

/// GSI7 sort key of a customer: its display name folded ([`name_prefix`]; empty for a
/// customer without a name), `#`, its id.
pub fn customer_name_key(display_name: Option<&str>, customer_id: &str) -> String {
    format!("{}#{customer_id}", name_prefix(display_name.unwrap_or("")))
}

/// GSI8 partition of a tenant's customers with a phone number.
pub fn customers_by_phone(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}#CUSTOMERS#PHONE")
}

/// GSI8 sort key of a customer: the phone's digits (no `+`), `#`, its id.
pub fn customer_phone_key(digits: &str, customer_id: &str) -> String {
    format!("{digits}#{customer_id}")
}

/// GSI9 partition of a tenant's customers by provider id.
pub fn customers_by_external_id(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}#CUSTOMERS#EXTERNAL")
}

/// GSI9 sort key of a customer: its provider id, `#`, its id.
pub fn customer_external_key(external_id: &str, customer_id: &str) -> String {
    format!("{external_id}#{customer_id}")
}

/// The customer id a customer index sort key ends with.
pub fn customer_of_index_key(sort_key: &str) -> Option<&str> {
    sort_key
        .rsplit_once('#')
        .map(|(_, id)| id)
        .filter(|id| !id.is_empty())
}

/// The tenant's bot catalog: every bot definition in one item (read with a turn's other
/// inputs in one request).
pub fn bot_catalog(tenant: &TenantId) -> Key {
    Key {
        pk: tenant_pk(tenant),
        sk: "BOTS".to_owned(),
    }
}

/// The claim of a message's bot turn, in its conversation's partition.
pub fn bot_turn(tenant: &TenantId, conversation_id: &str, message_id: &str) -> Key {
    Key {
        pk: conversation(tenant, conversation_id).pk,
        sk: format!("BOTTURN#{message_id}"),
    }
}

/// A scheduled message: its own partition, read by id (fires, cancels).
pub fn scheduled(tenant: &TenantId, id: &str) -> Key {
    Key {
        pk: format!("{}#SCHED#{id}", tenant_pk(tenant)),
        sk: "SCHED".to_owned(),
    }
}

/// Index partition (`gsi1pk`) of one conversation's scheduled messages.
pub fn scheduled_of_conversation(tenant: &TenantId, conversation_id: &str) -> String {
    format!("{}#SCHEDULED#CONV#{conversation_id}", tenant_pk(tenant))
}

/// Index partition (`gsi2pk`) of all of a tenant's scheduled messages.
pub fn scheduled_of_tenant(tenant: &TenantId) -> String {
    format!("{}#SCHEDULED", tenant_pk(tenant))
}

/// Sort key (`gsi1sk`) of a scheduled message in both index partitions: by send time.
pub fn scheduled_order(send_at: &str, id: &str) -> String {
    format!("{send_at}#{id}")
}

/// A calendar slot, in the tenant's partition: its id sorts by start time, so one key
/// both names it and lists slots by time.
pub fn slot(tenant: &TenantId, id: &str) -> Key {
    Key {
        pk: tenant_pk(tenant),
        sk: format!("{SLOT_PREFIX}{id}"),
    }
}

/// Sort-key prefix of the tenant's slots.
pub const SLOT_PREFIX: &str = "SLOT#";

/// The calendar's version: every slot creation moves it, conditional on the version it read
/// (so two creations cannot both miss each other's overlap).
pub fn calendar(tenant: &TenantId) -> Key {
    Key {
        pk: tenant_pk(tenant),
        sk: "CALENDAR".to_owned(),
    }
}

/// A booking: its own partition, read by id (cancel).
pub fn booking(tenant: &TenantId, id: &str) -> Key {
    Key {
        pk: format!("{}#BOOKING#{id}", tenant_pk(tenant)),
        sk: "BOOKING".to_owned(),
    }
}

/// Index partition (`gsi1pk`) of one customer's bookings.
pub fn bookings_of_customer(tenant: &TenantId, customer_id: &str) -> String {
    format!("{}#BOOKINGS#CUSTOMER#{customer_id}", tenant_pk(tenant))
}

/// Index partition (`gsi2pk`) of all of a tenant's bookings.
pub fn bookings_of_tenant(tenant: &TenantId) -> String {
    format!("{}#BOOKINGS", tenant_pk(tenant))
}

/// A booking invitation, by the SHA-256 of its token (the public page knows only the
/// token; the item names the tenant).
pub fn invitation(token_hash: &str) -> Key {
    Key {
        pk: format!("INVITE#{token_hash}"),
        sk: "INVITE".to_owned(),
    }
}

/// A tenant's payment settings, secrets included: a partition of its own, read only by
/// the payments function.
pub fn payment_settings(tenant: &TenantId) -> Key {
    Key {
        pk: format!("{}#PAYMENT", tenant_pk(tenant)),
        sk: "SETTINGS".to_owned(),
    }
}

/// Sort-key prefix of the tenant's products (in the tenant's partition).
pub const PRODUCT_PREFIX: &str = "PRODUCT#";

/// A product of the tenant's catalog.
pub fn product(tenant: &TenantId, id: &str) -> Key {
    Key {
        pk: tenant_pk(tenant),
        sk: format!("{PRODUCT_PREFIX}{id}"),
    }
}

/// A payment: its own partition (read by id; its Stripe events beside it).
pub fn payment(tenant: &TenantId, id: &str) -> Key {
    Key {
        pk: format!("{}#PAYMENT#{id}", tenant_pk(tenant)),
        sk: "PAYMENT".to_owned(),
    }
}

/// A Stripe event applied to a payment (its id, once: re-deliveries find it).
pub fn payment_event(tenant: &TenantId, payment_id: &str, event_id: &str) -> Key {
    Key {
        pk: payment(tenant, payment_id).pk,
        sk: format!("EVENT#{event_id}"),
    }
}

/// Index partition (`gsi1pk`) of one customer's payments.
pub fn payments_of_customer(tenant: &TenantId, customer_id: &str) -> String {
    format!("{}#PAYMENTS#CUSTOMER#{customer_id}", tenant_pk(tenant))
}

/// A video call: its own partition (read by id).
pub fn call(tenant: &TenantId, id: &str) -> Key {
    Key {
        pk: format!("{}#CALL#{id}", tenant_pk(tenant)),
        sk: "CALL".to_owned(),
    }
}

/// A call's role token, by its SHA-256 (the page and `$connect` know only the token).
pub fn call_token(token_hash: &str) -> Key {
    Key {
        pk: format!("CALLTOKEN#{token_hash}"),
        sk: "CALLTOKEN".to_owned(),
    }
}

/// A signaling WebSocket connection, by API Gateway's connection id.
pub fn ws_connection(connection_id: &str) -> Key {
    Key {
        pk: format!("WSCONN#{connection_id}"),
        sk: "WSCONN".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_sort_keys_order_by_time() {
        let t = TenantId::parse("acme").unwrap();
        let a = message(&t, "cv", "2026-11-24T09:00:00.000Z", "z");
        let b = message(&t, "cv", "2026-11-24T09:00:00.001Z", "a");
        assert!(a.sk < b.sk);
        assert_eq!(a.pk, messages_pk(&t, "cv"));
    }

    #[test]
    fn customer_index_keys_end_with_the_customer_id() {
        let key = customer_name_key(Some("  Zoë  ÅSE "), "cu_1");
        assert_eq!(key, "zoe ase#cu_1");
        assert_eq!(customer_of_index_key(&key), Some("cu_1"));
        assert_eq!(customer_name_key(None, "cu_2"), "#cu_2");
        assert_eq!(customer_of_index_key("a#b#cu_3"), Some("cu_3"));
        assert_eq!(customer_of_index_key("nohash"), None);
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let key = customer_name_key(Some(&"é".repeat(300)), "cu_1");
        let (name, _) = key.rsplit_once('#').unwrap();
        assert_eq!(name.len(), NAME_KEY_MAX_BYTES);
        // NFKD may lengthen a character many times; still bounded.
        assert!(name_prefix(&"\u{FDFA}".repeat(200)).len() <= NAME_KEY_MAX_BYTES);
        assert!(name_prefix(&"陈".repeat(100)).len() <= NAME_KEY_MAX_BYTES);
    }
}
