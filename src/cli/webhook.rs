//! `keygate webhook …`: subscriptions to keygate's events.

use clap::Subcommand;

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
