//! Cursor pages of a list held in memory: `limit` (1–100, default 50) items
//! after `after` or before `before` (both item ids), with `page_info`.

use serde_json::{json, Value};
use uuid::Uuid;

use super::Call;
use crate::admin::dialects::uuid_any;
use crate::admin::ApiError;

const DEFAULT_LIMIT: usize = 50;

/// A page of `items` (ascending by id) by `after` / `before` cursors.
pub(super) fn page<T>(
    call: &Call,
    items: Vec<T>,
    id: impl Fn(&T) -> Uuid,
) -> Result<(Vec<T>, Value), ApiError> {
    #[derive(serde::Deserialize)]
    struct Q {
        limit: Option<String>,
        after: Option<String>,
        before: Option<String>,
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(call.parts.uri.query().unwrap_or("")).unwrap_or_default();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let q = Q {
        limit: get("limit"),
        after: get("after"),
        before: get("before"),
    };
    let bad = |param: &'static str, m: &str| {
        ApiError::invalid("invalid_value", format!("{param}: {m}"), Some(param.into()))
    };
    let limit = match q.limit {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| bad("limit", "must be an integer from 1 to 100"))?,
    };
    let cursor = |c: Option<String>, param: &'static str| {
        c.map(|c| {
            let at = uuid_any(&c).ok_or_else(|| bad(param, "is not a cursor"))?;
            items
                .iter()
                .position(|i| id(i) == at)
                .ok_or_else(|| bad(param, "names nothing in this list"))
        })
        .transpose()
    };
    let (after, before) = (cursor(q.after, "after")?, cursor(q.before, "before")?);
    let (start, end) = match (after, before) {
        (Some(_), Some(_)) => return Err(bad("before", "use after or before, not both")),
        (Some(a), None) => (a + 1, (a + 1 + limit).min(items.len())),
        (None, Some(b)) => (b.saturating_sub(limit), b),
        (None, None) => (0, limit.min(items.len())),
    };
    let mut info = json!({
        "has_next_page": end < items.len(),
        "has_prev_page": start > 0,
    });
    let taken: Vec<T> = items.into_iter().skip(start).take(end - start).collect();
    if let (Some(first), Some(last)) = (taken.first(), taken.last()) {
        info["start_cursor"] = json!(id(first));
        info["end_cursor"] = json!(id(last));
    }
    Ok((taken, info))
}
