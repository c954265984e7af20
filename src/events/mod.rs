//! Events out of keygate: every committed change, as the change feed and its
//! audit row record it, becomes an event `{"type", "timestamp", "data"}`
//! (Standard Webhooks' shape) delivered to the webhooks subscribed to it.
//!
//! - this file: the event model — type names from audit actions, the
//!   body, the lane (account) that orders deliveries, subscription patterns;
//! - [`webhooks`]: managing subscriptions (rules, validation, audit);
//! - [`sign`]: Standard Webhooks signatures; [`target`]: which URLs and
//!   addresses a delivery may reach (SSRF); [`deliver`]: one attempt over
//!   HTTP; [`dispatch`]: the outbox — enqueue, claim with a lease, retry;
//! - [`expiry`]: `api_key.expiring` warnings; [`leaks`]: a reported leaked
//!   secret revoked (or reported) and emitted as `api_key.leaked`.
//!
//! Events never come from anywhere but a commit: an expiry warning or a leak
//! is itself a write through the one write funnel, so it is audited, carries
//! a revision, and is delivered like any other change. Sits above `store`
//! and `manage`; knows nothing of the admin API.

pub mod deliver;
pub mod dispatch;
pub mod expiry;
pub mod leaks;
pub mod quota;
pub mod sign;
pub mod target;
pub mod webhooks;

use serde_json::{json, Map, Value};

use crate::clock::rfc3339;
use crate::store::StoredEvent;

pub use dispatch::Dispatcher;

/// Every event type keygate emits, for validating subscriptions.
/// `quota.exhausted` is given once per quota window (`events::quota`).
pub const TYPES: &[&str] = &[
    "organization.created",
    "organization.updated",
    "organization.deleted",
    "project.created",
    "project.updated",
    "service_account.created",
    "service_account.updated",
    "service_account.disabled",
    "service_account.enabled",
    "service_account.closed",
    "api_key.created",
    "api_key.updated",
    "api_key.revoked",
    "api_key.rotated",
    "api_key.expiring",
    "api_key.leaked",
    "credential.created",
    "credential.updated",
    "credential.deleted",
    "credential.secret_regenerated",
    "credential.leaked",
    "token.revoked",
    "signing_key.created",
    "signing_key.rotated",
    "webhook.created",
    "webhook.updated",
    "webhook.deleted",
    "quota.exhausted",
];

/// The event type of an audit action (`api_key.revoke` → `api_key.revoked`).
/// An account update that flips `enabled` is `disabled` / `enabled`.
pub fn event_type(action: &str, details: &Value) -> String {
    let (entity, verb) = action.split_once('.').unwrap_or((action, ""));
    let past = match (entity, verb) {
        ("service_account", "update") => match details.get("enabled") {
            Some(Value::Bool(false)) => "disabled",
            Some(Value::Bool(true)) => "enabled",
            _ => "updated",
        },
        ("service_account", "bootstrap") => "created",
        ("service_account", "rotate_api_key") => return "api_key.rotated".into(),
        ("credential", "regenerate_secret") => "secret_regenerated",
        (_, "create") => "created",
        (_, "update") => "updated",
        (_, "delete") => "deleted",
        (_, "revoke") => "revoked",
        (_, "close") => "closed",
        (_, "rotate") => "rotated",
        (_, other) => other,
    };
    format!("{entity}.{past}")
}

/// Whether `patterns` subscribe to `ty`: `*`, `<entity>.*`, or the type.
pub fn subscribed(patterns: &[String], ty: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p == ty
            || p.strip_suffix(".*")
                .is_some_and(|family| ty.split_once('.').is_some_and(|(e, _)| e == family))
    })
}

/// Whether a subscription pattern names something keygate emits.
pub fn known_pattern(p: &str) -> bool {
    p == "*"
        || TYPES.contains(&p)
        || p.strip_suffix(".*").is_some_and(|family| {
            TYPES
                .iter()
                .any(|t| t.split_once('.').is_some_and(|(e, _)| e == family))
        })
}

/// The body of an event: `{"type", "timestamp", "data"}`, `data` holding
/// what the audit row says (never a secret) and the ids of what changed.
pub fn body(event: &StoredEvent, ty: &str) -> String {
    let a = &event.audit;
    let mut data = match &a.details {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        other => Map::from_iter([("details".to_string(), other.clone())]),
    };
    data.insert("id".into(), json!(a.target_id));
    data.insert("object".into(), json!(a.target_type));
    data.insert("organization_id".into(), json!(a.organization_id));
    data.insert("actor_id".into(), json!(a.actor_id));
    data.insert("revision".into(), json!(event.revision));
    json!({ "type": ty, "timestamp": rfc3339(a.at), "data": data }).to_string()
}

/// The lane whose deliveries go out in revision order: the account the
/// change is about, or none.
pub fn lane(event: &StoredEvent) -> String {
    if let Some(id) = event.accounts.first() {
        return id.to_string();
    }
    let a = &event.audit;
    if a.target_type == "service_account" {
        return a.target_id.to_string();
    }
    a.details
        .get("service_account_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_actions_read_as_past_tense_event_types() {
        let none = Value::Null;
        assert_eq!(event_type("api_key.revoke", &none), "api_key.revoked");
        assert_eq!(
            event_type("organization.create", &none),
            "organization.created"
        );
        assert_eq!(
            event_type("credential.regenerate_secret", &none),
            "credential.secret_regenerated"
        );
        assert_eq!(
            event_type("service_account.rotate_api_key", &none),
            "api_key.rotated"
        );
        assert_eq!(
            event_type("service_account.update", &json!({"enabled": false})),
            "service_account.disabled"
        );
        assert_eq!(
            event_type("service_account.update", &json!({"enabled": true})),
            "service_account.enabled"
        );
        assert_eq!(
            event_type("service_account.update", &json!({"name": "x"})),
            "service_account.updated"
        );
        assert_eq!(event_type("api_key.leaked", &none), "api_key.leaked");
        assert_eq!(event_type("api_key.expiring", &none), "api_key.expiring");
    }

    #[test]
    fn every_emitted_type_is_known() {
        for action in [
            "organization.create",
            "organization.update",
            "organization.delete",
            "project.create",
            "project.update",
            "service_account.create",
            "service_account.close",
            "service_account.bootstrap",
            "api_key.create",
            "credential.create",
            "credential.update",
            "credential.delete",
            "token.revoke",
            "signing_key.create",
            "signing_key.rotate",
            "webhook.create",
            "webhook.update",
            "webhook.delete",
            "api_key.update",
            "quota.exhausted",
        ] {
            let ty = event_type(action, &Value::Null);
            assert!(TYPES.contains(&ty.as_str()), "{action} → {ty}");
        }
    }

    #[test]
    fn patterns_subscribe_to_all_a_family_or_one_type() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(subscribed(&p(&["*"]), "api_key.created"));
        assert!(subscribed(&p(&["api_key.*"]), "api_key.created"));
        assert!(!subscribed(&p(&["api_key.*"]), "api_keys.created"));
        assert!(!subscribed(&p(&["api.*"]), "api_key.created"));
        assert!(subscribed(
            &p(&["credential.deleted"]),
            "credential.deleted"
        ));
        assert!(!subscribed(&p(&[]), "credential.deleted"));
        assert!(known_pattern("api_key.*") && known_pattern("quota.exhausted"));
        assert!(!known_pattern("nope.*") && !known_pattern("api_key.eaten") && !known_pattern(""));
    }
}
