//! The metering statements (see `store::metering`): increments upserted,
//! so every replica's flush adds to the same rows.

use uuid::Uuid;

use super::rows::Cols;
use super::stmt::Stmt;
use crate::store::metering::{Spend, Spent, Traffic};
use crate::store::{Error, Result};

fn amount(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn record(spends: &[Spend], traffic: &[Traffic]) -> Vec<Stmt> {
    let spends = spends.iter().map(|s| {
        Stmt::new(
            "INSERT INTO quota_spend (subject_id, window_start, window_end, spent) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (subject_id, window_start) \
             DO UPDATE SET spent = quota_spend.spent + excluded.spent",
        )
        .arg(s.subject)
        .arg(s.window_start)
        .arg(s.window_end)
        .arg(amount(s.amount))
    });
    let traffic = traffic.iter().map(|t| {
        Stmt::new(
            "INSERT INTO usage_daily (account_id, day, route, outcome, requests, spent) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, day, route, outcome) \
             DO UPDATE SET requests = usage_daily.requests + excluded.requests, \
             spent = usage_daily.spent + excluded.spent",
        )
        .arg(t.account_id)
        .arg(t.day)
        .arg(&t.route)
        .arg(&t.outcome)
        .arg(amount(t.requests))
        .arg(amount(t.spent))
    });
    spends.chain(traffic).collect()
}

/// Every window still open at `now_ms`.
pub(super) fn open_windows(now_ms: i64) -> Stmt {
    Stmt::new(
        "SELECT subject_id, window_start, window_end, spent FROM quota_spend WHERE window_end > $1",
    )
    .arg(now_ms)
}

pub(super) fn spent_from(row: &impl Cols) -> Result<Spent> {
    Ok(Spent {
        subject: row.uuid("subject_id")?,
        window_start: row.int("window_start")?,
        window_end: row.int("window_end")?,
        spent: u64::try_from(row.int("spent")?).map_err(|_| Error::Corrupt("negative spend"))?,
    })
}

pub(super) fn traffic_of(account_id: Uuid, from_day: i64, to_day: i64) -> Stmt {
    Stmt::new(
        "SELECT account_id, day, route, outcome, requests, spent FROM usage_daily \
         WHERE account_id = $1 AND day >= $2 AND day <= $3 ORDER BY day, route, outcome",
    )
    .arg(account_id)
    .arg(from_day)
    .arg(to_day)
}

pub(super) fn traffic_from(row: &impl Cols) -> Result<Traffic> {
    let count = |c: &str| -> Result<u64> {
        u64::try_from(row.int(c)?).map_err(|_| Error::Corrupt("negative count"))
    };
    Ok(Traffic {
        account_id: row.uuid("account_id")?,
        day: row.int("day")?,
        route: row.text("route")?,
        outcome: row.text("outcome")?,
        requests: count("requests")?,
        spent: count("spent")?,
    })
}

/// Accounts the initial load must read in full: those with a quota, or
/// with a live key or credential that narrows them. Each arm's WHERE is
/// what a partial index of migration 0011 (or 0009's
/// `federated_identities_live`) says, term for term: the read at start is
/// as long as its answer, not a pass over every account and key.
pub(super) const NARROWED_ACCOUNTS: &str = "SELECT id FROM service_accounts \
     WHERE quota IS NOT NULL AND closed_at IS NULL \
     UNION SELECT service_account_id AS id FROM api_keys WHERE revoked_at IS NULL \
     AND (quota IS NOT NULL OR scopes IS NOT NULL OR allowed_cidrs IS NOT NULL) \
     UNION SELECT service_account_id AS id FROM client_credentials WHERE deleted_at IS NULL \
     AND (quota IS NOT NULL OR scopes IS NOT NULL OR allowed_cidrs IS NOT NULL) \
     UNION SELECT service_account_id AS id FROM federated_identities WHERE deleted_at IS NULL";
