//! The public listener's accept loop: HTTP/1.1 connections served by the
//! [`Proxy`], drained gracefully on shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{ConnInfo, Proxy};

/// Largest request head; larger answers 431 (hyper refuses it before parsing
/// further). SECURITY: bounds what an unauthenticated client can make us hold.
/// Above 64 KiB so an oversized token still gets its 401 `invalid_token`
/// (the credential itself is refused past 4 KiB, before any crypto).
const MAX_HEAD_BYTES: usize = 128 * 1024;

pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let info = Arc::new(ConnInfo::new(remote));
                let proxy = Arc::clone(&proxy);
                let svc = service_fn(move |req| {
                    let proxy = Arc::clone(&proxy);
                    let info = Arc::clone(&info);
                    async move { Ok::<_, Infallible>(proxy.handle(req, &info).await) }
                });
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with error");
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => tracing::warn!("shutdown grace elapsed with requests in flight"),
    }
}
