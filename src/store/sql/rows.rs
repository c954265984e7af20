//! Row → model mapping shared by both backends. Both schemas use the same
//! column names and portable types (UUID text, unix-ms integers, booleans,
//! JSON text), so one mapping serves both through the small [`Cols`]
//! accessor trait, implemented for any sqlx row that decodes those types.

use std::sync::Arc;

use uuid::Uuid;

use crate::secret::KeyHash;
use crate::store::*;

pub(crate) const ACCOUNT_COLUMNS: &str =
    "a.id, a.organization_id, a.project_id, a.name, a.description, a.role, \
     a.scopes, a.enabled, a.expires_at, a.closed_at, a.rate_limit, a.created_by, a.created_at, \
     a.updated_at, a.last_used_at, a.tokens_not_before, a.metadata, a.quota";
pub(crate) const KEY_COLUMNS: &str =
    "k.id AS k_id, k.service_account_id AS k_account, k.name AS k_name, k.hash AS k_hash, \
     k.redacted AS k_redacted, k.created_at AS k_created_at, k.expires_at AS k_expires_at, \
     k.revoked_at AS k_revoked_at, k.last_used_at AS k_last_used_at, k.quota AS k_quota, \
     k.scopes AS k_scopes, k.allowed_cidrs AS k_allowed_cidrs";

/// Database errors into store errors; a unique violation is a name conflict
/// (every unique index but the key hash's is on a name).
pub(crate) fn db(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Error::Conflict("name"),
        _ => Error::Unavailable(e),
    }
}

/// Typed column access, implemented for each backend's row type.
pub(crate) trait Cols {
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn flag(&self, col: &str) -> Result<bool>;

    fn uuid(&self, col: &str) -> Result<Uuid> {
        Uuid::parse_str(&self.text(col)?).map_err(|_| Error::Corrupt("malformed id"))
    }

    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>> {
        self.opt_text(col)?
            .map(|s| Uuid::parse_str(&s).map_err(|_| Error::Corrupt("malformed id")))
            .transpose()
    }
}

impl<R> Cols for R
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn text(&self, col: &str) -> Result<String> {
        self.try_get(col).map_err(db)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        self.try_get(col).map_err(db)
    }
    fn int(&self, col: &str) -> Result<i64> {
        self.try_get(col).map_err(db)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        self.try_get(col).map_err(db)
    }
    fn flag(&self, col: &str) -> Result<bool> {
        self.try_get(col).map_err(db)
    }
}

pub(crate) fn org_from(row: &impl Cols) -> Result<Organization> {
    Ok(Organization {
        id: row.uuid("id")?,
        name: row.text("name")?,
        abbreviation: row.opt_text("abbreviation")?,
        max_credential_lifetime: row.opt_int("max_credential_lifetime")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub(crate) fn project_from(row: &impl Cols) -> Result<Project> {
    Ok(Project {
        id: row.uuid("id")?,
        organization_id: row.uuid("organization_id")?,
        name: row.text("name")?,
        archived: row.flag("archived")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

/// A scopes column (a JSON array of strings).
pub(crate) fn scopes_from(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|_| Error::Corrupt("malformed scopes"))
}

pub(crate) fn account_from(row: &impl Cols) -> Result<ServiceAccount> {
    let role = row.text("role")?;
    let scopes = row.text("scopes")?;
    Ok(ServiceAccount {
        id: row.uuid("id")?,
        organization_id: row.uuid("organization_id")?,
        project_id: row.opt_uuid("project_id")?,
        name: row.text("name")?,
        description: row.opt_text("description")?,
        role: Role::parse(&role).ok_or(Error::Corrupt("unknown role"))?,
        scopes: scopes_from(&scopes)?,
        enabled: row.flag("enabled")?,
        expires_at: row.opt_int("expires_at")?,
        closed_at: row.opt_int("closed_at")?,
        rate_limit: row.opt_text("rate_limit")?,
        created_by: row.opt_uuid("created_by")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        last_used_at: row.opt_int("last_used_at")?,
        tokens_not_before: row.opt_int("tokens_not_before")?,
        metadata: serde_json::from_str(&row.text("metadata")?)
            .map_err(|_| Error::Corrupt("malformed metadata"))?,
        quota: quota_from(row.opt_text("quota")?)?,
    })
}

/// A page of the initial load as the store aggregates it: one entry per
/// line, fields tab-separated (see `auth_entries`), ordered by key id.
pub(crate) fn auth_entries_from(page: &str) -> Result<Vec<AuthEntry>> {
    // Keys next to each other mostly share their account's scopes: an
    // entry whose scopes read as the one before's shares its text.
    let mut scopes: Option<Arc<str>> = None;
    // Sized once: grown by doubling, a page's entries were copied and
    // their fresh memory faulted in several times over.
    let mut entries = Vec::with_capacity(page.bytes().filter(|&b| b == b'\n').count() + 1);
    for line in page.split('\n') {
        entries.push(auth_entry_from(line, &mut scopes)?);
    }
    // The aggregate need not keep the subquery's order; the loader pages on
    // the last id.
    entries.sort_unstable_by_key(|e| e.key_id);
    Ok(entries)
}

fn auth_entry_from(line: &str, last_scopes: &mut Option<Arc<str>>) -> Result<AuthEntry> {
    const SHORT: Error = Error::Corrupt("short auth entry");
    let mut fields = line.splitn(10, '\t');
    let mut next = || fields.next().ok_or(SHORT);
    let id = |s: &str| Uuid::parse_str(s).map_err(|_| Error::Corrupt("malformed id"));
    let int = |s: &str| -> Result<Option<i64>> {
        if s.is_empty() {
            return Ok(None);
        }
        s.parse()
            .map(Some)
            .map_err(|_| Error::Corrupt("malformed time"))
    };
    let key_id = id(next()?)?;
    let hash = KeyHash::from_hex(next()?).ok_or(Error::Corrupt("malformed key hash"))?;
    let key_expires_at = int(next()?)?;
    let account_id = id(next()?)?;
    let organization_id = id(next()?)?;
    let project_id = Some(next()?)
        .filter(|s| !s.is_empty())
        .map(id)
        .transpose()?;
    let role = Role::parse(next()?).ok_or(Error::Corrupt("unknown role"))?;
    let account_expires_at = int(next()?)?;
    let rate_limit = Some(next()?).filter(|s| !s.is_empty()).map(str::to_owned);
    let scopes = next()?;
    let scopes_json = match last_scopes {
        Some(last) if **last == *scopes => Arc::clone(last),
        _ => Arc::clone(last_scopes.insert(scopes.into())),
    };
    Ok(AuthEntry {
        key_id,
        hash,
        key_expires_at,
        account_id,
        organization_id,
        project_id,
        role,
        scopes_json,
        account_expires_at,
        rate_limit,
    })
}

pub(crate) fn key_from(row: &impl Cols) -> Result<ApiKey> {
    let hash = row.text("k_hash")?;
    Ok(ApiKey {
        id: row.uuid("k_id")?,
        service_account_id: row.uuid("k_account")?,
        name: row.opt_text("k_name")?,
        hash: KeyHash::from_hex(&hash).ok_or(Error::Corrupt("malformed key hash"))?,
        redacted: row.text("k_redacted")?,
        created_at: row.int("k_created_at")?,
        expires_at: row.opt_int("k_expires_at")?,
        revoked_at: row.opt_int("k_revoked_at")?,
        last_used_at: row.opt_int("k_last_used_at")?,
        limits: limits_from(row, "k_")?,
    })
}

pub(crate) fn audit_from(row: &impl Cols) -> Result<AuditEvent> {
    let details = row.text("details")?;
    Ok(AuditEvent {
        id: row.uuid("id")?,
        at: row.int("at")?,
        actor_id: row.opt_uuid("actor_id")?,
        action: row.text("action")?,
        target_type: row.text("target_type")?,
        target_id: row.uuid("target_id")?,
        organization_id: row.opt_uuid("organization_id")?,
        details: serde_json::from_str(&details)
            .map_err(|_| Error::Corrupt("malformed audit details"))?,
    })
}

pub(crate) fn replica_from(row: &impl Cols) -> Result<Replica> {
    Ok(Replica {
        id: row.uuid("id")?,
        hostname: row.text("hostname")?,
        started_at: row.int("started_at")?,
        heartbeat_at: row.int("heartbeat_at")?,
        revision: row.int("revision")?,
    })
}

pub(crate) fn change_from(row: &impl Cols) -> Result<Change> {
    let ids: Vec<String> = serde_json::from_str(&row.text("accounts")?)
        .map_err(|_| Error::Corrupt("malformed change"))?;
    let topics: Vec<String> = serde_json::from_str(&row.text("topics")?)
        .map_err(|_| Error::Corrupt("malformed change"))?;
    Ok(Change {
        topics,
        revision: row.int("revision")?,
        accounts: ids
            .iter()
            .map(|s| Uuid::parse_str(s).map_err(|_| Error::Corrupt("malformed id")))
            .collect::<Result<_>>()?,
    })
}

pub(crate) fn scopes_json(scopes: &[String]) -> String {
    serde_json::to_string(scopes).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn limit(page: Keyset) -> i64 {
    i64::from(page.limit.min(i32::MAX as u32))
}

/// Keyset cursor: ids are UUIDv7 text, so "" sorts before every id.
pub(crate) fn after(page: Keyset) -> String {
    page.after.map(|u| u.to_string()).unwrap_or_default()
}

pub(crate) const CREDENTIAL_COLUMNS: &str = "c.id AS c_id, c.client_id AS c_client_id, \
     c.service_account_id AS c_account, c.name AS c_name, c.description AS c_description, \
     c.secret_hash AS c_secret_hash, c.created_at AS c_created_at, c.expires_at AS c_expires_at, \
     c.deleted_at AS c_deleted_at, c.last_used_at AS c_last_used_at, \
     c.tokens_not_before AS c_tokens_not_before, c.quota AS c_quota, c.scopes AS c_scopes, \
     c.allowed_cidrs AS c_allowed_cidrs, c.public_jwk AS c_public_jwk";

pub(crate) fn credential_from(row: &impl Cols) -> Result<ClientCredential> {
    Ok(ClientCredential {
        id: row.uuid("c_id")?,
        client_id: row.text("c_client_id")?,
        service_account_id: row.uuid("c_account")?,
        name: row.text("c_name")?,
        description: row.opt_text("c_description")?,
        secret_hash: KeyHash::from_hex(&row.text("c_secret_hash")?)
            .ok_or(Error::Corrupt("malformed secret hash"))?,
        created_at: row.int("c_created_at")?,
        expires_at: row.opt_int("c_expires_at")?,
        deleted_at: row.opt_int("c_deleted_at")?,
        last_used_at: row.opt_int("c_last_used_at")?,
        tokens_not_before: row.opt_int("c_tokens_not_before")?,
        limits: limits_from(row, "c_")?,
        public_jwk: row
            .opt_text("c_public_jwk")?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|_| Error::Corrupt("malformed public jwk"))?,
    })
}

pub(crate) fn federated_identity_from(row: &impl Cols) -> Result<FederatedIdentity> {
    Ok(FederatedIdentity {
        id: row.uuid("id")?,
        service_account_id: row.uuid("service_account_id")?,
        issuer: row.text("issuer")?,
        subject: row.text("subject")?,
        claims: serde_json::from_str(&row.text("claims")?)
            .map_err(|_| Error::Corrupt("malformed federated identity claims"))?,
        created_by: row.opt_uuid("created_by")?,
        created_at: row.int("created_at")?,
        deleted_at: row.opt_int("deleted_at")?,
    })
}

pub(crate) fn signing_key_from(row: &impl Cols) -> Result<SigningKeyRecord> {
    use base64::Engine as _;
    Ok(SigningKeyRecord {
        kid: row.text("kid")?,
        algorithm: row.text("algorithm")?,
        private_der: base64::engine::general_purpose::STANDARD
            .decode(row.text("private_der")?)
            .map_err(|_| Error::Corrupt("malformed signing key"))?,
        public_jwk: serde_json::from_str(&row.text("public_jwk")?)
            .map_err(|_| Error::Corrupt("malformed public jwk"))?,
        created_at: row.int("created_at")?,
        activates_at: row.int("activates_at")?,
        retires_at: row.opt_int("retires_at")?,
    })
}

pub(crate) fn der_b64(der: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(der)
}

fn quota_from(text: Option<String>) -> Result<Option<Quota>> {
    text.map(|t| serde_json::from_str(&t).map_err(|_| Error::Corrupt("malformed quota")))
        .transpose()
}

/// A key's or credential's narrowing, from its `<prefix>quota`,
/// `<prefix>scopes` and `<prefix>allowed_cidrs` columns.
fn limits_from(row: &impl Cols, prefix: &str) -> Result<CredentialLimits> {
    let json = |col: &str| row.opt_text(&format!("{prefix}{col}"));
    Ok(CredentialLimits {
        quota: quota_from(json("quota")?)?,
        scopes: json("scopes")?.map(|t| scopes_from(&t)).transpose()?,
        allowed_cidrs: json("allowed_cidrs")?
            .map(|t| serde_json::from_str(&t).map_err(|_| Error::Corrupt("malformed cidrs")))
            .transpose()?,
    })
}

pub(crate) fn quota_json(q: Option<&Quota>) -> Option<String> {
    q.and_then(|q| serde_json::to_string(q).ok())
}

/// The three narrowing columns of a key or credential, as bound values.
pub(crate) fn limits_json(l: &CredentialLimits) -> [Option<String>; 3] {
    [
        quota_json(l.quota.as_ref()),
        l.scopes.as_deref().map(scopes_json),
        l.allowed_cidrs
            .as_ref()
            .and_then(|c| serde_json::to_string(c).ok()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(key: &str, hash: &KeyHash, scopes: &str) -> String {
        let account = "0190a000-0000-7000-8000-00000000000a";
        let org = "0190a000-0000-7000-8000-0000000000f0";
        format!(
            "{key}\t{}\t\t{account}\t{org}\t\tmember\t1700000000000\t10/s\t{scopes}",
            hash.to_hex()
        )
    }

    #[test]
    fn a_load_page_parses_in_key_order_and_neighbours_share_their_scopes_text() {
        let (a, b, c) = (
            "0190a000-0000-7000-8000-000000000003",
            "0190a000-0000-7000-8000-000000000001",
            "0190a000-0000-7000-8000-000000000002",
        );
        let h = KeyHash::of("kg_x");
        // Out of key order, as an aggregate may hand them over.
        let page = [
            line(a, &h, r#"["a:read"]"#),
            line(b, &h, r#"["a:read"]"#),
            line(c, &h, r#"["b:read"]"#),
        ]
        .join("\n");
        let e = auth_entries_from(&page).unwrap();
        let ids: Vec<String> = e.iter().map(|e| e.key_id.to_string()).collect();
        assert_eq!(ids, [b, c, a]);
        assert_eq!(e[0].hash, h);
        assert_eq!(e[0].key_expires_at, None);
        assert_eq!(e[0].project_id, None);
        assert_eq!(e[0].account_expires_at, Some(1_700_000_000_000));
        assert_eq!(e[0].rate_limit.as_deref(), Some("10/s"));
        assert_eq!(&*e[1].scopes_json, r#"["b:read"]"#);
        // a and b were read one after the other with the same text: one Arc.
        assert!(Arc::ptr_eq(&e[0].scopes_json, &e[2].scopes_json));
        assert!(!Arc::ptr_eq(&e[0].scopes_json, &e[1].scopes_json));
    }

    #[test]
    fn a_load_page_with_a_bad_field_is_refused_naming_it() {
        let h = KeyHash::of("kg_x");
        let good = line("0190a000-0000-7000-8000-000000000001", &h, "[]");
        for (bad, says) in [
            (good.replacen("member", "wizard", 1), "unknown role"),
            (
                good.replacen(&h.to_hex(), &h.to_hex().to_uppercase(), 1),
                "hash",
            ),
            (good.replacen("1700000000000", "soon", 1), "time"),
            (good.replacen("0190a000", "zz", 1), "id"),
            (
                good.split('\t').take(9).collect::<Vec<_>>().join("\t"),
                "short",
            ),
        ] {
            let err = auth_entries_from(&format!("{good}\n{bad}")).unwrap_err();
            assert!(err.to_string().contains(says), "{err} for {bad}");
        }
    }
}
