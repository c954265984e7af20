//! TLS on keygate's listeners with real TLS clients (rustls, and `curl`
//! where it is installed): HTTP/1.1 and HTTP/2 by ALPN, mTLS required and
//! optional, the client certificate's subject forwarded, refused
//! handshakes counted by reason, a certificate swapped on disk, and HTTPS
//! upstreams verified against a route's CA.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::pki::{self, Pki};
use crate::servers::spawn_tls_upstream;
use crate::support::Harness;

/// Keygate with TLS on the public listener: `[server]` settings by
/// environment, `extra` routes appended.
pub(crate) async fn tls_harness(pki: &Pki, client_auth: Option<&str>, extra: &str) -> Harness {
    let (cert, key, _) = pki.server("server", "keygate-1");
    let (cert, key, ca) = (
        cert.display().to_string(),
        key.display().to_string(),
        pki.ca_path("keygate").display().to_string(),
    );
    let mut env = vec![
        ("KEYGATE_SERVER__TLS_CERT", cert.as_str()),
        ("KEYGATE_SERVER__TLS_KEY", key.as_str()),
    ];
    if let Some(mode) = client_auth {
        env.push(("KEYGATE_SERVER__CLIENT_CA", ca.as_str()));
        env.push(("KEYGATE_SERVER__CLIENT_AUTH", mode));
    }
    Harness::start_with(None, extra, &env).await
}

/// One request on an open TLS connection, HTTP/1.1 or HTTP/2 as ALPN chose.
pub(crate) async fn get(
    stream: TlsStream<TcpStream>,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(StatusCode, Version, Value), hyper::Error> {
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let mut req = Request::get(format!("https://localhost{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Empty::<Bytes>::new()).unwrap();
    let res = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await?;
        tokio::spawn(conn);
        send.send_request(req).await?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        send.send_request(req).await?
    };
    let (status, version) = (res.status(), res.version());
    let body = res.into_body().collect().await?.to_bytes();
    Ok((
        status,
        version,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    ))
}

async fn key_for(h: &Harness, scopes: &[&str]) -> String {
    let org = h.create_org("tls-org").await;
    h.create_account(&org, scopes).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_http1_and_http2_by_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "keygate");
    let h = tls_harness(&pki, None, "").await;
    let key = key_for(&h, &["orders:read"]).await;
    let auth = format!("Bearer {key}");
    for (alpn, want) in [
        (b"h2".as_slice(), Version::HTTP_2),
        (b"http/1.1".as_slice(), Version::HTTP_11),
    ] {
        let stream = pki::connect(h.public_addr(), pki.client_config(None, &[alpn]))
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(alpn));
        let (status, version, body) = get(stream, "/orders/1", &[("authorization", &auth)])
            .await
            .unwrap();
        assert_eq!((status, version), (StatusCode::OK, want), "{body}");
        // The same phases whatever the protocol: identity forwarded,
        // credential stripped, the scheme reported as https.
        assert!(body["headers"]["x-keygate-account"].is_string(), "{body}");
        assert!(body["headers"].get("authorization").is_none(), "{body}");
        assert_eq!(body["headers"]["x-forwarded-proto"], "https");
        let stream = pki::connect(h.public_addr(), pki.client_config(None, &[alpn]))
            .await
            .unwrap();
        let (status, ..) = get(stream, "/orders/1", &[]).await.unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Plain HTTP on the TLS port gets no answer, never a plaintext page.
    let plain = reqwest_like_plain(h.public_addr()).await;
    assert!(!plain.starts_with("HTTP/1.1 200"), "{plain}");
}

/// The lean path's counters: requests it served, connections it handed to
/// hyper.
async fn lean_counts(h: &Harness) -> (f64, f64) {
    let s = crate::observability::scrape(h).await;
    (
        s.get("keygate_lean_requests_total", &[]),
        s.get("keygate_lean_handoffs_total", &[]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_over_tls_is_served_on_the_lean_path_and_handed_to_hyper_mid_connection() {
    // The lean path serves only requests to upstreams whose connections
    // client connections keep: not on hyper's server, nor with the pool.
    let lean = std::env::var("KEYGATE_TEST_HTTP1_ENGINE").map_or(true, |v| v == "lean")
        && std::env::var("KEYGATE_TEST_UPSTREAM_REUSE").map_or(true, |v| v != "pool");
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "keygate");
    let h = tls_harness(&pki, None, "").await;
    let key = key_for(&h, &["orders:read"]).await;
    let auth = format!("Bearer {key}");
    let before = lean_counts(&h).await;

    // ALPN `http/1.1`, then no ALPN at all: both start as HTTP/1.1. Three
    // requests on one connection: two the lean path serves, then one with
    // `Expect` (hyper's), after which hyper serves the connection on.
    for alpn in [&[b"http/1.1".as_slice()][..], &[]] {
        let stream = pki::connect(h.public_addr(), pki.client_config(None, alpn))
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        for (path, expect) in [
            ("/orders/1", false),
            ("/orders/2", false),
            ("/orders/3", true),
        ] {
            // Origin-form, as HTTP/1.1 clients send it (hyper's bare
            // connection would send an absolute URI as given).
            let mut req = Request::get(path)
                .header("host", "localhost")
                .header("authorization", &auth);
            if expect {
                req = req.header("expect", "100-continue");
            }
            let req = req
                .body(http_body_util::Full::new(Bytes::from_static(b"abc")))
                .unwrap();
            let res = send.send_request(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            let body: Value =
                serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes())
                    .unwrap();
            // The same phases and the same rewrite on either server.
            assert!(body["headers"]["x-keygate-account"].is_string(), "{body}");
            assert!(body["headers"].get("authorization").is_none(), "{body}");
            assert_eq!(body["headers"]["x-forwarded-proto"], "https", "{body}");
            send.ready().await.unwrap();
        }
    }
    // A connection keygate ends is ended in TLS too (`close_notify`): the
    // client's read ends cleanly, not in a truncation error.
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = pki::connect(h.public_addr(), pki.client_config(None, &[b"http/1.1"]))
            .await
            .unwrap();
        let req = format!(
            "GET /orders/4 HTTP/1.1\r\nhost: localhost\r\nauthorization: {auth}\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut all = Vec::new();
        stream
            .read_to_end(&mut all)
            .await
            .expect("a clean TLS close after the answer");
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    }
    // HTTP/2 with no ALPN (prior knowledge over TLS) is hyper's from its
    // first bytes.
    let stream = pki::connect(h.public_addr(), pki.client_config(None, &[]))
        .await
        .unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://localhost/orders/1")
        .header("authorization", &auth)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(
        (res.status(), res.version()),
        (StatusCode::OK, Version::HTTP_2)
    );

    let after = lean_counts(&h).await;
    if lean {
        assert_eq!(
            after.0 - before.0,
            5.0,
            "lean requests: two per kept connection, one closed"
        );
        assert_eq!(
            after.1 - before.1,
            3.0,
            "hand-offs: both HTTP/1.1 connections and h2"
        );
    } else {
        assert_eq!(after.0 - before.0, 0.0, "no lean requests");
    }
}

/// Sends a plaintext request to a TLS port and returns whatever came back.
pub(crate) async fn reqwest_like_plain(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /open/x HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

const CERT_ROUTE: &str = r#"
[[routes]]
name = "mtls"
prefix = "/mtls"
upstream = "http://{UPSTREAM}"
public = true
client_cert = true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_certificates_refuse_clients_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "keygate");
    let h = tls_harness(&pki, Some("required"), CERT_ROUTE).await;

    // No certificate: the handshake (or, in TLS 1.3, the first read) fails.
    let refused = match pki::connect(h.public_addr(), pki.client_config(None, &[b"http/1.1"])).await
    {
        Err(_) => true,
        Ok(stream) => get(stream, "/open/x", &[]).await.is_err(),
    };
    assert!(refused, "a client without a certificate was served");

    // A certificate from another CA is refused too.
    let rogue = Pki::new(dir.path(), "rogue");
    let config = pki.client_config(Some(rogue.client("billing")), &[b"http/1.1"]);
    let refused = match pki::connect(h.public_addr(), config).await {
        Err(_) => true,
        Ok(stream) => get(stream, "/open/x", &[]).await.is_err(),
    };
    assert!(refused, "a certificate from an unknown CA was accepted");

    // With one: served, and the cert route sees the verified subject — not
    // the one the client wrote in a header.
    for alpn in [b"h2".as_slice(), b"http/1.1".as_slice()] {
        let config = pki.client_config(Some(pki.client("billing")), &[alpn]);
        let stream = pki::connect(h.public_addr(), config).await.unwrap();
        let (status, _, body) = get(
            stream,
            "/mtls/whoami",
            &[
                ("x-keygate-client-subject", "CN=admin"),
                ("x_keygate_client_subject", "CN=admin"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        let subject = body["headers"]["x-keygate-client-subject"]
            .as_str()
            .unwrap();
        assert!(
            subject.contains("CN=billing") && subject.contains("O=Acme"),
            "{body}"
        );
        assert!(body["headers"].get("x_keygate_client_subject").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_certificates_gate_only_the_routes_that_ask() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "keygate");
    let h = tls_harness(&pki, Some("optional"), CERT_ROUTE).await;

    let anonymous = || pki.client_config(None, &[b"h2"]);
    let stream = pki::connect(h.public_addr(), anonymous()).await.unwrap();
    let (status, ..) = get(stream, "/open/x", &[]).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let stream = pki::connect(h.public_addr(), anonymous()).await.unwrap();
    let (status, _, body) = get(stream, "/mtls/x", &[]).await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "client_certificate_required");
    // A forged subject header does not stand in for a certificate.
    let stream = pki::connect(h.public_addr(), anonymous()).await.unwrap();
    let (status, ..) = get(
        stream,
        "/mtls/x",
        &[("x-keygate-client-subject", "CN=billing")],
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let config = pki.client_config(Some(pki.client("reports")), &[b"h2"]);
    let stream = pki::connect(h.public_addr(), config).await.unwrap();
    let (status, _, body) = get(stream, "/mtls/x", &[]).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let subject = body["headers"]["x-keygate-client-subject"]
        .as_str()
        .unwrap();
    assert!(subject.contains("CN=reports"), "{body}");
}

/// The DER of the certificate a new connection to `addr` is served.
async fn served_certificate(addr: SocketAddr, pki: &Pki) -> Vec<u8> {
    let stream = pki::connect(addr, pki.client_config(None, &[b"http/1.1"]))
        .await
        .unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_swapped_on_disk_serves_new_connections_and_spares_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "keygate");
    let h = tls_harness(&pki, None, "").await;
    let before = served_certificate(h.public_addr(), &pki).await;

    // A live HTTP/1.1 keep-alive connection, opened before the swap.
    let stream = pki::connect(h.public_addr(), pki.client_config(None, &[b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(
        stream.get_ref().1.peer_certificates().unwrap()[0].to_vec(),
        before
    );
    let (mut live, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let open = |path: &str| {
        Request::get(format!("https://localhost{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    assert_eq!(
        live.send_request(open("/open/1")).await.unwrap().status(),
        StatusCode::OK
    );

    // Modification times have a granularity: make sure the swap is newer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, _, after) = pki.server("server", "keygate-2");
    assert_ne!(before, after);
    let started = Instant::now();
    loop {
        if served_certificate(h.public_addr(), &pki).await == after {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The connection opened before still works, on its old certificate.
    live.ready().await.unwrap();
    assert_eq!(
        live.send_request(open("/open/2")).await.unwrap().status(),
        StatusCode::OK
    );

    // A broken file is refused and the good certificate stays.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(dir.path().join("server.pem"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(served_certificate(h.public_addr(), &pki).await, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_against_the_route_ca() {
    let dir = tempfile::tempdir().unwrap();
    let upstream_pki = Pki::new(dir.path(), "upstream");
    let (cert, key, _) = upstream_pki.server("upstream", "orders.internal");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        rustls::pki_types::CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .map(Result::unwrap)
            .collect(),
        rustls::pki_types::PrivateKeyDer::from_pem_file(&key).unwrap(),
    )
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let upstream = spawn_tls_upstream(Arc::new(config)).await;
    let ca = upstream_pki.ca_path("upstream").display().to_string();
    let port = upstream.port();
    let h = Harness::start(&format!(
        r#"
[[routes]]
name = "secure"
prefix = "/secure"
upstream = "https://localhost:{port}"
upstream_ca = "{ca}"
public = true

[[routes]]
name = "secure-h2"
prefix = "/secure-h2"
upstream = "https://localhost:{port}"
upstream_ca = "{ca}"
upstream_protocol = "h2"
public = true

[[routes]]
name = "untrusted"
prefix = "/untrusted"
upstream = "https://localhost:{port}"
public = true
"#
    ))
    .await;
    let (status, _, body) = h.proxy("GET", "/secure/a", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], "HTTP/1.1");
    let (status, _, body) = h.proxy("GET", "/secure-h2/a", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], "HTTP/2.0");
    // Its certificate chains to no public root: refused, not trusted blindly.
    let (status, _, body) = h.proxy("GET", "/untrusted/a", &[]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_serves_tls_too() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "keygate");
    let (cert, key, _) = pki.server("admin", "keygate-admin");
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let h = Harness::start_with(
        None,
        "",
        &[
            ("KEYGATE_ADMIN__TLS_CERT", cert.as_str()),
            ("KEYGATE_ADMIN__TLS_KEY", key.as_str()),
        ],
    )
    .await;
    let auth = format!("Bearer {}", h.admin_key);
    for alpn in [b"h2".as_slice(), b"http/1.1".as_slice()] {
        let stream = pki::connect(h.admin_addr(), pki.client_config(None, &[alpn]))
            .await
            .unwrap();
        let (status, _, body) = get(stream, "/v1/organizations", &[("authorization", &auth)])
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["data"].is_array(), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_speaks_both_protocols_to_keygate_over_tls() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("curl is not installed: the rustls clients above cover this");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "keygate");
    let h = tls_harness(&pki, None, "").await;
    let port = h.public_addr().port();
    let ca = pki.ca_path("keygate");
    for (flag, want) in [("--http2", "2 200"), ("--http1.1", "1.1 200")] {
        let mut curl = std::process::Command::new("curl");
        curl.args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg(flag)
        .arg("--cacert")
        .arg(&ca)
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg(format!("https://localhost:{port}/open/x"));
        let out = tokio::task::spawn_blocking(move || curl.output().unwrap())
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "curl {flag}: {stderr}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "curl {flag}");
    }
}
