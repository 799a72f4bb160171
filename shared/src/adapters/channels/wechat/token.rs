//! WeChat access tokens: one per account for the whole deployment. The pure lease
//! decision ([`decide`]), the process cache in front, and the shared store behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::adapters::dynamo::DynamoStore;

/// A token is renewed this long before it expires: inside WeChat's last five minutes, when
/// `stable_token` hands out the next token (the old one works until it expires).
pub const REFRESH_BEFORE: Duration = Duration::from_secs(240);
/// How long one process may hold the refresh lease (above one call's time cap).
pub const LEASE: Duration = Duration::from_secs(15);
/// How long a process waits for another's refresh before fetching a token itself
/// (harmless: `stable_token` hands every caller the same token).
pub const WAIT: Duration = Duration::from_secs(3);
/// Between two reads of the token item while another process refreshes it.
pub(super) const POLL: Duration = Duration::from_millis(100);

/// When tokens are renewed and how long a refresh may take (tests shorten them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenTimings {
    /// Renew this long before the token expires ([`REFRESH_BEFORE`]).
    pub refresh_before: Duration,
    /// The refresh lease ([`LEASE`]).
    pub lease: Duration,
    /// The wait for another process's refresh ([`WAIT`]).
    pub wait: Duration,
}

impl Default for TokenTimings {
    fn default() -> Self {
        Self {
            refresh_before: REFRESH_BEFORE,
            lease: LEASE,
            wait: WAIT,
        }
    }
}

/// The token item of an AppID as stored (epoch milliseconds).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// The token, once one was fetched.
    pub token: Option<String>,
    /// When WeChat said it expires.
    pub expires_at_ms: i64,
    /// When it was fetched.
    pub fetched_at_ms: i64,
    /// Until when a process holds the refresh lease.
    pub lease_until_ms: Option<i64>,
}

/// Which token a refresh replaces: the lease is taken only while it is still there.
#[derive(Clone, PartialEq, Eq)]
pub enum Replacing {
    /// A token expiring at or before this time (or none).
    Due {
        /// Epoch milliseconds.
        expiring_before_ms: i64,
    },
    /// The token WeChat refused.
    Refused(String),
}

/// A refresh lease to take.
#[derive(Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who takes it (one id per attempt).
    pub holder: String,
    /// Now (epoch milliseconds).
    pub now_ms: i64,
    /// When it runs out.
    pub until_ms: i64,
    /// The token it replaces.
    pub replacing: Replacing,
}

/// A token WeChat refused, and when this process started replacing it.
#[derive(Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The refused token.
    pub token: String,
    /// Epoch milliseconds.
    pub since_ms: i64,
}

/// What a process does with the token item it just read.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenStep {
    /// Use this token (it works until `expires_at_ms`).
    Use {
        /// The token.
        token: String,
        /// When it expires.
        expires_at_ms: i64,
    },
    /// Take the lease and fetch a new token.
    Refresh(Replacing),
    /// Another process is fetching and there is no usable token: read again shortly.
    Wait,
}

/// The lease decision (pure): use the stored token, refresh it, or wait for the process
/// that is refreshing it. A due token is still used while another process replaces it; a
/// refused one is replaced only while it is still the stored one (and was stored before
/// this process's refusal), so N processes refusing the same token cause one refresh.
pub fn decide(
    stored: Option<&StoredToken>,
    now_ms: i64,
    refused: Option<&Refusal>,
    refresh_before: Duration,
) -> TokenStep {
    let margin = i64::try_from(refresh_before.as_millis()).unwrap_or(i64::MAX);
    let leased = stored
        .and_then(|s| s.lease_until_ms)
        .is_some_and(|until| until > now_ms);
    let due = Replacing::Due {
        expiring_before_ms: now_ms.saturating_add(margin),
    };
    let Some((stored, token)) = stored.and_then(|s| s.token.as_deref().map(|t| (s, t))) else {
        return if leased {
            TokenStep::Wait
        } else {
            TokenStep::Refresh(due)
        };
    };
    if let Some(r) = refused
        && r.token == token
        && stored.fetched_at_ms < r.since_ms
    {
        return if leased {
            TokenStep::Wait
        } else {
            TokenStep::Refresh(Replacing::Refused(token.to_owned()))
        };
    }
    let usable = TokenStep::Use {
        token: token.to_owned(),
        expires_at_ms: stored.expires_at_ms,
    };
    if stored.expires_at_ms <= now_ms {
        if leased {
            TokenStep::Wait
        } else {
            TokenStep::Refresh(due)
        }
    } else if stored.expires_at_ms.saturating_sub(margin) <= now_ms && !leased {
        TokenStep::Refresh(due)
    } else {
        usable
    }
}

/// Tokens are never printed: the `Debug` of the token types hides them.
const HIDDEN: &str = "***";

impl std::fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredToken")
            .field("token", &self.token.as_ref().map(|_| HIDDEN))
            .field("expires_at_ms", &self.expires_at_ms)
            .field("fetched_at_ms", &self.fetched_at_ms)
            .field("lease_until_ms", &self.lease_until_ms)
            .finish()
    }
}

impl std::fmt::Debug for Replacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Due { expiring_before_ms } => f
                .debug_struct("Due")
                .field("expiring_before_ms", expiring_before_ms)
                .finish(),
            Self::Refused(_) => f.debug_tuple("Refused").field(&HIDDEN).finish(),
        }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("holder", &self.holder)
            .field("now_ms", &self.now_ms)
            .field("until_ms", &self.until_ms)
            .field("replacing", &self.replacing)
            .finish()
    }
}

impl std::fmt::Debug for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refusal")
            .field("token", &HIDDEN)
            .field("since_ms", &self.since_ms)
            .finish()
    }
}

impl std::fmt::Debug for TokenStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Use { expires_at_ms, .. } => f
                .debug_struct("Use")
                .field("token", &HIDDEN)
                .field("expires_at_ms", expires_at_ms)
                .finish(),
            Self::Refresh(replacing) => f.debug_tuple("Refresh").field(replacing).finish(),
            Self::Wait => f.write_str("Wait"),
        }
    }
}

/// Now, in epoch milliseconds.
pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Access tokens by AppID, with when this process stops using them (then it reads the
/// shared item again).
#[derive(Clone, Default)]
pub struct TokenCache(Arc<Mutex<HashMap<String, (String, Instant)>>>);

impl TokenCache {
    pub(super) fn get(&self, app_id: &str, stale: Option<&str>) -> Option<String> {
        let mut tokens = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match tokens.get(app_id) {
            Some((token, _)) if stale == Some(token.as_str()) => {
                tokens.remove(app_id);
                None
            }
            Some((token, until)) if *until > Instant::now() => Some(token.clone()),
            _ => None,
        }
    }

    /// Keeps a token until `margin` before it expires (not at all when it is due).
    pub(super) fn put(&self, app_id: &str, token: &str, expires_at_ms: i64, margin: Duration) {
        let left = u64::try_from(expires_at_ms.saturating_sub(now_ms())).unwrap_or(0);
        let Some(keep) = Duration::from_millis(left).checked_sub(margin) else {
            return;
        };
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(app_id.to_owned(), (token.to_owned(), Instant::now() + keep));
    }
}

/// Where a process gets WeChat access tokens: its own cache in front of the deployment's
/// token item (when it has the table), which one process at a time refreshes with
/// `cgi-bin/stable_token`.
#[derive(Clone, Default)]
pub struct Tokens {
    pub(super) cache: TokenCache,
    pub(super) store: Option<DynamoStore>,
    pub(super) timings: TokenTimings,
}

impl Tokens {
    /// Tokens shared through the table.
    pub fn shared(store: DynamoStore, timings: TokenTimings) -> Self {
        Self {
            cache: TokenCache::default(),
            store: Some(store),
            timings,
        }
    }
}

/// A token as WeChat gave it.
pub(super) struct Fetched {
    pub(super) token: String,
    pub(super) fetched_at_ms: i64,
    pub(super) expires_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_token_is_dropped_unless_already_replaced() {
        let cache = TokenCache::default();
        let in_two_hours = now_ms() + 7_200_000;
        cache.put("wx1", "A", in_two_hours, REFRESH_BEFORE);
        assert_eq!(cache.get("wx1", None).as_deref(), Some("A"));
        assert_eq!(cache.get("wx1", Some("old")).as_deref(), Some("A"));
        assert_eq!(cache.get("wx1", Some("A")), None);
        assert_eq!(cache.get("wx1", None), None);
        // A token inside its renewal margin is not kept at all.
        cache.put("wx2", "B", now_ms() + 60_000, REFRESH_BEFORE);
        assert_eq!(cache.get("wx2", None), None);
    }

    fn stored(token: &str, expires_at_ms: i64, lease_until_ms: Option<i64>) -> StoredToken {
        StoredToken {
            token: Some(token.into()),
            expires_at_ms,
            fetched_at_ms: 1_000,
            lease_until_ms,
        }
    }

    #[test]
    fn a_fresh_stored_token_is_used_and_a_missing_one_fetched_unless_leased() {
        let margin = Duration::from_secs(240);
        let now = 10_000_000;
        let fresh = stored("A", now + 7_000_000, None);
        assert_eq!(
            decide(Some(&fresh), now, None, margin),
            TokenStep::Use {
                token: "A".into(),
                expires_at_ms: now + 7_000_000
            }
        );
        assert_eq!(
            decide(None, now, None, margin),
            TokenStep::Refresh(Replacing::Due {
                expiring_before_ms: now + 240_000
            })
        );
        let leased_empty = StoredToken {
            token: None,
            expires_at_ms: 0,
            fetched_at_ms: 0,
            lease_until_ms: Some(now + 5_000),
        };
        assert_eq!(
            decide(Some(&leased_empty), now, None, margin),
            TokenStep::Wait
        );
        // A lease that ran out is no lease.
        let abandoned = StoredToken {
            lease_until_ms: Some(now - 1),
            ..leased_empty
        };
        assert!(matches!(
            decide(Some(&abandoned), now, None, margin),
            TokenStep::Refresh(Replacing::Due { .. })
        ));
    }

    #[test]
    fn a_due_token_is_refreshed_by_one_process_while_the_others_keep_using_it() {
        let margin = Duration::from_secs(240);
        let now = 10_000_000;
        let due = stored("A", now + 100_000, None);
        assert!(matches!(
            decide(Some(&due), now, None, margin),
            TokenStep::Refresh(Replacing::Due { .. })
        ));
        let being_refreshed = stored("A", now + 100_000, Some(now + 10_000));
        assert_eq!(
            decide(Some(&being_refreshed), now, None, margin),
            TokenStep::Use {
                token: "A".into(),
                expires_at_ms: now + 100_000
            }
        );
        // Expired and being refreshed: nothing to use, wait.
        let expired = stored("A", now - 1, Some(now + 10_000));
        assert_eq!(decide(Some(&expired), now, None, margin), TokenStep::Wait);
    }

    #[test]
    fn a_refused_token_is_replaced_once_only_while_it_is_still_stored() {
        let margin = Duration::from_secs(240);
        let now = 10_000_000;
        let refusal = Refusal {
            token: "A".into(),
            since_ms: now - 10,
        };
        let still_a = stored("A", now + 7_000_000, None);
        assert_eq!(
            decide(Some(&still_a), now, Some(&refusal), margin),
            TokenStep::Refresh(Replacing::Refused("A".into()))
        );
        let a_being_replaced = stored("A", now + 7_000_000, Some(now + 10_000));
        assert_eq!(
            decide(Some(&a_being_replaced), now, Some(&refusal), margin),
            TokenStep::Wait
        );
        let replaced = stored("B", now + 7_000_000, None);
        assert!(matches!(
            decide(Some(&replaced), now, Some(&refusal), margin),
            TokenStep::Use { token, .. } if token == "B"
        ));
        // WeChat confirmed the same token after this refusal: it is used, not fetched again.
        let confirmed = StoredToken {
            fetched_at_ms: now,
            ..still_a
        };
        assert!(matches!(
            decide(Some(&confirmed), now, Some(&refusal), margin),
            TokenStep::Use { token, .. } if token == "A"
        ));
    }

    #[test]
    fn token_types_never_print_the_token() {
        let shown = format!(
            "{:?} {:?} {:?}",
            stored("SECRET-TOKEN", 1, None),
            TokenStep::Refresh(Replacing::Refused("SECRET-TOKEN".into())),
            TokenStep::Use {
                token: "SECRET-TOKEN".into(),
                expires_at_ms: 1
            }
        );
        assert!(!shown.contains("SECRET-TOKEN"), "{shown}");
    }
}
