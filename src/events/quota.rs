//! `quota.exhausted`: once per quota window across the fleet, when a
//! request spends a quota's last unit or finds it spent. The request path
//! only notes it (`quota::Meter::note_exhausted`); this task writes it
//! through the one write funnel, with a row whose key refuses a second
//! one, so replicas that both noticed commit it once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use crate::clock::rfc3339;
use crate::manage::{self, Audit, Manager};
use crate::quota::{Charge, Metering};
use crate::store::Write;

/// How often noted exhaustions are written.
pub const EVERY: Duration = Duration::from_secs(1);

/// Writes what the meter noted every [`EVERY`] until `shutdown` flips.
pub async fn run(
    manager: Arc<Manager>,
    metering: Arc<Metering>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                for c in metering.meter.take_exhausted(manager.now()) {
                    if let Err(e) = exhausted(&manager, &c).await {
                        tracing::warn!(error = %e, "quota.exhausted could not be recorded");
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// Records that `c`'s window is spent (once: a second call is no error).
pub async fn exhausted(manager: &Manager, c: &Charge) -> manage::Result<()> {
    let Some(account) = manager
        .store
        .account(c.account)
        .await
        .map_err(|e| manage::from_store(e, "service account"))?
    else {
        return Ok(()); // gone meanwhile
    };
    let now = manager.now();
    // Whose quota: the account's, one of its keys', or a client credential's.
    let owner = if c.subject == c.account {
        "service_account"
    } else if manager
        .store
        .keys_of(account.id)
        .await
        .map_err(|e| manage::from_store(e, "api key"))?
        .iter()
        .any(|k| k.id == c.subject)
    {
        "api_key"
    } else {
        "credential"
    };
    let audit = Audit {
        action: "quota.exhausted",
        target_type: owner,
        target_id: c.subject,
        organization_id: Some(account.organization_id),
        details: json!({
            "service_account_id": account.id,
            "owner": owner,
            "limit": c.limit,
            "window_start": rfc3339(c.window.start),
            "resets_at": (c.window.end != i64::MAX).then(|| rfc3339(c.window.end)),
        }),
    };
    let write = Write::QuotaExhausted {
        account_id: account.id,
        subject_id: c.subject,
        window_start: c.window.start,
        at: now,
    };
    match manager.commit(None, "quota", vec![write], audit).await {
        Ok(_) | Err(manage::Error::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
