//! WebSocket tunnels, on routes with `websocket = true`.
//!
//! The opening handshake (RFC 6455 §4: a GET with `Upgrade: websocket`) runs
//! the same phases as any request — route, authenticate, limit, authorize —
//! and is forwarded asking for `Upgrade: websocket` alone. When the
//! upstream answers `101 Switching Protocols`, both connections are handed
//! over from HTTP and joined byte for byte: keygate does not read frames.
//!
//! A tunnel lives until either side closes, it has been idle for
//! `server.websocket_idle_timeout`, it reaches
//! `server.websocket_max_lifetime`, or — checked every [`RECHECK`] — the
//! credential that opened it stops being good (key revoked, account
//! disabled or closed, token revoked or expired, scope taken away, cache
//! stale). Then both connections are closed.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::headers;
use super::Route;
use crate::authn::{Accept, Authenticator};

/// How often an open tunnel's credential is checked again.
pub(super) const RECHECK: Duration = Duration::from_secs(1);

const UPGRADE: HeaderValue = HeaderValue::from_static("upgrade");
/// What the upstream is asked for, whatever else the client listed: the
/// route admits WebSocket, not `h2c` or any other protocol a client names
/// beside it (RFC 9110 §7.8 lets `Upgrade` list several).
const WEBSOCKET: HeaderValue = HeaderValue::from_static("websocket");

/// Whether `req` opens a WebSocket (RFC 6455 §4.1): HTTP/1.1 GET,
/// `Upgrade: websocket`, `Connection: upgrade` (tokens, any case).
pub(super) fn requested(req: &Request<Incoming>) -> bool {
    req.method() == Method::GET
        && req.version() == Version::HTTP_11
        && has_token(req.headers(), header::UPGRADE, "websocket")
        && has_token(req.headers(), header::CONNECTION, "upgrade")
}

fn has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// An opening handshake on its way upstream.
pub(super) struct Opening {
    client: OnUpgrade,
    recheck: Option<Recheck>,
}

/// What an open tunnel checks again: the credential that opened it, and
/// what the route required of it.
struct Recheck {
    secret: Zeroizing<String>,
    audience: Option<String>,
    issuers: crate::authn::IssuerSet,
    required: Vec<String>,
}

impl Opening {
    /// Takes the client's side of the upgrade from `req`, and (unless the
    /// route is public) the credential it presented.
    pub(super) fn take(req: &mut Request<Incoming>, route: &Route) -> Self {
        let h = req.headers();
        let recheck = (!route.public)
            .then(|| headers::credential(h).ok())
            .flatten()
            .map(|secret| Recheck {
                secret: Zeroizing::new(secret.to_owned()),
                audience: route.audience.clone(),
                issuers: route.issuers,
                required: route
                    .required_scopes(Method::GET.as_str())
                    .map(<[String]>::to_vec)
                    .unwrap_or_default(),
            });
        Self {
            client: hyper::upgrade::on(req),
            recheck,
        }
    }

    /// Puts the upgrade back on the upstream request (header hygiene took
    /// the hop-by-hop fields off). SECURITY: exactly `websocket`, never the
    /// client's list: an upstream that prefers another protocol it names
    /// would switch to something no route admits.
    pub(super) fn ask_upstream(&self, h: &mut HeaderMap) {
        h.insert(header::CONNECTION, UPGRADE);
        h.insert(header::UPGRADE, WEBSOCKET);
    }

    /// The upstream switched protocols: answers the client with the
    /// upstream's 101 and joins the two connections in a task of their own.
    pub(super) fn open(self, mut res: Response<Incoming>, tunnel: Tunnel) -> Response<Incoming> {
        let upstream = hyper::upgrade::on(&mut res);
        let upgrade = res.headers().get(header::UPGRADE).cloned();
        headers::remove_hop_by_hop(res.headers_mut());
        res.headers_mut().insert(header::CONNECTION, UPGRADE);
        if let Some(v) = upgrade {
            res.headers_mut().insert(header::UPGRADE, v);
        }
        tokio::spawn(tunnel.run(self.client, upstream, self.recheck));
        res
    }
}

/// What a tunnel needs from the proxy.
pub(super) struct Tunnel {
    pub authn: Arc<Authenticator>,
    pub idle: Duration,
    pub lifetime: Duration,
    pub route: Arc<str>,
    pub open: metrics::Gauge,
}

/// Why a tunnel ended.
#[derive(Debug)]
enum End {
    Closed,
    Idle,
    Lifetime,
    CredentialRevoked,
    Error(std::io::Error),
}

impl Tunnel {
    async fn run(self, client: OnUpgrade, upstream: OnUpgrade, recheck: Option<Recheck>) {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(route = %self.route, error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        self.open.increment(1.0);
        let started = Instant::now();
        let last = Arc::new(AtomicU64::new(0));
        let mut client = Watched::new(TokioIo::new(client), started, &last);
        let mut upstream = Watched::new(TokioIo::new(upstream), started, &last);
        let end = tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match r {
                Ok(_) => End::Closed,
                Err(e) => End::Error(e),
            },
            end = self.watch(started, &last, recheck.as_ref()) => end,
        };
        self.open.decrement(1.0);
        // Dropping both ends closes both connections.
        match end {
            End::Closed => tracing::debug!(route = %self.route, "WebSocket closed"),
            End::Error(e) => tracing::debug!(route = %self.route, error = %e, "WebSocket ended"),
            other => {
                tracing::info!(route = %self.route, reason = ?other, "WebSocket closed by keygate")
            }
        }
    }

    /// Resolves when the tunnel must end: idle, too old, or its credential
    /// no longer good.
    async fn watch(&self, started: Instant, last: &AtomicU64, recheck: Option<&Recheck>) -> End {
        let deadline = started + self.lifetime;
        let mut tick = tokio::time::interval_at(started + RECHECK, RECHECK);
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return End::Lifetime,
                _ = tick.tick() => {}
            }
            let quiet = started
                .elapsed()
                .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
            if quiet >= self.idle {
                return End::Idle;
            }
            if let Some(r) = recheck {
                let accept = Accept::Route {
                    audience: r.audience.as_deref(),
                    issuers: r.issuers,
                };
                let still = self
                    .authn
                    .recheck(&r.secret, accept)
                    .is_ok_and(|p| p.scopes.covers(r.required.iter().map(String::as_str)));
                if !still {
                    return End::CredentialRevoked;
                }
            }
        }
    }
}

/// A connection that notes when it last read anything (ms since the tunnel
/// opened): traffic either way is read on one side first.
struct Watched<'a, T> {
    io: T,
    started: Instant,
    last: &'a AtomicU64,
}

impl<'a, T> Watched<'a, T> {
    fn new(io: T, started: Instant, last: &'a Arc<AtomicU64>) -> Self {
        Self { io, started, last }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last.store(ms, Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
