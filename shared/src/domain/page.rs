//! List paging: `?limit=` and an opaque `next_cursor`.

use serde::Serialize;

use crate::Error;

/// Page size when the client gives none.
pub const DEFAULT_LIMIT: u16 = 50;
/// Largest page a client may ask for.
pub const MAX_LIMIT: u16 = 100;

/// One page request: how many items, and where the previous page stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// 1 to [`MAX_LIMIT`].
    pub limit: u16,
    /// The `next_cursor` of the previous page, as the client sent it (the adapter decodes it).
    pub cursor: Option<String>,
}

impl PageRequest {
    /// Parses `limit` and `cursor` query values. A limit outside 1..=100 or not a number is a
    /// 400 (`invalid_limit`) rather than silently clamped, so a UI bug shows at once.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, Error> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<u16>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    Error::bad_request(
                        "invalid_limit",
                        format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                    )
                })?,
        };
        let cursor = cursor.filter(|c| !c.is_empty()).map(str::to_owned);
        Ok(Self { limit, cursor })
    }
}

/// A list response: `{"items": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// Pass back as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_to_fifty() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn limit_outside_one_to_hundred_is_refused() {
        for bad in ["0", "101", "-1", "ten", "", "1.5"] {
            let err = PageRequest::parse(Some(bad), None).unwrap_err();
            assert_eq!(err.code(), "invalid_limit", "{bad}");
        }
        assert_eq!(PageRequest::parse(Some("100"), None).unwrap().limit, 100);
    }

    #[test]
    fn empty_cursor_means_first_page() {
        assert_eq!(PageRequest::parse(None, Some("")).unwrap().cursor, None);
    }
}
