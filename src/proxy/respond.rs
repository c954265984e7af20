//! Where proxy refusals become HTTP: status, `WWW-Authenticate` challenge
//! (RFC 6750 §3), and a JSON body in the same `{"error":{…}}` shape as the
//! admin API. Bodies are static: no formatting on the refusal path either,
//! except the 403 challenge that names the missing scopes.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, HeaderName, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::ratelimit::Decision;

/// The proxy's response body: the upstream's, streamed; keygate's own
/// refusals; or the OAuth endpoints'. An enum, not a box: no allocation.
pub type Body = Either<Incoming, Either<Full<Bytes>, axum::body::Body>>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const CHALLENGE: HeaderValue = HeaderValue::from_static(r#"Bearer realm="keygate""#);
const CHALLENGE_INVALID: HeaderValue =
    HeaderValue::from_static(r#"Bearer realm="keygate", error="invalid_token""#);

fn error(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut res = Response::new(Either::Right(Either::Left(Full::new(Bytes::from_static(
        body.as_bytes(),
    )))));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, JSON);
    res
}

/// 401, no credential presented.
pub fn missing_credential() -> Response<Body> {
    let mut res = error(
        StatusCode::UNAUTHORIZED,
        r#"{"error":{"type":"authentication_error","code":"missing_credential","message":"a credential is required: Authorization: Bearer <key>, Authorization: Token <key> or X-API-Key: <key>","param":null}}"#,
    );
    res.headers_mut()
        .insert(header::WWW_AUTHENTICATE, CHALLENGE);
    res
}

/// 401, a credential was presented and is not valid (never says why).
pub fn invalid_credential() -> Response<Body> {
    let mut res = error(
        StatusCode::UNAUTHORIZED,
        r#"{"error":{"type":"authentication_error","code":"invalid_token","message":"the credential is invalid, expired or revoked","param":null}}"#,
    );
    res.headers_mut()
        .insert(header::WWW_AUTHENTICATE, CHALLENGE_INVALID);
    res
}

/// 403, naming every scope the route requires for this method.
pub fn insufficient_scope(required: &[String]) -> Response<Body> {
    let mut res = error(
        StatusCode::FORBIDDEN,
        r#"{"error":{"type":"permission_error","code":"insufficient_scope","message":"the credential lacks a scope this route requires","param":null}}"#,
    );
    let challenge = format!(
        r#"Bearer realm="keygate", error="insufficient_scope", scope="{}""#,
        required.join(" ")
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

/// 403: the route lists scopes for other methods, none for this one.
pub fn method_not_permitted() -> Response<Body> {
    let mut res = error(
        StatusCode::FORBIDDEN,
        r#"{"error":{"type":"permission_error","code":"method_not_permitted","message":"this route grants no scope for this method","param":null}}"#,
    );
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer realm="keygate", error="insufficient_scope""#),
    );
    res
}

pub fn bad_path() -> Response<Body> {
    error(
        StatusCode::BAD_REQUEST,
        r#"{"error":{"type":"invalid_request_error","code":"invalid_path","message":"the path contains a dot-dot segment or an encoded slash that would change the route","param":null}}"#,
    )
}

pub fn no_route() -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        r#"{"error":{"type":"not_found_error","code":"no_route","message":"no route matches this path","param":null}}"#,
    )
}

pub fn body_too_large() -> Response<Body> {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        r#"{"error":{"type":"invalid_request_error","code":"body_too_large","message":"the request body exceeds server.max_body_bytes","param":null}}"#,
    )
}

/// 503: the cache has not heard from the store for longer than
/// `max_staleness`, so keygate fails closed.
pub fn stale() -> Response<Body> {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"error":{"type":"unavailable_error","code":"credentials_stale","message":"credential data is stale; refusing to authenticate","param":null}}"#,
    )
}

pub fn bad_gateway() -> Response<Body> {
    error(
        StatusCode::BAD_GATEWAY,
        r#"{"error":{"type":"upstream_error","code":"upstream_unreachable","message":"the upstream could not be reached","param":null}}"#,
    )
}

pub fn gateway_timeout() -> Response<Body> {
    error(
        StatusCode::GATEWAY_TIMEOUT,
        r#"{"error":{"type":"upstream_error","code":"upstream_timeout","message":"the upstream did not answer within server.request_timeout","param":null}}"#,
    )
}

static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The rate-limit fields every response on a limited route carries: the
/// widely deployed `RateLimit-Limit/-Remaining/-Reset` and the IETF draft's
/// (draft-ietf-httpapi-ratelimit-headers) structured `RateLimit-Policy` and
/// `RateLimit`.
pub fn rate_limit_headers(headers: &mut HeaderMap, d: &Decision<'_>) {
    // Policy names are route names: keep them a valid sf-string.
    let policy: String = d
        .policy
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    headers.insert(&RATELIMIT_LIMIT, HeaderValue::from(d.spec.count));
    headers.insert(&RATELIMIT_REMAINING, HeaderValue::from(d.remaining));
    headers.insert(&RATELIMIT_RESET, HeaderValue::from(d.reset_secs));
    let pairs = [
        (
            &RATELIMIT_POLICY,
            format!("\"{policy}\";q={};w={}", d.spec.count, d.spec.per.as_secs()),
        ),
        (
            &RATELIMIT,
            format!("\"{policy}\";r={};t={}", d.remaining, d.reset_secs),
        ),
    ];
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

/// 429 for a principal over its limit, with `Retry-After` (RFC 9110 §10.2.3).
pub fn rate_limited(d: &Decision<'_>) -> Response<Body> {
    let mut res = error(
        StatusCode::TOO_MANY_REQUESTS,
        r#"{"error":{"type":"rate_limit_error","code":"rate_limited","message":"rate limit exceeded; retry after the number of seconds in Retry-After","param":null}}"#,
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(d.reset_secs));
    rate_limit_headers(res.headers_mut(), d);
    res
}

/// 429 for an address that failed authentication too often.
pub fn too_many_failures(wait_secs: u64) -> Response<Body> {
    let mut res = error(
        StatusCode::TOO_MANY_REQUESTS,
        r#"{"error":{"type":"rate_limit_error","code":"too_many_failed_attempts","message":"too many failed authentication attempts from this address","param":null}}"#,
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait_secs));
    res
}
