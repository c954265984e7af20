//! What the store keeps for events out of keygate: webhooks, the delivery
//! outbox, the feed of committed changes as events, and the expiry warnings
//! already given. Plain data and the [`EventStore`] trait; the SQL is in
//! `sql/events.rs`. Knows nothing of HTTP, signing or delivery policy.

use async_trait::async_trait;
use uuid::Uuid;

use super::{ApiKey, AuditEvent, ClientCredential, Keyset, Result, ServiceAccount};
use crate::secret::KeyHash;

/// A webhook subscription. The secret signs deliveries, so it is kept as is
/// (unlike API keys): never logged, never shown after creation.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: Uuid,
    /// `None`: every organization's events (platform admins only).
    pub organization_id: Option<Uuid>,
    pub url: String,
    /// Patterns: `*`, `api_key.*`, `api_key.revoked`.
    pub events: Vec<String>,
    pub secret: String,
    pub created_by: Option<Uuid>,
    pub created_at: i64,
    pub updated_at: i64,
}

// SECURITY: never print the signing secret.
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("organization_id", &self.organization_id)
            .field("url", &self.url)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// One committed change as an event: its revision, the accounts it touched
/// and the audit row that explains it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub revision: i64,
    pub accounts: Vec<Uuid>,
    pub audit: AuditEvent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event for one webhook: a row of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub revision: i64,
    /// Deliveries of one lane go out in revision order (an account id, or
    /// empty for events about no account).
    pub lane: String,
    /// `webhook-id`: the same on every attempt.
    pub event_id: String,
    pub event_type: String,
    /// The signed body, exactly as sent.
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub last_attempt_at: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered {
        status: i64,
    },
    /// Try again at `next_at` (unix ms).
    Retry {
        status: Option<i64>,
        error: String,
        next_at: i64,
    },
    /// Given up: retried for the whole retry window.
    Failed {
        status: Option<i64>,
        error: String,
    },
}

/// A claim on due deliveries.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    pub replica: Uuid,
    pub now: i64,
    pub lease_until: i64,
    pub limit: u32,
    /// Webhooks this replica has no room for now (their targets are busy).
    pub skip: &'a [Uuid],
}

/// A key or client secret found by its hash, with its account.
#[derive(Debug, Clone)]
pub enum Found {
    Key(ApiKey, ServiceAccount),
    Credential(ClientCredential, ServiceAccount),
}

/// Persistence for events; every [`super::Store`] is one.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Committed changes after `revision` with their audit rows, oldest first.
    async fn events_since(&self, revision: i64, limit: u32) -> Result<Vec<StoredEvent>>;
    /// The revision up to which events have been enqueued.
    async fn event_cursor(&self) -> Result<i64>;
    /// Inserts deliveries (one per event and webhook: a delivery another
    /// replica enqueued already is left as is) and moves the cursor forward
    /// to `cursor`, in one transaction.
    async fn enqueue(&self, deliveries: Vec<Delivery>, cursor: i64) -> Result<()>;

    async fn webhook(&self, id: Uuid) -> Result<Option<Webhook>>;
    /// Webhooks by id; `organization` restricts to one organization's.
    async fn webhooks(&self, organization: Option<Uuid>, page: Keyset) -> Result<Vec<Webhook>>;
    /// Every webhook (the dispatcher matches events against them).
    async fn all_webhooks(&self) -> Result<Vec<Webhook>>;

    /// Leases up to `claim.limit` due deliveries to `claim.replica`: pending,
    /// due, unleased or with an expired lease, and first in their lane.
    async fn claim(&self, claim: Claim<'_>) -> Result<Vec<Delivery>>;
    /// Records an attempt of a delivery this replica holds the lease of.
    async fn finish(&self, id: Uuid, replica: Uuid, at: i64, attempt: Attempt) -> Result<()>;
    /// Hands a claimed delivery back untried.
    async fn release(&self, id: Uuid, replica: Uuid) -> Result<()>;
    /// Forgets delivered and failed deliveries enqueued before `before`.
    async fn prune_deliveries(&self, before: i64) -> Result<()>;
    /// A webhook's deliveries, by id (oldest first).
    async fn deliveries(&self, webhook_id: Uuid, page: Keyset) -> Result<Vec<Delivery>>;

    /// Live keys expiring in `(now, horizon]` not yet warned of at `threshold`.
    async fn expiring_keys(
        &self,
        now: i64,
        horizon: i64,
        threshold: &str,
        limit: u32,
    ) -> Result<Vec<(ApiKey, ServiceAccount)>>;

    /// The key or client secret with this hash, live or not.
    async fn find_secret(&self, hash: &KeyHash) -> Result<Option<Found>>;
}
