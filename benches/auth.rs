//! The authentication decision on the hot path, as the proxy makes it:
//! parse the header, the staleness and failed-attempt gates, check the key's
//! shape and CRC32 checksum, SHA-256 it, look it up among 1,000,000 cached
//! keys, check expiry. Also prints the cache's memory for those keys
//! (resident set growth while building it).
//!
//! Run: `cargo bench --bench auth`. Figures go to benches/README.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use keygate::authn::{presented, Accept, Authenticator, Cache};
use keygate::clock::{SharedClock, SystemClock};
use keygate::config::RateSpec;
use keygate::jwt::{KeyRing, Verifier};
use keygate::secret::ApiKeyFormat;
use keygate::store::{AuthEntry, Role};
use uuid::Uuid;

const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const ROUTE: Accept<'static> = Accept::Route {
    audience: None,
    issuers: keygate::authn::IssuerSet::EMPTY,
};

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

/// An authenticator over a cache holding `n` live keys on `n` accounts (the
/// worst case: nothing shared but scope sets), built the way the loader
/// builds it, and a sample of their secrets.
fn build(n: usize) -> (Authenticator, Vec<String>) {
    let format = ApiKeyFormat::new("kg");
    let cache = Arc::new(Cache::with_capacity(i64::MAX, n));
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
            scopes_json: scope_sets[i % scope_sets.len()].as_str().into(),
            account_expires_at: None,
            rate_limit: None,
        });
        if i % (n / SAMPLE).max(1) == 0 && sample.len() < SAMPLE {
            sample.push(g.value.to_string());
        }
    }
    let clock: SharedClock = Arc::new(SystemClock);
    cache.freshness().mark_synced(clock.now_ms());
    let verifier = Verifier::new(Arc::new(KeyRing::new()), "http://127.0.0.1:8080".into());
    let budget = RateSpec::parse("1000000/s").unwrap();
    let authn = Authenticator::new(cache, verifier, budget, format, clock);
    (authn, sample)
}

fn decide(authn: &Authenticator, header: &[u8]) -> Result<(), keygate::authn::Refusal> {
    let presented = presented::extract(Some(black_box(header)), None);
    authn.bearer(PEER, presented, ROUTE).map(|p| {
        black_box(p);
    })
}

fn auth_decision(c: &mut Criterion) {
    // SHA-256 + lookup as the cache grows: it must not slow down.
    let mut sizes = c.benchmark_group("auth_decision_by_cache_size");
    for n in [1_000, 100_000] {
        let (authn, sample) = build(n);
        let headers: Vec<String> = sample.iter().map(|k| format!("Bearer {k}")).collect();
        let mut i = 0usize;
        sizes.bench_function(format!("{n}_keys"), |b| {
            b.iter(|| {
                i = (i + 1) % headers.len();
                decide(&authn, headers[i].as_bytes()).unwrap();
            })
        });
    }
    sizes.finish();

    let before = rss_kib();
    let (authn, sample) = build(KEYS);
    let after = rss_kib();
    let len = authn.cache().len();
    println!(
        "cache memory: {} keys, resident set grew by {:.1} MiB ({:.0} bytes/key)",
        len,
        (after - before) as f64 / 1024.0,
        (after - before) as f64 * 1024.0 / len as f64
    );
    let headers: Vec<String> = sample.iter().map(|k| format!("Bearer {k}")).collect();

    let mut group = c.benchmark_group("auth_decision_1m_keys");
    let mut i = 0usize;
    group.bench_function("hit", |b| {
        b.iter(|| {
            i = (i + 1) % headers.len();
            decide(&authn, headers[i].as_bytes()).unwrap();
        })
    });
    let unknown = format!(
        "Bearer {}",
        ApiKeyFormat::new("kg").generate_key().value.as_str()
    );
    group.bench_function("miss_well_formed", |b| {
        b.iter(|| black_box(decide(&authn, unknown.as_bytes()).unwrap_err()))
    });
    let mut typo = headers[0].clone().into_bytes();
    let last = typo.len() - 1;
    typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
    group.bench_function("bad_checksum", |b| {
        b.iter(|| black_box(decide(&authn, &typo).unwrap_err()))
    });
    group.finish();
}

criterion_group!(benches, auth_decision);
criterion_main!(benches);
