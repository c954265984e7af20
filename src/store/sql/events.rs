//! [`EventStore`] over either backend: the event feed (change-feed rows
//! joined to the audit rows that explain them), webhooks, and the delivery
//! outbox with its leases. A claim is one statement: an `UPDATE … WHERE id
//! IN (SELECT … FOR UPDATE SKIP LOCKED)` on PostgreSQL, the same without the
//! lock clause on SQLite, whose single writer makes the update atomic.

use async_trait::async_trait;
use uuid::Uuid;

use super::filter::{ascending, keyset};
use super::rows::{
    account_from, audit_from, credential_from, key_from, Cols, ACCOUNT_COLUMNS, CREDENTIAL_COLUMNS,
    KEY_COLUMNS,
};
use super::stmt::Stmt;
use super::{Backend, SqlStore};
use crate::secret::KeyHash;
use crate::store::*;

/// The statements of the events' own writes (see [`Write`]).
pub(super) fn statements(w: &Write) -> Vec<Stmt> {
    match w {
        Write::InsertWebhook(h) => vec![Stmt::new(
            "INSERT INTO webhooks (id, organization_id, url, events, secret, created_by, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .arg(h.id)
        .arg(h.organization_id)
        .arg(&h.url)
        .arg(events_json(&h.events))
        .arg(&h.secret)
        .arg(h.created_by)
        .arg(h.created_at)
        .arg(h.updated_at)],
        Write::UpdateWebhook(h) => vec![Stmt::new(
            "UPDATE webhooks SET url = $1, events = $2, updated_at = $3 WHERE id = $4",
        )
        .arg(&h.url)
        .arg(events_json(&h.events))
        .arg(h.updated_at)
        .arg(h.id)
        .or_not_found()],
        // Deliveries first: SQLite's cascade needs foreign keys, which a
        // store file opened elsewhere may have off.
        Write::DeleteWebhook { id } => vec![
            Stmt::new("DELETE FROM webhook_deliveries WHERE webhook_id = $1").arg(*id),
            Stmt::new("DELETE FROM webhooks WHERE id = $1")
                .arg(*id)
                .or_not_found(),
        ],
        Write::WarnExpiry {
            key_id,
            threshold,
            at,
        } => vec![Stmt::new(
            "INSERT INTO expiry_warnings (key_id, threshold, at) VALUES ($1, $2, $3) \
             ON CONFLICT (key_id, threshold) DO NOTHING",
        )
        .arg(*key_id)
        .arg(*threshold)
        .arg(*at)
        .or_stale()],
        _ => Vec::new(),
    }
}

fn events_json(events: &[String]) -> String {
    serde_json::to_string(events).unwrap_or_else(|_| "[]".into())
}

fn webhook_from(row: &impl Cols) -> Result<Webhook> {
    Ok(Webhook {
        id: row.uuid("id")?,
        organization_id: row.opt_uuid("organization_id")?,
        url: row.text("url")?,
        events: serde_json::from_str(&row.text("events")?)
            .map_err(|_| Error::Corrupt("malformed webhook events"))?,
        secret: row.text("secret")?,
        created_by: row.opt_uuid("created_by")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

fn delivery_from(row: &impl Cols) -> Result<Delivery> {
    Ok(Delivery {
        id: row.uuid("id")?,
        webhook_id: row.uuid("webhook_id")?,
        revision: row.int("revision")?,
        lane: row.text("lane")?,
        event_id: row.text("event_id")?,
        event_type: row.text("event_type")?,
        payload: row.text("payload")?,
        status: DeliveryStatus::parse(&row.text("status")?)
            .ok_or(Error::Corrupt("malformed delivery status"))?,
        attempts: row.int("attempts")?,
        created_at: row.int("created_at")?,
        next_attempt_at: row.int("next_attempt_at")?,
        last_attempt_at: row.opt_int("last_attempt_at")?,
        last_status: row.opt_int("last_status")?,
        last_error: row.opt_text("last_error")?,
        delivered_at: row.opt_int("delivered_at")?,
    })
}

fn event_from(row: &impl Cols) -> Result<StoredEvent> {
    let ids: Vec<String> = serde_json::from_str(&row.text("accounts")?)
        .map_err(|_| Error::Corrupt("malformed change"))?;
    Ok(StoredEvent {
        revision: row.int("revision")?,
        accounts: ids
            .iter()
            .map(|s| Uuid::parse_str(s).map_err(|_| Error::Corrupt("malformed id")))
            .collect::<Result<_>>()?,
        audit: audit_from(row)?,
    })
}

fn insert_delivery(d: &Delivery) -> Stmt {
    Stmt::new(
        "INSERT INTO webhook_deliveries (id, webhook_id, revision, lane, event_id, event_type, \
         payload, status, attempts, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (webhook_id, revision) DO NOTHING",
    )
    .arg(d.id)
    .arg(d.webhook_id)
    .arg(d.revision)
    .arg(&d.lane)
    .arg(&d.event_id)
    .arg(&d.event_type)
    .arg(&d.payload)
    .arg(d.status.as_str())
    .arg(d.attempts)
    .arg(d.created_at)
    .arg(d.next_attempt_at)
}

#[allow(private_bounds)]
#[async_trait]
impl<B: Backend> EventStore for SqlStore<B> {
    async fn events_since(&self, revision: i64, limit: u32) -> Result<Vec<StoredEvent>> {
        let stmt = Stmt::new(
            "SELECT c.revision, c.accounts, a.* FROM changes c \
             JOIN audit_events a ON a.id = c.audit_id \
             WHERE c.revision > $1 ORDER BY c.revision LIMIT $2",
        )
        .arg(revision)
        .arg(i64::from(limit));
        self.all(stmt, event_from).await
    }

    async fn event_cursor(&self) -> Result<i64> {
        self.count(Stmt::new(
            "SELECT revision AS n FROM event_cursor WHERE id = 1",
        ))
        .await
    }

    async fn enqueue(&self, deliveries: Vec<Delivery>, cursor: i64) -> Result<()> {
        let mut stmts: Vec<Stmt> = deliveries.iter().map(insert_delivery).collect();
        stmts.push(
            Stmt::new("UPDATE event_cursor SET revision = $1 WHERE id = 1 AND revision < $2")
                .arg(cursor)
                .arg(cursor),
        );
        self.run(stmts).await
    }

    async fn webhook(&self, id: Uuid) -> Result<Option<Webhook>> {
        let stmt = Stmt::new("SELECT * FROM webhooks WHERE id = $1").arg(id);
        self.first(stmt, webhook_from).await
    }

    async fn webhooks(&self, organization: Option<Uuid>, page: Keyset) -> Result<Vec<Webhook>> {
        let mut stmt = Stmt::new("SELECT * FROM webhooks WHERE 1 = 1");
        if let Some(org) = organization {
            stmt.push_arg(" AND organization_id = ", org);
        }
        keyset(&mut stmt, "id", page);
        Ok(ascending(self.all(stmt, webhook_from).await?, page))
    }

    async fn all_webhooks(&self) -> Result<Vec<Webhook>> {
        self.all(
            Stmt::new("SELECT * FROM webhooks ORDER BY id"),
            webhook_from,
        )
        .await
    }

    async fn claim(&self, claim: Claim<'_>) -> Result<Vec<Delivery>> {
        // SECURITY (ordering): a delivery waits while an earlier one of its
        // lane is pending, leased or not; the lease condition is checked
        // again by the update itself, so two replicas never both hold it.
        let mut stmt = Stmt::new(
            "UPDATE webhook_deliveries SET lease_until = $1, leased_by = $2 WHERE id IN (\
             SELECT d.id FROM webhook_deliveries d WHERE d.status = 'pending' \
             AND d.next_attempt_at <= $3 AND (d.lease_until IS NULL OR d.lease_until <= $4) \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_id = d.webhook_id \
             AND e.lane = d.lane AND e.status = 'pending' AND e.revision < d.revision)",
        )
        .arg(claim.lease_until)
        .arg(claim.replica)
        .arg(claim.now)
        .arg(claim.now);
        for id in claim.skip {
            stmt.push_arg(" AND d.webhook_id <> ", *id);
        }
        stmt.push_arg(" ORDER BY d.revision LIMIT ", i64::from(claim.limit));
        stmt.push(B::SKIP_LOCKED);
        stmt.push_arg(
            ") AND status = 'pending' AND (lease_until IS NULL OR lease_until <= ",
            claim.now,
        );
        stmt.push(") RETURNING *");
        let mut claimed = self.all(stmt, delivery_from).await?;
        claimed.sort_by_key(|d| d.revision);
        Ok(claimed)
    }

    async fn finish(&self, id: Uuid, replica: Uuid, at: i64, attempt: Attempt) -> Result<()> {
        let stmt = match attempt {
            // Delivered is final whoever holds the lease now: the receiver
            // has the event.
            Attempt::Delivered { status } => Stmt::new(
                "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, \
                 last_attempt_at = $1, last_status = $2, last_error = NULL, delivered_at = $3, \
                 lease_until = NULL, leased_by = NULL WHERE id = $4 AND status = 'pending'",
            )
            .arg(at)
            .arg(status)
            .arg(at)
            .arg(id),
            Attempt::Retry {
                status,
                error,
                next_at,
            } => Stmt::new(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, last_attempt_at = $1, \
                 last_status = $2, last_error = $3, next_attempt_at = $4, lease_until = NULL, \
                 leased_by = NULL WHERE id = $5 AND status = 'pending' AND leased_by = $6",
            )
            .arg(at)
            .arg(status)
            .arg(error)
            .arg(next_at)
            .arg(id)
            .arg(replica),
            Attempt::Failed { status, error } => Stmt::new(
                "UPDATE webhook_deliveries SET status = 'failed', attempts = attempts + 1, \
                 last_attempt_at = $1, last_status = $2, last_error = $3, lease_until = NULL, \
                 leased_by = NULL WHERE id = $4 AND status = 'pending' AND leased_by = $5",
            )
            .arg(at)
            .arg(status)
            .arg(error)
            .arg(id)
            .arg(replica),
        };
        self.run(vec![stmt]).await
    }

    async fn release(&self, id: Uuid, replica: Uuid) -> Result<()> {
        let stmt = Stmt::new(
            "UPDATE webhook_deliveries SET lease_until = NULL, leased_by = NULL \
             WHERE id = $1 AND leased_by = $2 AND status = 'pending'",
        )
        .arg(id)
        .arg(replica);
        self.run(vec![stmt]).await
    }

    async fn prune_deliveries(&self, before: i64) -> Result<()> {
        let stmt = Stmt::new(
            "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1",
        )
        .arg(before);
        self.run(vec![stmt]).await
    }

    async fn deliveries(&self, webhook_id: Uuid, page: Keyset) -> Result<Vec<Delivery>> {
        let mut stmt =
            Stmt::new("SELECT * FROM webhook_deliveries WHERE webhook_id = $1").arg(webhook_id);
        keyset(&mut stmt, "id", page);
        Ok(ascending(self.all(stmt, delivery_from).await?, page))
    }

    async fn expiring_keys(
        &self,
        now: i64,
        horizon: i64,
        threshold: &str,
        limit: u32,
    ) -> Result<Vec<(ApiKey, ServiceAccount)>> {
        let stmt = Stmt::new(format!(
            "SELECT {KEY_COLUMNS}, {ACCOUNT_COLUMNS} FROM api_keys k \
             JOIN service_accounts a ON a.id = k.service_account_id \
             WHERE k.revoked_at IS NULL AND a.closed_at IS NULL \
             AND k.expires_at > $1 AND k.expires_at <= $2 \
             AND NOT EXISTS (SELECT 1 FROM expiry_warnings w \
             WHERE w.key_id = k.id AND w.threshold = $3) \
             ORDER BY k.expires_at LIMIT $4"
        ))
        .arg(now)
        .arg(horizon)
        .arg(threshold)
        .arg(i64::from(limit));
        self.all(stmt, |r| Ok((key_from(r)?, account_from(r)?)))
            .await
    }

    async fn find_secret(&self, hash: &KeyHash) -> Result<Option<Found>> {
        let key = Stmt::new(format!(
            "SELECT {KEY_COLUMNS}, {ACCOUNT_COLUMNS} FROM api_keys k \
             JOIN service_accounts a ON a.id = k.service_account_id WHERE k.hash = $1"
        ))
        .arg(hash.to_hex());
        if let Some(found) = self
            .first(key, |r| Ok(Found::Key(key_from(r)?, account_from(r)?)))
            .await?
        {
            return Ok(Some(found));
        }
        let credential = Stmt::new(format!(
            "SELECT {CREDENTIAL_COLUMNS}, {ACCOUNT_COLUMNS} FROM client_credentials c \
             JOIN service_accounts a ON a.id = c.service_account_id WHERE c.secret_hash = $1"
        ))
        .arg(hash.to_hex());
        self.first(credential, |r| {
            Ok(Found::Credential(credential_from(r)?, account_from(r)?))
        })
        .await
    }
}
