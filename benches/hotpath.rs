//! The remaining steps of an authenticated request, each on its own:
//! credential parse + checksum, the local rate-limit check, and rewriting the
//! headers of one request (hop-by-hop, spoofed identity, credential,
//! X-Forwarded-*, X-Request-Id, identity headers), and what recording a
//! request's metrics costs.
//!
//! Run: `cargo bench --bench hotpath`. Figures go to benches/README.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::FutureExt as _;
use http::header::{HeaderMap, HeaderValue};
use keygate::authn::{presented, Accept, Authenticator, Cache};
use keygate::clock::{Clock as _, SharedClock, SystemClock};
use keygate::config::{Config, RateSpec};
use keygate::jwt::{KeyRing, Verifier};
use keygate::listener::{ConnInfo, Scheme};
use keygate::proxy::headers;
use keygate::quota::{window, Charge, Charges};
use keygate::ratelimit::RateLimits;
use keygate::secret::ApiKeyFormat;
use keygate::store::{AuthEntry, Quota, QuotaPeriod, Role};
use keygate::telemetry::metrics::{
    Metrics, AUTH_DURATION, REQUESTS, REQUEST_DURATION, UPSTREAM_DURATION,
};
use uuid::Uuid;

fn hot_steps(c: &mut Criterion) {
    let format = ApiKeyFormat::new("kg");
    let key = format.generate_key();
    let header = format!("Bearer {}", key.value.as_str());
    let mut g = c.benchmark_group("hot_steps");

    g.bench_function("parse_and_checksum", |b| {
        b.iter(|| {
            let secret = presented::extract(Some(black_box(header.as_bytes())), None).unwrap();
            black_box(format.is_well_formed(secret))
        })
    });

    let config = Config::from_toml(
        "[[routes]]\nname = \"r\"\nprefix = \"/r\"\nupstream = \"http://127.0.0.1:1\"\nrate_limit = \"100000000/s\"\n",
        &HashMap::new(),
    )
    .unwrap();
    let limits = RateLimits::new(&config.rate_limit, &config.routes);
    let account = Some((Uuid::now_v7(), None));
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    g.bench_function("rate_limit_check_local", |b| {
        b.iter(|| black_box(limits.check(0, black_box(account), peer).now_or_never()))
    });
    // The limit phase with a key's and an account's quota to spend from,
    // against the same phase with none (local backend).
    let none = Charges::default();
    g.bench_function("admit_without_quota_local", |b| {
        b.iter(|| {
            black_box(
                limits
                    .admit(0, black_box(account), peer, none, 1)
                    .now_or_never(),
            )
        })
    });
    let month = Quota {
        limit: 1 << 60,
        period: QuotaPeriod::Month,
        reset_at: None,
    };
    let now = SystemClock.now_ms();
    let owner = Uuid::now_v7();
    let charge = |subject: Uuid| Charge {
        subject,
        account: owner,
        limit: month.limit,
        window: window(&month, now),
    };
    let both = Charges::new(Some(charge(Uuid::now_v7())), Some(charge(owner)));
    g.bench_function("admit_with_key_and_account_quota_local", |b| {
        b.iter(|| {
            black_box(
                limits
                    .admit(0, black_box(account), peer, both, 1)
                    .now_or_never(),
            )
        })
    });
    // The same check against Redis (one round trip to a local Redis), when
    // one answers at KEYGATE_TEST_REDIS_URL (default 127.0.0.1:6379).
    let redis_url =
        std::env::var("KEYGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    if std::net::TcpStream::connect("127.0.0.1:6379").is_ok()
        || redis_url != "redis://127.0.0.1:6379"
    {
        let env: HashMap<String, String> = [
            (
                "KEYGATE_RATE_LIMIT__BACKEND".to_string(),
                "redis".to_string(),
            ),
            ("KEYGATE_RATE_LIMIT__REDIS_URL".to_string(), redis_url),
        ]
        .into();
        let shared = Config::from_toml(
            "[[routes]]\nname = \"r\"\nprefix = \"/r\"\nupstream = \"http://127.0.0.1:1\"\nrate_limit = \"100000000/s\"\n",
            &env,
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let redis = rt.block_on(async { RateLimits::new(&shared.rate_limit, &shared.routes) });
        g.bench_function("rate_limit_check_redis", |b| {
            b.iter(|| black_box(rt.block_on(redis.check(0, black_box(account), peer))))
        });
    }

    let cache = Arc::new(Cache::new(i64::MAX));
    cache.insert(&AuthEntry {
        key_id: Uuid::now_v7(),
        hash: key.hash,
        key_expires_at: None,
        account_id: Uuid::now_v7(),
        organization_id: Uuid::now_v7(),
        project_id: Some(Uuid::now_v7()),
        role: Role::Member,
        scopes_json: r#"["orders:read","orders:write"]"#.into(),
        account_expires_at: None,
        rate_limit: None,
    });
    let clock: SharedClock = Arc::new(SystemClock);
    cache.freshness().mark_synced(clock.now_ms());
    let verifier = Verifier::new(Arc::new(KeyRing::new()), "http://127.0.0.1:8080".into());
    let authn = Authenticator::new(
        cache,
        verifier,
        RateSpec::parse("10/s").unwrap(),
        format.clone(),
        clock,
    );
    let principal = authn
        .bearer(
            peer,
            Ok(key.value.as_str()),
            Accept::Route {
                audience: None,
                issuers: keygate::authn::IssuerSet::EMPTY,
            },
        )
        .unwrap();
    let conn = ConnInfo::new("127.0.0.1:40000".parse().unwrap(), Scheme::Http);
    let mut incoming = HeaderMap::new();
    for (k, v) in [
        ("host", "api.example.com"),
        ("user-agent", "bench/1.0"),
        ("accept", "application/json"),
        ("connection", "keep-alive"),
        ("x-request-id", "7b0e5c1e-0b5f-4d0c-9f34-2c1f0f3f6a11"),
    ] {
        incoming.insert(k, HeaderValue::from_static(v));
    }
    incoming.insert("authorization", HeaderValue::from_str(&header).unwrap());
    g.bench_function("header_rewrite_one_request", |b| {
        b.iter_batched(
            || incoming.clone(),
            |mut h| {
                let id = headers::request_id(&mut h);
                headers::remove_hop_by_hop(&mut h);
                headers::remove_spoofed(&mut h);
                headers::remove_credentials(&mut h);
                headers::set_forwarded(&mut h, &conn, peer);
                headers::set_identity(&mut h, &principal);
                black_box((h, id))
            },
            criterion::BatchSize::SmallInput,
        )
    });
    // What metrics add to one proxied request: the clock reads around the
    // request, the credential check and the upstream call, three histogram
    // samples and one counter (the proxy's `record` does exactly this).
    let metrics = Metrics::new();
    let requests = metrics.counter(
        REQUESTS,
        &[("route", "orders"), ("status", "2xx"), ("auth", "ok")],
    );
    let (auth, upstream, total) = (
        metrics.histogram(AUTH_DURATION, &[]),
        metrics.histogram(UPSTREAM_DURATION, &[("route", "orders")]),
        metrics.histogram(REQUEST_DURATION, &[("route", "orders")]),
    );
    g.bench_function("metrics_one_request", |b| {
        b.iter(|| {
            let start = Instant::now();
            let a = Instant::now();
            auth.record(a.elapsed());
            let u = Instant::now();
            upstream.record(u.elapsed());
            requests.increment(1);
            total.record(black_box(start).elapsed());
        })
    });
    g.finish();
}

criterion_group!(benches, hot_steps);
criterion_main!(benches);
