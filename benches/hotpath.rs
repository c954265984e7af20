//! The remaining steps of an authenticated request, each on its own:
//! credential parse + checksum, the local rate-limit check, and rewriting the
//! headers of one request (hop-by-hop, spoofed identity, credential,
//! X-Forwarded-*, X-Request-Id, identity headers).
//!
//! Run: `cargo bench --bench hotpath`. Figures go to benches/README.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use http::header::{HeaderMap, HeaderValue};
use keygate::cache::Cache;
use keygate::config::RateSpec;
use keygate::credential::{self, ApiKeyFormat};
use keygate::proxy::headers;
use keygate::ratelimit::{KeyedLimit, Subject};
use keygate::store::{AuthEntry, Role};
use uuid::Uuid;

fn hot_steps(c: &mut Criterion) {
    let format = ApiKeyFormat::new("kg");
    let key = format.generate_key();
    let header = format!("Bearer {}", key.value.as_str());
    let mut g = c.benchmark_group("hot_steps");

    g.bench_function("parse_and_checksum", |b| {
        b.iter(|| {
            let secret = credential::extract(Some(black_box(header.as_bytes())), None).unwrap();
            black_box(format.is_well_formed(secret))
        })
    });

    let limit = KeyedLimit::new(RateSpec::parse("100000000/s").unwrap(), "bench");
    let subject = Subject::Account(Uuid::now_v7());
    g.bench_function("rate_limit_check_local", |b| {
        b.iter(|| black_box(limit.check(black_box(&subject))))
    });

    let cache = Cache::new(format.clone(), i64::MAX);
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
    let principal = cache.authenticate(key.value.as_str(), 1).unwrap();
    let client_ip = HeaderValue::from_static("127.0.0.1");
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
                headers::remove_spoofed_identity(&mut h);
                headers::remove_credentials(&mut h);
                headers::set_forwarded(&mut h, &client_ip);
                headers::set_identity(&mut h, &principal);
                black_box((h, id))
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, hot_steps);
criterion_main!(benches);
