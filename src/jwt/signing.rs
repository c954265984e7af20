//! Signing-key material: generation (aws-lc-rs), the public JWK, the
//! parsed key that signs ([`Signer`]) and the verification key, each built
//! once per key.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
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
