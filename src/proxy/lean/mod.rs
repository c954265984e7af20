//! The lean HTTP/1.1 path: the common proxied request served without
//! hyper, as Pingora and HAProxy serve it. On the public listener (with
//! `server.http1_engine = "lean"`, the default) each HTTP/1.1 connection,
//! plain or over TLS when ALPN did not choose `h2`, is read here first:
//! the request head is parsed once ([`head`]), judged by the same phases as every request
//! ([`Proxy::decide`], [`Proxy::rewrite_head`]), written to the upstream
//! connection this client connection keeps as one buffer with whatever
//! of the body came with it, and the upstream's answer read back and
//! written to the client the same way ([`wire`]), its body copied with
//! the framing keygate writes ([`chunked`] re-frames chunked and
//! close-delimited bodies). No task hand-off, no pool, no body channel.
//!
//! The path takes only what it reads one way: HTTP/1.1, origin-form, no
//! body or a `Content-Length` one, no `Transfer-Encoding`, `Expect` or
//! `Upgrade`, not gRPC, to a route whose upstream is plain HTTP/1.1 (or to
//! no upstream at all: refusals are answered here). At the first request
//! it does not take — or cannot read — it hands the connection, with the
//! bytes it has read, to hyper ([`crate::listener::Http1`]), which serves
//! it from there on exactly as the hyper path does: chunked request
//! bodies, smuggling attempts, WebSocket, HTTP/2 with prior knowledge,
//! the OAuth endpoints.

mod answer;
mod chunked;
mod deadline;
#[cfg(test)]
mod fuzz;
mod head;
mod wire;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::kept::Idle;
use super::phases::{self, Ctx, Edge, Head, Origin, Passed};
use super::record::Done;
use super::respond::Denial;
use super::respond::{RATELIMIT, RATELIMIT_POLICY};
use super::upstream::{self, KeptUpstream};
use super::{headers, BesideWhole, Proxy};
use crate::listener::{ClientStream, ConnInfo, Handed, Http1};
use crate::telemetry::metrics::{Metrics, LEAN_HANDOFFS, LEAN_REQUESTS};
use answer::{Answer, Framing};
use deadline::Deadline;
use http_body_util::Either;

/// Read at a time from either side.
const READ: usize = 16 * 1024;

/// The lean path for one public listener.
pub struct Lean {
    proxy: Arc<Proxy>,
    /// Paths served beside the routes (the OAuth endpoints): hyper's,
    /// but for the requests `whole` takes.
    elsewhere: Box<dyn Fn(&str) -> bool + Send + Sync>,
    whole: Option<Arc<dyn BesideWhole>>,
    header_read_timeout: Duration,
    max_head_bytes: usize,
    requests: metrics::Counter,
    handoffs: metrics::Counter,
}

impl Lean {
    pub fn new(
        proxy: Arc<Proxy>,
        elsewhere: impl Fn(&str) -> bool + Send + Sync + 'static,
        whole: Option<Arc<dyn BesideWhole>>,
        header_read_timeout: Duration,
        max_head_bytes: usize,
        metrics: &Metrics,
    ) -> Self {
        Self {
            proxy,
            elsewhere: Box::new(elsewhere),
            whole,
            header_read_timeout,
            max_head_bytes,
            requests: metrics.counter(LEAN_REQUESTS, &[]),
            handoffs: metrics.counter(LEAN_HANDOFFS, &[]),
        }
    }

    /// Whether (and how) this path serves the request `parsed` heads: a
    /// request for a service beside the routes when that service takes it
    /// whole (with a body no larger than it reads), else one whose route,
    /// if any, forwards to a plain HTTP/1.1 upstream whose connections
    /// client connections keep.
    fn takes(&self, parsed: &head::Lean, buf: &[u8]) -> Option<Take> {
        let path = parsed.path(buf);
        if (self.elsewhere)(path) {
            let limit = self.whole.as_ref()?.takes(parsed.method(buf), path)?;
            return (parsed.body <= limit).then_some(Take::Beside);
        }
        // The common configuration: no route to look up twice per request
        // (the phases resolve it again).
        if self.proxy.upstreams.all_plain {
            return Some(Take::Route);
        }
        match self.proxy.routes.resolve(path) {
            Ok((_, Some(route))) if route.upstream.is_some() => self
                .proxy
                .upstreams
                .kept(route)
                .filter(|(_, k)| k.plain.is_some())
                .map(|_| Take::Route),
            // No route, a path refused, a decision-only route: refusals,
            // answered here.
            _ => Some(Take::Route),
        }
    }
}

impl Http1 for Lean {
    fn serve(
        &self,
        stream: ClientStream,
        info: Arc<ConnInfo>,
        shutdown: watch::Receiver<bool>,
    ) -> Handed<'_> {
        Box::pin(
            Conn {
                lean: self,
                client: stream,
                info,
                buf: BytesMut::with_capacity(READ),
                up: None,
                out: Vec::with_capacity(READ),
                unread: 0,
                fields: Vec::new(),
                headers: HeaderMap::new(),
                ours: HeaderMap::new(),
                spans: Vec::new(),
                head_deadline: Deadline::new(self.header_read_timeout),
                answer_deadline: Some(Deadline::new(self.proxy.request_timeout)),
            }
            .run(shutdown),
        )
    }
}

/// Who answers a request this path takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Take {
    /// The phases, and the route's upstream.
    Route,
    /// The service beside the routes that takes whole requests.
    Beside,
}

/// The upstream connection a client connection keeps on this path.
pub(in crate::proxy) struct Upstream {
    /// Which kept upstream it goes to.
    pool: usize,
    stream: TcpStream,
    /// Read from it and not yet used.
    buf: BytesMut,
}

impl Idle for Upstream {
    /// Open, and with nothing unasked-for to read.
    fn usable(&mut self) -> bool {
        let mut probe = [0u8; 1];
        self.buf.is_empty()
            && matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// One client connection on this path.
struct Conn<'l> {
    lean: &'l Lean,
    client: ClientStream,
    info: Arc<ConnInfo>,
    /// Read from the client and not yet used.
    buf: BytesMut,
    up: Option<Upstream>,
    /// What is being written, to either side.
    out: Vec<u8>,
    /// Bytes of the current request's body not yet read from the client.
    unread: u64,
    /// Emptied and kept between requests, so a request allocates none of
    /// them: the request head's field list and map, keygate's fields on
    /// the answer, the answer head's field list.
    fields: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    headers: HeaderMap,
    ours: HeaderMap,
    spans: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// For the next request head (`header_read_timeout`).
    head_deadline: Deadline,
    /// For the upstream's answer head (`request_timeout`); out while it
    /// runs.
    answer_deadline: Option<Deadline>,
}

/// What waiting for a request head came to.
enum Next {
    Head(head::Lean),
    /// Not this path's: hyper's, with what was read.
    Hyper,
    /// The client left, went quiet past the head timeout, or the listener
    /// is draining.
    Done,
}

/// The upstream connection failed, with nothing received yet: another
/// connection may be tried.
struct Failed {
    error: io::Error,
    retry: bool,
}

impl Conn<'_> {
    async fn run(
        mut self,
        mut shutdown: watch::Receiver<bool>,
    ) -> Option<(ClientStream, BytesMut)> {
        loop {
            let parsed = match self.next_head(&mut shutdown).await {
                Next::Head(parsed) => parsed,
                Next::Hyper => return self.hand_off(),
                Next::Done => return self.end().await,
            };
            let Some(take) = self.lean.takes(&parsed, &self.buf) else {
                return self.hand_off();
            };
            let head = self.buf.split_to(parsed.len).freeze();
            let Some(req) = parsed.build(&head, std::mem::take(&mut self.headers)) else {
                // Read, but not as `http` takes it: hyper answers.
                let mut whole = BytesMut::from(&head[..]);
                whole.extend_from_slice(&self.buf);
                self.buf = whole;
                return self.hand_off();
            };
            let keep = self.exchange(req, &parsed, take).await;
            self.fields = parsed.into_fields();
            if !keep || *shutdown.borrow() {
                return self.end().await;
            }
        }
    }

    /// Keeps a request's emptied field map for the next request.
    fn recycle(&mut self, mut headers: HeaderMap) {
        headers.clear();
        self.headers = headers;
    }

    /// Hands the connection to hyper, with what was read of it.
    fn hand_off(mut self) -> Option<(ClientStream, BytesMut)> {
        self.lean.handoffs.increment(1);
        self.park();
        Some((self.client, self.buf))
    }

    /// Ends the connection. Over TLS the client is told so first
    /// (`close_notify`, as hyper's server does), within a second: a client
    /// that reads nothing more costs no longer than that.
    async fn end(mut self) -> Option<(ClientStream, BytesMut)> {
        self.park();
        if matches!(self.client, ClientStream::Tls(_)) {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.client.shutdown()).await;
        }
        None
    }

    /// Leaves an idle upstream connection for the next client connection.
    fn park(&mut self) {
        if let Some(up) = self.up.take() {
            let _ = self.lean.proxy.upstreams.lean_parked.park(up.pool, up);
        }
    }

    /// Reads until the buffer starts with a whole head, within the head
    /// timeout (which counts from the end of the previous answer, as
    /// hyper's does).
    async fn next_head(&mut self, shutdown: &mut watch::Receiver<bool>) -> Next {
        self.head_deadline.restart();
        // How much of `buf` is known to hold no head's end.
        let mut scanned = 0;
        loop {
            // SECURITY: a head trickled in a byte at a time is parsed once
            // it can be whole, not once per byte (that is quadratic in the
            // head's size, up to `max_head_bytes`).
            let whole = head::may_end(&self.buf, scanned);
            scanned = self.buf.len();
            if whole {
                match head::parse(&self.buf, &mut self.fields) {
                    head::Parse::Lean(parsed) => return Next::Head(parsed),
                    head::Parse::Elsewhere => return Next::Hyper,
                    head::Parse::Partial => {}
                }
            }
            // hyper answers 431.
            if self.buf.len() >= self.lean.max_head_bytes {
                return Next::Hyper;
            }
            self.buf.reserve(READ);
            let idle = self.buf.is_empty();
            tokio::select! {
                biased;
                read = self.client.read_buf(&mut self.buf) => match read {
                    Ok(0) | Err(_) => return Next::Done,
                    Ok(_) => {}
                },
                () = self.head_deadline.passed() => return Next::Done,
                _ = shutdown.changed(), if idle => return Next::Done,
            }
        }
    }

    /// One request, from its head to the end of its answer. Whether the
    /// connection carries another.
    async fn exchange(&mut self, req: head::Request, parsed: &head::Lean, take: Take) -> bool {
        let lean = self.lean;
        lean.requests.increment(1);
        let proxy = &*lean.proxy;
        let head::Request {
            method,
            uri,
            mut headers,
        } = req;
        self.unread = parsed.body;
        let started = proxy.record.start();
        let request_id = headers::request_id(&mut headers);
        let client = self.info.client(&headers);
        let seen = proxy
            .record
            .logging()
            .then(|| (method.clone(), uri.path().to_owned()));
        let mut ctx = Ctx::new();
        let answer = match phases::admit(&headers) {
            Err(refusal) => Err(refusal),
            Ok(()) if take == Take::Beside => {
                let res = self.beside(client, &headers).await;
                self.recycle(headers);
                let Some(res) = res else {
                    return false;
                };
                let mut res = res.map(|b| Either::Right(Either::Right(b)));
                let status = res.status();
                proxy.seal(
                    res.headers_mut(),
                    &ctx,
                    Done {
                        trace: &ctx.trace,
                        beside: true,
                        status,
                        started,
                        seen: seen.as_ref().map(|(m, p)| (m, p.as_str())),
                        client,
                        request_id: &request_id,
                    },
                );
                return self.own(res, parsed.close, method == Method::HEAD).await;
            }
            Ok(()) => {
                let head = Head {
                    method: &method,
                    uri: &uri,
                    headers: &headers,
                };
                let cert = self.info.client_subject.is_some();
                let spiffe_id = self.info.spiffe_id.as_ref().and_then(|v| v.to_str().ok());
                match proxy
                    .decide(Edge::Proxy, &head, cert, spiffe_id, client, &mut ctx)
                    .await
                {
                    Err(refusal) => Err(refusal),
                    Ok(Passed {
                        route,
                        path,
                        principal,
                    }) => {
                        // `decide` refuses decision-only routes on the proxy's edge.
                        let to = match route.upstream.as_ref() {
                            None => Err(Denial::NoRoute),
                            Some(target) => upstream::uri(route, target, &path, &uri, true)
                                .ok_or(Denial::BadPath),
                        };
                        drop(path);
                        let info = Arc::clone(&self.info);
                        let from = Origin {
                            conn: &info,
                            client,
                            request_id: &request_id,
                        };
                        match to {
                            Err(refusal) => Err(refusal),
                            Ok(to) => {
                                self.forward(
                                    route,
                                    principal.as_deref(),
                                    &method,
                                    &to,
                                    &mut headers,
                                    from,
                                )
                                .await
                            }
                        }
                    }
                }
            }
        };
        let done = |status| Done {
            trace: &ctx.trace,
            beside: false,
            status,
            started,
            seen: seen.as_ref().map(|(m, p)| (m, p.as_str())),
            client,
            request_id: &request_id,
        };
        let head_only = method == Method::HEAD;
        match answer {
            Ok(answer) => {
                // keygate's fields, which replace the upstream's of the
                // same names; the quota's extend the upstream's
                // `RateLimit` entries, as they do on the hyper path.
                let mut ours = std::mem::take(&mut self.ours);
                ours.clear();
                if ctx.quota.is_some() {
                    for name in [&RATELIMIT, &RATELIMIT_POLICY] {
                        for v in answer.values(name.as_str()) {
                            if let Ok(v) = HeaderValue::from_bytes(v) {
                                ours.append(name, v);
                            }
                        }
                    }
                }
                proxy.seal(&mut ours, &ctx, done(answer.status));
                self.recycle(headers);
                let keep = self.answer(answer, &ours, parsed, head_only).await;
                self.ours = ours;
                keep
            }
            Err(refusal) => {
                let mut res = refusal.into_response();
                let status = res.status();
                proxy.seal(res.headers_mut(), &ctx, done(status));
                self.recycle(headers);
                self.own(res, parsed.close, head_only).await
            }
        }
    }

    /// Rewrite and forward to `to`; the upstream's answer, its head read.
    async fn forward<'a>(
        &mut self,
        route: &'a super::Route,
        principal: Option<&crate::authn::Principal>,
        method: &Method,
        to: &http::Uri,
        headers: &mut HeaderMap,
        from: Origin<'_>,
    ) -> Result<Answer, Denial<'a>> {
        let proxy = &*self.lean.proxy;
        // `serves` took only requests whose route has such an upstream.
        let (pool, up) = proxy
            .upstreams
            .kept(route)
            .filter(|(_, k)| k.plain.is_some())
            .ok_or(Denial::BadGateway)?;
        proxy.rewrite_head(route, principal, headers, from)?;
        headers.insert(header::HOST, up.host.clone());
        self.out.clear();
        wire::request_head(&mut self.out, method, to, headers);
        let started = proxy.record.phase();
        let head_only = method == Method::HEAD;
        let answered = self.send_within(pool, up, head_only).await;
        proxy.record.upstream_took(route, started);
        match answered {
            Ok(Ok(answer)) if answer.status == StatusCode::SWITCHING_PROTOCOLS => {
                tracing::warn!(route = %route.name, "upstream switched protocols unasked");
                self.up = None;
                Err(Denial::BadGateway)
            }
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                tracing::warn!(route = %route.name, error = %e, "upstream unreachable");
                self.up = None;
                Err(Denial::BadGateway)
            }
            Err(_) => {
                tracing::warn!(route = %route.name, "upstream timed out");
                self.up = None;
                Err(Denial::GatewayTimeout)
            }
        }
    }

    /// [`Conn::send`] within `request_timeout`; `Err` when it ran out.
    async fn send_within(
        &mut self,
        pool: usize,
        up: &KeptUpstream,
        head_only: bool,
    ) -> Result<io::Result<Answer>, ()> {
        let mut deadline = self
            .answer_deadline
            .take()
            .unwrap_or_else(|| Deadline::new(self.lean.proxy.request_timeout));
        deadline.restart();
        let sent = tokio::select! {
            biased;
            sent = self.send(pool, up, head_only) => Ok(sent),
            () = deadline.passed() => Err(()),
        };
        self.answer_deadline = Some(deadline);
        sent
    }

    /// Sends the request (its head in `out`) on the kept connection to
    /// `pool` — a parked or new one if there is none — and reads the
    /// answer's head. A connection that had served before and fails with
    /// nothing received is replaced once, when the whole request is still
    /// at hand (all its body came with the head).
    async fn send(
        &mut self,
        pool: usize,
        up: &KeptUpstream,
        head_only: bool,
    ) -> io::Result<Answer> {
        // The body's bytes already read go with the head, in one write.
        let with_head = self
            .buf
            .len()
            .min(usize::try_from(self.unread).unwrap_or(usize::MAX));
        self.out.extend_from_slice(&self.buf[..with_head]);
        self.buf.advance(with_head);
        self.unread -= with_head as u64;
        // Only a request whole in `out` can be sent again: the rest of a
        // body is gone from `buf` once written, and a retry would send the
        // head with part of its body.
        let whole = self.unread == 0;
        let parked = &self.lean.proxy.upstreams.lean_parked;
        let mut conn = match self.up.take() {
            Some(mut c) if c.pool == pool => c.usable().then_some(c),
            // Kept for another upstream: left for a client going there.
            Some(other) => parked.park(other.pool, other).err().and(None),
            None => None,
        }
        .or_else(|| parked.take(pool));
        loop {
            let reused = conn.is_some();
            let mut c = match conn.take() {
                Some(c) => c,
                None => connect(pool, up).await?,
            };
            match self.exchange_with(&mut c, head_only).await {
                Ok(answer) => {
                    self.up = Some(c);
                    return Ok(answer);
                }
                Err(f) if f.retry && reused && whole => {}
                Err(f) => return Err(f.error),
            }
        }
    }

    /// Writes `out` and the rest of the body to `c`, and reads the
    /// answer's head.
    async fn exchange_with(&mut self, c: &mut Upstream, head_only: bool) -> Result<Answer, Failed> {
        if self.unread == 0 {
            let fresh = |error| Failed { error, retry: true };
            c.stream.write_all(&self.out).await.map_err(fresh)?;
        } else if let Some(early) = self.send_body(c, head_only).await? {
            return Ok(early);
        }
        self.answer_head(c, head_only).await
    }

    /// Writes `out` and the rest of the body to `c`, watching the upstream
    /// meanwhile. An upstream may answer before it has read the whole body
    /// (a 413, a refusal of its own) and then stop reading, or close: its
    /// answer, once its head is whole, is the request's (`Some`), the rest
    /// of the body is not sent, and neither connection is used again.
    /// Waiting for the body to go first would end in a timeout (an
    /// upstream that stopped reading) or a failed write (one that closed).
    async fn send_body(
        &mut self,
        c: &mut Upstream,
        head_only: bool,
    ) -> Result<Option<Answer>, Failed> {
        let failed = |error| Failed {
            error,
            retry: false,
        };
        let mut written = 0;
        loop {
            let spoke = {
                let (mut from_up, mut to_up) = c.stream.split();
                loop {
                    c.buf.reserve(READ);
                    // One `write` per turn, not `write_all`: a write the
                    // upstream's answer interrupts has written nothing, so
                    // nothing is sent twice.
                    let next: &[u8] = if written < self.out.len() {
                        &self.out[written..]
                    } else if self.unread == 0 {
                        return Ok(None);
                    } else if self.buf.is_empty() {
                        self.buf.reserve(READ);
                        tokio::select! {
                            biased;
                            read = from_up.read_buf(&mut c.buf) => break read,
                            read = self.client.read_buf(&mut self.buf) => match read {
                                Ok(0) => return Err(failed(io::ErrorKind::UnexpectedEof.into())),
                                Ok(_) => continue,
                                Err(e) => return Err(failed(e)),
                            },
                        }
                    } else {
                        let n = self
                            .buf
                            .len()
                            .min(usize::try_from(self.unread).unwrap_or(usize::MAX));
                        &self.buf[..n]
                    };
                    let from_out = written < self.out.len();
                    let sent = tokio::select! {
                        biased;
                        read = from_up.read_buf(&mut c.buf) => break read,
                        sent = to_up.write(next) => sent,
                    };
                    match sent {
                        Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) if from_out => written += n,
                        Ok(n) => {
                            self.buf.advance(n);
                            self.unread -= n as u64;
                        }
                        // Closed on us: what it answered first still counts.
                        Err(e) => break Err(e),
                    }
                }
            };
            // The upstream spoke, closed or failed before the request was
            // whole: its answer, if its head is whole (or arrives before the
            // connection's end).
            let mut ended = match spoke {
                Ok(0) => Some(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => None,
                Err(e) => Some(e),
            };
            loop {
                if let Some(mut early) =
                    answer::read(&mut c.buf, head_only, &mut self.spans).map_err(failed)?
                {
                    early.reuse = false;
                    return Ok(Some(early));
                }
                let Some(e) = ended.take() else {
                    // Not a whole head yet (or an interim answer): sending
                    // goes on.
                    break;
                };
                c.buf.reserve(READ);
                match c.stream.read_buf(&mut c.buf).await {
                    Ok(1..) => ended = Some(e),
                    Ok(0) | Err(_) => return Err(failed(e)),
                }
            }
        }
    }

    /// Reads the answer's head from `c`.
    async fn answer_head(&mut self, c: &mut Upstream, head_only: bool) -> Result<Answer, Failed> {
        loop {
            if let Some(answer) =
                answer::read(&mut c.buf, head_only, &mut self.spans).map_err(|error| Failed {
                    error,
                    retry: false,
                })?
            {
                return Ok(answer);
            }
            c.buf.reserve(READ);
            let received = !c.buf.is_empty();
            match c.stream.read_buf(&mut c.buf).await {
                Ok(0) => {
                    return Err(Failed {
                        error: io::ErrorKind::UnexpectedEof.into(),
                        retry: !received,
                    })
                }
                Ok(_) => {}
                Err(error) => {
                    return Err(Failed {
                        error,
                        retry: !received,
                    })
                }
            }
        }
    }

    /// Writes the upstream's answer to the client: its head with keygate's
    /// fields (`ours`, sealed), then its body as it arrives. Whether the
    /// client connection carries another request.
    async fn answer(
        &mut self,
        answer: Answer,
        ours: &HeaderMap,
        parsed: &head::Lean,
        head_only: bool,
    ) -> bool {
        let framing = if head_only {
            Framing::None
        } else {
            answer.framing
        };
        // A body left partly unread (the upstream answered before it had
        // all of it) ends the connection: it cannot be read past.
        let close = parsed.close || self.unread > 0;
        self.out.clear();
        answer.write_head(&mut self.out, ours, framing, close);
        let reuse = answer.reuse;
        self.spans = answer.into_fields();
        let Some(mut up) = self.up.take() else {
            return false;
        };
        match self.copy_body(&mut up, framing, parsed.trailers).await {
            Ok(()) => {
                if reuse && framing != Framing::Eof {
                    self.up = Some(up);
                }
                !close
            }
            // The client left mid-answer: the upstream is not told so
            // with a reset.
            Err(Broke::Client) => {
                retire(up);
                false
            }
            Err(Broke::Upstream) => false,
        }
    }

    /// Copies the upstream's body to the client after the head in `out`,
    /// in the framing the head announced.
    async fn copy_body(
        &mut self,
        up: &mut Upstream,
        framing: Framing,
        trailers: bool,
    ) -> Result<(), Broke> {
        match framing {
            Framing::None => self.flush_out().await,
            Framing::Length(n) => {
                let mut left = n;
                loop {
                    let k = up
                        .buf
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    self.out.extend_from_slice(&up.buf[..k]);
                    up.buf.advance(k);
                    left -= k as u64;
                    self.flush_out().await?;
                    if left == 0 {
                        return Ok(());
                    }
                    fill(up).await.map_err(|_| Broke::Upstream)?;
                }
            }
            Framing::Chunked => {
                let mut decoder = chunked::Decoder::default();
                loop {
                    while let Some(piece) =
                        decoder.next(&mut up.buf).map_err(|_| Broke::Upstream)?
                    {
                        match piece {
                            chunked::Piece::Data(d) => chunked::chunk(&mut self.out, &d),
                            chunked::Piece::End(t) => {
                                chunked::last(&mut self.out, if trailers { &t } else { &[] });
                            }
                        }
                    }
                    self.flush_out().await?;
                    if decoder.done() {
                        return Ok(());
                    }
                    fill(up).await.map_err(|_| Broke::Upstream)?;
                }
            }
            Framing::Eof => loop {
                chunked::chunk(&mut self.out, &up.buf);
                up.buf.clear();
                up.buf.reserve(READ);
                let ended = up
                    .stream
                    .read_buf(&mut up.buf)
                    .await
                    .map_err(|_| Broke::Upstream)?
                    == 0;
                if ended {
                    chunked::last(&mut self.out, &[]);
                }
                self.flush_out().await?;
                if ended {
                    return Ok(());
                }
            },
        }
    }

    /// Writes `out` to the client, and empties it.
    async fn flush_out(&mut self) -> Result<(), Broke> {
        let written = self.write_client().await;
        self.out.clear();
        written.map_err(|_| Broke::Client)
    }

    /// Writes `out` to the client and flushes it: over TLS a write may
    /// leave records in the session's buffer (over TCP flushing is free).
    async fn write_client(&mut self) -> io::Result<()> {
        self.client.write_all(&self.out).await?;
        self.client.flush().await
    }

    /// The service beside the routes' answer to a whole request: its body
    /// read first, within the head timeout. `None` when the client left or
    /// went quiet.
    async fn beside(
        &mut self,
        client: std::net::IpAddr,
        headers: &HeaderMap,
    ) -> Option<http::Response<axum::body::Body>> {
        let want = usize::try_from(self.unread).ok()?;
        while self.buf.len() < want {
            self.buf.reserve(want - self.buf.len());
            tokio::select! {
                biased;
                read = self.client.read_buf(&mut self.buf) => match read {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                },
                () = self.head_deadline.passed() => return None,
            }
        }
        let body = self.buf.split_to(want).freeze();
        self.unread = 0;
        let service = self.lean.whole.as_ref()?;
        Some(service.serve_whole(client, headers, &body).await)
    }

    /// Writes keygate's own answer (a refusal, or a service's beside the
    /// routes). Whether the client connection carries another request: not
    /// when the request's body was left unread (RFC 9112 §9.3: the
    /// connection cannot be read past it), nor when the client asked to
    /// close.
    async fn own(
        &mut self,
        res: http::Response<super::Body>,
        asked_close: bool,
        head_only: bool,
    ) -> bool {
        let (mut parts, body) = res.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let close = asked_close || self.unread > 0;
        if close {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        self.out.clear();
        wire::response_head(&mut self.out, parts.status, &parts.headers, body.len());
        if !head_only {
            self.out.extend_from_slice(&body);
        }
        let written = self.write_client().await.is_ok();
        written && !close
    }
}

/// Which side broke off an answer's body.
enum Broke {
    Client,
    Upstream,
}

/// Closes an upstream connection the way a client closes one (FIN, then
/// what the upstream still sends is read and dropped), within 2 s, on a
/// task of its own: dropped with its answer unread, the kernel would reset
/// it, and the upstream would log an error for a client that merely left.
fn retire(up: Upstream) {
    tokio::spawn(async move {
        let mut stream = up.stream;
        let _ = stream.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let mut scratch = [0u8; 8192];
            while let Ok(1..) = stream.read(&mut scratch).await {}
        })
        .await;
    });
}

/// More of the upstream's body; its end before the framing's is an error.
async fn fill(up: &mut Upstream) -> io::Result<()> {
    up.buf.reserve(READ);
    match up.stream.read_buf(&mut up.buf).await? {
        0 => Err(io::ErrorKind::UnexpectedEof.into()),
        _ => Ok(()),
    }
}

/// A new connection to a kept plain upstream.
async fn connect(pool: usize, up: &KeptUpstream) -> io::Result<Upstream> {
    let addr = up.plain.as_deref().unwrap_or_default();
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(Upstream {
        pool,
        stream,
        buf: BytesMut::with_capacity(READ),
    })
}

/// The lean path's readers of untrusted bytes, one call each, for the
/// fuzz targets (`fuzz/fuzz_targets/http1.rs`).
#[doc(hidden)]
pub mod fuzzing {
    use bytes::{Bytes, BytesMut};

    use super::{answer, chunked, head};

    /// Reads `raw` as a client's request head: the body length, when the
    /// lean path takes the head (it then also builds into `http` types).
    pub fn request_head(raw: &[u8]) -> Option<u64> {
        match head::parse(raw, &mut Vec::new()) {
            head::Parse::Lean(l) => {
                assert!(l.len <= raw.len());
                l.build(
                    &Bytes::copy_from_slice(&raw[..l.len]),
                    http::HeaderMap::new(),
                )?;
                Some(l.body)
            }
            _ => None,
        }
    }

    /// Reads `raw` as an upstream's answer head: the status, when whole
    /// and read one way.
    pub fn response_head(raw: &[u8], head_only: bool) -> Option<u16> {
        answer::read(&mut BytesMut::from(raw), head_only, &mut Vec::new())
            .ok()
            .flatten()
            .map(|a| a.status.as_u16())
    }

    /// Reads `raw` as a chunked body: its data, when whole and well framed.
    pub fn chunked_body(raw: &[u8]) -> Option<Vec<u8>> {
        let mut d = chunked::Decoder::default();
        let mut buf = BytesMut::from(raw);
        let mut data = Vec::new();
        while let Some(p) = d.next(&mut buf).ok()? {
            if let chunked::Piece::Data(b) = p {
                data.extend_from_slice(&b);
            }
        }
        d.done().then_some(data)
    }

    /// `pieces` as keygate frames a chunked body.
    pub fn chunk(pieces: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in pieces {
            chunked::chunk(&mut out, p);
        }
        chunked::last(&mut out, b"");
        out
    }
}
