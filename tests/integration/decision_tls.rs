//! The decision listener over TLS with client certificates: the asking
//! proxies are believed, so they can be required to prove who they are.

use http::StatusCode;

use crate::support::{header, Harness};

/// The decision listener believes its caller, so it takes TLS and client
/// certificates like the other listeners: a proxy without the CA's
/// certificate cannot even ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_listener_can_require_the_asking_proxys_certificate() {
    use crate::pki::{self, Pki};
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "keygate");
    let (cert, key, _) = pki.server("decision", "keygate-decision");
    let (cert, key, ca) = (
        cert.display().to_string(),
        key.display().to_string(),
        pki.ca_path("keygate").display().to_string(),
    );
    let h = Harness::start_with(
        None,
        "",
        &[
            ("KEYGATE_DECISION__LISTEN", "127.0.0.1:0"),
            ("KEYGATE_DECISION__TLS_CERT", &cert),
            ("KEYGATE_DECISION__TLS_KEY", &key),
            ("KEYGATE_DECISION__CLIENT_CA", &ca),
        ],
    )
    .await;
    let org = h.create_org("mtls-decide").await;
    let (account, key) = h.create_account(&org, &["orders:read"]).await;
    let bearer = format!("Bearer {key}");
    let ask = [
        ("x-forwarded-method", "GET"),
        ("x-forwarded-uri", "/orders/1"),
        ("authorization", bearer.as_str()),
    ];
    // Without a client certificate: no handshake, no decision.
    let refused =
        match pki::connect(h.decision_addr(), pki.client_config(None, &[b"http/1.1"])).await {
            Err(_) => true,
            Ok(stream) => crate::tls::get(stream, "/authz", &ask).await.is_err(),
        };
    assert!(refused, "a proxy without a certificate was answered");
    // With the CA's certificate: decided, with the identity.
    let identity = pki.client("envoy");
    let stream = pki::connect(
        h.decision_addr(),
        pki.client_config(Some(identity), &[b"h2", b"http/1.1"]),
    )
    .await
    .unwrap();
    let (status, _, _) = crate::tls::get(stream, "/authz", &ask).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    // And the answer names the account (HTTP/1.1, headers read raw).
    let stream = pki::connect(
        h.decision_addr(),
        pki.client_config(Some(pki.client("traefik")), &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::get("https://localhost/authz");
    for (k, v) in ask {
        req = req.header(k, v);
    }
    let res = send
        .send_request(
            req.body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(res.headers(), "x-keygate-account"), account);
}
