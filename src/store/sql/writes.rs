//! Every [`Write`] as the statements that carry it out, plus the audit and
//! change-feed rows every batch ends with. Shared by both backends.

use uuid::Uuid;

use super::rows::{der_b64, limits_json, quota_json, scopes_json};
use super::stmt::Stmt;
use crate::store::{Replica, Write, WriteBatch};

/// The statements that apply `w`.
pub(super) fn statements(w: &Write) -> Vec<Stmt> {
    let one = |s: Stmt| vec![s];
    match w {
        Write::InsertOrganization(o) => one(
            Stmt::new(
                "INSERT INTO organizations (id, name, abbreviation, created_at, updated_at, \
                 max_credential_lifetime) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .arg(o.id)
            .arg(&o.name)
            .arg(&o.abbreviation)
            .arg(o.created_at)
            .arg(o.updated_at)
            .arg(o.max_credential_lifetime),
        ),
        Write::UpdateOrganization(o) => one(
            Stmt::new(
                "UPDATE organizations SET name = $1, abbreviation = $2, updated_at = $3, \
                 max_credential_lifetime = $4 WHERE id = $5",
            )
            .arg(&o.name)
            .arg(&o.abbreviation)
            .arg(o.updated_at)
            .arg(o.max_credential_lifetime)
            .arg(o.id)
            .or_not_found(),
        ),
        // Refused (stale) while an account is open, or was closed so
        // recently that tokens it minted may still be live.
        Write::DeleteOrganization { id, closed_after } => one(
            Stmt::new(
                "DELETE FROM organizations WHERE id = $1 AND NOT EXISTS \
                 (SELECT 1 FROM service_accounts WHERE organization_id = $2 \
                  AND (closed_at IS NULL OR closed_at > $3))",
            )
            .arg(*id)
            .arg(*id)
            .arg(*closed_after)
            .or_stale(),
        ),
        Write::InsertProject(p) => one(
            Stmt::new(
                "INSERT INTO projects (id, organization_id, name, archived, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .arg(p.id)
            .arg(p.organization_id)
            .arg(&p.name)
            .arg(p.archived)
            .arg(p.created_at)
            .arg(p.updated_at),
        ),
        Write::UpdateProject(p) => one(
            Stmt::new("UPDATE projects SET name = $1, archived = $2, updated_at = $3 WHERE id = $4")
                .arg(&p.name)
                .arg(p.archived)
                .arg(p.updated_at)
                .arg(p.id)
                .or_not_found(),
        ),
        Write::InsertAccount(a) => one(
            Stmt::new(
                "INSERT INTO service_accounts (id, organization_id, project_id, name, description, role, \
                 scopes, enabled, expires_at, closed_at, rate_limit, created_by, created_at, updated_at, \
                 last_used_at, tokens_not_before, metadata, quota) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
            )
            .arg(a.id)
            .arg(a.organization_id)
            .arg(a.project_id)
            .arg(&a.name)
            .arg(&a.description)
            .arg(a.role.as_str())
            .arg(scopes_json(&a.scopes))
            .arg(a.enabled)
            .arg(a.expires_at)
            .arg(a.closed_at)
            .arg(&a.rate_limit)
            .arg(a.created_by)
            .arg(a.created_at)
            .arg(a.updated_at)
            .arg(a.last_used_at)
            .arg(a.tokens_not_before)
            .arg(serde_json::Value::Object(a.metadata.clone()).to_string())
            .arg(quota_json(a.quota.as_ref())),
        ),
        // Optimistic concurrency: only over the row this write was based on.
        Write::UpdateAccount {
            account: a,
            previous_updated_at,
        } => one(
            Stmt::new(
                "UPDATE service_accounts SET name = $1, description = $2, role = $3, scopes = $4, \
                 enabled = $5, expires_at = $6, closed_at = $7, rate_limit = $8, updated_at = $9, \
                 tokens_not_before = $10, metadata = $11, quota = $12 \
                 WHERE id = $13 AND updated_at = $14 AND closed_at IS NULL",
            )
            .arg(&a.name)
            .arg(&a.description)
            .arg(a.role.as_str())
            .arg(scopes_json(&a.scopes))
            .arg(a.enabled)
            .arg(a.expires_at)
            .arg(a.closed_at)
            .arg(&a.rate_limit)
            .arg(a.updated_at)
            .arg(a.tokens_not_before)
            .arg(serde_json::Value::Object(a.metadata.clone()).to_string())
            .arg(quota_json(a.quota.as_ref()))
            .arg(a.id)
            .arg(*previous_updated_at)
            .or_stale(),
        ),
        Write::InsertKey(k) => one(
            Stmt::new(
                "INSERT INTO api_keys (id, service_account_id, name, hash, redacted, created_at, \
                 expires_at, revoked_at, last_used_at, quota, scopes, allowed_cidrs) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .arg(k.id)
            .arg(k.service_account_id)
            .arg(&k.name)
            .arg(k.hash.to_hex())
            .arg(&k.redacted)
            .arg(k.created_at)
            .arg(k.expires_at)
            .arg(k.revoked_at)
            .arg(k.last_used_at)
            .args(limits_json(&k.limits)),
        ),
        Write::QuotaExhausted {
            subject_id,
            window_start,
            at,
            ..
        } => one(
            Stmt::new(
                "INSERT INTO quota_exhaustions (subject_id, window_start, at) VALUES ($1, $2, $3) \
                 ON CONFLICT (subject_id, window_start) DO NOTHING",
            )
            .arg(*subject_id)
            .arg(*window_start)
            .arg(*at)
            .or_stale(),
        ),
        Write::UpdateKeyLimits(k) => one(
            Stmt::new(
                "UPDATE api_keys SET name = $1, quota = $2, scopes = $3, allowed_cidrs = $4 \
                 WHERE id = $5 AND service_account_id = $6 AND revoked_at IS NULL",
            )
            .arg(&k.name)
            .args(limits_json(&k.limits))
            .arg(k.id)
            .arg(k.service_account_id)
            .or_not_found(),
        ),
        Write::RevokeKey {
            account_id,
            key_id,
            at,
        } => one(
            Stmt::new(
                "UPDATE api_keys SET revoked_at = $1 \
                 WHERE id = $2 AND service_account_id = $3 AND revoked_at IS NULL",
            )
            .arg(*at)
            .arg(*key_id)
            .arg(*account_id)
            .or_not_found(),
        ),
        Write::RevokeAllKeys { account_id, at } => one(
            Stmt::new(
                "UPDATE api_keys SET revoked_at = $1 WHERE service_account_id = $2 AND revoked_at IS NULL",
            )
            .arg(*at)
            .arg(*account_id),
        ),
        Write::ExpireAllKeys { account_id, at } => one(
            Stmt::new(
                "UPDATE api_keys SET expires_at = $1 WHERE service_account_id = $2 \
                 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3)",
            )
            .arg(*at)
            .arg(*account_id)
            .arg(*at),
        ),
        Write::InsertCredential(c) => one(
            Stmt::new(
                "INSERT INTO client_credentials (id, client_id, service_account_id, name, description, \
                 secret_hash, created_at, expires_at, deleted_at, last_used_at, tokens_not_before, \
                 quota, scopes, allowed_cidrs, public_jwk) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .arg(c.id)
            .arg(&c.client_id)
            .arg(c.service_account_id)
            .arg(&c.name)
            .arg(&c.description)
            .arg(c.secret_hash.to_hex())
            .arg(c.created_at)
            .arg(c.expires_at)
            .arg(c.deleted_at)
            .arg(c.last_used_at)
            .arg(c.tokens_not_before)
            .args(limits_json(&c.limits))
            .arg(c.public_jwk.as_ref().map(|j| j.to_string())),
        ),
        Write::UpdateCredential(c) => one(
            Stmt::new(
                "UPDATE client_credentials SET name = $1, description = $2, secret_hash = $3, \
                 expires_at = $4, tokens_not_before = $5, quota = $6, scopes = $7, \
                 allowed_cidrs = $8, public_jwk = $9 WHERE id = $10 AND deleted_at IS NULL",
            )
            .arg(&c.name)
            .arg(&c.description)
            .arg(c.secret_hash.to_hex())
            .arg(c.expires_at)
            .arg(c.tokens_not_before)
            .args(limits_json(&c.limits))
            .arg(c.public_jwk.as_ref().map(|j| j.to_string()))
            .arg(c.id)
            .or_not_found(),
        ),
        Write::DeleteCredential { account_id, id, at } => one(
            Stmt::new(
                "UPDATE client_credentials SET deleted_at = $1 \
                 WHERE id = $2 AND service_account_id = $3 AND deleted_at IS NULL",
            )
            .arg(*at)
            .arg(*id)
            .arg(*account_id)
            .or_not_found(),
        ),
        Write::DeleteAllCredentials { account_id, at } => one(
            Stmt::new(
                "UPDATE client_credentials SET deleted_at = $1 \
                 WHERE service_account_id = $2 AND deleted_at IS NULL",
            )
            .arg(*at)
            .arg(*account_id),
        ),
        Write::InsertFederatedIdentity(f) => one(
            Stmt::new(
                "INSERT INTO federated_identities (id, service_account_id, issuer, subject, claims, \
                 created_by, created_at, deleted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .arg(f.id)
            .arg(f.service_account_id)
            .arg(&f.issuer)
            .arg(&f.subject)
            .arg(serde_json::to_string(&f.claims).unwrap_or_else(|_| "{}".into()))
            .arg(f.created_by)
            .arg(f.created_at)
            .arg(f.deleted_at),
        ),
        Write::DeleteFederatedIdentity { account_id, id, at } => one(
            Stmt::new(
                "UPDATE federated_identities SET deleted_at = $1 \
                 WHERE id = $2 AND service_account_id = $3 AND deleted_at IS NULL",
            )
            .arg(*at)
            .arg(*id)
            .arg(*account_id)
            .or_not_found(),
        ),
        Write::InsertSigningKey(k) => one(
            Stmt::new(
                "INSERT INTO signing_keys (kid, algorithm, private_der, public_jwk, created_at, \
                 activates_at, retires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .arg(&k.kid)
            .arg(&k.algorithm)
            .arg(der_b64(&k.private_der))
            .arg(k.public_jwk.to_string())
            .arg(k.created_at)
            .arg(k.activates_at)
            .arg(k.retires_at),
        ),
        Write::RetireSigningKeys { except, at } => one(
            Stmt::new(
                "UPDATE signing_keys SET retires_at = $1 \
                 WHERE kid <> $2 AND (retires_at IS NULL OR retires_at > $3)",
            )
            .arg(*at)
            .arg(except)
            .arg(*at),
        ),
        Write::RevokeToken(t) => one(
            Stmt::new(
                "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (jti) DO NOTHING",
            )
            .arg(&t.jti)
            .arg(t.expires_at),
        ),
        Write::InsertWebhook(_)
        | Write::UpdateWebhook(_)
        | Write::DeleteWebhook { .. }
        | Write::WarnExpiry { .. } => super::events::statements(w),
    }
}

/// The audit row that explains a batch.
pub(super) fn audit(batch: &WriteBatch) -> Stmt {
    let a = &batch.audit;
    Stmt::new(
        "INSERT INTO audit_events (id, at, actor_id, action, target_type, target_id, \
         organization_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .arg(a.id)
    .arg(a.at)
    .arg(a.actor_id)
    .arg(&a.action)
    .arg(&a.target_type)
    .arg(a.target_id)
    .arg(a.organization_id)
    .arg(a.details.to_string())
}

/// The change-feed row of a batch; returns its revision.
pub(super) fn change(batch: &WriteBatch) -> Stmt {
    let accounts: Vec<String> = batch.accounts().iter().map(Uuid::to_string).collect();
    Stmt::new(
        "INSERT INTO changes (at, accounts, topics, audit_id) VALUES ($1, $2, $3, $4) \
         RETURNING revision",
    )
    .arg(batch.audit.at)
    .arg(serde_json::to_string(&accounts).unwrap_or_else(|_| "[]".into()))
    .arg(serde_json::to_string(&batch.topics()).unwrap_or_else(|_| "[]".into()))
    .arg(batch.audit.id)
}

/// `last_used_at` of a key (or client credential, ids never collide) and its
/// account; a later time never moves back.
pub(super) fn usage(used: &[(Uuid, Uuid, i64)]) -> Vec<Stmt> {
    let mut out = Vec::with_capacity(used.len() * 3);
    for (key_id, account_id, at) in used {
        for (sql, id) in [
            (USAGE_KEY, key_id),
            (USAGE_CREDENTIAL, key_id),
            (USAGE_ACCOUNT, account_id),
        ] {
            out.push(Stmt::new(sql).arg(*at).arg(*id));
        }
    }
    out
}

const USAGE_KEY: &str = "UPDATE api_keys SET last_used_at = \
     CASE WHEN COALESCE(last_used_at, 0) < $1 THEN $1 ELSE last_used_at END WHERE id = $2";
const USAGE_CREDENTIAL: &str = "UPDATE client_credentials SET last_used_at = \
     CASE WHEN COALESCE(last_used_at, 0) < $1 THEN $1 ELSE last_used_at END WHERE id = $2";
const USAGE_ACCOUNT: &str = "UPDATE service_accounts SET last_used_at = \
     CASE WHEN COALESCE(last_used_at, 0) < $1 THEN $1 ELSE last_used_at END WHERE id = $2";

pub(super) fn heartbeat(r: &Replica) -> Stmt {
    Stmt::new(
        "INSERT INTO replicas (id, hostname, started_at, heartbeat_at, revision) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
         heartbeat_at = excluded.heartbeat_at, revision = excluded.revision",
    )
    .arg(r.id)
    .arg(&r.hostname)
    .arg(r.started_at)
    .arg(r.heartbeat_at)
    .arg(r.revision)
}
