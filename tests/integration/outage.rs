//! The store going away under load: PostgreSQL unreachable while proxy
//! traffic flows and writes are attempted, and PostgreSQL restarting under a
//! replica's change listener. (SQLite's full disk: `disk_full.rs`.)

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;

use crate::replicas::until;
use crate::support::{pg_schema_url, send, Cable, Harness};

/// A PostgreSQL schema of its own, and its URL through a relay the test
/// can cut: `(cable, direct url, url through the cable)`.
async fn cabled() -> Option<(Cable, String, String)> {
    let url = pg_schema_url().await?;
    let cable = Cable::to("127.0.0.1:5432".parse().unwrap()).await;
    let via_cable = url.replace("127.0.0.1:5432", &cable.addr.to_string());
    Some((cable, url, via_cable))
}

/// Steady proxy traffic with `key` against both replicas until `stop`;
/// counts every answer that is not 200.
fn load(
    h: &Harness,
    addrs: Vec<std::net::SocketAddr>,
    key: String,
    stop: Arc<AtomicBool>,
) -> (
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let (ok, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let client = h.client.clone();
    let (ok2, bad2) = (Arc::clone(&ok), Arc::clone(&bad));
    let task = tokio::spawn(async move {
        let auth = format!("Bearer {key}");
        while !stop.load(Ordering::SeqCst) {
            for addr in &addrs {
                let (status, _, body) = send(
                    &client,
                    *addr,
                    "GET",
                    "/orders/1",
                    &[("authorization", &auth)],
                    Vec::new(),
                )
                .await;
                if status == StatusCode::OK {
                    ok2.fetch_add(1, Ordering::SeqCst);
                } else {
                    eprintln!("load: {addr} answered {status}: {body}");
                    bad2.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
    (ok, bad, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outage_under_load_serves_from_cache_refuses_writes_once_and_catches_up() {
    let Some((cable, _, via_cable)) = cabled().await else {
        return;
    };
    // Polling every 30 s: a replica that catches up sooner heard NOTIFY on a
    // listener it re-established by itself.
    let env = [
        ("KEYGATE_STORE__POLL_INTERVAL", "30s"),
        ("KEYGATE_STORE__MAX_STALENESS", "120s"),
        ("KEYGATE_RATE_LIMIT__FAILED_AUTH", "1000000/s"),
    ];
    let h = Harness::start_with(Some(via_cable), "", &env).await;
    let replica = h.boot_replica().await;
    let org = h.create_org("acme").await;
    let (_, steady) = h.create_account(&org, &["orders:read"]).await;
    let (doomed, doomed_key) = h.create_account(&org, &["orders:read"]).await;
    until(&h, replica.public_addr(), &doomed_key, StatusCode::OK).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad, traffic) = load(
        &h,
        vec![h.public_addr(), replica.public_addr()],
        steady,
        Arc::clone(&stop),
    );

    cable.cut();
    let cut_at = Instant::now();
    // Writes need the store: each is refused, clearly, and leaves nothing.
    let create =
        json!({ "organization_id": org, "name": "made-during-outage", "scopes": ["orders:read"] });
    let mut refused = 0;
    while cut_at.elapsed() < Duration::from_millis(1500) {
        let (status, _, body) = h
            .admin("POST", "/v1/service-accounts", Some(create.clone()))
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("retry"),
            "{body}"
        );
        let (status, _, body) = h
            .admin("DELETE", &format!("/v1/service-accounts/{doomed}"), None)
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        refused += 2;
    }
    let during = ok.load(Ordering::SeqCst);
    cable.restore();

    // The store is back: the same create succeeds, once.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, body) = h
            .admin("POST", "/v1/service-accounts", Some(create.clone()))
            .await;
        if status == StatusCode::CREATED {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(Instant::now() < deadline, "writes never recovered: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, _, page) = h
        .admin(
            "GET",
            &format!("/v1/service-accounts?organization_id={org}&limit=100"),
            None,
        )
        .await;
    let made = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == "made-during-outage")
        .count();
    assert_eq!(made, 1, "{page}");

    // The replica catches up on its own, through its re-established listener.
    let (status, _, _) = h
        .admin("DELETE", &format!("/v1/service-accounts/{doomed}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let took = until(
        &h,
        replica.public_addr(),
        &doomed_key,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    traffic.await.unwrap();
    let (ok, bad) = (ok.load(Ordering::SeqCst), bad.load(Ordering::SeqCst));
    eprintln!("outage: {refused} writes refused; proxy {ok} ok ({during} before restore), {bad} not; replica caught up in {took:?}");
    assert_eq!(bad, 0, "the proxy stopped answering from its cache");
    assert!(
        during > 20,
        "too little traffic during the outage to tell ({during})"
    );
    assert!(
        took < Duration::from_secs(2),
        "replica caught up in {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_store_restarts_catches_up_on_what_it_missed_meanwhile() {
    let Some((cable, url, via_cable)) = cabled().await else {
        return;
    };
    let env = [
        ("KEYGATE_STORE__POLL_INTERVAL", "30s"),
        ("KEYGATE_RATE_LIMIT__FAILED_AUTH", "1000000/s"),
    ];
    let writer = Harness::start_with(Some(url), "", &env).await;
    let reader = Harness::start_with(Some(via_cable), "", &env).await;
    let org = writer.create_org("acme").await;
    let (account, key) = writer.create_account(&org, &["orders:read"]).await;
    until(&reader, reader.public_addr(), &key, StatusCode::OK).await;

    // The reader's store connections drop and come back 800 ms later, the way
    // a PostgreSQL restart looks from a client; meanwhile another replica
    // revokes. The notification went out while the reader was not listening.
    cable.sever_and_hold(Duration::from_millis(800));
    let (status, _, _) = writer
        .admin("DELETE", &format!("/v1/service-accounts/{account}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let took = until(
        &reader,
        reader.public_addr(),
        &key,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    eprintln!("missed notification recovered in {took:?}");
    assert!(took < Duration::from_secs(3), "caught up only in {took:?}");
}
