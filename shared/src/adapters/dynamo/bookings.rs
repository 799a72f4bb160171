//! Calendar slots, bookings and invitations in the table (SPEC §10).
//!
//! - A slot is an item of the tenant's partition, `SLOT#<slot id>`; slot ids sort by start
//!   time, so a range of time is a range of sort keys. Creations move the calendar's
//!   version (`CALENDAR`) conditionally, so two creations cannot both miss each other's
//!   overlap.
//! - A booking has its own partition (read by id), listed through keys-only index
//!   partitions sorted by start (the customer's `gsi1`, the tenant's `gsi2`). Its
//!   transaction takes the slot conditionally (`attribute_not_exists(booking_id)`): however
//!   many ask at once, one wins.
//! - An invitation is found by the SHA-256 of its token; its booking's transaction marks it
//!   used, conditional on it being unused and unexpired.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use chrono::{DateTime, Duration, Utc};

use super::index_page::IndexQuery;
use super::settings::settings_from;
use super::system::system_put;
use super::{
    DynamoStore, Expr, decode_cursor, encode_cursor, get_s, internal, n, s, store_error, update,
};
use crate::Error;
use crate::adapters::keys;
use crate::domain::booking::{Booking, BookingStatus, Invitation};
use crate::domain::calendar::{DURATION_MINUTES, SlotTime, StoredSlot, latest, slot_id_floor};
use crate::domain::ids::TenantId;
use crate::domain::page::{Page, PageRequest};
use crate::domain::system::SystemMessage;
use crate::domain::time::{parse_rfc3339, rfc3339};
use crate::ports::{BookOutcome, BookingInputs, BookingStore, SlotDeletion};

type Item = HashMap<String, AttributeValue>;

/// How long an invitation stays readable after it expires (for the "expired" page), days.
const INVITATION_KEPT_DAYS: i64 = 30;
/// Most query pages one slot list request reads while filtering on availability.
const MAX_SLOT_PAGES: usize = 10;

fn slot_item(tenant: &TenantId, slot: &StoredSlot) -> Item {
    let key = keys::slot(tenant, &slot.id);
    HashMap::from([
        (keys::PK.to_owned(), s(key.pk)),
        (keys::SK.to_owned(), s(key.sk)),
        (keys::ENTITY.to_owned(), s("slot")),
        ("id".to_owned(), s(&slot.id)),
        ("start".to_owned(), s(rfc3339(&slot.time.start))),
        ("end".to_owned(), s(rfc3339(&slot.time.end))),
        ("created_by".to_owned(), s(&slot.created_by)),
        ("created_at".to_owned(), s(&slot.created_at)),
    ])
}

fn slot_of(item: &Item) -> Result<StoredSlot, Error> {
    let time = |name: &str| {
        get_s(item, name)
            .and_then(parse_rfc3339)
            .ok_or_else(|| Error::Internal(format!("slot without a readable {name}")))
    };
    Ok(StoredSlot {
        id: get_s(item, "id").unwrap_or_default().to_owned(),
        time: SlotTime {
            start: time("start")?,
            end: time("end")?,
        },
        booking_id: get_s(item, "booking_id").map(str::to_owned),
        created_by: get_s(item, "created_by").unwrap_or_default().to_owned(),
        created_at: get_s(item, "created_at").unwrap_or_default().to_owned(),
    })
}

/// The index attributes a booking is listed by.
const BOOKING_INDEX: [&str; 6] = [
    keys::PK,
    keys::SK,
    keys::ENTITY,
    keys::GSI1_PK,
    "gsi2pk",
    keys::GSI1_SK,
];

fn booking_item(tenant: &TenantId, booking: &Booking) -> Result<Item, Error> {
    let mut item: Item =
        serde_dynamo::to_item(booking).map_err(|e| internal("encode booking", e))?;
    let key = keys::booking(tenant, &booking.id);
    item.insert(keys::PK.into(), s(key.pk));
    item.insert(keys::SK.into(), s(key.sk));
    item.insert(keys::ENTITY.into(), s("booking"));
    item.insert(
        keys::GSI1_PK.into(),
        s(keys::bookings_of_customer(tenant, &booking.customer_id)),
    );
    item.insert("gsi2pk".into(), s(keys::bookings_of_tenant(tenant)));
    item.insert(
        keys::GSI1_SK.into(),
        s(keys::scheduled_order(&booking.start, &booking.id)),
    );
    Ok(item)
}

fn booking_of(item: &Item) -> Result<Booking, Error> {
    let mut item = item.clone();
    for k in BOOKING_INDEX {
        item.remove(k);
    }
    serde_dynamo::from_item(item).map_err(|e| internal("decode booking", e))
}

/// The stored name of an invitation's expiry (the table's TTL attribute, `expires_at`,
/// holds when the item itself goes).
const INVITE_EXPIRES: &str = "invite_expires_at";

fn invitation_item(token_hash: &str, invitation: &Invitation) -> Result<Item, Error> {
    let mut item: Item =
        serde_dynamo::to_item(invitation).map_err(|e| internal("encode invitation", e))?;
    if let Some(expiry) = item.remove("expires_at") {
        item.insert(INVITE_EXPIRES.into(), expiry);
    }
    // `booking_id` absent (not NULL): the booking's condition is `attribute_not_exists`.
    item.retain(|_, v| !matches!(v, AttributeValue::Null(_)));
    let gone = parse_rfc3339(&invitation.expires_at)
        .map(|t| (t + Duration::days(INVITATION_KEPT_DAYS)).timestamp())
        .unwrap_or_default();
    let key = keys::invitation(token_hash);
    item.insert(keys::PK.into(), s(key.pk));
    item.insert(keys::SK.into(), s(key.sk));
    item.insert(keys::ENTITY.into(), s("booking_invitation"));
    item.insert(keys::EXPIRES_AT.into(), n(gone));
    Ok(item)
}

fn invitation_of(item: &Item) -> Result<Invitation, Error> {
    let mut item = item.clone();
    for k in [
        keys::PK,
        keys::SK,
        keys::ENTITY,
        keys::EXPIRES_AT,
        "used_at",
    ] {
        item.remove(k);
    }
    if let Some(expiry) = item.remove(INVITE_EXPIRES) {
        item.insert("expires_at".into(), expiry);
    }
    serde_dynamo::from_item(item).map_err(|e| internal("decode invitation", e))
}

/// The sort key of the first slot starting at `at`'s minute.
fn slot_floor(at: DateTime<Utc>) -> String {
    format!("{}{}", keys::SLOT_PREFIX, slot_id_floor(at))
}

/// Where a page starts: a cursor's key is used only within the list's range (DynamoDB
/// refuses a start key outside the key condition). A key below the range (a list whose
/// `from` moved on, such as the default "now") starts at the range's beginning, which is
/// after it; one above the range means the list is over.
enum Start {
    Beginning,
    After(String),
    Over,
}

fn start_of(key: Option<String>, low: &str, high: &str) -> Start {
    match key {
        None => Start::Beginning,
        Some(k) if k.as_str() < low => Start::Beginning,
        Some(k) if k.as_str() > high => Start::Over,
        Some(k) => Start::After(k),
    }
}

fn empty<T>() -> Page<T> {
    Page {
        items: Vec::new(),
        next_cursor: None,
    }
}

impl DynamoStore {
    /// Slots whose sort keys lie in `[from, to)` minute floors, from `start` on, one query
    /// page, filtered on availability.
    async fn slot_page(
        &self,
        tenant: &TenantId,
        range: (DateTime<Utc>, DateTime<Utc>),
        available: Option<bool>,
        start: Option<String>,
        limit: i32,
        consistent: bool,
    ) -> Result<(Vec<Item>, Option<String>), Error> {
        let pk = keys::tenant(tenant).pk;
        let floor = slot_floor;
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(pk.clone()))
            .expression_attribute_values(":from", s(floor(range.0)))
            // Ids of slots starting in `to`'s own minute sort after its floor: the next
            // minute's floor bounds them (the exact range is checked on the slots read).
            .expression_attribute_values(
                ":to",
                s(floor((range.1 + Duration::minutes(1)).min(latest()))),
            )
            .consistent_read(consistent)
            .limit(limit);
        if let Some(sk) = start {
            query = query.set_exclusive_start_key(Some(HashMap::from([
                (keys::PK.to_owned(), s(pk)),
                (keys::SK.to_owned(), s(sk)),
            ])));
        }
        query = match available {
            Some(true) => query.filter_expression("attribute_not_exists(booking_id)"),
            Some(false) => query.filter_expression("attribute_exists(booking_id)"),
            None => query,
        };
        let out = query.send().await.map_err(|e| internal("list slots", e))?;
        let next = out
            .last_evaluated_key()
            .and_then(|k| get_s(k, keys::SK))
            .map(str::to_owned);
        Ok((out.items.unwrap_or_default(), next))
    }
}

impl BookingStore for DynamoStore {
    async fn slots(
        &self,
        tenant: &TenantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        available: Option<bool>,
        page: &PageRequest,
    ) -> Result<Page<StoredSlot>, Error> {
        let cursor = match &page.cursor {
            Some(c) => Some(decode_cursor(c, 1, keys::SLOT_PREFIX)?.remove(0)),
            None => None,
        };
        let high = slot_floor((to + Duration::minutes(1)).min(latest()));
        let mut start = match start_of(cursor, &slot_floor(from), &high) {
            Start::Beginning => None,
            Start::After(key) => Some(key),
            Start::Over => return Ok(empty()),
        };
        let limit = usize::from(page.limit);
        let mut items = Vec::new();
        for _ in 0..MAX_SLOT_PAGES {
            let (found, next) = self
                .slot_page(
                    tenant,
                    (from, to),
                    available,
                    start.take(),
                    i32::from(page.limit),
                    true,
                )
                .await?;
            for item in found {
                let slot = slot_of(&item)?;
                if slot.time.start >= from && slot.time.start < to {
                    items.push((get_s(&item, keys::SK).unwrap_or_default().to_owned(), slot));
                }
                if items.len() == limit {
                    break;
                }
            }
            if items.len() == limit {
                break;
            }
            start = next;
            if start.is_none() {
                break;
            }
        }
        // A full page, or one that stopped reading, continues after its last key.
        let next_cursor = if items.len() == limit {
            items.last().map(|(sk, _)| encode_cursor(&[sk]))
        } else {
            start.map(|sk| encode_cursor(&[&sk]))
        };
        Ok(Page {
            items: items.into_iter().map(|(_, slot)| slot).collect(),
            next_cursor,
        })
    }

    async fn calendar_snapshot(
        &self,
        tenant: &TenantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<(Option<u64>, Vec<StoredSlot>), Error> {
        let version = self
            .get_consistent(keys::calendar(tenant), "read calendar version")
            .await?
            .and_then(|item| item.get("version").and_then(|v| v.as_n().ok()).cloned())
            .and_then(|v| v.parse().ok());
        // A slot starting up to its longest length before `from` may reach into it.
        let reach = from - Duration::minutes(*DURATION_MINUTES.end());
        let mut slots = Vec::new();
        let mut start = None;
        loop {
            let (found, next) = self
                .slot_page(tenant, (reach, to), None, start, 1000, true)
                .await?;
            for item in &found {
                slots.push(slot_of(item)?);
            }
            match next {
                Some(sk) => start = Some(sk),
                None => break,
            }
        }
        Ok((version, slots))
    }

    async fn create_slots(
        &self,
        tenant: &TenantId,
        slots: &[StoredSlot],
        version: Option<u64>,
    ) -> Result<bool, Error> {
        let mut e = Expr::default();
        e.add("version", n(1)).set(keys::ENTITY, s("calendar"));
        let condition = match version {
            Some(v) => {
                let value = e.value(n(v));
                format!("version = {value}")
            }
            None => "attribute_not_exists(version)".to_owned(),
        };
        let mut items = vec![update(
            &self.table,
            keys::calendar(tenant),
            &e,
            Some(condition),
        )?];
        for slot in slots {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(slot_item(tenant, slot)))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| internal("build put", e))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        match self.transact_conditional(items, "create slots").await? {
            None => Ok(true),
            Some(codes) if codes.first().is_some_and(|c| c == "ConditionalCheckFailed") => {
                Ok(false)
            }
            Some(codes) => Err(Error::Internal(format!("create slots refused: {codes:?}"))),
        }
    }

    async fn delete_slot(&self, tenant: &TenantId, id: &str) -> Result<SlotDeletion, Error> {
        let key = keys::slot(tenant, id);
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(keys::PK, s(key.pk))
            .key(keys::SK, s(key.sk))
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(booking_id)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result.map_err(aws_sdk_dynamodb::error::SdkError::into_service_error) {
            Ok(_) => Ok(SlotDeletion::Deleted),
            Err(DeleteItemError::ConditionalCheckFailedException(e)) => Ok(match e.item {
                Some(_) => SlotDeletion::Booked,
                None => SlotDeletion::Missing,
            }),
            Err(other) => Err(store_error("delete slot", other)),
        }
    }

    async fn booking_inputs(
        &self,
        tenant: &TenantId,
        slot_id: &str,
        customer_id: &str,
    ) -> Result<BookingInputs, Error> {
        let (slot_key, customer_key, settings_key) = (
            keys::slot(tenant, slot_id),
            keys::customer(tenant, customer_id),
            keys::settings(tenant),
        );
        let found = self
            .batch_get_consistent(
                vec![slot_key.clone(), customer_key.clone(), settings_key.clone()],
                true,
                "read booking inputs",
            )
            .await?;
        let find = |key: &keys::Key| {
            found.iter().find(|i| {
                get_s(i, keys::PK) == Some(&key.pk) && get_s(i, keys::SK) == Some(&key.sk)
            })
        };
        Ok(BookingInputs {
            slot: find(&slot_key).map(slot_of).transpose()?,
            customer_exists: find(&customer_key).is_some(),
            settings: settings_from(tenant, find(&settings_key).cloned())?,
        })
    }

    async fn book(
        &self,
        tenant: &TenantId,
        booking: &Booking,
        note: &SystemMessage,
        invitation: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<BookOutcome, Error> {
        let mut items = Vec::new();
        if let Some(hash) = invitation {
            let mut e = Expr::default();
            e.set("booking_id", s(&booking.id))
                .set("used_at", s(rfc3339(&at)));
            let expiry = e.name(INVITE_EXPIRES);
            let now = e.value(s(rfc3339(&at)));
            items.push(update(
                &self.table,
                keys::invitation(hash),
                &e,
                Some(format!(
                    "attribute_exists(pk) AND attribute_not_exists(booking_id) AND {expiry} > {now}"
                )),
            )?);
        }
        let mut e = Expr::default();
        e.set("booking_id", s(&booking.id));
        items.push(update(
            &self.table,
            keys::slot(tenant, &booking.slot_id),
            &e,
            Some("attribute_exists(pk) AND attribute_not_exists(booking_id)".to_owned()),
        )?);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(booking_item(tenant, booking)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| internal("build put", e))?;
        items.push(TransactWriteItem::builder().put(put).build());
        items.push(system_put(
            &self.table,
            tenant,
            &booking.conversation_id,
            &at,
            note,
        )?);
        let Some(codes) = self.transact_conditional(items, "book a slot").await? else {
            return Ok(BookOutcome::Booked);
        };
        let failed = |i: usize| codes.get(i).is_some_and(|c| c == "ConditionalCheckFailed");
        let offset = usize::from(invitation.is_some());
        if invitation.is_some() && failed(0) {
            return Ok(BookOutcome::InvitationSpent);
        }
        if failed(offset) {
            let exists = self
                .get_consistent(keys::slot(tenant, &booking.slot_id), "read slot")
                .await?
                .is_some();
            return Ok(if exists {
                BookOutcome::SlotTaken
            } else {
                BookOutcome::SlotGone
            });
        }
        Err(Error::Internal(format!("booking refused: {codes:?}")))
    }

    async fn get_booking(&self, tenant: &TenantId, id: &str) -> Result<Option<Booking>, Error> {
        self.get_consistent(keys::booking(tenant, id), "read booking")
            .await?
            .as_ref()
            .map(booking_of)
            .transpose()
    }

    async fn cancel_booking(
        &self,
        tenant: &TenantId,
        after: &Booking,
        note: &SystemMessage,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let mut e = Expr::default();
        let cancelled_by = serde_dynamo::to_attribute_value(&after.cancelled_by)
            .map_err(|err| internal("encode actor", err))?;
        e.set("status", s(BookingStatus::Cancelled.as_str()))
            .set("cancelled_at", s(rfc3339(&at)))
            .set("cancelled_by", cancelled_by);
        let status = e.name("status");
        let confirmed = e.value(s(BookingStatus::Confirmed.as_str()));
        let booking = update(
            &self.table,
            keys::booking(tenant, &after.id),
            &e,
            Some(format!("{status} = {confirmed}")),
        )?;
        let mut e = Expr::default();
        e.remove("booking_id");
        let held_by = e.value(s(&after.id));
        let slot = update(
            &self.table,
            keys::slot(tenant, &after.slot_id),
            &e,
            Some(format!("booking_id = {held_by}")),
        )?;
        let items = vec![
            booking,
            slot,
            system_put(&self.table, tenant, &after.conversation_id, &at, note)?,
        ];
        match self.transact_conditional(items, "cancel booking").await? {
            None => Ok(true),
            Some(codes) if codes.first().is_some_and(|c| c == "ConditionalCheckFailed") => {
                Ok(false)
            }
            Some(codes) => Err(Error::Internal(format!(
                "cancel booking refused: {codes:?}"
            ))),
        }
    }

    async fn list_bookings(
        &self,
        tenant: &TenantId,
        customer_id: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page<Booking>, Error> {
        let (index, attribute, partition) = match customer_id {
            Some(c) => (
                keys::GSI1,
                keys::GSI1_PK,
                keys::bookings_of_customer(tenant, c),
            ),
            None => ("gsi2", "gsi2pk", keys::bookings_of_tenant(tenant)),
        };
        let cursor = match &page.cursor {
            Some(c) => Some(decode_cursor(c, 1, "")?.remove(0)),
            None => None,
        };
        let (low, high) = (rfc3339(&from), rfc3339(&to));
        let after = match start_of(cursor, &low, &high) {
            Start::Beginning => None,
            Start::After(key) => Some(key),
            Start::Over => return Ok(empty()),
        };
        let query = IndexQuery {
            index,
            attribute,
            partition,
            range: Some((low, high)),
            newest_first: false,
            after,
            limit: page.limit,
        };
        self.indexed_records(
            query,
            |id| keys::booking(tenant, id),
            booking_of,
            "list bookings",
        )
        .await
    }

    async fn put_invitation(&self, token_hash: &str, invitation: &Invitation) -> Result<(), Error> {
        self.put_new(invitation_item(token_hash, invitation)?)
            .send()
            .await
            .map_err(|e| store_error("store invitation", e.into_service_error()))?;
        Ok(())
    }

    async fn get_invitation(&self, token_hash: &str) -> Result<Option<Invitation>, Error> {
        self.get_consistent(keys::invitation(token_hash), "read invitation")
            .await?
            .as_ref()
            .map(invitation_of)
            .transpose()
    }

    async fn delete_invitation(&self, token_hash: &str) -> Result<(), Error> {
        let key = keys::invitation(token_hash);
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(keys::PK, s(key.pk))
            .key(keys::SK, s(key.sk))
            .send()
            .await
            .map_err(|e| internal("delete invitation", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_outside_the_range_starts_at_its_beginning_or_ends_the_list() {
        let at = |k: &str| start_of(Some(k.to_owned()), "b", "d");
        assert!(matches!(start_of(None, "b", "d"), Start::Beginning));
        assert!(matches!(at("a"), Start::Beginning));
        assert!(matches!(at("c"), Start::After(k) if k == "c"));
        assert!(matches!(at("e"), Start::Over));
    }

    #[test]
    fn an_invitation_keeps_its_expiry_apart_from_the_table_ttl() {
        let invitation = Invitation {
            id: "bi_1".into(),
            tenant_id: "acme".into(),
            customer_id: "cu_x".into(),
            conversation_id: "cv_x".into(),
            from: "2026-12-01T00:00:00.000Z".into(),
            to: "2026-12-08T00:00:00.000Z".into(),
            expires_at: "2026-12-03T00:00:00.000Z".into(),
            created_by: "agent-1".into(),
            created_at: "2026-12-01T00:00:00.000Z".into(),
            booking_id: None,
        };
        let item = invitation_item("ab", &invitation).unwrap();
        assert_eq!(
            get_s(&item, INVITE_EXPIRES),
            Some("2026-12-03T00:00:00.000Z")
        );
        assert!(item[keys::EXPIRES_AT].as_n().is_ok());
        assert!(!item.contains_key("booking_id"), "absent until used");
        assert_eq!(invitation_of(&item).unwrap(), invitation);
    }
}
