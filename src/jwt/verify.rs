//! Verifying a keygate JWT: kid → published key, `alg` pinned to that key's,
//! `typ: at+jwt`, `iss`, `exp`/`nbf` with leeway. Pure: returns the claims.
//! Whether the token's account may still use it, and the cache of verified
//! tokens, belong to `authn`.

use std::sync::Arc;

use jsonwebtoken::{decode, decode_header, Validation};

use super::{AccessClaims, KeyRing, ACCESS_TOKEN_TYP};

/// Clock skew tolerated on `exp` and `nbf`: 30 s.
pub const LEEWAY_SECONDS: i64 = 30;
/// Longest token considered at all. SECURITY: checked before any parsing.
pub const MAX_TOKEN_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("token is malformed or too large")]
    Malformed,
    #[error("token signature, header or claims are invalid")]
    Invalid,
    #[error("token has expired or is not yet valid")]
    Expired,
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

pub struct Verifier {
    ring: Arc<KeyRing>,
    issuer: String,
}

impl Verifier {
    pub fn new(ring: Arc<KeyRing>, issuer: String) -> Self {
        Self { ring, issuer }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The token's claims if its signature, header and claims are valid now.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<AccessClaims, Error> {
        if token.len() > MAX_TOKEN_LEN || !looks_like_jwt(token) {
            return Err(Error::Malformed);
        }
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
        v.validate_aud = false; // checked per route by the caller
        v.set_issuer(&[&self.issuer]);
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud", "nbf"]);
        decode::<AccessClaims>(token, &key.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature
                | jsonwebtoken::errors::ErrorKind::ImmatureSignature => Error::Expired,
                _ => Error::Invalid,
            })
    }
}
