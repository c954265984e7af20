//! Listeners: binding, the accept loop, TLS ([`tls`]), HTTP/1.1 and HTTP/2
//! (h2 by ALPN over TLS, h2c with prior knowledge on plain listeners, told
//! apart by the connection preface), upgrades, per-connection facts
//! ([`ConnInfo`]: the peer, the scheme, a verified client certificate,
//! whether the peer is a trusted proxy), refused handshakes logged and
//! counted ([`FailedHandshakes`]) and the graceful drain. Both the
//! public and the admin listener are served here, so transport concerns
//! live in one place. Knows nothing of what the requests mean.

mod client;
mod handshake;
mod rewind;
mod side;
mod stream;
mod subject;
pub mod tls;
mod trust;
mod unread;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use client::ClientAddr;
pub use handshake::FailedHandshakes;
pub use side::Side;
pub use stream::ClientStream;
pub use tls::Tls;
pub use trust::TrustedProxies;
pub use unread::close_if_unread;

/// The scheme a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// For `X-Forwarded-Proto`.
    pub fn header_value(self) -> HeaderValue {
        match self {
            Scheme::Http => HeaderValue::from_static("http"),
            Scheme::Https => HeaderValue::from_static("https"),
        }
    }
}

/// Facts about one connection, computed once per connection rather than
/// per request.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub scheme: Scheme,
    /// The peer's IP, prebuilt as a header value.
    pub peer_ip: HeaderValue,
    /// `for=<peer>;proto=<scheme>`, prebuilt (RFC 7239).
    pub forwarded: HeaderValue,
    /// Set when the peer is a trusted proxy: its forwarding chain is believed.
    trusted: Option<Arc<TrustedProxies>>,
    /// The subject of the client certificate the TLS handshake verified
    /// (RFC 4514, e.g. `CN=billing,O=Acme`), prebuilt as a header value.
    pub client_subject: Option<HeaderValue>,
    /// The verified client certificate's SPIFFE id (its `spiffe://` URI
    /// SAN), prebuilt as a header value.
    pub spiffe_id: Option<HeaderValue>,
    /// Work the connection's requests leave to its task (the proxy's
    /// upstream connection).
    pub side: Side,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, scheme: Scheme) -> Self {
        Self::behind(peer, scheme, None)
    }

    /// A connection from `peer`; `trust` decides whether it may speak for
    /// a client.
    pub fn behind(peer: SocketAddr, scheme: Scheme, trust: Option<&Arc<TrustedProxies>>) -> Self {
        let ip = peer.ip();
        let peer_ip =
            HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("unknown"));
        let proto = match scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let forwarded = match ip {
            IpAddr::V4(v4) => format!("for={v4};proto={proto}"),
            IpAddr::V6(v6) => format!("for=\"[{v6}]\";proto={proto}"),
        };
        Self {
            peer,
            scheme,
            peer_ip,
            forwarded: HeaderValue::from_str(&forwarded)
                .unwrap_or(HeaderValue::from_static("for=unknown")),
            trusted: trust.filter(|t| t.contains(ip)).cloned(),
            client_subject: None,
            spiffe_id: None,
            side: Side::default(),
        }
    }

    /// Whether the peer is a trusted proxy.
    pub fn from_trusted_proxy(&self) -> bool {
        self.trusted.is_some()
    }

    /// The client's address: the peer's, or behind a trusted proxy the one
    /// its forwarding chain names.
    pub fn client(&self, headers: &http::HeaderMap) -> IpAddr {
        match &self.trusted {
            None => self.peer.ip(),
            Some(t) => t.client(self.peer.ip(), headers),
        }
    }
}

/// What an [`Http1`] server's work on a connection comes to: `None` when
/// the connection is done, else the connection handed back with the bytes
/// read from it.
pub type Handed<'a> = Pin<Box<dyn Future<Output = Option<(ClientStream, BytesMut)>> + Send + 'a>>;

/// A server for HTTP/1.1 connections beside hyper's: it serves the
/// requests it can, and at the first it does not it hands the connection
/// back with the bytes it has read, for hyper to serve from there on.
pub trait Http1: Send + Sync {
    /// Serves `stream` until it is done (`None`) or hands it back.
    /// `shutdown` flips when the listener drains: a connection between
    /// requests then ends.
    fn serve(
        &self,
        stream: ClientStream,
        info: Arc<ConnInfo>,
        shutdown: watch::Receiver<bool>,
    ) -> Handed<'_>;
}

/// How a listener serves.
#[derive(Clone)]
pub struct Options {
    /// A client that has not sent a whole request head (or finished its
    /// TLS handshake, or sent its first byte) by then is dropped.
    pub header_read_timeout: Duration,
    /// Largest request head; larger answers 431. SECURITY: bounds what an
    /// unauthenticated client can make us hold.
    pub max_head_bytes: usize,
    pub tls: Option<Arc<Tls>>,
    pub trust: Arc<TrustedProxies>,
    /// Serves HTTP/1.1 connections first, plain or over TLS, when set (the
    /// public listener's lean path).
    pub http1: Option<Arc<dyn Http1>>,
}

/// Concurrent streams one HTTP/2 connection may open.
const MAX_STREAMS: u32 = 256;
/// HTTP/2 streams a client may open and reset before the server accepted
/// them (CVE-2023-44487, "rapid reset"): past this the connection is closed.
const MAX_PENDING_RESETS: usize = 20;
/// Streams the server resets for a client's protocol errors before it
/// closes the connection.
const MAX_ERROR_RESETS: usize = 256;

fn builder(options: &Options) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(options.max_head_bytes)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(u32::try_from(options.max_head_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        .max_local_error_reset_streams(MAX_ERROR_RESETS)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes on `stream` say: `Some(true)` the whole HTTP/2
/// preface, `Some(false)` a byte that leaves it, `None` the client closed.
/// SECURITY: hyper's own detection waits for the 24 bytes with no timer; a
/// client stopping after `PRI * HTTP/2.0` would hold its connection past
/// `header_read_timeout` (slowloris), so the caller bounds this wait.
async fn version_decidable(stream: &TcpStream) -> Option<bool> {
    let mut seen = [0u8; 24];
    loop {
        match stream.peek(&mut seen).await {
            Ok(0) | Err(_) => return None,
            Ok(n) if n == seen.len() || seen[..n] != H2_PREFACE[..n] => {
                return Some(seen[..n] == H2_PREFACE[..])
            }
            // A prefix of the preface: `peek` answers at once while those
            // bytes wait unread, so look again shortly for more.
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// A bound, not yet serving, listener.
pub struct Listener {
    tcp: TcpListener,
    addr: SocketAddr,
}

impl Listener {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let tcp = TcpListener::bind(addr).await?;
        let addr = tcp.local_addr()?;
        Ok(Self { tcp, addr })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Accepts and serves connections until `shutdown` flips, then stops
    /// accepting and drains in-flight requests for up to `grace`.
    /// `service` makes the request handler of one connection.
    pub async fn serve<F, S, B>(
        self,
        options: Options,
        service: F,
        mut shutdown: watch::Receiver<bool>,
        grace: Duration,
    ) where
        F: Fn(Arc<ConnInfo>) -> S + Send + Sync + 'static,
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let graceful = GracefulShutdown::new();
        let builder = builder(&options);
        let service = Arc::new(service);
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let connection = Connection {
                        shutdown: shutdown.clone(),
                        builder: builder.clone(),
                        watcher: graceful.watcher(),
                        options: options.clone(),
                        service: Arc::clone(&service),
                    };
                    tokio::spawn(connection.serve(stream, peer));
                }
                _ = shutdown.changed() => break,
            }
        }
        drop(self.tcp);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(grace) => tracing::warn!("shutdown grace elapsed with requests in flight"),
        }
    }
}

/// One accepted connection, served in its own task: the TLS handshake (or,
/// on a plain listener, the first byte) within the head timeout, then
/// HTTP/1.1 or HTTP/2, upgrades allowed.
struct Connection<F> {
    shutdown: watch::Receiver<bool>,
    builder: auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    options: Options,
    service: Arc<F>,
}

impl<F, S, B> Connection<F>
where
    F: Fn(Arc<ConnInfo>) -> S + Send + Sync + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    async fn serve(self, stream: TcpStream, peer: SocketAddr) {
        let timeout = self.options.header_read_timeout;
        let trust = (!self.options.trust.is_empty()).then_some(&self.options.trust);
        match &self.options.tls {
            Some(tls) => {
                let acceptor = TlsAcceptor::from(tls.config());
                let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tls.failures().failed(peer, &e);
                        return;
                    }
                    Err(_) => {
                        tls.failures().timed_out(peer);
                        return;
                    }
                };
                let mut info = ConnInfo::behind(peer, Scheme::Https, trust);
                info.client_subject = tls::peer_subject(stream.get_ref().1)
                    .and_then(|s| HeaderValue::from_str(&s).ok());
                info.spiffe_id = tls::peer_spiffe_id(stream.get_ref().1)
                    .and_then(|s| HeaderValue::from_str(&s).ok());
                // HTTP/2 is what ALPN says; anything else (`http/1.1`, or no
                // ALPN at all) starts as HTTP/1.1, and a client sending the
                // HTTP/2 preface anyway is handed to hyper at once.
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                let info = Arc::new(info);
                match self.options.http1.clone().filter(|_| !h2) {
                    Some(lean) => {
                        let stream = ClientStream::Tls(Box::new(stream));
                        self.beside(&lean, stream, info).await;
                    }
                    None => self.run(TokioIo::new(stream), info).await,
                }
            }
            None => {
                // Telling HTTP/1 from HTTP/2 waits for bytes with no timer of
                // its own: a client that sends nothing, or stops inside the
                // HTTP/2 preface, is dropped here.
                let h2 = match tokio::time::timeout(timeout, version_decidable(&stream)).await {
                    Ok(Some(h2)) => h2,
                    _ => return,
                };
                let info = Arc::new(ConnInfo::behind(peer, Scheme::Http, trust));
                let Some(lean) = self.options.http1.clone().filter(|_| !h2) else {
                    return self.run(TokioIo::new(stream), info).await;
                };
                self.beside(&lean, ClientStream::Plain(stream), info).await;
            }
        }
    }

    /// Serves `stream` on the HTTP/1.1 server beside hyper's, then on
    /// hyper's if it hands the connection back.
    async fn beside(self, http1: &Arc<dyn Http1>, stream: ClientStream, info: Arc<ConnInfo>) {
        // The graceful drain waits for this connection: `self` holds its
        // watcher until the lean path is done too.
        let handed = http1
            .serve(stream, Arc::clone(&info), self.shutdown.clone())
            .await;
        match handed {
            Some((stream, read)) => {
                let io = TokioIo::new(rewind::Rewind::new(read, stream));
                self.run(io, info).await;
            }
            None => info.side.end(),
        }
    }

    async fn run<I>(self, io: I, info: Arc<ConnInfo>)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let svc = (self.service)(Arc::clone(&info));
        let conn = self.watcher.watch(
            self.builder
                .serve_connection_with_upgrades(io, svc)
                .into_owned(),
        );
        let conn = std::pin::pin!(conn);
        let served = side::WithSide {
            conn,
            side: &info.side,
        }
        .await;
        info.side.end();
        if let Err(e) = served {
            tracing::debug!(error = %e, "connection ended with error");
        }
    }
}
