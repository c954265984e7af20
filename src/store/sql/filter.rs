//! The conditions list queries share: an [`AccountFilter`] as SQL, and
//! keyset pages in either direction. Written once for every list.

use super::rows::{after, limit};
use super::stmt::Stmt;
use crate::store::{AccountFilter, AccountState, Keyset};

/// Appends the page's cursor condition on `col`, its order and its limit.
/// Backwards (`before`), the query reads the nearest items first; see
/// [`ascending`].
pub(super) fn keyset(stmt: &mut Stmt, col: &str, page: Keyset) {
    match page.before {
        Some(before) => {
            stmt.push_arg(&format!(" AND {col} < "), before);
            stmt.push_arg(&format!(" ORDER BY {col} DESC LIMIT "), limit(page));
        }
        None => {
            stmt.push_arg(&format!(" AND {col} > "), after(page));
            stmt.push_arg(&format!(" ORDER BY {col} LIMIT "), limit(page));
        }
    }
}

/// The rows of a [`keyset`] query in ascending id order.
pub(super) fn ascending<T>(mut rows: Vec<T>, page: Keyset) -> Vec<T> {
    if page.before.is_some() {
        rows.reverse();
    }
    rows
}

/// Appends `filter` as ` AND …` conditions on `a`.
pub(super) fn where_matching(stmt: &mut Stmt, filter: &AccountFilter, now_ms: i64) {
    if let Some(org) = filter.organization_id {
        stmt.push_arg(" AND a.organization_id = ", org);
    }
    if let Some(project) = filter.project_id {
        stmt.push_arg(" AND a.project_id = ", project);
    }
    match filter.in_project {
        Some(true) => stmt.push(" AND a.project_id IS NOT NULL"),
        Some(false) => stmt.push(" AND a.project_id IS NULL"),
        None => {}
    }
    if let Some(name) = &filter.name {
        stmt.push_arg(" AND a.name = ", name);
    }
    if filter.states.is_empty() {
        return;
    }
    // Every state but closed is one condition an index can serve.
    let open = [
        AccountState::Active,
        AccountState::Disabled,
        AccountState::Expired,
    ];
    if !filter.states.contains(&AccountState::Closed)
        && open.iter().all(|s| filter.states.contains(s))
    {
        stmt.push(" AND a.closed_at IS NULL");
        return;
    }
    stmt.push(" AND (");
    for (i, state) in filter.states.iter().enumerate() {
        if i > 0 {
            stmt.push(" OR ");
        }
        match state {
            AccountState::Closed => stmt.push("a.closed_at IS NOT NULL"),
            AccountState::Disabled => stmt.push("(a.closed_at IS NULL AND a.enabled = FALSE)"),
            AccountState::Expired => {
                stmt.push_arg(
                    "(a.closed_at IS NULL AND a.enabled = TRUE AND a.expires_at <= ",
                    now_ms,
                );
                stmt.push(")");
            }
            AccountState::Active => {
                stmt.push_arg(
                    "(a.closed_at IS NULL AND a.enabled = TRUE \
                     AND (a.expires_at IS NULL OR a.expires_at > ",
                    now_ms,
                );
                stmt.push("))");
            }
        }
    }
    stmt.push(")");
}
