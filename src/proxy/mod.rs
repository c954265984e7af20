//! The public listener's request path: route → authenticate → authorize →
//! rewrite headers → forward, streaming both ways.
//!
//! The hot path reads only the [`Cache`]; it never touches the store, holds
//! no lock across an await, and on success allocates only what the upstream
//! request needs. Refusals become HTTP in [`respond`].

pub mod headers;
pub mod respond;
pub mod routing;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response};
use http_body_util::{Either, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub use headers::X_REQUEST_ID;
pub use respond::Body;
pub use routing::{Route, RouteTable};

use crate::cache::{Cache, Principal};
use crate::clock::SharedClock;
use crate::config::{Config, ForwardAuth};
use crate::credential;
use crate::ratelimit::{Decision, Limits, Subject};
use crate::token::mint::Subject as TokenSubject;
use crate::token::{verify, Minter, TokenVerifier};
use dashmap::DashMap;
use uuid::Uuid;

type UpstreamClient = Client<HttpConnector, Limited<Incoming>>;

/// A token minted for an upstream, and what it was minted from.
struct ForwardToken {
    value: HeaderValue,
    refresh_at: i64,
    scopes: Arc<crate::cache::ScopeSet>,
    expires_at: i64,
}

/// Per-connection facts, computed once per connection rather than per request.
pub struct ConnInfo {
    pub remote: SocketAddr,
    client_ip: HeaderValue,
}

impl ConnInfo {
    pub fn new(remote: SocketAddr) -> Self {
        let client_ip = HeaderValue::from_str(&remote.ip().to_string())
            .unwrap_or(HeaderValue::from_static("unknown"));
        Self { remote, client_ip }
    }
}

pub struct Proxy {
    routes: RouteTable,
    /// `/oauth2/*` and `/.well-known/*`, served ahead of the routes.
    oauth: axum::Router,
    verifier: Arc<TokenVerifier>,
    /// For `forward_auth = "jwt"`: mints, and keeps each principal's token
    /// per route until 80% of its lifetime.
    minter: Arc<Minter>,
    forward_tokens: DashMap<(Uuid, usize), Arc<ForwardToken>>,
    limits: Arc<Limits>,
    cache: Arc<Cache>,
    client: UpstreamClient,
    clock: SharedClock,
    request_timeout: Duration,
    max_body_bytes: u64,
}

/// What the proxy shares with the rest of keygate.
pub struct Parts {
    pub routes: RouteTable,
    /// `/oauth2/*` and `/.well-known/*`.
    pub oauth: axum::Router,
    pub verifier: Arc<TokenVerifier>,
    pub minter: Arc<Minter>,
    pub limits: Arc<Limits>,
    pub cache: Arc<Cache>,
    pub clock: SharedClock,
}

impl Proxy {
    pub fn new(config: &Config, parts: Parts) -> Self {
        let Parts {
            routes,
            oauth,
            verifier,
            minter,
            limits,
            cache,
            clock,
        } = parts;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(
            config.server.request_timeout.min(Duration::from_secs(10)),
        ));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build(connector);
        Self {
            routes,
            oauth,
            verifier,
            minter,
            forward_tokens: DashMap::new(),
            limits,
            cache,
            client,
            clock,
            request_timeout: config.server.request_timeout,
            max_body_bytes: config.server.max_body_bytes,
        }
    }

    /// Serves one request; never fails (every refusal is a response).
    pub async fn handle(&self, mut req: Request<Incoming>, conn: &ConnInfo) -> Response<Body> {
        let request_id = headers::request_id(req.headers_mut());
        let mut res = if crate::oauth::owns(req.uri().path()) {
            self.serve_oauth(req, conn).await
        } else {
            self.forward(req, conn).await
        };
        res.headers_mut().insert(&X_REQUEST_ID, request_id);
        res
    }

    async fn serve_oauth(&self, mut req: Request<Incoming>, conn: &ConnInfo) -> Response<Body> {
        use tower::ServiceExt as _;
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(conn.remote));
        match self.oauth.clone().oneshot(req).await {
            Ok(res) => res.map(|b| Either::Right(Either::Right(b))),
            Err(never) => match never {},
        }
    }

    async fn forward(&self, req: Request<Incoming>, conn: &ConnInfo) -> Response<Body> {
        let (path, route) = match self.routes.resolve(req.uri().path()) {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(error = %e, "refused path");
                return respond::bad_path();
            }
        };
        let Some(route) = route else {
            return respond::no_route();
        };
        if req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > self.max_body_bytes)
        {
            return respond::body_too_large();
        }

        let principal = if route.public {
            None
        } else {
            match self.authenticate(&req, conn, route) {
                Ok(p) => Some(p),
                Err(refusal) => return refusal.into_response(),
            }
        };
        // Limits first: a request refused for scope still spends budget and
        // its 403 carries the rate-limit fields like every other response.
        let limit = self.rate_limit(route, principal.as_deref(), conn);
        if let Some(d) = limit.filter(|d| !d.allowed) {
            return respond::rate_limited(&d);
        }
        if let Some(p) = &principal {
            let refusal = match route.required_scopes(req.method().as_str()) {
                None => Some(respond::method_not_permitted()),
                Some(required) if !required.iter().all(|s| p.scopes.contains(s)) => {
                    Some(respond::insufficient_scope(required))
                }
                Some(_) => None,
            };
            if let Some(mut res) = refusal {
                if let Some(d) = &limit {
                    respond::rate_limit_headers(res.headers_mut(), d);
                }
                return res;
            }
        }

        let uri = match upstream_uri(route, &path, req.uri()) {
            Some(uri) => uri,
            None => return respond::bad_path(),
        };
        let (mut parts, body) = req.into_parts();
        parts.uri = uri;
        let h = &mut parts.headers;
        headers::remove_hop_by_hop(h);
        headers::remove_spoofed_identity(h);
        if route.forward_auth != ForwardAuth::Passthrough {
            headers::remove_credentials(h);
        }
        headers::set_forwarded(h, &conn.client_ip);
        if let Some(p) = &principal {
            headers::set_identity(h, p);
            if route.forward_auth == ForwardAuth::Jwt {
                match self.forward_token(p, route) {
                    Some(v) => {
                        h.insert(header::AUTHORIZATION, v);
                    }
                    None => return respond::bad_gateway(),
                }
            }
        }
        let upstream_req = Request::from_parts(
            parts,
            Limited::new(
                body,
                usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX),
            ),
        );

        let mut res =
            match tokio::time::timeout(self.request_timeout, self.client.request(upstream_req))
                .await
            {
                Err(_) => {
                    tracing::warn!(route = %route.name, "upstream timed out");
                    respond::gateway_timeout()
                }
                Ok(Err(e)) => {
                    if is_body_limit(&e) {
                        return respond::body_too_large();
                    }
                    tracing::warn!(route = %route.name, error = %e, "upstream unreachable");
                    respond::bad_gateway()
                }
                Ok(Ok(res)) => {
                    let (mut parts, body) = res.into_parts();
                    headers::remove_hop_by_hop(&mut parts.headers);
                    Response::from_parts(parts, Either::Left(body))
                }
            };
        if let Some(d) = &limit {
            respond::rate_limit_headers(res.headers_mut(), d);
        }
        res
    }

    /// The JWT the upstream receives for `principal` on `route`: minted with
    /// `aud` = the route's audience, reused until 80% of its lifetime.
    fn forward_token(&self, principal: &Principal, route: &Route) -> Option<HeaderValue> {
        let now = self.clock.now_ms();
        let key = (principal.key_id, route.index);
        if let Some(t) = self.forward_tokens.get(&key).map(|e| Arc::clone(e.value())) {
            // Reused only while the principal is unchanged: narrowed scopes or
            // an earlier expiry make a new token at once.
            if now < t.refresh_at
                && Arc::ptr_eq(&t.scopes, &principal.scopes)
                && t.expires_at == principal.expires_at
            {
                return Some(t.value.clone());
            }
        }
        // Only the scopes this route asks for, so the token is worth no more
        // to the upstream (or its logs) than this route's access.
        let wanted = route.scope_names();
        let scope = principal
            .scopes
            .iter()
            .filter(|s| wanted.is_empty() || wanted.contains(s))
            .collect::<Vec<_>>()
            .join(" ");
        let client_id = principal.key_id.to_string();
        let subject = TokenSubject {
            account_id: principal.account_id,
            organization_id: principal.organization_id,
            project_id: principal.project_id,
            client_id: &client_id,
            scope: &scope,
            expires_at: principal.expires_at,
        };
        let minted = match self.minter.mint(&subject, route.audience.as_deref(), None) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, route = %route.name, "cannot mint a token for the upstream");
                return None;
            }
        };
        let value = HeaderValue::from_str(&format!("Bearer {}", minted.token)).ok()?;
        let refresh_at = now + i64::try_from(minted.expires_in).unwrap_or(0) * 800;
        self.forward_tokens.insert(
            key,
            Arc::new(ForwardToken {
                value: value.clone(),
                refresh_at,
                scopes: Arc::clone(&principal.scopes),
                expires_at: principal.expires_at,
            }),
        );
        Some(value)
    }

    /// Drops minted upstream tokens past their reuse window.
    pub fn sweep(&self) {
        let now = self.clock.now_ms();
        self.forward_tokens.retain(|_, t| t.refresh_at > now);
    }

    /// The limit that applies: the route's own, else the account's, else the
    /// default. `None`: unlimited.
    fn rate_limit<'a>(
        &'a self,
        route: &'a Route,
        principal: Option<&Principal>,
        conn: &ConnInfo,
    ) -> Option<Decision<'a>> {
        let subject = match principal {
            Some(p) => Subject::Account(p.account_id),
            None => Subject::Address(conn.remote.ip()),
        };
        if let Some(limit) = &route.limit {
            return Some(limit.check(&subject));
        }
        let account_limit = principal.and_then(|p| {
            p.rate_limit
                .or_else(|| {
                    p.via_token
                        .then(|| self.cache.account_rate_limit(&p.account_id))
                        .flatten()
                })
                .map(|s| (p, s))
        });
        if let Some((p, spec)) = account_limit {
            return Some(self.limits.accounts.check(p.account_id, spec));
        }
        self.limits.default.as_ref().map(|d| d.check(&subject))
    }

    /// Credential → principal, from the cache alone.
    fn authenticate(
        &self,
        req: &Request<Incoming>,
        conn: &ConnInfo,
        route: &Route,
    ) -> Result<Arc<Principal>, Refusal> {
        let now = self.clock.now_ms();
        // SECURITY: past max_staleness we cannot know about revocations: fail closed.
        if self.cache.is_stale(now) {
            return Err(Refusal::Stale);
        }
        let ip = conn.remote.ip();
        if let Some(wait) = self.limits.failed_auth.blocked(ip) {
            return Err(Refusal::Blocked(wait));
        }
        let h = req.headers();
        let auth = h.get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
        let api_key = h.get(&headers::X_API_KEY).map(HeaderValue::as_bytes);
        // A presented credential that fails is charged to the client's
        // address, never to the key it names.
        let failed = || match self.limits.failed_auth.record_failure(ip) {
            Some(wait) => Refusal::Blocked(wait),
            None => Refusal::Invalid,
        };
        let secret = credential::extract(auth, api_key).map_err(|e| match e {
            credential::Error::Missing => Refusal::Missing,
            credential::Error::Malformed => failed(),
        })?;
        if verify::looks_like_jwt(secret) {
            return self
                .verifier
                .authenticate(secret, route.audience.as_deref(), &self.cache, now)
                .map(|v| Arc::clone(&v.principal))
                .map_err(|e| {
                    tracing::debug!(reason = %e, "token refused");
                    failed()
                });
        }
        self.cache.authenticate(secret, now).map_err(|e| {
            tracing::debug!(reason = %e, "credential refused");
            failed()
        })
    }
}

/// Why authentication refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Missing,
    Invalid,
    Stale,
    /// Too many failed attempts from this address; seconds to wait.
    Blocked(u64),
}

impl Refusal {
    fn into_response(self) -> Response<Body> {
        match self {
            Refusal::Missing => respond::missing_credential(),
            Refusal::Invalid => respond::invalid_credential(),
            Refusal::Stale => respond::stale(),
            Refusal::Blocked(wait) => respond::too_many_failures(wait),
        }
    }
}

/// The upstream URI: route's upstream + (prefix-stripped) normalised path +
/// query. Reuses the incoming path-and-query when nothing changes.
fn upstream_uri(route: &Route, path: &str, incoming: &Uri) -> Option<Uri> {
    let rest = if route.strip_prefix && route.prefix != "/" {
        match &path[route.prefix.len()..] {
            "" => "/",
            r => r,
        }
    } else {
        path
    };
    let pq = if route.upstream_base.is_empty() && rest == incoming.path() {
        incoming
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"))
    } else {
        let query = incoming.query();
        let mut s = String::with_capacity(
            route.upstream_base.len() + rest.len() + query.map_or(0, |q| q.len() + 1),
        );
        s.push_str(&route.upstream_base);
        s.push_str(rest);
        if let Some(q) = query {
            s.push('?');
            s.push_str(q);
        }
        PathAndQuery::from_maybe_shared(bytes::Bytes::from(s)).ok()?
    };
    Uri::builder()
        .scheme(route.upstream_scheme.clone())
        .authority(route.upstream_authority.clone())
        .path_and_query(pq)
        .build()
        .ok()
}

fn is_body_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}
