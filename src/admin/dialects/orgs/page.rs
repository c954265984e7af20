//! The orgs dialect's cursor pages: `limit` (1–100, default 50) items
//! after `after` or before `before` (both item ids), answered with
//! `page_info`. The paging itself is `manage`'s, both ways.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::admin::dialects::{uuid_any, QueryPairs};
use crate::admin::ApiError;
use crate::manage::{Cursor, Listing};

const DEFAULT_LIMIT: u32 = 50;

/// Where the page starts and how long it is, as the query asks.
pub(super) fn requested(q: &QueryPairs) -> Result<(Cursor, u32), ApiError> {
    let bad = |param: &'static str, m: &str| {
        ApiError::invalid("invalid_value", format!("{param}: {m}"), Some(param.into()))
    };
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| bad("limit", "must be an integer from 1 to 100"))?,
    };
    let id = |param: &'static str| {
        q.get(param)
            .map(|c| uuid_any(c).ok_or_else(|| bad(param, "is not a cursor")))
            .transpose()
    };
    let cursor = match (id("after")?, id("before")?) {
        (Some(_), Some(_)) => return Err(bad("before", "use after or before, not both")),
        (Some(a), None) => Cursor::After(a),
        (None, Some(b)) => Cursor::Before(b),
        (None, None) => Cursor::Start,
    };
    Ok((cursor, limit))
}

/// `page_info` of a page.
pub(super) fn page_info<T>(listing: &Listing<T>, id: impl Fn(&T) -> Uuid) -> Value {
    let mut info = json!({
        "has_next_page": listing.has_more,
        "has_prev_page": listing.has_prev,
    });
    if let (Some(first), Some(last)) = (listing.data.first(), listing.data.last()) {
        info["start_cursor"] = json!(id(first));
        info["end_cursor"] = json!(id(last));
    }
    info
}
