//! Validation: turn the raw tree into typed config, collecting every problem
//! (each naming its key) rather than stopping at the first.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::raw::{Raw, RawRoute};
use super::*;

const KNOWN: &[(&str, &[&str])] = &[
    (
        "server",
        &[
            "listen",
            "tls_cert",
            "tls_key",
            "client_ca",
            "request_timeout",
            "max_body_bytes",
            "shutdown_grace",
        ],
    ),
    ("admin", &["listen"]),
    ("store", &["url", "poll_interval", "max_staleness"]),
    ("tokens", &["issuer", "algorithm", "ttl", "max_ttl"]),
    ("keys", &["prefix"]),
    (
        "rate_limit",
        &["backend", "redis_url", "default", "failed_auth"],
    ),
];

const ROUTE_KEYS: &[&str] = &[
    "name",
    "prefix",
    "upstream",
    "strip_prefix",
    "audience",
    "scopes",
    "forward_auth",
    "rate_limit",
    "public",
];

/// Every key the file (or environment) sets that keygate does not know.
pub(super) fn unknown_keys(tree: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    for (section, value) in tree {
        if section == "routes" {
            let Some(routes) = value.as_array() else {
                out.push("routes: must be an array of tables ([[routes]])".into());
                continue;
            };
            for (i, r) in routes.iter().enumerate() {
                match r.as_table() {
                    Some(t) => out.extend(
                        t.keys()
                            .filter(|k| !ROUTE_KEYS.contains(&k.as_str()))
                            .map(|k| format!("routes[{i}].{k}: unknown key")),
                    ),
                    None => out.push(format!("routes[{i}]: must be a table")),
                }
            }
            continue;
        }
        let Some((_, keys)) = KNOWN.iter().find(|(s, _)| s == section) else {
            out.push(format!("{section}: unknown section"));
            continue;
        };
        match value.as_table() {
            Some(t) => out.extend(
                t.keys()
                    .filter(|k| !keys.contains(&k.as_str()))
                    .map(|k| format!("{section}.{k}: unknown key")),
            ),
            None => out.push(format!("{section}: must be a table")),
        }
    }
    out
}

struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, key: &str, msg: impl std::fmt::Display) {
        self.0.push(format!("{key}: {msg}"));
    }

    fn addr(&mut self, key: &str, s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|_| {
            self.push(
                key,
                format_args!("{s:?} is not an address like 127.0.0.1:8080"),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }

    fn duration(&mut self, key: &str, s: &str) -> Duration {
        match humantime::parse_duration(s) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.push(key, "must be greater than zero");
                Duration::from_secs(1)
            }
            Err(_) => {
                self.push(
                    key,
                    format_args!("{s:?} is not a duration like \"250ms\", \"30s\" or \"5m\""),
                );
                Duration::from_secs(1)
            }
        }
    }

    fn rate(&mut self, key: &str, s: &str) -> Option<RateSpec> {
        RateSpec::parse(s).map_err(|e| self.push(key, e)).ok()
    }
}

pub(super) fn validate(raw: Raw, bootstrap: Option<Secret>) -> Result<Config, ConfigError> {
    let mut p = Problems(Vec::new());

    let s = &raw.server;
    for (key, set) in [
        ("server.tls_cert", s.tls_cert.is_some()),
        ("server.tls_key", s.tls_key.is_some()),
        ("server.client_ca", s.client_ca.is_some()),
    ] {
        if set {
            // Refused rather than ignored: a user asking for TLS must not get plain HTTP.
            p.push(key, "TLS termination is not available in this release; terminate TLS in front of keygate");
        }
    }
    if s.max_body_bytes == 0 {
        p.push("server.max_body_bytes", "must be greater than zero");
    }
    let server = ServerConfig {
        listen: p.addr("server.listen", &s.listen),
        request_timeout: p.duration("server.request_timeout", &s.request_timeout),
        max_body_bytes: s.max_body_bytes,
        shutdown_grace: p.duration("server.shutdown_grace", &s.shutdown_grace),
    };
    let admin = AdminConfig {
        listen: p.addr("admin.listen", &raw.admin.listen),
    };
    if server.listen == admin.listen && server.listen.port() != 0 {
        p.push(
            "admin.listen",
            "must differ from server.listen (admin is never reachable on the public listener)",
        );
    }

    let st = &raw.store;
    if !(st.url.starts_with("sqlite:")
        || st.url.starts_with("postgres://")
        || st.url.starts_with("postgresql://"))
    {
        p.push(
            "store.url",
            "must start with sqlite:, postgres:// or postgresql://",
        );
    }
    let store = StoreConfig {
        url: Secret::new(st.url.clone()),
        poll_interval: p.duration("store.poll_interval", &st.poll_interval),
        max_staleness: p.duration("store.max_staleness", &st.max_staleness),
    };
    // Staleness is measured from the last successful sync, and an idle store
    // is synced only by polling: staleness must allow a few polls, or a
    // healthy but quiet store would make the proxy fail closed.
    if store.max_staleness < store.poll_interval * 3 {
        p.push(
            "store.max_staleness",
            "must be at least three times store.poll_interval",
        );
    }

    let t = &raw.tokens;
    let algorithm = match t.algorithm.as_str() {
        "ES256" => Algorithm::Es256,
        "EdDSA" => Algorithm::EdDsa,
        "RS256" => Algorithm::Rs256,
        other => {
            p.push(
                "tokens.algorithm",
                format_args!("{other:?} is not one of ES256, EdDSA, RS256"),
            );
            Algorithm::Es256
        }
    };
    if !(t.issuer.starts_with("https://") || t.issuer.starts_with("http://")) {
        p.push("tokens.issuer", "must be an http:// or https:// URL");
    }
    let tokens = TokensConfig {
        issuer: t.issuer.clone(),
        algorithm,
        ttl: p.duration("tokens.ttl", &t.ttl),
        max_ttl: p.duration("tokens.max_ttl", &t.max_ttl),
    };
    if tokens.ttl > tokens.max_ttl {
        p.push("tokens.ttl", "must not exceed tokens.max_ttl");
    }

    let prefix = &raw.keys.prefix;
    let prefix_ok = (1..=16).contains(&prefix.len())
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !prefix_ok {
        p.push(
            "keys.prefix",
            "must be 1-16 lowercase letters or digits, starting with a letter",
        );
    }
    let keys = KeysConfig {
        prefix: prefix.clone(),
    };

    let rl = &raw.rate_limit;
    let backend = match rl.backend.as_str() {
        "local" => RateLimitBackend::Local,
        "redis" => RateLimitBackend::Redis,
        other => {
            p.push(
                "rate_limit.backend",
                format_args!("{other:?} is not one of local, redis"),
            );
            RateLimitBackend::Local
        }
    };
    if backend == RateLimitBackend::Redis {
        p.push(
            "rate_limit.backend",
            "the redis backend is not available in this release; use \"local\"",
        );
    }
    let rate_limit = RateLimitConfig {
        backend,
        redis_url: Secret::new(rl.redis_url.clone()),
        default: rl
            .default
            .as_deref()
            .and_then(|s| p.rate("rate_limit.default", s)),
        failed_auth: p
            .rate("rate_limit.failed_auth", &rl.failed_auth)
            .unwrap_or(RateSpec {
                count: 60,
                per: Duration::from_secs(60),
                burst: 20,
            }),
    };

    let mut routes = Vec::with_capacity(raw.routes.len());
    for (i, r) in raw.routes.into_iter().enumerate() {
        if let Some(route) = route(&mut p, i, r) {
            if routes.iter().any(|o: &RouteConfig| o.name == route.name) {
                p.push(
                    &format!("routes[{i}].name"),
                    format_args!("{:?} is used by another route", route.name),
                );
            }
            if routes
                .iter()
                .any(|o: &RouteConfig| o.prefix == route.prefix)
            {
                p.push(
                    &format!("routes[{i}].prefix"),
                    format_args!("{:?} is used by another route", route.prefix),
                );
            }
            routes.push(route);
        }
    }

    if !p.0.is_empty() {
        return Err(ConfigError { problems: p.0 });
    }
    if let Some(key) = &bootstrap {
        if key.expose().len() < 32 {
            return Err(ConfigError::one(
                "KEYGATE_ADMIN_KEY: must be at least 32 characters".into(),
            ));
        }
    }
    Ok(Config {
        server,
        admin,
        store,
        tokens,
        keys,
        rate_limit,
        routes,
        bootstrap_admin_key: bootstrap,
    })
}

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "*",
];

fn route(p: &mut Problems, i: usize, r: RawRoute) -> Option<RouteConfig> {
    let key = |k: &str| format!("routes[{i}].{k}");
    let before = p.0.len();
    if r.name.trim().is_empty() {
        p.push(&key("name"), "must not be empty");
    }
    let mut prefix = r.prefix.clone();
    if !prefix.starts_with('/') {
        p.push(&key("prefix"), format_args!("{prefix:?} must start with /"));
    }
    if prefix.split('/').any(|seg| seg == ".." || seg == ".")
        || prefix.contains("//")
        || prefix.contains('%')
    {
        p.push(
            &key("prefix"),
            format_args!("{prefix:?} must be a plain normalised path"),
        );
    }
    while prefix.len() > 1 && prefix.ends_with('/') {
        prefix.pop();
    }
    let upstream = match r.upstream.parse::<http::Uri>() {
        Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => {
            if u.query().is_some() {
                p.push(&key("upstream"), "must not carry a query string");
            }
            Some(u)
        }
        Ok(u) if u.scheme_str() == Some("https") => {
            p.push(
                &key("upstream"),
                "https upstreams are not available in this release",
            );
            None
        }
        _ => {
            p.push(
                &key("upstream"),
                format_args!("{:?} is not an http:// URL", r.upstream),
            );
            None
        }
    };
    let forward_auth = match r.forward_auth.as_str() {
        "headers" => ForwardAuth::Headers,
        "passthrough" => ForwardAuth::Passthrough,
        "jwt" => ForwardAuth::Jwt,
        other => {
            p.push(
                &key("forward_auth"),
                format_args!("{other:?} is not one of headers, jwt, passthrough"),
            );
            ForwardAuth::Headers
        }
    };
    let mut scopes = BTreeMap::new();
    for (method, list) in r.scopes {
        let upper = method.to_ascii_uppercase();
        if !METHODS.contains(&upper.as_str()) {
            p.push(
                &key("scopes"),
                format_args!("{method:?} is not an HTTP method or \"*\""),
            );
        }
        if list
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            p.push(
                &key("scopes"),
                format_args!("scopes for {method} must be non-empty words without spaces"),
            );
        }
        scopes.insert(upper, list);
    }
    if forward_auth == ForwardAuth::Jwt && r.audience.is_none() {
        // A forwarded token without its own audience would be accepted
        // wherever keygate's tokens are: the upstream could replay it.
        p.push(
            &key("audience"),
            "forward_auth = \"jwt\" needs an audience for the tokens the upstream receives",
        );
    }
    if r.public && !scopes.is_empty() {
        p.push(&key("public"), "a public route cannot require scopes");
    }
    let rate_limit = r
        .rate_limit
        .as_deref()
        .and_then(|s| p.rate(&key("rate_limit"), s));
    if p.0.len() != before {
        return None;
    }
    Some(RouteConfig {
        name: r.name,
        prefix,
        upstream: upstream?,
        strip_prefix: r.strip_prefix,
        audience: r.audience,
        scopes,
        forward_auth,
        rate_limit,
        public: r.public,
    })
}
