//! The SQLite store directly: atomic batches and the guards that keep
//! concurrent writers from undoing each other.

use std::sync::Arc;

use keygate::store::{
    AuditEvent, Organization, PostgresStore, Role, ServiceAccount, SqliteStore, Store, Write,
    WriteBatch,
};
use uuid::Uuid;

use crate::support::pg_schema_url;

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
