//! Quotas across a fleet: on the Redis backend, replicas spend one quota
//! exactly (one round trip with the rate limit); with Redis gone each keeps
//! counting locally, and what it spent meanwhile is not forgotten.

use std::net::SocketAddr;

use http::StatusCode;
use serde_json::json;

use crate::fleet::{admitted_on, limit_state, redis_url, until, warm_up, PrivateRedis};
use crate::quotas::key_with;
use crate::support::{dead_port, pg_schema_url, Harness};

/// A route with a rate limit, so a quota and a limit meet in one script.
const METERED: &str = r#"
[[routes]]
name = "metered"
prefix = "/metered"
upstream = "http://{UPSTREAM}"
rate_limit = "1000/s"
"#;

/// Requests to `/pass` with `key`, alternating between `replicas`; how many
/// were admitted (every refusal a spent quota).
async fn admitted(h: &Harness, replicas: &[SocketAddr], key: &str, n: usize) -> usize {
    admitted_on(h, replicas, "/pass/q", "quota_exhausted", key, n).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_redis_spend_one_quota_exactly() {
    let Some(redis) = redis_url() else {
        return;
    };
    // A PostgreSQL store when there is one, as a fleet runs.
    let store = pg_schema_url().await;
    let env = [
        ("KEYGATE_RATE_LIMIT__BACKEND", "redis"),
        ("KEYGATE_RATE_LIMIT__REDIS_URL", redis.as_str()),
    ];
    let h = Harness::start_with(store, METERED, &env).await;
    let b = h.boot_replica().await;
    let org = h.create_org("fleet").await;
    let (account, _) = h.create_account(&org, &["orders:read"]).await;
    let (_, key) = key_with(
        &h,
        &account,
        json!({"quota": {"limit": 10, "period": "day"}}),
    )
    .await;
    until(&h, b.public_addr(), &key, StatusCode::OK).await;
    // `until` spent one; the fleet has 9 left, alternating replicas.
    warm_up(&h, &b).await;
    let both = [h.public_addr(), b.public_addr()];
    assert_eq!(admitted(&h, &both, &key, 30).await, 9);
    // And concurrently: a fresh key, 20 at once on each replica.
    let (_, key) = key_with(
        &h,
        &account,
        json!({"quota": {"limit": 15, "period": "none"}}),
    )
    .await;
    until(&h, b.public_addr(), &key, StatusCode::OK).await;
    let (x, y) = tokio::join!(
        async {
            let mut n = 0;
            for _ in 0..20 {
                n += admitted_on(
                    &h,
                    &[h.public_addr()],
                    "/metered/a",
                    "quota_exhausted",
                    &key,
                    1,
                )
                .await;
            }
            n
        },
        async {
            let mut n = 0;
            for _ in 0..20 {
                n += admitted_on(
                    &h,
                    &[b.public_addr()],
                    "/metered/b",
                    "quota_exhausted",
                    &key,
                    1,
                )
                .await;
            }
            n
        }
    );
    assert_eq!(x + y, 14, "15 in all, one spent by `until`: {x} + {y}");
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_loses_no_spending() {
    if redis_url().is_none() {
        return;
    }
    let port = dead_port().await;
    let mut redis = PrivateRedis::start(port);
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let env = [
        ("KEYGATE_RATE_LIMIT__BACKEND", "redis"),
        ("KEYGATE_RATE_LIMIT__REDIS_URL", url.as_str()),
    ];
    let h = Harness::start_with(None, "", &env).await;
    let org = h.create_org("fleet").await;
    let (account, _) = h.create_account(&org, &[]).await;
    let (_, key) = key_with(
        &h,
        &account,
        json!({"quota": {"limit": 10, "period": "none"}}),
    )
    .await;
    let me = [h.public_addr()];
    assert_eq!(admitted(&h, &me, &key, 4).await, 4);
    assert_eq!(limit_state(&h).await, "shared");

    redis.kill();
    // Counting goes on here while Redis is away…
    assert_eq!(admitted(&h, &me, &key, 3).await, 3);
    assert_eq!(limit_state(&h).await, "fallback");
    // …and when Redis is back (empty), it starts from what was spent.
    let _redis = PrivateRedis::start(port);
    let started = std::time::Instant::now();
    while limit_state(&h).await != "shared" {
        assert!(started.elapsed().as_secs() < 10, "never resumed sharing");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(admitted(&h, &me, &key, 6).await, 3, "4 + 3 spent of 10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_exhausted_is_one_event_per_window_across_replicas() {
    use crate::events::{brisk, subscribe};
    use crate::receiver::{Answer, Receiver};

    let h = Harness::start_with(pg_schema_url().await, &brisk(), &[]).await;
    let b = h.boot_replica().await;
    let r = Receiver::start(Answer::FailFirst(0)).await;
    let (_, secret) = subscribe(&h, &r.url(), &["quota.*", "service_account.updated"]).await;
    let org = h.create_org("fleet").await;
    let (account, _) = h.create_account(&org, &["orders:read"]).await;
    let (key_id, key) = key_with(
        &h,
        &account,
        json!({"quota": {"limit": 2, "period": "day"}}),
    )
    .await;
    until(&h, b.public_addr(), &key, StatusCode::OK).await;
    // Spent on one replica, then refused on both, again and again.
    let both = [h.public_addr(), b.public_addr()];
    admitted(&h, &both, &key, 10).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while r.got().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no quota.exhausted delivered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Both replicas noticed (each refused); the store takes one event per
    // window, whichever replica writes first. A later change of the same
    // account is delivered after anything written before it: once it is
    // here, any second quota.exhausted would be too.
    admitted(&h, &both, &key, 4).await;
    let (status, ..) = h
        .admin(
            "PATCH",
            &format!("/v1/service-accounts/{account}"),
            Some(json!({"description": "barrier"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    while !r
        .got()
        .iter()
        .any(|g| g.kind() == "service_account.updated")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "barrier never delivered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let got: Vec<_> = r
        .got()
        .into_iter()
        .filter(|g| g.kind() == "quota.exhausted")
        .collect();
    assert_eq!(
        got.len(),
        1,
        "{:?}",
        got.iter().map(|g| g.json()).collect::<Vec<_>>()
    );
    let event = got[0].json();
    assert!(got[0].verifies(&secret));
    assert_eq!(event["type"], "quota.exhausted", "{event}");
    assert_eq!(
        event["data"]["service_account_id"],
        account.as_str(),
        "{event}"
    );
    assert_eq!(event["data"]["limit"], 2, "{event}");
    assert_eq!(event["data"]["owner"], "api_key", "{event}");
    assert_eq!(
        event["data"]["id"],
        key_id.as_str(),
        "the key's quota: {event}"
    );
    b.shutdown().await;
}
