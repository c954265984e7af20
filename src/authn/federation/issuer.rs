//! One trusted issuer at run time: its configuration, its current key set
//! (swapped whole, read without a lock), when that set was last fetched,
//! and the gate that keeps unknown-`kid` refetches to one per 30 s. The
//! last good set stays while the issuer is down or answers garbage.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::Uri;

use super::fetch::{self, FetchError, Fetcher};
use crate::config::{JwksSource, TrustedIssuer};
use crate::jwt::jwk::PublicKey;

/// The soonest an unknown `kid` may cause another fetch (ms).
pub(super) const KID_REFETCH_GAP_MS: i64 = 30_000;

pub(crate) struct Issuer {
    pub(crate) config: TrustedIssuer,
    keys: ArcSwap<Vec<PublicKey>>,
    /// When the current set was fetched (unix ms); 0: never.
    fetched_ms: AtomicI64,
    /// When an unknown `kid` last caused a fetch (unix ms).
    kid_fetch_ms: AtomicI64,
    /// One fetch at a time; never held on the request path except by the
    /// request that waits for an unknown-`kid` refetch.
    fetching: tokio::sync::Mutex<()>,
    /// Fetches by outcome, for `/metrics`.
    pub(crate) fetches_ok: metrics::Counter,
    pub(crate) fetches_failed: metrics::Counter,
}

impl Issuer {
    pub(crate) fn new(
        config: TrustedIssuer,
        ok: metrics::Counter,
        failed: metrics::Counter,
    ) -> Self {
        Self {
            config,
            keys: ArcSwap::from_pointee(Vec::new()),
            fetched_ms: AtomicI64::new(0),
            kid_fetch_ms: AtomicI64::new(i64::MIN / 2),
            fetching: tokio::sync::Mutex::new(()),
            fetches_ok: ok,
            fetches_failed: failed,
        }
    }

    /// The key a token's header names: by `kid`, or the only key when the
    /// header names none.
    pub(crate) fn key(&self, kid: Option<&str>) -> Option<PublicKey> {
        let keys = self.keys.load();
        match kid {
            Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)).cloned(),
            None if keys.len() == 1 => keys.first().cloned(),
            None => None,
        }
    }

    pub(crate) fn has_kid(&self, kid: Option<&str>) -> bool {
        self.key(kid).is_some()
    }

    pub(crate) fn key_count(&self) -> usize {
        self.keys.load().len()
    }

    /// When the current set was fetched (unix ms), if ever.
    pub(crate) fn fetched_ms(&self) -> Option<i64> {
        Some(self.fetched_ms.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    /// Claims the right to refetch for an unknown `kid` at `now_ms`: at
    /// most once per [`KID_REFETCH_GAP_MS`], across all callers.
    pub(crate) fn claim_kid_refetch(&self, now_ms: i64) -> bool {
        let last = self.kid_fetch_ms.load(Ordering::Relaxed);
        now_ms.saturating_sub(last) >= KID_REFETCH_GAP_MS
            && self
                .kid_fetch_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Waits for a fetch under way, if any (a token that arrives while the
    /// one allowed refetch runs is judged on its result, not refused).
    pub(crate) async fn settled(&self) {
        if self.fetching.try_lock().is_err() {
            drop(self.fetching.lock().await);
        }
    }

    /// Fetches the key set and, when it is good, replaces the current one.
    pub(crate) async fn refresh(
        &self,
        fetcher: &Fetcher,
        now_ms: i64,
    ) -> Result<usize, FetchError> {
        let _one = self.fetching.lock().await;
        let result = self.fetch(fetcher).await;
        match &result {
            Ok(keys) => {
                let n = keys.len();
                self.keys.store(Arc::new(keys.clone()));
                self.fetched_ms.store(now_ms.max(1), Ordering::Relaxed);
                self.fetches_ok.increment(1);
                tracing::debug!(issuer = %self.config.name, keys = n, "issuer keys fetched");
            }
            Err(e) => {
                self.fetches_failed.increment(1);
                tracing::warn!(issuer = %self.config.name, error = %e, "issuer keys not fetched; keeping the last good set");
            }
        }
        result.map(|k| k.len())
    }

    async fn fetch(&self, fetcher: &Fetcher) -> Result<Vec<PublicKey>, FetchError> {
        let doc = match &self.config.source {
            JwksSource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|_| FetchError::File)?
                .into(),
            JwksSource::Uri(uri) => fetcher.get(uri).await?,
            JwksSource::Discovery(discovery) => {
                let doc = fetcher.get(discovery).await?;
                let jwks: Uri = fetch::discovered_jwks_uri(&doc, &self.config.issuer)?;
                fetcher.get(&jwks).await?
            }
        };
        fetch::parse_jwks(&doc, &self.config.algorithms)
    }
}
