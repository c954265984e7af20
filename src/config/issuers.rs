//! `[[trusted_issuers]]`: the other parties whose signed JWTs keygate
//! accepts as identities (Kubernetes, GitHub Actions, a cloud's workload
//! tokens), as written and validated into typed values. Where their keys
//! come from is decided here; fetching them is `authn::federation`'s.

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::problems::Problems;

pub(super) const ISSUER_KEYS: &[&str] = &[
    "name",
    "issuer",
    "jwks_uri",
    "jwks_file",
    "audiences",
    "algorithms",
    "jwks_refresh",
];

/// The binding issuer name reserved for TLS client certificates.
pub const X509_ISSUER: &str = "x509";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIssuer {
    pub(crate) name: String,
    pub(crate) issuer: String,
    #[serde(default)]
    pub(crate) jwks_uri: Option<String>,
    #[serde(default)]
    pub(crate) jwks_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) audiences: Vec<String>,
    #[serde(default = "default_algorithms")]
    pub(crate) algorithms: Vec<String>,
    #[serde(default = "default_refresh")]
    pub(crate) jwks_refresh: String,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}

fn default_refresh() -> String {
    "5m".into()
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// Fetched from this URL.
    Uri(http::Uri),
    /// Read from this file (re-read on the same schedule).
    File(PathBuf),
    /// Found through `<issuer>/.well-known/openid-configuration`.
    Discovery(http::Uri),
}

#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    /// Used in bindings, routes' `accept_issuers` and metrics.
    pub name: String,
    /// The tokens' `iss`, exactly.
    pub issuer: String,
    pub source: JwksSource,
    /// A token's `aud` must contain one of these.
    pub audiences: Vec<String>,
    /// Asymmetric algorithms only.
    pub algorithms: Vec<Algorithm>,
    pub jwks_refresh: Duration,
}

/// Whether keys may be fetched from `uri`. SECURITY: https only, except to
/// a loopback host (a test issuer, or a sidecar serving a cluster's keys).
/// The one rule for configured URLs and for a discovery document's
/// `jwks_uri` alike.
pub fn fetchable_uri(uri: &http::Uri) -> bool {
    let loopback = uri.host().is_some_and(|host| {
        host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback())
    });
    match uri.scheme_str() {
        Some("https") => true,
        Some("http") => loopback,
        _ => false,
    }
}

fn fetchable(p: &mut Problems, key: &str, url: &str) -> Option<http::Uri> {
    let Ok(uri) = url.parse::<http::Uri>() else {
        p.push(key, format_args!("{url:?} is not a URL"));
        return None;
    };
    if fetchable_uri(&uri) {
        return Some(uri);
    }
    match uri.scheme_str() {
        Some("http") => {
            p.push(
                key,
                format_args!("{url:?} must be https (plain http only to a loopback address)"),
            );
            None
        }
        _ => {
            p.push(key, format_args!("{url:?} is not an http(s) URL"));
            None
        }
    }
}

pub(super) fn issuers(p: &mut Problems, raw: &[RawIssuer]) -> Vec<TrustedIssuer> {
    let mut out: Vec<TrustedIssuer> = Vec::with_capacity(raw.len());
    if raw.len() > 64 {
        p.push("trusted_issuers", "at most 64 issuers");
    }
    for (i, r) in raw.iter().enumerate() {
        let key = |k: &str| format!("trusted_issuers[{i}].{k}");
        let before = p.0.len();
        let name_ok = !r.name.is_empty()
            && r.name.len() <= 64
            && r.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            p.push(
                &key("name"),
                format_args!("{:?} must be 1–64 of a-z, 0-9, - and _", r.name),
            );
        } else if r.name == X509_ISSUER {
            p.push(
                &key("name"),
                "\"x509\" is reserved for bindings of TLS client certificates",
            );
        } else if out.iter().any(|o| o.name == r.name) {
            p.push(&key("name"), format_args!("{:?} is used twice", r.name));
        }
        if r.issuer.is_empty() {
            p.push(&key("issuer"), "must be set: the tokens' iss, exactly");
        } else if out.iter().any(|o| o.issuer == r.issuer) {
            p.push(
                &key("issuer"),
                format_args!("{:?} is trusted twice; one entry per issuer", r.issuer),
            );
        }
        let source = match (&r.jwks_uri, &r.jwks_file) {
            (Some(_), Some(_)) => {
                p.push(&key("jwks_uri"), "set jwks_uri or jwks_file, not both");
                None
            }
            (Some(u), None) => fetchable(p, &key("jwks_uri"), u).map(JwksSource::Uri),
            (None, Some(f)) => Some(JwksSource::File(f.clone())),
            (None, None) => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    r.issuer.trim_end_matches('/')
                );
                fetchable(p, &key("issuer"), &url).map(JwksSource::Discovery)
            }
        };
        if r.audiences.is_empty() || r.audiences.iter().any(String::is_empty) {
            p.push(
                &key("audiences"),
                "must list the audiences a token may carry (for example [\"keygate\"])",
            );
        }
        let mut algorithms = Vec::new();
        for (j, a) in r.algorithms.iter().enumerate() {
            match crate::jwt::jwk::parse_algorithm(a) {
                Some(alg) => algorithms.push(alg),
                None => p.push(
                    &format!("trusted_issuers[{i}].algorithms[{j}]"),
                    format_args!(
                        "{a:?} is not accepted: one of RS256, RS384, RS512, PS256, PS384, PS512, \
                         ES256, ES384, EdDSA (never none or HS*)"
                    ),
                ),
            }
        }
        if r.algorithms.is_empty() {
            p.push(&key("algorithms"), "must list at least one algorithm");
        }
        let jwks_refresh = p.duration(&key("jwks_refresh"), &r.jwks_refresh);
        if jwks_refresh < Duration::from_secs(30) {
            p.push(&key("jwks_refresh"), "must be at least 30s");
        }
        if p.0.len() != before {
            continue;
        }
        if let Some(source) = source {
            out.push(TrustedIssuer {
                name: r.name.clone(),
                issuer: r.issuer.clone(),
                source,
                audiences: r.audiences.clone(),
                algorithms,
                jwks_refresh,
            });
        }
    }
    out
}
