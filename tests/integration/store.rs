//! The SQLite store directly: atomic batches and the guards that keep
//! concurrent writers from undoing each other.

use std::sync::Arc;

use keygate::store::{
    AuditEvent, Organization, PostgresStore, Role, ServiceAccount, SqliteStore, Store, Write,
    WriteBatch,
};
use uuid::Uuid;

use crate::support::pg_schema_url;
use hyper::StatusCode;

fn audit(target: Uuid) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7(),
        at: 1,
        actor_id: None,
        action: "test".into(),
        target_type: "test".into(),
        target_id: target,
        organization_id: None,
        details: serde_json::json!({}),
    }
}

fn org() -> Organization {
    Organization {
        id: Uuid::now_v7(),
        name: format!("org-{}", Uuid::now_v7()),
        abbreviation: None,
        max_credential_lifetime: None,
        created_at: 1,
        updated_at: 1,
    }
}

fn account(org: Uuid, name: &str) -> ServiceAccount {
    ServiceAccount {
        id: Uuid::now_v7(),
        organization_id: org,
        project_id: None,
        name: name.into(),
        description: None,
        role: Role::Member,
        scopes: vec![],
        enabled: true,
        expires_at: None,
        closed_at: None,
        rate_limit: None,
        created_by: None,
        created_at: 1,
        updated_at: 1,
        last_used_at: None,
        tokens_not_before: None,
        metadata: Default::default(),
        quota: None,
    }
}

/// Every backend to test: SQLite always; PostgreSQL when
/// `KEYGATE_TEST_POSTGRES_URL` is set (CI sets it), in a schema of its own.
async fn stores() -> Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let mut out: Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> = vec![(
        "sqlite",
        Arc::new(SqliteStore::connect(&url).await.unwrap()),
        Some(dir),
    )];
    if let Some(url) = pg_schema_url().await {
        out.push((
            "postgres",
            Arc::new(PostgresStore::connect(&url).await.unwrap()),
            None,
        ));
    }
    out
}

/// Revokes one key, as the admin API would.
async fn revoke(s: &dyn Store, account_id: Uuid, key_id: Uuid) {
    let revoke = Write::RevokeKey {
        account_id,
        key_id,
        at: 2,
    };
    write(s, vec![revoke]).await.unwrap();
}

async fn write(s: &dyn Store, writes: Vec<Write>) -> keygate::store::Result<i64> {
    s.write(WriteBatch {
        writes,
        audit: audit(Uuid::nil()),
    })
    .await
}

#[tokio::test]
async fn a_stale_account_update_cannot_undo_a_newer_one() {
    for (backend, s, _dir) in stores().await {
        let s = s.as_ref();
        eprintln!("a_stale_account_update_cannot_undo_a_newer_one: {backend}");
        let o = org();
        let a = account(o.id, "bot");
        write(
            s,
            vec![
                Write::InsertOrganization(o.clone()),
                Write::InsertAccount(a.clone()),
            ],
        )
        .await
        .unwrap();
        // Writer 1 disables (based on updated_at = 1).
        let mut disabled = a.clone();
        disabled.enabled = false;
        disabled.updated_at = 2;
        write(
            s,
            vec![Write::UpdateAccount {
                account: disabled,
                previous_updated_at: 1,
            }],
        )
        .await
        .unwrap();
        // Writer 2 read before that and edits the description: refused, not applied.
        let mut stale = a.clone();
        stale.description = Some("edited".into());
        stale.updated_at = 2;
        let err = write(
            s,
            vec![Write::UpdateAccount {
                account: stale,
                previous_updated_at: 1,
            }],
        )
        .await
        .unwrap_err();
        assert!(matches!(err, keygate::store::Error::Stale), "{err:?}");
        let now = s.account(a.id).await.unwrap().unwrap();
        assert!(!now.enabled, "the disable must survive");
        assert_eq!(now.description, None);
    }
}

#[tokio::test]
async fn a_failed_batch_writes_nothing_and_bumps_no_revision() {
    for (backend, s, _dir) in stores().await {
        let s = s.as_ref();
        eprintln!("a_failed_batch_writes_nothing_and_bumps_no_revision: {backend}");
        let o = org();
        write(
            s,
            vec![
                Write::InsertOrganization(o.clone()),
                Write::InsertAccount(account(o.id, "dup")),
            ],
        )
        .await
        .unwrap();
        let before = s.revision().await.unwrap();
        // Second account is fine, third duplicates a name: the whole batch fails.
        let fresh = account(o.id, "fresh");
        let err = write(
            s,
            vec![
                Write::InsertAccount(fresh.clone()),
                Write::InsertAccount(account(o.id, "dup")),
            ],
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, keygate::store::Error::Conflict("name")),
            "{err:?}"
        );
        assert!(
            s.account(fresh.id).await.unwrap().is_none(),
            "half-written batch"
        );
        assert_eq!(s.revision().await.unwrap(), before);
    }
}

/// Many batches at once (PostgreSQL commits the ones that queue up in one
/// transaction): each is all or nothing on its own — a failing batch
/// beside good ones takes none of them down and leaves nothing half
/// written — and every committed batch gets a revision of its own, with
/// the change feed listing exactly those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_commit_alone_or_together_each_all_or_nothing() {
    for (backend, s, _dir) in stores().await {
        eprintln!("concurrent_batches…: {backend}");
        let o = org();
        write(s.as_ref(), vec![Write::InsertOrganization(o.clone())])
            .await
            .unwrap();
        let before = s.revision().await.unwrap();
        // 40 batches of two accounts; every fourth also takes a name the
        // batch before it takes: of each such pair, whichever commits
        // second fails whole.
        let batches = (0..40).map(|i| {
            let s = Arc::clone(&s);
            let o = o.id;
            async move {
                let first = account(o, &format!("a{i}"));
                let second = if i % 4 == 3 {
                    account(o, &format!("a{}", i - 1))
                } else {
                    account(o, &format!("b{i}"))
                };
                let ids = (first.id, second.id);
                let r = write(
                    s.as_ref(),
                    vec![Write::InsertAccount(first), Write::InsertAccount(second)],
                )
                .await;
                (i, ids, r)
            }
        });
        let results = futures_util::future::join_all(batches).await;
        let mut revisions = Vec::new();
        let mut failed = Vec::new();
        for (i, (a, b), r) in results {
            let written = (
                s.account(a).await.unwrap().is_some(),
                s.account(b).await.unwrap().is_some(),
            );
            match r {
                Ok(rev) => {
                    assert_eq!(written, (true, true), "batch {i}");
                    revisions.push(rev);
                }
                Err(e) => {
                    assert!(i % 4 >= 2, "batch {i} failed: {e:?}");
                    assert!(
                        matches!(e, keygate::store::Error::Conflict("name")),
                        "{e:?}"
                    );
                    assert_eq!(written, (false, false), "batch {i} half written");
                    failed.push(i / 4);
                }
            }
        }
        // Exactly one of each colliding pair.
        failed.sort_unstable();
        assert_eq!(failed, (0..10).collect::<Vec<_>>(), "one failure per pair");
        assert_eq!(revisions.len(), 30);
        revisions.sort_unstable();
        revisions.dedup();
        assert_eq!(revisions.len(), 30, "a revision of its own for each batch");
        let feed = s.changes_since(before, 1000).await.unwrap();
        let feed: Vec<i64> = feed.iter().map(|c| c.revision).collect();
        assert_eq!(
            feed, revisions,
            "the feed lists exactly the committed batches, in order"
        );
    }
}

#[tokio::test]
async fn an_organization_with_open_accounts_is_not_deleted_even_if_checked_earlier() {
    for (backend, s, _dir) in stores().await {
        let s = s.as_ref();
        eprintln!(
            "an_organization_with_open_accounts_is_not_deleted_even_if_checked_earlier: {backend}"
        );
        let o = org();
        write(s, vec![Write::InsertOrganization(o.clone())])
            .await
            .unwrap();
        // An account arrives after a caller checked the org was empty.
        let a = account(o.id, "late");
        write(s, vec![Write::InsertAccount(a.clone())])
            .await
            .unwrap();
        let err = write(
            s,
            vec![Write::DeleteOrganization {
                id: o.id,
                closed_after: 0,
            }],
        )
        .await
        .unwrap_err();
        assert!(matches!(err, keygate::store::Error::Stale), "{err:?}");
        assert!(s.account(a.id).await.unwrap().is_some());
        assert!(s.organization(o.id).await.unwrap().is_some());
    }
}

/// The live keys after `after`, through `through`, read as the initial
/// load reads them: pages of `limit`, each at most that long.
async fn live_keys(
    s: &dyn Store,
    mut after: Option<Uuid>,
    through: Option<Uuid>,
    limit: u32,
) -> Vec<keygate::store::AuthEntry> {
    let mut keys = Vec::new();
    loop {
        let page = s
            .auth_entries(keygate::store::Keyset::after(after, limit), through)
            .await
            .unwrap();
        assert!(page.len() <= limit as usize);
        keys.extend(page.iter().cloned());
        match page.last() {
            Some(last) if page.len() == limit as usize => after = Some(last.key_id),
            _ => return keys,
        }
    }
}

/// The cache's initial load reads live keys page by page, each page
/// aggregated by the store into one row: every field must come back as
/// written, pages must not skip or repeat, and dead keys stay out.
#[tokio::test]
async fn the_initial_load_pages_through_every_live_key_with_its_fields() {
    use keygate::secret::KeyHash;
    use keygate::store::{ApiKey, Project};

    for (backend, s, _dir) in stores().await {
        let s = s.as_ref();
        let o = org();
        let p = Project {
            id: Uuid::now_v7(),
            organization_id: o.id,
            name: "p".into(),
            archived: false,
            created_at: 1,
            updated_at: 1,
        };
        let mut writes = vec![
            Write::InsertOrganization(o.clone()),
            Write::InsertProject(p.clone()),
        ];
        let mut live = Vec::new();
        let mut revoked = None;
        for i in 0..23u32 {
            let mut a = account(o.id, &format!("bot-{i}"));
            a.project_id = (i % 3 == 0).then_some(p.id);
            a.expires_at = (i % 2 == 0).then_some(4_102_444_800_000 + i64::from(i));
            a.rate_limit = (i % 4 == 0).then(|| "10/s burst 3".to_string());
            a.role = if i == 5 { Role::Owner } else { Role::Member };
            a.scopes = vec!["orders:read".into(), format!("items:{i}")];
            a.enabled = i != 7; // a disabled account's key is not loaded
            let key = ApiKey {
                id: Uuid::now_v7(),
                service_account_id: a.id,
                name: None,
                hash: KeyHash::of(&format!("key-{i}")),
                redacted: "kg_…".into(),
                created_at: 1,
                expires_at: (i % 5 == 0).then_some(4_102_444_900_000),
                revoked_at: None,
                last_used_at: None,
                limits: Default::default(),
            };
            if i == 11 {
                revoked = Some((a.id, key.id));
            } else if i != 7 {
                live.push((a.clone(), key.clone()));
            }
            writes.push(Write::InsertAccount(a));
            writes.push(Write::InsertKey(key));
        }
        write(s, writes).await.unwrap();
        let (account_id, key_id) = revoked.unwrap();
        revoke(s, account_id, key_id).await;

        let loaded = live_keys(s, None, None, 5).await;
        assert_eq!(loaded.len(), live.len(), "{backend}: every live key once");
        assert!(
            loaded.windows(2).all(|w| w[0].key_id < w[1].key_id),
            "{backend}: in key order, none repeated"
        );
        for (a, k) in &live {
            let e = loaded
                .iter()
                .find(|e| e.key_id == k.id)
                .unwrap_or_else(|| panic!("{backend}: key of {} missing", a.name));
            assert_eq!(e.hash, k.hash, "{backend}");
            assert_eq!(e.key_expires_at, k.expires_at, "{backend}");
            assert_eq!(e.account_id, a.id, "{backend}");
            assert_eq!(e.organization_id, a.organization_id, "{backend}");
            assert_eq!(e.project_id, a.project_id, "{backend}");
            assert_eq!(e.role, a.role, "{backend}");
            assert_eq!(e.account_expires_at, a.expires_at, "{backend}");
            assert_eq!(e.rate_limit, a.rate_limit, "{backend}");
            let scopes: Vec<String> = serde_json::from_str(&e.scopes_json).unwrap();
            assert_eq!(scopes, a.scopes, "{backend}");
        }

        // Side by side, as a start reads them: the cuts split all 23 keys
        // (the revoked and the disabled one's too) into ranges that, paged
        // through, give every live key once.
        assert!(
            s.key_splits(3, 12).await.unwrap().is_empty(),
            "{backend}: 23 keys are too few for two ranges of 12"
        );
        let cuts = s.key_splits(3, 5).await.unwrap();
        assert_eq!(cuts.len(), 2, "{backend}: {cuts:?}");
        assert!(cuts[0] < cuts[1], "{backend}: ascending");
        let mut by_range = Vec::new();
        for (after, through) in keygate::replicate::load_ranges(&cuts) {
            let range = live_keys(s, after, through, 4).await;
            by_range.extend(range.iter().map(|e| e.key_id));
        }
        let paged: Vec<Uuid> = loaded.iter().map(|e| e.key_id).collect();
        assert_eq!(
            by_range, paged,
            "{backend}: the same keys, once each, in order"
        );
    }
}

#[tokio::test]
async fn account_pages_read_both_ways_in_id_order() {
    use keygate::store::{AccountFilter, Keyset};
    for (backend, s, _dir) in stores().await {
        let s = s.as_ref();
        eprintln!("account_pages_read_both_ways_in_id_order: {backend}");
        let o = org();
        write(s, vec![Write::InsertOrganization(o.clone())])
            .await
            .unwrap();
        let mut ids = Vec::new();
        for i in 0..7 {
            let a = account(o.id, &format!("a{i}"));
            ids.push(a.id);
            write(s, vec![Write::InsertAccount(a)]).await.unwrap();
        }
        let filter = AccountFilter {
            organization_id: Some(o.id),
            ..AccountFilter::default()
        };
        let read = |page: Keyset| {
            let filter = filter.clone();
            async move {
                s.accounts(&filter, 0, page)
                    .await
                    .unwrap()
                    .iter()
                    .map(|a| a.id)
                    .collect::<Vec<_>>()
            }
        };
        // Forwards from the start and past a cursor.
        assert_eq!(read(Keyset::after(None, 3)).await, ids[..3]);
        assert_eq!(read(Keyset::after(Some(ids[2]), 3)).await, ids[3..6]);
        // Backwards: the items nearest before the cursor, still ascending.
        let before = |id, limit| Keyset {
            after: None,
            before: Some(id),
            limit,
        };
        assert_eq!(read(before(ids[5], 3)).await, ids[2..5]);
        assert_eq!(read(before(ids[1], 3)).await, ids[..1]);
        assert!(read(before(ids[0], 3)).await.is_empty());
    }
}

/// A start reads a store of more than `LOAD_MIN_PER_PART` keys per range in
/// key ranges side by side: every live key is cached, the ones at and
/// beside a range's cut included, and a revoked key beside a cut is not.
#[tokio::test]
async fn a_store_read_in_ranges_at_start_caches_every_live_key_once() {
    use keygate::replicate::{load_ranges, LOAD_MIN_PER_PART};
    use keygate::secret::ApiKeyFormat;
    use keygate::store::ApiKey;

    use crate::support::{test_store, Harness};

    let dir = tempfile::tempdir().unwrap();
    let url = match test_store().await {
        Some(url) => url,
        None => format!("sqlite://{}", dir.path().join("ranges.db").display()),
    };
    let s: Arc<dyn Store> = if url.starts_with("postgres") {
        Arc::new(PostgresStore::connect(&url).await.unwrap())
    } else {
        Arc::new(SqliteStore::connect(&url).await.unwrap())
    };
    let o = org();
    write(s.as_ref(), vec![Write::InsertOrganization(o.clone())])
        .await
        .unwrap();
    // Two ranges' worth and one more key: every machine splits in two.
    let n = 2 * LOAD_MIN_PER_PART as usize + 1;
    let format = ApiKeyFormat::new("kg");
    let mut keys = Vec::with_capacity(n);
    for batch in 0..n.div_ceil(1000) {
        let mut writes = Vec::new();
        for i in batch * 1000..((batch + 1) * 1000).min(n) {
            let mut a = account(o.id, &format!("bot-{i}"));
            a.scopes = vec!["orders:read".into()];
            let g = format.generate_key();
            let key = ApiKey {
                id: Uuid::now_v7(),
                service_account_id: a.id,
                name: None,
                hash: g.hash,
                redacted: g.redacted,
                created_at: 1,
                expires_at: None,
                revoked_at: None,
                last_used_at: None,
                limits: Default::default(),
            };
            keys.push((key.id, a.id, g.value.as_str().to_string()));
            writes.push(Write::InsertAccount(a));
            writes.push(Write::InsertKey(key));
        }
        write(s.as_ref(), writes).await.unwrap();
    }
    keys.sort_by_key(|k| k.0);
    let cuts = s.key_splits(4, LOAD_MIN_PER_PART).await.unwrap();
    assert_eq!(cuts.len(), 1, "{n} keys make two ranges: {cuts:?}");
    assert_eq!(load_ranges(&cuts).len(), 2);
    let at = keys.iter().position(|k| k.0 == cuts[0]).unwrap();
    // The key just past the cut revoked; the one at the cut, those around
    // them, the first and the last must answer.
    let (key_id, account_id, _) = keys[at + 1].clone();
    revoke(s.as_ref(), account_id, key_id).await;

    let h = Harness::start_with(Some(url), "", &[]).await;
    for i in [0, at - 1, at, at + 2, n - 1] {
        assert_eq!(
            h.key_status(StatusCode::OK, &keys[i].2).await,
            StatusCode::OK,
            "key {i} of {n} (cut at {at})"
        );
    }
    assert_eq!(
        h.key_status(StatusCode::UNAUTHORIZED, &keys[at + 1].2)
            .await,
        StatusCode::UNAUTHORIZED,
        "the revoked key past the cut"
    );
    // Every live key once: the cache holds as many keys as the store has
    // live (the ranges neither skip nor repeat one). The store's count
    // includes the first admin's key, which the start created.
    let live = live_keys(s.as_ref(), None, None, 1000).await.len();
    assert_eq!(live, n, "{n} keys, one revoked, and the first admin's");
    let scraped = crate::observability::scrape(&h).await;
    assert_eq!(
        scraped.get("keygate_cache_entries", &[]),
        live as f64,
        "keys cached"
    );
}

/// The search for an open admin at start (through its partial index) finds
/// one in any organization, and nothing that only looks like one: a closed
/// admin, a scope that merely starts with the admin scope's name.
#[tokio::test]
async fn the_admin_search_finds_an_open_admin_anywhere_and_nothing_else() {
    for (name, s, _dir) in stores().await {
        let o = org();
        write(&*s, vec![Write::InsertOrganization(o.clone())])
            .await
            .unwrap();
        assert!(!s.has_admin().await.unwrap(), "{name}: an empty store");

        let mut lookalike = account(o.id, "lookalike");
        lookalike.scopes = vec![
            "keygate:admins".into(),
            "keygate:admin:read".into(),
            // SQLite's LIKE ignores case: the index finds it, and it must
            // still not count.
            "KEYGATE:ADMIN".into(),
        ];
        let mut closed = account(o.id, "imported-admin");
        closed.scopes = vec!["orders:read".into(), "keygate:admin".into()];
        closed.closed_at = Some(1);
        write(
            &*s,
            vec![
                Write::InsertAccount(lookalike),
                Write::InsertAccount(closed.clone()),
            ],
        )
        .await
        .unwrap();
        assert!(
            !s.has_admin().await.unwrap(),
            "{name}: a closed admin and a look-alike scope are not an open admin"
        );

        let mut open = account(o.id, "imported-admin-2");
        open.scopes = closed.scopes.clone();
        write(&*s, vec![Write::InsertAccount(open)]).await.unwrap();
        assert!(
            s.has_admin().await.unwrap(),
            "{name}: an open admin outside the platform organization"
        );
    }
}
