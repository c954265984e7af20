//! Webhook subscriptions: who may manage them, what a valid one is, and the
//! writes (audited, through the one write funnel). A platform admin manages
//! any, including fleet-wide ones (no organization); an organization-wide
//! owner manages its organization's, which receive only that organization's
//! events. The signing secret is made here and returned once.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::target::Policy;
use super::{known_pattern, sign};
use crate::manage::{self, Actor, Audit, Cursor, Error, Listing, Manager, Result, Written};
use crate::store::{Delivery, Role, Webhook, Write};

const MAX_URL: usize = 2048;
const MAX_PATTERNS: usize = 64;

#[derive(Debug, Clone, Default)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    pub organization_id: Option<Uuid>,
}

#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
}

/// A webhook just made, with its secret (shown once).
pub struct CreatedWebhook {
    pub webhook: Webhook,
    pub secret: Zeroizing<String>,
}

pub struct Webhooks {
    manager: Arc<Manager>,
    policy: Policy,
}

impl Webhooks {
    pub fn new(manager: Arc<Manager>, policy: Policy) -> Self {
        Self { manager, policy }
    }

    pub async fn create(&self, actor: &Actor, new: NewWebhook) -> Result<Written<CreatedWebhook>> {
        let organization_id = match (actor.admin, new.organization_id) {
            (true, org) => org,
            (false, org) => Some(org.unwrap_or(actor.organization_id)),
        };
        may_manage(actor, organization_id)?;
        if let Some(org) = organization_id {
            let exists = self
                .manager
                .store
                .organization(org)
                .await
                .map_err(|e| manage::from_store(e, "organization"))?;
            if exists.is_none() {
                return Err(Error::invalid("organization_id", "no such organization"));
            }
        }
        let url = self.valid_url(&new.url).await?;
        let events = valid_events(new.events)?;
        let now = self.manager.now();
        let secret = sign::new_secret();
        let webhook = Webhook {
            id: Uuid::now_v7(),
            organization_id,
            url,
            events,
            secret: secret.to_string(),
            created_by: Some(actor.account_id),
            created_at: now,
            updated_at: now,
        };
        let audit = audit("webhook.create", &webhook);
        let revision = self
            .manager
            .commit(
                Some(actor),
                "webhook",
                vec![Write::InsertWebhook(webhook.clone())],
                audit,
            )
            .await?;
        Ok(Written {
            value: CreatedWebhook { webhook, secret },
            revision,
        })
    }

    pub async fn list(
        &self,
        actor: &Actor,
        after: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Listing<Webhook>> {
        let only = if actor.admin {
            None
        } else {
            may_manage(actor, Some(actor.organization_id))?;
            Some(actor.organization_id)
        };
        let page = Manager::page(Cursor::after(after), limit)?;
        let hooks = self
            .manager
            .store
            .webhooks(only, page)
            .await
            .map_err(|e| manage::from_store(e, "webhook"))?;
        Ok(Manager::listing(hooks, page))
    }

    pub async fn get(&self, actor: &Actor, id: Uuid) -> Result<Webhook> {
        let hook = self
            .manager
            .store
            .webhook(id)
            .await
            .map_err(|e| manage::from_store(e, "webhook"))?
            .ok_or(Error::NotFound("webhook"))?;
        may_manage(actor, hook.organization_id)?;
        Ok(hook)
    }

    pub async fn update(
        &self,
        actor: &Actor,
        id: Uuid,
        patch: WebhookPatch,
    ) -> Result<Written<Webhook>> {
        let mut hook = self.get(actor, id).await?;
        if let Some(url) = patch.url {
            hook.url = self.valid_url(&url).await?;
        }
        if let Some(events) = patch.events {
            hook.events = valid_events(events)?;
        }
        hook.updated_at = self.manager.now().max(hook.updated_at + 1);
        let audit = audit("webhook.update", &hook);
        let revision = self
            .manager
            .commit(
                Some(actor),
                "webhook",
                vec![Write::UpdateWebhook(hook.clone())],
                audit,
            )
            .await?;
        Ok(Written {
            value: hook,
            revision,
        })
    }

    pub async fn delete(&self, actor: &Actor, id: Uuid) -> Result<Written<()>> {
        let hook = self.get(actor, id).await?;
        let audit = audit("webhook.delete", &hook);
        let revision = self
            .manager
            .commit(
                Some(actor),
                "webhook",
                vec![Write::DeleteWebhook { id }],
                audit,
            )
            .await?;
        Ok(Written {
            value: (),
            revision,
        })
    }

    /// The deliveries log of a webhook, oldest first.
    pub async fn deliveries(
        &self,
        actor: &Actor,
        id: Uuid,
        after: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Listing<Delivery>> {
        self.get(actor, id).await?;
        let page = Manager::page(Cursor::after(after), limit)?;
        let data = self
            .manager
            .store
            .deliveries(id, page)
            .await
            .map_err(|e| manage::from_store(e, "delivery"))?;
        Ok(Manager::listing(data, page))
    }

    /// The URL policy, with DNS: a name resolving to a private address is
    /// refused now, as it would be at delivery.
    async fn valid_url(&self, url: &str) -> Result<String> {
        if url.len() > MAX_URL {
            return Err(Error::invalid(
                "url",
                format!("must be at most {MAX_URL} characters"),
            ));
        }
        let target = self
            .policy
            .parse(url)
            .map_err(|why| Error::invalid("url", why.to_string()))?;
        self.policy
            .resolve(&target)
            .await
            .map_err(|why| Error::invalid("url", why.to_string()))?;
        Ok(url.to_string())
    }
}

fn valid_events(mut events: Vec<String>) -> Result<Vec<String>> {
    if events.is_empty() {
        return Err(Error::invalid(
            "events",
            "must name at least one event type, a family (\"api_key.*\") or \"*\"",
        ));
    }
    if events.len() > MAX_PATTERNS {
        return Err(Error::invalid(
            "events",
            format!("must hold at most {MAX_PATTERNS} patterns"),
        ));
    }
    if let Some(bad) = events.iter().find(|p| !known_pattern(p)) {
        let bad: String = bad.chars().take(64).collect();
        return Err(Error::invalid(
            "events",
            format!("{bad:?} is not an event type, a family (\"api_key.*\") or \"*\""),
        ));
    }
    events.sort();
    events.dedup();
    Ok(events)
}

/// Admins manage every webhook; an organization-wide owner, only its
/// organization's; what an actor may not see reads as not found.
fn may_manage(actor: &Actor, org: Option<Uuid>) -> Result<()> {
    if actor.admin {
        return Ok(());
    }
    if actor.role != Role::Owner || actor.project_id.is_some() {
        return Err(Error::Forbidden(
            "webhooks are managed by organization owners and platform admins",
        ));
    }
    if org == Some(actor.organization_id) {
        Ok(())
    } else {
        Err(Error::NotFound("webhook"))
    }
}

/// What the audit log keeps of a webhook: never its secret, nor its URL's
/// path or query (receivers put tokens there), only the host.
fn audit(action: &'static str, h: &Webhook) -> Audit {
    let host = h
        .url
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_string));
    Audit {
        action,
        target_type: "webhook",
        target_id: h.id,
        organization_id: h.organization_id,
        details: json!({ "host": host, "events": h.events }),
    }
}
