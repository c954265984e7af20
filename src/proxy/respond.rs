//! Where proxy refusals become HTTP: status, `WWW-Authenticate` challenge
//! (RFC 6750 §3), and a JSON body in the same `{"error":{…}}` shape as the
//! admin API. Bodies are static: no formatting on the refusal path either,
//! except the 403 challenge that names the missing scopes.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, HeaderName, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::authn;
use crate::quota::QuotaDecision;
use crate::ratelimit::Decision;

/// Why the proxy did not forward a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial<'a> {
    /// A dot-dot segment, or an encoded slash or segment parameter that
    /// would change the route.
    BadPath,
    /// Two `Host` fields.
    DuplicateHost,
    /// A method-override header.
    MethodOverride,
    NoRoute,
    /// The route asks for a verified TLS client certificate; none was shown.
    ClientCertRequired,
    /// The body is (or is declared) larger than `server.max_body_bytes`.
    TooLarge,
    /// The request's headers are larger than the listener takes (a
    /// decision's original request, which no listener parsed).
    HeadersTooLarge,
    Auth(authn::Refusal),
    /// Over the rate limit; seconds until the next request may pass.
    RateLimited(u64),
    /// A quota is spent; seconds until its window turns (`None`: a fixed
    /// number of uses, which does not turn by itself).
    QuotaExhausted(Option<u64>),
    /// The credential may not be used from the client's address.
    AddressNotAllowed,
    /// The route lists scopes for other methods, none for this one.
    MethodNotPermitted,
    /// Every scope the route requires for this method.
    InsufficientScope(&'a [String]),
    BadGateway,
    GatewayTimeout,
}

impl Denial<'_> {
    pub fn into_response(self) -> Response<Body> {
        match self {
            Denial::BadPath => bad_path(),
            Denial::DuplicateHost => bad_request(
                r#"{"error":{"type":"invalid_request_error","code":"duplicate_host","message":"the request has more than one Host header","param":null}}"#,
            ),
            Denial::MethodOverride => bad_request(
                r#"{"error":{"type":"invalid_request_error","code":"method_override","message":"method-override headers are not accepted: send the method itself","param":null}}"#,
            ),
            Denial::NoRoute => no_route(),
            Denial::ClientCertRequired => error(
                StatusCode::UNAUTHORIZED,
                r#"{"error":{"type":"authentication_error","code":"client_certificate_required","message":"this route requires a verified TLS client certificate","param":null}}"#,
            ),
            Denial::TooLarge => body_too_large(),
            Denial::HeadersTooLarge => error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                r#"{"error":{"type":"invalid_request_error","code":"headers_too_large","message":"the request headers exceed the listener's limit","param":null}}"#,
            ),
            Denial::Auth(authn::Refusal::Missing) => missing_credential(),
            Denial::Auth(authn::Refusal::Invalid) => invalid_credential(),
            Denial::Auth(authn::Refusal::Stale) => stale(),
            Denial::Auth(authn::Refusal::Throttled(wait)) => too_many_failures(wait),
            Denial::Auth(authn::Refusal::Ambiguous) => ambiguous_credentials(),
            Denial::RateLimited(wait) => rate_limited(wait),
            Denial::QuotaExhausted(reset) => quota_exhausted(reset),
            Denial::AddressNotAllowed => error(
                StatusCode::FORBIDDEN,
                r#"{"error":{"type":"permission_error","code":"address_not_allowed","message":"this credential may not be used from the client's address","param":null}}"#,
            ),
            Denial::MethodNotPermitted => method_not_permitted(),
            Denial::InsufficientScope(required) => insufficient_scope(required),
            Denial::BadGateway => bad_gateway(),
            Denial::GatewayTimeout => gateway_timeout(),
        }
    }
}

impl Denial<'_> {
    /// The refusal as gRPC clients read one (a "Trailers-Only" response,
    /// gRPC over HTTP/2 spec): HTTP 200, `grpc-status` and `grpc-message`
    /// in the headers, no body. Rate-limit and challenge fields still ride
    /// along for clients that look.
    pub fn into_grpc_response(self) -> Response<Body> {
        let (status, message) = self.grpc_status();
        // The HTTP answer carries the fields a client may act on
        // (`WWW-Authenticate`, `Retry-After`); status and body are gRPC's.
        let http = self.into_response();
        let mut res = Response::new(Either::Right(Either::Left(Full::new(Bytes::new()))));
        let h = res.headers_mut();
        for name in [header::WWW_AUTHENTICATE, header::RETRY_AFTER] {
            if let Some(v) = http.headers().get(&name) {
                h.insert(name, v.clone());
            }
        }
        h.insert(header::CONTENT_TYPE, GRPC);
        h.insert(&GRPC_STATUS, HeaderValue::from_static(status));
        // Plain ASCII without `%`: valid as `grpc-message` unencoded.
        h.insert(&GRPC_MESSAGE, HeaderValue::from_static(message));
        res
    }

    /// The gRPC status code of this refusal (grpc/doc/statuscodes.md).
    pub fn grpc_code(self) -> i32 {
        self.grpc_status().0.parse().unwrap_or(2)
    }

    /// The gRPC status and message of this refusal.
    fn grpc_status(self) -> (&'static str, &'static str) {
        use grpc::*;
        match self {
            Denial::BadPath | Denial::DuplicateHost | Denial::MethodOverride => (
                INVALID_ARGUMENT,
                "the request path or headers are not acceptable",
            ),
            Denial::NoRoute => (UNIMPLEMENTED, "no route matches this method"),
            Denial::ClientCertRequired => (
                UNAUTHENTICATED,
                "this route requires a verified TLS client certificate",
            ),
            Denial::TooLarge => (
                RESOURCE_EXHAUSTED,
                "the request exceeds server.max_body_bytes",
            ),
            Denial::HeadersTooLarge => (
                RESOURCE_EXHAUSTED,
                "the request headers exceed the listener's limit",
            ),
            Denial::Auth(authn::Refusal::Missing) => (UNAUTHENTICATED, "a credential is required"),
            Denial::Auth(authn::Refusal::Invalid) => (
                UNAUTHENTICATED,
                "the credential is invalid, expired or revoked",
            ),
            Denial::Auth(authn::Refusal::Ambiguous) => {
                (UNAUTHENTICATED, "present one credential, not several")
            }
            Denial::Auth(authn::Refusal::Stale) => (
                UNAVAILABLE,
                "credential data is stale; refusing to authenticate",
            ),
            Denial::Auth(authn::Refusal::Throttled(_)) => (
                RESOURCE_EXHAUSTED,
                "too many failed authentication attempts from this address",
            ),
            Denial::RateLimited(_) => (RESOURCE_EXHAUSTED, "rate limit exceeded"),
            Denial::QuotaExhausted(_) => (RESOURCE_EXHAUSTED, "quota exhausted"),
            Denial::AddressNotAllowed => (
                PERMISSION_DENIED,
                "the credential may not be used from this address",
            ),
            Denial::MethodNotPermitted | Denial::InsufficientScope(_) => (
                PERMISSION_DENIED,
                "the credential lacks a scope this method requires",
            ),
            Denial::BadGateway => (UNAVAILABLE, "the upstream could not be reached"),
            Denial::GatewayTimeout => (DEADLINE_EXCEEDED, "the upstream did not answer in time"),
        }
    }
}

/// Whether a request is gRPC (`application/grpc`, `application/grpc+proto`,
/// `application/grpc-web…`): its refusals are answered the gRPC way.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.len() >= 16 && v[..16].eq_ignore_ascii_case(b"application/grpc")
    })
}

const GRPC: HeaderValue = HeaderValue::from_static("application/grpc");
static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// gRPC status codes (grpc/doc/statuscodes.md) keygate answers with.
mod grpc {
    pub(super) const INVALID_ARGUMENT: &str = "3";
    pub(super) const DEADLINE_EXCEEDED: &str = "4";
    pub(super) const PERMISSION_DENIED: &str = "7";
    pub(super) const RESOURCE_EXHAUSTED: &str = "8";
    pub(super) const UNIMPLEMENTED: &str = "12";
    pub(super) const UNAVAILABLE: &str = "14";
    pub(super) const UNAUTHENTICATED: &str = "16";
}

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
fn missing_credential() -> Response<Body> {
    let mut res = error(
        StatusCode::UNAUTHORIZED,
        r#"{"error":{"type":"authentication_error","code":"missing_credential","message":"a credential is required: Authorization: Bearer <key>, Authorization: Token <key> or X-API-Key: <key>","param":null}}"#,
    );
    res.headers_mut()
        .insert(header::WWW_AUTHENTICATE, CHALLENGE);
    res
}

/// 401, a credential was presented and is not valid (never says why).
fn invalid_credential() -> Response<Body> {
    let mut res = error(
        StatusCode::UNAUTHORIZED,
        r#"{"error":{"type":"authentication_error","code":"invalid_token","message":"the credential is invalid, expired or revoked","param":null}}"#,
    );
    res.headers_mut()
        .insert(header::WWW_AUTHENTICATE, CHALLENGE_INVALID);
    res
}

/// 403, naming every scope the route requires for this method.
fn insufficient_scope(required: &[String]) -> Response<Body> {
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
fn method_not_permitted() -> Response<Body> {
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

/// 400: several credentials; which one an upstream would read is unknown.
fn ambiguous_credentials() -> Response<Body> {
    error(
        StatusCode::BAD_REQUEST,
        r#"{"error":{"type":"invalid_request_error","code":"ambiguous_credentials","message":"present one credential: one Authorization header, or one X-API-Key header, not several","param":null}}"#,
    )
}

fn bad_path() -> Response<Body> {
    bad_request(
        r#"{"error":{"type":"invalid_request_error","code":"invalid_path","message":"the path contains a dot-dot segment, a malformed percent-encoding, or an encoded slash, segment parameter or spelling that would change the route","param":null}}"#,
    )
}

fn bad_request(body: &'static str) -> Response<Body> {
    error(StatusCode::BAD_REQUEST, body)
}

fn no_route() -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        r#"{"error":{"type":"not_found_error","code":"no_route","message":"no route matches this path","param":null}}"#,
    )
}

fn body_too_large() -> Response<Body> {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        r#"{"error":{"type":"invalid_request_error","code":"body_too_large","message":"the request body exceeds server.max_body_bytes","param":null}}"#,
    )
}

/// 503: the cache has not heard from the store for longer than
/// `max_staleness`, so keygate fails closed.
fn stale() -> Response<Body> {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"error":{"type":"unavailable_error","code":"credentials_stale","message":"credential data is stale; refusing to authenticate","param":null}}"#,
    )
}

fn bad_gateway() -> Response<Body> {
    error(
        StatusCode::BAD_GATEWAY,
        r#"{"error":{"type":"upstream_error","code":"upstream_unreachable","message":"the upstream could not be reached","param":null}}"#,
    )
}

fn gateway_timeout() -> Response<Body> {
    error(
        StatusCode::GATEWAY_TIMEOUT,
        r#"{"error":{"type":"upstream_error","code":"upstream_timeout","message":"the upstream did not answer within server.request_timeout","param":null}}"#,
    )
}

static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
pub(super) static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub(super) static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The rate-limit fields every response on a limited route carries: the
/// widely deployed `RateLimit-Limit/-Remaining/-Reset` and the IETF draft's
/// (draft-ietf-httpapi-ratelimit-headers) structured `RateLimit-Policy` and
/// `RateLimit`.
pub(crate) fn rate_limit_headers(headers: &mut HeaderMap, d: &Decision<'_>) {
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

/// 429 for a principal over its limit, with `Retry-After` (RFC 9110
/// §10.2.3); the rate-limit fields are added at the proxy's exit.
fn rate_limited(wait_secs: u64) -> Response<Body> {
    let mut res = error(
        StatusCode::TOO_MANY_REQUESTS,
        r#"{"error":{"type":"rate_limit_error","code":"rate_limited","message":"rate limit exceeded; retry after the number of seconds in Retry-After","param":null}}"#,
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait_secs));
    res
}

/// 429 for a request over a quota: `Retry-After` when the window turns.
fn quota_exhausted(reset_secs: Option<u64>) -> Response<Body> {
    let mut res = error(
        StatusCode::TOO_MANY_REQUESTS,
        r#"{"error":{"type":"rate_limit_error","code":"quota_exhausted","message":"the quota of this credential or its account is spent until its period turns","param":null}}"#,
    );
    if let Some(secs) = reset_secs {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    res
}

/// The limit fields of a response: the rate limit's (see
/// [`rate_limit_headers`]) and, when a quota was charged, a `"quota"`
/// entry in `RateLimit-Policy` and `RateLimit` beside it.
pub(crate) fn limit_headers(
    headers: &mut HeaderMap,
    limit: Option<&Decision<'_>>,
    quota: Option<&(QuotaDecision, Option<u64>)>,
) {
    if let Some(d) = limit {
        rate_limit_headers(headers, d);
    }
    let Some((q, reset)) = quota else {
        return;
    };
    let window = if q.window.end == i64::MAX {
        String::new()
    } else {
        format!(";w={}", (q.window.end - q.window.start) / 1000)
    };
    let reset = reset.map(|t| format!(";t={t}")).unwrap_or_default();
    let entries = [
        (
            &RATELIMIT_POLICY,
            format!("\"quota\";q={}{window}", q.limit),
        ),
        (&RATELIMIT, format!("\"quota\";r={}{reset}", q.remaining)),
    ];
    for (name, entry) in entries {
        let value = match headers.get(name).and_then(|v| v.to_str().ok()) {
            Some(rate) => format!("{rate}, {entry}"),
            None => entry,
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

/// 429 for an address that failed authentication too often.
fn too_many_failures(wait_secs: u64) -> Response<Body> {
    let mut res = error(
        StatusCode::TOO_MANY_REQUESTS,
        r#"{"error":{"type":"rate_limit_error","code":"too_many_failed_attempts","message":"too many failed authentication attempts from this address","param":null}}"#,
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait_secs));
    res
}
