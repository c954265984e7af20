//! The command line: `keygate serve`; `init` and `check`, which work on a
//! config file and touch nothing else; and admin verbs that talk to a running
//! admin API (they never open the store themselves, so they work against any
//! replica and go through the same authorization as every other client).

mod admin;
mod check;
mod client;
mod federation;
mod init;
pub mod quota;
mod webhook;

pub use federation::FederationCmd;
pub use webhook::WebhookCmd;

pub use admin::run_admin;
pub use check::check;
pub use init::init;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::telemetry::LogChoice;

#[derive(Debug, Parser)]
#[command(
    name = "keygate",
    version,
    about = "Machine identity for APIs: API keys, an authenticating proxy and an admin API in one binary"
)]
pub struct Cli {
    /// Admin API base URL (for the admin verbs).
    #[arg(
        long,
        global = true,
        env = "KEYGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub admin_url: String,
    /// Credential for the admin verbs: an admin or owner API key.
    #[arg(long, global = true, env = "KEYGATE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run keygate: the public listener, the admin listener and the cache sync.
    Serve(ServeArgs),
    /// Write a commented starter config (one route, tokens, the admin
    /// listener) that `serve --config` accepts as is. Never overwrites.
    Init(InitArgs),
    /// Validate a config as `serve` does at start (environment overrides
    /// included) and print every problem at once; exit 1 on any.
    Check(CheckArgs),
    /// Organizations.
    #[command(subcommand)]
    Org(OrgCmd),
    /// Projects inside an organization.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Service accounts.
    #[command(subcommand)]
    Account(AccountCmd),
    /// API keys of a service account.
    #[command(subcommand)]
    Key(KeyCmd),
    /// OAuth client credentials of a service account.
    #[command(subcommand)]
    Credential(CredentialCmd),
    /// Identities from trusted issuers (Kubernetes, GitHub Actions…) or
    /// client certificates, bound to service accounts.
    #[command(subcommand, name = "federated-identity", alias = "identity")]
    FederatedIdentity(FederationCmd),
    /// JWT signing keys.
    #[command(subcommand, name = "signing-key")]
    SigningKey(SigningKeyCmd),
    /// Quotas of accounts, keys and credentials, and usage.
    #[command(subcommand)]
    Quota(quota::QuotaCmd),
    /// Webhooks: events out of keygate, signed per Standard Webhooks.
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// Print the regular expression of keygate's API keys and client
    /// secrets, for secret scanners (GitHub custom patterns, gitleaks,
    /// trufflehog). Needs no running keygate.
    #[command(name = "secret-pattern")]
    SecretPattern(SecretPatternArgs),
}

#[derive(Debug, Args)]
pub struct SecretPatternArgs {
    /// The key prefix (`[keys] prefix`).
    #[arg(long, env = "KEYGATE_KEYS__PREFIX", default_value = "kg")]
    pub prefix: String,
}

#[derive(Debug, Subcommand)]
pub enum CredentialCmd {
    /// Create a client credential; prints its client_secret once (none
    /// with --public-jwk-file: the client then uses private_key_jwt).
    Create {
        account: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// RFC 3339 time after which the credential stops working.
        #[arg(long)]
        expires_at: Option<String>,
        /// A file holding the client's public JWK (JSON): the credential
        /// authenticates with private_key_jwt assertions, not a secret.
        #[arg(long, value_name = "PATH")]
        public_jwk_file: Option<std::path::PathBuf>,
    },
    /// List an account's credentials (never their secrets).
    List { account: String },
    /// Issue a new secret; the old one stops working at once. Prints it once.
    Regenerate { account: String, credential: String },
    /// Delete a credential.
    Delete { account: String, credential: String },
}

#[derive(Debug, Subcommand)]
pub enum SigningKeyCmd {
    /// List signing keys (public parts).
    List,
    /// Publish a new signing key; it signs after --activate-after seconds and
    /// the old keys retire once their tokens have expired.
    Rotate {
        #[arg(long, default_value_t = 120)]
        activate_after: u64,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (TOML). Without one, built-in defaults apply.
    #[arg(long, short, env = "KEYGATE_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Log format on stderr: auto is text on a terminal, JSON otherwise.
    #[arg(long, value_enum, default_value = "auto", env = "KEYGATE_LOG_FORMAT")]
    pub log_format: LogChoice,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to write keygate.toml into (created if missing).
    #[arg(long, default_value = ".")]
    pub dir: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Config file (TOML) to validate.
    #[arg(long, short, env = "KEYGATE_CONFIG")]
    pub config: std::path::PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum OrgCmd {
    /// Create an organization (platform admins only).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        abbreviation: Option<String>,
    },
    /// List organizations you can see.
    List,
}

#[derive(Debug, Subcommand)]
pub enum ProjectCmd {
    /// Create a project in an organization.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
    },
    /// List an organization's projects.
    List {
        #[arg(long)]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Create a service account; prints its first API key once.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// owner or member.
        #[arg(long)]
        role: Option<String>,
        /// A scope to grant; repeat for several.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// RFC 3339 time after which the account stops working.
        #[arg(long)]
        expires_at: Option<String>,
        /// Do not issue an API key now.
        #[arg(long)]
        no_key: bool,
    },
    /// List service accounts.
    List {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        project: Option<String>,
        /// active, disabled, expired or closed.
        #[arg(long)]
        state: Option<String>,
    },
    /// Show one service account.
    Get { id: String },
    /// Disable an account: its keys stop working until it is enabled.
    Disable { id: String },
    /// Enable a disabled account.
    Enable { id: String },
    /// Close an account for good, revoking every key.
    Close { id: String },
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Issue an additional API key; prints it once.
    Issue {
        account: String,
        /// A scope of the account's the key may use; repeat for several
        /// (default: all of the account's).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A CIDR the key may be used from; repeat for several.
        #[arg(long = "allowed-cidr")]
        cidrs: Vec<String>,
        /// The key's own quota, e.g. `1000/day`.
        #[arg(long, value_parser = quota::parse_quota)]
        quota: Option<Value>,
        /// RFC 3339 time after which the key stops working.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List an account's live keys (redacted).
    List { account: String },
    /// Issue a new key and retire the old ones after a grace period.
    Rotate {
        account: String,
        /// Seconds the old keys keep working.
        #[arg(long, default_value_t = 0)]
        grace: u64,
    },
    /// Revoke one key at once.
    Revoke { account: String, key: String },
}

/// How the user invoked keygate (`target/release/keygate`, `keygate`), so
/// the next command suggested can be pasted as is.
pub fn program_name() -> String {
    std::env::args_os()
        .next()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "keygate".to_string())
}

#[cfg(test)]
mod tests;
