//! Test harness: an in-process keygate, an echoing upstream and a tiny HTTP client.
//!
//! Owns process setup and request plumbing only; assertions live in the test modules.
//!
//! Over the ~400-line guideline on purpose: one type, [`Harness`], whose
//! methods are the request plumbing every test module shares.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keygate::app::Running;
use keygate::config::Config;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::servers::spawn_upstream;
pub(crate) use crate::servers::{dead_port, pg_schema_url, refused_port, Cable};
pub(crate) use crate::wire::{header, send, send_json};

/// The platform admin's key, handed to keygate through `KEYGATE_ADMIN_KEY`.
const ADMIN_KEY: &str = "test-admin-key-0123456789-abcdefghijklmnop";

/// Routes every harness serves; tests append more through `start(extra)`.
const BASE_ROUTES: &str = r#"
[[routes]]
name = "orders"
prefix = "/orders"
upstream = "http://{UPSTREAM}"
audience = "orders-api"
scopes = { GET = ["orders:read"], POST = ["orders:write"] }
forward_auth = "headers"

[[routes]]
name = "open"
prefix = "/open"
upstream = "http://{UPSTREAM}"
public = true

[[routes]]
name = "pass"
prefix = "/pass"
upstream = "http://{UPSTREAM}"
forward_auth = "passthrough"
"#;

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub(crate) struct Harness {
    running: Option<Running>,
    dir: TempDir,
    toml: String,
    upstream_hits: Arc<AtomicUsize>,
    pub(crate) admin_key: String,
    env: Vec<(String, String)>,
    pub(crate) client: HttpClient,
    names: AtomicUsize,
    /// The clock every replica of this harness runs on (the system's unless
    /// a test injects one).
    clock: Option<keygate::clock::SharedClock>,
}

impl Harness {
    /// Starts an upstream and keygate with the base routes plus `routes_toml_extra`
    /// (`{UPSTREAM}` in it is replaced by the upstream's address).
    /// Runs on SQLite, or on PostgreSQL when `KEYGATE_TEST_STORE=postgres`
    /// (CI runs the whole suite both ways).
    pub(crate) async fn start(routes_toml_extra: &str) -> Harness {
        Self::start_on(test_store().await, routes_toml_extra).await
    }

    /// As [`Harness::start`], on the given store URL (default: a fresh SQLite file).
    pub(crate) async fn start_on(store_url: Option<String>, routes_toml_extra: &str) -> Harness {
        Self::start_with(store_url, routes_toml_extra, &[]).await
    }

    /// As [`Harness::start_on`], with extra `KEYGATE_*` environment overrides.
    pub(crate) async fn start_with(
        store_url: Option<String>,
        routes_toml_extra: &str,
        env: &[(&str, &str)],
    ) -> Harness {
        Self::start_clocked(store_url, routes_toml_extra, env, None).await
    }

    /// As [`Harness::start_with`], on `clock` (tests that move time).
    pub(crate) async fn start_clocked(
        store_url: Option<String>,
        routes_toml_extra: &str,
        env: &[(&str, &str)],
        clock: Option<keygate::clock::SharedClock>,
    ) -> Harness {
        let (upstream_addr, upstream_hits) = spawn_upstream().await;
        let dir = tempfile::tempdir().unwrap();
        let db = store_url
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("keygate.db").display()));
        let toml = format!(
            r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace = "2s"
request_timeout = "2s"

[admin]
listen = "127.0.0.1:0"

[store]
url = "{db}"
poll_interval = "{POLL}"
{routes}
{extra}
"#,
            db = db,
            // SQLite has no push: poll briskly. PostgreSQL pushes (NOTIFY):
            // poll rarely, so a test sees the push path, not the backstop.
            POLL = if db.starts_with("postgres") {
                "10s"
            } else {
                "100ms"
            },
            routes = BASE_ROUTES,
            extra = routes_toml_extra,
        )
        .replace("{UPSTREAM}", &upstream_addr.to_string());

        let mut harness = Harness {
            running: None,
            dir,
            toml,
            upstream_hits,
            admin_key: ADMIN_KEY.to_string(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            client: new_client(),
            names: AtomicUsize::new(0),
            clock,
        };
        harness.running = Some(harness.boot().await);
        harness
    }

    /// Another keygate on the same store and config (its own ports): a
    /// second replica.
    pub(crate) async fn boot_replica(&self) -> Running {
        self.boot().await
    }

    /// `POST` of a form body to the public listener, with extra headers.
    pub(crate) async fn form(
        &self,
        path: &str,
        form: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let mut all: Vec<(&str, &str)> =
            vec![("content-type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        send(
            &self.client,
            self.public_addr(),
            "POST",
            path,
            &all,
            form.as_bytes().to_vec(),
        )
        .await
    }

    /// The store URL this harness runs on.
    pub(crate) fn store_url(&self) -> String {
        self.toml
            .lines()
            .find_map(|l| l.strip_prefix("url = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap()
            .to_string()
    }

    /// A request to any listener address with the harness's client.
    pub(crate) async fn send_to(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        send(&self.client, addr, method, path, headers, Vec::new()).await
    }

    async fn boot(&self) -> Running {
        let mut env: HashMap<String, String> = self.env.iter().cloned().collect();
        env.insert("KEYGATE_ADMIN_KEY".to_string(), self.admin_key.clone());
        // CI runs the forwarding tests again on the shared pool ...
        if let Ok(reuse) = std::env::var("KEYGATE_TEST_UPSTREAM_REUSE") {
            env.entry("KEYGATE_SERVER__UPSTREAM_REUSE".to_string())
                .or_insert(reuse);
        }
        // ... and on hyper's HTTP/1.1 server instead of the lean path.
        if let Ok(engine) = std::env::var("KEYGATE_TEST_HTTP1_ENGINE") {
            env.entry("KEYGATE_SERVER__HTTP1_ENGINE".to_string())
                .or_insert(engine);
        }
        let config = match Config::from_toml(&self.toml, &env) {
            Ok(config) => config,
            Err(e) => panic!("test config refused: {e}\n{}", self.toml),
        };
        let clock = self
            .clock
            .clone()
            .unwrap_or_else(|| std::sync::Arc::new(keygate::clock::SystemClock));
        match keygate::app::start_with_clock(config, clock).await {
            Ok(running) => running,
            Err(e) => panic!("keygate failed to start: {e:?}"),
        }
    }

    /// Graceful shutdown, then a fresh start on the same database file.
    pub(crate) async fn restart(&mut self) {
        // Drop pooled keep-alive connections so shutdown has nothing idle to wait on.
        self.client = new_client();
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        if self.toml.contains("url = \"sqlite://") {
            assert!(
                self.dir.path().join("keygate.db").exists(),
                "store file missing after shutdown"
            );
        }
        self.running = Some(self.boot().await);
    }

    /// Graceful shutdown of this harness's own replica, with no restart
    /// (replicas from [`Harness::boot_replica`] keep running).
    pub(crate) async fn stop(&mut self) {
        self.client = new_client();
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub(crate) fn public_addr(&self) -> SocketAddr {
        self.running().public_addr()
    }

    pub(crate) fn decision_addr(&self) -> SocketAddr {
        self.running()
            .decision_addr()
            .expect("the harness was started with [decision] listen")
    }

    pub(crate) fn admin_addr(&self) -> SocketAddr {
        self.running().admin_addr()
    }

    /// Requests the upstream has answered so far.
    pub(crate) fn upstream_hits(&self) -> usize {
        self.upstream_hits.load(Ordering::SeqCst)
    }

    /// Admin API call as the platform admin.
    pub(crate) async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        self.admin_as(&self.admin_key, method, path, body).await
    }

    /// Admin API call authenticated with `key` as a Bearer credential.
    pub(crate) async fn admin_as(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        let bytes = body
            .map(|v| serde_json::to_vec(&v).unwrap())
            .unwrap_or_default();
        self.admin_raw(Some(key), method, path, bytes).await
    }

    /// Admin API call with a raw body and an optional Bearer credential.
    pub(crate) async fn admin_raw(
        &self,
        key: Option<&str>,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> (StatusCode, HeaderMap, Value) {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(auth) = auth.as_deref() {
            headers.push(("authorization", auth));
        }
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        send(
            &self.client,
            self.admin_addr(),
            method,
            path,
            &headers,
            body,
        )
        .await
    }

    /// Admin listener request with exactly the given headers and a body.
    pub(crate) async fn admin_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, HeaderMap, Value) {
        send(&self.client, self.admin_addr(), method, path, headers, body).await
    }

    /// Request to the public listener with exactly the given headers and no body.
    pub(crate) async fn proxy(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        send(
            &self.client,
            self.public_addr(),
            method,
            path,
            headers,
            Vec::new(),
        )
        .await
    }

    /// Request to the public listener with `Authorization: Bearer <key>`.
    pub(crate) async fn bearer(
        &self,
        method: &str,
        path: &str,
        key: &str,
    ) -> (StatusCode, HeaderMap, Value) {
        let auth = format!("Bearer {key}");
        self.proxy(method, path, &[("authorization", auth.as_str())])
            .await
    }

    /// The status of the very next proxied request with `key`: writes through
    /// this replica apply to its cache before the admin call returns, so no
    /// waiting or retrying is allowed here. `want` is only for the message.
    pub(crate) async fn key_status(&self, want: StatusCode, key: &str) -> StatusCode {
        let (status, _, body) = self.bearer("GET", "/orders/probe", key).await;
        if status != want {
            eprintln!("key_status: wanted {want}, got {status}: {body}");
        }
        status
    }

    pub(crate) async fn create_org(&self, name: &str) -> String {
        let (status, _, body) = self
            .admin("POST", "/v1/organizations", Some(json!({ "name": name })))
            .await;
        assert_eq!(status, StatusCode::CREATED, "create org: {body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// A unique account name within this harness.
    pub(crate) fn unique_name(&self) -> String {
        format!("sa-{}", self.names.fetch_add(1, Ordering::SeqCst))
    }

    /// Creates a member account in `org_id` with `scopes`; returns (account id, key).
    pub(crate) async fn create_account(&self, org_id: &str, scopes: &[&str]) -> (String, String) {
        self.create_account_with(json!({
            "organization_id": org_id,
            "name": self.unique_name(),
            "scopes": scopes,
        }))
        .await
    }

    /// Creates an account from a full request body as the admin; returns (id, key).
    pub(crate) async fn create_account_with(&self, body: Value) -> (String, String) {
        let (status, _, body) = self.admin("POST", "/v1/service-accounts", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "create account: {body}");
        account_and_key(&body)
    }

    /// Ids of every account in `org_id`, walking all pages.
    pub(crate) async fn account_ids(&self, org_id: &str) -> Vec<String> {
        list_ids(self, &format!("organization_id={org_id}")).await
    }
}

/// The store `KEYGATE_TEST_STORE` asks for: a fresh PostgreSQL schema, or
/// `None` (a fresh SQLite file).
pub(crate) async fn test_store() -> Option<String> {
    match std::env::var("KEYGATE_TEST_STORE").as_deref() {
        Ok("postgres") => Some(
            pg_schema_url()
                .await
                .expect("KEYGATE_TEST_STORE=postgres needs KEYGATE_TEST_POSTGRES_URL"),
        ),
        _ => None,
    }
}

fn new_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()
}

/// (account id, api key value) from a create or rotate response.
pub(crate) fn account_and_key(body: &Value) -> (String, String) {
    let id = body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {body}"));
    let key = body["api_key"]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no api_key.value in {body}"));
    (id.to_string(), key.to_string())
}

/// Ids from `GET /v1/service-accounts?<query>` as the admin, following `next_cursor`.
async fn list_ids(h: &Harness, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..100 {
        let mut path = format!("/v1/service-accounts?{query}&limit=100");
        if let Some(cursor) = &after {
            path.push_str(&format!("&after={cursor}"));
        }
        let (status, _, body) = h.admin("GET", &path, None).await;
        assert_eq!(status, StatusCode::OK, "list {path}: {body}");
        for item in body["data"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_string());
        }
        if body["has_more"] != json!(true) {
            return ids;
        }
        after = Some(body["next_cursor"].as_str().unwrap().to_string());
    }
    panic!("listing never ended");
}
