//! Signing-key material: generation (aws-lc-rs), the public JWK, the
//! parsed key that signs ([`Signer`]) and the verification key, each built
//! once per key.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{json, Value};

use crate::config;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("key generation failed")]
    Generate,
    #[error("stored signing key is unusable")]
    Unusable,
    #[error("unsupported signing algorithm")]
    Unsupported,
    #[error("signing failed")]
    Sign,
}

/// jsonwebtoken's algorithm for a configured one.
pub fn jwt_algorithm(a: config::Algorithm) -> Algorithm {
    match a {
        config::Algorithm::Es256 => Algorithm::ES256,
        config::Algorithm::EdDsa => Algorithm::EdDSA,
        config::Algorithm::Rs256 => Algorithm::RS256,
    }
}

pub fn algorithm_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::RS256 => "RS256",
        _ => "unsupported",
    }
}

pub fn parse_algorithm(s: &str) -> Option<Algorithm> {
    match s {
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        "RS256" => Some(Algorithm::RS256),
        _ => None,
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new private key (PKCS#8 DER) and its public JWK, for `alg` and `kid`.
pub fn generate(alg: Algorithm, kid: &str) -> Result<(Vec<u8>, Value), Error> {
    let rng = SystemRandom::new();
    match alg {
        Algorithm::ES256 => {
            let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| Error::Generate)?
                .as_ref()
                .to_vec();
            let jwk = public_jwk(alg, &der, kid)?;
            Ok((der, jwk))
        }
        Algorithm::EdDSA => {
            let der = Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| Error::Generate)?
                .as_ref()
                .to_vec();
            let jwk = public_jwk(alg, &der, kid)?;
            Ok((der, jwk))
        }
        Algorithm::RS256 => {
            use aws_lc_rs::encoding::AsDer;
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| Error::Generate)?;
            let der = pair
                .as_der()
                .map_err(|_| Error::Generate)?
                .as_ref()
                .to_vec();
            let jwk = public_jwk(alg, &der, kid)?;
            Ok((der, jwk))
        }
        _ => Err(Error::Unsupported),
    }
}

/// The public JWK of a PKCS#8 private key.
fn public_jwk(alg: Algorithm, der: &[u8], kid: &str) -> Result<Value, Error> {
    let params = match alg {
        Algorithm::ES256 => {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map_err(|_| Error::Unusable)?;
            // Uncompressed point: 0x04 || X (32) || Y (32).
            let point = pair.public_key().as_ref();
            if point.len() != 65 || point[0] != 4 {
                return Err(Error::Unusable);
            }
            json!({ "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]) })
        }
        Algorithm::EdDSA => {
            let pair =
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| Error::Unusable)?;
            json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()) })
        }
        Algorithm::RS256 => {
            let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(der).map_err(|_| Error::Unusable)?;
            let public = pair.public_key();
            json!({
                "kty": "RSA",
                "n": b64(public.modulus().big_endian_without_leading_zero()),
                "e": b64(public.exponent().big_endian_without_leading_zero()),
            })
        }
        _ => return Err(Error::Unsupported),
    };
    let mut jwk = params;
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(algorithm_name(alg));
    jwk["use"] = json!("sig");
    Ok(jwk)
}

/// A stored private key, parsed once, that signs JWS signing inputs.
///
/// keygate signs with this rather than `jsonwebtoken::encode`, which parses
/// the PKCS#8 key again on every call: for ES256 that validation derives the
/// public point, a scalar multiplication that costs as much as the signature.
pub enum Signer {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(aws_lc_rs::rsa::KeyPair),
}

impl Signer {
    /// Parses (and validates) a stored PKCS#8 private key for `alg`.
    pub fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<Self, Error> {
        match alg {
            Algorithm::ES256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map(Self::Es256)
                .map_err(|_| Error::Unusable),
            Algorithm::EdDSA => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map(Self::EdDsa)
                .map_err(|_| Error::Unusable),
            Algorithm::RS256 => aws_lc_rs::rsa::KeyPair::from_pkcs8(der)
                .map(Self::Rs256)
                .map_err(|_| Error::Unusable),
            _ => Err(Error::Unsupported),
        }
    }

    /// The signature of `message` (a JWS signing input).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let rng = SystemRandom::new();
        match self {
            Self::Es256(pair) => pair
                .sign(&rng, message)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| Error::Sign),
            Self::EdDsa(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Self::Rs256(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &rng,
                    message,
                    &mut sig,
                )
                .map_err(|_| Error::Sign)?;
                Ok(sig)
            }
        }
    }
}

/// jsonwebtoken's signing key for a stored private key: for tools and tests
/// that build tokens with arbitrary headers (keygate itself signs with
/// [`Signer`]).
pub fn encoding_key(alg: Algorithm, der: &[u8]) -> Result<EncodingKey, Error> {
    match alg {
        Algorithm::ES256 => Ok(EncodingKey::from_ec_der(der)),
        Algorithm::EdDSA => Ok(EncodingKey::from_ed_der(der)),
        // jsonwebtoken wants PKCS#1 for RSA: the key PKCS#8 wraps.
        Algorithm::RS256 => Ok(EncodingKey::from_rsa_der(
            pkcs8_inner(der).ok_or(Error::Unusable)?,
        )),
        _ => Err(Error::Unsupported),
    }
}

/// jsonwebtoken's verification key, from the published JWK (so verification
/// uses exactly what relying parties see).
pub fn decoding_key(jwk: &Value) -> Result<DecodingKey, Error> {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str).ok_or(Error::Unusable);
    match s("kty")? {
        "EC" => DecodingKey::from_ec_components(s("x")?, s("y")?).map_err(|_| Error::Unusable),
        "OKP" => DecodingKey::from_ed_components(s("x")?).map_err(|_| Error::Unusable),
        "RSA" => DecodingKey::from_rsa_components(s("n")?, s("e")?).map_err(|_| Error::Unusable),
        _ => Err(Error::Unsupported),
    }
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo` (RFC 5208 §5):
/// SEQUENCE { INTEGER version, SEQUENCE algorithm, OCTET STRING privateKey, … }.
fn pkcs8_inner(der: &[u8]) -> Option<&[u8]> {
    /// One DER TLV: (tag, contents, rest).
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, b) = b.split_first()?;
        let (&first, mut b) = b.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || b.len() < n {
                return None;
            }
            let (len_bytes, rest) = b.split_at(n);
            b = rest;
            len_bytes
                .iter()
                .fold(0usize, |acc, &x| (acc << 8) | usize::from(x))
        };
        (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
    }
    let (0x30, body, _) = tlv(der)? else {
        return None;
    };
    let (0x02, _, rest) = tlv(body)? else {
        return None;
    };
    let (0x30, _, rest) = tlv(rest)? else {
        return None;
    };
    let (0x04, key, _) = tlv(rest)? else {
        return None;
    };
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(alg: Algorithm) {
        let (der, jwk) = generate(alg, "k1").unwrap();
        assert_eq!(jwk["kid"], "k1");
        assert_eq!(jwk["alg"], algorithm_name(alg));
        let mut header = jsonwebtoken::Header::new(alg);
        header.kid = Some("k1".into());
        let claims = serde_json::json!({ "sub": "x", "exp": 4_000_000_000u64 });
        let token =
            jsonwebtoken::encode(&header, &claims, &encoding_key(alg, &der).unwrap()).unwrap();
        let mut v = jsonwebtoken::Validation::new(alg);
        v.required_spec_claims.clear();
        v.validate_aud = false;
        let decoded =
            jsonwebtoken::decode::<serde_json::Value>(&token, &decoding_key(&jwk).unwrap(), &v)
                .unwrap();
        assert_eq!(decoded.claims["sub"], "x");
    }

    #[test]
    fn es256_keys_sign_and_verify_through_their_jwk() {
        round_trip(Algorithm::ES256);
    }

    #[test]
    fn eddsa_keys_sign_and_verify_through_their_jwk() {
        round_trip(Algorithm::EdDSA);
    }

    #[test]
    fn rs256_keys_sign_and_verify_through_their_jwk() {
        round_trip(Algorithm::RS256);
    }
}
