//! The command line: `keygate serve`; `init` and `check`, which work on a
//! config file and touch nothing else; and admin verbs that talk to a running
//! admin API (they never open the store themselves, so they work against any
//! replica and go through the same authorization as every other client).

mod check;
mod client;
mod init;

pub use check::check;
pub use init::init;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

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
    /// JWT signing keys.
    #[command(subcommand, name = "signing-key")]
    SigningKey(SigningKeyCmd),
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
pub enum WebhookCmd {
    /// Subscribe a URL to events; prints the signing secret once.
    Create {
        #[arg(long)]
        url: String,
        /// An event type, a family (`api_key.*`) or `*`; repeat for several.
        #[arg(long = "event", required = true)]
        events: Vec<String>,
        /// Only this organization's events.
        #[arg(long)]
        org: Option<String>,
    },
    /// List webhooks (never their secrets).
    List,
    /// Change a webhook's URL or events.
    Update {
        id: String,
        #[arg(long)]
        url: Option<String>,
        /// Replaces the events; repeat for several.
        #[arg(long = "event")]
        events: Vec<String>,
    },
    /// Delete a webhook and its deliveries.
    Delete { id: String },
    /// The deliveries log of a webhook.
    Deliveries { id: String },
}

#[derive(Debug, Subcommand)]
pub enum CredentialCmd {
    /// Create a client credential; prints its client_secret once.
    Create {
        account: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// RFC 3339 time after which the credential stops working.
        #[arg(long)]
        expires_at: Option<String>,
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
    Issue { account: String },
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

/// Runs an admin verb; returns the process exit code.
pub async fn run_admin(cli: &Cli) -> i32 {
    let Some(key) = cli.admin_key.as_deref() else {
        eprintln!(
            "error: an admin credential is needed: pass --admin-key or set KEYGATE_ADMIN_KEY"
        );
        return 2;
    };
    let c = client::AdminClient::new(&cli.admin_url, key);
    let (method, path, body): (&str, String, Option<Value>) = match &cli.command {
        Command::Serve(_) | Command::Init(_) | Command::Check(_) | Command::SecretPattern(_) => {
            return 2
        }
        Command::Org(OrgCmd::Create { name, abbreviation }) => (
            "POST",
            "/v1/organizations".into(),
            Some(json!({ "name": name, "abbreviation": abbreviation })),
        ),
        Command::Org(OrgCmd::List) => ("GET", "/v1/organizations?limit=100".into(), None),
        Command::Project(ProjectCmd::Create { org, name }) => (
            "POST",
            format!("/v1/organizations/{org}/projects"),
            Some(json!({ "name": name })),
        ),
        Command::Project(ProjectCmd::List { org }) => (
            "GET",
            format!("/v1/organizations/{org}/projects?limit=100"),
            None,
        ),
        Command::Account(AccountCmd::Create {
            org,
            project,
            name,
            description,
            role,
            scopes,
            expires_at,
            no_key,
        }) => (
            "POST",
            "/v1/service-accounts".into(),
            Some(json!({
                "organization_id": org,
                "project_id": project,
                "name": name,
                "description": description,
                "role": role,
                "scopes": scopes,
                "expires_at": expires_at,
                "create_api_key": !no_key,
            })),
        ),
        Command::Account(AccountCmd::List {
            org,
            project,
            state,
        }) => {
            let mut q = vec!["limit=100".to_string()];
            q.extend(org.as_ref().map(|o| format!("organization_id={o}")));
            q.extend(project.as_ref().map(|p| format!("project_id={p}")));
            q.extend(state.as_ref().map(|s| format!("state={s}")));
            ("GET", format!("/v1/service-accounts?{}", q.join("&")), None)
        }
        Command::Account(AccountCmd::Get { id }) => {
            ("GET", format!("/v1/service-accounts/{id}"), None)
        }
        Command::Account(AccountCmd::Disable { id }) => (
            "PATCH",
            format!("/v1/service-accounts/{id}"),
            Some(json!({ "enabled": false })),
        ),
        Command::Account(AccountCmd::Enable { id }) => (
            "PATCH",
            format!("/v1/service-accounts/{id}"),
            Some(json!({ "enabled": true })),
        ),
        Command::Account(AccountCmd::Close { id }) => {
            ("DELETE", format!("/v1/service-accounts/{id}"), None)
        }
        Command::Key(KeyCmd::Issue { account }) => (
            "POST",
            format!("/v1/service-accounts/{account}/api-keys"),
            Some(json!({})),
        ),
        Command::Key(KeyCmd::List { account }) => (
            "GET",
            format!("/v1/service-accounts/{account}/api-keys"),
            None,
        ),
        Command::Key(KeyCmd::Rotate { account, grace }) => (
            "POST",
            format!("/v1/service-accounts/{account}/rotate-api-key"),
            Some(json!({ "grace_period_seconds": grace })),
        ),
        Command::Key(KeyCmd::Revoke { account, key }) => (
            "DELETE",
            format!("/v1/service-accounts/{account}/api-keys/{key}"),
            None,
        ),
        Command::Credential(CredentialCmd::Create {
            account,
            name,
            description,
            expires_at,
        }) => (
            "POST",
            format!("/v1/service-accounts/{account}/credentials"),
            Some(json!({ "name": name, "description": description, "expires_at": expires_at })),
        ),
        Command::Credential(CredentialCmd::List { account }) => (
            "GET",
            format!("/v1/service-accounts/{account}/credentials"),
            None,
        ),
        Command::Credential(CredentialCmd::Regenerate {
            account,
            credential,
        }) => (
            "POST",
            format!("/v1/service-accounts/{account}/credentials/{credential}/secret"),
            Some(json!({})),
        ),
        Command::Credential(CredentialCmd::Delete {
            account,
            credential,
        }) => (
            "DELETE",
            format!("/v1/service-accounts/{account}/credentials/{credential}"),
            None,
        ),
        Command::SigningKey(SigningKeyCmd::List) => ("GET", "/v1/signing-keys".into(), None),
        Command::Webhook(WebhookCmd::Create { url, events, org }) => (
            "POST",
            "/v1/webhooks".into(),
            Some(json!({ "url": url, "events": events, "organization_id": org })),
        ),
        Command::Webhook(WebhookCmd::List) => ("GET", "/v1/webhooks?limit=100".into(), None),
        Command::Webhook(WebhookCmd::Update { id, url, events }) => (
            "PATCH",
            format!("/v1/webhooks/{id}"),
            Some(json!({ "url": url, "events": (!events.is_empty()).then_some(events) })),
        ),
        Command::Webhook(WebhookCmd::Delete { id }) => {
            ("DELETE", format!("/v1/webhooks/{id}"), None)
        }
        Command::Webhook(WebhookCmd::Deliveries { id }) => (
            "GET",
            format!("/v1/webhooks/{id}/deliveries?limit=100"),
            None,
        ),
        Command::SigningKey(SigningKeyCmd::Rotate { activate_after }) => (
            "POST",
            "/v1/signing-keys/rotate".into(),
            Some(json!({ "activate_after_seconds": activate_after })),
        ),
    };
    // Drop nulls so optional flags not given are not sent.
    let body = body.map(|mut b| {
        if let Value::Object(m) = &mut b {
            m.retain(|_, v| !v.is_null());
        }
        b
    });
    match c.send(method, &path, body).await {
        Ok((status, value)) if status < 400 => {
            match value {
                Value::Null => println!("ok"),
                v => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
            }
            0
        }
        Ok((status, value)) => {
            let msg = value
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            eprintln!("error: {status}: {msg}");
            1
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
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
mod tests {
    use super::*;

    #[test]
    fn serve_logs_auto_unless_told() {
        let cli = Cli::try_parse_from(["keygate", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        // The environment may set KEYGATE_LOG_FORMAT; the flag is what is tested.
        if std::env::var_os("KEYGATE_LOG_FORMAT").is_none() {
            assert_eq!(args.log_format, LogChoice::Auto);
        }
        let cli = Cli::try_parse_from(["keygate", "serve", "--log-format", "text"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.log_format, LogChoice::Text);
    }

    #[test]
    fn init_defaults_to_the_working_directory() {
        let cli = Cli::try_parse_from(["keygate", "init"]).unwrap();
        let Command::Init(args) = cli.command else {
            panic!("not init")
        };
        assert_eq!(args.dir, std::path::PathBuf::from("."));
        let cli = Cli::try_parse_from(["keygate", "init", "--dir", "demo"]).unwrap();
        let Command::Init(args) = cli.command else {
            panic!("not init")
        };
        assert_eq!(args.dir, std::path::PathBuf::from("demo"));
    }

    #[test]
    fn webhook_create_takes_repeated_events() {
        let cli = Cli::try_parse_from([
            "keygate",
            "webhook",
            "create",
            "--url",
            "https://x.example/h",
            "--event",
            "api_key.*",
            "--event",
            "service_account.disabled",
        ])
        .unwrap();
        let Command::Webhook(WebhookCmd::Create { events, .. }) = cli.command else {
            panic!("not webhook create")
        };
        assert_eq!(events, ["api_key.*", "service_account.disabled"]);
    }

    #[test]
    fn check_names_its_file() {
        let cli = Cli::try_parse_from(["keygate", "check", "--config", "k.toml"]).unwrap();
        let Command::Check(args) = cli.command else {
            panic!("not check")
        };
        assert_eq!(args.config, std::path::PathBuf::from("k.toml"));
    }
}
