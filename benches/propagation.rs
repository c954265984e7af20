//! Revocation propagation between two replicas on one PostgreSQL store:
//! the time from sending a revocation to replica A until replica B refuses
//! the key, over 200 revocations one by one and 200 in bursts of 50. B
//! polls the store only every 10 s, so everything faster came by NOTIFY.
//!
//! Run: `cargo bench --bench propagation` (PostgreSQL from
//! `KEYGATE_TEST_POSTGRES_URL`, default postgres://postgres@127.0.0.1:5432/test);
//! `PROPAGATION_POLL_MS=2` paces the pollers (see [`poll_every`]).
//! Figures go to benches/README.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

const ADMIN_KEY: &str = "propagation-bench-admin-key-0123456789-abc";
const ONE_BY_ONE: usize = 200;
const BURSTS: usize = 4;
const BURST: usize = 50;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn send(
    c: &HttpClient,
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {auth}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .unwrap();
    let res = c.request(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn schema_url() -> String {
    let base = std::env::var("KEYGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("kgbench_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&base)
        .await
        .expect("PostgreSQL reachable");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

async fn start(store: &str) -> keygate::app::Running {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[store]
url = "{store}"
poll_interval = "10s"
[rate_limit]
failed_auth = "1000000/s"
[[routes]]
name = "orders"
prefix = "/orders"
upstream = "http://127.0.0.1:1"
"#
    );
    let env: HashMap<String, String> =
        [("KEYGATE_ADMIN_KEY".to_string(), ADMIN_KEY.to_string())].into();
    let config = keygate::config::Config::from_toml(&toml, &env).unwrap();
    keygate::app::start(config).await.unwrap()
}

/// How long each poller waits between its requests to B:
/// `PROPAGATION_POLL_MS` (default 0, back to back). Back to back, a burst's
/// 50 pollers keep both cores busy with requests to B (and B's upstream,
/// in this process), which the replicas' own work then waits behind; a
/// pause of a millisecond or two measures the propagation, not that load,
/// to within the pause.
fn poll_every() -> Duration {
    Duration::from_millis(
        std::env::var("PROPAGATION_POLL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    )
}

/// Polls B until it refuses `key` (401; the upstream is unreachable, so a
/// live key answers 502); returns when.
async fn refused_at(c: &HttpClient, b: SocketAddr, key: &str) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(10);
    let pause = poll_every();
    loop {
        let (status, _) = send(c, b, "GET", "/orders/1", key, None).await;
        if status == StatusCode::UNAUTHORIZED {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "B never refused the key");
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    println!(
        "{name}: n={} p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.90).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
    );
}

async fn run() {
    let store = schema_url().await;
    let a = start(&store).await;
    let b = start(&store).await;
    let c: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let (_, org) = send(
        &c,
        a.admin_addr(),
        "POST",
        "/v1/organizations",
        ADMIN_KEY,
        Some(json!({"name": "bench"})),
    )
    .await;
    let org = org["id"].as_str().unwrap().to_string();
    let n = ONE_BY_ONE + BURSTS * BURST;
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let (_, acct) = send(
            &c,
            a.admin_addr(),
            "POST",
            "/v1/service-accounts",
            ADMIN_KEY,
            Some(json!({"organization_id": org, "name": format!("sa-{i}")})),
        )
        .await;
        keys.push((
            acct["id"].as_str().unwrap().to_string(),
            acct["api_key"]["value"].as_str().unwrap().to_string(),
        ));
    }
    // B knows every key before the clock starts.
    for (_, key) in &keys {
        while send(&c, b.public_addr(), "GET", "/orders/1", key, None)
            .await
            .0
            == StatusCode::UNAUTHORIZED
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    let mut one = Vec::with_capacity(ONE_BY_ONE);
    for (account, key) in &keys[..ONE_BY_ONE] {
        let sent = Instant::now();
        let path = format!("/v1/service-accounts/{account}");
        assert_eq!(
            send(&c, a.admin_addr(), "DELETE", &path, ADMIN_KEY, None)
                .await
                .0,
            StatusCode::NO_CONTENT
        );
        one.push(refused_at(&c, b.public_addr(), key).await - sent);
    }
    report("one by one (revocation sent → refused at B)", one);

    let mut burst = Vec::with_capacity(BURSTS * BURST);
    // When A answered each revocation: what of a burst's time is A's.
    let mut answered = Vec::with_capacity(BURSTS * BURST);
    for chunk in keys[ONE_BY_ONE..].chunks(BURST) {
        let sent = Instant::now();
        let deletes = chunk.iter().map(|(account, _)| {
            let c = c.clone();
            let path = format!("/v1/service-accounts/{account}");
            let admin = a.admin_addr();
            async move {
                let status = send(&c, admin, "DELETE", &path, ADMIN_KEY, None).await.0;
                (status, Instant::now())
            }
        });
        let polls = chunk.iter().map(|(_, key)| {
            let c = c.clone();
            let key = key.clone();
            let addr = b.public_addr();
            async move { refused_at(&c, addr, &key).await }
        });
        let (statuses, refused) = tokio::join!(
            futures_util::future::join_all(deletes),
            futures_util::future::join_all(polls)
        );
        assert!(statuses.iter().all(|(s, _)| *s == StatusCode::NO_CONTENT));
        answered.extend(statuses.into_iter().map(|(_, t)| t - sent));
        burst.extend(refused.into_iter().map(|t| t - sent));
    }
    report("in bursts of 50 (burst sent → A answered each)", answered);
    report(
        "in bursts of 50 (burst sent → each key refused at B)",
        burst,
    );
    b.shutdown().await;
    a.shutdown().await;
}
