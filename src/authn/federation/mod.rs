//! Identities keygate did not issue: JWTs of `[[trusted_issuers]]`
//! (Kubernetes service-account tokens, GitHub Actions OIDC tokens, a
//! cloud's workload tokens), verified against their issuer's published
//! keys. Owns the issuers' key sets ([`issuer`], fetched by [`fetch`]),
//! verification ([`Federation::verify`]: signature by a listed algorithm,
//! `iss` exactly, `aud` one of the configured audiences, `exp`/`nbf` with
//! leeway, registered claims of their JSON types — [`claims`]) and the
//! verified tokens kept until they expire, so a token costs its signature
//! check once. Which account a verified token is — its binding — is the
//! cache's ([`super::cache`]); the grants that use it are `oauth`'s.
//!
//! SECURITY: nothing in a token decides what is fetched. `jku`, `x5u` and
//! `jwk` headers are never read; an unknown `kid` may cause one refetch of
//! the configured key set per issuer per 30 s, whatever the flood.

pub(crate) mod claims;
pub mod fetch;
mod issuer;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use jsonwebtoken::{decode, decode_header, Validation};
use serde_json::{Map, Value};
use tokio::sync::watch;

pub use self::claims::ExternalClaims;

use self::fetch::Fetcher;
use self::issuer::Issuer;
use crate::clock::SharedClock;
use crate::config::{JwksSource, TrustedIssuer};
use crate::jwt::verify::{looks_like_jwt, LEEWAY_SECONDS};
use crate::telemetry::metrics::{Metrics, ISSUER_FETCHES};

/// Longest external token considered (Kubernetes and cloud tokens run to
/// 1–2 KiB). SECURITY: checked before any parsing.
pub const MAX_EXTERNAL_TOKEN: usize = 8192;
/// Most trusted issuers (a route's set is a bit mask).
pub const MAX_ISSUERS: usize = 64;
/// Verified external tokens kept at most.
const MAX_VERIFIED: usize = 100_000;
/// After a failed scheduled fetch, the next try (or sooner when the
/// configured refresh is sooner).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// Why an external token was refused. The text is safe to show the caller
/// that presented the token (RFC 6749 `error_description`): it says which
/// rule failed, never anything about keys or other accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the token is not a JWT, or is too large")]
    Malformed,
    #[error("the token's issuer (iss) is not trusted here")]
    UntrustedIssuer,
    #[error("the token's signing key (kid) is not among its issuer's keys")]
    UnknownKey(usize),
    #[error("the token's algorithm is not one its issuer may use")]
    Algorithm,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token's claims are invalid: {0}")]
    Claims(&'static str),
    #[error("the token's audience (aud) is not one keygate accepts from its issuer")]
    Audience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf or iat in the future)")]
    NotYetValid,
}

/// A set of trusted issuers by index: what a route accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IssuerSet(u64);

impl IssuerSet {
    pub const EMPTY: Self = Self(0);
    /// Every issuer (the token endpoint accepts them all).
    pub const ALL: Self = Self(u64::MAX);

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, index: usize) -> bool {
        index < MAX_ISSUERS && self.0 & (1 << index) != 0
    }

    #[must_use]
    pub fn with(self, index: usize) -> Self {
        if index < MAX_ISSUERS {
            Self(self.0 | (1 << index))
        } else {
            self
        }
    }
}

/// An external token whose signature and claims verified.
#[derive(Debug)]
pub struct VerifiedExternal {
    /// The trusted issuer's index.
    pub issuer: usize,
    pub claims: ExternalClaims,
    /// `exp` / `nbf` (or `iat`) in unix ms, leeway applied.
    expires_ms: i64,
    not_before_ms: i64,
}

impl VerifiedExternal {
    pub(crate) fn in_window(&self, now_ms: i64) -> bool {
        now_ms < self.expires_ms && now_ms >= self.not_before_ms
    }
}

pub struct Federation {
    issuers: Vec<Arc<Issuer>>,
    fetcher: Option<Fetcher>,
    verified: DashMap<Box<str>, Arc<VerifiedExternal>, foldhash::fast::RandomState>,
    last_full_sweep: AtomicI64,
}

impl Federation {
    /// No trusted issuers: every external token is refused, nothing runs.
    pub fn none() -> Self {
        Self {
            issuers: Vec::new(),
            fetcher: None,
            verified: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            last_full_sweep: AtomicI64::new(0),
        }
    }

    pub fn new(configs: &[TrustedIssuer], metrics: &Metrics) -> Result<Self, String> {
        let mut f = Self::none();
        if configs.is_empty() {
            return Ok(f);
        }
        f.fetcher = Some(Fetcher::new()?);
        f.issuers = configs
            .iter()
            .take(MAX_ISSUERS)
            .map(|c| {
                let counter = |outcome| {
                    metrics.counter(ISSUER_FETCHES, &[("issuer", &c.name), ("outcome", outcome)])
                };
                Arc::new(Issuer::new(c.clone(), counter("ok"), counter("failed")))
            })
            .collect();
        Ok(f)
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// The configured name of issuer `index`.
    pub fn name(&self, index: usize) -> &str {
        self.issuers
            .get(index)
            .map_or("", |i| i.config.name.as_str())
    }

    /// Reads the key files, so a bad `jwks_file` stops keygate at start
    /// with the reason, rather than refusing every token later.
    pub async fn load_files(&self, now_ms: i64) -> Result<(), String> {
        let Some(fetcher) = &self.fetcher else {
            return Ok(());
        };
        for i in &self.issuers {
            if let JwksSource::File(path) = &i.config.source {
                i.refresh(fetcher, now_ms).await.map_err(|e| {
                    format!(
                        "trusted_issuers {:?}: jwks_file {}: {e}",
                        i.config.name,
                        path.display()
                    )
                })?;
            }
        }
        Ok(())
    }

    /// An external token from one of `allowed`, verified (or found
    /// verified earlier) and valid at `now_ms`.
    pub fn verify(
        &self,
        token: &str,
        allowed: IssuerSet,
        now_ms: i64,
    ) -> Result<Arc<VerifiedExternal>, Error> {
        if token.len() > MAX_EXTERNAL_TOKEN || !looks_like_jwt(token) {
            return Err(Error::Malformed);
        }
        if let Some(v) = self.verified.get(token).map(|e| Arc::clone(e.value())) {
            if !allowed.contains(v.issuer) {
                return Err(Error::UntrustedIssuer);
            }
            return match v.in_window(now_ms) {
                true => Ok(v),
                false if now_ms >= v.expires_ms => Err(Error::Expired),
                false => Err(Error::NotYetValid),
            };
        }
        let v = Arc::new(self.verify_uncached(token, allowed, now_ms)?);
        self.keep(token, &v, now_ms);
        Ok(v)
    }

    /// A token verified earlier, if it is kept.
    pub(crate) fn kept(&self, token: &str) -> Option<Arc<VerifiedExternal>> {
        if self.issuers.is_empty() {
            return None;
        }
        self.verified.get(token).map(|e| Arc::clone(e.value()))
    }

    /// Full verification, bypassing the kept tokens.
    pub fn verify_uncached(
        &self,
        token: &str,
        allowed: IssuerSet,
        now_ms: i64,
    ) -> Result<VerifiedExternal, Error> {
        if token.len() > MAX_EXTERNAL_TOKEN || !looks_like_jwt(token) {
            return Err(Error::Malformed);
        }
        let iss = claims::peek_issuer(token)?;
        let index = self
            .issuers
            .iter()
            .position(|i| i.config.issuer == iss)
            .filter(|i| allowed.contains(*i))
            .ok_or(Error::UntrustedIssuer)?;
        let issuer = &self.issuers[index];
        // SECURITY: jsonwebtoken cannot even represent `none`; the header's
        // `jku`, `x5u` and `jwk` are never read: keys come only from the
        // issuer's configured set, by `kid`.
        let header = decode_header(token).map_err(|_| Error::Malformed)?;
        if !issuer.config.algorithms.contains(&header.alg) {
            return Err(Error::Algorithm);
        }
        let key = issuer
            .key(header.kid.as_deref())
            .ok_or(Error::UnknownKey(index))?;
        // SECURITY: the key's type must fit the algorithm, so HS256 "signed"
        // with a published public key never verifies.
        if !key.verifies(header.alg) {
            return Err(Error::Algorithm);
        }
        let mut v = Validation::new(header.alg);
        // Time is judged below by keygate's injectable clock; audience and
        // issuer against the configuration, with their own errors.
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        let all = decode::<Map<String, Value>>(token, &key.decoding, &v)
            .map_err(|_| Error::Signature)?
            .claims;
        let claims = ExternalClaims::parse(all)?;
        if claims.iss != issuer.config.issuer {
            return Err(Error::UntrustedIssuer);
        }
        if !claims
            .aud
            .iter()
            .any(|a| issuer.config.audiences.iter().any(|c| c == a))
        {
            return Err(Error::Audience);
        }
        let now = now_ms.div_euclid(1000);
        // SECURITY: saturating, so a huge `exp` or `nbf` cannot wrap.
        if claims.exp.saturating_add(LEEWAY_SECONDS) <= now {
            return Err(Error::Expired);
        }
        let starts = claims.nbf.into_iter().chain(claims.iat).max();
        if starts.is_some_and(|s| s.saturating_sub(LEEWAY_SECONDS) > now) {
            return Err(Error::NotYetValid);
        }
        Ok(VerifiedExternal {
            issuer: index,
            expires_ms: claims
                .exp
                .saturating_add(LEEWAY_SECONDS)
                .saturating_mul(1000),
            not_before_ms: starts.map_or(i64::MIN, |s| {
                s.saturating_sub(LEEWAY_SECONDS).saturating_mul(1000)
            }),
            claims,
        })
    }

    fn keep(&self, token: &str, v: &Arc<VerifiedExternal>, now_ms: i64) {
        if self.verified.len() >= MAX_VERIFIED {
            let last = self.last_full_sweep.load(Ordering::Relaxed);
            if now_ms - last >= 1000
                && self
                    .last_full_sweep
                    .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.sweep(now_ms);
            }
        }
        if self.verified.len() < MAX_VERIFIED {
            self.verified.insert(token.into(), Arc::clone(v));
        }
    }

    /// Drops expired tokens.
    pub fn sweep(&self, now_ms: i64) {
        self.verified.retain(|_, v| v.expires_ms > now_ms);
    }

    /// For a token refused because its `kid` is not in its issuer's set:
    /// refetches that set, at most once per issuer per 30 s (a token that
    /// comes while that refetch runs waits for it), and says whether the
    /// key is known now.
    pub async fn refetch_for(&self, token: &str, allowed: IssuerSet, now_ms: i64) -> bool {
        let Some(fetcher) = &self.fetcher else {
            return false;
        };
        if token.len() > MAX_EXTERNAL_TOKEN || !looks_like_jwt(token) {
            return false;
        }
        let Ok(iss) = claims::peek_issuer(token) else {
            return false;
        };
        let Some(issuer) = self
            .issuers
            .iter()
            .enumerate()
            .find(|(i, c)| c.config.issuer == iss && allowed.contains(*i))
            .map(|(_, c)| c)
        else {
            return false;
        };
        let Ok(header) = decode_header(token) else {
            return false;
        };
        let kid = header.kid.as_deref();
        if issuer.has_kid(kid) {
            return true;
        }
        if !issuer.claim_kid_refetch(now_ms) {
            // Within 30 s of the last refetch: no new fetch, but one under
            // way may be bringing this key.
            issuer.settled().await;
            return issuer.has_kid(kid);
        }
        tracing::info!(issuer = %issuer.config.name, "unknown kid: refetching the issuer's keys");
        let _ = issuer.refresh(fetcher, now_ms).await;
        issuer.has_kid(kid)
    }

    /// Per issuer: name, keys held, and when they were fetched (unix ms).
    pub fn status(&self) -> Vec<(String, usize, Option<i64>)> {
        self.issuers
            .iter()
            .map(|i| (i.config.name.clone(), i.key_count(), i.fetched_ms()))
            .collect()
    }

    /// Keeps every issuer's keys fresh: each fetched now, then every
    /// `jwks_refresh` (after a failure, within 30 s), until shutdown.
    pub async fn run(self: Arc<Self>, clock: SharedClock, mut shutdown: watch::Receiver<bool>) {
        let Some(fetcher) = &self.fetcher else {
            return;
        };
        let start = tokio::time::Instant::now();
        let mut due: Vec<tokio::time::Instant> = self.issuers.iter().map(|_| start).collect();
        loop {
            let Some(next) = due.iter().min().copied() else {
                return;
            };
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                _ = shutdown.changed() => return,
            }
            let now = tokio::time::Instant::now();
            for (i, issuer) in self.issuers.iter().enumerate() {
                if due[i] > now {
                    continue;
                }
                let every = issuer.config.jwks_refresh;
                due[i] = match issuer.refresh(fetcher, clock.now_ms()).await {
                    Ok(_) => now + every,
                    Err(_) => now + every.min(RETRY_AFTER_FAILURE),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_sets_hold_only_what_was_added() {
        let s = IssuerSet::EMPTY.with(0).with(3);
        assert!(s.contains(0) && s.contains(3));
        assert!(!s.contains(1) && !s.contains(64));
        assert!(IssuerSet::EMPTY.is_empty());
        assert_eq!(IssuerSet::EMPTY.with(64), IssuerSet::EMPTY);
    }
}
