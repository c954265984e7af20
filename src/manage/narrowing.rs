//! What a key or credential may do less than its account — fewer scopes,
//! fewer client addresses, its own quota — and quotas on accounts, with the
//! organization's longest credential lifetime. Validated here once for
//! `/v1` and every dialect. The delegation rule that holds for scopes and
//! rate limits holds for quotas: an owner whose own account has a quota
//! hands out quotas only at or below it, of the same period.

use ipnet::IpNet;
use uuid::Uuid;

use super::{from_store, Actor, Error, Manager, Result};
use crate::scope::ScopeSet;
use crate::store::{CredentialLimits, Quota, QuotaPeriod, ServiceAccount};

/// The most a quota can count (well within every backend's integers).
const MAX_QUOTA: u64 = 1_000_000_000_000;
/// CIDRs one credential may list.
const MAX_CIDRS: usize = 100;

/// What a quota is set on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QuotaOn {
    Account,
    /// A key or client credential (it spends its account's too).
    Credential,
}

/// A quota as a caller sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaInput {
    pub limit: u64,
    pub period: QuotaPeriod,
}

/// A change of a quota: `quota` as in every PATCH (`None` leaves it,
/// `Some(None)` removes it), and `reset` starts its window afresh.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuotaPatch {
    pub quota: Option<Option<QuotaInput>>,
    pub reset: bool,
}

/// The narrowing of a new key or credential, as a caller asks for it.
#[derive(Debug, Clone, Default)]
pub struct LimitsInput {
    pub scopes: Option<Vec<String>>,
    pub allowed_cidrs: Option<Vec<String>>,
    pub quota: Option<QuotaInput>,
}

/// A change of a key's or credential's narrowing (`None`: unchanged;
/// `Some(None)`: back to the account's).
#[derive(Debug, Clone, Default)]
pub struct LimitsPatch {
    pub scopes: Option<Option<Vec<String>>>,
    pub allowed_cidrs: Option<Option<Vec<String>>>,
    pub quota: QuotaPatch,
}

impl Manager {
    /// `q` validated, and allowed to `actor`. On an account, no quota
    /// means unlimited; on a key or credential, only "nothing beyond the
    /// account's", which any manager may leave.
    pub(super) async fn delegable_quota(
        &self,
        actor: &Actor,
        q: Option<QuotaInput>,
        on: QuotaOn,
    ) -> Result<Option<Quota>> {
        let quota = q.map(valid_quota).transpose()?;
        if actor.admin || (quota.is_none() && on == QuotaOn::Credential) {
            return Ok(quota);
        }
        // SECURITY: what an owner hands out never outspends the owner.
        let own = self
            .store
            .account(actor.account_id)
            .await
            .map_err(|e| from_store(e, "service account"))?
            .and_then(|a| a.quota);
        match (own, quota) {
            (None, _) => Ok(quota),
            (Some(own), Some(q)) if q.period == own.period && q.limit <= own.limit => Ok(quota),
            _ => Err(Error::Forbidden(
                "an owner may set a quota only at or below its own, of the same period; raising one is for platform admins",
            )),
        }
    }

    /// A quota after `patch` at `now`.
    pub(super) async fn patched_quota(
        &self,
        actor: &Actor,
        current: Option<Quota>,
        patch: QuotaPatch,
        now: i64,
        on: QuotaOn,
    ) -> Result<Option<Quota>> {
        let mut quota = match patch.quota {
            Some(q) => self.delegable_quota(actor, q, on).await?,
            None => current,
        };
        if patch.reset {
            // SECURITY: a reset hands out a fresh window, as often as it is
            // asked for: spending without bound. That is for platform admins.
            if !actor.admin {
                return Err(Error::Forbidden("only platform admins may reset a quota"));
            }
            quota = quota.map(|q| Quota {
                reset_at: Some(now),
                ..q
            });
        }
        Ok(quota)
    }

    /// A new key's or credential's narrowing of `account`, validated.
    pub(super) async fn valid_limits(
        &self,
        actor: &Actor,
        account: &ServiceAccount,
        input: LimitsInput,
    ) -> Result<CredentialLimits> {
        Ok(CredentialLimits {
            scopes: input
                .scopes
                .map(|s| narrower_scopes(account, s))
                .transpose()?,
            allowed_cidrs: input.allowed_cidrs.map(valid_cidrs).transpose()?,
            quota: self
                .delegable_quota(actor, input.quota, QuotaOn::Credential)
                .await?,
        })
    }

    /// `limits` after `patch`.
    pub(super) async fn patched_limits(
        &self,
        actor: &Actor,
        account: &ServiceAccount,
        mut limits: CredentialLimits,
        patch: LimitsPatch,
    ) -> Result<CredentialLimits> {
        if let Some(scopes) = patch.scopes {
            limits.scopes = scopes.map(|s| narrower_scopes(account, s)).transpose()?;
        }
        if let Some(cidrs) = patch.allowed_cidrs {
            limits.allowed_cidrs = cidrs.map(valid_cidrs).transpose()?;
        }
        limits.quota = self
            .patched_quota(
                actor,
                limits.quota,
                patch.quota,
                self.now(),
                QuotaOn::Credential,
            )
            .await?;
        Ok(limits)
    }

    /// The organization's longest credential lifetime (ms), if it sets one.
    pub(super) async fn lifetime_cap(&self, organization_id: Uuid) -> Result<Option<i64>> {
        Ok(self
            .store
            .organization(organization_id)
            .await
            .map_err(|e| from_store(e, "organization"))?
            .and_then(|o| o.max_credential_lifetime)
            .map(|secs| secs.saturating_mul(1000)))
    }
}

/// A key or credential made at `now` under `cap` must expire within it.
pub(super) fn within_lifetime(cap: Option<i64>, expires_at: Option<i64>, now: i64) -> Result<()> {
    let Some(cap) = cap else {
        return Ok(());
    };
    match expires_at {
        Some(e) if e <= now.saturating_add(cap) => Ok(()),
        Some(_) => Err(Error::invalid(
            "expires_at",
            format!(
                "must be within the organization's max_credential_lifetime ({})",
                lifetime_text(cap / 1000)
            ),
        )),
        None => Err(Error::invalid(
            "expires_at",
            format!(
                "is required: the organization's max_credential_lifetime is {}",
                lifetime_text(cap / 1000)
            ),
        )),
    }
}

/// A lifetime in seconds as config and the API write it: `90d`, `12h`, …
pub fn lifetime_text(secs: i64) -> String {
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs % n == 0 && secs >= n {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

/// `"90d"`, `"12h"`, `"30m"`: a whole number (1 to 999999) of days, hours
/// or minutes → seconds. Exactly what the API document's pattern states.
pub(super) fn valid_lifetime(s: &str) -> Result<i64> {
    const PARAM: &str = "max_credential_lifetime";
    let bad = || {
        Error::invalid(
            PARAM,
            format!("{s:?} is not a lifetime such as \"90d\", \"12h\" or \"30m\""),
        )
    };
    let (digits, unit) = s.split_at(s.len().saturating_sub(1));
    let per = match unit {
        "d" => 86_400,
        "h" => 3600,
        "m" => 60,
        _ => return Err(bad()),
    };
    if digits.is_empty()
        || digits.len() > 6
        || digits.starts_with('0')
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let n: i64 = digits.parse().map_err(|_| bad())?;
    Ok(n * per)
}

fn valid_quota(q: QuotaInput) -> Result<Quota> {
    if q.limit == 0 || q.limit > MAX_QUOTA {
        return Err(Error::invalid(
            "quota.limit",
            format!("must be an integer from 1 to {MAX_QUOTA}"),
        ));
    }
    Ok(Quota {
        limit: q.limit,
        period: q.period,
        reset_at: None,
    })
}

/// A key's scopes: a subset of its account's.
fn narrower_scopes(account: &ServiceAccount, scopes: Vec<String>) -> Result<Vec<String>> {
    let held = ScopeSet::new(&account.scopes);
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for s in scopes {
        if !held.contains(&s) {
            return Err(Error::invalid(
                "scopes",
                format!("{s:?} is not one of the account's scopes"),
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

fn valid_cidrs(cidrs: Vec<String>) -> Result<Vec<IpNet>> {
    if cidrs.is_empty() || cidrs.len() > MAX_CIDRS {
        return Err(Error::invalid(
            "allowed_cidrs",
            format!("list 1 to {MAX_CIDRS} CIDRs, or null for any address"),
        ));
    }
    cidrs
        .iter()
        .map(|c| {
            // A bare address is its own /32 or /128.
            c.parse::<IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| Error::invalid("allowed_cidrs", format!("{c:?} is not a CIDR")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_truncate_and_name_the_bad_one() {
        let nets = valid_cidrs(vec!["10.1.2.3/8".into(), "::1".into()]).unwrap();
        assert_eq!(nets[0].to_string(), "10.0.0.0/8");
        assert_eq!(nets[1].to_string(), "::1/128");
        let e = valid_cidrs(vec!["10.0.0.0/33".into()]).unwrap_err();
        assert!(format!("{e:?}").contains("allowed_cidrs"), "{e:?}");
        assert!(valid_cidrs(vec![]).is_err());
    }

    #[test]
    fn lifetimes_round_trip_as_text() {
        assert_eq!(valid_lifetime("90d").unwrap(), 90 * 86_400);
        assert_eq!(lifetime_text(90 * 86_400), "90d");
        assert_eq!(lifetime_text(36 * 3600), "36h");
        assert!(valid_lifetime("soon").is_err());
        assert!(valid_lifetime("1s").is_err());
        for bad in ["", "d", "0d", "07d", "1000000d", "90 d", "90D", "1.5h"] {
            assert!(valid_lifetime(bad).is_err(), "{bad:?}");
        }
        assert_eq!(valid_lifetime("1m").unwrap(), 60);
    }

    #[test]
    fn a_quota_of_zero_is_refused_naming_the_field() {
        let e = valid_quota(QuotaInput {
            limit: 0,
            period: QuotaPeriod::Day,
        })
        .unwrap_err();
        assert!(format!("{e:?}").contains("quota.limit"), "{e:?}");
    }
}
