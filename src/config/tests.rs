use std::collections::HashMap;
use std::time::Duration;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn empty_config_gives_the_documented_defaults() {
    let c = Config::defaults(&HashMap::new()).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:8081");
    assert_eq!(c.store.url.expose(), "sqlite://keygate.db");
    assert_eq!(c.store.poll_interval, Duration::from_secs(1));
    assert_eq!(c.tokens.algorithm, Algorithm::Es256);
    assert_eq!(c.keys.prefix, "kg");
    assert_eq!(c.server.upstream_reuse, UpstreamReuse::Connection);
    assert_eq!(c.server.http1_engine, Http1Engine::Lean);
}

#[test]
fn http1_engine_is_lean_or_hyper_and_nothing_else() {
    let c = Config::from_toml("[server]\nhttp1_engine = \"hyper\"\n", &HashMap::new()).unwrap();
    assert_eq!(c.server.http1_engine, Http1Engine::Hyper);
    let err = Config::from_toml("[server]\nhttp1_engine = \"fast\"\n", &HashMap::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.http1_engine"), "{err}");
    assert!(err.contains("fast"), "{err}");
}

#[test]
fn upstream_reuse_is_connection_or_pool_and_nothing_else() {
    let c = Config::from_toml("[server]\nupstream_reuse = \"pool\"\n", &HashMap::new()).unwrap();
    assert_eq!(c.server.upstream_reuse, UpstreamReuse::Pool);
    let err = Config::from_toml(
        "[server]\nupstream_reuse = \"sometimes\"\n",
        &HashMap::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("server.upstream_reuse"), "{err}");
    assert!(err.contains("sometimes"), "{err}");
}

#[test]
fn environment_overrides_the_file() {
    let c = Config::from_toml(
        "[store]\npoll_interval = \"5s\"\n",
        &env(&[
            ("KEYGATE_STORE__POLL_INTERVAL", "250ms"),
            ("KEYGATE_SERVER__MAX_BODY_BYTES", "1024"),
            ("KEYGATE_CONFIG", "ignored.toml"),
        ]),
    )
    .unwrap();
    assert_eq!(c.store.poll_interval, Duration::from_millis(250));
    assert_eq!(c.server.max_body_bytes, 1024);
}

#[test]
fn every_bad_key_is_named_at_once() {
    let err = Config::from_toml(
        r#"
[server]
request_timeout = "soon"
listen = "nowhere"
[tokens]
algorithm = "HS256"
[[routes]]
name = "a"
prefix = "a"
upstream = "ftp://x"
scopes = { FETCH = ["x"] }
"#,
        &HashMap::new(),
    )
    .unwrap_err();
    let text = err.to_string();
    for key in [
        "server.request_timeout",
        "server.listen",
        "tokens.algorithm",
        "routes[0].prefix",
        "routes[0].upstream",
        "routes[0].scopes",
    ] {
        assert!(text.contains(key), "{key} missing from: {text}");
    }
}

#[test]
fn unknown_keys_and_env_sections_are_refused() {
    let err = Config::from_toml(
        "[server]\nlisten_addr = \"x\"\n[nope]\n",
        &env(&[("KEYGATE_BOGUS__X", "1")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("server.listen_addr: unknown key"), "{err}");
    assert!(err.contains("nope: unknown section"), "{err}");
    assert!(err.contains("KEYGATE_BOGUS__X"), "{err}");
}

#[test]
fn short_bootstrap_admin_key_is_refused() {
    let err = Config::defaults(&env(&[("KEYGATE_ADMIN_KEY", "short")])).unwrap_err();
    assert!(err.to_string().contains("KEYGATE_ADMIN_KEY"));
}

#[test]
fn store_url_secret_is_not_debug_printed() {
    let c = Config::defaults(&env(&[("KEYGATE_STORE__URL", "postgres://u:hunter2@h/db")])).unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn rate_specs_parse() {
    let r = RateSpec::parse("50/s").unwrap();
    assert_eq!((r.count, r.per, r.burst), (50, Duration::from_secs(1), 50));
    let r = RateSpec::parse("100/m burst 20").unwrap();
    assert_eq!(
        (r.count, r.per, r.burst),
        (100, Duration::from_secs(60), 20)
    );
    assert!(RateSpec::parse("0/s").is_err());
    assert!(RateSpec::parse("5/d").is_err());
}

#[test]
fn shipped_example_configs_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for name in ["keygate.toml", "sidecar.toml", "gateway.toml"] {
        Config::load_file(&dir.join(name), &HashMap::new())
            .unwrap_or_else(|e| panic!("config/{name}: {e}"));
    }
}

#[test]
fn route_prefix_trailing_slash_is_normalised() {
    let c = Config::from_toml(
        "[[routes]]\nname = \"a\"\nprefix = \"/a/\"\nupstream = \"http://127.0.0.1:1\"\n",
        &HashMap::new(),
    )
    .unwrap();
    assert_eq!(c.routes[0].prefix, "/a");
}

#[test]
fn staleness_must_allow_several_polls() {
    let err = Config::from_toml(
        "[store]\npoll_interval = \"10s\"\nmax_staleness = \"15s\"\n",
        &HashMap::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("store.max_staleness"), "{err}");
}

#[test]
fn jwt_routes_must_not_hand_out_the_issuer_or_another_routes_audience() {
    let err = Config::from_toml(
        r#"
[tokens]
issuer = "https://keygate.example"
[[routes]]
name = "to-admin"
prefix = "/a"
upstream = "http://127.0.0.1:9000"
forward_auth = "jwt"
audience = "https://keygate.example"
[[routes]]
name = "billing"
prefix = "/b"
upstream = "http://127.0.0.1:9000"
forward_auth = "jwt"
audience = "shared-api"
[[routes]]
name = "reports"
prefix = "/r"
upstream = "http://127.0.0.1:9000"
audience = "shared-api"
"#,
        &HashMap::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("routes[0].audience")
            && err.contains("\"to-admin\"")
            && err.contains("issuer"),
        "{err}"
    );
    assert!(
        err.contains("routes[1].audience")
            && err.contains("\"billing\"")
            && err.contains("\"reports\""),
        "{err}"
    );
    // Audiences of their own pass, and the token setting uses the issuer.
    let ok = Config::from_toml(
        r#"
[[routes]]
name = "billing"
prefix = "/b"
upstream = "http://127.0.0.1:9000"
forward_auth = "jwt"
audience = "billing-api"
[[routes]]
name = "reports"
prefix = "/r"
upstream = "http://127.0.0.1:9000"
audience = "reports-api"
"#,
        &HashMap::new(),
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
}

#[test]
fn console_sessions_are_short_lived() {
    let c = Config::defaults(&HashMap::new()).unwrap();
    assert_eq!(c.admin.console_session_ttl, Duration::from_secs(15 * 60));
    for bad in ["30s", "2d"] {
        let err = Config::from_toml(
            &format!("[admin]\nconsole_session_ttl = \"{bad}\"\n"),
            &HashMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("admin.console_session_ttl"), "{err}");
    }
    // A value that is no duration is named once, not twice.
    let err = Config::from_toml("[admin]\nconsole_session_ttl = \"soon\"\n", &HashMap::new())
        .unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
}

#[test]
fn trusted_issuers_and_their_routes_are_checked_naming_each_problem() {
    let toml = r#"
[[trusted_issuers]]
name = "gh"
issuer = "https://token.actions.githubusercontent.com"
audiences = ["keygate"]

[[trusted_issuers]]
name = "x509"
issuer = "http://10.0.0.1"
jwks_uri = "http://10.0.0.1/keys"
jwks_file = "/k.json"
audiences = []
algorithms = ["HS256", "none"]
jwks_refresh = "5s"

[[trusted_issuers]]
name = "gh"
issuer = "https://token.actions.githubusercontent.com"
audiences = ["k"]
colour = "blue"

[[routes]]
name = "a"
prefix = "/a"
upstream = "http://127.0.0.1:9"
accept_issuers = ["gh", "nope"]

[[routes]]
name = "b"
prefix = "/b"
upstream = "http://127.0.0.1:9"
public = true
accept_issuers = ["gh"]
"#;
    let problems = Config::from_toml(toml, &HashMap::new())
        .unwrap_err()
        .problems
        .join("\n");
    assert!(
        problems.contains("trusted_issuers[2].colour: unknown key"),
        "{problems}"
    );
    let toml = toml.replace("colour = \"blue\"\n", "");
    let problems = Config::from_toml(&toml, &HashMap::new())
        .unwrap_err()
        .problems
        .join("\n");
    for want in [
        "trusted_issuers[1].name: \"x509\" is reserved",
        "trusted_issuers[1].jwks_uri: set jwks_uri or jwks_file, not both",
        "trusted_issuers[1].audiences: must list",
        "trusted_issuers[1].algorithms[0]: \"HS256\" is not accepted",
        "trusted_issuers[1].algorithms[1]: \"none\" is not accepted",
        "trusted_issuers[1].jwks_refresh: must be at least 30s",
        "trusted_issuers[2].name: \"gh\" is used twice",
        "trusted_issuers[2].issuer: \"https://token.actions.githubusercontent.com\" is trusted twice",
        "routes[0].accept_issuers[1]: \"nope\" is not the name of a [[trusted_issuers]] entry",
        "routes[1].accept_issuers: a public route authenticates no one",
    ] {
        assert!(problems.contains(want), "missing {want:?} in\n{problems}");
    }
    // Plain http only to loopback; discovery when no keys are named.
    let plain = r#"
[[trusted_issuers]]
name = "corp"
issuer = "http://idp.corp.example"
audiences = ["keygate"]
"#;
    let problems = Config::from_toml(plain, &HashMap::new())
        .unwrap_err()
        .problems
        .join("\n");
    assert!(problems.contains("trusted_issuers[0].issuer: \"http://idp.corp.example/.well-known/openid-configuration\" must be https"), "{problems}");
    let good = Config::from_toml(
        &plain.replace("http://idp.corp.example", "https://idp.corp.example/"),
        &HashMap::new(),
    )
    .unwrap();
    let own = Config::from_toml(
        &plain.replace("http://idp.corp.example", "http://127.0.0.1:8080"),
        &HashMap::new(),
    )
    .unwrap_err()
    .problems
    .join("\n");
    assert!(
        own.contains("trusted_issuers[0].issuer: is keygate's own issuer"),
        "{own}"
    );
    assert_eq!(
        good.trusted_issuers[0].source,
        JwksSource::Discovery(
            "https://idp.corp.example/.well-known/openid-configuration"
                .parse()
                .unwrap()
        )
    );
}
