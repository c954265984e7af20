//! `api_key.expiring`: a warning 7 days and 1 day before a key expires,
//! once each across the fleet. Each warning is a write through the one
//! write funnel (audited, on the change feed, delivered like any event)
//! together with a row that says it was given; the row's key refuses a
//! second warning, so replicas racing to give it commit it once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use crate::clock::rfc3339;
use crate::manage::{self, Audit, Manager};
use crate::store::Write;

const DAY_MS: i64 = 24 * 3600 * 1000;
const PAGE: u32 = 200;

/// (name, window start, window end) ahead of now: a key expiring within a
/// day gets the 1-day warning only; one within a week, the 7-day warning.
const WARNINGS: [(&str, i64, i64); 2] = [("1d", 0, DAY_MS), ("7d", DAY_MS, 7 * DAY_MS)];

/// Looks for keys to warn of every `every` until `shutdown` flips.
pub async fn run(manager: Arc<Manager>, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = warn_due(&manager).await {
                    tracing::warn!(error = %e, "expiry warnings could not be given");
                }
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// Gives every warning due now; returns how many this replica gave.
pub async fn warn_due(manager: &Manager) -> manage::Result<usize> {
    let mut given = 0;
    for (name, from, to) in WARNINGS {
        loop {
            let now = manager.now();
            let due = manager
                .store
                .expiring_keys(now + from, now + to, name, PAGE)
                .await
                .map_err(|e| manage::from_store(e, "api key"))?;
            let n = due.len();
            for (key, account) in due {
                let audit = Audit {
                    action: "api_key.expiring",
                    target_type: "api_key",
                    target_id: key.id,
                    organization_id: Some(account.organization_id),
                    details: json!({
                        "service_account_id": account.id,
                        "redacted_value": key.redacted,
                        "name": key.name,
                        "expires_at": key.expires_at.map(rfc3339),
                        "warning": name,
                    }),
                };
                let write = Write::WarnExpiry {
                    key_id: key.id,
                    threshold: name,
                    at: now,
                };
                match manager.commit(None, "api key", vec![write], audit).await {
                    Ok(_) => given += 1,
                    // Another replica gave it first.
                    Err(manage::Error::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            if n < PAGE as usize {
                break;
            }
        }
    }
    Ok(given)
}
