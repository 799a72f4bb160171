//! Customers (SPEC §7): any agent of the tenant reads, edits and searches them.

use chrono::{DateTime, Utc};

use crate::Error;
use crate::domain::auth::Principal;
use crate::domain::customer::{Customer, CustomerPatch, CustomerQuery};
use crate::domain::page::{Page, PageRequest};
use crate::ports::CustomerStore;

fn not_found() -> Error {
    Error::NotFound { what: "customer" }
}

/// One customer of the caller's tenant.
///
/// # Errors
/// `404 not_found` for an unknown id (another tenant's too).
pub async fn get_customer(
    store: &impl CustomerStore,
    principal: &Principal,
    id: &str,
) -> Result<Customer, Error> {
    store
        .get_customer(&principal.tenant_id, id)
        .await?
        .ok_or_else(not_found)
}

/// Applies `PATCH /customers/{id}` (a JSON object, see [`CustomerPatch::parse`]) and
/// returns the customer as it is now. The body is checked before anything is read.
///
/// # Errors
/// 422: `unknown_field`, `invalid_name`, `invalid_email`, `invalid_phone`,
/// `invalid_attributes` (also more than 50 after the merge); `404 not_found`.
pub async fn patch_customer(
    store: &impl CustomerStore,
    principal: &Principal,
    id: &str,
    body: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<Customer, Error> {
    let patch = CustomerPatch::parse(body)?;
    store
        .patch_customer(&principal.tenant_id, id, &patch, now)
        .await?
        .ok_or_else(not_found)
}

/// One page of the customers matching `q` and `label` (see [`CustomerQuery`]).
///
/// # Errors
/// `400 invalid_query`, `400 invalid_cursor`, `422 invalid_label`.
pub async fn search_customers(
    store: &impl CustomerStore,
    principal: &Principal,
    query: &CustomerQuery,
    page: &PageRequest,
) -> Result<Page<Customer>, Error> {
    store
        .search_customers(&principal.tenant_id, query, page)
        .await
}
