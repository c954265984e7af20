//! The typed configuration tree, loaded from TOML plus `KEYGATE_<SECTION>__<KEY>`
//! environment overrides and validated once at start. Everything downstream
//! takes these typed values; nothing re-parses strings at run time.

mod env;
mod events;
mod issuers;
mod problems;
mod raw;
mod routes;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

pub use events::{EventsConfig, LeakAction, ScanningKey, SecretScanningConfig};
pub use issuers::{fetchable_uri, JwksSource, TrustedIssuer, X509_ISSUER};

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    /// The decision listener, when `[decision] listen` is set.
    pub decision: Option<DecisionConfig>,
    pub store: StoreConfig,
    pub tokens: TokensConfig,
    pub keys: KeysConfig,
    pub rate_limit: RateLimitConfig,
    pub routes: Vec<RouteConfig>,
    /// Other parties whose JWTs are identities (`[[trusted_issuers]]`).
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// Webhook delivery.
    pub events: EventsConfig,
    /// The GitHub secret-scanning partner endpoint, when configured.
    pub secret_scanning: Option<SecretScanningConfig>,
    /// From `KEYGATE_ADMIN_KEY`: the bootstrap platform admin's key, used only
    /// when the store has no admin yet.
    pub bootstrap_admin_key: Option<Secret>,
}

/// TLS on a listener.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA certificates that sign client certificates (mTLS).
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// Whether a client certificate is required when `client_ca` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Required,
    Optional,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub tls: Option<TlsConfig>,
    pub request_timeout: Duration,
    /// A client that has not sent a whole request head by then is dropped
    /// (both listeners).
    pub header_read_timeout: Duration,
    pub max_body_bytes: u64,
    pub shutdown_grace: Duration,
    /// Peers whose `X-Forwarded-For` / `Forwarded` chain is believed (both
    /// listeners); empty by default.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// One structured log line per proxied request.
    pub access_log: bool,
    /// A WebSocket tunnel with no traffic this long is closed.
    pub websocket_idle_timeout: Duration,
    /// A WebSocket tunnel is closed after this long, whatever happens.
    pub websocket_max_lifetime: Duration,
    /// How HTTP/1.1 upstream connections are shared.
    pub upstream_reuse: UpstreamReuse,
    /// Who serves plain HTTP/1.1 client connections on the public listener.
    pub http1_engine: Http1Engine,
}

/// Who serves plain HTTP/1.1 client connections on the public listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http1Engine {
    /// keygate's own HTTP/1.1 path for the common case (origin-form
    /// requests with no body or a `Content-Length` one, to plain HTTP/1.1
    /// upstreams); hyper serves every other request, and the rest of its
    /// connection.
    Lean,
    /// hyper serves every request.
    Hyper,
}

/// How proxied requests find an HTTP/1.1 upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamReuse {
    /// Each client HTTP/1.1 connection keeps an upstream connection of its
    /// own, driven on its own task (the default: no pool, no hand-off).
    Connection,
    /// Every request takes a connection from one shared pool.
    Pool,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub tls: Option<TlsConfig>,
    /// Serve `/metrics` (and record them).
    pub metrics: bool,
    /// When set, `/metrics` answers only `Authorization: Bearer <token>`;
    /// unset, it answers anyone who reaches the (private) admin listener.
    pub metrics_token: Option<Secret>,
    /// How long a console sign-in lasts (`/console/`), from sign-in.
    pub console_session_ttl: Duration,
}

/// The decision listener: answers other proxies' "may this request pass,
/// and as whom?" (Envoy ext_authz over gRPC, `/authz` over HTTP).
#[derive(Debug, Clone)]
pub struct DecisionConfig {
    pub listen: SocketAddr,
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub url: Secret,
    pub poll_interval: Duration,
    pub max_staleness: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Es256,
    EdDsa,
    Rs256,
}

#[derive(Debug, Clone)]
pub struct TokensConfig {
    pub issuer: String,
    pub algorithm: Algorithm,
    pub ttl: Duration,
    pub max_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct KeysConfig {
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitBackend {
    Local,
    Redis,
}

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub backend: RateLimitBackend,
    pub redis_url: Secret,
    pub default: Option<RateSpec>,
    /// Failed authentication attempts allowed per client address.
    pub failed_auth: RateSpec,
}

/// `N/s`, `N/m` or `N/h`, optionally ` burst M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec {
    pub count: u32,
    pub per: Duration,
    pub burst: u32,
}

impl RateSpec {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (rate, burst) = match s.split_once(" burst ") {
            Some((r, b)) => (
                r.trim(),
                Some(
                    b.trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|b| *b > 0)
                        .ok_or_else(|| format!("burst {b:?} is not a positive integer"))?,
                ),
            ),
            None => (s, None),
        };
        let (count, unit) = rate
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not of the form N/s, N/m or N/h"))?;
        let count = count
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| format!("{count:?} is not a positive integer"))?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            other => return Err(format!("unit {other:?} is not one of s, m, h")),
        };
        Ok(Self {
            count,
            per,
            burst: burst.unwrap_or(count),
        })
    }

    /// Whether this limit allows no more than `other`: a rate no faster and
    /// a burst no larger.
    pub fn at_most(&self, other: &RateSpec) -> bool {
        // count/per <= other.count/other.per, without division.
        u128::from(self.count) * other.per.as_millis()
            <= u128::from(other.count) * self.per.as_millis()
            && self.burst <= other.burst
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)?;
        if self.burst != self.count {
            write!(f, " burst {}", self.burst)?;
        }
        Ok(())
    }
}

/// How keygate speaks to a route's upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (over TLS for `https://`).
    Http1,
    /// HTTP/2 with prior knowledge over plain TCP (`http://`).
    H2c,
    /// HTTP/2 over TLS, negotiated by ALPN (`https://`).
    H2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardAuth {
    Headers,
    Jwt,
    Passthrough,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    /// Normalised: starts with `/`, no trailing `/` (except the root route `/`).
    pub prefix: String,
    /// `None`: a decision-only route, answered by the decision listener
    /// (the proxy answers it 404).
    pub upstream: Option<http::Uri>,
    pub strip_prefix: bool,
    pub audience: Option<String>,
    /// Upper-case method (or `*`) → every scope required.
    pub scopes: BTreeMap<String, Vec<String>>,
    pub forward_auth: ForwardAuth,
    pub rate_limit: Option<RateSpec>,
    /// Quota each admitted request spends (default 1).
    pub cost: u64,
    pub public: bool,
    pub upstream_protocol: UpstreamProtocol,
    /// PEM CA certificates the upstream's certificate is verified against
    /// (beside the public roots).
    pub upstream_ca: Option<PathBuf>,
    /// `Upgrade: websocket` requests are authenticated, then tunnelled.
    pub websocket: bool,
    /// A verified TLS client certificate is required; its subject is
    /// forwarded as `X-Keygate-Client-Subject`.
    pub client_cert: bool,
    /// Trusted issuers (by name) whose JWTs also authenticate here, when
    /// they match a federated identity.
    pub accept_issuers: Vec<String>,
    /// Their positions in [`Config::trusted_issuers`].
    pub accept_issuer_indexes: Vec<usize>,
}

/// A secret string: `Debug` prints `***`, the memory is zeroed on drop.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(Zeroizing::new(s.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A config that could not be loaded: every problem found, one per line, each
/// naming its key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .problems.join("\n  "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(p: String) -> Self {
        Self { problems: vec![p] }
    }
}

const SECTIONS: &[&str] = &[
    "server",
    "admin",
    "decision",
    "store",
    "tokens",
    "keys",
    "rate_limit",
    "events",
    "secret_scanning",
];

impl Config {
    /// Parses TOML text, applies overrides from `env`, validates.
    pub fn from_toml(text: &str, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut tree: toml::Table = toml::from_str(text)
            .map_err(|e| ConfigError::one(format!("TOML syntax: {}", e.message())))?;
        let mut problems = env::apply(&mut tree, env, SECTIONS);
        problems.extend(validate::unknown_keys(&tree));
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let raw: raw::Raw = toml::Value::Table(tree)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::one(e.message().to_string()))?;
        let bootstrap = env
            .get("KEYGATE_ADMIN_KEY")
            .filter(|k| !k.is_empty())
            .map(|k| Secret::new(k.clone()));
        validate::validate(raw, bootstrap)
    }

    /// Reads `path`, then as [`Config::from_toml`].
    pub fn load_file(path: &Path, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::one(format!("{}: {e}", path.display())))?;
        Self::from_toml(&text, env)
    }

    /// The built-in defaults (plus `env`), as when no config file is given.
    pub fn defaults(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_toml("", env)
    }
}

#[cfg(test)]
mod tests;
