//! JWT costs: minting one token and verifying one, per algorithm; and the
//! proxy's path for a token it has seen before (verified-token cache +
//! account/revocation checks) next to the API-key decision it should match.
//!
//! Run: `cargo bench --bench tokens`. Figures go to benches/README.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use keygate::authn::{Accept, Authenticator, Cache};
use keygate::clock::{SharedClock, SystemClock};
use keygate::config::RateSpec;
use keygate::jwt::mint::{Grant, Subject};
use keygate::jwt::{signing as keys, KeyRing, Minter, Verifier};
use keygate::secret::ApiKeyFormat;
use keygate::store::{AuthEntry, Role, SigningKeyRecord};
use uuid::Uuid;

const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

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
    let authenticator = |ring: Arc<KeyRing>| {
        let cache = Arc::new(Cache::new(i64::MAX));
        cache.freshness().mark_synced(clock.now_ms());
        Authenticator::new(
            cache,
            Verifier::new(ring, ISSUER.into()),
            RateSpec::parse("10/s").unwrap(),
            ApiKeyFormat::new("kg"),
            Arc::clone(&clock),
        )
    };
    let account = Uuid::now_v7();
    let subject = Subject {
        account_id: account,
        organization_id: Uuid::now_v7(),
        project_id: None,
        client_id: "kgc_0123456789012345678901",
        scope: "orders:read orders:write",
        expires_at: i64::MAX,
        role: Role::Member,
        allowed_cidrs: None,
        act: None,
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
            b.iter(|| {
                black_box(
                    minter
                        .mint(Grant::ClientCredentials, &subject, Some("orders-api"), None)
                        .unwrap(),
                )
            })
        });
        let token = minter
            .mint(Grant::ClientCredentials, &subject, Some("orders-api"), None)
            .unwrap()
            .token;
        verify.push((alg, authenticator(ring), token));
    }
    mint.finish();

    let mut group = c.benchmark_group("jwt_verify");
    for (alg, authn, token) in &verify {
        group.bench_function(format!("{}_uncached", keys::algorithm_name(*alg)), |b| {
            b.iter(|| black_box(authn.verify_uncached(black_box(token)).unwrap()))
        });
    }
    // The proxy's path for a token it has seen: lookup + account checks.
    let (_, authn, token) = &verify[0];
    let route = Accept::Route {
        audience: Some("orders-api"),
        issuers: keygate::authn::IssuerSet::EMPTY,
    };
    authn.bearer(PEER, Ok(token), route).unwrap();
    group.bench_function("cached_at_proxy", |b| {
        b.iter(|| black_box(authn.bearer(PEER, Ok(black_box(token)), route).unwrap()))
    });
    // For comparison, in the same run: the API-key decision.
    let format = ApiKeyFormat::new("kg");
    let g = format.generate_key();
    authn.cache().insert(&AuthEntry {
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
        b.iter(|| black_box(authn.bearer(PEER, Ok(black_box(&secret)), route).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
