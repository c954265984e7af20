//! What one page of a list costs as the organization grows: a 20-item page
//! of service accounts from an organization of 10 and of 10,000 accounts,
//! in `/v1` and in each dialect, over real HTTP to a keygate on a SQLite
//! store. A page should cost what it holds, so each endpoint's p50 at
//! 10,000 should be within 2× of its p50 at 10.
//!
//! Run: `cargo bench --bench lists` (about a minute). Figures go to
//! benches/README.md. Accounts are written straight through the store's
//! write path, in one project of one organization, each with one client
//! credential; the caller is an owner of that organization.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keygate::secret::ApiKeyFormat;
use keygate::store::{
    self, ApiKey, AuditEvent, ClientCredential, Organization, Project, Role, ServiceAccount, Write,
    WriteBatch,
};
use uuid::Uuid;

const SIZES: [usize; 2] = [10, 10_000];
const SAMPLES: usize = 200;
const WARMUP: usize = 20;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

fn audit(org: Uuid) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7(),
        at: 0,
        actor_id: None,
        action: "seed".into(),
        target_type: "organization".into(),
        target_id: org,
        organization_id: Some(org),
        details: serde_json::json!({}),
    }
}

fn account(org: Uuid, project: Option<Uuid>, name: String, role: Role) -> ServiceAccount {
    ServiceAccount {
        id: Uuid::now_v7(),
        organization_id: org,
        project_id: project,
        name,
        description: None,
        role,
        scopes: vec!["orders:read".into()],
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
    }
}

/// An organization with a project of `n` accounts, each with a client
/// credential, and an owner; returns the owner's key and the ids.
async fn seed(url: &str, n: usize) -> (String, Uuid, Uuid) {
    let s = store::connect(url, metrics::Counter::noop()).await.unwrap();
    let format = ApiKeyFormat::new("kg");
    let org = Organization {
        id: Uuid::now_v7(),
        name: "bench".into(),
        abbreviation: Some("B".into()),
        max_credential_lifetime: None,
        created_at: 0,
        updated_at: 0,
    };
    let project = Project {
        id: Uuid::now_v7(),
        organization_id: org.id,
        name: "p".into(),
        archived: false,
        created_at: 0,
        updated_at: 0,
    };
    let owner = account(org.id, None, "owner".into(), Role::Owner);
    let key = format.generate_key();
    let mut writes = vec![
        Write::InsertOrganization(org.clone()),
        Write::InsertProject(project.clone()),
        Write::InsertAccount(owner.clone()),
        Write::InsertKey(ApiKey {
            id: Uuid::now_v7(),
            service_account_id: owner.id,
            name: None,
            hash: key.hash,
            redacted: key.redacted,
            created_at: 0,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            limits: Default::default(),
        }),
    ];
    for i in 0..n {
        let a = account(org.id, Some(project.id), format!("sa-{i}"), Role::Member);
        let secret = format.generate_secret();
        writes.push(Write::InsertCredential(ClientCredential {
            id: Uuid::now_v7(),
            client_id: format.generate_client_id(),
            service_account_id: a.id,
            name: "c".into(),
            description: None,
            secret_hash: secret.hash,
            created_at: 0,
            expires_at: None,
            deleted_at: None,
            last_used_at: None,
            tokens_not_before: None,
            limits: Default::default(),
            public_jwk: None,
        }));
        writes.insert(writes.len() - 1, Write::InsertAccount(a));
    }
    for chunk in writes.chunks(10_000) {
        s.write(WriteBatch {
            writes: chunk.to_vec(),
            audit: audit(org.id),
        })
        .await
        .unwrap();
    }
    s.close().await;
    (key.value.to_string(), org.id, project.id)
}

async fn start(url: &str) -> keygate::app::Running {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[store]
url = "{url}"
[rate_limit]
failed_auth = "1000000/s"
[[routes]]
name = "orders"
prefix = "/orders"
upstream = "http://127.0.0.1:1"
"#
    );
    let env: HashMap<String, String> = [(
        "KEYGATE_ADMIN_KEY".to_string(),
        "lists-bench-admin-key-0123456789-abcdef".to_string(),
    )]
    .into();
    let config = keygate::config::Config::from_toml(&toml, &env).unwrap();
    keygate::app::start(config).await.unwrap()
}

/// One GET; its time, after checking it answered 200 with `want` items.
async fn get(c: &HttpClient, addr: SocketAddr, path: &str, key: &str, want: usize) -> Duration {
    let req = Request::builder()
        .uri(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {key}"))
        .body(Empty::new())
        .unwrap();
    let t = Instant::now();
    let res = c.request(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let took = t.elapsed();
    assert_eq!(
        status,
        StatusCode::OK,
        "{path}: {}",
        String::from_utf8_lossy(&body)
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let items = v
        .get("items")
        .or_else(|| v.get("data"))
        .unwrap_or(&v)
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(items, want, "{path}: {items} items");
    took
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
    sorted[i].as_secs_f64() * 1e3
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let c: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    // endpoint -> size -> sorted samples
    let mut results: Vec<(&str, Vec<Vec<Duration>>)> = Vec::new();
    for (si, &n) in SIZES.iter().enumerate() {
        let url = format!("sqlite://{}/lists-{n}.db", dir.path().display());
        let (key, org, project) = seed(&url, n).await;
        let k = start(&url).await;
        let admin = k.admin_addr();
        // The owner is an account of the organization too, outside the project.
        let (in_org, in_project) = (20.min(n + 1), 20.min(n));
        let endpoints: Vec<(&str, String, usize)> = vec![
            (
                "/v1",
                format!("/v1/service-accounts?organization_id={org}&limit=20"),
                in_org,
            ),
            (
                "orgs",
                format!("/compat/orgs/organizations/{org}/service-accounts?limit=20"),
                in_org,
            ),
            (
                "openai",
                format!(
                    "/compat/openai/v1/organization/projects/{project}/service_accounts?limit=20"
                ),
                in_project,
            ),
            (
                "waldur",
                "/compat/waldur/api/marketplace-project-service-accounts/?page_size=20".into(),
                in_project,
            ),
            (
                "runai",
                "/compat/runai/api/v1/service-accounts?limit=20".into(),
                in_org,
            ),
        ];
        for (i, (name, path, want)) in endpoints.iter().enumerate() {
            for _ in 0..WARMUP {
                get(&c, admin, path, &key, *want).await;
            }
            let mut samples = Vec::with_capacity(SAMPLES);
            for _ in 0..SAMPLES {
                samples.push(get(&c, admin, path, &key, *want).await);
            }
            samples.sort();
            if si == 0 {
                results.push((name, vec![samples]));
            } else {
                results[i].1.push(samples);
            }
        }
        k.shutdown().await;
    }
    println!(
        "| endpoint | p50 / p99 / max at {} (ms) | p50 / p99 / max at {} (ms) | p50 ratio |",
        SIZES[0], SIZES[1]
    );
    println!("|---|---|---|---|");
    for (name, by_size) in &results {
        let cell = |s: &Vec<Duration>| {
            format!(
                "{:.2} / {:.2} / {:.2}",
                pct(s, 0.5),
                pct(s, 0.99),
                s.last().unwrap().as_secs_f64() * 1e3
            )
        };
        println!(
            "| {name} | {} | {} | {:.2}× |",
            cell(&by_size[0]),
            cell(&by_size[1]),
            pct(&by_size[1], 0.5) / pct(&by_size[0], 0.5)
        );
    }
    println!("lists: {SAMPLES} samples per cell after {WARMUP} warm-up requests");
}
