//! Crash consistency: the keygate binary is SIGKILLed at a random moment
//! during a burst of admin writes (create, issue, rotate, revoke), 20 times
//! over, on SQLite (or on PostgreSQL under `KEYGATE_TEST_STORE=postgres`).
//! After each restart: every write answered 2xx is there, none is half there,
//! the restarted replica's cache and a replica that never stopped both equal
//! the store, and no revoked key works again.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::Rng;
use serde_json::{json, Value};

use crate::servers::{pg_schema_url, spawn_upstream};
use crate::support::HttpClient;

const ADMIN_KEY: &str = "crash-test-admin-key-0123456789-abcdefghij";
const ROUNDS: usize = 20;
const WRITERS: usize = 4;

/// One keygate process.
pub(crate) struct Node {
    child: Child,
    pub(crate) public: SocketAddr,
    pub(crate) admin: SocketAddr,
    client: HttpClient,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two loopback addresses free a moment ago, and never the same one: both
/// are held until both are chosen. (Taken one after the other, the second
/// could be the port the first had just let go, and keygate refuses to
/// start with its public and admin listeners on one address.)
fn free_addrs() -> (SocketAddr, SocketAddr) {
    let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (a.local_addr().unwrap(), b.local_addr().unwrap())
}

pub(crate) async fn boot(dir: &Path, store: &str, upstream: SocketAddr) -> Node {
    boot_as(
        dir,
        store,
        upstream,
        Command::new(env!("CARGO_BIN_EXE_keygate")),
    )
    .await
}

/// As [`boot`], with `command` (the binary, or a shell that execs it).
pub(crate) async fn boot_as(
    dir: &Path,
    store: &str,
    upstream: SocketAddr,
    mut command: Command,
) -> Node {
    let (public, admin) = free_addrs();
    let poll = if store.starts_with("postgres") {
        "1s"
    } else {
        "100ms"
    };
    let config = dir.join(format!("keygate-{}.toml", admin.port()));
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{public}\"\nshutdown_grace = \"1s\"\n\
             [admin]\nlisten = \"{admin}\"\n\
             [store]\nurl = \"{store}\"\npoll_interval = \"{poll}\"\n\
             [rate_limit]\nfailed_auth = \"100000/s\"\n\
             [[routes]]\nname = \"orders\"\nprefix = \"/orders\"\nupstream = \"http://{upstream}\"\n"
        ),
    )
    .unwrap();
    // Its log, to say why if it stops before it is ready.
    let log = dir.join(format!("keygate-{}.log", admin.port()));
    let child = command
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&config)
        .env("KEYGATE_ADMIN_KEY", ADMIN_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut node = Node {
        child,
        public,
        admin,
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            panic!(
                "keygate exited with {status} before it was ready; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if let Some((StatusCode::OK, _)) = node.call("GET", "/readyz", None).await {
            return node;
        }
        assert!(Instant::now() < deadline, "keygate not ready within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Node {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An admin request; `None` when the process did not answer.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Option<(StatusCode, Value)> {
        let auth = format!("Bearer {ADMIN_KEY}");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(format!("http://{}{path}", self.admin))
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        exchange(&self.client, req).await
    }

    /// The status the proxy answers for `key`.
    pub(crate) async fn key_status(&self, key: &str) -> StatusCode {
        let req = Request::builder()
            .uri(format!("http://{}/orders/probe", self.public))
            .header("x-api-key", key)
            .body(Full::new(Bytes::new()))
            .unwrap();
        exchange(&self.client, req)
            .await
            .expect("the proxy answers")
            .0
    }

    /// The store revision this replica's cache has applied.
    async fn revision(&self) -> i64 {
        let (status, body) = self.call("GET", "/v1/replicas", None).await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        body["revision"].as_i64().unwrap()
    }
}

async fn exchange(client: &HttpClient, req: Request<Full<Bytes>>) -> Option<(StatusCode, Value)> {
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .ok()?
        .ok()?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.ok()?.to_bytes();
    Some((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// What the writers were told. A write that got no answer may or may not
/// have happened; one that got 2xx must have.
#[derive(Default)]
struct Ledger {
    accounts: Vec<String>,
    /// (account, key id, key value) of every key whose issue was answered.
    keys: Vec<(String, String, String)>,
    /// Key ids answered as revoked (DELETE, or retired by a rotation).
    revoked: Vec<String>,
    /// Key ids a revocation or rotation was attempted on, answered or not.
    touched: Vec<String>,
}

/// One account's life: create (key 1), issue key 2, revoke key 2, rotate
/// (key 1 retired, key 3 issued). Every committed state leaves the account
/// at least one live key, so an account without one is a write half done.
async fn writer(node: &Node, org: &str, tag: String, stop: &AtomicBool, ledger: &Mutex<Ledger>) {
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let body = json!({ "organization_id": org, "name": format!("{tag}-{n}") });
        let Some((StatusCode::CREATED, a)) =
            node.call("POST", "/v1/service-accounts", Some(body)).await
        else {
            return;
        };
        let id = a["id"].as_str().unwrap().to_string();
        let key1 = (
            a["api_key"]["id"].as_str().unwrap().to_string(),
            a["api_key"]["value"].as_str().unwrap().to_string(),
        );
        {
            let mut l = ledger.lock().unwrap();
            l.accounts.push(id.clone());
            l.keys.push((id.clone(), key1.0.clone(), key1.1.clone()));
        }
        let path = format!("/v1/service-accounts/{id}");
        let Some((StatusCode::CREATED, k)) = node
            .call("POST", &format!("{path}/api-keys"), Some(json!({})))
            .await
        else {
            return;
        };
        let key2 = k["id"].as_str().unwrap().to_string();
        ledger.lock().unwrap().keys.push((
            id.clone(),
            key2.clone(),
            k["value"].as_str().unwrap().to_string(),
        ));
        ledger.lock().unwrap().touched.push(key2.clone());
        let Some((StatusCode::NO_CONTENT, _)) = node
            .call("DELETE", &format!("{path}/api-keys/{key2}"), None)
            .await
        else {
            return;
        };
        ledger.lock().unwrap().revoked.push(key2);
        ledger.lock().unwrap().touched.push(key1.0.clone());
        let rotate = json!({ "grace_period_seconds": 0 });
        let Some((StatusCode::OK, r)) = node
            .call("POST", &format!("{path}/rotate-api-key"), Some(rotate))
            .await
        else {
            return;
        };
        let mut l = ledger.lock().unwrap();
        l.revoked.push(key1.0);
        let key3 = &r["api_key"];
        l.keys.push((
            id,
            key3["id"].as_str().unwrap().to_string(),
            key3["value"].as_str().unwrap().to_string(),
        ));
    }
}

/// Live key ids of `account` as the store has them, through the admin API.
async fn live_keys(node: &Node, account: &str) -> Vec<String> {
    let (status, body) = node
        .call(
            "GET",
            &format!("/v1/service-accounts/{account}/api-keys"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect()
}

async fn org_accounts(node: &Node, org: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = node
            .call(
                "GET",
                &format!("/v1/service-accounts?organization_id={org}&limit=100{after}"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{page}");
        ids.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) if page["has_more"] == true => after = format!("&after={c}"),
            _ => return ids,
        }
    }
}

/// Every check of one round, on the restarted node and the survivor.
async fn verify(round: usize, restarted: &Node, survivor: &Node, org: &str, ledger: &Ledger) {
    // Nothing half there: every account of the round's organization, answered
    // or not, holds a live key.
    let mut live = std::collections::HashMap::new();
    for account in org_accounts(restarted, org).await {
        let keys = live_keys(restarted, &account).await;
        assert!(
            !keys.is_empty(),
            "round {round}: account {account} has no live key"
        );
        live.insert(account, keys);
    }
    // Every answered write is there.
    for account in &ledger.accounts {
        assert!(
            live.contains_key(account),
            "round {round}: answered account {account} is missing"
        );
    }
    for (account, key, _) in &ledger.keys {
        let is_live = live[account].contains(key);
        if ledger.revoked.contains(key) {
            assert!(!is_live, "round {round}: revoked key {key} is live again");
        } else if !ledger.touched.contains(key) {
            assert!(is_live, "round {round}: answered key {key} is missing");
        }
    }
    // The survivor has caught up with the store on its own.
    let target = restarted.revision().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while survivor.revision().await < target {
        assert!(
            Instant::now() < deadline,
            "round {round}: survivor stuck below revision {target}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Both caches equal the store: a key works exactly when it is live there.
    for (account, key, value) in &ledger.keys {
        let want = if live[account].contains(key) {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        for (name, node) in [("restarted", restarted), ("survivor", survivor)] {
            let got = node.key_status(value).await;
            assert_eq!(
                got, want,
                "round {round}: key {key} through the {name} replica"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_admin_writes_loses_nothing_answered_and_leaves_nothing_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = match std::env::var("KEYGATE_TEST_STORE").as_deref() {
        Ok("postgres") => pg_schema_url().await.expect("KEYGATE_TEST_POSTGRES_URL"),
        _ => format!("sqlite://{}", dir.path().join("keygate.db").display()),
    };
    let (upstream, _) = spawn_upstream().await;
    let survivor = boot(dir.path(), &store, upstream).await;
    let mut rng = rand::thread_rng();
    let mut answered = 0;
    for round in 0..ROUNDS {
        let node = Arc::new(boot(dir.path(), &store, upstream).await);
        let (status, org) = node
            .call(
                "POST",
                "/v1/organizations",
                Some(json!({ "name": format!("crash-{round}") })),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::CREATED, "{org}");
        let org = org["id"].as_str().unwrap().to_string();
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (node, org, stop, ledger) =
                    (node.clone(), org.clone(), stop.clone(), ledger.clone());
                tokio::spawn(
                    async move { writer(&node, &org, format!("w{w}"), &stop, &ledger).await },
                )
            })
            .collect();
        let after = Duration::from_millis(rng.gen_range(30..400));
        tokio::time::sleep(after).await;
        // SIGKILL: no drain, no flush, no shutdown hook.
        let killed = Instant::now();
        sigkill(&node);
        for w in writers {
            w.await.unwrap();
        }
        stop.store(true, Ordering::SeqCst);
        let reaped = killed.elapsed();
        drop(node);
        let restarted = boot(dir.path(), &store, upstream).await;
        let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
        answered += ledger.keys.len();
        eprintln!(
            "round {round}: killed {after:?} into the burst ({reaped:?} to reap); \
             {} accounts, {} keys, {} revocations answered",
            ledger.accounts.len(),
            ledger.keys.len(),
            ledger.revoked.len()
        );
        verify(round, &restarted, &survivor, &org, &ledger).await;
    }
    assert!(
        answered > ROUNDS,
        "the bursts wrote too little to prove anything ({answered} keys)"
    );
}

/// SIGKILL through the shell's own `kill` (the writers still hold the
/// node, so `Child::kill`, which needs it alone, cannot be used).
fn sigkill(node: &Arc<Node>) {
    let pid = node.child.id();
    let status = Command::new("sh")
        .args(["-c", &format!("kill -KILL {pid}")])
        .status()
        .unwrap();
    assert!(status.success());
}
