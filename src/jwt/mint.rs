//! Minting RFC 9068 JWT access tokens.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::KeyRing;
use crate::clock::SharedClock;
use crate::telemetry::metrics::{Metrics, TOKENS_MINTED};

/// RFC 9068 §2.2 claims, plus keygate's `org_id` / `project_id`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    /// The service account id.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    /// Space-separated.
    pub scope: String,
    pub org_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// RFC 9068 §2.2.3.1: `["owner"]` for an account with the owner role
    /// (roles never change), absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The client addresses the credential it was minted from is bound to
    /// (CIDRs): the token is refused from anywhere else. Absent: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_cidrs: Vec<String>,
    /// RFC 8693 §4.1: the identity from another issuer this token was
    /// exchanged for (its `iss` and `sub`); absent for keygate's own
    /// credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
}

/// RFC 8693 §4.1 `act`: who presented the identity the token stands for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Actor {
    pub iss: String,
    pub sub: String,
}

/// Who a token is for and what it carries.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub account_id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Option<Uuid>,
    /// `client_id` claim: the credential's client id, or the API key's id.
    pub client_id: &'a str,
    /// Space-separated scopes granted.
    pub scope: &'a str,
    /// Unix ms after which the credential stops working; tokens never outlive it.
    pub expires_at: i64,
    /// The account's role.
    pub role: crate::store::Role,
    /// The credential's `allowed_cidrs`, inherited by the token.
    pub allowed_cidrs: Option<&'a [ipnet::IpNet]>,
    /// The federated identity (`iss`, `sub`) the token was exchanged for.
    pub act: Option<(&'a str, &'a str)>,
}

#[derive(Debug)]
pub struct Minted {
    pub token: String,
    pub expires_in: u64,
}

/// [`AccessClaims`] as a token is minted with them: the same fields in the
/// same order, borrowed.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: &'a str,
    client_id: &'a str,
    scope: &'a str,
    org_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_id: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    roles: &'a [&'a str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    allowed_cidrs: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<ActorRef<'a>>,
}

/// [`Actor`], borrowed.
#[derive(Serialize)]
struct ActorRef<'a> {
    iss: &'a str,
    sub: &'a str,
}

/// Room for the claims of a common token (~350 bytes) without regrowing.
const CLAIMS_CAPACITY: usize = 512;

/// A token id: a UUIDv7 stamped with the mint time (this clock's, to the
/// millisecond), so a cut-off can tell tokens minted just before it from
/// ones minted just after — `iat` has whole seconds only.
fn jti(now_ms: i64) -> Uuid {
    let ms = u64::try_from(now_ms).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        ms / 1000,
        u32::try_from(ms % 1000).unwrap_or(0) * 1_000_000,
    );
    Uuid::new_v7(ts)
}

/// The claims JSON with `>`, `?`, `~`, DEL and every non-ASCII character
/// written as a `\uXXXX` escape: the same JSON to every parser, but its
/// base64url never holds `-` or `_` (only those bytes, at the last place of
/// a 3-byte group, encode to 62 or 63). Some clients (Run:ai's runapy)
/// decode the payload with the standard base64 alphabet, which drops those
/// two characters and garbles the claims. Such characters can only stand in
/// string values here (scopes, the issuer), so the common case copies nothing.
fn base64_safe(json: Vec<u8>) -> Vec<u8> {
    let unsafe_byte = |b: &u8| matches!(b, b'>' | b'?' | b'~' | b'\x7f') || !b.is_ascii();
    if !json.iter().any(unsafe_byte) {
        return json;
    }
    // serde_json writes UTF-8 only; anything else is passed on untouched.
    let Ok(text) = std::str::from_utf8(&json) else {
        return json;
    };
    let unsafe_char = |c: char| matches!(c, '>' | '?' | '~' | '\x7f') || !c.is_ascii();
    let mut out = String::with_capacity(json.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out.into_bytes()
}

/// When a token was minted (unix ms): from its `jti` when it is one of
/// ours, else from `iat`.
pub fn minted_at_ms(claims: &AccessClaims) -> i64 {
    Uuid::parse_str(&claims.jti)
        .ok()
        .and_then(|u| u.get_timestamp())
        .map(|t| {
            let (secs, nanos) = t.to_unix();
            i64::try_from(secs).unwrap_or(0) * 1000 + i64::from(nanos / 1_000_000)
        })
        .unwrap_or_else(|| claims.iat.saturating_mul(1000))
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no signing key is active")]
    NoKey,
    #[error("signing failed")]
    Sign,
}

/// Why a token is minted: the `grant` label of `keygate_tokens_minted_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// OAuth `client_credentials` (and the dialects' client-credential token endpoints).
    ClientCredentials,
    /// RFC 8693: an API key, or another issuer's JWT, traded for a JWT.
    TokenExchange,
    /// RFC 7523 §2.1: another issuer's JWT as an authorization grant.
    JwtBearer,
    /// For an upstream, on a `forward_auth = "jwt"` route.
    Upstream,
}

impl Grant {
    const ALL: [Grant; 4] = [
        Grant::ClientCredentials,
        Grant::TokenExchange,
        Grant::JwtBearer,
        Grant::Upstream,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::TokenExchange => "token_exchange",
            Grant::JwtBearer => "jwt_bearer",
            Grant::Upstream => "upstream",
        }
    }
}

pub struct Minter {
    ring: Arc<KeyRing>,
    issuer: String,
    ttl: Duration,
    max_ttl: Duration,
    clock: SharedClock,
    /// Tokens minted, by [`Grant`] (in `Grant::ALL` order).
    minted: [metrics::Counter; 4],
}

impl Minter {
    pub fn new(
        ring: Arc<KeyRing>,
        issuer: String,
        ttl: Duration,
        max_ttl: Duration,
        clock: SharedClock,
    ) -> Self {
        Self {
            ring,
            issuer,
            ttl,
            max_ttl,
            clock,
            minted: [const { metrics::Counter::noop() }; 4],
        }
    }

    /// Counts minted tokens into `metrics`.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.minted = Grant::ALL.map(|g| metrics.counter(TOKENS_MINTED, &[("grant", g.as_str())]));
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn ring(&self) -> &Arc<KeyRing> {
        &self.ring
    }

    /// Mints a token for `subject` with `audience` (default: the issuer) and
    /// lifetime `ttl` (default `tokens.ttl`, capped at `tokens.max_ttl` and at
    /// the credential's own expiry).
    pub fn mint(
        &self,
        grant: Grant,
        subject: &Subject<'_>,
        audience: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<Minted, Error> {
        let now_ms = self.clock.now_ms();
        let key = self.ring.signer(now_ms).ok_or(Error::NoKey)?;
        let now = now_ms / 1000;
        let ttl = ttl.unwrap_or(self.ttl).min(self.max_ttl).as_secs() as i64;
        let exp = (now + ttl).min(subject.expires_at / 1000).max(now + 1);
        // The claims' JSON is written from borrowed values, ids formatted on
        // the stack: a token costs its signature and the buffers it ends in.
        let (mut sub, mut jti_buf, mut org, mut project) = (
            Uuid::encode_buffer(),
            Uuid::encode_buffer(),
            Uuid::encode_buffer(),
            Uuid::encode_buffer(),
        );
        let cidrs: Vec<String> = subject
            .allowed_cidrs
            .map(|c| c.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        let claims = Claims {
            iss: &self.issuer,
            sub: subject.account_id.hyphenated().encode_lower(&mut sub),
            aud: audience.unwrap_or(&self.issuer),
            exp,
            iat: now,
            nbf: now,
            jti: jti(now_ms).hyphenated().encode_lower(&mut jti_buf),
            client_id: subject.client_id,
            scope: subject.scope,
            org_id: subject.organization_id.hyphenated().encode_lower(&mut org),
            project_id: subject
                .project_id
                .map(|p| &*p.hyphenated().encode_lower(&mut project)),
            roles: match subject.role {
                crate::store::Role::Owner => &["owner"],
                crate::store::Role::Member => &[],
            },
            allowed_cidrs: &cidrs,
            act: subject.act.map(|(iss, sub)| ActorRef { iss, sub }),
        };
        let mut json = Vec::with_capacity(CLAIMS_CAPACITY);
        serde_json::to_writer(&mut json, &claims).map_err(|_| Error::Sign)?;
        let token = key.jws(&base64_safe(json)).map_err(|_| Error::Sign)?;
        self.minted[grant as usize].increment(1);
        Ok(Minted {
            token,
            expires_in: (exp - now).max(0) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    #[test]
    fn claims_never_encode_to_base64url_62_or_63() {
        let json = serde_json::json!({ "scope": "a>b c?d e~f é 𝄞", "x": ">>>???~~~" }).to_string();
        let safe = String::from_utf8(base64_safe(json.clone().into_bytes())).unwrap();
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(&json).unwrap()
        );
        for shift in 0..3 {
            let padded = format!("{}{safe}", " ".repeat(shift));
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(padded);
            assert!(!b64.contains(['-', '_']), "{b64}");
        }
    }

    fn minter(alg: jsonwebtoken::Algorithm) -> Minter {
        let (der, jwk) = crate::jwt::signing::generate(alg, "k1").unwrap();
        let ring = KeyRing::new();
        ring.replace(&[crate::store::SigningKeyRecord {
            kid: "k1".into(),
            algorithm: crate::jwt::signing::algorithm_name(alg).into(),
            private_der: der,
            public_jwk: jwk,
            created_at: 0,
            activates_at: 0,
            retires_at: None,
        }]);
        Minter::new(
            Arc::new(ring),
            "https://keygate.test".into(),
            Duration::from_secs(300),
            Duration::from_secs(3600),
            crate::clock::ManualClock::new(1_700_000_000_123),
        )
    }

    /// The claims a token is minted with are the JSON [`AccessClaims`]
    /// writes for the same values, byte for byte (field order, the optional
    /// fields left out or written), and carry the subject's values.
    #[test]
    fn minted_claims_are_access_claims_as_written() {
        let minter = minter(jsonwebtoken::Algorithm::ES256);
        let (account, org, project) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let nets: Vec<ipnet::IpNet> =
            vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let plain = Subject {
            account_id: account,
            organization_id: org,
            project_id: None,
            client_id: "cid",
            scope: "orders:read",
            expires_at: i64::MAX,
            role: crate::store::Role::Member,
            allowed_cidrs: None,
            act: None,
        };
        let full = Subject {
            project_id: Some(project),
            scope: "a>b ~c é",
            role: crate::store::Role::Owner,
            allowed_cidrs: Some(&nets),
            act: Some(("https://ci.example", "repo:x\"y")),
            ..plain.clone()
        };
        for (subject, audience) in [(&plain, None), (&full, Some("orders-api"))] {
            let minted = minter
                .mint(Grant::ClientCredentials, subject, audience, None)
                .unwrap();
            let payload = minted.token.split('.').nth(1).unwrap();
            let written = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap();
            let claims: AccessClaims = serde_json::from_slice(&written).unwrap();
            let rewritten = base64_safe(serde_json::to_vec(&claims).unwrap());
            assert_eq!(
                String::from_utf8(written).unwrap(),
                String::from_utf8(rewritten).unwrap()
            );
            assert_eq!(claims.iss, "https://keygate.test");
            assert_eq!(claims.sub, account.to_string());
            assert_eq!(claims.aud, audience.unwrap_or("https://keygate.test"));
            assert_eq!(claims.org_id, org.to_string());
            assert_eq!(claims.client_id, "cid");
            assert_eq!(claims.scope, subject.scope);
            assert_eq!(
                (claims.iat, claims.nbf, claims.exp),
                (1_700_000_000, 1_700_000_000, 1_700_000_300)
            );
            assert_eq!(minted_at_ms(&claims), 1_700_000_000_123);
            assert_eq!(minted.expires_in, 300);
            if subject.project_id.is_some() {
                assert_eq!(claims.project_id, Some(project.to_string()));
                assert_eq!(claims.roles, ["owner"]);
                assert_eq!(claims.allowed_cidrs, ["10.0.0.0/8", "::1/128"]);
                let act = claims.act.unwrap();
                assert_eq!(
                    (act.iss.as_str(), act.sub.as_str()),
                    ("https://ci.example", "repo:x\"y")
                );
            } else {
                assert_eq!(claims.project_id, None);
                assert!(claims.roles.is_empty() && claims.allowed_cidrs.is_empty());
                assert!(claims.act.is_none());
            }
        }
    }
}
