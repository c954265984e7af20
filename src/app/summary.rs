//! What a person starting keygate is told once it is up: the listeners and
//! their schemes, the store and what it holds, the routes (or that there are
//! none), the token issuer, and the next command to try. Also the one-line
//! form `keygate check` prints.
//!
//! Pure formatting from [`Facts`] gathered at start; printing (text logs
//! only) is `main`'s. Never a secret: the store URL loses its credentials
//! here, and no key is ever among the facts.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::Config;

/// What the summary reports, taken once the listeners are up and the
/// credential cache is loaded.
#[derive(Debug, Clone)]
pub struct Facts {
    public: String,
    admin: String,
    /// The admin API as a URL one can call from this host.
    admin_local: String,
    decision: Option<String>,
    store: String,
    keys: usize,
    credentials: usize,
    routes: Vec<(String, String, Option<String>)>,
    issuer: String,
}

impl Facts {
    /// `keys` and `credentials`: live API keys and client credentials in the
    /// cache, the bootstrap admin's key included.
    pub fn new(
        config: &Config,
        public: SocketAddr,
        admin: SocketAddr,
        decision: Option<SocketAddr>,
        keys: usize,
        credentials: usize,
    ) -> Self {
        let admin_scheme = scheme(config.admin.tls.is_some());
        Self {
            public: format!("{}://{public}", scheme(config.server.tls.is_some())),
            admin: format!("{admin_scheme}://{admin}"),
            admin_local: format!("{admin_scheme}://{}", local(admin)),
            decision: decision.map(|addr| {
                let tls = config.decision.as_ref().is_some_and(|d| d.tls.is_some());
                format!("{}://{addr}", scheme(tls))
            }),
            store: store_label(config.store.url.expose()),
            keys,
            credentials,
            routes: config
                .routes
                .iter()
                .map(|r| {
                    let upstream = r.upstream.as_ref().map(upstream_label);
                    (r.name.clone(), r.prefix.clone(), upstream)
                })
                .collect(),
            issuer: config.tokens.issuer.clone(),
        }
    }
}

/// The start-up summary, several lines ending in a newline. `program` is how
/// keygate was invoked, so the suggested command can be pasted as is.
pub fn render(f: &Facts, program: &str) -> String {
    let mut out = format!("keygate {} is ready\n", env!("CARGO_PKG_VERSION"));
    let mut line = |label: &str, text: &str| {
        let _ = writeln!(out, "  {label:<9} {text}");
    };
    line("public", &format!("{}  routes, /oauth2/token", f.public));
    line("admin", &format!("{}  /v1 API, /readyz, /metrics", f.admin));
    line(
        "console",
        &format!(
            "{}/console/  in a browser, sign in with an admin key",
            f.admin_local
        ),
    );
    if let Some(decision) = &f.decision {
        line("decision", &format!("{decision}  ext_authz (gRPC), /authz"));
    }
    line(
        "store",
        &format!(
            "{}: {}, {}",
            f.store,
            plural(f.keys, "API key"),
            plural(f.credentials, "client credential")
        ),
    );
    if f.routes.is_empty() {
        line(
            "routes",
            "none: the proxy answers 404 to everything; see config/keygate.toml",
        );
    }
    for (i, (name, prefix, upstream)) in f.routes.iter().enumerate() {
        let target = upstream.as_deref().unwrap_or("decision-only");
        line(
            if i == 0 { "routes" } else { "" },
            &format!("{name}  {prefix} -> {target}"),
        );
    }
    line("tokens", &format!("issuer {}", f.issuer));
    if f.routes.is_empty() {
        line(
            "next",
            &format!("{program} init    (a starter config with one route to try)"),
        );
    } else {
        line(
            "next",
            &format!(
                "curl {}/v1/organizations -H \"Authorization: Bearer $KEYGATE_ADMIN_KEY\"",
                f.admin_local
            ),
        );
        line(
            "",
            "(KEYGATE_ADMIN_KEY: the bootstrap admin key, or the one you chose)",
        );
    }
    out
}

/// One line for `keygate check`: what the config would serve.
pub fn config_line(config: &Config) -> String {
    let routes = config
        .routes
        .iter()
        .map(|r| r.name.as_str())
        .collect::<Vec<_>>();
    let routes = match routes.len() {
        0 => "no routes".to_string(),
        n => format!("{} ({})", plural(n, "route"), routes.join(", ")),
    };
    let mut line = format!(
        "public {}://{}, admin {}://{}",
        scheme(config.server.tls.is_some()),
        config.server.listen,
        scheme(config.admin.tls.is_some()),
        config.admin.listen,
    );
    if let Some(d) = &config.decision {
        let _ = write!(
            line,
            ", decision {}://{}",
            scheme(d.tls.is_some()),
            d.listen
        );
    }
    let _ = write!(
        line,
        ", {routes}, store {}, issuer {}",
        store_label(config.store.url.expose()),
        config.tokens.issuer
    );
    line
}

/// `http://127.0.0.1:9000` as written, not `http://127.0.0.1:9000/`.
fn upstream_label(uri: &http::Uri) -> String {
    let text = uri.to_string();
    match text.strip_suffix('/') {
        Some(bare) if uri.path() == "/" && uri.query().is_none() => bare.to_string(),
        _ => text,
    }
}

fn scheme(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A listener bound to every interface is reached locally on loopback.
fn local(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// `SQLite <path>` or `PostgreSQL <host>[:port]/<db>`.
// SECURITY: a PostgreSQL URL carries a password in its userinfo or its
// query; only what follows the last `@` and precedes `?` is ever shown (an
// unencoded `/` or `@` in the password stays on the hidden side).
fn store_label(url: &str) -> String {
    let strip_query = |s: &str| s.split(['?', '#']).next().unwrap_or_default().to_string();
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = strip_query(rest.strip_prefix("//").unwrap_or(rest));
        return match path.as_str() {
            "" | ":memory:" => "SQLite in memory".to_string(),
            _ => format!("SQLite {path}"),
        };
    }
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"));
    match rest {
        Some(rest) => {
            let rest = strip_query(rest);
            let place = rest.rsplit_once('@').map_or(rest.as_str(), |(_, p)| p);
            format!("PostgreSQL {place}")
        }
        None => "store".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(toml: &str) -> Config {
        Config::from_toml(toml, &HashMap::new()).unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const ROUTES: &str = r#"
[[routes]]
name = "orders"
prefix = "/orders"
upstream = "http://127.0.0.1:9000"
[[routes]]
name = "billing"
prefix = "/billing"
"#;

    #[test]
    fn with_routes_it_lists_them_and_suggests_the_admin_api() {
        let c = config(ROUTES);
        let facts = Facts::new(&c, addr("127.0.0.1:8080"), addr("0.0.0.0:8081"), None, 1, 0);
        let text = render(&facts, "keygate");
        assert!(text.starts_with("keygate "), "{text}");
        assert!(text.contains("public    http://127.0.0.1:8080"), "{text}");
        assert!(text.contains("admin     http://0.0.0.0:8081"), "{text}");
        assert!(!text.contains("  decision  "), "{text}");
        assert!(
            text.contains("SQLite keygate.db: 1 API key, 0 client credentials"),
            "{text}"
        );
        assert!(
            text.contains("orders  /orders -> http://127.0.0.1:9000\n"),
            "{text}"
        );
        assert!(
            text.contains("billing  /billing -> decision-only"),
            "{text}"
        );
        assert!(text.contains("issuer http://127.0.0.1:8080"), "{text}");
        // Loopback, not 0.0.0.0, in a command to paste.
        assert!(
            text.contains("curl http://127.0.0.1:8081/v1/organizations"),
            "{text}"
        );
    }

    #[test]
    fn without_routes_it_says_the_proxy_has_nothing_to_do() {
        let c = config("[decision]\nlisten = \"127.0.0.1:8082\"\n");
        let facts = Facts::new(
            &c,
            addr("127.0.0.1:8080"),
            addr("127.0.0.1:8081"),
            Some(addr("127.0.0.1:8082")),
            3,
            2,
        );
        let text = render(&facts, "target/release/keygate");
        assert!(
            text.contains("none: the proxy answers 404 to everything; see config/keygate.toml"),
            "{text}"
        );
        assert!(text.contains("decision  http://127.0.0.1:8082"), "{text}");
        assert!(text.contains("3 API keys, 2 client credentials"), "{text}");
        assert!(
            text.contains("next      target/release/keygate init"),
            "{text}"
        );
    }

    #[test]
    fn tls_listeners_read_https() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let c = config(&format!(
            "[server]\ntls_cert = {cert:?}\ntls_key = {key:?}\n{ROUTES}",
            cert = cert.display().to_string(),
            key = key.display().to_string(),
        ));
        let facts = Facts::new(
            &c,
            addr("127.0.0.1:8443"),
            addr("127.0.0.1:8081"),
            None,
            0,
            0,
        );
        let text = render(&facts, "keygate");
        assert!(text.contains("public    https://127.0.0.1:8443"), "{text}");
        assert!(text.contains("admin     http://127.0.0.1:8081"), "{text}");
        assert!(
            text.contains("console   http://127.0.0.1:8081/console/"),
            "{text}"
        );
        assert!(
            config_line(&c).starts_with("public https://"),
            "{}",
            config_line(&c)
        );
    }

    #[test]
    fn the_store_is_named_without_its_credentials() {
        assert_eq!(store_label("sqlite://keygate.db"), "SQLite keygate.db");
        assert_eq!(
            store_label("sqlite:///var/lib/keygate/k.db?mode=rwc"),
            "SQLite /var/lib/keygate/k.db"
        );
        assert_eq!(store_label("sqlite::memory:"), "SQLite in memory");
        assert_eq!(
            store_label("postgres://kg:s3cr/t@x@db.internal:5432/keygate?password=p2"),
            "PostgreSQL db.internal:5432/keygate"
        );
        assert_eq!(
            store_label("postgresql://db:5432/keygate"),
            "PostgreSQL db:5432/keygate"
        );
    }

    #[test]
    fn the_check_line_names_listeners_routes_and_store() {
        let line = config_line(&config(ROUTES));
        assert_eq!(
            line,
            "public http://127.0.0.1:8080, admin http://127.0.0.1:8081, \
             2 routes (orders, billing), store SQLite keygate.db, issuer http://127.0.0.1:8080"
        );
        assert!(config_line(&config("")).contains("no routes"));
    }
}
