//! A second adversarial review, on the request path: spoofed identity in
//! trailers (HTTP/1.1 chunked and HTTP/2), a removed client CA still
//! admitting through TLS session resumption, a certificate subject that
//! forges attributes, an `Upgrade` list passed on verbatim, `Connection`
//! naming the request id, and h2 cookie crumbs reaching an HTTP/1.1
//! upstream as several fields.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::pki::{self, Pki};
use crate::support::{header, Harness};
use crate::tls::{get, tls_harness};

/// An upstream (HTTP/1.1 and h2c) that reads the whole body and answers
/// the headers and the trailers it received.
async fn spawn_trailer_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let fields = |h: &http::HeaderMap| {
                        let mut m = Map::new();
                        for (k, v) in h {
                            m.insert(k.to_string(), json!(v.to_str().unwrap_or("?")));
                        }
                        Value::Object(m)
                    };
                    let headers = fields(req.headers());
                    let collected = req.into_body().collect().await.unwrap();
                    let trailers = collected.trailers().map(fields).unwrap_or(Value::Null);
                    let body = json!({ "headers": headers, "trailers": trailers });
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body.to_string()))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// One raw HTTP/1.1 exchange on a fresh connection: the response head and
/// its body (read by `Content-Length`).
async fn exchange(addr: SocketAddr, request: &str) -> (String, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline.into(), s.read(&mut chunk))
            .await
            .expect("a whole answer")
            .unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length || n == 0 {
                return (
                    head.to_string(),
                    serde_json::from_str(body).unwrap_or(json!(body)),
                );
            }
        }
        assert!(n > 0, "connection closed early: {text}");
    }
}

/// 1. Fields a client may not send as headers it may not send as
/// trailers: not over HTTP/1.1 to either kind of upstream, nor over h2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_in_trailers_never_reaches_the_upstream() {
    let upstream = spawn_trailer_echo().await;
    let h = Harness::start(&format!(
        r#"
[[routes]]
name = "trailers-h1"
prefix = "/t1"
upstream = "http://{upstream}"

[[routes]]
name = "trailers-h2c"
prefix = "/t2"
upstream = "http://{upstream}"
upstream_protocol = "h2c"
"#
    ))
    .await;
    let org = h.create_org("trailers").await;
    let (account, key) = h.create_account(&org, &[]).await;
    for prefix in ["/t1", "/t2"] {
        let (head, body) = exchange(
            h.public_addr(),
            &format!(
                "POST {prefix}/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
                 Transfer-Encoding: chunked\r\n\
                 Trailer: x-keygate-account, X_Keygate_Org, x-forwarded-for, x-checksum\r\n\r\n\
                 3\r\nabc\r\n0\r\nx-keygate-account: spoofed\r\nX_Keygate_Org: spoofed\r\n\
                 x-forwarded-for: 6.6.6.6\r\nx-checksum: kept\r\n\r\n"
            ),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
        assert_eq!(body["headers"]["x-keygate-account"], account.as_str());
        let trailers = &body["trailers"];
        assert_eq!(trailers["x-checksum"], "kept", "{prefix}: {body}");
        for spoofed in ["x-keygate-account", "x_keygate_org", "x-forwarded-for"] {
            assert!(trailers.get(spoofed).is_none(), "{prefix}: {body}");
        }
        let announced = body["headers"]["trailer"].as_str().unwrap_or("");
        assert!(
            !announced.contains("keygate") && !announced.contains("forwarded"),
            "{body}"
        );
    }

    // The same over h2 (a trailing HEADERS frame) to an h2c upstream.
    let tcp = tokio::net::TcpStream::connect(h.public_addr())
        .await
        .unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-keygate-account", "spoofed".parse().unwrap());
    trailers.insert("x-real-ip", "6.6.6.6".parse().unwrap());
    trailers.insert("grpc-status", "0".parse().unwrap());
    let body = Full::new(Bytes::from_static(b"abc")).with_trailers(std::future::ready(Some(Ok::<
        _,
        Infallible,
    >(
        trailers,
    ))));
    let req = Request::post(format!("http://{}/t2/x", h.public_addr()))
        .header("authorization", format!("Bearer {key}"))
        .body(body)
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["trailers"]["grpc-status"], "0", "{body}");
    assert!(
        body["trailers"].get("x-keygate-account").is_none(),
        "{body}"
    );
    assert!(body["trailers"].get("x-real-ip").is_none(), "{body}");
}

const CERT_ROUTE: &str = r#"
[[routes]]
name = "mtls"
prefix = "/mtls"
upstream = "http://{UPSTREAM}"
public = true
client_cert = true
"#;

/// 2. Replacing `client_ca` ends every session made under the old one: a
/// client that saved a session cannot resume it to skip verification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_client_ca_admits_no_one_through_session_resumption() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "keygate");
    let h = tls_harness(&pki, Some("required"), CERT_ROUTE).await;
    // One client config: its session store is reused across connections.
    let saved = pki.client_config(Some(pki.client("billing")), &[b"http/1.1"]);
    for expect_resumed in [false, true] {
        let stream = pki::connect(h.public_addr(), saved.clone()).await.unwrap();
        let resumed = stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let (status, _, body) = get(stream, "/mtls/x", &[]).await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(resumed, expect_resumed, "sessions resume before the swap");
    }

    // Another CA replaces the client CA on disk; wait until a new
    // handshake with the old certificate is refused (the reload is done).
    let other = tempfile::tempdir().unwrap();
    Pki::new(other.path(), "other");
    let ca = pki.ca_path("keygate");
    std::fs::copy(other.path().join("other-ca.pem"), &ca).unwrap();
    // Modification times have a granularity: date the swap ahead.
    std::fs::File::options()
        .write(true)
        .open(&ca)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    let started = Instant::now();
    loop {
        let fresh = pki.client_config(Some(pki.client("billing")), &[b"http/1.1"]);
        let refused = match pki::connect(h.public_addr(), fresh).await {
            Err(_) => true,
            Ok(stream) => get(stream, "/mtls/x", &[]).await.is_err(),
        };
        if refused {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "client_ca was not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The saved session does not resume, and the old certificate is refused.
    let served = match pki::connect(h.public_addr(), saved.clone()).await {
        Err(_) => None,
        Ok(stream) => {
            let resumed =
                stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            get(stream, "/mtls/x", &[])
                .await
                .ok()
                .map(|(s, _, b)| (resumed, s, b))
        }
    };
    assert!(
        served.is_none(),
        "served through a saved session: {served:?}"
    );
}

/// 5. A subject is forwarded in RFC 4514's form, escaped: a comma in a
/// common name cannot forge another attribute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_subject_cannot_forge_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "keygate");
    let h = tls_harness(&pki, Some("required"), CERT_ROUTE).await;
    let config = pki.client_config(Some(pki.client("mallory, O=Acme, CN=billing")), &[b"h2"]);
    let stream = pki::connect(h.public_addr(), config).await.unwrap();
    let (status, _, body) = get(stream, "/mtls/x", &[]).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    // The certificate holds CN then O; RFC 4514 writes the last RDN first.
    assert_eq!(
        body["headers"]["x-keygate-client-subject"], r"O=Acme,CN=mallory\, O=Acme\, CN=billing",
        "{body}"
    );
}

/// 6. The upstream is asked for exactly `websocket`, whatever else the
/// client listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_route_asks_the_upstream_for_websocket_alone() {
    let h = Harness::start(
        r#"
[[routes]]
name = "ws-open"
prefix = "/ws"
upstream = "http://{UPSTREAM}"
public = true
websocket = true
"#,
    )
    .await;
    let (head, body) = exchange(
        h.public_addr(),
        "GET /ws/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket, h2c\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    // The echo upstream answers 200 with what it received.
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body["headers"]["upgrade"], "websocket", "{body}");
}

/// 7. `Connection` naming a field keygate sets does not take it off: the
/// upstream sees the request id the client is answered with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cannot_remove_the_request_id() {
    let h = Harness::start("").await;
    for sent in [None, Some("client-chosen-id")] {
        let mut headers = vec![("connection", "x-request-id")];
        if let Some(id) = sent {
            headers.push(("x-request-id", id));
        }
        let (status, res_headers, body) = h.proxy("GET", "/open/x", &headers).await;
        assert_eq!(status, StatusCode::OK);
        let answered = header(&res_headers, "x-request-id");
        assert!(!answered.is_empty());
        assert_eq!(body["headers"]["x-request-id"], answered, "{body}");
    }
}

/// RFC 9113 §8.2.3: h2 cookie crumbs reach an HTTP/1.1 upstream as one
/// `Cookie` field, joined by `; `.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_cookie_crumbs_reach_http1_upstreams_as_one_field() {
    let h = Harness::start("").await;
    let tcp = tokio::net::TcpStream::connect(h.public_addr())
        .await
        .unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("http://{}/open/x", h.public_addr()))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    // The echo joins repeated fields with ", ": one field shows as sent.
    assert_eq!(body["headers"]["cookie"], "a=1; b=2", "{body}");
}
