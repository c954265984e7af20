//! What operators see: `/metrics` scraped, parsed strictly as the
//! Prometheus text format, and shown to move with traffic; the access log
//! of the real binary, one structured line per request and no secret in
//! it.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};

use crate::servers::{dead_port, spawn_upstream};
use crate::support::{send, Harness, HttpClient};

/// A scrape: every sample, keyed `name{label="value",…}` with labels sorted.
#[derive(Debug, Default)]
pub(crate) struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    /// The sample's value; 0 when the series does not exist (yet).
    pub(crate) fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .get(&series_key(name, labels))
            .copied()
            .unwrap_or(0.0)
    }

    pub(crate) fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.0.contains_key(&series_key(name, labels))
    }
}

fn series_key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

/// `GET /metrics` on the admin listener, parsed.
pub(crate) async fn scrape(h: &Harness) -> Scrape {
    let (status, headers, body) = h.send_to(h.admin_addr(), "GET", "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        crate::support::header(&headers, "content-type").starts_with("text/plain; version=0.0.4"),
        "{headers:?}"
    );
    parse(body.as_str().expect("a text body"))
}

/// Parses the Prometheus text exposition format (0.0.4), refusing any
/// line that does not follow it: a bad name, label or value, or a sample
/// whose metric was not typed first.
pub(crate) fn parse(text: &str) -> Scrape {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), Some(_)) => assert!(valid_name(name), "{line}"),
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(valid_name(name), "{line}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{line}"
                    );
                    typed.insert(name.to_string(), kind.to_string());
                }
                _ => panic!("bad comment line: {line}"),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => (
                name,
                labels_of(
                    rest.strip_suffix('}')
                        .unwrap_or_else(|| panic!("unclosed labels: {line}")),
                    line,
                ),
            ),
        };
        assert!(valid_name(name), "{line}");
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| typed.contains_key(*b)))
            .unwrap_or(name);
        assert!(typed.contains_key(base), "sample before its TYPE: {line}");
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let previous = out.insert(series_key(name, &pairs), value);
        assert!(previous.is_none(), "duplicate series: {line}");
    }
    Scrape(out)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `a="x",b="y\"z"` → pairs, unescaping `\\`, `\"` and `\n`.
fn labels_of(s: &str, line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label: {line}"));
        assert!(valid_name(key), "bad label name: {line}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => panic!("bad escape: {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value: {line}"),
            }
        };
        out.push((key.to_string(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    out
}

const LIMITED: &str = r#"
[[routes]]
name = "limited"
prefix = "/limited"
upstream = "http://{UPSTREAM}"
rate_limit = "1/m burst 1"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_and_move_with_traffic() {
    let h = Harness::start_with(
        None,
        LIMITED,
        &[("KEYGATE_RATE_LIMIT__FAILED_AUTH", "3/m burst 3")],
    )
    .await;
    let org = h.create_org("metrics").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;
    let (_, unscoped) = h.create_account(&org, &["billing:read"]).await;
    let before = scrape(&h).await;

    for _ in 0..3 {
        assert_eq!(h.bearer("GET", "/orders/1", &key).await.0, StatusCode::OK);
    }
    for _ in 0..2 {
        assert_eq!(
            h.proxy("GET", "/orders/1", &[]).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        h.bearer("GET", "/orders/1", &unscoped).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(h.bearer("GET", "/limited/1", &key).await.0, StatusCode::OK);
    assert_eq!(
        h.bearer("GET", "/limited/2", &key).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Three failures fill the address's budget; the fourth is refused for it.
    for _ in 0..3 {
        let (status, ..) = h.bearer("GET", "/orders/1", "kg_wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, ..) = h.bearer("GET", "/orders/1", "kg_wrong").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // A token minted by client_credentials.
    let (_, client_id, secret) = crate::oauth::client(&h, &["orders:read"]).await;
    let form =
        format!("grant_type=client_credentials&client_id={client_id}&client_secret={secret}");
    let (status, _, token) = h.form("/oauth2/token", &form, &[]).await;
    assert_eq!(status, StatusCode::OK, "{token}");

    let after = scrape(&h).await;
    let moved =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let requests = |route, status, auth| {
        moved(
            "keygate_requests_total",
            &[
                ("listener", "public"),
                ("route", route),
                ("status", status),
                ("auth", auth),
            ],
        )
    };
    assert_eq!(requests("orders", "2xx", "ok"), 3.0);
    assert_eq!(requests("orders", "4xx", "missing"), 2.0);
    assert_eq!(requests("orders", "4xx", "ok"), 1.0, "the 403");
    assert_eq!(requests("orders", "4xx", "invalid"), 3.0);
    assert_eq!(requests("orders", "4xx", "throttled"), 1.0);
    assert_eq!(requests("limited", "2xx", "ok"), 1.0);
    assert_eq!(requests("limited", "4xx", "ok"), 1.0, "the 429");
    assert_eq!(requests("(oauth)", "2xx", "none"), 1.0);
    assert_eq!(
        moved(
            "keygate_rate_limited_total",
            &[("listener", "public"), ("route", "limited")]
        ),
        1.0
    );
    assert_eq!(moved("keygate_failed_auth_refusals_total", &[]), 1.0);
    assert_eq!(
        moved(
            "keygate_tokens_minted_total",
            &[("grant", "client_credentials")]
        ),
        1.0
    );
    // Latency histograms: one sample per decision / upstream call.
    assert_eq!(moved("keygate_auth_duration_seconds_count", &[]), 12.0);
    assert_eq!(
        moved(
            "keygate_upstream_duration_seconds_count",
            &[("listener", "public"), ("route", "orders")]
        ),
        3.0
    );
    assert_eq!(
        moved(
            "keygate_request_duration_seconds_count",
            &[("listener", "public"), ("route", "orders")]
        ),
        10.0
    );
    assert_eq!(
        after.get(
            "keygate_request_duration_seconds_bucket",
            &[("listener", "public"), ("route", "orders"), ("le", "+Inf")]
        ),
        after.get(
            "keygate_request_duration_seconds_count",
            &[("listener", "public"), ("route", "orders")]
        )
    );
    // State, read at the scrape.
    assert!(after.get("keygate_cache_entries", &[]) >= 3.0);
    assert!(after.get("keygate_cache_revision", &[]) > 0.0);
    assert!(after.get("keygate_cache_staleness_seconds", &[]) < 5.0);
    assert!(after.has("keygate_store_errors_total", &[]));
    assert!(after.has(
        "keygate_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))]
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_turned_off() {
    let h = Harness::start_with(None, "", &[("KEYGATE_ADMIN__METRICS", "false")]).await;
    let (status, _, body) = h.send_to(h.admin_addr(), "GET", "/metrics", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // And the public listener never serves them, on or off.
    let h = Harness::start("").await;
    let (status, ..) = h.proxy("GET", "/metrics", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_one_access_line_per_request_without_secrets() {
    let (upstream, _) = spawn_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let public = dead_port().await;
    let mut admin = dead_port().await;
    while admin == public {
        admin = dead_port().await;
    }
    let admin_key = "log-test-admin-key-0123456789-abcdefghijkl";
    let config = dir.path().join("keygate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:{public}"
shutdown_grace = "2s"
[admin]
listen = "127.0.0.1:{admin}"
[store]
url = "sqlite://{db}"
poll_interval = "100ms"
[[routes]]
name = "orders"
prefix = "/orders"
upstream = "http://{upstream}"
scopes = {{ GET = ["orders:read"] }}
"#,
            db = dir.path().join("keygate.db").display(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--log-format", "json"])
        .env("KEYGATE_ADMIN_KEY", admin_key)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client: HttpClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let admin_addr = format!("127.0.0.1:{admin}").parse().unwrap();
    let public_addr = format!("127.0.0.1:{public}").parse().unwrap();
    let mut ready = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(admin_addr).await.is_ok() {
            let (status, ..) = send(&client, admin_addr, "GET", "/readyz", &[], Vec::new()).await;
            if status == StatusCode::OK {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "keygate did not become ready");
    let auth = format!("Bearer {admin_key}");
    let admin_json = |path: &'static str, body: Value| {
        let (client, auth) = (client.clone(), auth.clone());
        async move {
            send(
                &client,
                admin_addr,
                "POST",
                path,
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                ],
                body.to_string().into_bytes(),
            )
            .await
        }
    };
    let (_, _, org) = admin_json("/v1/organizations", json!({ "name": "logs" })).await;
    let (status, _, account) = admin_json(
        "/v1/service-accounts",
        json!({ "organization_id": org["id"], "name": "logger", "scopes": ["orders:read"] }),
    )
    .await;
    assert!(status.is_success(), "{account}");
    let (account_id, key) = crate::support::account_and_key(&account);
    let bearer = format!("Bearer {key}");
    let (status, ..) = send(
        &client,
        public_addr,
        "GET",
        "/orders/1?api_key=kg_in_the_query",
        &[
            ("authorization", bearer.as_str()),
            ("x-request-id", "req-one"),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, ..) = send(
        &client,
        public_addr,
        "GET",
        "/orders/2",
        &[("x-request-id", "req-two")],
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // SIGTERM: drain, flush the logs, exit.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");

    let access: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "keygate::access")
        .collect();
    assert_eq!(access.len(), 2, "{stderr}");
    let line = |id: &str| {
        access
            .iter()
            .find(|l| l["fields"]["request_id"] == id)
            .unwrap_or_else(|| panic!("no line for {id}: {stderr}"))["fields"]
            .clone()
    };
    let ok = line("req-one");
    assert_eq!(ok["route"], "orders");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["auth"], "ok");
    assert_eq!(ok["account"], account_id);
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["path"], "/orders/1");
    assert!(ok["latency_ms"].as_f64().unwrap() > 0.0, "{ok}");
    let refused = line("req-two");
    assert_eq!(refused["status"], 401);
    assert_eq!(refused["auth"], "missing");
    assert!(refused.get("account").is_none(), "{refused}");
    // Neither the key, nor what was in the query string, nor the admin key.
    for secret in [key.as_str(), "kg_in_the_query", admin_key] {
        assert!(!stderr.contains(secret), "a secret reached the log");
    }
}
