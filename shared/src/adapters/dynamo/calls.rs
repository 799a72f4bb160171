//! Video calls in the table (SPEC §12): the call in its own partition with the two
//! parties' connection ids (`agent_conn`, `customer_conn`, each set once by a conditional
//! write: a third connection finds both taken), the role tokens by their SHA-256, and one
//! item per signaling connection (who it is and, once both are there, the other party's
//! connection as `peer`, so a relayed frame reads one item), kept with a TTL.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, ReturnValue, TransactWriteItem};
use chrono::{DateTime, Duration, Utc};

use super::system::system_put;
use super::{DynamoStore, Expr, get_s, internal, n, s, store_error, update};
use crate::Error;
use crate::adapters::keys;
use crate::domain::actor::Actor;
use crate::domain::call::{Call, CallStatus, MAX_CALL_HOURS, Role, duration_s};
use crate::domain::ids::TenantId;
use crate::domain::system::SystemMessage;
use crate::domain::time::rfc3339;
use crate::ports::{CallConnection, CallParty, CallRoom, CallStore, JoinOutcome};

type Item = HashMap<String, AttributeValue>;

/// A connection item's attribute naming the other party's connection.
const PEER: &str = "peer";
/// A connection item's `connectedAt` (Unix milliseconds).
const CONNECTED_AT: &str = "connected_at";

fn conn_attribute(role: Role) -> &'static str {
    match role {
        Role::Agent => "agent_conn",
        Role::Customer => "customer_conn",
    }
}

fn call_item(tenant: &TenantId, call: &Call) -> Result<Item, Error> {
    let mut item: Item = serde_dynamo::to_item(call).map_err(|e| internal("encode call", e))?;
    item.retain(|_, v| !matches!(v, AttributeValue::Null(_)));
    let key = keys::call(tenant, &call.id);
    item.insert(keys::PK.into(), s(key.pk));
    item.insert(keys::SK.into(), s(key.sk));
    item.insert(keys::ENTITY.into(), s("call"));
    Ok(item)
}

fn room_of(item: &Item) -> Result<CallRoom, Error> {
    let agent_connection = get_s(item, "agent_conn").map(str::to_owned);
    let customer_connection = get_s(item, "customer_conn").map(str::to_owned);
    let mut item = item.clone();
    for k in [
        keys::PK,
        keys::SK,
        keys::ENTITY,
        "agent_conn",
        "customer_conn",
    ] {
        item.remove(k);
    }
    Ok(CallRoom {
        call: serde_dynamo::from_item(item).map_err(|e| internal("decode call", e))?,
        agent_connection,
        customer_connection,
    })
}

fn party_of(item: &Item) -> Option<CallParty> {
    Some(CallParty {
        tenant_id: get_s(item, "tenant_id")?.to_owned(),
        call_id: get_s(item, "call_id")?.to_owned(),
        role: Role::parse(get_s(item, "role")?)?,
    })
}

fn tenant(party: &CallParty) -> Result<TenantId, Error> {
    TenantId::parse(&party.tenant_id).map_err(|_| Error::Internal("a call of no tenant".into()))
}

/// How many times a leave reads the call at most: each refused write (the other party's
/// leave ended the call meanwhile) reads it again.
const LEAVE_ATTEMPTS: usize = 3;

fn delete_connection(table: &str, connection_id: &str) -> Result<TransactWriteItem, Error> {
    let key = keys::ws_connection(connection_id);
    let delete = Delete::builder()
        .table_name(table)
        .key(keys::PK, s(key.pk))
        .key(keys::SK, s(key.sk))
        .build()
        .map_err(|e| internal("build delete", e))?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

impl DynamoStore {
    /// The writes of `party` leaving `room` as `connection_id`: its connection forgotten
    /// (item and attribute, conditional on the attribute still naming it) and, when the
    /// call is active, the call ended (conditional on it still being active) with its
    /// `call_ended`; the ended call then.
    fn leave_items(
        &self,
        tenant: &TenantId,
        room: &CallRoom,
        party: &CallParty,
        connection_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(Vec<TransactWriteItem>, Option<Call>), Error> {
        let mut e = Expr::default();
        e.remove(conn_attribute(party.role));
        let mine = e.name(conn_attribute(party.role));
        let me = e.value(s(connection_id));
        let mut condition = format!("{mine} = {me}");
        let mut items = vec![delete_connection(&self.table, connection_id)?];
        let mut ended = None;
        if room.call.status == CallStatus::Active {
            let seconds = duration_s(room.call.started_at.as_deref(), at);
            e.set("status", s(CallStatus::Ended.as_str()))
                .set("ended_at", s(rfc3339(&at)))
                .set("duration_s", n(seconds));
            let status = e.name("status");
            let active = e.value(s(CallStatus::Active.as_str()));
            condition = format!("{condition} AND {status} = {active}");
            let by = match party.role {
                Role::Agent => Actor::agent(room.call.created_by.clone()),
                Role::Customer => Actor::Customer {
                    id: crate::domain::conversation::customer_of_conversation(
                        &room.call.conversation_id,
                    )
                    .unwrap_or_default(),
                },
            };
            items.push(system_put(
                &self.table,
                tenant,
                &room.call.conversation_id,
                &at,
                &SystemMessage::call_ended(&party.call_id, seconds, by),
            )?);
            ended = Some(Call {
                status: CallStatus::Ended,
                ended_at: Some(rfc3339(&at)),
                duration_s: Some(seconds),
                ..room.call.clone()
            });
        }
        let key = keys::call(tenant, &party.call_id);
        items.insert(1, update(&self.table, key, &e, Some(condition))?);
        Ok((items, ended))
    }

    /// The peer's frames stop reaching `connection_id` (it may stay open after a `bye`):
    /// only while the peer's connection still names it, never recreating a gone item.
    async fn forget_peer(&self, peer: &str, connection_id: &str) -> Result<(), Error> {
        let mut e = Expr::default();
        e.remove(PEER);
        let (peer_name, me) = (e.name(PEER), e.value(s(connection_id)));
        self.conditional_update(
            keys::ws_connection(peer),
            &e,
            &format!("attribute_exists(pk) AND {peer_name} = {me}"),
            "forget peer",
        )
        .await?;
        Ok(())
    }
}

impl CallStore for DynamoStore {
    async fn create_call(
        &self,
        tenant: &TenantId,
        call: &Call,
        tokens: &[(String, Role)],
    ) -> Result<(), Error> {
        let expires = crate::domain::time::parse_rfc3339(&call.expires_at)
            .map(|t| (t + Duration::hours(MAX_CALL_HOURS + 24)).timestamp())
            .unwrap_or_default();
        let mut items = Vec::new();
        let put = |item: Item| -> Result<TransactWriteItem, Error> {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| internal("build put", e))?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        items.push(put(call_item(tenant, call)?)?);
        for (hash, role) in tokens {
            let key = keys::call_token(hash);
            items.push(put(HashMap::from([
                (keys::PK.to_owned(), s(key.pk)),
                (keys::SK.to_owned(), s(key.sk)),
                (keys::ENTITY.to_owned(), s("call_token")),
                ("tenant_id".to_owned(), s(tenant.as_str())),
                ("call_id".to_owned(), s(&call.id)),
                ("role".to_owned(), s(role.as_str())),
                (keys::EXPIRES_AT.to_owned(), n(expires)),
            ]))?);
        }
        match self.transact_conditional(items, "create call").await? {
            None => Ok(()),
            Some(codes) => Err(Error::Internal(format!("create call refused: {codes:?}"))),
        }
    }

    async fn set_call_message(
        &self,
        tenant: &TenantId,
        id: &str,
        message_id: &str,
    ) -> Result<(), Error> {
        self.record_link_message(keys::call(tenant, id), message_id, "record call message")
            .await
    }

    async fn call_room(&self, tenant: &TenantId, id: &str) -> Result<Option<CallRoom>, Error> {
        self.get_consistent(keys::call(tenant, id), "read call")
            .await?
            .as_ref()
            .map(room_of)
            .transpose()
    }

    async fn call_token(&self, token_hash: &str) -> Result<Option<CallParty>, Error> {
        Ok(self
            .get_consistent(keys::call_token(token_hash), "read call token")
            .await?
            .as_ref()
            .and_then(party_of))
    }

    async fn connection(&self, connection_id: &str) -> Result<Option<CallConnection>, Error> {
        let Some(item) = self
            .get_consistent(keys::ws_connection(connection_id), "read connection")
            .await?
        else {
            return Ok(None);
        };
        let connected_at = item
            .get(CONNECTED_AT)
            .and_then(|v| v.as_n().ok())
            .and_then(|ms| ms.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis);
        Ok(party_of(&item).map(|party| CallConnection {
            party,
            peer: get_s(&item, PEER).map(str::to_owned),
            connected_at,
        }))
    }

    async fn join(
        &self,
        party: &CallParty,
        connection_id: &str,
        connected_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<JoinOutcome, Error> {
        let tenant = tenant(party)?;
        let key = keys::call(&tenant, &party.call_id);
        let mut e = Expr::default();
        e.set(conn_attribute(party.role), s(connection_id));
        let mine = e.name(conn_attribute(party.role));
        let status = e.name("status");
        let expiry = e.name("expires_at");
        let ringing = e.value(s(CallStatus::Ringing.as_str()));
        let active = e.value(s(CallStatus::Active.as_str()));
        let now = e.value(s(rfc3339(&at)));
        let condition = format!(
            "attribute_exists(pk) AND attribute_not_exists({mine}) AND ({status} = {active} OR ({status} = {ringing} AND {expiry} > {now}))"
        );
        let result = self
            .update_item(&key, &e)
            .condition_expression(condition)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let item = match result.map_err(aws_sdk_dynamodb::error::SdkError::into_service_error) {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(UpdateItemError::ConditionalCheckFailedException(_)) => {
                return Ok(JoinOutcome::Refused);
            }
            Err(other) => return Err(store_error("join call", other)),
        };
        let room = room_of(&item)?;
        let peer = room.connection(party.role.other()).map(str::to_owned);
        // An update, not a put: a peer joining at the same moment may have written `peer`
        // here already (it saw this connection on the call), and that must stay.
        let ttl = (at + Duration::hours(MAX_CALL_HOURS)).timestamp();
        let mut e = Expr::default();
        e.set(keys::ENTITY, s("ws_connection"))
            .set("tenant_id", s(tenant.as_str()))
            .set("call_id", s(&party.call_id))
            .set("role", s(party.role.as_str()))
            .set(CONNECTED_AT, n(connected_at.timestamp_millis()))
            .set(keys::EXPIRES_AT, n(ttl));
        if let Some(peer) = &peer {
            e.set(PEER, s(peer));
        }
        self.update_item(&keys::ws_connection(connection_id), &e)
            .send()
            .await
            .map_err(|e| store_error("store connection", e.into_service_error()))?;
        if let Some(peer) = &peer {
            // The peer's connection learns this one (a fresh item if the peer's own write
            // is still on its way: it only adds its fields, and expires all the same).
            let mut e = Expr::default();
            e.set(PEER, s(connection_id))
                .set_if_absent(keys::EXPIRES_AT, n(ttl));
            self.update_item(&keys::ws_connection(peer), &e)
                .send()
                .await
                .map_err(|e| store_error("introduce peer", e.into_service_error()))?;
        }
        if peer.is_none() || room.call.status != CallStatus::Ringing {
            return Ok(JoinOutcome::Joined {
                peer,
                started: false,
            });
        }
        // Both are here: the call starts, once.
        let mut e = Expr::default();
        e.set("status", s(CallStatus::Active.as_str()))
            .set("started_at", s(rfc3339(&at)));
        let status = e.name("status");
        let ringing = e.value(s(CallStatus::Ringing.as_str()));
        let items = vec![
            update(&self.table, key, &e, Some(format!("{status} = {ringing}")))?,
            system_put(
                &self.table,
                &tenant,
                &room.call.conversation_id,
                &at,
                &SystemMessage::call_started(&party.call_id),
            )?,
        ];
        let started = self
            .transact_conditional(items, "start call")
            .await?
            .is_none();
        Ok(JoinOutcome::Joined { peer, started })
    }

    async fn leave(
        &self,
        party: &CallParty,
        connection_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<Call>, Error> {
        let tenant = tenant(party)?;
        // A leave that ends the call is conditional on the call still being active, so the
        // other party's leave at the same moment cannot end it a second time (a condition
        // on each one's own connection alone holds for both). Refused, it reads the call
        // again: ended by then, the leave only forgets the connection.
        for _ in 0..LEAVE_ATTEMPTS {
            let Some(room) = self.call_room(&tenant, &party.call_id).await? else {
                return Ok(None);
            };
            if room.connection(party.role) != Some(connection_id) {
                // Not (or no longer) this call's connection of the role: only forget it.
                self.transact_conditional(
                    vec![delete_connection(&self.table, connection_id)?],
                    "forget connection",
                )
                .await?;
                return Ok(None);
            }
            // The peer stops relaying here first: once the call reads ended, no frame of
            // the peer reaches the connection that left (its socket may stay open after a
            // `bye`).
            if let Some(peer) = room.connection(party.role.other()) {
                self.forget_peer(peer, connection_id).await?;
            }
            let (items, ended) = self.leave_items(&tenant, &room, party, connection_id, at)?;
            if self
                .transact_conditional(items, "leave call")
                .await?
                .is_some()
            {
                continue;
            }
            return Ok(ended);
        }
        Err(Error::Internal(
            "leave call: the call kept changing".to_owned(),
        ))
    }

    async fn miss_call(
        &self,
        tenant: &TenantId,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let Some(room) = self.call_room(tenant, id).await? else {
            return Ok(false);
        };
        if room.call.status != CallStatus::Ringing {
            return Ok(false);
        }
        let mut e = Expr::default();
        e.set("status", s(CallStatus::Missed.as_str()))
            .set("ended_at", s(rfc3339(&at)));
        let status = e.name("status");
        let ringing = e.value(s(CallStatus::Ringing.as_str()));
        let items = vec![
            update(
                &self.table,
                keys::call(tenant, id),
                &e,
                Some(format!("{status} = {ringing}")),
            )?,
            system_put(
                &self.table,
                tenant,
                &room.call.conversation_id,
                &at,
                &SystemMessage::call_missed(id),
            )?,
        ];
        Ok(self
            .transact_conditional(items, "miss call")
            .await?
            .is_none())
    }
}
