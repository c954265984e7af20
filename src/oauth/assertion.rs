//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OpenID
//! Connect Core §9): a client whose credential holds a public JWK proves
//! itself with a JWT signed by its private key, sent as `client_assertion`
//! with `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
//!
//! Owns reading and checking the assertion: its size, header, signature
//! and claims, and that its `jti` is used once. Which credential it names,
//! and whether that credential may authenticate, is the authenticator's
//! ([`crate::authn::Authenticator::client_assertion`]). Every failure is
//! the same coarse `invalid_client`, charged to the caller's address like a
//! bad secret; the reason is logged at debug only.

use std::net::IpAddr;
use std::sync::Arc;

use jsonwebtoken::{Header, Validation};
use serde_json::{Map, Value};

use super::error::OAuthError;
use super::{refused, OAuthState};
use crate::authn::Principal;
use crate::jwt::jwk::{PublicKey, CLIENT_ALGORITHMS};
use crate::jwt::verify::LEEWAY_SECONDS;
use crate::secret::KeyHash;

/// RFC 7523 §2.2: the one assertion type.
pub(super) const TYPE_JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The largest assertion read at all. An RS256 assertion with the usual
/// claims is under 1 KiB; the form body is capped at 16 KiB anyway.
const MAX_ASSERTION_BYTES: usize = 8 * 1024;
/// How far ahead an assertion's `exp` may be: assertions are short-lived,
/// so a stolen one is worth little and its `jti` is remembered briefly.
const MAX_LIFETIME_SECONDS: i64 = 300;
/// The longest `jti` and client id read from an assertion.
const MAX_CLAIM_BYTES: usize = 256;

/// What a verified assertion leaves to check after the authenticator.
struct Verified {
    exp: i64,
    jti: String,
}

/// The client that `assertion` proves to be, with its client id.
/// `named`: the request's `client_id` parameter, which must then be the
/// assertion's subject (RFC 7523 §3).
pub(super) async fn authenticate(
    s: &OAuthState,
    peer: IpAddr,
    named: Option<&str>,
    assertion: &str,
) -> Result<(Arc<Principal>, String), OAuthError> {
    let invalid = |why: &'static str| {
        tracing::debug!(reason = why, "client assertion refused");
        s.charged(peer, OAuthError::client(false))
    };
    // SECURITY: the size is checked before any parsing or crypto.
    if assertion.len() > MAX_ASSERTION_BYTES {
        return Err(invalid("too large"));
    }
    // decode_header refuses `none` (no such Algorithm); HS* and anything
    // else keygate does not accept from clients is refused here.
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| invalid("header"))?;
    if !CLIENT_ALGORITHMS.contains(&header.alg) {
        return Err(invalid("algorithm"));
    }
    // The subject names the credential whose key verifies the signature;
    // until then it is only a name to look up.
    let client_id = unverified_subject(assertion).ok_or_else(|| invalid("subject"))?;
    if named.is_some_and(|n| n != client_id) {
        return Err(invalid("client_id is not the assertion's subject"));
    }
    let issuer = s.minter.issuer();
    let base = issuer.trim_end_matches('/');
    let endpoint = format!("{base}/oauth2/token");
    let audiences = [issuer, base, endpoint.as_str()];
    let mut verified = None;
    let mut at = 0;
    let principal = s
        .authn
        .client_assertion(peer, &client_id, |key, now_ms| {
            at = now_ms;
            match verify(assertion, &header, key, &client_id, &audiences, now_ms) {
                Ok(v) => {
                    verified = Some(v);
                    true
                }
                Err(why) => {
                    tracing::debug!(reason = why, "client assertion refused");
                    false
                }
            }
        })
        .map_err(|r| refused(r, OAuthError::client(false)))?;
    let Some(v) = verified else {
        return Err(invalid("not verified"));
    };
    // RFC 7523 §3 (7): a `jti` is used once, remembered for as long as the
    // assertion could be accepted (its exp plus leeway), in this client's
    // namespace, across the fleet when Redis is configured.
    let key = format!("jti:{client_id}:{}", KeyHash::of(&v.jti).to_hex());
    let until = v.exp.saturating_add(LEEWAY_SECONDS).saturating_mul(1000);
    if !s.limits.first_use(&key, until, at).await {
        return Err(invalid("jti replayed"));
    }
    Ok((principal, client_id))
}

/// The `sub` of an assertion not yet verified: which credential to ask.
fn unverified_subject(token: &str) -> Option<String> {
    let bytes = crate::jwt::verify::unverified_payload(token)?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    let sub = claims.get("sub")?.as_str()?;
    (!sub.is_empty() && sub.len() <= MAX_CLAIM_BYTES).then(|| sub.to_string())
}

/// The signature under `key` and the claims of RFC 7523 §3 at `now_ms`.
fn verify(
    token: &str,
    header: &Header,
    key: &PublicKey,
    client_id: &str,
    audiences: &[&str],
    now_ms: i64,
) -> Result<Verified, &'static str> {
    // SECURITY: the algorithm must fit the key (and the key's own `alg`):
    // HS256 "signed" with the public key bytes never verifies.
    if !key.verifies(header.alg) {
        return Err("algorithm does not fit the key");
    }
    // The credential holds one key: no `kid` is needed, but one that names
    // another key is refused.
    if let (Some(want), Some(got)) = (&key.kid, &header.kid) {
        if want != got {
            return Err("kid names another key");
        }
    }
    // Time and audience are checked below, on the injected clock and with
    // the JSON types checked; jsonwebtoken checks the signature only.
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
        .map_err(|_| "signature")?
        .claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    // RFC 7523 §3 (1, 2): iss and sub are the client id.
    if text("iss") != Some(client_id) || text("sub") != Some(client_id) {
        return Err("iss and sub must both be the client id");
    }
    // RFC 7523 §3 (3): the token endpoint, or the issuer.
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => audiences.contains(&a.as_str()),
        Some(Value::Array(list)) => {
            list.iter().all(Value::is_string)
                && list
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|a| audiences.contains(&a))
        }
        _ => false,
    };
    if !aud_ok {
        return Err("audience");
    }
    let now = now_ms.div_euclid(1000);
    // RFC 7523 §3 (4): exp is required; keygate also wants it near.
    let exp = match claims.get("exp") {
        Some(v) => numeric_date(v).ok_or("exp is not a number")?,
        None => return Err("exp is required"),
    };
    if exp.saturating_add(LEEWAY_SECONDS) <= now {
        return Err("expired");
    }
    if exp > now.saturating_add(MAX_LIFETIME_SECONDS + LEEWAY_SECONDS) {
        return Err("exp is more than 5 minutes ahead");
    }
    // RFC 7523 §3 (5, 6): not before, issued at: not in the future.
    for name in ["nbf", "iat"] {
        if let Some(v) = claims.get(name) {
            let t = numeric_date(v).ok_or("nbf or iat is not a number")?;
            if t > now.saturating_add(LEEWAY_SECONDS) {
                return Err("nbf or iat is in the future");
            }
        }
    }
    // RFC 7523 §3 (7): jti, used once (checked by the caller).
    let jti = match claims.get("jti") {
        Some(Value::String(j)) if !j.is_empty() && j.len() <= MAX_CLAIM_BYTES => j.clone(),
        _ => return Err("jti is required"),
    };
    Ok(Verified { exp, jti })
}

/// RFC 7519 §2 NumericDate: a JSON number of seconds (fractions allowed).
fn numeric_date(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use jsonwebtoken::Algorithm;
    use serde_json::json;

    use super::*;
    use crate::jwt::jwk;
    use crate::jwt::signing::{self, Signer};

    const NOW_MS: i64 = 1_700_000_000_000;
    const NOW: i64 = NOW_MS / 1000;
    const AUD: &[&str] = &["https://kg.example", "https://kg.example/oauth2/token"];

    fn key(alg: Algorithm) -> (Signer, PublicKey) {
        let (der, public) = signing::generate(alg, "k1").unwrap();
        (
            Signer::from_pkcs8(alg, &der).unwrap(),
            jwk::parse(&public, CLIENT_ALGORITHMS).unwrap(),
        )
    }

    fn sign(signer: &Signer, header: &Value, claims: &Value) -> String {
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!("{}.{}", b64(header), b64(claims));
        let sig = signer.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn claims() -> Value {
        json!({
            "iss": "kgc_1", "sub": "kgc_1", "aud": "https://kg.example/oauth2/token",
            "exp": NOW + 60, "iat": NOW, "jti": "j1",
        })
    }

    fn name(alg: Algorithm) -> &'static str {
        signing::algorithm_name(alg)
    }

    fn check_with(alg: Algorithm, header: Value, claims: &Value) -> Result<Verified, &'static str> {
        let (signer, public) = key(alg);
        let token = sign(&signer, &header, claims);
        let header = jsonwebtoken::decode_header(&token).map_err(|_| "header")?;
        verify(&token, &header, &public, "kgc_1", AUD, NOW_MS)
    }

    fn check(alg: Algorithm, claims: &Value) -> Result<Verified, &'static str> {
        check_with(alg, json!({ "alg": name(alg) }), claims)
    }

    #[test]
    fn each_accepted_algorithm_verifies() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            let v = check(alg, &claims()).unwrap();
            assert_eq!((v.exp, v.jti.as_str()), (NOW + 60, "j1"));
        }
    }

    #[test]
    fn claims_are_checked_with_their_types() {
        let with = |k: &str, v: Value| {
            let mut c = claims();
            c[k] = v;
            c
        };
        let without = |k: &str| {
            let mut c = claims();
            c.as_object_mut().unwrap().remove(k);
            c
        };
        let es = Algorithm::ES256;
        assert!(check(es, &with("aud", json!(["x", AUD[0]]))).is_ok());
        assert!(check(es, &with("exp", json!((NOW + 60) as f64 + 0.5))).is_ok());
        for bad in [
            with("aud", json!("https://elsewhere")),
            with("aud", json!(7)),
            with("aud", json!([AUD[0], 7])),
            with("iss", json!("kgc_2")),
            with("sub", json!("kgc_2")),
            with("exp", json!("1700000060")),
            without("exp"),
            with("exp", json!(NOW - LEEWAY_SECONDS - 1)),
            with(
                "exp",
                json!(NOW + MAX_LIFETIME_SECONDS + LEEWAY_SECONDS + 1),
            ),
            with("nbf", json!(NOW + LEEWAY_SECONDS + 5)),
            with("iat", json!(NOW + LEEWAY_SECONDS + 5)),
            with("nbf", json!(null)),
            without("jti"),
            with("jti", json!(5)),
            with("jti", json!("x".repeat(300))),
        ] {
            assert!(check(es, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_kid_naming_another_key_or_an_algorithm_the_key_cannot_do_is_refused() {
        let es = Algorithm::ES256;
        assert!(check_with(es, json!({ "alg": "ES256", "kid": "k1" }), &claims()).is_ok());
        assert_eq!(
            check_with(es, json!({ "alg": "ES256", "kid": "k2" }), &claims()).err(),
            Some("kid names another key")
        );
        // An ES256 signature presented as RS256, and alg none: never.
        assert!(check_with(es, json!({ "alg": "RS256" }), &claims()).is_err());
        assert!(check_with(es, json!({ "alg": "none" }), &claims()).is_err());
    }

    #[test]
    fn the_unverified_subject_is_read_with_care() {
        let (signer, _) = key(Algorithm::ES256);
        let token = sign(&signer, &json!({ "alg": "ES256" }), &claims());
        assert_eq!(unverified_subject(&token).as_deref(), Some("kgc_1"));
        assert_eq!(unverified_subject("a.b.c"), None);
        assert_eq!(unverified_subject("only"), None);
        let p = URL_SAFE_NO_PAD.encode(br#"{"sub": 5}"#);
        assert_eq!(unverified_subject(&format!("x.{p}.y")), None);
    }
}
