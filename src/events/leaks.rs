//! A secret reported leaked (GitHub secret scanning): checked offline first
//! (prefix and checksum — garbage never reaches the store), then looked up
//! by hash. A live API key is revoked (or, with `action = "report"`, left
//! working) and the report is audited as `api_key.leaked`; a client secret
//! likewise, its credential deleted, as `credential.leaked`. Both are
//! writes through the one write funnel, so this replica refuses the key
//! before the report is answered and every other replica within its sync.

use std::sync::Arc;

use serde_json::json;

use crate::config::LeakAction;
use crate::manage::{self, Audit, Manager};
use crate::secret::{ApiKeyFormat, KeyHash};
use crate::store::{Found, Write};

/// Longest `url` / `source` kept from a report.
const MAX_FIELD: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// A secret keygate issued (live or not).
    TruePositive,
    /// Not one: wrong shape, failed checksum, or unknown.
    FalsePositive,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::TruePositive => "true_positive",
            Label::FalsePositive => "false_positive",
        }
    }
}

/// One reported token and where it was found.
pub struct Report<'a> {
    pub token: &'a str,
    pub url: Option<&'a str>,
    pub source: Option<&'a str>,
}

pub struct Leaks {
    manager: Arc<Manager>,
    keys: ApiKeyFormat,
    secrets: ApiKeyFormat,
    action: LeakAction,
}

impl Leaks {
    pub fn new(manager: Arc<Manager>, prefix: &str, action: LeakAction) -> Self {
        Self {
            manager,
            keys: ApiKeyFormat::new(prefix),
            secrets: ApiKeyFormat::new(format!("{prefix}s")),
            action,
        }
    }

    /// Whether `token` has the shape and checksum of a key or client secret.
    pub fn well_formed(&self, token: &str) -> bool {
        self.keys.is_well_formed(token) || self.secrets.is_well_formed(token)
    }

    pub async fn report(&self, r: &Report<'_>) -> manage::Result<Label> {
        // SECURITY: a token whose checksum fails is answered without any
        // store lookup: a flood of garbage costs no database work.
        if !self.well_formed(r.token) {
            return Ok(Label::FalsePositive);
        }
        let found = self
            .manager
            .store
            .find_secret(&KeyHash::of(r.token))
            .await
            .map_err(|e| manage::from_store(e, "api key"))?;
        let now = self.manager.now();
        let revoke = self.action == LeakAction::Revoke;
        let (writes, audit) = match found {
            None => return Ok(Label::FalsePositive),
            Some(Found::Key(key, account)) => {
                let live = key.is_live(now) && account.closed_at.is_none();
                let writes = if live && revoke {
                    vec![Write::RevokeKey {
                        account_id: account.id,
                        key_id: key.id,
                        at: now,
                    }]
                } else {
                    Vec::new()
                };
                let audit = Audit {
                    action: "api_key.leaked",
                    target_type: "api_key",
                    target_id: key.id,
                    organization_id: Some(account.organization_id),
                    details: self.details(
                        r,
                        account.id,
                        ("redacted_value", &key.redacted),
                        live,
                        !writes.is_empty(),
                    ),
                };
                (writes, audit)
            }
            Some(Found::Credential(credential, account)) => {
                let live = credential.is_live(now) && account.closed_at.is_none();
                let writes = if live && revoke {
                    vec![Write::DeleteCredential {
                        account_id: account.id,
                        id: credential.id,
                        at: now,
                    }]
                } else {
                    Vec::new()
                };
                let audit = Audit {
                    action: "credential.leaked",
                    target_type: "credential",
                    target_id: credential.id,
                    organization_id: Some(account.organization_id),
                    details: self.details(
                        r,
                        account.id,
                        ("client_id", &credential.client_id),
                        live,
                        !writes.is_empty(),
                    ),
                };
                (writes, audit)
            }
        };
        match self.manager.commit(None, "api key", writes, audit).await {
            Ok(_) => Ok(Label::TruePositive),
            // Revoked meanwhile by someone else: still a true positive.
            Err(manage::Error::NotFound(_) | manage::Error::Conflict { .. }) => {
                Ok(Label::TruePositive)
            }
            Err(e) => Err(e),
        }
    }

    fn details(
        &self,
        r: &Report<'_>,
        account: uuid::Uuid,
        (label, which): (&str, &str),
        live: bool,
        revoked: bool,
    ) -> serde_json::Value {
        let clip = |s: Option<&str>| s.map(|s| s.chars().take(MAX_FIELD).collect::<String>());
        let mut details = json!({
            "service_account_id": account,
            "url": clip(r.url),
            "source": clip(r.source),
            "was_live": live,
            "revoked": revoked,
            "reporter": "github",
        });
        details[label] = json!(which);
        details
    }
}
