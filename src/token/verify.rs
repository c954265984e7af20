//! Verifying keygate's JWTs at the proxy. A token is verified once — kid →
//! published key, `alg` pinned to that key's, `typ: at+jwt`, `iss`,
//! `exp`/`nbf` with leeway — and then kept, keyed by the exact token string,
//! until it expires: clients reuse a token for its whole lifetime. Only
//! verified tokens are ever inserted, so a fast seeded hash (not a
//! cryptographic one) is enough for the key; a hit compares the whole token. What can
//! change meanwhile (account disabled or closed, `jti` revoked) is checked on
//! every request against the cache.

use std::sync::Arc;

use dashmap::DashMap;
use jsonwebtoken::{decode, decode_header, Validation};
use uuid::Uuid;

use super::{AccessClaims, KeyRing, ACCESS_TOKEN_TYP};
use crate::cache::{Cache, Principal};

/// Clock skew tolerated on `exp` and `nbf` (DESIGN: 30 s).
pub const LEEWAY_SECONDS: i64 = 30;
/// Longest token considered at all. SECURITY: checked before any parsing.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Verified tokens kept at most (each ≤ 4 KiB of token plus its claims);
/// past it, new tokens are verified every time until a sweep frees room.
const MAX_VERIFIED: usize = 100_000;

/// A token verified once: what every later request needs from it.
#[derive(Debug)]
pub struct Verified {
    pub principal: Arc<Principal>,
    pub claims: AccessClaims,
    /// `exp` / `nbf` in unix ms, leeway applied.
    expires_ms: i64,
    not_before_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("token is malformed or too large")]
    Malformed,
    #[error("token signature, header or claims are invalid")]
    Invalid,
    #[error("token has expired or is not yet valid")]
    Expired,
    #[error("token audience does not match")]
    Audience,
    #[error("token's account is inactive or the token is revoked")]
    Revoked,
}

/// Does this credential look like a JWT (a base64url JSON header, then a
/// dot)? Cheap on purpose: it only picks the path; a malformed token fails
/// in `decode_header`, and API keys never start this way.
pub fn looks_like_jwt(credential: &str) -> bool {
    credential.starts_with("eyJ")
        && credential
            .as_bytes()
            .get(3..)
            .is_some_and(|rest| rest.contains(&b'.'))
}

pub struct TokenVerifier {
    ring: Arc<KeyRing>,
    issuer: String,
    verified: DashMap<Box<str>, Arc<Verified>, foldhash::fast::RandomState>,
    /// When the cache was last swept because it was full (unix ms): at most
    /// once a second, so a flood of new tokens cannot make every request sweep.
    last_full_sweep: std::sync::atomic::AtomicI64,
}

impl TokenVerifier {
    pub fn new(ring: Arc<KeyRing>, issuer: String) -> Self {
        Self {
            ring,
            issuer,
            verified: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            last_full_sweep: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// The principal a bearer JWT stands for at a route, or why not.
    /// `audience`: the route's, when it sets one (else the issuer).
    pub fn authenticate(
        &self,
        token: &str,
        audience: Option<&str>,
        cache: &Cache,
        now_ms: i64,
    ) -> Result<Arc<Verified>, Error> {
        let v = self.live(token, cache, now_ms)?;
        // RFC 9068 §4: the audience is always checked. A route without its
        // own audience accepts only tokens for keygate itself (aud = issuer),
        // never ones minted for another resource.
        if v.claims.aud != audience.unwrap_or(&self.issuer) {
            return Err(Error::Audience);
        }
        Ok(v)
    }

    /// A verified token that is still good now, whatever its audience
    /// (introspection): in its time window, its account active, not revoked.
    pub fn live(&self, token: &str, cache: &Cache, now_ms: i64) -> Result<Arc<Verified>, Error> {
        let v = self.verify(token, cache, now_ms)?;
        if now_ms >= v.expires_ms || now_ms < v.not_before_ms {
            return Err(Error::Expired);
        }
        if !cache.token_allowed(
            &v.principal.account_id,
            v.claims.iat.saturating_mul(1000),
            now_ms,
        ) || cache.is_revoked(&v.claims.jti)
        {
            return Err(Error::Revoked);
        }
        Ok(v)
    }

    /// Verified claims, from the cache of verified tokens or by verifying now.
    pub fn verify(&self, token: &str, cache: &Cache, now_ms: i64) -> Result<Arc<Verified>, Error> {
        if token.len() > MAX_TOKEN_LEN || !looks_like_jwt(token) {
            return Err(Error::Malformed);
        }
        if let Some(v) = self.verified.get(token).map(|e| Arc::clone(e.value())) {
            return Ok(v);
        }
        let v = Arc::new(self.verify_fully(token, cache, now_ms)?);
        if self.verified.len() >= MAX_VERIFIED {
            use std::sync::atomic::Ordering;
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
            self.verified.insert(token.into(), Arc::clone(&v));
        }
        Ok(v)
    }

    /// Full verification, bypassing the verified-token cache (what a token
    /// costs the first time it is seen).
    pub fn verify_uncached(
        &self,
        token: &str,
        cache: &Cache,
        now_ms: i64,
    ) -> Result<Verified, Error> {
        self.verify_fully(token, cache, now_ms)
    }

    fn verify_fully(&self, token: &str, cache: &Cache, now_ms: i64) -> Result<Verified, Error> {
        let header = decode_header(token).map_err(|_| Error::Invalid)?;
        // RFC 9068 §4: reject anything not typed as an access token.
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(Error::Invalid);
        }
        // SECURITY: the key comes from our ring by kid only (jku, x5u and
        // embedded jwk headers are never consulted), and the algorithm is
        // pinned to that key's: "none", or HS256 keyed with a public key, fail.
        let kid = header.kid.as_deref().ok_or(Error::Invalid)?;
        let key = self.ring.verifier(kid, now_ms).ok_or(Error::Invalid)?;
        if header.alg != key.alg {
            return Err(Error::Invalid);
        }
        let mut v = Validation::new(key.alg);
        v.leeway = LEEWAY_SECONDS as u64;
        v.validate_nbf = true;
        v.validate_aud = false; // checked per route, against the cached claims
        v.set_issuer(&[&self.issuer]);
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud", "nbf"]);
        let claims = decode::<AccessClaims>(token, &key.decoding, &v)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature
                | jsonwebtoken::errors::ErrorKind::ImmatureSignature => Error::Expired,
                _ => Error::Invalid,
            })?
            .claims;
        let parse = |s: &str| Uuid::parse_str(s).map_err(|_| Error::Invalid);
        let principal = cache.token_principal(
            parse(&claims.sub)?,
            parse(&claims.org_id)?,
            claims.project_id.as_deref().map(parse).transpose()?,
            parse(&claims.jti)?,
            &claims.scope,
            claims.exp.saturating_mul(1000),
        );
        Ok(Verified {
            principal: Arc::new(principal),
            expires_ms: (claims.exp + LEEWAY_SECONDS).saturating_mul(1000),
            not_before_ms: (claims.nbf - LEEWAY_SECONDS).saturating_mul(1000),
            claims,
        })
    }

    /// Drops expired entries.
    pub fn sweep(&self, now_ms: i64) {
        self.verified.retain(|_, v| v.expires_ms > now_ms);
    }
}
