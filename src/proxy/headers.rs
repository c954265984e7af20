//! Header hygiene between client and upstream: hop-by-hop removal, credential
//! and spoofed-identity stripping, `X-Forwarded-*`, `X-Request-Id`, and the
//! identity headers keygate vouches for.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use uuid::Uuid;

use crate::cache::Principal;

pub(super) static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(super) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(super) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(super) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(super) static X_KEYGATE_ACCOUNT: HeaderName = HeaderName::from_static("x-keygate-account");
pub(super) static X_KEYGATE_ORG: HeaderName = HeaderName::from_static("x-keygate-org");
pub(super) static X_KEYGATE_PROJECT: HeaderName = HeaderName::from_static("x-keygate-project");
pub(super) static X_KEYGATE_SCOPES: HeaderName = HeaderName::from_static("x-keygate-scopes");
pub(super) static X_KEYGATE_CREDENTIAL: HeaderName =
    HeaderName::from_static("x-keygate-credential");

const HTTP: HeaderValue = HeaderValue::from_static("http");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// RFC 9110 §7.6.1: connection-specific fields, never forwarded.
static HOP_BY_HOP: [&HeaderName; 8] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::PROXY_AUTHENTICATE,
    &header::PROXY_AUTHORIZATION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop fields, including any the `Connection` field names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Names listed in Connection are rare; collect only when present.
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        if let Ok(s) = value.to_str() {
            named.extend(
                s.split(',')
                    .map(str::trim)
                    // The usual tokens name nothing extra: skip them without allocating.
                    .filter(|n| {
                        !n.eq_ignore_ascii_case("keep-alive") && !n.eq_ignore_ascii_case("close")
                    })
                    .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok()),
            );
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    for name in named {
        headers.remove(name);
    }
}

/// SECURITY: identity headers are keygate's word; a client must never be able
/// to supply them. Removes every `X-Keygate-*` the client sent.
pub fn remove_spoofed_identity(headers: &mut HeaderMap) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("x-keygate-"))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}

/// Removes every header that carries a keygate credential: `X-API-Key`, and
/// `Authorization` when its scheme is `Bearer` or `Token`.
pub fn remove_credentials(headers: &mut HeaderMap) {
    // `Authorization` with another scheme (Basic, …) is the upstream's business.
    if headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| crate::credential::is_keygate_authorization(v.as_bytes()))
    {
        headers.remove(header::AUTHORIZATION);
    }
    headers.remove(&X_API_KEY);
}

/// Sets `X-Forwarded-For/-Proto/-Host`. `client_ip` is prebuilt per connection.
pub fn set_forwarded(headers: &mut HeaderMap, client_ip: &HeaderValue) {
    let xff = match headers.get(&X_FORWARDED_FOR) {
        Some(prior) => {
            let mut v = Vec::with_capacity(prior.len() + 2 + client_ip.len());
            v.extend_from_slice(prior.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(client_ip.as_bytes());
            HeaderValue::from_maybe_shared(Bytes::from(v)).unwrap_or_else(|_| client_ip.clone())
        }
        None => client_ip.clone(),
    };
    headers.insert(&X_FORWARDED_FOR, xff);
    headers.insert(&X_FORWARDED_PROTO, HTTP);
    // SECURITY: X-Forwarded-Host is keygate's word too, never the client's.
    match headers.remove(header::HOST) {
        Some(host) => {
            headers.insert(&X_FORWARDED_HOST, host);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// Keeps a sane incoming `X-Request-Id`, else makes one. Returns it for the
/// response.
pub fn request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        if !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(u8::is_ascii_graphic) {
            return v.clone();
        }
    }
    let id = uuid_value(Uuid::new_v4());
    headers.insert(&X_REQUEST_ID, id.clone());
    id
}

fn uuid_value(id: Uuid) -> HeaderValue {
    let mut buf = [0u8; 36];
    let s = id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("-"))
}

/// Adds the identity headers for `headers` forwarding.
pub fn set_identity(headers: &mut HeaderMap, p: &Principal) {
    let id = p.identity();
    let value = |b: &Bytes| {
        HeaderValue::from_maybe_shared(b.clone()).unwrap_or(HeaderValue::from_static(""))
    };
    headers.insert(&X_KEYGATE_ACCOUNT, value(&id.account));
    headers.insert(&X_KEYGATE_ORG, value(&id.organization));
    if let Some(project) = &id.project {
        headers.insert(&X_KEYGATE_PROJECT, value(project));
    }
    headers.insert(&X_KEYGATE_CREDENTIAL, value(&id.credential));
    headers.insert(&X_KEYGATE_SCOPES, value(p.scopes.joined()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_fields_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert!(h.get("x-secret-hop").is_none() && h.get(header::TE).is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert!(h.get("x-keep").is_some());
    }

    #[test]
    fn spoofed_identity_is_removed_whatever_its_case() {
        let mut h = HeaderMap::new();
        h.insert("X-Keygate-Account", HeaderValue::from_static("evil"));
        h.insert("x-keygate-anything", HeaderValue::from_static("evil"));
        h.insert("x-keygateway", HeaderValue::from_static("fine"));
        remove_spoofed_identity(&mut h);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn forwarded_for_is_appended_and_host_moves() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        h.insert(header::HOST, HeaderValue::from_static("api.example"));
        set_forwarded(&mut h, &HeaderValue::from_static("127.0.0.1"));
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
        assert_eq!(h[&X_FORWARDED_HOST], "api.example");
        assert!(h.get(header::HOST).is_none());
    }

    #[test]
    fn request_id_is_kept_or_made() {
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc"));
        assert_eq!(request_id(&mut h), "abc");
        let mut h = HeaderMap::new();
        let made = request_id(&mut h);
        assert_eq!(made.len(), 36);
        assert_eq!(h[&X_REQUEST_ID], made);
    }
}
