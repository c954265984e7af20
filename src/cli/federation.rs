//! `keygate federated-identity …`: identities keygate did not issue, bound
//! to service accounts.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum FederationCmd {
    /// Bind a trusted issuer's subject (or, with --issuer x509, a client
    /// certificate's SPIFFE id) to an account.
    Bind {
        account: String,
        /// A `[[trusted_issuers]]` name, or `x509`.
        #[arg(long)]
        issuer: String,
        /// The token's `sub` exactly (a `spiffe://` id for x509).
        #[arg(long)]
        subject: String,
        /// A further claim that must be equal, as NAME=VALUE; repeat for several.
        #[arg(long = "claim", value_parser = claim)]
        claims: Vec<(String, String)>,
    },
    /// List the identities bound to an account.
    List { account: String },
    /// Remove a binding; tokens minted through it stop too.
    Unbind { account: String, binding: String },
}

fn claim(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("{s:?} is not NAME=VALUE")),
    }
}
