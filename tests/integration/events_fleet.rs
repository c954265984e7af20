//! Webhooks across a fleet: two replicas on one PostgreSQL deliver each
//! event once, in revision order per account; a replica that dies holding a
//! delivery leaves it to the other once its lease runs out. Expiry warnings
//! 7 days and 1 day ahead, once each, on an injected clock.

use std::collections::HashMap;
use std::time::Duration;

use http::StatusCode;
use serde_json::json;

use crate::events::{brisk, log_until, subscribe};
use crate::receiver::{Answer, Receiver};
use crate::support::{pg_schema_url, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_deliver_each_event_once_in_order_per_account() {
    let Some(url) = pg_schema_url().await else {
        return;
    };
    let h = Harness::start_with(Some(url), &brisk(), &[]).await;
    let b = h.boot_replica().await;
    let r = Receiver::start(Answer::FailFirst(3)).await;
    let (hook, secret) = subscribe(&h, &r.url(), &["service_account.*"]).await;
    let org = h.create_org("fleet-events").await;
    let mut accounts = Vec::new();
    for _ in 0..10 {
        accounts.push(h.create_account(&org, &[]).await.0);
    }
    // Writes through both replicas, interleaved.
    let auth = format!("Bearer {}", h.admin_key);
    for (i, id) in accounts.iter().enumerate() {
        let body = serde_json::to_vec(&json!({ "enabled": false })).unwrap();
        let path = format!("/v1/service-accounts/{id}");
        let addr = if i % 2 == 0 {
            b.admin_addr()
        } else {
            h.admin_addr()
        };
        let (status, _, body) = crate::support::send(
            &h.client,
            addr,
            "PATCH",
            &path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        h.admin("DELETE", &path, None).await;
    }
    // 30 events; the first three attempts fail and are retried.
    let got = r.wait_for(33, Duration::from_secs(20)).await;
    let log = log_until(&h, &hook, |d| {
        d.len() == 30 && d.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(log.len(), 30);
    let got_now = r.got();
    assert_eq!(got_now.len(), 33, "more attempts than failures + events");
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for g in &got[3..] {
        assert!(g.verifies(&secret));
        *per_event.entry(g.id.clone()).or_default() += 1;
    }
    assert_eq!(per_event.len(), 30, "{per_event:?}");
    assert!(
        per_event.values().all(|n| *n == 1),
        "answered twice: {per_event:?}"
    );
    // Per account, what it received last is in revision order.
    let mut delivered: HashMap<String, Vec<(i64, String)>> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for g in got.iter().rev() {
        if seen.insert(g.id.clone()) {
            let body = g.json();
            delivered
                .entry(body["data"]["id"].as_str().unwrap().to_string())
                .or_default()
                .push((body["data"]["revision"].as_i64().unwrap(), g.kind()));
        }
    }
    for id in &accounts {
        let mut events = delivered.remove(id).unwrap();
        events.reverse();
        let kinds: Vec<&str> = events.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "service_account.created",
                "service_account.disabled",
                "service_account.closed"
            ],
            "{id}"
        );
    }
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_that_dies_mid_delivery_leaves_the_event_to_another() {
    let Some(url) = pg_schema_url().await else {
        return;
    };
    // Attempts may take 4 s; a lease is 5 s.
    let config = r#"
[events]
allow_insecure_targets = true
retry_first = "100ms"
lease = "5s"
timeout = "4s"
poll_interval = "100ms"
"#;
    let mut h = Harness::start_with(Some(url), config, &[]).await;
    let r = Receiver::start(Answer::HoldFirst).await;
    let (hook, secret) = subscribe(&h, &r.url(), &["organization.*"]).await;
    h.create_org("held").await;
    // The only replica has it, and the receiver holds the request open.
    let first = r.wait_for(1, Duration::from_secs(5)).await.remove(0);
    let b = h.boot_replica().await;
    h.stop().await;
    let got = r.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(got[1].id, first.id, "the same event, taken over");
    assert!(got[1].verifies(&secret));
    assert!(
        got[1].at - first.at >= Duration::from_secs(4),
        "taken before the lease ran out"
    );
    let auth = format!("Bearer {}", h.admin_key);
    let path = format!("/v1/webhooks/{hook}/deliveries");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, log) = h
            .send_to(b.admin_addr(), "GET", &path, &[("authorization", &auth)])
            .await;
        if log["data"][0]["status"] == "delivered" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.shutdown().await;
}

#[tokio::test]
async fn expiring_keys_are_warned_of_seven_days_and_one_day_ahead_once_each() {
    use keygate::clock::{Clock as _, ManualClock, SystemClock};
    const DAY_MS: i64 = 24 * 3600 * 1000;
    let clock = ManualClock::new(SystemClock.now_ms());
    let config = format!("{}expiry_check_interval = \"100ms\"\n", brisk());
    let h = Harness::start_clocked(
        None,
        &config,
        &[],
        Some(clock.clone() as keygate::clock::SharedClock),
    )
    .await;
    let r = Receiver::start(Answer::FailFirst(0)).await;
    let (hook, _) = subscribe(&h, &r.url(), &["api_key.expiring"]).await;
    let org = h.create_org("expiring").await;
    let (id, _) = h.create_account(&org, &[]).await;
    let expires = keygate::clock::rfc3339(clock.now_ms() + 10 * DAY_MS);
    let (status, _, key) = h
        .admin(
            "POST",
            &format!("/v1/service-accounts/{id}/api-keys"),
            Some(json!({ "name": "soon", "expires_at": expires })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");

    clock.advance(3 * DAY_MS + DAY_MS / 2); // 6.5 days left
    let week = r.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(week.json()["data"]["warning"], "7d");
    assert_eq!(week.json()["data"]["expires_at"], json!(expires));
    clock.advance(2 * DAY_MS); // 4.5 days left: nothing new
    clock.advance(4 * DAY_MS); // 0.5 days left
    let got = r.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[1].json()["data"]["warning"], "1d");
    // Each once: the log holds exactly these two.
    let log = log_until(&h, &hook, |d| d.len() >= 2).await;
    assert_eq!(log.len(), 2, "{log:?}");
}
