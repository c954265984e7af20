//! Getting an issuer's keys: its OIDC discovery document (for `jwks_uri`)
//! and its JWKS, over keygate's own HTTP client — a timeout on the whole
//! exchange, a size limit on the body, https except to loopback, no
//! redirects followed — or from a file. Parsing ([`parse_jwks`]) is pure
//! and refuses a set that is not JSON, too large, or holds no usable key;
//! keys it cannot use (wrong type, encryption keys) are skipped with a
//! reason, never half-used.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::Algorithm;
use serde_json::Value;

use crate::jwt::jwk::{self, PublicKey};

/// Largest discovery document or JWKS read.
pub const MAX_DOCUMENT: usize = 256 * 1024;
/// Most keys kept of one set.
pub const MAX_KEYS: usize = 64;
/// One whole fetch (connect, TLS, head, body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why keys could not be had. Static text: logged and counted, never
/// shown to callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("the issuer did not answer in time")]
    Timeout,
    #[error("the issuer could not be reached")]
    Unreachable,
    #[error("the issuer answered with an error status")]
    Status,
    #[error("the document is larger than 256 KiB")]
    TooLarge,
    #[error("the document is not JSON")]
    NotJson,
    #[error("the discovery document names another issuer, or no usable jwks_uri")]
    Discovery,
    #[error("the key set has no \"keys\" array")]
    NotAKeySet,
    #[error("the key set holds no key usable with the configured algorithms")]
    NoUsableKey,
    #[error("the key file cannot be read")]
    File,
}

pub(crate) struct Fetcher {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl Fetcher {
    pub(crate) fn new() -> Result<Self, String> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(FETCH_TIMEOUT));
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            // No pool kept between fetches minutes apart.
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build(https),
        })
    }

    /// GET `uri` and its body, bounded. SECURITY: only URLs the config
    /// named (or the configured issuer's discovery document named) are
    /// ever passed here; nothing in a token is.
    pub(crate) async fn get(&self, uri: &Uri) -> Result<Bytes, FetchError> {
        let req = Request::get(uri.clone())
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("keygate/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|_| FetchError::Unreachable)?;
        let exchange = async {
            let res = self
                .client
                .request(req)
                .await
                .map_err(|_| FetchError::Unreachable)?;
            // Redirects are answers: a 3xx is not the document.
            if res.status() != StatusCode::OK {
                return Err(FetchError::Status);
            }
            let declared = res
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            if declared.is_some_and(|n| n > MAX_DOCUMENT) {
                return Err(FetchError::TooLarge);
            }
            Limited::new(res.into_body(), MAX_DOCUMENT)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        FetchError::TooLarge
                    } else {
                        FetchError::Unreachable
                    }
                })
        };
        tokio::time::timeout(FETCH_TIMEOUT, exchange)
            .await
            .map_err(|_| FetchError::Timeout)?
    }
}

/// The `jwks_uri` of a discovery document, which must be for `issuer`
/// (OpenID Connect Discovery §4.3) and point somewhere fetchable.
pub(crate) fn discovered_jwks_uri(doc: &[u8], issuer: &str) -> Result<Uri, FetchError> {
    let v: Value = serde_json::from_slice(doc).map_err(|_| FetchError::NotJson)?;
    if v.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(FetchError::Discovery);
    }
    v.get("jwks_uri")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Uri>().ok())
        .filter(crate::config::fetchable_uri)
        .ok_or(FetchError::Discovery)
}

/// The usable keys of a JWKS document. Unusable keys are skipped (an
/// issuer may publish encryption keys or algorithms not allowed here); a
/// set with none left is refused, so a bad document never replaces a good
/// set.
pub fn parse_jwks(doc: &[u8], allowed: &[Algorithm]) -> Result<Vec<PublicKey>, FetchError> {
    if doc.len() > MAX_DOCUMENT {
        return Err(FetchError::TooLarge);
    }
    let v: Value = serde_json::from_slice(doc).map_err(|_| FetchError::NotJson)?;
    let keys = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(FetchError::NotAKeySet)?;
    let mut out = Vec::new();
    for k in keys.iter().take(MAX_KEYS) {
        match jwk::parse(k, allowed) {
            Ok(key) => out.push(key),
            Err(e) => tracing::debug!(reason = %e, "issuer key skipped"),
        }
    }
    if out.is_empty() {
        return Err(FetchError::NoUsableKey);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::jwt::signing;

    #[test]
    fn a_key_set_keeps_usable_keys_and_refuses_when_none_is_left() {
        let (_, ec) = signing::generate(Algorithm::ES256, "ec").unwrap();
        let (_, rsa) = signing::generate(Algorithm::RS256, "rsa").unwrap();
        let doc = json!({"keys": [ec, rsa, {"kty": "oct", "k": "c2VjcmV0"}]}).to_string();
        let keys = parse_jwks(doc.as_bytes(), &[Algorithm::RS256]).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("rsa"));
        assert_eq!(
            parse_jwks(doc.as_bytes(), &[Algorithm::EdDSA]).unwrap_err(),
            FetchError::NoUsableKey
        );
        assert_eq!(
            parse_jwks(b"<html>", &[Algorithm::RS256]).unwrap_err(),
            FetchError::NotJson
        );
        assert_eq!(
            parse_jwks(b"{\"keys\": {}}", &[Algorithm::RS256]).unwrap_err(),
            FetchError::NotAKeySet
        );
        let big = vec![b' '; MAX_DOCUMENT + 1];
        assert_eq!(
            parse_jwks(&big, &[Algorithm::RS256]).unwrap_err(),
            FetchError::TooLarge
        );
    }

    #[test]
    fn discovery_must_name_the_configured_issuer_and_a_fetchable_jwks_uri() {
        let doc = |v: Value| v.to_string().into_bytes();
        let ok = doc(json!({"issuer": "https://i", "jwks_uri": "https://i/keys"}));
        assert_eq!(
            discovered_jwks_uri(&ok, "https://i").unwrap(),
            "https://i/keys"
        );
        assert_eq!(
            discovered_jwks_uri(&ok, "https://other").unwrap_err(),
            FetchError::Discovery
        );
        let plain = doc(json!({"issuer": "https://i", "jwks_uri": "http://10.0.0.1/keys"}));
        assert_eq!(
            discovered_jwks_uri(&plain, "https://i").unwrap_err(),
            FetchError::Discovery
        );
        let local = doc(json!({"issuer": "https://i", "jwks_uri": "http://127.0.0.1:9/keys"}));
        assert!(discovered_jwks_uri(&local, "https://i").is_ok());
        let file = doc(json!({"issuer": "https://i", "jwks_uri": "file:///etc/passwd"}));
        assert_eq!(
            discovered_jwks_uri(&file, "https://i").unwrap_err(),
            FetchError::Discovery
        );
    }
}
