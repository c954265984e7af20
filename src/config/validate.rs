//! Validation: turn the raw tree into typed config, collecting every problem
//! (each naming its key) rather than stopping at the first.

use std::time::Duration;

use super::problems::Problems;
use super::raw::Raw;
use super::*;

const KNOWN: &[(&str, &[&str])] = &[
    (
        "server",
        &[
            "listen",
            "tls_cert",
            "tls_key",
            "client_ca",
            "client_auth",
            "request_timeout",
            "header_read_timeout",
            "max_body_bytes",
            "shutdown_grace",
            "trusted_proxies",
            "access_log",
            "websocket_idle_timeout",
            "websocket_max_lifetime",
            "upstream_reuse",
            "http1_engine",
        ],
    ),
    (
        "admin",
        &[
            "listen",
            "tls_cert",
            "tls_key",
            "client_ca",
            "client_auth",
            "metrics",
            "metrics_token",
            "console_session_ttl",
        ],
    ),
    (
        "decision",
        &["listen", "tls_cert", "tls_key", "client_ca", "client_auth"],
    ),
    ("store", &["url", "poll_interval", "max_staleness"]),
    ("tokens", &["issuer", "algorithm", "ttl", "max_ttl"]),
    ("keys", &["prefix"]),
    (
        "rate_limit",
        &["backend", "redis_url", "default", "failed_auth"],
    ),
    ("events", super::events::EVENTS_KEYS),
    ("secret_scanning", super::events::SECRET_SCANNING_KEYS),
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
    "upstream_protocol",
    "upstream_ca",
    "websocket",
    "client_cert",
    "cost",
    "accept_issuers",
];

/// Every key the file (or environment) sets that keygate does not know.
pub(super) fn unknown_keys(tree: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    for (section, value) in tree {
        let array_keys = match section.as_str() {
            "routes" => Some(ROUTE_KEYS),
            "trusted_issuers" => Some(super::issuers::ISSUER_KEYS),
            _ => None,
        };
        if let Some(known) = array_keys {
            let Some(items) = value.as_array() else {
                out.push(format!(
                    "{section}: must be an array of tables ([[{section}]])"
                ));
                continue;
            };
            for (i, r) in items.iter().enumerate() {
                match r.as_table() {
                    Some(t) => out.extend(
                        t.keys()
                            .filter(|k| !known.contains(&k.as_str()))
                            .map(|k| format!("{section}[{i}].{k}: unknown key")),
                    ),
                    None => out.push(format!("{section}[{i}]: must be a table")),
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

pub(super) fn validate(raw: Raw, bootstrap: Option<Secret>) -> Result<Config, ConfigError> {
    let mut p = Problems(Vec::new());

    let s = &raw.server;
    if s.max_body_bytes == 0 {
        p.push("server.max_body_bytes", "must be greater than zero");
    }
    let mut trusted_proxies = Vec::with_capacity(s.trusted_proxies.len());
    for (i, cidr) in s.trusted_proxies.iter().enumerate() {
        // A bare address is its own /32 (or /128).
        let net = cidr
            .parse::<ipnet::IpNet>()
            .or_else(|_| cidr.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match net {
            Ok(n) => trusted_proxies.push(n),
            Err(_) => p.push(
                &format!("server.trusted_proxies[{i}]"),
                format_args!("{cidr:?} is not a CIDR like \"10.0.0.0/8\" or an address"),
            ),
        }
    }
    let server = ServerConfig {
        listen: p.addr("server.listen", &s.listen),
        tls: p.tls(
            "server",
            s.tls_cert.as_ref(),
            s.tls_key.as_ref(),
            s.client_ca.as_ref(),
            s.client_auth.as_deref(),
        ),
        request_timeout: p.duration("server.request_timeout", &s.request_timeout),
        header_read_timeout: p.duration("server.header_read_timeout", &s.header_read_timeout),
        max_body_bytes: s.max_body_bytes,
        shutdown_grace: p.duration("server.shutdown_grace", &s.shutdown_grace),
        trusted_proxies,
        access_log: s.access_log,
        websocket_idle_timeout: p
            .duration("server.websocket_idle_timeout", &s.websocket_idle_timeout),
        websocket_max_lifetime: p
            .duration("server.websocket_max_lifetime", &s.websocket_max_lifetime),
        upstream_reuse: match s.upstream_reuse.as_str() {
            "connection" => UpstreamReuse::Connection,
            "pool" => UpstreamReuse::Pool,
            other => {
                p.push(
                    "server.upstream_reuse",
                    format!("must be \"connection\" or \"pool\", not {other:?}"),
                );
                UpstreamReuse::Connection
            }
        },
        http1_engine: match s.http1_engine.as_str() {
            "lean" => Http1Engine::Lean,
            "hyper" => Http1Engine::Hyper,
            other => {
                p.push(
                    "server.http1_engine",
                    format!("must be \"lean\" or \"hyper\", not {other:?}"),
                );
                Http1Engine::Lean
            }
        },
    };
    let a = &raw.admin;
    let admin = AdminConfig {
        listen: p.addr("admin.listen", &a.listen),
        tls: p.tls(
            "admin",
            a.tls_cert.as_ref(),
            a.tls_key.as_ref(),
            a.client_ca.as_ref(),
            a.client_auth.as_deref(),
        ),
        metrics: a.metrics,
        metrics_token: a.metrics_token.as_ref().map(|t| {
            if t.len() < 32 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                p.push(
                    "admin.metrics_token",
                    "must be at least 32 visible ASCII characters",
                );
            }
            Secret::new(t.clone())
        }),
        console_session_ttl: {
            let ttl = p.duration("admin.console_session_ttl", &a.console_session_ttl);
            let parsed = humantime::parse_duration(&a.console_session_ttl).is_ok();
            if parsed && !(Duration::from_secs(60)..=Duration::from_secs(24 * 3600)).contains(&ttl)
            {
                p.push(
                    "admin.console_session_ttl",
                    "must be between 1m and 24h (a console session is short-lived)",
                );
            }
            ttl
        },
    };
    if server.listen == admin.listen && server.listen.port() != 0 {
        p.push(
            "admin.listen",
            "must differ from server.listen (admin is never reachable on the public listener)",
        );
    }
    let d = &raw.decision;
    let decision = match &d.listen {
        Some(listen) => {
            let listen = p.addr("decision.listen", listen);
            if listen.port() != 0 && (listen == server.listen || listen == admin.listen) {
                p.push(
                    "decision.listen",
                    "must differ from server.listen and admin.listen",
                );
            }
            Some(DecisionConfig {
                listen,
                tls: p.tls(
                    "decision",
                    d.tls_cert.as_ref(),
                    d.tls_key.as_ref(),
                    d.client_ca.as_ref(),
                    d.client_auth.as_deref(),
                ),
            })
        }
        None => {
            let set = d.tls_cert.is_some() || d.tls_key.is_some() || d.client_ca.is_some();
            if set || d.client_auth.is_some() {
                p.push("decision", "TLS settings need decision.listen");
            }
            None
        }
    };

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
    if backend == RateLimitBackend::Redis && redis::Client::open(rl.redis_url.as_str()).is_err() {
        p.push(
            "rate_limit.redis_url",
            "is not a Redis URL like \"redis://127.0.0.1:6379\"",
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

    let trusted_issuers = super::issuers::issuers(&mut p, &raw.trusted_issuers);
    // SECURITY: keygate's own tokens are verified against its own keys
    // only; trusting its issuer as another party's would let any key of
    // that "issuer" mint keygate identities.
    for (i, t) in trusted_issuers.iter().enumerate() {
        if t.issuer.trim_end_matches('/') == tokens.issuer.trim_end_matches('/') {
            p.push(
                &format!("trusted_issuers[{i}].issuer"),
                "is keygate's own issuer (tokens.issuer); its tokens need no trust entry",
            );
        }
    }
    let mut routes = Vec::with_capacity(raw.routes.len());
    for (i, r) in raw.routes.into_iter().enumerate() {
        if let Some(route) = super::routes::route(&mut p, i, r) {
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
            if route.client_cert && server.tls.as_ref().is_none_or(|t| t.client_ca.is_none()) {
                // Refused rather than ignored: the route would admit no one,
                // or (worse) be read as protected when nothing checks.
                p.push(
                    &format!("routes[{i}].client_cert"),
                    "needs server.tls_cert, server.tls_key and server.client_ca (mTLS)",
                );
            }
            let mut route = route;
            for (j, name) in route.accept_issuers.iter().enumerate() {
                if let Some(at) = trusted_issuers.iter().position(|t| &t.name == name) {
                    route.accept_issuer_indexes.push(at);
                } else {
                    p.push(
                        &format!("routes[{i}].accept_issuers[{j}]"),
                        format_args!("{name:?} is not the name of a [[trusted_issuers]] entry"),
                    );
                }
            }
            if route.public && !route.accept_issuers.is_empty() {
                p.push(
                    &format!("routes[{i}].accept_issuers"),
                    "a public route authenticates no one",
                );
            }
            routes.push(route);
        }
    }
    upstream_audiences(&mut p, &routes, &tokens.issuer);
    let events = super::events::events(&mut p, &raw.events);
    let secret_scanning = super::events::secret_scanning(&mut p, raw.secret_scanning.as_ref());

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
        decision,
        store,
        tokens,
        keys,
        rate_limit,
        routes,
        trusted_issuers,
        events,
        secret_scanning,
        bootstrap_admin_key: bootstrap,
    })
}

/// SECURITY: a `forward_auth = "jwt"` route hands its upstream tokens for
/// its `audience`. Were that keygate's own issuer, the upstream would hold
/// tokens the admin listener and every route without an audience accept;
/// were it another route's, tokens the upstream received would open that
/// route. Both are refused, naming the routes.
fn upstream_audiences(p: &mut Problems, routes: &[RouteConfig], issuer: &str) {
    for (i, r) in routes.iter().enumerate() {
        let Some(audience) = r
            .audience
            .as_deref()
            .filter(|_| r.forward_auth == ForwardAuth::Jwt)
        else {
            continue;
        };
        if audience == issuer {
            p.push(
                &format!("routes[{i}].audience"),
                format_args!(
                    "route {:?} forwards tokens whose audience is keygate's own issuer (tokens.issuer); \
                     its upstream could use them on the admin listener",
                    r.name
                ),
            );
        }
        for (j, other) in routes.iter().enumerate() {
            if j != i && other.audience.as_deref() == Some(audience) {
                p.push(
                    &format!("routes[{i}].audience"),
                    format_args!(
                        "route {:?} forwards tokens for audience {audience:?}, which route {:?} \
                         (routes[{j}]) also accepts; give each its own",
                        r.name, other.name
                    ),
                );
            }
        }
    }
}
