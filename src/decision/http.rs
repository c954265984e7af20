//! Decisions over HTTP at `/authz` and every path under it, any method:
//! - Traefik ForwardAuth and nginx `auth_request` name the original request
//!   in `X-Forwarded-Method` / `X-Forwarded-Uri` (nginx, by convention:
//!   `X-Original-Method` / `X-Original-URI`), `X-Forwarded-Host` and
//!   `X-Forwarded-For`, and send the client's own headers, credential
//!   included;
//! - Envoy's `http_service` (`path_prefix: /authz`) sends the original
//!   method, and the original path after `/authz`.
//!
//! Allowed: `200`, an empty body, the identity fields (for Traefik's
//! `authResponseHeaders`, nginx's `auth_request_set`) and the rate-limit
//! fields. Refused: the proxy's own status, headers and body. A request
//! that names no original path: `400`.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;

use super::{Decider, Original, Verdict};
use crate::listener::ConnInfo;
use crate::proxy::Denial;

const PREFIX: &str = "/authz";

static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// One HTTP decision.
pub async fn serve(
    decider: &Arc<Decider>,
    req: Request<Incoming>,
    conn: &ConnInfo,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path != PREFIX && !path.starts_with("/authz/") {
        return render(super::deny(Denial::NoRoute).await);
    }
    let (parts, _body) = req.into_parts();
    match original(&parts.method, &parts.uri, parts.headers, conn.peer.ip()) {
        Ok(original) => render(decider.judge(original).await),
        Err(denial) => render(super::deny(denial).await),
    }
}

/// The one value of the field the asking proxy names the original request
/// by, in either convention. SECURITY: each proxy sets its own convention's
/// field and passes the client's others through (nginx forwards a
/// client-sent `X-Forwarded-Uri`, Traefik a client-sent `X-Original-URI`),
/// so a request carrying both, or either twice, is refused: believing one
/// would let a client choose which path is judged.
fn named<'h>(
    headers: &'h HeaderMap,
    forwarded: &HeaderName,
    original: &HeaderName,
) -> Result<Option<&'h http::HeaderValue>, Denial<'static>> {
    let mut values = headers
        .get_all(forwarded)
        .iter()
        .chain(headers.get_all(original).iter());
    let first = values.next();
    if values.next().is_some() {
        return Err(Denial::BadPath);
    }
    Ok(first)
}

/// The original request the asking proxy names.
fn original(
    method: &Method,
    uri: &Uri,
    headers: HeaderMap,
    peer: IpAddr,
) -> Result<Original, Denial<'static>> {
    let named_method = named(&headers, &X_FORWARDED_METHOD, &X_ORIGINAL_METHOD)?;
    let (method, target) = match named(&headers, &X_FORWARDED_URI, &X_ORIGINAL_URI)? {
        Some(target) => {
            let method = named_method
                .map(|m| Method::from_bytes(m.as_bytes()))
                .transpose()
                .map_err(|_| Denial::BadPath)?
                .unwrap_or_else(|| method.clone());
            let target = target.to_str().map_err(|_| Denial::BadPath)?.to_owned();
            (method, target)
        }
        // Envoy's http_service: the original path follows the prefix, and
        // the method is the request's own.
        None if named_method.is_some() => return Err(Denial::BadPath),
        None => {
            let rest = &uri.path()[PREFIX.len()..];
            if rest.is_empty() {
                return Err(Denial::BadPath);
            }
            let target = match uri.query() {
                Some(q) => format!("{rest}?{q}"),
                None => rest.to_owned(),
            };
            (method.clone(), target)
        }
    };
    let uri = Some(origin_form(&target)?);
    let client = client_of(&headers).unwrap_or(peer);
    Ok(Original {
        method,
        uri,
        headers,
        client,
    })
}

/// An original request target: an absolute path with an optional query.
pub(super) fn origin_form(target: &str) -> Result<Uri, Denial<'static>> {
    if !target.starts_with('/') {
        return Err(Denial::BadPath);
    }
    target.parse::<Uri>().map_err(|_| Denial::BadPath)
}

/// The client the asking proxy names: the address it appended to
/// `X-Forwarded-For` (the last one; earlier ones are the client's own
/// claims), else `X-Real-IP`.
fn client_of(headers: &HeaderMap) -> Option<IpAddr> {
    let last_forwarded = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|s| !s.is_empty());
    last_forwarded
        .or_else(|| headers.get(&X_REAL_IP).and_then(|v| v.to_str().ok()))
        .and_then(|s| s.trim().parse().ok())
}

fn render(verdict: Verdict) -> Response<Full<Bytes>> {
    match verdict {
        Verdict::Allow {
            mut identity,
            response,
            ..
        } => {
            for (name, value) in response.iter() {
                identity.append(name.clone(), value.clone());
            }
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.headers_mut() = identity;
            res
        }
        Verdict::Deny {
            status,
            headers,
            body,
            ..
        } => {
            let mut res = Response::new(Full::new(body));
            *res.status_mut() = status;
            *res.headers_mut() = headers;
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 9, 8, 7));

    #[test]
    fn traefik_names_the_original_in_forwarded_fields() {
        let h = headers(&[
            ("x-forwarded-method", "POST"),
            ("x-forwarded-uri", "/orders/1?x=2"),
            ("x-forwarded-for", "6.6.6.6, 203.0.113.5"),
        ]);
        let o = original(&Method::GET, &"/authz".parse().unwrap(), h, PEER).unwrap();
        assert_eq!(o.method, Method::POST);
        let uri = o.uri.unwrap();
        assert_eq!(uri.path(), "/orders/1");
        assert_eq!(uri.query(), Some("x=2"));
        assert_eq!(o.client, "203.0.113.5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn nginx_names_the_original_in_original_fields() {
        let h = headers(&[
            ("x-original-uri", "/orders/9"),
            ("x-original-method", "DELETE"),
        ]);
        let o = original(&Method::GET, &"/authz".parse().unwrap(), h, PEER).unwrap();
        assert_eq!(o.method, Method::DELETE);
        assert_eq!(o.uri.unwrap().path(), "/orders/9");
        assert_eq!(o.client, PEER);
    }

    #[test]
    fn envoy_http_service_sends_the_path_after_the_prefix() {
        let uri: Uri = "/authz/orders/1?q=1".parse().unwrap();
        let o = original(&Method::PUT, &uri, HeaderMap::new(), PEER).unwrap();
        assert_eq!(o.method, Method::PUT);
        assert_eq!(o.uri.unwrap().to_string(), "/orders/1?q=1");
    }

    #[test]
    fn a_client_cannot_name_a_second_original_beside_its_proxy() {
        let bare: Uri = "/authz".parse().unwrap();
        // nginx passes a client's X-Forwarded-Uri beside its own X-Original-URI.
        let both = headers(&[
            ("x-original-uri", "/orders/1"),
            ("x-forwarded-uri", "/open/x"),
        ]);
        assert!(original(&Method::GET, &bare, both, PEER).is_err());
        let twice = headers(&[
            ("x-forwarded-uri", "/open/x"),
            ("x-forwarded-uri", "/orders/1"),
        ]);
        assert!(original(&Method::GET, &bare, twice, PEER).is_err());
        let methods = headers(&[
            ("x-forwarded-uri", "/orders/1"),
            ("x-forwarded-method", "GET"),
            ("x-original-method", "DELETE"),
        ]);
        assert!(original(&Method::GET, &bare, methods, PEER).is_err());
        // A method named without a target names nothing.
        let lone = headers(&[("x-original-method", "GET")]);
        let path: Uri = "/authz/orders/1".parse().unwrap();
        assert!(original(&Method::DELETE, &path, lone, PEER).is_err());
    }

    #[test]
    fn a_request_naming_no_original_is_refused() {
        let bare: Uri = "/authz".parse().unwrap();
        assert!(original(&Method::GET, &bare, HeaderMap::new(), PEER).is_err());
        let h = headers(&[("x-forwarded-uri", "orders")]);
        assert!(original(&Method::GET, &bare, h, PEER).is_err());
        let h = headers(&[
            ("x-forwarded-uri", "/o"),
            ("x-forwarded-method", "BAD METHOD"),
        ]);
        assert!(original(&Method::GET, &bare, h, PEER).is_err());
    }
}
