//! What the quota meter and the traffic counters keep in the store: spent
//! per quota window, and requests per account, day, route and outcome.
//! Written in batches by each replica (increments, so replicas add up),
//! never on the request path.

use uuid::Uuid;

/// An increment of one quota window's spending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spend {
    /// The account, key or client credential whose quota it is.
    pub subject: Uuid,
    pub window_start: i64,
    /// `i64::MAX`: a window that never ends (`period = "none"`).
    pub window_end: i64,
    pub amount: u64,
}

/// What one quota window has spent in all, as the store sums it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    pub subject: Uuid,
    pub window_start: i64,
    pub window_end: i64,
    pub spent: u64,
}

/// Requests of one account on one UTC day and route with one outcome
/// (`admitted`, or the reason it was refused), and the quota they spent.
/// An increment when written, the sum when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traffic {
    pub account_id: Uuid,
    /// Unix ms of the day's start (UTC).
    pub day: i64,
    pub route: String,
    pub outcome: String,
    pub requests: u64,
    pub spent: u64,
}
