//! The key ring: every published signing key, loaded once into jsonwebtoken
//! keys. Rotation publishes a key before it signs (`activates_at`) and keeps
//! the old one until every token it signed has expired (`retires_at`).

use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{json, Value};

use super::{signing, ACCESS_TOKEN_TYP};
use crate::store::SigningKeyRecord;

pub struct LoadedKey {
    pub kid: String,
    pub alg: Algorithm,
    pub activates_at: i64,
    pub retires_at: Option<i64>,
    pub jwk: Value,
    pub(crate) encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// Prebuilt: `alg`, `kid`, `typ: at+jwt`.
    pub(crate) header: Header,
}

impl std::fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl LoadedKey {
    fn published(&self, now_ms: i64) -> bool {
        self.retires_at.is_none_or(|r| r > now_ms)
    }
}

#[derive(Default)]
pub struct KeyRing {
    keys: RwLock<Arc<Vec<Arc<LoadedKey>>>>,
}

impl KeyRing {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the ring with `records`; a key that cannot be loaded is
    /// skipped and logged (never its material).
    pub fn replace(&self, records: &[SigningKeyRecord]) {
        let loaded: Vec<Arc<LoadedKey>> = records
            .iter()
            .filter_map(|r| match load(r) {
                Ok(k) => Some(Arc::new(k)),
                Err(e) => {
                    tracing::error!(kid = %r.kid, error = %e, "skipping unusable signing key");
                    None
                }
            })
            .collect();
        if let Ok(mut keys) = self.keys.write() {
            *keys = Arc::new(loaded);
        }
    }

    fn snapshot(&self) -> Arc<Vec<Arc<LoadedKey>>> {
        self.keys.read().map(|k| Arc::clone(&k)).unwrap_or_default()
    }

    /// The key that signs now: the most recently activated live key.
    pub fn signer(&self, now_ms: i64) -> Option<Arc<LoadedKey>> {
        self.snapshot()
            .iter()
            .filter(|k| k.activates_at <= now_ms && k.published(now_ms))
            .max_by_key(|k| (k.activates_at, k.kid.clone()))
            .cloned()
    }

    /// The published key with this `kid`, for verification.
    pub fn verifier(&self, kid: &str, now_ms: i64) -> Option<Arc<LoadedKey>> {
        self.snapshot()
            .iter()
            .find(|k| k.kid == kid && k.published(now_ms))
            .cloned()
    }

    /// Every published key (RFC 7517 JWK Set).
    pub fn jwks(&self, now_ms: i64) -> Value {
        let snapshot = self.snapshot();
        let keys: Vec<&Value> = snapshot
            .iter()
            .filter(|k| k.published(now_ms))
            .map(|k| &k.jwk)
            .collect();
        json!({ "keys": keys })
    }

    /// Algorithms of the published keys: the only ones accepted (alg pinning).
    pub fn algorithms(&self, now_ms: i64) -> Vec<Algorithm> {
        let mut algs: Vec<Algorithm> = Vec::new();
        for k in self.snapshot().iter().filter(|k| k.published(now_ms)) {
            if !algs.contains(&k.alg) {
                algs.push(k.alg);
            }
        }
        algs
    }

    pub fn is_empty(&self) -> bool {
        self.snapshot().is_empty()
    }
}

fn load(r: &SigningKeyRecord) -> Result<LoadedKey, signing::Error> {
    let alg = signing::parse_algorithm(&r.algorithm).ok_or(signing::Error::Unsupported)?;
    let mut header = Header::new(alg);
    header.kid = Some(r.kid.clone());
    header.typ = Some(ACCESS_TOKEN_TYP.into());
    Ok(LoadedKey {
        kid: r.kid.clone(),
        alg,
        activates_at: r.activates_at,
        retires_at: r.retires_at,
        jwk: r.public_jwk.clone(),
        encoding: signing::encoding_key(alg, &r.private_der)?,
        decoding: signing::decoding_key(&r.public_jwk)?,
        header,
    })
}
