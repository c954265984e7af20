//! `keygate quota …`: set, remove and reset the quota of an account, key or
//! client credential, and read an account's usage.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[derive(Debug, Subcommand)]
pub enum QuotaCmd {
    /// Set a quota: `1000/day`, `100000/month` or `500/none` (500 uses).
    Set {
        account: String,
        /// LIMIT/PERIOD, e.g. `1000/day`.
        quota: String,
        #[command(flatten)]
        on: On,
    },
    /// Remove a quota.
    Remove {
        account: String,
        #[command(flatten)]
        on: On,
    },
    /// Start the current window afresh (nothing spent).
    Reset {
        account: String,
        #[command(flatten)]
        on: On,
    },
    /// Requests per day and route, and the quotas spent.
    Usage {
        account: String,
        /// First day (2026-12-01); default 29 days before --to.
        #[arg(long)]
        from: Option<String>,
        /// Last day; default today (UTC).
        #[arg(long)]
        to: Option<String>,
    },
}

/// Whose quota: the account's unless a key or credential is named.
#[derive(Debug, Args)]
pub struct On {
    /// An API key of the account (its id).
    #[arg(long, conflicts_with = "credential")]
    key: Option<String>,
    /// A client credential of the account (its id).
    #[arg(long)]
    credential: Option<String>,
}

impl On {
    fn path(&self, account: &str) -> String {
        match (&self.key, &self.credential) {
            (Some(k), _) => format!("/v1/service-accounts/{account}/api-keys/{k}"),
            (_, Some(c)) => format!("/v1/service-accounts/{account}/credentials/{c}"),
            _ => format!("/v1/service-accounts/{account}"),
        }
    }
}

/// `1000/day` → `{"limit": 1000, "period": "day"}`.
pub fn parse_quota(s: &str) -> Result<Value, String> {
    let (limit, period) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not LIMIT/PERIOD, e.g. 1000/day"))?;
    let limit: u64 = limit
        .trim()
        .parse()
        .map_err(|_| format!("{limit:?} is not a whole number"))?;
    let period = period.trim();
    if !["day", "month", "none"].contains(&period) {
        return Err(format!("{period:?} is not one of day, month, none"));
    }
    Ok(json!({ "limit": limit, "period": period }))
}

/// The admin request a quota verb makes.
pub fn request(cmd: &QuotaCmd) -> Result<(&'static str, String, Option<Value>), String> {
    Ok(match cmd {
        QuotaCmd::Set { account, quota, on } => (
            "PATCH",
            on.path(account),
            Some(json!({ "quota": parse_quota(quota)? })),
        ),
        QuotaCmd::Remove { account, on } => {
            ("PATCH", on.path(account), Some(json!({ "quota": null })))
        }
        QuotaCmd::Reset { account, on } => (
            "PATCH",
            on.path(account),
            Some(json!({ "reset_quota": true })),
        ),
        QuotaCmd::Usage { account, from, to } => {
            let mut q: Vec<String> = Vec::new();
            q.extend(from.as_ref().map(|f| format!("from={f}")));
            q.extend(to.as_ref().map(|t| format!("to={t}")));
            let query = if q.is_empty() {
                String::new()
            } else {
                format!("?{}", q.join("&"))
            };
            (
                "GET",
                format!("/v1/service-accounts/{account}/usage{query}"),
                None,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_or_say_what_is_wrong() {
        assert_eq!(
            parse_quota("1000/day").unwrap(),
            json!({"limit": 1000, "period": "day"})
        );
        assert!(parse_quota("1000").unwrap_err().contains("LIMIT/PERIOD"));
        assert!(parse_quota("-1/day").unwrap_err().contains("whole number"));
        assert!(parse_quota("5/week").unwrap_err().contains("week"));
    }
}
