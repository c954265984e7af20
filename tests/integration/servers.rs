//! Servers and peers the tests run against, besides keygate itself: the
//! echoing upstream (plain or TLS), a gRPC server, a WebSocket echo, a
//! scratch PostgreSQL schema per test, and a TCP forwarder that can cut a
//! connection for real.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// A port nothing listens on: bind, read the port, drop the listener.
pub(crate) async fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A port that stays refused for as long as the returned socket lives: it is
/// bound (so nothing else can take it) but never listens.
pub(crate) fn refused_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// An HTTP/1 upstream that answers every request with 200 and
/// `{"method","path","headers":{lowercased name: value}}`.
pub(crate) async fn spawn_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    echo(req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, hits)
}

/// The echoing upstream over TLS (HTTP/1.1 and HTTP/2 by ALPN).
pub(crate) async fn spawn_tls_upstream(config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(TokioIo::new(tls), hyper::service::service_fn(echo))
                .await;
            });
        }
    });
    addr
}

/// A gRPC server (the standard health service) on a loopback port: its
/// reporter flips what `Check` and `Watch` answer.
pub(crate) async fn spawn_grpc() -> (SocketAddr, tonic_health::server::HealthReporter) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders", tonic_health::ServingStatus::Serving)
        .await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (addr, reporter)
}

/// A WebSocket server that echoes every message back, and answers a
/// message "headers" with the handshake's headers as JSON.
// The handshake callback's error type is tungstenite's, not ours.
#[allow(clippy::result_large_err)]
pub(crate) async fn spawn_ws_echo() -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let seen = Arc::new(std::sync::Mutex::new(serde_json::Map::new()));
                let record = Arc::clone(&seen);
                let callback =
                    move |req: &tokio_tungstenite::tungstenite::handshake::server::Request, res| {
                        let mut m = record.lock().unwrap();
                        for (k, v) in req.headers() {
                            m.insert(
                                k.to_string(),
                                Value::String(String::from_utf8_lossy(v.as_bytes()).into()),
                            );
                        }
                        Ok(res)
                    };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let reply = match msg {
                        Message::Text(t) if t.as_str() == "headers" => {
                            let headers = Value::Object(seen.lock().unwrap().clone());
                            Message::text(headers.to_string())
                        }
                        Message::Text(_) | Message::Binary(_) => msg,
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    if ws.send(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

pub(crate) async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut headers = serde_json::Map::new();
    for name in req.headers().keys() {
        let values: Vec<String> = req
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_string(), Value::String(values.join(", ")));
    }
    let path = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .to_string();
    let body = json!({
        "method": req.method().as_str(),
        "path": path,
        "version": format!("{:?}", req.version()),
        "headers": headers,
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A PostgreSQL URL whose connections use a fresh schema of their own, so
/// parallel tests never see each other's rows. `None` when
/// `KEYGATE_TEST_POSTGRES_URL` is unset (CI always sets it).
pub(crate) async fn pg_schema_url() -> Option<String> {
    let Ok(base) = std::env::var("KEYGATE_TEST_POSTGRES_URL") else {
        eprintln!("KEYGATE_TEST_POSTGRES_URL unset: skipping the PostgreSQL backend");
        return None;
    };
    let schema = format!("kg_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("KEYGATE_TEST_POSTGRES_URL is set but unreachable: {e}"));
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

/// A TCP forwarder to `target` that a test can cut and restore: the store
/// "going down" for real, as keygate's connections see it.
pub(crate) struct Cable {
    pub(crate) addr: SocketAddr,
    up: Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
    /// New connections wait until then before they are forwarded.
    held_until: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
}

impl Cable {
    pub(crate) async fn to(target: SocketAddr) -> Cable {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let up2 = Arc::clone(&up);
        let held_until = Arc::new(std::sync::Mutex::new(None));
        let held = Arc::clone(&held_until);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let mut cuts = cuts.clone();
                // Only cuts after this tunnel opened concern it.
                cuts.borrow_and_update();
                let hold = *held.lock().unwrap();
                tokio::spawn(async move {
                    if let Some(until) = hold {
                        tokio::time::sleep_until(until).await;
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Cable {
            addr,
            up,
            cut,
            held_until,
        }
    }

    /// Severs every connection; new ones are accepted but forwarded only
    /// after `hold`: a store that restarts and is back shortly after.
    pub(crate) fn sever_and_hold(&self, hold: Duration) {
        *self.held_until.lock().unwrap() = Some(tokio::time::Instant::now() + hold);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Severs every connection and refuses new ones.
    pub(crate) fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub(crate) fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
