//! The authentication decision on the hot path: parse the header, check the
//! key's shape and CRC32 checksum, SHA-256 it, look it up among 1,000,000
//! cached keys, check expiry. Also prints the cache's memory for those keys
//! (resident set growth while building it).
//!
//! Run: `cargo bench --bench auth`. Figures go to benches/README.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use keygate::cache::Cache;
use keygate::credential::{self, ApiKeyFormat};
use keygate::store::{AuthEntry, Role};
use uuid::Uuid;

const KEYS: usize = 1_000_000;
const SAMPLE: usize = 1024;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A cache holding `n` live keys on `n` accounts (the worst case: nothing
/// shared but scope sets), built the way the loader builds it, and a sample
/// of their secrets.
fn build(n: usize) -> (Cache, Vec<String>) {
    let format = ApiKeyFormat::new("kg");
    let cache = Cache::new(format.clone(), i64::MAX);
    let scope_sets: Vec<String> = (0..10)
        .map(|i| format!(r#"["svc{i}:read","svc{i}:write"]"#))
        .collect();
    let mut sample = Vec::with_capacity(SAMPLE);
    for i in 0..n {
        let g = format.generate_key();
        cache.insert(&AuthEntry {
            key_id: Uuid::now_v7(),
            hash: g.hash,
            key_expires_at: None,
            account_id: Uuid::now_v7(),
            organization_id: Uuid::now_v7(),
            project_id: (i % 2 == 0).then(Uuid::now_v7),
            role: Role::Member,
            scopes_json: scope_sets[i % scope_sets.len()].clone(),
            account_expires_at: None,
            rate_limit: None,
        });
        if i % (n / SAMPLE).max(1) == 0 && sample.len() < SAMPLE {
            sample.push(g.value.to_string());
        }
    }
    (cache, sample)
}

fn auth_decision(c: &mut Criterion) {
    let now = 1_000;
    // SHA-256 + lookup as the cache grows: it must not slow down.
    let mut sizes = c.benchmark_group("auth_decision_by_cache_size");
    for n in [1_000, 100_000] {
        let (cache, sample) = build(n);
        let headers: Vec<String> = sample.iter().map(|k| format!("Bearer {k}")).collect();
        let mut i = 0usize;
        sizes.bench_function(format!("{n}_keys"), |b| {
            b.iter(|| {
                i = (i + 1) % headers.len();
                let secret =
                    credential::extract(Some(black_box(headers[i].as_bytes())), None).unwrap();
                black_box(cache.authenticate(secret, now).unwrap());
            })
        });
    }
    sizes.finish();

    let before = rss_kib();
    let (cache, sample) = build(KEYS);
    let after = rss_kib();
    println!(
        "cache memory: {} keys, resident set grew by {:.1} MiB ({:.0} bytes/key)",
        cache.len(),
        (after - before) as f64 / 1024.0,
        (after - before) as f64 * 1024.0 / cache.len() as f64
    );
    let headers: Vec<String> = sample.iter().map(|k| format!("Bearer {k}")).collect();

    let mut group = c.benchmark_group("auth_decision_1m_keys");
    let mut i = 0usize;
    group.bench_function("hit", |b| {
        b.iter(|| {
            i = (i + 1) % headers.len();
            let secret = credential::extract(Some(black_box(headers[i].as_bytes())), None).unwrap();
            black_box(cache.authenticate(secret, now).unwrap());
        })
    });
    let unknown = format!(
        "Bearer {}",
        ApiKeyFormat::new("kg").generate_key().value.as_str()
    );
    group.bench_function("miss_well_formed", |b| {
        b.iter(|| {
            let secret = credential::extract(Some(black_box(unknown.as_bytes())), None).unwrap();
            black_box(cache.authenticate(secret, now).unwrap_err());
        })
    });
    let mut typo = headers[0].clone().into_bytes();
    let last = typo.len() - 1;
    typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
    group.bench_function("bad_checksum", |b| {
        b.iter(|| {
            let secret = credential::extract(Some(black_box(&typo)), None).unwrap();
            black_box(cache.authenticate(secret, now).unwrap_err());
        })
    });
    group.finish();
}

criterion_group!(benches, auth_decision);
criterion_main!(benches);
