//! Notes on a customer: one item each in the customer's own partition, sorted by ULID.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::{DynamoStore, get_s, internal, key_item, s, store_error};
use crate::Error;
use crate::adapters::keys::{self, Key};
use crate::domain::customer::is_customer_id;
use crate::domain::ids::{AgentId, TenantId};
use crate::domain::note::{Author, Note, is_note_id};
use crate::domain::page::{Page, PageRequest};
use crate::domain::time::{parse_rfc3339, rfc3339};
use crate::ports::NoteStore;

fn note_from(item: &HashMap<String, AttributeValue>) -> Result<Note, Error> {
    let corrupt = || Error::Internal("a stored note has no id, text, author or time".into());
    Ok(Note {
        id: get_s(item, "id").ok_or_else(corrupt)?.to_owned(),
        text: get_s(item, "text").ok_or_else(corrupt)?.to_owned(),
        author: Author {
            id: get_s(item, "author_id").ok_or_else(corrupt)?.to_owned(),
            name: get_s(item, "author_name").map(str::to_owned),
        },
        created_at: get_s(item, "created_at")
            .and_then(parse_rfc3339)
            .ok_or_else(corrupt)?,
    })
}

fn is(item: &HashMap<String, AttributeValue>, key: &Key) -> bool {
    get_s(item, keys::PK) == Some(key.pk.as_str()) && get_s(item, keys::SK) == Some(key.sk.as_str())
}

impl DynamoStore {
    /// The names agents have in the tenant's directory, by agent id (one consistent batch
    /// read; agents without a directory item or a name are absent).
    async fn agent_names(
        &self,
        tenant: &TenantId,
        ids: &[&str],
    ) -> Result<HashMap<String, String>, Error> {
        let mut unique: Vec<&str> = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let wanted: Vec<Key> = unique.iter().map(|id| keys::agent(tenant, id)).collect();
        let items = self
            .batch_get_consistent(wanted.clone(), false, "read agent names")
            .await?;
        Ok(unique
            .iter()
            .zip(&wanted)
            .filter_map(|(id, key)| {
                let item = items.iter().find(|i| is(i, key))?;
                Some(((*id).to_owned(), get_s(item, "name")?.to_owned()))
            })
            .collect())
    }

    async fn customer_exists(&self, tenant: &TenantId, customer_id: &str) -> Result<bool, Error> {
        Ok(self
            .get_consistent(keys::customer(tenant, customer_id), "get customer")
            .await?
            .is_some())
    }
}

impl NoteStore for DynamoStore {
    async fn add_note(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        author: &AgentId,
        text: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<Note>, Error> {
        if !is_customer_id(customer_id) {
            return Ok(None);
        }
        // The customer and the author's directory item in one read.
        let customer = keys::customer(tenant, customer_id);
        let agent = keys::agent(tenant, author.as_str());
        let found = self
            .batch_get_consistent(vec![customer.clone(), agent.clone()], true, "add note")
            .await?;
        if !found.iter().any(|i| is(i, &customer)) {
            return Ok(None);
        }
        let note = Note {
            id: ulid::Ulid::new().to_string(),
            text: text.to_owned(),
            author: Author {
                id: author.to_string(),
                name: found
                    .iter()
                    .find(|i| is(i, &agent))
                    .and_then(|i| get_s(i, "name"))
                    .map(str::to_owned),
            },
            created_at: at,
        };
        let mut item = key_item(keys::note(tenant, customer_id, &note.id));
        item.insert(keys::ENTITY.into(), s("note"));
        item.insert("id".into(), s(&note.id));
        item.insert("tenant_id".into(), s(tenant.as_str()));
        item.insert("customer_id".into(), s(customer_id));
        item.insert("text".into(), s(&note.text));
        item.insert("author_id".into(), s(&note.author.id));
        if let Some(name) = &note.author.name {
            item.insert("author_name".into(), s(name));
        }
        item.insert("created_at".into(), s(rfc3339(&at)));
        let result = self.put_new(item).send().await;
        match result.map_err(aws_sdk_dynamodb::error::SdkError::into_service_error) {
            Ok(_) => Ok(Some(note)),
            Err(PutItemError::ConditionalCheckFailedException(_)) => {
                Err(Error::Internal("a new note id was taken".into()))
            }
            Err(other) => Err(store_error("add note", other)),
        }
    }

    async fn list_notes(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        page: &PageRequest,
    ) -> Result<Option<Page<Note>>, Error> {
        if !is_customer_id(customer_id) {
            return Ok(None);
        }
        let (items, next_cursor) = self
            .query_prefix(
                keys::customer_items_pk(tenant, customer_id),
                keys::NOTE_PREFIX,
                page,
                true,
                "list notes",
            )
            .await?;
        // Notes exist only for existing customers: only an empty page needs the check.
        if items.is_empty() && !self.customer_exists(tenant, customer_id).await? {
            return Ok(None);
        }
        let mut notes = items.iter().map(note_from).collect::<Result<Vec<_>, _>>()?;
        let authors: Vec<&str> = notes.iter().map(|n| n.author.id.as_str()).collect();
        let names = self.agent_names(tenant, &authors).await?;
        for note in &mut notes {
            if let Some(name) = names.get(&note.author.id) {
                note.author.name = Some(name.clone());
            }
        }
        Ok(Some(Page {
            items: notes,
            next_cursor,
        }))
    }

    async fn get_note(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        note_id: &str,
    ) -> Result<Option<Note>, Error> {
        if !is_customer_id(customer_id) || !is_note_id(note_id) {
            return Ok(None);
        }
        self.get_consistent(keys::note(tenant, customer_id, note_id), "get note")
            .await?
            .as_ref()
            .map(note_from)
            .transpose()
    }

    async fn delete_note(
        &self,
        tenant: &TenantId,
        customer_id: &str,
        note_id: &str,
    ) -> Result<bool, Error> {
        let key = keys::note(tenant, customer_id, note_id);
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(keys::PK, s(key.pk))
            .key(keys::SK, s(key.sk))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match result.map_err(aws_sdk_dynamodb::error::SdkError::into_service_error) {
            Ok(_) => Ok(true),
            Err(DeleteItemError::ConditionalCheckFailedException(_)) => Ok(false),
            Err(other) => Err(internal("delete note", other)),
        }
    }
}
