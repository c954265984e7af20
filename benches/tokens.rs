//! JWT costs: minting one token and verifying one, per algorithm; and the
//! proxy's path for a token it has seen before (verified-token cache +
//! account/revocation checks) next to the API-key decision it should match.
//!
//! Run: `cargo bench --bench tokens`. Figures go to benches/README.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use keygate::cache::Cache;
use keygate::clock::{SharedClock, SystemClock};
use keygate::credential::ApiKeyFormat;
use keygate::store::{AuthEntry, Role, SigningKeyRecord};
use keygate::token::mint::Subject;
use keygate::token::{keys, KeyRing, Minter, TokenVerifier};
use uuid::Uuid;

const ISSUER: &str = "http://127.0.0.1:8080";

fn ring(alg: jsonwebtoken::Algorithm) -> Arc<KeyRing> {
    let (der, jwk) = keys::generate(alg, "bench").unwrap();
    let ring = Arc::new(KeyRing::new());
    ring.replace(&[SigningKeyRecord {
        kid: "bench".into(),
        algorithm: keys::algorithm_name(alg).into(),
        private_der: der,
        public_jwk: jwk,
        created_at: 0,
        activates_at: 0,
        retires_at: None,
    }]);
    ring
}

fn tokens(c: &mut Criterion) {
    let clock: SharedClock = Arc::new(SystemClock);
    let cache = Cache::new(ApiKeyFormat::new("kg"), i64::MAX);
    let account = Uuid::now_v7();
    let subject = Subject {
        account_id: account,
        organization_id: Uuid::now_v7(),
        project_id: None,
        client_id: "kgc_0123456789012345678901",
        scope: "orders:read orders:write",
        expires_at: i64::MAX,
    };

    let mut mint = c.benchmark_group("jwt_mint");
    let mut verify = Vec::new();
    for alg in [
        jsonwebtoken::Algorithm::ES256,
        jsonwebtoken::Algorithm::EdDSA,
        jsonwebtoken::Algorithm::RS256,
    ] {
        let ring = ring(alg);
        let minter = Minter::new(
            Arc::clone(&ring),
            ISSUER.into(),
            Duration::from_secs(300),
            Duration::from_secs(3600),
            Arc::clone(&clock),
        );
        mint.bench_function(keys::algorithm_name(alg), |b| {
            b.iter(|| black_box(minter.mint(&subject, Some("orders-api"), None).unwrap()))
        });
        let token = minter
            .mint(&subject, Some("orders-api"), None)
            .unwrap()
            .token;
        verify.push((alg, TokenVerifier::new(ring, ISSUER.into()), token));
    }
    mint.finish();

    let mut group = c.benchmark_group("jwt_verify");
    for (alg, verifier, token) in &verify {
        group.bench_function(format!("{}_uncached", keys::algorithm_name(*alg)), |b| {
            b.iter(|| {
                black_box(
                    verifier
                        .verify_uncached(black_box(token), &cache, clock.now_ms())
                        .unwrap(),
                )
            })
        });
    }
    // The proxy's path for a token it has seen: SHA-256 + lookup + checks.
    let (_, verifier, token) = &verify[0];
    verifier
        .authenticate(token, Some("orders-api"), &cache, clock.now_ms())
        .unwrap();
    group.bench_function("cached_at_proxy", |b| {
        b.iter(|| {
            black_box(
                verifier
                    .authenticate(black_box(token), Some("orders-api"), &cache, clock.now_ms())
                    .unwrap(),
            )
        })
    });
    // For comparison, in the same run: the API-key decision.
    let format = ApiKeyFormat::new("kg");
    let g = format.generate_key();
    cache.insert(&AuthEntry {
        key_id: Uuid::now_v7(),
        hash: g.hash,
        key_expires_at: None,
        account_id: account,
        organization_id: Uuid::now_v7(),
        project_id: None,
        role: Role::Member,
        scopes_json: r#"["orders:read"]"#.into(),
        account_expires_at: None,
        rate_limit: None,
    });
    let secret = g.value.to_string();
    group.bench_function("api_key_for_comparison", |b| {
        b.iter(|| {
            black_box(
                cache
                    .authenticate(black_box(&secret), clock.now_ms())
                    .unwrap(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
