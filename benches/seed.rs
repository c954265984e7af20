//! Fills a store with N service accounts, one API key each, through the
//! store's own write path (so the schema stays the store's business), and
//! writes a few of the keys to a file for the load runs.
//!
//! `cargo bench --bench seed -- --store sqlite:///tmp/k.db --keys 1000000 --out keys.txt [--map keys.map]`
//! Without `--store` it exits at once, so a plain `cargo bench` is unaffected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;

use keygate::secret::ApiKeyFormat;
use keygate::store::{
    self, ApiKey, AuditEvent, Organization, Role, ServiceAccount, Write, WriteBatch,
};
use uuid::Uuid;

const BATCH: usize = 20_000;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(url) = arg(&args, "--store") else {
        println!("seed: idle (pass --store URL --keys N --out FILE)");
        return;
    };
    let n: usize = arg(&args, "--keys")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let out = arg(&args, "--out").unwrap_or_else(|| "keys.txt".into());
    let scopes: Vec<String> = arg(&args, "--scopes")
        .unwrap_or_else(|| "orders:read orders:write".into())
        .split(' ')
        .map(str::to_string)
        .collect();
    let store = store::connect(&url, metrics::Counter::noop())
        .await
        .expect("store");
    let format = ApiKeyFormat::new("kg");
    let org = Organization {
        id: Uuid::now_v7(),
        name: format!("seed-{}", Uuid::now_v7().simple()),
        abbreviation: None,
        max_credential_lifetime: None,
        created_at: 0,
        updated_at: 0,
    };
    let audit = |id| AuditEvent {
        id: Uuid::now_v7(),
        at: 0,
        actor_id: None,
        action: "seed".into(),
        target_type: "organization".into(),
        target_id: id,
        organization_id: Some(id),
        details: serde_json::json!({}),
    };
    store
        .write(WriteBatch {
            writes: vec![Write::InsertOrganization(org.clone())],
            audit: audit(org.id),
        })
        .await
        .expect("org");
    let mut kept = std::fs::File::create(&out).expect("out file");
    // For HAProxy's native check: "<hex sha256> <account id>" per key.
    let mut map = arg(&args, "--map")
        .map(|p| std::io::BufWriter::new(std::fs::File::create(p).expect("map file")));
    let started = std::time::Instant::now();
    let mut done = 0;
    while done < n {
        let mut writes = Vec::with_capacity(2 * BATCH);
        for i in done..(done + BATCH).min(n) {
            let account = ServiceAccount {
                id: Uuid::now_v7(),
                organization_id: org.id,
                project_id: None,
                name: format!("sa-{i}"),
                description: None,
                role: Role::Member,
                scopes: scopes.clone(),
                enabled: true,
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
            };
            let g = format.generate_key();
            if i < 16 {
                writeln!(kept, "{}", g.value.as_str()).expect("write key");
            }
            if let Some(m) = map.as_mut() {
                writeln!(m, "{} {}", g.hash.to_hex(), account.id).expect("write map");
            }
            writes.push(Write::InsertKey(ApiKey {
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
            }));
            writes.insert(writes.len() - 1, Write::InsertAccount(account));
        }
        done += writes.len() / 2;
        store
            .write(WriteBatch {
                writes,
                audit: audit(org.id),
            })
            .await
            .expect("batch");
    }
    store.close().await;
    eprintln!(
        "seed: {n} accounts and keys in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
