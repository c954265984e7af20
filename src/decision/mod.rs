//! The decision listener: keygate answering "may this request pass, and as
//! whom?" for the proxies teams already run — Envoy's `ext_authz` over gRPC
//! ([`grpc`]), and Traefik ForwardAuth, nginx `auth_request` and Envoy's
//! `http_service` over HTTP at `/authz` ([`http`]).
//!
//! A decision runs the proxy's own phases ([`Proxy::decide`]: route →
//! authenticate → limit → authorize) on the original request the asking
//! proxy describes, then answers instead of forwarding: the identity
//! keygate vouches for ([`Proxy::vouch`]: the `X-Keygate-*` fields or the
//! route's JWT), the fields to remove, and the rate-limit fields; or the
//! proxy's own refusal, status, challenge and body alike. No rule is
//! written here, so none can differ between the two modes.
//!
//! SECURITY: the asking proxy states the original request and the client
//! address, and is believed: that is why this is a listener of its own,
//! bound where only those proxies reach it (or behind client certificates).

pub mod grpc;
pub mod http;

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use ::http::{HeaderMap, HeaderName, Method, Request, Response, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;

use crate::config::ForwardAuth;
use crate::listener::ConnInfo;
use crate::proxy::record::{Done, Recorder};
use crate::proxy::{self, respond, Ctx, Denial, Edge, Head, Passed, Proxy};
use crate::telemetry::metrics::Metrics;

/// The decision listener's response body: an HTTP answer, or gRPC's.
pub type Body = Either<Full<Bytes>, tonic::body::Body>;

/// Judges requests other proxies ask about.
pub struct Decider {
    proxy: Arc<Proxy>,
    /// Metrics (`listener="decision"`) and the access log.
    record: Recorder,
    /// Largest original request head a decision takes (as the listeners'
    /// `max_head_bytes`).
    max_head_bytes: usize,
}

/// What a decision answers.
pub enum Verdict {
    /// Forward, with `identity` set (overwriting what the client sent),
    /// `remove` removed, and `response` added to the answer the client gets.
    Allow {
        identity: HeaderMap,
        remove: Vec<HeaderName>,
        response: HeaderMap,
    },
    /// Answer the client with this instead.
    Deny {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        /// For gRPC's `CheckResponse.status`.
        grpc_code: i32,
    },
}

impl Verdict {
    pub fn status(&self) -> StatusCode {
        match self {
            Verdict::Allow { .. } => StatusCode::OK,
            Verdict::Deny { status, .. } => *status,
        }
    }
}

/// The original request a decision is about, as the asking proxy stated it.
pub struct Original {
    pub method: Method,
    /// `None`: the stated target is no origin-form path (the proxy's 400).
    pub uri: Option<Uri>,
    pub headers: HeaderMap,
    /// The client the asking proxy serves.
    pub client: IpAddr,
}

impl Decider {
    pub fn new(
        proxy: Arc<Proxy>,
        metrics: Arc<Metrics>,
        config: &crate::config::Config,
        max_head_bytes: usize,
    ) -> Self {
        Self {
            proxy,
            record: Recorder::new(
                metrics,
                "decision",
                config.routes.iter().map(|r| r.name.as_str()),
                config.server.access_log,
            ),
            max_head_bytes,
        }
    }

    /// Judges `original`: the phases, then the exit (metrics and access
    /// log, as for a proxied request).
    pub async fn judge(&self, mut original: Original) -> Verdict {
        let started = self.record.start();
        let request_id = proxy::headers::request_id(&mut original.headers);
        let seen = self.record.logging().then(|| {
            let path = original.uri.as_ref().map_or("-", Uri::path);
            (original.method.clone(), path.to_owned())
        });
        let mut ctx = Ctx::new();
        let judged = match (self.admit(&original.headers), &original.uri) {
            (Err(denial), _) => Err(denial),
            (Ok(()), None) => Err(Denial::BadPath),
            // The original client's certificate is the asking proxy's
            // business: a `client_cert` route is never allowed here.
            (Ok(()), Some(uri)) => {
                let head = Head {
                    method: &original.method,
                    uri,
                    headers: &original.headers,
                };
                self.proxy
                    .decide(
                        Edge::Decision,
                        &head,
                        false,
                        None,
                        original.client,
                        &mut ctx,
                    )
                    .await
                    .and_then(|passed| self.vouch(&passed, &original.headers))
            }
        };
        let mut verdict = match judged {
            Ok(allow) => allow,
            Err(denial) => deny(denial).await,
        };
        let fields = match &mut verdict {
            Verdict::Allow { response, .. } => response,
            Verdict::Deny { headers, .. } => headers,
        };
        respond::limit_headers(fields, ctx.limit.as_ref(), ctx.quota.as_ref());
        if started.is_some() {
            self.record.finish(Done {
                trace: &ctx.trace,
                beside: false,
                status: verdict.status(),
                started,
                seen: seen.as_ref().map(|(m, p)| (m, p.as_str())),
                client: original.client,
                request_id: &request_id,
            });
        }
        verdict
    }

    /// Admission, as on the public listener, and the head's size.
    fn admit(&self, headers: &HeaderMap) -> Result<(), Denial<'static>> {
        proxy::admit(headers)?;
        let size: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        if size > self.max_head_bytes {
            return Err(Denial::HeadersTooLarge);
        }
        Ok(())
    }

    /// What an allowed request carries on: the identity, and what goes.
    fn vouch(&self, passed: &Passed<'_, '_>, sent: &HeaderMap) -> Result<Verdict, Denial<'static>> {
        let mut identity = HeaderMap::new();
        if let Some(p) = &passed.principal {
            self.proxy.vouch(passed.route, p, &mut identity)?;
        }
        // As on the proxy: the credential goes unless the route passes it
        // through; a JWT route's token then takes `Authorization`'s place.
        let credentials = passed.route.forward_auth != ForwardAuth::Passthrough;
        let mut remove = proxy::headers::to_remove(sent, credentials);
        if identity.contains_key(::http::header::AUTHORIZATION) {
            remove.retain(|n| n != ::http::header::AUTHORIZATION);
        }
        Ok(Verdict::Allow {
            identity,
            remove,
            response: HeaderMap::new(),
        })
    }
}

/// A refusal as the proxy renders it, taken apart for the asking proxy.
async fn deny(denial: Denial<'_>) -> Verdict {
    let grpc_code = denial.grpc_code();
    let (parts, body) = denial.into_response().into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    Verdict::Deny {
        status: parts.status,
        headers: parts.headers,
        body,
        grpc_code,
    }
}

/// One request on the decision listener: gRPC `Check`s to [`grpc`],
/// everything else to [`http`].
pub async fn serve(
    decider: &Arc<Decider>,
    grpc: &grpc::Server,
    req: Request<Incoming>,
    conn: &ConnInfo,
) -> Result<Response<Body>, Infallible> {
    if respond::is_grpc(req.headers()) {
        return Ok(grpc::serve(grpc, req, conn).await.map(Either::Right));
    }
    Ok(http::serve(decider, req, conn).await.map(Either::Left))
}
