//! Refused TLS handshakes, each counted by its reason in
//! `keygate_tls_handshake_failures_total`: client certificates that are
//! missing, expired, from another CA or X.509 v1, and clients that never
//! speak TLS.

use std::time::{Duration, Instant};

use crate::observability::scrape;
use tokio::net::TcpStream;

use crate::pki::{self, Identity, Pki};
use crate::support::Harness;
use crate::tls::{get, reqwest_like_plain, tls_harness};

const HANDSHAKE_FAILURES: &str = "keygate_tls_handshake_failures_total";

/// Every `reason` label the handshake-failure counter has.
const FAILURE_REASONS: [&str; 12] = [
    "expired",
    "not_yet_valid",
    "unknown_issuer",
    "unsupported_version",
    "no_certificate",
    "bad_certificate",
    "client_rejected",
    "not_tls",
    "protocol",
    "timeout",
    "closed",
    "other",
];

/// The public listener's refused handshakes, by reason, as `/metrics` shows them.
async fn failures(h: &Harness) -> Vec<(&'static str, f64)> {
    let scrape = scrape(h).await;
    FAILURE_REASONS
        .iter()
        .map(|r| {
            let labels = [("listener", "public"), ("reason", *r)];
            assert!(scrape.has(HANDSHAKE_FAILURES, &labels), "no series for {r}");
            (*r, scrape.get(HANDSHAKE_FAILURES, &labels))
        })
        .collect()
}

/// Waits until the public listener has counted one more refusal for
/// `reason` than `before` did, and none for any other reason.
async fn wait_for_one_more(h: &Harness, before: &[(&'static str, f64)], reason: &str) {
    let want: Vec<(&str, f64)> = before
        .iter()
        .map(|&(r, n)| (r, if r == reason { n + 1.0 } else { n }))
        .collect();
    let started = Instant::now();
    loop {
        let now = failures(h).await;
        if now == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "want one more {reason}; before {before:?}, now {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Connects presenting `identity` and returns whether keygate refused:
/// in TLS 1.3 the client's handshake ends before the server has checked
/// its certificate, so the refusal may only show on the first read.
async fn refused(h: &Harness, pki: &Pki, identity: Option<Identity>) -> bool {
    let config = pki.client_config(identity, &[b"http/1.1"]);
    match pki::connect(h.public_addr(), config).await {
        Err(_) => true,
        Ok(stream) => get(stream, "/open/x", &[]).await.is_err(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_client_certificates_are_counted_by_reason() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "keygate");
    let rogue = Pki::new(dir.path(), "rogue");
    let h = tls_harness(&pki, Some("required"), "").await;
    let cases = [
        ("no_certificate", None),
        ("expired", Some(pki.expired_client("old"))),
        ("unknown_issuer", Some(rogue.client("billing"))),
        // What `openssl x509 -req` makes without `-extfile`.
        ("unsupported_version", Some(pki.v1_client("legacy"))),
    ];
    for (reason, identity) in cases {
        let before = failures(&h).await;
        assert!(refused(&h, &pki, identity).await, "{reason}: served");
        wait_for_one_more(&h, &before, reason).await;
    }
    // A good certificate is served and counts nothing.
    let before = failures(&h).await;
    assert!(!refused(&h, &pki, Some(pki.client("billing"))).await);
    assert_eq!(failures(&h).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_that_never_speak_tls_are_counted_too() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "keygate");
    let h = tls_harness(&pki, None, "").await;

    let before = failures(&h).await;
    let plain = reqwest_like_plain(h.public_addr()).await;
    assert!(!plain.starts_with("HTTP/1.1 200"), "{plain}");
    wait_for_one_more(&h, &before, "not_tls").await;

    // Connected, then gone before saying anything: a TCP health check.
    let before = failures(&h).await;
    drop(TcpStream::connect(h.public_addr()).await.unwrap());
    wait_for_one_more(&h, &before, "closed").await;
}
