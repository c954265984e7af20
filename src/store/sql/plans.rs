//! The reads at start that partial indexes serve still use them. A partial
//! index serves a query only while the query's WHERE says what the
//! index's WHERE says, so an edit to either would silently make every start
//! read whole tables again (at a million keys, ~0.3 s of a start, and 0.2 s
//! more for the admin search on an imported store). SQLite plans without
//! statistics here, so an empty store plans as a million-key one does.

use super::*;
use crate::store::sqlite::SqliteStore;

async fn plan(store: &SqliteStore, sql: &str) -> String {
    let rows = store
        .fetch(Stmt::new(format!("EXPLAIN QUERY PLAN {sql}")))
        .await
        .unwrap();
    let steps: Vec<String> = rows.iter().map(|r| r.text("detail").unwrap()).collect();
    steps.join("; ")
}

/// A new, empty store (its directory kept alive beside it).
async fn empty_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("plans.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn the_reads_after_the_keys_at_start_use_their_partial_indexes() {
    let (_dir, store) = empty_store().await;

    let restricted = plan(
        &store,
        &format!("SELECT {ACCOUNT_COLUMNS} FROM service_accounts a WHERE {RESTRICTED_ACCOUNTS}"),
    )
    .await;
    assert!(
        restricted.contains("USING INDEX service_accounts_restricted"),
        "{restricted}"
    );

    let narrowed = plan(&store, metering::NARROWED_ACCOUNTS).await;
    for index in [
        "service_accounts_quota",
        "api_keys_narrowing",
        "client_credentials_narrowing",
        "federated_identities_live",
    ] {
        assert!(
            narrowed.contains(&format!("USING INDEX {index}")),
            "{index}: {narrowed}"
        );
    }
}

#[tokio::test]
async fn the_search_for_an_admin_at_start_uses_its_partial_index() {
    // The pattern is a literal (an index cannot serve a parameter): it must
    // still be the admin scope as the scopes' JSON array holds it.
    let quoted = serde_json::to_string(ADMIN_SCOPE).unwrap();
    assert!(
        OPEN_ADMINS.contains(&format!("LIKE '%{quoted}%'")),
        "{OPEN_ADMINS}"
    );

    let (_dir, store) = empty_store().await;
    let search = plan(&store, &admin_search()).await;
    assert!(
        search.contains("USING INDEX service_accounts_open_admins"),
        "{search}"
    );
}
