//! The key ring: every published signing key, parsed once for signing and
//! verifying. Rotation publishes a key before it signs (`activates_at`) and keeps
//! the old one until every token it signed has expired (`retires_at`).

use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use serde_json::{json, Value};

use super::{signing, ACCESS_TOKEN_TYP};
use crate::store::SigningKeyRecord;

pub struct LoadedKey {
    pub kid: String,
    pub alg: Algorithm,
    pub activates_at: i64,
    pub retires_at: Option<i64>,
    pub jwk: Value,
    signer: signing::Signer,
    pub decoding: DecodingKey,
    /// The JOSE header (`alg`, `kid`, `typ: at+jwt`), base64url, built once.
    header_b64: String,
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
    /// The compact JWS of `claims` (JSON): header, claims and signature,
    /// base64url, in one string (sized for an ECDSA or EdDSA signature).
    pub fn jws(&self, claims: &[u8]) -> Result<String, signing::Error> {
        let mut token = String::with_capacity(self.header_b64.len() + claims.len() * 4 / 3 + 96);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut token);
        let signature = self.signer.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

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
            .max_by(|a, b| (a.activates_at, &a.kid).cmp(&(b.activates_at, &b.kid)))
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
    let header_json = serde_json::to_vec(&header).map_err(|_| signing::Error::Unusable)?;
    Ok(LoadedKey {
        kid: r.kid.clone(),
        alg,
        activates_at: r.activates_at,
        retires_at: r.retires_at,
        jwk: r.public_jwk.clone(),
        signer: signing::Signer::from_pkcs8(alg, &r.private_der)?,
        decoding: signing::decoding_key(&r.public_jwk)?,
        header_b64: URL_SAFE_NO_PAD.encode(header_json),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generated key, its JWK, the ring's parsed signer and prebuilt
    /// header: a JWS from the ring verifies with jsonwebtoken against the
    /// published JWK.
    fn signs_verifiable_tokens(alg: Algorithm) {
        let (der, jwk) = signing::generate(alg, "k1").unwrap();
        assert_eq!(jwk["kid"], "k1");
        assert_eq!(jwk["alg"], signing::algorithm_name(alg));
        assert_eq!(jwk["use"], "sig");
        let ring = KeyRing::new();
        ring.replace(&[SigningKeyRecord {
            kid: "k1".into(),
            algorithm: signing::algorithm_name(alg).into(),
            private_der: der,
            public_jwk: jwk.clone(),
            created_at: 0,
            activates_at: 0,
            retires_at: None,
        }]);
        let key = ring.signer(1).unwrap();
        let token = key.jws(br#"{"sub":"x","exp":4000000000}"#).unwrap();

        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, alg);
        assert_eq!(header.kid.as_deref(), Some("k1"));
        assert_eq!(header.typ.as_deref(), Some(ACCESS_TOKEN_TYP));
        let mut v = jsonwebtoken::Validation::new(alg);
        v.required_spec_claims.clear();
        v.validate_aud = false;
        let decoding = signing::decoding_key(&jwk).unwrap();
        let decoded = jsonwebtoken::decode::<Value>(&token, &decoding, &v).unwrap();
        assert_eq!(decoded.claims["sub"], "x");

        // One changed byte of the claims and the signature no longer holds.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(br#"{"sub":"y","exp":4000000000}"#);
        assert!(jsonwebtoken::decode::<Value>(&parts.join("."), &decoding, &v).is_err());
    }

    #[test]
    fn es256_tokens_verify_against_the_published_key() {
        signs_verifiable_tokens(Algorithm::ES256);
    }

    #[test]
    fn eddsa_tokens_verify_against_the_published_key() {
        signs_verifiable_tokens(Algorithm::EdDSA);
    }

    #[test]
    fn rs256_tokens_verify_against_the_published_key() {
        signs_verifiable_tokens(Algorithm::RS256);
    }
}
