//! The phases of a proxied request, in the order they run. Each answers
//! `Result<_, Denial>`; [`super::Proxy::handle`] renders a refusal and
//! finishes every response in one place. The first ones — route,
//! authenticate, limit, authorize — are [`Proxy::decide`], which the
//! decision listener runs too: a request is judged by one piece of code,
//! whether keygate forwards it or only answers for it.
//!
//! The limit runs before authorization on purpose: a request refused for
//! scope still spends budget, and its 403 carries the rate-limit fields
//! like every other response on the route.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Limited};
use hyper::body::Incoming;

use super::kept::{self, Checkout, Kept};
use super::record::{AuthOutcome, Trace};
use super::respond::{Body, Denial};
use super::trailers::{self, Outbound};
use super::upstream::KeptUpstream;
use super::websocket::{self, Opening, Tunnel};
use super::{headers, upstream, Proxy, Route};
use crate::authn::{self, federation, Accept, Principal};
use crate::config::{ForwardAuth, UpstreamProtocol};
use crate::jwt::upstream::For;
use crate::listener::ConnInfo;
use crate::quota::{Charges, Outcome, QuotaDecision};
use crate::ratelimit::Decision;

/// Headers some frameworks read as "the real method": a GET authorized as a
/// GET must not be served as a DELETE.
static METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Admission, before anything else on the public listener: refuse requests
/// whose meaning depends on who reads them. RFC 9112 §3.2: several `Host`
/// fields are a 400; a method override would be authorized as one method
/// and served as another. (`Content-Length` beside `Transfer-Encoding`
/// never gets here: hyper reads the body as chunked, drops the length and
/// closes the connection after the answer, RFC 9112 §6.1.)
pub fn admit(h: &HeaderMap) -> Result<(), Denial<'static>> {
    if h.get_all(header::HOST).iter().nth(1).is_some() {
        return Err(Denial::DuplicateHost);
    }
    if METHOD_OVERRIDES.iter().any(|n| h.contains_key(*n)) {
        return Err(Denial::MethodOverride);
    }
    Ok(())
}

/// Where a request came from, as the rewrite vouches for it.
pub(super) struct Origin<'c> {
    pub(super) conn: &'c ConnInfo,
    pub(super) client: IpAddr,
    /// The id the response will carry.
    pub(super) request_id: &'c HeaderValue,
}

/// What the phases read of a request: a proxied request's own head, or the
/// original request a decision is asked about.
pub struct Head<'h> {
    pub method: &'h Method,
    pub uri: &'h Uri,
    pub headers: &'h HeaderMap,
}

/// What one request's phases learn, kept for its exit whatever the outcome
/// (the response's rate-limit fields, metrics, the access log).
pub struct Ctx<'a> {
    pub(crate) trace: Trace<'a>,
    pub(crate) limit: Option<Decision<'a>>,
    /// The quota decision, and seconds until its window turns.
    pub(crate) quota: Option<(QuotaDecision, Option<u64>)>,
}

impl Ctx<'_> {
    pub fn new() -> Self {
        Self {
            trace: Trace::new(),
            limit: None,
            quota: None,
        }
    }
}

impl Default for Ctx<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// Who asks for a request to be judged: the proxy, which forwards what
/// passes, or the decision listener, which only answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Proxy,
    Decision,
}

/// A request the phases let pass: its route, its normalised path, and who
/// is calling (`None` on a public route).
pub struct Passed<'a, 'h> {
    pub route: &'a Route,
    pub path: Cow<'h, str>,
    pub principal: Option<Arc<Principal>>,
}

impl Proxy {
    /// Route → client certificate → authenticate → limit → authorize. What
    /// `ctx` learns is kept for the exit whatever the outcome.
    /// `client_cert`: the connection showed a verified client certificate;
    /// `spiffe_id`: that certificate's SPIFFE id, if it has one.
    pub async fn decide<'a, 'h>(
        &'a self,
        edge: Edge,
        head: &Head<'h>,
        client_cert: bool,
        spiffe_id: Option<&str>,
        client: IpAddr,
        ctx: &mut Ctx<'a>,
    ) -> Result<Passed<'a, 'h>, Denial<'a>> {
        let (route, path) = self.route(edge, head)?;
        let trace = &mut ctx.trace;
        trace.route = Some(route);
        if route.client_cert && !client_cert {
            trace.auth = AuthOutcome::NoClientCert;
            return Err(Denial::ClientCertRequired);
        }
        let started = self.record.phase();
        let mut principal = self.authenticate(route, head.headers, client);
        if matches!(principal, Err(authn::Refusal::Invalid)) && !route.issuers.is_empty() {
            principal = self.after_refetch(route, head.headers).await;
        }
        // On a client-certificate route, a certificate bound to an account
        // (an `x509` federated identity) is a credential when no other is
        // presented.
        if let (Err(authn::Refusal::Missing), true, Some(id)) =
            (&principal, route.client_cert, spiffe_id)
        {
            principal = self.authn.certificate(id).map(Some);
        }
        self.record.auth_took(started);
        let principal = principal.map_err(|r| {
            trace.auth = AuthOutcome::of(r);
            Denial::Auth(r)
        })?;
        trace.auth = match &principal {
            Some(p) => {
                trace.account = Some(p.account_id);
                AuthOutcome::Ok
            }
            None => AuthOutcome::Public,
        };
        let Some(p) = principal.as_deref() else {
            ctx.limit = self
                .limits
                .admit(route.index, None, client, Charges::default(), 0)
                .await
                .limit;
            if let Some(d) = ctx.limit.filter(|d| !d.allowed) {
                ctx.trace.rate_limited = true;
                return Err(Denial::RateLimited(d.reset_secs));
            }
            return Ok(Passed {
                route,
                path,
                principal,
            });
        };
        // Whether the request may pass at all is known before it is
        // counted: only one that may spends quota (a refused one still
        // spends rate budget).
        let permitted = self.authorize(route, p, head.method, client);
        let now = self.authn.now_ms();
        let (charges, cost) = match permitted {
            Ok(()) => (self.authn.charges(p, now), route.cost),
            Err(_) => (Charges::default(), 0),
        };
        let account = Some((p.account_id, self.authn.account_limit(p)));
        let admission = self
            .limits
            .admit(route.index, account, client, charges, cost)
            .await;
        ctx.limit = admission.limit;
        ctx.quota = admission.quota.map(|q| (q, q.reset_secs(now)));
        let verdict = match (ctx.limit, permitted, admission.quota) {
            (Some(d), _, _) if !d.allowed => {
                ctx.trace.rate_limited = true;
                Err((Outcome::RateLimited, Denial::RateLimited(d.reset_secs)))
            }
            (_, Err(denial), _) => Err((
                match denial {
                    Denial::AddressNotAllowed => Outcome::AddressNotAllowed,
                    _ => Outcome::Forbidden,
                },
                denial,
            )),
            (_, Ok(()), Some(q)) if !q.allowed => {
                ctx.trace.quota_exhausted = true;
                Err((
                    Outcome::QuotaExhausted,
                    Denial::QuotaExhausted(q.reset_secs(now)),
                ))
            }
            _ => Ok(()),
        };
        let traffic = &self.limits.metering().traffic;
        match verdict {
            Ok(()) => {
                let spent = if charges.is_empty() { 0 } else { cost };
                traffic.count(p.account_id, now, route.index, Outcome::Admitted, spent);
            }
            Err((outcome, denial)) => {
                traffic.count(p.account_id, now, route.index, outcome, 0);
                return Err(denial);
            }
        }
        Ok(Passed {
            route,
            path,
            principal,
        })
    }

    /// Every phase, in order: [`Proxy::decide`], then rewrite and forward.
    pub(super) async fn run<'a>(
        &'a self,
        mut req: Request<Incoming>,
        conn: &ConnInfo,
        kept: Option<&Kept>,
        client: IpAddr,
        request_id: &HeaderValue,
        ctx: &mut Ctx<'a>,
    ) -> Result<Response<Body>, Denial<'a>> {
        let head = Head {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
        };
        let cert = conn.client_subject.is_some();
        let spiffe_id = conn.spiffe_id.as_ref().and_then(|v| v.to_str().ok());
        let Passed {
            route,
            path,
            principal,
        } = self
            .decide(Edge::Proxy, &head, cert, spiffe_id, client, ctx)
            .await?;
        // `decide` refuses decision-only routes on the proxy's edge.
        let target = route.upstream.as_ref().ok_or(Denial::NoRoute)?;
        let upgrade = route.websocket && websocket::requested(&req);
        // An HTTP/1 client's request goes on the upstream connection its
        // connection keeps; HTTP/2 streams and WebSocket handshakes use the
        // shared pool.
        let keep = kept
            .filter(|_| !upgrade && req.version() <= Version::HTTP_11)
            .and_then(|k| Some((k, self.upstreams.kept(route)?)));
        let uri = upstream::uri(route, target, &path, req.uri(), keep.is_some())
            .ok_or(Denial::BadPath)?;
        drop(path);
        let websocket = upgrade.then(|| Opening::take(&mut req, route));
        let mut upstream_req = self.rewrite(
            route,
            uri,
            principal.as_deref(),
            req,
            Origin {
                conn,
                client,
                request_id,
            },
        )?;
        if let Some(ws) = &websocket {
            ws.ask_upstream(upstream_req.headers_mut());
        }
        let mut res = match keep {
            Some((kept, (pool, up))) => {
                self.forward_kept(route, (kept, pool, up), conn, upstream_req)
                    .await?
            }
            None => self.forward(route, upstream_req).await?,
        };
        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            // Only a WebSocket handshake keygate forwarded may switch: any
            // other 101 would leave the client on a connection no one serves.
            let Some(ws) = websocket else {
                tracing::warn!(route = %route.name, "upstream switched protocols unasked");
                return Err(Denial::BadGateway);
            };
            return Ok(ws.open(res, self.tunnel(route)).map(Either::Left));
        }
        // RFC 9112 §6.3: a response framed by `Transfer-Encoding` had its
        // `Content-Length` ignored by hyper's client; passed on, it would
        // frame the body again, differently (the client would read a
        // shorter body and the rest as the next response).
        if res.headers().contains_key(header::TRANSFER_ENCODING) {
            res.headers_mut().remove(header::CONTENT_LENGTH);
        }
        headers::remove_hop_by_hop(res.headers_mut());
        Ok(res.map(Either::Left))
    }

    /// What a WebSocket tunnel on `route` needs.
    fn tunnel(&self, route: &Route) -> Tunnel {
        Tunnel {
            authn: Arc::clone(&self.authn),
            idle: self.websocket_idle,
            lifetime: self.websocket_lifetime,
            route: route.name.as_str().into(),
            open: self.record.websocket_tunnels.clone(),
        }
    }

    /// Route: normalise the path, find the route, refuse what cannot be
    /// admitted (bad paths, bodies declared too large). The proxy has no
    /// route where a route has no upstream (decision-only).
    fn route<'h>(&self, edge: Edge, head: &Head<'h>) -> Result<(&Route, Cow<'h, str>), Denial<'_>> {
        let (path, route) = self.routes.resolve(head.uri.path()).map_err(|e| {
            tracing::debug!(error = %e, "refused path");
            Denial::BadPath
        })?;
        let route = route
            .filter(|r| edge == Edge::Decision || r.upstream.is_some())
            .ok_or(Denial::NoRoute)?;
        let declared = head
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes) {
            return Err(Denial::TooLarge);
        }
        Ok((route, path))
    }

    /// Authenticate: the credential in the headers, by the authenticator.
    fn authenticate(
        &self,
        route: &Route,
        h: &HeaderMap,
        client: IpAddr,
    ) -> Result<Option<Arc<Principal>>, authn::Refusal> {
        if route.public {
            return Ok(None);
        }
        let presented = headers::credential(h);
        let accept = Accept::Route {
            audience: route.audience.as_deref(),
            issuers: route.issuers,
        };
        self.authn.bearer(client, presented, accept).map(Some)
    }

    /// A route that accepts other issuers refused a JWT: if it names a key
    /// its issuer's set lacks (the issuer rotated), refetch that set — at
    /// most once per issuer per 30 s — and judge the request again.
    async fn after_refetch(
        &self,
        route: &Route,
        h: &HeaderMap,
    ) -> Result<Option<Arc<Principal>>, authn::Refusal> {
        let Ok(token) = headers::credential(h) else {
            return Err(authn::Refusal::Invalid);
        };
        let federation = self.authn.federation();
        let now = self.authn.now_ms();
        let known = match federation.verify(token, route.issuers, now) {
            Err(federation::Error::UnknownKey(_)) => {
                federation.refetch_for(token, route.issuers, now).await
            }
            // A refetch under way for another request brought the key.
            Ok(_) => true,
            Err(_) => false,
        };
        known
            .then(|| self.authn.external_after_refetch(token, route.issuers))
            .flatten()
            .map(Some)
            .ok_or(authn::Refusal::Invalid)
    }

    /// Authorize: the client's address is one the credential may be used
    /// from, and it holds every scope the route requires for this method.
    fn authorize<'r>(
        &self,
        route: &'r Route,
        p: &Principal,
        method: &Method,
        client: IpAddr,
    ) -> Result<(), Denial<'r>> {
        if !p.allows_address(client) {
            return Err(Denial::AddressNotAllowed);
        }
        match route.required_scopes(method.as_str()) {
            None => Err(Denial::MethodNotPermitted),
            Some(required) if !p.scopes.covers(required.iter().map(String::as_str)) => {
                Err(Denial::InsufficientScope(required))
            }
            Some(_) => Ok(()),
        }
    }

    /// Rewrite: header hygiene, the identity keygate vouches for, and the
    /// upstream URI; the body is limited to `max_body_bytes` as it streams.
    fn rewrite(
        &self,
        route: &Route,
        uri: Uri,
        principal: Option<&Principal>,
        req: Request<Incoming>,
        from: Origin<'_>,
    ) -> Result<Request<Outbound>, Denial<'static>> {
        let (mut parts, body) = req.into_parts();
        parts.uri = uri;
        // The upstream's protocol, whatever the client spoke.
        parts.version = match route.upstream_protocol {
            UpstreamProtocol::Http1 => Version::HTTP_11,
            UpstreamProtocol::H2c | UpstreamProtocol::H2 => Version::HTTP_2,
        };
        self.rewrite_head(route, principal, &mut parts.headers, from)?;
        let limit = usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX);
        let body = trailers::scrubbed(Limited::new(body, limit));
        Ok(Request::from_parts(parts, body))
    }

    /// The header half of [`Proxy::rewrite`], which every forwarding path
    /// shares: hygiene, then what keygate vouches for.
    pub(super) fn rewrite_head(
        &self,
        route: &Route,
        principal: Option<&Principal>,
        h: &mut HeaderMap,
        from: Origin<'_>,
    ) -> Result<(), Denial<'static>> {
        headers::remove_hop_by_hop(h);
        headers::remove_spoofed(h);
        if route.forward_auth != ForwardAuth::Passthrough {
            headers::remove_credentials(h);
        }
        trailers::announce(h);
        headers::join_cookies(h);
        // SECURITY: what keygate sets goes on after every removal above, so
        // no `Connection` token can take it off.
        h.insert(&headers::X_REQUEST_ID, from.request_id.clone());
        headers::set_forwarded(h, from.conn, from.client);
        if route.client_cert {
            if let Some(subject) = &from.conn.client_subject {
                h.insert(&headers::X_KEYGATE_CLIENT_SUBJECT, subject.clone());
            }
        }
        // Whenever the connection's certificate was verified: an upstream
        // may want the workload's SPIFFE id on any route.
        if let Some(id) = &from.conn.spiffe_id {
            h.insert(&headers::X_KEYGATE_SPIFFE_ID, id.clone());
        }
        if let Some(p) = principal {
            self.vouch(route, p, h)?;
        }
        Ok(())
    }

    /// The identity keygate vouches for, into `h`: the `X-Keygate-*`
    /// fields, and for `forward_auth = "jwt"` the upstream's token. What a
    /// proxied request carries upstream, and what a decision answers.
    pub fn vouch(
        &self,
        route: &Route,
        p: &Principal,
        h: &mut HeaderMap,
    ) -> Result<(), Denial<'static>> {
        headers::set_identity(h, p);
        if route.forward_auth == ForwardAuth::Jwt {
            h.insert(header::AUTHORIZATION, self.upstream_token(route, p)?);
        }
        Ok(())
    }

    /// The JWT the upstream receives for `p` on `route` (`forward_auth = "jwt"`).
    fn upstream_token(&self, route: &Route, p: &Principal) -> Result<HeaderValue, Denial<'static>> {
        let f = For {
            credential_id: p.credential_id,
            account_id: p.account_id,
            organization_id: p.organization_id,
            project_id: p.project_id,
            role: p.role,
            scopes: &p.scopes,
            expires_at: p.expires_at,
            route: route.index,
            // Config validation requires an audience for jwt forwarding.
            audience: route.audience.as_deref().unwrap_or_default(),
            route_scopes: route.scope_names(),
            allowed_cidrs: p.allowed_cidrs.as_deref(),
        };
        self.upstream_tokens
            .get(&f, |jwt| HeaderValue::from_str(&format!("Bearer {jwt}")).ok())
            .map_err(|e| {
                tracing::error!(error = %e, route = %route.name, "cannot mint a token for the upstream");
                Denial::BadGateway
            })
    }

    /// Forward on the client connection's kept upstream connection (see
    /// [`super::kept`]), within `request_timeout`. A request the kept
    /// connection could not take (busy, or found closed before anything
    /// was written) goes through the shared pool instead.
    async fn forward_kept(
        &self,
        route: &Route,
        (kept, pool, up): (&Kept, usize, &KeptUpstream),
        conn: &ConnInfo,
        mut req: Request<Outbound>,
    ) -> Result<Response<Incoming>, Denial<'static>> {
        /// What handing the request to the kept connection came to.
        enum Sent {
            Answered(Result<Response<Incoming>, BoxError>),
            /// Nothing was written: the request is back.
            NotTaken(Request<Outbound>),
        }
        // The client's `Host` went to `X-Forwarded-Host` in rewrite; the
        // upstream is named here, as the pooled client names it.
        req.headers_mut().insert(header::HOST, up.host.clone());
        let started = self.record.phase();
        let sent = tokio::time::timeout(self.request_timeout, async {
            let mut sender = match kept.checkout(pool, &conn.side) {
                Checkout::Ready(s) => s,
                Checkout::Busy => return Sent::NotTaken(req),
                Checkout::Connect => match self.connect(up).await {
                    Ok((s, c)) => {
                        kept.install(pool, c, &conn.side);
                        s
                    }
                    Err(e) => return Sent::Answered(Err(e)),
                },
            };
            let sending = sender.try_send_request(req);
            kept.give_back(pool, sender);
            match sending.await {
                Ok(res) => Sent::Answered(Ok(res)),
                Err(mut e) => match e.take_message() {
                    Some(req) => Sent::NotTaken(req),
                    None => Sent::Answered(Err(e.into_error().into())),
                },
            }
        })
        .await;
        let answered = match sent {
            Ok(Sent::NotTaken(mut req)) => {
                let target = route.upstream.as_ref().ok_or(Denial::NoRoute)?;
                let pq = req.uri().path_and_query().cloned();
                *req.uri_mut() = pq
                    .and_then(|pq| upstream::absolute(target, pq))
                    .ok_or(Denial::BadPath)?;
                return self.forward(route, req).await;
            }
            Ok(Sent::Answered(answered)) => Some(answered),
            Err(_) => None,
        };
        self.record.upstream_took(route, started);
        answer(route, answered)
    }

    /// A new connection to a kept upstream (TCP, then TLS for `https`).
    async fn connect(
        &self,
        up: &KeptUpstream,
    ) -> Result<(kept::Sender, kept::Connection), BoxError> {
        use tower::Service as _;
        let mut connector = self.upstreams.connector(up);
        let io = connector.call(up.connect_to.clone()).await?;
        Ok(hyper::client::conn::http1::handshake(io).await?)
    }

    /// Forward: send upstream within `request_timeout`; the answer's body
    /// streams back.
    async fn forward(
        &self,
        route: &Route,
        req: Request<Outbound>,
    ) -> Result<Response<Incoming>, Denial<'static>> {
        let client = self.upstreams.client(route);
        let started = self.record.phase();
        let answered = tokio::time::timeout(self.request_timeout, client.request(req))
            .await
            .ok()
            .map(|r| r.map_err(BoxError::from));
        self.record.upstream_took(route, started);
        answer(route, answered)
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the upstream's answer is to the client, whichever path sent the
/// request: `None` (no answer within `request_timeout`) 504, a request body
/// past `max_body_bytes` 413, any other failure 502.
fn answer(
    route: &Route,
    answered: Option<Result<Response<Incoming>, BoxError>>,
) -> Result<Response<Incoming>, Denial<'static>> {
    match answered {
        None => {
            tracing::warn!(route = %route.name, "upstream timed out");
            Err(Denial::GatewayTimeout)
        }
        Some(Err(e)) if upstream::is_body_limit(&*e) => Err(Denial::TooLarge),
        Some(Err(e)) => {
            tracing::warn!(route = %route.name, error = %e, "upstream unreachable");
            Err(Denial::BadGateway)
        }
        Some(Ok(res)) => Ok(res),
    }
}
