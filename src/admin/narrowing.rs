//! The `/v1` shapes of quotas and of what a key or credential narrows of
//! its account (scopes, `allowed_cidrs`, `quota`), in requests and
//! responses; validated in `manage`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::nullable;
use crate::clock::rfc3339;
use crate::manage::{LimitsInput, LimitsPatch, QuotaInput, QuotaPatch};
use crate::store::{CredentialLimits, Quota, QuotaPeriod};

/// How much may be spent: `limit` per UTC `period` (`day`, calendar
/// `month`, or `none`: a fixed number of uses). Each admitted request
/// spends its route's `cost` (default 1).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Quota)]
pub(super) struct QuotaBody {
    #[serde(deserialize_with = "whole")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_u64)]
    limit: u64,
    period: Period,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = QuotaPeriod)]
pub(super) enum Period {
    Day,
    Month,
    None,
}

/// A whole number as JSON Schema's `integer` reads it: `1000` or `1000.0`.
fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use serde::de::Error as _;
    let n = <serde_json::Number as Deserialize>::deserialize(d)?;
    if let Some(v) = n.as_u64() {
        return Ok(v);
    }
    match n.as_f64() {
        // Past 2^53 a float is no exact count; the limit's maximum is far below.
        Some(f) if f.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&f) =>
        {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(f as u64)
        }
        _ => Err(D::Error::custom("must be a whole, positive number")),
    }
}

impl From<QuotaBody> for QuotaInput {
    fn from(q: QuotaBody) -> Self {
        QuotaInput {
            limit: q.limit,
            period: match q.period {
                Period::Day => QuotaPeriod::Day,
                Period::Month => QuotaPeriod::Month,
                Period::None => QuotaPeriod::None,
            },
        }
    }
}

/// A quota as stored: its limit, period and last reset.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct QuotaView {
    limit: u64,
    period: Period,
    /// When it was last reset (the current window starts then, or at the
    /// period's start if later).
    reset_at: Option<String>,
}

impl From<Quota> for QuotaView {
    fn from(q: Quota) -> Self {
        QuotaView {
            limit: q.limit,
            period: match q.period {
                QuotaPeriod::Day => Period::Day,
                QuotaPeriod::Month => Period::Month,
                QuotaPeriod::None => Period::None,
            },
            reset_at: q.reset_at.map(rfc3339),
        }
    }
}

/// A quota change in a PATCH: `quota` sets or (with `null`) removes it;
/// `reset_quota: true` starts its current window afresh.
pub(super) fn quota_patch(quota: Option<Option<QuotaBody>>, reset: bool) -> QuotaPatch {
    QuotaPatch {
        quota: quota.map(|q| q.map(Into::into)),
        reset,
    }
}

/// What a new key or credential narrows of its account.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub(super) struct LimitsBody {
    /// A subset of the account's scopes: what this credential may do
    /// (default: all of the account's).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Client addresses (CIDRs, as resolved through `trusted_proxies`)
    /// the credential may be used from; elsewhere it is refused with 403
    /// `address_not_allowed` (default: any).
    #[serde(default)]
    pub allowed_cidrs: Option<Vec<String>>,
    #[serde(default)]
    pub quota: Option<QuotaBody>,
}

impl From<LimitsBody> for LimitsInput {
    fn from(b: LimitsBody) -> Self {
        LimitsInput {
            scopes: b.scopes,
            allowed_cidrs: b.allowed_cidrs,
            quota: b.quota.map(Into::into),
        }
    }
}

/// A change of what a key or credential narrows; `null` returns a field
/// to its account's.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub(super) struct LimitsPatchBody {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub scopes: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_cidrs: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<QuotaBody>)]
    pub quota: Option<Option<QuotaBody>>,
    /// Starts the quota's current window afresh.
    #[serde(default)]
    pub reset_quota: bool,
}

impl From<LimitsPatchBody> for LimitsPatch {
    fn from(b: LimitsPatchBody) -> Self {
        LimitsPatch {
            scopes: b.scopes,
            allowed_cidrs: b.allowed_cidrs,
            quota: quota_patch(b.quota, b.reset_quota),
        }
    }
}

/// What a key or credential narrows, as responses show it (absent: the
/// account's).
#[derive(Debug, Default, Serialize, ToSchema)]
pub(super) struct LimitsView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_cidrs: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaView>,
}

impl From<CredentialLimits> for LimitsView {
    fn from(l: CredentialLimits) -> Self {
        LimitsView {
            scopes: l.scopes,
            allowed_cidrs: l
                .allowed_cidrs
                .map(|c| c.iter().map(ToString::to_string).collect()),
            quota: l.quota.map(Into::into),
        }
    }
}
