//! The authenticator against a cache filled the way replication fills it.

use std::net::IpAddr;
use std::sync::Arc;

use uuid::Uuid;

use super::*;
use crate::clock::{ManualClock, SharedClock};
use crate::jwt::KeyRing;
use crate::store::{ApiKey, Role, ServiceAccount};

const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn account(enabled: bool) -> ServiceAccount {
    ServiceAccount {
        id: Uuid::now_v7(),
        organization_id: Uuid::now_v7(),
        project_id: None,
        name: "a".into(),
        description: None,
        role: Role::Member,
        scopes: vec!["orders:read".into()],
        enabled,
        expires_at: None,
        closed_at: None,
        rate_limit: None,
        created_by: None,
        created_at: 0,
        updated_at: 0,
        last_used_at: None,
        tokens_not_before: None,
        metadata: Default::default(),
        quota: None,
    }
}

fn key(format: &ApiKeyFormat, account: &ServiceAccount) -> (String, ApiKey) {
    let g = format.generate_key();
    (
        g.value.to_string(),
        ApiKey {
            id: Uuid::now_v7(),
            service_account_id: account.id,
            name: None,
            hash: g.hash,
            redacted: g.redacted,
            created_at: 0,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            limits: Default::default(),
        },
    )
}

fn authenticator(clock: Arc<ManualClock>) -> (Authenticator, ApiKeyFormat) {
    let format = ApiKeyFormat::new("kg");
    let cache = Arc::new(Cache::new(i64::MAX / 2));
    cache.freshness().mark_synced(0);
    let clock: SharedClock = clock;
    let verifier = Verifier::new(Arc::new(KeyRing::new()), "http://kg".into());
    let spec = RateSpec::parse("3/h").unwrap();
    let a = Authenticator::new(cache, verifier, spec, format.clone(), clock);
    (a, format)
}

fn route() -> Accept<'static> {
    Accept::Route {
        audience: None,
        issuers: crate::authn::IssuerSet::EMPTY,
    }
}

#[test]
fn live_key_authenticates_and_disabling_evicts_it() {
    let clock = ManualClock::new(1);
    let (a, format) = authenticator(Arc::clone(&clock));
    let mut acct = account(true);
    let (secret, k) = key(&format, &acct);
    a.cache()
        .apply_account(&acct, std::slice::from_ref(&k), &[]);
    let p = a.bearer(PEER, Ok(&secret), route()).unwrap();
    assert_eq!(p.account_id, acct.id);
    assert_eq!(p.kind, CredentialKind::ApiKey);
    assert!(p.scopes.contains("orders:read"));
    assert_eq!(&p.scopes.joined()[..], b"orders:read");

    acct.enabled = false;
    a.cache()
        .apply_account(&acct, std::slice::from_ref(&k), &[]);
    assert_eq!(
        a.bearer(PEER, Ok(&secret), route()).unwrap_err(),
        Refusal::Invalid
    );
}

#[test]
fn expiry_is_enforced_and_failures_are_charged_to_the_address() {
    let clock = ManualClock::new(99);
    let (a, format) = authenticator(Arc::clone(&clock));
    let mut acct = account(true);
    acct.expires_at = Some(100);
    let (secret, k) = key(&format, &acct);
    a.cache().apply_account(&acct, &[k], &[]);
    assert!(a.bearer(PEER, Ok(&secret), route()).is_ok());
    clock.advance(1);
    assert_eq!(
        a.bearer(PEER, Ok(&secret), route()).unwrap_err(),
        Refusal::Invalid
    );
    // Garbage is refused before any lookup, and counts as a failure: the
    // budget (3/h) runs out on the fourth.
    assert_eq!(
        a.bearer(PEER, Ok("kg_nope"), route()).unwrap_err(),
        Refusal::Invalid
    );
    assert_eq!(
        a.bearer(PEER, Err(presented::Error::Malformed), route())
            .unwrap_err(),
        Refusal::Invalid
    );
    assert!(matches!(
        a.bearer(PEER, Ok("kg_nope"), route()).unwrap_err(),
        Refusal::Throttled(_)
    ));
    // Presenting nothing is not a failure.
    let other: IpAddr = "10.0.0.9".parse().unwrap();
    assert_eq!(
        a.bearer(other, Err(presented::Error::Missing), route())
            .unwrap_err(),
        Refusal::Missing
    );
}

#[test]
fn a_custom_admin_key_works_only_on_the_admin_listener() {
    let clock = ManualClock::new(1);
    let (a, _) = authenticator(Arc::clone(&clock));
    let acct = account(true);
    let custom = "a-custom-admin-key-of-more-than-32-characters";
    let k = ApiKey {
        id: Uuid::now_v7(),
        service_account_id: acct.id,
        name: None,
        hash: KeyHash::of(custom),
        redacted: "(custom)".into(),
        created_at: 0,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
        limits: Default::default(),
    };
    a.cache().apply_account(&acct, &[k], &[]);
    assert!(a.bearer(PEER, Ok(custom), Accept::Admin).is_ok());
    assert_eq!(
        a.bearer(PEER, Ok(custom), route()).unwrap_err(),
        Refusal::Invalid
    );
}

#[test]
fn usage_is_queued_once_per_window() {
    let clock = ManualClock::new(usage::RESOLUTION_MS);
    let (a, format) = authenticator(Arc::clone(&clock));
    let acct = account(true);
    let (secret, k) = key(&format, &acct);
    a.cache().apply_account(&acct, &[k], &[]);
    for _ in 0..3 {
        a.bearer(PEER, Ok(&secret), route()).unwrap();
        clock.advance(1);
    }
    assert_eq!(a.usage().take().len(), 1);
    assert!(a.usage().take().is_empty());
}

#[test]
fn equal_scope_sets_are_shared() {
    let clock = ManualClock::new(1);
    let (a, format) = authenticator(Arc::clone(&clock));
    let (x, y) = (account(true), account(true));
    let (sx, kx) = key(&format, &x);
    let (sy, ky) = key(&format, &y);
    a.cache().apply_account(&x, &[kx], &[]);
    a.cache().apply_account(&y, &[ky], &[]);
    let px = a.bearer(PEER, Ok(&sx), route()).unwrap();
    let py = a.bearer(PEER, Ok(&sy), route()).unwrap();
    assert!(Arc::ptr_eq(&px.scopes, &py.scopes));
}

#[test]
fn keys_of_accounts_alike_share_a_profile_until_both_are_gone() {
    let clock = ManualClock::new(1);
    let (a, format) = authenticator(Arc::clone(&clock));
    let x = account(true);
    let mut y = account(true);
    y.organization_id = x.organization_id;
    let (sx, kx) = key(&format, &x);
    let (sy, ky) = key(&format, &y);
    a.cache().apply_account(&x, std::slice::from_ref(&kx), &[]);
    a.cache().apply_account(&y, std::slice::from_ref(&ky), &[]);
    let px = a.bearer(PEER, Ok(&sx), route()).unwrap();
    let py = a.bearer(PEER, Ok(&sy), route()).unwrap();
    assert!(px.shares_profile(&py));
    // What is each key's own stays its own.
    assert_eq!((px.account_id, py.account_id), (x.id, y.id));
    assert_eq!((px.credential_id, py.credential_id), (kx.id, ky.id));
    assert_eq!((px.source(), py.source()), (kx.id, ky.id));
    assert_eq!(a.cache().profile_count(), 1);

    // Another organization: another profile.
    let z = account(true);
    let (sz, kz) = key(&format, &z);
    a.cache().apply_account(&z, &[kz], &[]);
    let pz = a.bearer(PEER, Ok(&sz), route()).unwrap();
    assert!(!pz.shares_profile(&px));
    assert_eq!(pz.organization_id, z.organization_id);

    // Profiles go with the last principal holding them.
    drop((px, py, pz));
    a.cache().evict(&[kx, ky], &[]);
    a.cache().sweep_dead(1, 0);
    assert_eq!(a.cache().profile_count(), 1);
}

#[test]
fn a_stale_cache_fails_closed() {
    let clock = ManualClock::new(1);
    let format = ApiKeyFormat::new("kg");
    let cache = Arc::new(Cache::new(1_000));
    cache.freshness().mark_synced(1);
    let shared: SharedClock = clock.clone();
    let verifier = Verifier::new(Arc::new(KeyRing::new()), "http://kg".into());
    let a = Authenticator::new(
        cache,
        verifier,
        RateSpec::parse("10/s").unwrap(),
        format,
        shared,
    );
    assert_eq!(
        a.bearer(PEER, Err(presented::Error::Missing), route())
            .unwrap_err(),
        Refusal::Missing
    );
    clock.advance(2_000);
    assert_eq!(
        a.bearer(PEER, Err(presented::Error::Missing), route())
            .unwrap_err(),
        Refusal::Stale
    );
}

fn credential(
    format: &ApiKeyFormat,
    account: &ServiceAccount,
    public_jwk: Option<serde_json::Value>,
) -> (String, crate::store::ClientCredential) {
    let g = format.generate_secret();
    (
        g.value.to_string(),
        crate::store::ClientCredential {
            id: Uuid::now_v7(),
            client_id: format.generate_client_id(),
            service_account_id: account.id,
            name: "c".into(),
            description: None,
            secret_hash: g.hash,
            created_at: 0,
            expires_at: None,
            deleted_at: None,
            last_used_at: None,
            tokens_not_before: None,
            limits: Default::default(),
            public_jwk,
        },
    )
}

/// SECURITY: even the secret whose hash a key credential stores (nobody
/// should hold it) does not authenticate it; only an assertion its key
/// verifies does.
#[test]
fn a_credential_with_a_public_key_never_authenticates_by_secret() {
    let clock = ManualClock::new(1);
    let (a, format) = authenticator(clock);
    let acct = account(true);
    let (_, jwk) = crate::jwt::signing::generate(jsonwebtoken::Algorithm::ES256, "k").unwrap();
    let (secret, keyed) = credential(&format, &acct, Some(jwk));
    let (plain_secret, plain) = credential(&format, &acct, None);
    a.cache()
        .apply_account(&acct, &[], &[keyed.clone(), plain.clone()]);
    assert!(a.client(PEER, &plain.client_id, &plain_secret).is_ok());
    assert_eq!(
        a.client(PEER, &keyed.client_id, &secret).err(),
        Some(Refusal::Invalid)
    );
    // The key is handed to the verifier; its answer decides.
    assert!(a
        .client_assertion(PEER, &keyed.client_id, |k, _| k.kid.as_deref() == Some("k"))
        .is_ok());
    assert!(a
        .client_assertion(PEER, &keyed.client_id, |_, _| false)
        .is_err());
    // A secret credential has no key: no assertion authenticates it.
    assert!(a
        .client_assertion(PEER, &plain.client_id, |_, _| true)
        .is_err());
}

/// Key `n` of an account of `org` with `scopes`, as the initial load reads it.
fn loaded_entry(n: usize, org: Uuid, scopes: &Arc<str>) -> crate::store::AuthEntry {
    crate::store::AuthEntry {
        key_id: Uuid::now_v7(),
        hash: crate::secret::KeyHash::of(&format!("kg_{n}")),
        key_expires_at: None,
        account_id: Uuid::now_v7(),
        organization_id: org,
        project_id: None,
        role: Role::Member,
        scopes_json: Arc::clone(scopes),
        account_expires_at: None,
        rate_limit: None,
    }
}

#[test]
fn a_loaded_page_gives_each_key_its_own_accounts_scopes_and_profile() {
    let cache = Cache::new(60_000);
    let (org, other_org) = (Uuid::now_v7(), Uuid::now_v7());
    let read: Arc<str> = r#"["a:read"]"#.into();
    let entry = loaded_entry;
    // Neighbours sharing one text, a different text, the first text again
    // in a text of its own, and the first text in another organisation.
    let mut page = [
        entry(0, org, &read),
        entry(1, org, &read),
        entry(2, org, &r#"["b:write"]"#.into()),
        entry(3, org, &r#"["a:read"]"#.into()),
        entry(4, other_org, &read),
    ];
    // Expiry is the key's and the account's own, not its profile's.
    page[1].key_expires_at = Some(7_000);
    page[1].account_expires_at = Some(5_000);
    page[4].key_expires_at = Some(3_000);
    cache.insert_page(&page);
    let p: Vec<_> = page.iter().map(|e| cache.key(&e.hash).unwrap()).collect();
    for (i, e) in page.iter().enumerate() {
        assert_eq!(p[i].credential_id, e.key_id);
        assert_eq!(p[i].account_id, e.account_id);
        assert_eq!(p[i].organization_id, e.organization_id);
    }
    assert_eq!(p[0].expires_at, i64::MAX);
    assert_eq!(p[1].expires_at, 5_000);
    assert_eq!(p[4].expires_at, 3_000);
    for (i, e) in page.iter().enumerate() {
        assert_eq!(p[i].key_hash(), &e.hash);
    }
    assert!(p[0].scopes.contains("a:read") && !p[0].scopes.contains("b:write"));
    assert!(p[2].scopes.contains("b:write") && !p[2].scopes.contains("a:read"));
    assert!(p[3].scopes.contains("a:read") && !p[3].scopes.contains("b:write"));
    assert!(p[4].scopes.contains("a:read"));
    // Alike keys share one set; the other organisation is a profile of its own.
    assert!(Arc::ptr_eq(&p[0].scopes, &p[3].scopes));
    assert!(Arc::ptr_eq(&p[0].scopes, &p[4].scopes));
    assert_eq!(cache.profile_count(), 3);
}

#[test]
fn a_loaded_key_differing_from_its_neighbour_in_any_profile_field_gets_its_own() {
    let cache = Cache::new(60_000);
    let (org, project) = (Uuid::now_v7(), Uuid::now_v7());
    let scopes: Arc<str> = r#"["a:read"]"#.into();
    // Each differs from the one before in one field only.
    let mut page: Vec<_> = (0..4).map(|n| loaded_entry(n, org, &scopes)).collect();
    page[1].role = Role::Owner;
    page[2].project_id = Some(project);
    page[2].role = Role::Owner;
    page[3].project_id = Some(project);
    page[3].role = Role::Owner;
    page[3].rate_limit = Some("5/s".into());
    cache.insert_page(&page);
    let p: Vec<_> = page.iter().map(|e| cache.key(&e.hash).unwrap()).collect();
    assert_eq!((p[0].role, p[1].role), (Role::Member, Role::Owner));
    assert_eq!((p[1].project_id, p[2].project_id), (None, Some(project)));
    assert!(p[2].rate_limit.is_none());
    assert_eq!(p[3].rate_limit, RateSpec::parse("5/s").ok());
    assert_eq!(cache.profile_count(), 4);
}
