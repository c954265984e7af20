//! Figures for benches/README.md, not assertions of speed: how long from a
//! committed write to its webhook delivery, and from a leak report to the
//! proxy refusing the key. Ignored by default; run with
//! `cargo test --release --test integration -- --ignored --nocapture figures`
//! (PostgreSQL figures need KEYGATE_TEST_POSTGRES_URL).

use std::time::{Duration, Instant};

use http::StatusCode;

use crate::events::{brisk, subscribe};
use crate::leaks::{report, GitHub};
use crate::receiver::{Answer, Receiver};
use crate::support::{pg_schema_url, Harness};

const SAMPLES: usize = 200;
/// Probes of revoked keys are failed authentications: lift the budget.
const LIFT_BUDGET: (&str, &str) = ("KEYGATE_RATE_LIMIT__FAILED_AUTH", "1000000/s");

fn summary(what: &str, mut d: Vec<Duration>) {
    d.sort();
    let at = |q: f64| d[((d.len() as f64 * q).ceil() as usize).clamp(1, d.len()) - 1];
    eprintln!(
        "{what}: n={} p50={:.2?} p99={:.2?} max={:.2?}",
        d.len(),
        at(0.50),
        at(0.99),
        d[d.len() - 1]
    );
}

async fn delivery_latency(store: &str, url: Option<String>) {
    let h = Harness::start_with(url, &brisk(), &[]).await;
    let r = Receiver::start(Answer::FailFirst(0)).await;
    subscribe(&h, &r.url(), &["organization.created"]).await;
    let (mut from_send, mut from_answer) = (Vec::new(), Vec::new());
    for i in 0..SAMPLES {
        let sent = Instant::now();
        h.create_org(&format!("lat-{i}")).await;
        let answered = Instant::now();
        let got = r.wait_for(i + 1, Duration::from_secs(10)).await;
        let at = got[i].at;
        from_send.push(at - sent);
        from_answer.push(at.saturating_duration_since(answered));
    }
    summary(&format!("{store}: write sent → delivered"), from_send);
    summary(&format!("{store}: write answered → delivered"), from_answer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn figures_delivery_latency() {
    delivery_latency("sqlite", None).await;
    if let Some(url) = pg_schema_url().await {
        delivery_latency("postgres", Some(url)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn figures_leak_report_to_refusal() {
    let gh = GitHub::new();
    let url = pg_schema_url().await;
    let pg = url.is_some();
    let h = Harness::start_with(url, &gh.config("rate_limit = \"100000/s\""), &[LIFT_BUDGET]).await;
    let other = if pg {
        Some(h.boot_replica().await)
    } else {
        None
    };
    let org = h.create_org("leaks").await;
    let (mut here, mut there, mut revoked) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..SAMPLES / 2 {
        // The same refusal through the admin API, interleaved: the baseline.
        let (account, key) = h.create_account(&org, &["orders:read"]).await;
        let (_, _, keys) = h
            .admin(
                "GET",
                &format!("/v1/service-accounts/{account}/api-keys"),
                None,
            )
            .await;
        let key_id = keys["data"][0]["id"].as_str().unwrap().to_string();
        let started = Instant::now();
        let path = format!("/v1/service-accounts/{account}/api-keys/{key_id}");
        let (status, ..) = h.admin("DELETE", &path, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(
            h.key_status(StatusCode::UNAUTHORIZED, &key).await,
            StatusCode::UNAUTHORIZED
        );
        revoked.push(started.elapsed());

        let (_, key) = h.create_account(&org, &["orders:read"]).await;
        let body =
            serde_json::to_vec(&serde_json::json!([{ "token": key, "type": "keygate_api_key" }]))
                .unwrap();
        let signature = gh.sign(&body);
        let started = Instant::now();
        let (status, _) = report(&h, &body, &gh.id, &signature).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            h.key_status(StatusCode::UNAUTHORIZED, &key).await,
            StatusCode::UNAUTHORIZED
        );
        here.push(started.elapsed());
        if let Some(b) = &other {
            let auth = format!("Bearer {key}");
            loop {
                let (s, ..) = h
                    .send_to(
                        b.public_addr(),
                        "GET",
                        "/orders/1",
                        &[("authorization", &auth)],
                    )
                    .await;
                if s == StatusCode::UNAUTHORIZED {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(5));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            there.push(started.elapsed());
        }
    }
    summary("leak report sent → refused at this replica's proxy", here);
    summary(
        "admin revocation sent → refused at this replica's proxy (baseline)",
        revoked,
    );
    if pg {
        summary(
            "leak report sent → refused at the other replica's proxy (PostgreSQL)",
            there,
        );
    }
}
