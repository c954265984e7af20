//! Two replicas on one PostgreSQL store: a write through one reaches the
//! other's authentication (LISTEN/NOTIFY, polling as backstop), and data is
//! shared.

use std::time::{Duration, Instant};

use http::StatusCode;

use crate::support::{pg_schema_url, Cable, Harness};

/// Polls `GET /orders/1` on `addr` until it answers `want`; returns how long that took.
pub(crate) async fn until(
    h: &Harness,
    addr: std::net::SocketAddr,
    key: &str,
    want: StatusCode,
) -> Duration {
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
    // Polling B for a key it has not learned yet counts as failed attempts;
    // lift that budget so a 429 cannot stand in for the 401 we wait for.
    let h = Harness::start_with(
        Some(url),
        "",
        &[("KEYGATE_RATE_LIMIT__FAILED_AUTH", "1000000/s")],
    )
    .await;
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
    // ... and the other within the promised 1 s.
    let revoked = until(&h, other, &key, StatusCode::UNAUTHORIZED).await;
    eprintln!("propagation: new key {appeared:?}, revocation {revoked:?}");
    assert!(
        revoked < Duration::from_secs(1),
        "revocation took {revoked:?}"
    );
    h_env.shutdown().await;
}

/// Polls until `f` holds or `within` passes; returns whether it held.
async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < within {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outage_keeps_auth_up_then_fails_closed_then_recovers() {
    let Some(url) = pg_schema_url().await else {
        return;
    };
    let pg: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let cable = Cable::to(pg).await;
    let via_cable = url.replace("127.0.0.1:5432", &cable.addr.to_string());
    let h = Harness::start_with(
        Some(via_cable),
        "",
        &[
            ("KEYGATE_STORE__POLL_INTERVAL", "200ms"),
            ("KEYGATE_STORE__MAX_STALENESS", "3s"),
        ],
    )
    .await;
    let org = h.create_org("acme").await;
    let (account, key) = h.create_account(&org, &["orders:read"]).await;
    assert_eq!(h.bearer("GET", "/orders/1", &key).await.0, StatusCode::OK);

    cable.cut();
    // Authentication keeps working from the cache ...
    assert_eq!(h.bearer("GET", "/orders/1", &key).await.0, StatusCode::OK);
    // ... while writes, which need the store, answer 503.
    let (status, _, body) = h
        .admin(
            "PATCH",
            &format!("/v1/service-accounts/{account}"),
            Some(serde_json::json!({ "description": "during outage" })),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // Past max_staleness the proxy can no longer vouch for revocations: fail closed.
    let closed = eventually(Duration::from_secs(10), || async {
        h.bearer("GET", "/orders/1", &key).await.0 == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(closed, "proxy never failed closed");
    let (status, _, ready) = h.admin("GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    // Operators see it: failed store operations, staleness, refusals.
    let m = crate::observability::scrape(&h).await;
    assert!(m.get("keygate_store_errors_total", &[]) >= 1.0, "{m:?}");
    assert!(
        m.get("keygate_cache_staleness_seconds", &[]) >= 3.0,
        "{m:?}"
    );
    let stale = [
        ("listener", "public"),
        ("route", "orders"),
        ("status", "5xx"),
        ("auth", "stale"),
    ];
    assert!(m.get("keygate_requests_total", &stale) >= 1.0, "{m:?}");

    // The store comes back: the cache catches up with no restart.
    cable.restore();
    let recovered = eventually(Duration::from_secs(10), || async {
        h.bearer("GET", "/orders/1", &key).await.0 == StatusCode::OK
    })
    .await;
    assert!(recovered, "proxy never recovered");
    let (status, _, _) = h
        .admin("DELETE", &format!("/v1/service-accounts/{account}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.bearer("GET", "/orders/1", &key).await.0,
        StatusCode::UNAUTHORIZED
    );
}
