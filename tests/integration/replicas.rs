//! Two replicas on one PostgreSQL store: a write through one reaches the
//! other's authentication (LISTEN/NOTIFY, polling as backstop), and data is
//! shared.

use std::time::{Duration, Instant};

use http::StatusCode;

use crate::support::{pg_schema_url, Harness};

/// Polls `GET /orders/1` on `addr` until it answers `want`; returns how long that took.
async fn until(h: &Harness, addr: std::net::SocketAddr, key: &str, want: StatusCode) -> Duration {
    let auth = format!("Bearer {key}");
    let started = Instant::now();
    loop {
        let (status, _, _) = h
            .send_to(addr, "GET", "/orders/1", &[("authorization", &auth)])
            .await;
        if status == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{addr} still answers {status}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_through_one_replica_reaches_the_other_within_a_second() {
    let Some(url) = pg_schema_url().await else {
        return;
    };
    // Polling every 10 s: anything faster than that came through NOTIFY.
    let h = Harness::start_on(Some(url), "").await;
    let h_env = h.boot_replica().await;
    let other = h_env.public_addr();
    let org = h.create_org("acme").await;
    let (account, key) = h.create_account(&org, &["orders:read"]).await;

    let appeared = until(&h, other, &key, StatusCode::OK).await;
    let (status, _, _) = h
        .admin("DELETE", &format!("/v1/service-accounts/{account}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The writing replica refuses at once ...
    assert_eq!(
        h.bearer("GET", "/orders/1", &key).await.0,
        StatusCode::UNAUTHORIZED
    );
    // ... and the other within the DESIGN's 1 s.
    let revoked = until(&h, other, &key, StatusCode::UNAUTHORIZED).await;
    eprintln!("propagation: new key {appeared:?}, revocation {revoked:?}");
    assert!(
        revoked < Duration::from_secs(1),
        "revocation took {revoked:?}"
    );
    h_env.shutdown().await;
}
