//! What an account has used: its traffic per day and route, and the quotas
//! it and its live keys and credentials spend from.

use uuid::Uuid;

use super::{from_store, Actor, Error, Manager, Result};
use crate::store::{Quota, Traffic};

/// The longest stretch one usage report covers.
const MAX_DAYS: i64 = 366;
const DAY_MS: i64 = 86_400_000;

/// Whose quota: the account's, one of its keys', or one of its
/// credentials'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaOwner {
    Account,
    ApiKey,
    Credential,
}

/// An account's usage report, before the live spending is added.
#[derive(Debug)]
pub struct Usage {
    pub account_id: Uuid,
    pub from_day: i64,
    pub to_day: i64,
    pub traffic: Vec<Traffic>,
    pub quotas: Vec<(QuotaOwner, Uuid, Quota)>,
}

impl Manager {
    /// `from` and `to`: days (`2026-12-05`) or RFC 3339 times, both
    /// inclusive; default the last 30 days.
    pub async fn usage(
        &self,
        actor: &Actor,
        account_id: Uuid,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Usage> {
        let account = self.account(actor, account_id).await?;
        let today = crate::quota::window::day_start(self.now());
        let to_day = to.map(|t| day("to", t)).transpose()?.unwrap_or(today);
        let from_day = from
            .map(|f| day("from", f))
            .transpose()?
            .unwrap_or(to_day - 29 * DAY_MS);
        if from_day > to_day {
            return Err(Error::invalid("from", "must not be after to"));
        }
        if (to_day - from_day) / DAY_MS >= MAX_DAYS {
            return Err(Error::invalid(
                "from",
                format!("a report covers at most {MAX_DAYS} days"),
            ));
        }
        let traffic = self
            .store
            .traffic_of(account_id, from_day, to_day)
            .await
            .map_err(|e| from_store(e, "usage"))?;
        let now = self.now();
        let mut quotas = Vec::new();
        if let Some(q) = account.quota {
            quotas.push((QuotaOwner::Account, account.id, q));
        }
        let keys = self
            .store
            .keys_of(account_id)
            .await
            .map_err(|e| from_store(e, "api key"))?;
        for k in keys.iter().filter(|k| k.is_live(now)) {
            if let Some(q) = k.limits.quota {
                quotas.push((QuotaOwner::ApiKey, k.id, q));
            }
        }
        let credentials = self
            .store
            .credentials_of(account_id)
            .await
            .map_err(|e| from_store(e, "credential"))?;
        for c in credentials.iter().filter(|c| c.is_live(now)) {
            if let Some(q) = c.limits.quota {
                quotas.push((QuotaOwner::Credential, c.id, q));
            }
        }
        Ok(Usage {
            account_id,
            from_day,
            to_day,
            traffic,
            quotas,
        })
    }
}

/// A day (`YYYY-MM-DD`) or a time (RFC 3339) → the start of its UTC day.
fn day(param: &'static str, s: &str) -> Result<i64> {
    let ms = if s.len() == 10 {
        crate::clock::parse_rfc3339(&format!("{s}T00:00:00Z"))
    } else {
        crate::clock::parse_rfc3339(s)
    };
    ms.map(crate::quota::window::day_start).ok_or_else(|| {
        Error::invalid(
            param,
            format!("{s:?} is not a day (2026-12-05) or an RFC 3339 time"),
        )
    })
}
