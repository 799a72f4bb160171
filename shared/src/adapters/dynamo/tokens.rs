//! WeChat access tokens: one item per AppID, shared by every process of the deployment,
//! refreshed under a conditional lease so one process fetches while the others wait.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{DynamoStore, Expr, n, s};
use crate::Error;
use crate::adapters::channels::wechat::{Lease, Replacing, StoredToken};
use crate::adapters::keys;

const TOKEN: &str = "access_token";
const TOKEN_EXPIRES: &str = "token_expires_at_ms";
const TOKEN_FETCHED: &str = "token_fetched_at_ms";
const LEASE_UNTIL: &str = "lease_until_ms";
const LEASE_HOLDER: &str = "lease_holder";
/// The item outlives its token by a day (TTL clean-up of accounts no longer used).
const KEEP_AFTER_EXPIRY_SECS: i64 = 86_400;

fn get_n(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

impl DynamoStore {
    /// The stored token of an AppID and its lease, read consistently (`None`: never
    /// fetched).
    ///
    /// # Errors
    /// `Internal` when DynamoDB cannot be read.
    pub async fn wechat_token(&self, app_id: &str) -> Result<Option<StoredToken>, Error> {
        let item = self
            .get_consistent(keys::wechat_token(app_id), "read wechat token")
            .await?;
        Ok(item.map(|item| StoredToken {
            token: super::get_s(&item, TOKEN).map(str::to_owned),
            expires_at_ms: get_n(&item, TOKEN_EXPIRES).unwrap_or(0),
            fetched_at_ms: get_n(&item, TOKEN_FETCHED).unwrap_or(0),
            lease_until_ms: get_n(&item, LEASE_UNTIL),
        }))
    }

    /// Takes the refresh lease: only when no live lease is held and the stored token is
    /// still the one to replace (due, or the one WeChat refused). `false`: another process
    /// holds the lease or replaced the token already (nothing written).
    ///
    /// # Errors
    /// `Internal` when DynamoDB cannot be written.
    pub async fn lease_wechat_token(&self, app_id: &str, lease: &Lease) -> Result<bool, Error> {
        let mut e = Expr::default();
        e.set(LEASE_HOLDER, s(&lease.holder))
            .set(LEASE_UNTIL, n(lease.until_ms))
            .set(keys::ENTITY, s("wechat_token"));
        // Only names the condition uses: DynamoDB refuses unused ones.
        let (until, token) = (e.name(LEASE_UNTIL), e.name(TOKEN));
        let now = e.value(n(lease.now_ms));
        let replaceable = match &lease.replacing {
            Replacing::Due { expiring_before_ms } => {
                let expires = e.name(TOKEN_EXPIRES);
                let due = e.value(n(*expiring_before_ms));
                format!("attribute_not_exists({token}) OR {expires} <= {due}")
            }
            Replacing::Refused(refused) => {
                let refused = e.value(s(refused));
                format!("attribute_not_exists({token}) OR {token} = {refused}")
            }
        };
        let condition =
            format!("(attribute_not_exists({until}) OR {until} < {now}) AND ({replaceable})");
        self.conditional_update(
            keys::wechat_token(app_id),
            &e,
            &condition,
            "lease wechat token",
        )
        .await
    }

    /// Stores the token the lease holder fetched and ends its lease. `false`: the lease ran
    /// out and another process took it (nothing written; the token still works).
    ///
    /// # Errors
    /// `Internal` when DynamoDB cannot be written.
    pub async fn save_wechat_token(
        &self,
        app_id: &str,
        holder: &str,
        token: &str,
        fetched_at_ms: i64,
        expires_at_ms: i64,
    ) -> Result<bool, Error> {
        let mut e = Expr::default();
        e.set(TOKEN, s(token))
            .set(TOKEN_EXPIRES, n(expires_at_ms))
            .set(TOKEN_FETCHED, n(fetched_at_ms))
            .set(
                keys::EXPIRES_AT,
                n(expires_at_ms / 1000 + KEEP_AFTER_EXPIRY_SECS),
            )
            .remove(LEASE_UNTIL)
            .remove(LEASE_HOLDER);
        let condition = format!("{} = {}", e.name(LEASE_HOLDER), e.value(s(holder)));
        self.conditional_update(
            keys::wechat_token(app_id),
            &e,
            &condition,
            "save wechat token",
        )
        .await
    }

    /// Ends a lease whose fetch failed, so the next process tries at once.
    ///
    /// # Errors
    /// `Internal` when DynamoDB cannot be written.
    pub async fn release_wechat_token(&self, app_id: &str, holder: &str) -> Result<bool, Error> {
        let mut e = Expr::default();
        e.set(LEASE_UNTIL, n(0)).remove(LEASE_HOLDER);
        let condition = format!("{} = {}", e.name(LEASE_HOLDER), e.value(s(holder)));
        self.conditional_update(
            keys::wechat_token(app_id),
            &e,
            &condition,
            "release wechat token lease",
        )
        .await
    }
}
