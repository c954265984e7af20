//! The config file as written: serde structs mirroring the TOML, with
//! defaults. Values stay close to their textual form here; [`super::validate`]
//! turns them into typed values and reports every problem at once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Raw {
    pub(crate) server: RawServer,
    pub(crate) admin: RawAdmin,
    pub(crate) decision: RawDecision,
    pub(crate) store: RawStore,
    pub(crate) tokens: RawTokens,
    pub(crate) keys: RawKeys,
    pub(crate) rate_limit: RawRateLimit,
    pub(crate) routes: Vec<RawRoute>,
    pub(crate) trusted_issuers: Vec<super::issuers::RawIssuer>,
    pub(crate) events: super::events::RawEvents,
    pub(crate) secret_scanning: Option<super::events::RawSecretScanning>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawServer {
    pub(crate) listen: String,
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    pub(crate) client_ca: Option<PathBuf>,
    pub(crate) client_auth: Option<String>,
    pub(crate) request_timeout: String,
    pub(crate) header_read_timeout: String,
    pub(crate) max_body_bytes: u64,
    pub(crate) shutdown_grace: String,
    pub(crate) trusted_proxies: Vec<String>,
    pub(crate) access_log: bool,
    pub(crate) websocket_idle_timeout: String,
    pub(crate) websocket_max_lifetime: String,
    pub(crate) upstream_reuse: String,
    pub(crate) http1_engine: String,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            client_auth: None,
            request_timeout: "30s".into(),
            header_read_timeout: "30s".into(),
            max_body_bytes: 10 * 1024 * 1024,
            shutdown_grace: "30s".into(),
            trusted_proxies: Vec::new(),
            access_log: true,
            websocket_idle_timeout: "5m".into(),
            websocket_max_lifetime: "24h".into(),
            upstream_reuse: "connection".into(),
            http1_engine: "lean".into(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawDecision {
    /// Off unless set.
    pub(crate) listen: Option<String>,
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    pub(crate) client_ca: Option<PathBuf>,
    pub(crate) client_auth: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAdmin {
    pub(crate) listen: String,
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    pub(crate) client_ca: Option<PathBuf>,
    pub(crate) client_auth: Option<String>,
    pub(crate) metrics: bool,
    pub(crate) metrics_token: Option<String>,
    pub(crate) console_session_ttl: String,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8081".into(),
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            client_auth: None,
            metrics: true,
            metrics_token: None,
            console_session_ttl: "15m".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawStore {
    pub(crate) url: String,
    pub(crate) poll_interval: String,
    pub(crate) max_staleness: String,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            url: "sqlite://keygate.db".into(),
            poll_interval: "1s".into(),
            max_staleness: "15m".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTokens {
    pub(crate) issuer: String,
    pub(crate) algorithm: String,
    pub(crate) ttl: String,
    pub(crate) max_ttl: String,
}

impl Default for RawTokens {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".into(),
            algorithm: "ES256".into(),
            ttl: "5m".into(),
            max_ttl: "1h".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawKeys {
    pub(crate) prefix: String,
}

impl Default for RawKeys {
    fn default() -> Self {
        Self {
            prefix: "kg".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRateLimit {
    pub(crate) backend: String,
    pub(crate) redis_url: String,
    pub(crate) default: Option<String>,
    pub(crate) failed_auth: String,
}

impl Default for RawRateLimit {
    fn default() -> Self {
        Self {
            backend: "local".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            default: None,
            failed_auth: "60/m burst 20".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) name: String,
    pub(crate) prefix: String,
    pub(crate) upstream: Option<String>,
    #[serde(default)]
    pub(crate) strip_prefix: bool,
    #[serde(default)]
    pub(crate) audience: Option<String>,
    #[serde(default)]
    pub(crate) scopes: BTreeMap<String, Vec<String>>,
    #[serde(default = "default_forward_auth")]
    pub(crate) forward_auth: String,
    #[serde(default)]
    pub(crate) rate_limit: Option<String>,
    #[serde(default)]
    pub(crate) public: bool,
    #[serde(default)]
    pub(crate) upstream_protocol: Option<String>,
    #[serde(default)]
    pub(crate) upstream_ca: Option<PathBuf>,
    #[serde(default)]
    pub(crate) websocket: bool,
    #[serde(default)]
    pub(crate) client_cert: bool,
    #[serde(default)]
    pub(crate) cost: Option<i64>,
    #[serde(default)]
    pub(crate) accept_issuers: Vec<String>,
}

fn default_forward_auth() -> String {
    "headers".into()
}
