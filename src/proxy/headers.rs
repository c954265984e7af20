//! Header hygiene between client and upstream: hop-by-hop removal, credential
//! and spoofed-identity stripping, `X-Forwarded-*`, `X-Request-Id`, and the
//! identity headers keygate vouches for.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use uuid::Uuid;

use crate::authn::{presented, Principal};
use crate::listener::ConnInfo;

pub static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(super) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(super) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(super) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(super) static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
pub(super) static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub(super) static X_KEYGATE_ACCOUNT: HeaderName = HeaderName::from_static("x-keygate-account");
pub(super) static X_KEYGATE_ORG: HeaderName = HeaderName::from_static("x-keygate-org");
pub(super) static X_KEYGATE_PROJECT: HeaderName = HeaderName::from_static("x-keygate-project");
pub(super) static X_KEYGATE_SCOPES: HeaderName = HeaderName::from_static("x-keygate-scopes");
pub(super) static X_KEYGATE_CREDENTIAL: HeaderName =
    HeaderName::from_static("x-keygate-credential");
/// The subject of the verified TLS client certificate, on `client_cert` routes.
pub(super) static X_KEYGATE_CLIENT_SUBJECT: HeaderName =
    HeaderName::from_static("x-keygate-client-subject");
/// The SPIFFE id of the verified client certificate.
pub(super) static X_KEYGATE_SPIFFE_ID: HeaderName = HeaderName::from_static("x-keygate-spiffe-id");

/// The one credential the headers present (`Authorization` or `X-API-Key`).
pub(super) fn credential(h: &HeaderMap) -> Result<&str, presented::Error> {
    presented::extract(
        h.get_all(header::AUTHORIZATION)
            .iter()
            .map(HeaderValue::as_bytes),
        h.get_all(&X_API_KEY).iter().map(HeaderValue::as_bytes),
    )
}

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// RFC 9110 §7.6.1: connection-specific fields, never forwarded. (`TE` is
/// one too, but `TE: trailers` is kept: see [`remove_hop_by_hop`].
/// `Trailer` only announces trailer fields and is end to end.)
static HOP_BY_HOP: [&HeaderName; 7] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::PROXY_AUTHENTICATE,
    &header::PROXY_AUTHORIZATION,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
];

/// Removes hop-by-hop fields, including any the `Connection` field names.
/// `TE` survives only as `TE: trailers`, the one value HTTP/2 allows (RFC
/// 9113 §8.2.2): gRPC servers refuse a request without it, and it says
/// only that the client reads trailers, which keygate forwards.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names present, no lookups: most requests carry
    // none of these, and each lookup below hashes a name.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if let Some(te) = headers.get(header::TE) {
        let trailers_only = te.as_bytes().eq_ignore_ascii_case(b"trailers")
            && headers.get_all(header::TE).iter().nth(1).is_none();
        if !trailers_only {
            headers.remove(header::TE);
        }
    }
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
    for name in named {
        // Naming a field keygate sets changes nothing: the caller sets
        // them after this (the request id included).
        headers.remove(name);
    }
}

/// Headers keygate sets itself, or reads as a credential.
static OWN: [&str; 7] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-real-ip",
    "x-request-id",
    "x-api-key",
];

/// SECURITY: identity and forwarding headers are keygate's word; a client
/// must never be able to supply them. Removes every `X-Keygate-*` the
/// client sent, and every header whose name, with `_` read as `-`, is one
/// keygate sets or reads as a credential: WSGI, Rack, PHP and CGI servers
/// read `X_Keygate_Account` as `X-Keygate-Account`. (The `-` spellings of
/// the forwarding headers are replaced in [`set_forwarded`].)
pub fn remove_spoofed(headers: &mut HeaderMap) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_spoofed(n.as_str().as_bytes()))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}

/// Whether `name` (lower case) is a field keygate sets or reads as a
/// credential, in any spelling: every `X-Keygate-*`, and the [`OWN`]
/// fields with `-` or `_`.
pub(super) fn is_keygates(name: &[u8]) -> bool {
    is_identity(name) || OWN.iter().any(|own| dashed_eq(name, own.as_bytes()))
}

/// Whether `name` is an `X-Keygate-*` field, with `-` or `_`.
fn is_identity(name: &[u8]) -> bool {
    const IDENTITY: &[u8] = b"x-keygate-";
    name.len() >= IDENTITY.len() && dashed_eq(&name[..IDENTITY.len()], IDENTITY)
}

/// Whether `name` is connection-specific (RFC 9110 §7.6.1), `TE` included.
pub(super) fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::TE || HOP_BY_HOP.contains(&name)
}

/// RFC 9113 §8.2.3: an HTTP/2 client may split `Cookie` into one field per
/// crumb; an HTTP/1.1 upstream must receive them as one, joined by `; `.
/// Allocates only when there is more than one.
pub fn join_cookies(headers: &mut HeaderMap) {
    let crumbs = headers.get_all(header::COOKIE);
    if crumbs.iter().nth(1).is_none() {
        return;
    }
    let mut v: Vec<u8> = Vec::new();
    for (i, c) in crumbs.iter().enumerate() {
        if i > 0 {
            v.extend_from_slice(b"; ");
        }
        v.extend_from_slice(c.as_bytes());
    }
    if let Ok(joined) = HeaderValue::from_maybe_shared(Bytes::from(v)) {
        headers.insert(header::COOKIE, joined);
    }
}

/// What a client may not send as a header: any `X-Keygate-*`, and the
/// `_` spellings of keygate's own fields (the `-` ones keygate replaces).
fn is_spoofed(name: &[u8]) -> bool {
    is_identity(name) || (name.contains(&b'_') && is_keygates(name))
}

/// `name == target` with every `_` in `name` read as `-` (names are lower case).
fn dashed_eq(name: &[u8], target: &[u8]) -> bool {
    name.len() == target.len()
        && name
            .iter()
            .zip(target)
            .all(|(&a, &b)| if a == b'_' { b == b'-' } else { a == b })
}

/// Removes every header that carries a keygate credential: `X-API-Key`, and
/// each `Authorization` whose scheme is `Bearer` or `Token`.
pub fn remove_credentials(headers: &mut HeaderMap) {
    use crate::authn::presented::is_keygate_authorization;
    // `Authorization` with another scheme (Basic, …) is the upstream's business.
    let values = headers.get_all(header::AUTHORIZATION);
    if values
        .iter()
        .any(|v| is_keygate_authorization(v.as_bytes()))
    {
        let kept: Vec<HeaderValue> = values
            .iter()
            .filter(|v| !is_keygate_authorization(v.as_bytes()))
            .cloned()
            .collect();
        headers.remove(header::AUTHORIZATION);
        for v in kept {
            headers.append(header::AUTHORIZATION, v);
        }
    }
    headers.remove(&X_API_KEY);
}

/// Sets `X-Forwarded-For/-Proto/-Host`, `Forwarded` (RFC 7239) and
/// `X-Real-IP`. SECURITY: a client's own chain is kept (and extended) only
/// when the peer is a trusted proxy; otherwise keygate speaks for the peer
/// alone. `client` is the client's address as [`ConnInfo::client`] found it.
pub fn set_forwarded(headers: &mut HeaderMap, conn: &ConnInfo, client: IpAddr) {
    if conn.from_trusted_proxy() {
        extend_chain(headers, &X_FORWARDED_FOR, &conn.peer_ip);
        extend_chain(headers, &FORWARDED, &conn.forwarded);
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(&X_FORWARDED_PROTO, conn.scheme.header_value());
        }
        let real_ip =
            HeaderValue::from_str(&client.to_string()).unwrap_or_else(|_| conn.peer_ip.clone());
        headers.insert(&X_REAL_IP, real_ip);
        // The proxy's X-Forwarded-Host names what the client asked for.
        match headers.remove(header::HOST) {
            Some(host) if !headers.contains_key(&X_FORWARDED_HOST) => {
                headers.insert(&X_FORWARDED_HOST, host);
            }
            _ => {}
        }
        return;
    }
    headers.insert(&X_FORWARDED_FOR, conn.peer_ip.clone());
    headers.insert(&FORWARDED, conn.forwarded.clone());
    headers.insert(&X_REAL_IP, conn.peer_ip.clone());
    headers.insert(&X_FORWARDED_PROTO, conn.scheme.header_value());
    match headers.remove(header::HOST) {
        Some(host) => {
            headers.insert(&X_FORWARDED_HOST, host);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// `name: <every prior value>, <hop>` (several fields read as one list,
/// RFC 9110 §5.3).
fn extend_chain(headers: &mut HeaderMap, name: &HeaderName, hop: &HeaderValue) {
    let mut v: Vec<u8> = Vec::new();
    for prior in headers.get_all(name) {
        v.extend_from_slice(prior.as_bytes());
        v.extend_from_slice(b", ");
    }
    v.extend_from_slice(hop.as_bytes());
    let value = HeaderValue::from_maybe_shared(Bytes::from(v)).unwrap_or_else(|_| hop.clone());
    headers.insert(name, value);
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

/// The id as a header value whose clones share one allocation: a value made
/// from a `String` would allocate again on its first clone (the request and
/// the response both carry it).
fn uuid_value(id: Uuid) -> HeaderValue {
    let mut buf = [0u8; 36];
    id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_maybe_shared(Bytes::from_owner(buf)).unwrap_or(HeaderValue::from_static("-"))
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

/// The fields a decision names for removal before the asking proxy
/// forwards: every identity field the client sent (any spelling), and —
/// unless the route passes credentials through — the credentials keygate
/// read. What [`remove_spoofed`] and [`remove_credentials`] remove on the
/// proxy, as names.
pub fn to_remove(headers: &HeaderMap, credentials: bool) -> Vec<HeaderName> {
    use crate::authn::presented::is_keygate_authorization;
    let mut names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_spoofed(n.as_str().as_bytes()))
        .cloned()
        .collect();
    if credentials {
        if headers.contains_key(&X_API_KEY) {
            names.push(X_API_KEY.clone());
        }
        if headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .any(|v| is_keygate_authorization(v.as_bytes()))
        {
            names.push(header::AUTHORIZATION);
        }
    }
    names
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
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::TRAILER, HeaderValue::from_static("grpc-status"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert!(h.get("x-secret-hop").is_none() && h.get(header::TE).is_none());
        assert!(h.get(header::CONNECTION).is_none() && h.get(header::UPGRADE).is_none());
        assert!(h.get("x-keep").is_some() && h.get(header::TRAILER).is_some());
    }

    #[test]
    fn each_hop_by_hop_field_is_removed_when_it_comes_alone() {
        for name in HOP_BY_HOP.iter().copied().chain([&header::TE]) {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static("x"));
            h.insert("x-keep", HeaderValue::from_static("1"));
            remove_hop_by_hop(&mut h);
            assert!(h.get(name).is_none(), "{name}");
            assert_eq!(h.len(), 1, "{name}: {h:?}");
        }
    }

    #[test]
    fn te_trailers_alone_is_forwarded() {
        let mut h = HeaderMap::new();
        h.insert(header::TE, HeaderValue::from_static("Trailers"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h[header::TE], "Trailers");
        for other in ["trailers, gzip", "deflate"] {
            let mut h = HeaderMap::new();
            h.insert(header::TE, HeaderValue::from_static(other));
            remove_hop_by_hop(&mut h);
            assert!(h.get(header::TE).is_none(), "{other}");
        }
        // Two TE fields are one list: not "trailers" alone.
        let mut h = HeaderMap::new();
        h.append(header::TE, HeaderValue::from_static("trailers"));
        h.append(header::TE, HeaderValue::from_static("gzip"));
        remove_hop_by_hop(&mut h);
        assert!(h.get(header::TE).is_none());
        // Connection naming TE removes it whatever its value.
        let mut h = HeaderMap::new();
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::CONNECTION, HeaderValue::from_static("te"));
        remove_hop_by_hop(&mut h);
        assert!(h.get(header::TE).is_none());
    }

    #[test]
    fn spoofed_identity_is_removed_whatever_its_case_or_spelling() {
        let mut h = HeaderMap::new();
        h.insert("X-Keygate-Account", HeaderValue::from_static("evil"));
        h.insert("x-keygate-anything", HeaderValue::from_static("evil"));
        h.insert("X_Keygate_Account", HeaderValue::from_static("evil"));
        h.insert("x_forwarded_for", HeaderValue::from_static("evil"));
        h.insert("X_Real_IP", HeaderValue::from_static("evil"));
        h.insert("x_api_key", HeaderValue::from_static("kg_leak"));
        h.insert("x-keygateway", HeaderValue::from_static("fine"));
        h.insert("x_custom_header", HeaderValue::from_static("fine"));
        remove_spoofed(&mut h);
        assert_eq!(h.len(), 2, "{h:?}");
    }

    #[test]
    fn an_untrusted_peer_cannot_extend_the_chain_and_host_moves() {
        use crate::listener::{Scheme, TrustedProxies};
        use std::sync::Arc;
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("6.6.6.6"));
        h.insert(&FORWARDED, HeaderValue::from_static("for=6.6.6.6"));
        h.insert(header::HOST, HeaderValue::from_static("api.example"));
        let peer = "127.0.0.1:5000".parse().unwrap();
        let conn = ConnInfo::new(peer, Scheme::Http);
        let mut untrusted = h.clone();
        set_forwarded(&mut untrusted, &conn, conn.client(&h));
        assert_eq!(untrusted[&X_FORWARDED_FOR], "127.0.0.1");
        assert_eq!(untrusted[&FORWARDED], "for=127.0.0.1;proto=http");
        assert_eq!(untrusted[&X_REAL_IP], "127.0.0.1");
        assert_eq!(untrusted[&X_FORWARDED_HOST], "api.example");
        assert!(untrusted.get(header::HOST).is_none());

        let trust = Arc::new(TrustedProxies::new(vec!["127.0.0.0/8".parse().unwrap()]));
        let conn = ConnInfo::behind(peer, Scheme::Http, Some(&trust));
        let client = conn.client(&h);
        set_forwarded(&mut h, &conn, client);
        assert_eq!(h[&X_FORWARDED_FOR], "6.6.6.6, 127.0.0.1");
        assert_eq!(h[&X_REAL_IP], "6.6.6.6");
    }

    #[test]
    fn h2_cookie_crumbs_are_joined_for_one_field() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        h.append(header::COOKIE, HeaderValue::from_static("c=3"));
        join_cookies(&mut h);
        let all: Vec<_> = h.get_all(header::COOKIE).iter().collect();
        assert_eq!(all, ["a=1; b=2; c=3"]);
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1"));
        join_cookies(&mut h);
        assert_eq!(h[header::COOKIE], "a=1");
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
