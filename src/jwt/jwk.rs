//! Public keys from other parties, as JWKs (RFC 7517): an issuer's key set
//! for federated tokens, a client credential's `public_jwk` for
//! `private_key_jwt`. Parsing finishes before any use: a key is refused
//! whole (a secret `oct` key, private key material, a curve that does not
//! fit its algorithm) with a reason that names the problem, never half
//! taken. Owns no fetching and no verification policy (which algorithms an
//! issuer may use is the caller's list).

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// Why a JWK was refused. Static, lowercase, and free of key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("is not a JSON object")]
    NotAnObject,
    #[error("is not a JWK keygate can read (kty, crv, n/e or x/y missing or malformed)")]
    Malformed,
    #[error("holds private key material (\"d\"); give the public key only")]
    Private,
    #[error(
        "is a symmetric (oct) key; only RSA, EC P-256/P-384 and Ed25519 public keys are accepted"
    )]
    Symmetric,
    #[error("is on a curve keygate does not verify (P-521, X25519…)")]
    UnsupportedCurve,
    #[error("names an algorithm (alg) that does not fit its key type, or one not accepted here")]
    AlgorithmMismatch,
    #[error("is for encryption (use: enc), not signatures")]
    Encryption,
}

/// The shape of a key, which decides the algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl Family {
    /// The algorithms a key of this shape can verify.
    fn fits(self, alg: Algorithm) -> bool {
        match self {
            Family::Rsa => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            Family::P256 => alg == Algorithm::ES256,
            Family::P384 => alg == Algorithm::ES384,
            Family::Ed25519 => alg == Algorithm::EdDSA,
        }
    }
}

/// A verification key from a JWK.
#[derive(Clone)]
pub struct PublicKey {
    pub kid: Option<String>,
    pub family: Family,
    /// The JWK's own `alg`, when it names one: then only that.
    pub alg: Option<Algorithm>,
    pub decoding: DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Whether this key may verify a token whose header says `alg`.
    /// SECURITY: the caller checks `alg` against its own allowlist too; this
    /// only says whether the key's type fits it, so `HS256` "signed" with a
    /// public key, or `none`, never verifies.
    pub fn verifies(&self, alg: Algorithm) -> bool {
        self.family.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

/// Algorithms keygate ever verifies for other parties: asymmetric only.
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// What a client credential's `public_jwk` may sign its assertions with
/// (`private_key_jwt`), as discovery advertises.
pub const CLIENT_ALGORITHMS: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// One public JWK. `allowed`: the algorithms the caller accepts; a key that
/// can verify none of them, or whose `alg` is not among them, is refused.
pub fn parse(value: &Value, allowed: &[Algorithm]) -> Result<PublicKey, Error> {
    let obj = value.as_object().ok_or(Error::NotAnObject)?;
    // Checked on the raw object: jsonwebtoken's type has no field for it.
    if obj.contains_key("d") || obj.contains_key("p") || obj.contains_key("q") {
        return Err(Error::Private);
    }
    match obj.get("kty").and_then(Value::as_str) {
        Some("oct") => return Err(Error::Symmetric),
        Some("RSA" | "EC" | "OKP") => {}
        _ => return Err(Error::Malformed),
    }
    // An `alg` keygate does not verify (HS256, none, RSA-OAEP…) is refused
    // before jsonwebtoken reads it (it would take HS256 as a key algorithm).
    let alg = match obj.get("alg") {
        None => None,
        Some(Value::String(name)) => Some(parse_algorithm(name).ok_or(Error::AlgorithmMismatch)?),
        Some(_) => return Err(Error::Malformed),
    };
    let mut stripped = value.clone();
    if let Some(o) = stripped.as_object_mut() {
        o.remove("alg");
    }
    let jwk: Jwk = serde_json::from_value(stripped).map_err(|_| Error::Malformed)?;
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Err(Error::Encryption);
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Family::Rsa,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Family::P256,
            EllipticCurve::P384 => Family::P384,
            _ => return Err(Error::UnsupportedCurve),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => Family::Ed25519,
            _ => return Err(Error::UnsupportedCurve),
        },
        AlgorithmParameters::OctetKey(_) => return Err(Error::Symmetric),
    };
    if let Some(a) = alg {
        if !family.fits(a) || !allowed.contains(&a) {
            return Err(Error::AlgorithmMismatch);
        }
    } else if !allowed.iter().any(|a| family.fits(*a)) {
        return Err(Error::AlgorithmMismatch);
    }
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| Error::Malformed)?;
    // RSA keys below 2048 bits are refused: they no longer resist factoring.
    if family == Family::Rsa {
        let bits = match &jwk.algorithm {
            AlgorithmParameters::RSA(p) => modulus_bits(&p.n),
            _ => 0,
        };
        if bits < 2048 {
            return Err(Error::Malformed);
        }
    }
    Ok(PublicKey {
        kid: jwk.common.key_id,
        family,
        alg,
        decoding,
    })
}

/// The size of a base64url RSA modulus, in bits (0 when unreadable).
fn modulus_bits(n: &str) -> usize {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(n.trim_end_matches('=')) else {
        return 0;
    };
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    match bytes.get(first) {
        Some(b) => (bytes.len() - first) * 8 - b.leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::jwt::signing;

    const ALL: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

    #[test]
    fn keygate_own_public_keys_parse_with_their_family() {
        for (alg, family) in [
            (Algorithm::ES256, Family::P256),
            (Algorithm::EdDSA, Family::Ed25519),
            (Algorithm::RS256, Family::Rsa),
        ] {
            let (_, jwk) = signing::generate(alg, "k1").unwrap();
            let key = parse(&jwk, ALL).unwrap();
            assert_eq!(key.family, family);
            assert_eq!(key.kid.as_deref(), Some("k1"));
            assert!(key.verifies(alg));
            assert!(!key.verifies(Algorithm::HS256));
        }
    }

    #[test]
    fn refusals_name_the_problem() {
        let (_, ec) = signing::generate(Algorithm::ES256, "k").unwrap();
        let with = |k: &str, v: Value| {
            let mut j = ec.clone();
            j[k] = v;
            j
        };
        assert_eq!(parse(&json!("x"), ALL).unwrap_err(), Error::NotAnObject);
        assert_eq!(
            parse(&json!({"kty": "oct", "k": "c2VjcmV0"}), ALL).unwrap_err(),
            Error::Symmetric
        );
        assert_eq!(
            parse(&with("d", json!("AAAA")), ALL).unwrap_err(),
            Error::Private
        );
        assert_eq!(
            parse(&with("alg", json!("HS256")), ALL).unwrap_err(),
            Error::AlgorithmMismatch
        );
        assert_eq!(
            parse(&with("alg", json!("RS256")), ALL).unwrap_err(),
            Error::AlgorithmMismatch
        );
        assert_eq!(
            parse(&with("alg", json!("none")), ALL).unwrap_err(),
            Error::AlgorithmMismatch
        );
        assert_eq!(
            parse(&with("crv", json!("P-521")), ALL).unwrap_err(),
            Error::UnsupportedCurve
        );
        assert_eq!(
            parse(&with("use", json!("enc")), ALL).unwrap_err(),
            Error::Encryption
        );
        assert_eq!(
            parse(&with("x", json!(7)), ALL).unwrap_err(),
            Error::Malformed
        );
        // An EC key where only RSA is accepted.
        assert_eq!(
            parse(&ec, &[Algorithm::RS256]).unwrap_err(),
            Error::AlgorithmMismatch
        );
    }

    #[test]
    fn short_rsa_moduli_are_refused() {
        let (_, rsa) = signing::generate(Algorithm::RS256, "r").unwrap();
        let mut short = rsa.clone();
        short["n"] = json!("AQAB");
        assert_eq!(parse(&short, ALL).unwrap_err(), Error::Malformed);
        assert!(modulus_bits(rsa["n"].as_str().unwrap()) >= 2048);
    }
}
