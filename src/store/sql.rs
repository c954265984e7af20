//! SQL both backends share, as macros each backend expands with its own
//! database type: applying a write, every query, and the `impl Store` around
//! them. Placeholders are `$n`: PostgreSQL's, which SQLite reads as
//! parameters bound in order of first appearance (every statement here
//! introduces them in order). Row mapping lives in [`super::rows`].

/// The token-broker writes, identical SQL on both backends. Expands inside a
/// backend's `apply`: `$exec` is its transaction executor. Evaluates to
/// `Result<()>`.
macro_rules! token_write {
    ($exec:expr, $w:expr) => {{
        match $w {
            Write::InsertCredential(c) => sqlx::query(
                "INSERT INTO client_credentials (id, client_id, service_account_id, name, description, \
                 secret_hash, created_at, expires_at, deleted_at, last_used_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(c.id.to_string())
            .bind(&c.client_id)
            .bind(c.service_account_id.to_string())
            .bind(&c.name)
            .bind(&c.description)
            .bind(c.secret_hash.to_hex())
            .bind(c.created_at)
            .bind(c.expires_at)
            .bind(c.deleted_at)
            .bind(c.last_used_at)
            .execute($exec)
            .await
            .map_err(db)
            .map(|_| ()),
            Write::UpdateCredential(c) => sqlx::query(
                "UPDATE client_credentials SET name = $1, description = $2, secret_hash = $3, \
                 expires_at = $4 WHERE id = $5 AND deleted_at IS NULL",
            )
            .bind(&c.name)
            .bind(&c.description)
            .bind(c.secret_hash.to_hex())
            .bind(c.expires_at)
            .bind(c.id.to_string())
            .execute($exec)
            .await
            .map_err(db)
            .and_then(|r| if r.rows_affected() == 0 { Err(Error::NotFound) } else { Ok(()) }),
            Write::DeleteCredential { account_id, id, at } => sqlx::query(
                "UPDATE client_credentials SET deleted_at = $1 \
                 WHERE id = $2 AND service_account_id = $3 AND deleted_at IS NULL",
            )
            .bind(at)
            .bind(id.to_string())
            .bind(account_id.to_string())
            .execute($exec)
            .await
            .map_err(db)
            .and_then(|r| if r.rows_affected() == 0 { Err(Error::NotFound) } else { Ok(()) }),
            Write::DeleteAllCredentials { account_id, at } => sqlx::query(
                "UPDATE client_credentials SET deleted_at = $1 \
                 WHERE service_account_id = $2 AND deleted_at IS NULL",
            )
            .bind(at)
            .bind(account_id.to_string())
            .execute($exec)
            .await
            .map_err(db)
            .map(|_| ()),
            Write::InsertSigningKey(k) => sqlx::query(
                "INSERT INTO signing_keys (kid, algorithm, private_der, public_jwk, created_at, \
                 activates_at, retires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&k.kid)
            .bind(&k.algorithm)
            .bind(der_b64(&k.private_der))
            .bind(k.public_jwk.to_string())
            .bind(k.created_at)
            .bind(k.activates_at)
            .bind(k.retires_at)
            .execute($exec)
            .await
            .map_err(db)
            .map(|_| ()),
            Write::RetireSigningKeys { except, at } => sqlx::query(
                "UPDATE signing_keys SET retires_at = $1 \
                 WHERE kid <> $2 AND (retires_at IS NULL OR retires_at > $3)",
            )
            .bind(at)
            .bind(except)
            .bind(at)
            .execute($exec)
            .await
            .map_err(db)
            .map(|_| ()),
            Write::RevokeToken(t) => sqlx::query(
                "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
            )
            .bind(&t.jti)
            .bind(t.expires_at)
            .execute($exec)
            .await
            .map_err(db)
            .map(|_| ()),
            _ => Ok(()),
        }
    }};
}
pub(super) use token_write;

/// The token-broker reads, identical on both backends: expands to inherent
/// `q_*` methods on the backend type (its `self.pool`), which its `Store`
/// impl delegates to (`#[async_trait]` cannot see macro-made methods).
macro_rules! token_reads {
    ($ty:ty) => {
        impl $ty {
        /// An open account holding the admin scope exists. Looks in the
        /// `platform` organization first (an index lookup, where bootstrap
        /// puts the admin), then anywhere, stopping at the first match: never
        /// a scan of every account on an ordinary start.
        async fn q_has_admin(&self) -> Result<bool> {
            let pattern = format!("%\"{ADMIN_SCOPE}\"%");
            let in_platform: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM service_accounts a JOIN organizations o ON o.id = a.organization_id \
                 WHERE o.name = 'platform' AND a.closed_at IS NULL AND a.scopes LIKE $1)",
            )
            .bind(&pattern)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
            if in_platform {
                return Ok(true);
            }
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM service_accounts a WHERE a.closed_at IS NULL AND a.scopes LIKE $1)")
                .bind(&pattern)
                .fetch_one(&self.pool)
                .await
                .map_err(db)
        }

        /// `last_used_at` for keys (or credentials) and their accounts, in one
        /// transaction; a later time never moves back.
        async fn q_record_usage(&self, used: &[(Uuid, Uuid, i64)]) -> Result<()> {
            let mut tx = self.pool.begin().await.map_err(db)?;
            for (key_id, account_id, at) in used {
                // A key id names an API key or a client credential, never both.
                for (table, id) in [("api_keys", key_id), ("client_credentials", key_id), ("service_accounts", account_id)] {
                    sqlx::query(&format!(
                        "UPDATE {table} SET last_used_at = \
                         CASE WHEN COALESCE(last_used_at, 0) < $1 THEN $1 ELSE last_used_at END WHERE id = $2"
                    ))
                    .bind(at)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                }
            }
            tx.commit().await.map_err(db)
        }

        async fn q_heartbeat(&self, r: &Replica) -> Result<()> {
            sqlx::query(
                "INSERT INTO replicas (id, hostname, started_at, heartbeat_at, revision) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, revision = excluded.revision",
            )
            .bind(r.id.to_string())
            .bind(&r.hostname)
            .bind(r.started_at)
            .bind(r.heartbeat_at)
            .bind(r.revision)
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(())
        }

        async fn q_auth_entries(&self, page: Page) -> Result<Vec<AuthEntry>> {
            sqlx::query(
                "SELECT k.id AS k_id, k.hash AS k_hash, k.expires_at AS k_expires_at, \
                 a.id AS a_id, a.organization_id, a.project_id, a.role, a.scopes, \
                 a.expires_at AS a_expires_at, a.rate_limit \
                 FROM api_keys k JOIN service_accounts a ON a.id = k.service_account_id \
                 WHERE k.revoked_at IS NULL AND a.closed_at IS NULL AND a.enabled = TRUE AND k.id > $1 \
                 ORDER BY k.id LIMIT $2",
            )
            .bind(after(page))
            .bind(limit(page))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(auth_entry_from)
            .collect()
        }

        async fn q_credentials_of(&self, account_id: Uuid) -> Result<Vec<ClientCredential>> {
            sqlx::query(&format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM client_credentials c WHERE c.service_account_id = $1 ORDER BY c.id"
            ))
            .bind(account_id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(credential_from)
            .collect()
        }

        async fn q_credential_records(&self) -> Result<Vec<(ClientCredential, ServiceAccount)>> {
            sqlx::query(&format!(
                "SELECT {CREDENTIAL_COLUMNS}, {ACCOUNT_COLUMNS} FROM client_credentials c \
                 JOIN service_accounts a ON a.id = c.service_account_id \
                 WHERE c.deleted_at IS NULL AND a.closed_at IS NULL AND a.enabled = TRUE"
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(|r| Ok((credential_from(r)?, account_from(r)?)))
            .collect()
        }

        async fn q_signing_keys(&self, now_ms: i64) -> Result<Vec<SigningKeyRecord>> {
            sqlx::query(
                "SELECT * FROM signing_keys WHERE retires_at IS NULL OR retires_at > $1 ORDER BY activates_at, kid",
            )
            .bind(now_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(signing_key_from)
            .collect()
        }

        async fn q_revoked_tokens(&self, now_ms: i64) -> Result<Vec<RevokedToken>> {
            sqlx::query("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > $1")
                .bind(now_ms)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?
                .iter()
                .map(|r| {
                    Ok(RevokedToken {
                        jti: r.text("jti")?,
                        expires_at: r.int("expires_at")?,
                    })
                })
                .collect()
        }

        async fn q_restricted_accounts(&self) -> Result<Vec<ServiceAccount>> {
            sqlx::query(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM service_accounts a WHERE a.closed_at IS NOT NULL \
                 OR a.enabled = FALSE OR a.expires_at IS NOT NULL OR a.rate_limit IS NOT NULL"
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(account_from)
            .collect()
        }
        }
    };
}
pub(super) use token_reads;

/// Everything both backends share: applying a write and every query, the SQL
/// written once with `$n` placeholders (SQLite reads `$1…` as parameters
/// bound in order of first appearance, which every statement here respects).
/// A backend passes its own `write`, `record_usage`, `heartbeat`, `close`
/// (and `change_signal`); this expands to its `apply` and `impl Store`.
macro_rules! store_impl {
    ($ty:ty, $db:ty, { $($own:tt)* }) => {
        /// Fails with `NotFound` when an update or delete touched no row.
        fn touched(r: <$db as sqlx::Database>::QueryResult) -> Result<()> {
            if r.rows_affected() == 0 {
                Err(Error::NotFound)
            } else {
                Ok(())
            }
        }

        async fn apply(tx: &mut sqlx::Transaction<'_, $db>, w: &Write) -> Result<()> {
            match w {
                Write::InsertOrganization(o) => {
                    sqlx::query("INSERT INTO organizations (id, name, abbreviation, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
                        .bind(o.id.to_string())
                        .bind(&o.name)
                        .bind(&o.abbreviation)
                        .bind(o.created_at)
                        .bind(o.updated_at)
                        .execute(&mut **tx)
                        .await
                        .map_err(db)?;
                }
                Write::UpdateOrganization(o) => touched(
                    sqlx::query("UPDATE organizations SET name = $1, abbreviation = $2, updated_at = $3 WHERE id = $4")
                        .bind(&o.name)
                        .bind(&o.abbreviation)
                        .bind(o.updated_at)
                        .bind(o.id.to_string())
                        .execute(&mut **tx)
                        .await
                        .map_err(db)?,
                )?,
                Write::DeleteOrganization { id, closed_after } => {
                    let r = sqlx::query(
                        "DELETE FROM organizations WHERE id = $1 AND NOT EXISTS \
                         (SELECT 1 FROM service_accounts WHERE organization_id = $2 \
                          AND (closed_at IS NULL OR closed_at > $3))",
                    )
                    .bind(id.to_string())
                    .bind(id.to_string())
                    .bind(closed_after)
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                    if r.rows_affected() == 0 {
                        return Err(Error::Stale);
                    }
                }
                Write::InsertProject(p) => {
                    sqlx::query("INSERT INTO projects (id, organization_id, name, archived, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(p.id.to_string())
                        .bind(p.organization_id.to_string())
                        .bind(&p.name)
                        .bind(p.archived)
                        .bind(p.created_at)
                        .bind(p.updated_at)
                        .execute(&mut **tx)
                        .await
                        .map_err(db)?;
                }
                Write::UpdateProject(p) => touched(
                    sqlx::query("UPDATE projects SET name = $1, archived = $2, updated_at = $3 WHERE id = $4")
                        .bind(&p.name)
                        .bind(p.archived)
                        .bind(p.updated_at)
                        .bind(p.id.to_string())
                        .execute(&mut **tx)
                        .await
                        .map_err(db)?,
                )?,
                Write::InsertAccount(a) => {
                    sqlx::query(
                        "INSERT INTO service_accounts (id, organization_id, project_id, name, description, role, scopes, \
                         enabled, expires_at, closed_at, rate_limit, created_by, created_at, updated_at, last_used_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                    )
                    .bind(a.id.to_string())
                    .bind(a.organization_id.to_string())
                    .bind(a.project_id.map(|p| p.to_string()))
                    .bind(&a.name)
                    .bind(&a.description)
                    .bind(a.role.as_str())
                    .bind(scopes_json(&a.scopes))
                    .bind(a.enabled)
                    .bind(a.expires_at)
                    .bind(a.closed_at)
                    .bind(&a.rate_limit)
                    .bind(a.created_by.map(|p| p.to_string()))
                    .bind(a.created_at)
                    .bind(a.updated_at)
                    .bind(a.last_used_at)
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                }
                Write::UpdateAccount {
                    account: a,
                    previous_updated_at,
                } => {
                    let r = sqlx::query(
                        "UPDATE service_accounts SET name = $1, description = $2, role = $3, scopes = $4, enabled = $5, \
                         expires_at = $6, closed_at = $7, rate_limit = $8, updated_at = $9 \
                         WHERE id = $10 AND updated_at = $11 AND closed_at IS NULL",
                    )
                    .bind(&a.name)
                    .bind(&a.description)
                    .bind(a.role.as_str())
                    .bind(scopes_json(&a.scopes))
                    .bind(a.enabled)
                    .bind(a.expires_at)
                    .bind(a.closed_at)
                    .bind(&a.rate_limit)
                    .bind(a.updated_at)
                    .bind(a.id.to_string())
                    .bind(previous_updated_at)
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                    if r.rows_affected() == 0 {
                        return Err(Error::Stale);
                    }
                }
                Write::InsertKey(k) => {
                    sqlx::query(
                        "INSERT INTO api_keys (id, service_account_id, hash, redacted, created_at, expires_at, revoked_at, last_used_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(k.id.to_string())
                    .bind(k.service_account_id.to_string())
                    .bind(k.hash.to_hex())
                    .bind(&k.redacted)
                    .bind(k.created_at)
                    .bind(k.expires_at)
                    .bind(k.revoked_at)
                    .bind(k.last_used_at)
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                }
                Write::RevokeKey { account_id, key_id, at } => touched(
                    sqlx::query(
                        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND service_account_id = $3 AND revoked_at IS NULL",
                    )
                    .bind(at)
                    .bind(key_id.to_string())
                    .bind(account_id.to_string())
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?,
                )?,
                Write::RevokeAllKeys { account_id, at } => {
                    sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE service_account_id = $2 AND revoked_at IS NULL")
                        .bind(at)
                        .bind(account_id.to_string())
                        .execute(&mut **tx)
                        .await
                        .map_err(db)?;
                }
                Write::ExpireAllKeys { account_id, at } => {
                    sqlx::query(
                        "UPDATE api_keys SET expires_at = $1 WHERE service_account_id = $2 AND revoked_at IS NULL \
                         AND (expires_at IS NULL OR expires_at > $3)",
                    )
                    .bind(at)
                    .bind(account_id.to_string())
                    .bind(at)
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                }
                other => token_write!(&mut **tx, other)?,
            }
            Ok(())
        }

        #[async_trait]
        impl Store for $ty {
            $($own)*

            async fn revision(&self) -> Result<i64> {
                sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM changes")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db)
            }

            async fn changes_since(&self, revision: i64, limit: u32) -> Result<Vec<Change>> {
                let rows = sqlx::query(
                    "SELECT revision, accounts, topics FROM changes WHERE revision > $1 ORDER BY revision LIMIT $2",
                )
                .bind(revision)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
                rows.iter().map(change_from).collect()
            }

            async fn organization(&self, id: Uuid) -> Result<Option<Organization>> {
                sqlx::query("SELECT * FROM organizations WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)?
                    .as_ref()
                    .map(org_from)
                    .transpose()
            }

            async fn organizations(&self, only: Option<Uuid>, page: Page) -> Result<Vec<Organization>> {
                let mut q = sqlx::QueryBuilder::<$db>::new("SELECT * FROM organizations WHERE id > ");
                q.push_bind(after(page));
                if let Some(id) = only {
                    q.push(" AND id = ").push_bind(id.to_string());
                }
                q.push(" ORDER BY id LIMIT ").push_bind(limit(page));
                q.build()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db)?
                    .iter()
                    .map(org_from)
                    .collect()
            }

            async fn open_accounts_in(&self, organization_id: Uuid) -> Result<u64> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM service_accounts WHERE organization_id = $1 AND closed_at IS NULL",
                )
                .bind(organization_id.to_string())
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn project(&self, id: Uuid) -> Result<Option<Project>> {
                sqlx::query("SELECT * FROM projects WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)?
                    .as_ref()
                    .map(project_from)
                    .transpose()
            }

            async fn projects(&self, organization_id: Uuid, page: Page) -> Result<Vec<Project>> {
                sqlx::query(
                    "SELECT * FROM projects WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                )
                .bind(organization_id.to_string())
                .bind(after(page))
                .bind(limit(page))
                .fetch_all(&self.pool)
                .await
                .map_err(db)?
                .iter()
                .map(project_from)
                .collect()
            }

            async fn account(&self, id: Uuid) -> Result<Option<ServiceAccount>> {
                sqlx::query(&format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM service_accounts a WHERE a.id = $1"
                ))
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?
                .as_ref()
                .map(account_from)
                .transpose()
            }

            async fn accounts(
                &self,
                filter: &AccountFilter,
                now_ms: i64,
                page: Page,
            ) -> Result<Vec<ServiceAccount>> {
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM service_accounts a WHERE a.id > "
                ));
                q.push_bind(after(page));
                if let Some(org) = filter.organization_id {
                    q.push(" AND a.organization_id = ")
                        .push_bind(org.to_string());
                }
                if let Some(project) = filter.project_id {
                    q.push(" AND a.project_id = ")
                        .push_bind(project.to_string());
                }
                match filter.state {
                    None => {}
                    Some(AccountState::Closed) => {
                        q.push(" AND a.closed_at IS NOT NULL");
                    }
                    Some(AccountState::Disabled) => {
                        q.push(" AND a.closed_at IS NULL AND a.enabled = FALSE");
                    }
                    Some(AccountState::Expired) => {
                        q.push(" AND a.closed_at IS NULL AND a.enabled = TRUE AND a.expires_at <= ")
                            .push_bind(now_ms);
                    }
                    Some(AccountState::Active) => {
                        q.push(" AND a.closed_at IS NULL AND a.enabled = TRUE AND (a.expires_at IS NULL OR a.expires_at > ")
                            .push_bind(now_ms)
                            .push(")");
                    }
                }
                q.push(" ORDER BY a.id LIMIT ").push_bind(limit(page));
                q.build()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db)?
                    .iter()
                    .map(account_from)
                    .collect()
            }

            async fn has_admin(&self) -> Result<bool> {
                self.q_has_admin().await
            }

            async fn keys_of(&self, account_id: Uuid) -> Result<Vec<ApiKey>> {
                sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.service_account_id = $1 ORDER BY k.id"
                ))
                .bind(account_id.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(db)?
                .iter()
                .map(key_from)
                .collect()
            }

            async fn auth_entries(&self, page: Page) -> Result<Vec<AuthEntry>> {
                self.q_auth_entries(page).await
            }

            async fn audit_events(
                &self,
                organization_id: Option<Uuid>,
                page: Page,
            ) -> Result<Vec<AuditEvent>> {
                let mut q = sqlx::QueryBuilder::<$db>::new("SELECT * FROM audit_events WHERE id > ");
                q.push_bind(after(page));
                if let Some(org) = organization_id {
                    q.push(" AND organization_id = ").push_bind(org.to_string());
                }
                q.push(" ORDER BY id LIMIT ").push_bind(limit(page));
                q.build()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db)?
                    .iter()
                    .map(audit_from)
                    .collect()
            }

            async fn replicas(&self, since_ms: i64) -> Result<Vec<Replica>> {
                sqlx::query("SELECT * FROM replicas WHERE heartbeat_at > $1 ORDER BY id")
                    .bind(since_ms)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db)?
                    .iter()
                    .map(replica_from)
                    .collect()
            }

            async fn credentials_of(&self, account_id: Uuid) -> Result<Vec<ClientCredential>> {
                self.q_credentials_of(account_id).await
            }

            async fn credential_records(&self) -> Result<Vec<(ClientCredential, ServiceAccount)>> {
                self.q_credential_records().await
            }

            async fn signing_keys(&self, now_ms: i64) -> Result<Vec<SigningKeyRecord>> {
                self.q_signing_keys(now_ms).await
            }

            async fn revoked_tokens(&self, now_ms: i64) -> Result<Vec<RevokedToken>> {
                self.q_revoked_tokens(now_ms).await
            }

            async fn restricted_accounts(&self) -> Result<Vec<ServiceAccount>> {
                self.q_restricted_accounts().await
            }
        }
    };
}
pub(super) use store_impl;
