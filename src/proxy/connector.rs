//! The upstream TCP connector: hyper-util's `HttpConnector`, minus the
//! connection info (`HttpInfo`) it attaches to every response. keygate never
//! reads it, and attaching it costs three allocations per proxied request
//! (the response's extension map, its table and the boxed value), a fifth of
//! what keygate's process allocates per request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::Service;

/// Connects like the wrapped [`HttpConnector`]; its connections report no
/// extra connection info.
#[derive(Clone)]
pub(super) struct TcpConnector(pub(super) HttpConnector);

type Connecting = <HttpConnector as Service<Uri>>::Future;
type ConnectError = <HttpConnector as Service<Uri>>::Error;

impl Service<Uri> for TcpConnector {
    type Response = Tcp;
    type Error = ConnectError;
    type Future = TcpConnecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        TcpConnecting(self.0.call(uri))
    }
}

/// The wrapped connector's future, its stream wrapped in [`Tcp`].
pub(super) struct TcpConnecting(Connecting);

impl Future for TcpConnecting {
    type Output = Result<Tcp, ConnectError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map_ok(Tcp)
    }
}

/// An upstream TCP connection; reads and writes go straight through.
pub(super) struct Tcp(pub(super) TokioIo<TcpStream>);

impl Connection for Tcp {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for Tcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl Write for Tcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}
