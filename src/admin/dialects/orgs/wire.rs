//! The orgs dialect's objects: service accounts, credentials (the secret
//! only in the answer that made it) and the permissions `expand` adds.

use serde_json::{json, Value};

use crate::admin::AdminState;
use crate::authn::Principal;
use crate::clock::rfc3339;
use crate::manage::IssuedCredential;
use crate::store::{ClientCredential, ServiceAccount};

pub(super) fn account_json(a: &ServiceAccount, permissions: Option<Value>) -> Value {
    let mut v = json!({
        "id": a.id,
        "name": a.name,
        "created_at": rfc3339(a.created_at),
        "updated_at": rfc3339(a.updated_at),
        "description": a.description,
    });
    if let Some(p) = permissions {
        v["permissions"] = p;
    }
    v
}

pub(super) fn credential_json(c: &ClientCredential, permissions: Option<Value>) -> Value {
    let mut v = json!({
        "id": c.id,
        "client_id": c.client_id,
        "name": c.name,
        "created_at": rfc3339(c.created_at),
        "description": c.description,
        // Null until the credential is first used.
        "last_used_at": c.last_used_at.map(rfc3339),
    });
    if let Some(p) = permissions {
        v["permissions"] = p;
    }
    v
}

pub(super) fn created_credential(i: &IssuedCredential) -> Value {
    json!({
        "id": i.credential.id,
        "client_id": i.credential.client_id,
        "client_secret": i.secret.as_deref(),
        "name": i.credential.name,
        "created_at": rfc3339(i.credential.created_at),
        "description": i.credential.description,
    })
}

/// What the caller may do with an account and its credentials.
pub(super) fn account_permissions(s: &AdminState, actor: &Principal, a: &ServiceAccount) -> Value {
    let change = s.manager.may_change(actor, a);
    json!({
        "service_accounts": { "read": true, "update": change, "delete": change },
        "credentials": { "list": true, "create": change },
    })
}

pub(super) fn credential_permissions(change: bool) -> Value {
    json!({ "credentials": { "read": true, "update": change, "delete": change } })
}
