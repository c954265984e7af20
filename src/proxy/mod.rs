//! The public listener's request path. A request runs through small phases
//! ([`phases`]) — route, authenticate, limit, authorize, rewrite, forward —
//! each returning `Result<_, Denial>`; [`Proxy::handle`] is the one exit
//! where the response is finished (rate-limit fields, request id).
//!
//! The hot path reads only in-memory state; it never touches the store,
//! holds no lock across an await, and on success allocates only what the
//! upstream request needs. Who is calling is the
//! [`crate::authn::Authenticator`]'s decision; refusals become HTTP in
//! [`respond`].

mod connector;
pub mod headers;
mod kept;
pub mod lean;
mod phases;
pub(crate) mod record;
pub mod respond;
pub mod routing;
mod trailers;
mod upstream;
mod websocket;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use http_body_util::Either;
use hyper::body::Incoming;

pub use headers::X_REQUEST_ID;
pub use kept::Kept;
pub use phases::{admit, Ctx, Edge, Head, Passed};
pub use respond::{Body, Denial};
pub use routing::{Route, RouteTable};

use crate::authn::Authenticator;
use crate::config::Config;
use crate::jwt::upstream::UpstreamTokens;
use crate::listener::ConnInfo;
use crate::ratelimit::RateLimits;
use crate::telemetry::metrics::Metrics;
use record::{Done, Recorder};

pub struct Proxy {
    routes: RouteTable,
    authn: Arc<Authenticator>,
    limits: Arc<RateLimits>,
    /// For `forward_auth = "jwt"`.
    upstream_tokens: UpstreamTokens<HeaderValue>,
    upstreams: upstream::Upstreams,
    request_timeout: Duration,
    max_body_bytes: u64,
    websocket_idle: Duration,
    websocket_lifetime: Duration,
    /// Metrics and the access log.
    record: Recorder,
}

/// A service the public listener answers beside the routes (the OAuth
/// endpoints).
pub trait Beside: Send + Sync {
    fn serve(
        &self,
        req: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<axum::body::Body>> + Send + '_>>;
}

impl Beside for axum::Router {
    fn serve(
        &self,
        req: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<axum::body::Body>> + Send + '_>> {
        use tower::ServiceExt as _;
        let router = self.clone();
        Box::pin(async move {
            match router.oneshot(req).await {
                Ok(res) => res,
                Err(never) => match never {},
            }
        })
    }
}

/// A service beside the routes that the lean HTTP/1.1 path hands whole
/// requests — the head, and a body it has read — without hyper (the token
/// endpoint, the busiest of them).
pub trait BesideWhole: Send + Sync {
    /// The largest body it reads, when it answers `method` on `path`.
    fn takes(&self, method: &[u8], path: &str) -> Option<u64>;

    /// Answers a request from `client` (its address as the connection
    /// vouches for it).
    fn serve_whole<'a>(
        &'a self,
        client: std::net::IpAddr,
        headers: &'a http::HeaderMap,
        body: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Response<axum::body::Body>> + Send + 'a>>;
}

async fn serve_beside(service: &dyn Beside, req: Request<Incoming>) -> Response<Body> {
    service
        .serve(req)
        .await
        .map(|b| Either::Right(Either::Right(b)))
}

/// What the proxy shares with the rest of keygate.
pub struct Parts {
    pub routes: RouteTable,
    pub authn: Arc<Authenticator>,
    pub limits: Arc<RateLimits>,
    pub upstream_tokens: UpstreamTokens<HeaderValue>,
    pub metrics: Arc<Metrics>,
}

impl Proxy {
    /// Fails when a route's `upstream_ca` cannot be read.
    pub fn new(config: &Config, parts: Parts) -> Result<Self, String> {
        Ok(Self {
            routes: parts.routes,
            authn: parts.authn,
            limits: parts.limits,
            upstream_tokens: parts.upstream_tokens,
            upstreams: upstream::Upstreams::new(
                &config.routes,
                config.server.request_timeout,
                config.server.upstream_reuse,
            )?,
            request_timeout: config.server.request_timeout,
            max_body_bytes: config.server.max_body_bytes,
            websocket_idle: config.server.websocket_idle_timeout,
            websocket_lifetime: config.server.websocket_max_lifetime,
            record: Recorder::new(
                parts.metrics,
                "public",
                config.routes.iter().map(|r| r.name.as_str()),
                config.server.access_log,
            ),
        })
    }

    /// Serves one request; never fails (every refusal is a response).
    /// This is the one exit: whatever the phases answered, the rate-limit
    /// fields, the request id, metrics and the access log are done here.
    ///
    /// `beside`: the service the listener found for this request beside
    /// the routes (the OAuth endpoints), which answers it instead of the
    /// phases after `admit`, and shares this exit. Which requests that is,
    /// the listener decides; the proxy knows nothing of what it serves.
    /// `kept`: the upstream connection the client's connection keeps
    /// ([`Proxy::kept`]).
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        conn: &ConnInfo,
        kept: Option<&Kept>,
        beside: Option<&dyn Beside>,
    ) -> Response<Body> {
        let started = self.record.start();
        let request_id = headers::request_id(req.headers_mut());
        let grpc = respond::is_grpc(req.headers());
        let client = conn.client(req.headers());
        // Only for the access log.
        let seen = self
            .record
            .logging()
            .then(|| (req.method().clone(), req.uri().path().to_owned()));
        // A refusal is answered without reading the body; on HTTP/1.1 the
        // connection then cannot carry another request (see
        // `listener::close_if_unread`), so the answer says so.
        let body_pending =
            req.version() < http::Version::HTTP_2 && !http_body::Body::is_end_stream(req.body());
        let mut ctx = Ctx::new();
        let answer = match (phases::admit(req.headers()), beside) {
            (Err(refusal), _) => Err(refusal),
            (Ok(()), Some(service)) => Ok(serve_beside(service, req).await),
            (Ok(()), None) => {
                self.run(req, conn, kept, client, &request_id, &mut ctx)
                    .await
            }
        };
        let mut res = match answer {
            Ok(res) => res,
            Err(refusal) if grpc => refusal.into_grpc_response(),
            Err(refusal) => {
                let mut res = refusal.into_response();
                if body_pending {
                    res.headers_mut()
                        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                }
                res
            }
        };
        let status = res.status();
        self.seal(
            res.headers_mut(),
            &ctx,
            Done {
                trace: &ctx.trace,
                beside: beside.is_some(),
                status,
                started,
                seen: seen.as_ref().map(|(m, p)| (m, p.as_str())),
                client,
                request_id: &request_id,
            },
        );
        res
    }

    /// What every response head gets on its way out, whichever path
    /// served it: the rate-limit fields, metrics and the access log, the
    /// request id.
    fn seal(&self, h: &mut http::HeaderMap, ctx: &Ctx<'_>, done: Done<'_>) {
        respond::limit_headers(h, ctx.limit.as_ref(), ctx.quota.as_ref());
        let request_id = done.request_id.clone();
        if done.started.is_some() {
            self.record.finish(done);
        }
        h.insert(&X_REQUEST_ID, request_id);
    }

    /// What one client connection keeps of the upstream (see [`Kept`]).
    pub fn kept(&self) -> Kept {
        Kept::new(std::sync::Arc::clone(&self.upstreams.parked))
    }

    /// Forgets per-caller state that carries no information any more.
    pub fn housekeep(&self) {
        self.upstream_tokens.sweep();
        self.upstreams.parked.sweep();
        self.upstreams.lean_parked.sweep();
    }
}
