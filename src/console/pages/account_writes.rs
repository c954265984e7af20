//! An account's API keys and client credentials: issue (the value shown
//! once), rotate with grace, revoke; create, regenerate, delete. Each
//! destructive one asks first.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::super::form::{optional, time, Posted};
use super::super::layout;
use super::super::session::{Once, Signed};
use super::super::ConsoleState;
use super::account::{refused, Nothing};
use super::{id, NoSuchPage};
use crate::manage::{self, IssuedCredential, NewBinding, NewCredential, NewKey};

#[derive(Deserialize)]
pub(in crate::console) struct KeyForm {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
}

/// After a write that made a secret: keep it for the account's page, and
/// go there (a reload of that page shows it no more).
pub(super) fn shown(
    s: &ConsoleState,
    signed: &Signed,
    account: Uuid,
    secret: Once,
    done: &str,
) -> Response {
    s.sessions.show_once(signed, account, secret);
    layout::see_other(&format!("/console/service-accounts/{account}?done={done}"))
}

/// A client secret just made, to show once.
fn once(issued: IssuedCredential) -> Once {
    Once::Secret {
        client_id: issued.credential.client_id.clone(),
        // The console makes secret credentials only.
        secret: issued.secret.unwrap_or_default(),
    }
}

/// An account's id and the id of one of its keys or credentials.
fn ids(account: &str, other: &str) -> Result<(Uuid, Uuid), NoSuchPage> {
    Ok((id(account)?, id(other)?))
}

pub(in crate::console) async fn issue_key(
    State(s): State<ConsoleState>,
    Path(account): Path<String>,
    p: Posted<KeyForm>,
) -> Response {
    let account = match id(&account) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let new = NewKey {
        name: optional(p.form.name.clone()),
        expires_at: time(p.form.expires_at.clone()),
        // The form has the field: under a longest lifetime it is required.
        explicit_expiry: true,
        ..NewKey::default()
    };
    match s.manager.issue_key(&p.signed.actor, account, new).await {
        Ok(w) => shown(&s, &p.signed, account, Once::Key(w.value.value), "issued"),
        Err(e) => refused(&s, p, account, e).await,
    }
}

#[derive(Deserialize)]
pub(in crate::console) struct RotateForm {
    #[serde(default)]
    grace_period_seconds: String,
}

pub(in crate::console) async fn rotate(
    State(s): State<ConsoleState>,
    Path(account): Path<String>,
    p: Posted<RotateForm>,
) -> Response {
    let account = match id(&account) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let text = p.form.grace_period_seconds.trim();
    let grace = if text.is_empty() {
        Ok(0)
    } else {
        text.parse::<u64>()
    };
    let Ok(grace) = grace else {
        let e = manage::Error::Invalid {
            param: "grace_period_seconds",
            message: "must be a whole number of seconds".into(),
        };
        return refused(&s, p, account, e).await;
    };
    let base = format!("/console/service-accounts/{account}");
    if !p.confirmed {
        let question = if grace == 0 {
            "A new key is issued and every current key of the account stops working now.".into()
        } else {
            format!(
                "A new key is issued; every current key of the account keeps working for {grace} \
                 seconds, then stops."
            )
        };
        return layout::confirm(
            &p.signed,
            "Rotate this account's keys?",
            &question,
            &format!("{base}/rotate"),
            "Rotate",
            &p.draft,
            &base,
        );
    }
    match s.manager.rotate_key(&p.signed.actor, account, grace).await {
        Ok(w) => shown(
            &s,
            &p.signed,
            account,
            Once::Key(w.value.1.value),
            "rotated",
        ),
        Err(e) => refused(&s, p, account, e).await,
    }
}

pub(in crate::console) async fn revoke_key(
    State(s): State<ConsoleState>,
    Path((account, key)): Path<(String, String)>,
    p: Posted<Nothing>,
) -> Response {
    let (account, key) = match ids(&account, &key) {
        Ok(ids) => ids,
        Err(r) => return r.into_response(),
    };
    let base = format!("/console/service-accounts/{account}");
    if !p.confirmed {
        return layout::confirm(
            &p.signed,
            "Revoke this API key?",
            "The key stops working at once, on every replica. This cannot be undone.",
            &format!("{base}/keys/{key}/revoke"),
            "Revoke",
            &p.draft,
            &base,
        );
    }
    match s.manager.revoke_key(&p.signed.actor, account, key).await {
        Ok(_) => layout::see_other(&format!("{base}?done=revoked")),
        Err(e) => refused(&s, p, account, e).await,
    }
}

#[derive(Deserialize)]
pub(in crate::console) struct CredentialForm {
    #[serde(default)]
    name: String,
}

pub(in crate::console) async fn create_credential(
    State(s): State<ConsoleState>,
    Path(account): Path<String>,
    p: Posted<CredentialForm>,
) -> Response {
    let account = match id(&account) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let new = NewCredential {
        name: Some(p.form.name.trim().to_string()),
        ..NewCredential::default()
    };
    match s
        .manager
        .create_credential(&p.signed.actor, account, new)
        .await
    {
        Ok(w) => shown(&s, &p.signed, account, once(w.value), "credential"),
        Err(e) => refused(&s, p, account, e).await,
    }
}

pub(in crate::console) async fn regenerate(
    State(s): State<ConsoleState>,
    Path((account, credential)): Path<(String, String)>,
    p: Posted<Nothing>,
) -> Response {
    let (account, credential) = match ids(&account, &credential) {
        Ok(ids) => ids,
        Err(r) => return r.into_response(),
    };
    let base = format!("/console/service-accounts/{account}");
    if !p.confirmed {
        return layout::confirm(
            &p.signed,
            "Regenerate this credential's secret?",
            "The current secret stops working at once, and so do the tokens minted with it.",
            &format!("{base}/credentials/{credential}/secret"),
            "Regenerate secret",
            &p.draft,
            &base,
        );
    }
    match s
        .manager
        .regenerate_secret(&p.signed.actor, account, credential)
        .await
    {
        Ok(w) => shown(&s, &p.signed, account, once(w.value), "regenerated"),
        Err(e) => refused(&s, p, account, e).await,
    }
}

pub(in crate::console) async fn delete_credential(
    State(s): State<ConsoleState>,
    Path((account, credential)): Path<(String, String)>,
    p: Posted<Nothing>,
) -> Response {
    let (account, credential) = match ids(&account, &credential) {
        Ok(ids) => ids,
        Err(r) => return r.into_response(),
    };
    let base = format!("/console/service-accounts/{account}");
    if !p.confirmed {
        return layout::confirm(
            &p.signed,
            "Delete this credential?",
            "The credential and the tokens minted with it stop working at once. This cannot be \
             undone.",
            &format!("{base}/credentials/{credential}/delete"),
            "Delete",
            &p.draft,
            &base,
        );
    }
    match s
        .manager
        .delete_credential(&p.signed.actor, account, credential)
        .await
    {
        Ok(_) => layout::see_other(&format!("{base}?done=deleted")),
        Err(e) => refused(&s, p, account, e).await,
    }
}

#[derive(Deserialize)]
pub(in crate::console) struct BindingForm {
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    subject: String,
    /// `name=value`, separated by commas.
    #[serde(default)]
    claims: String,
}

/// Binds an identity from a trusted issuer (or a client certificate's
/// SPIFFE id) to the account.
pub(in crate::console) async fn bind(
    State(s): State<ConsoleState>,
    Path(account): Path<String>,
    p: Posted<BindingForm>,
) -> Response {
    let account = match id(&account) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let mut claims = std::collections::BTreeMap::new();
    for line in p
        .form
        .claims
        .split([',', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        match line.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                claims.insert(name.trim().to_string(), value.trim().to_string());
            }
            _ => {
                let e = manage::Error::invalid("claims", format!("{line:?} is not name=value"));
                return refused(&s, p, account, e).await;
            }
        }
    }
    let new = NewBinding {
        issuer: p.form.issuer.trim().to_string(),
        subject: p.form.subject.trim().to_string(),
        claims,
    };
    match s
        .manager
        .create_federated_identity(&p.signed.actor, account, new)
        .await
    {
        Ok(_) => layout::see_other(&format!("/console/service-accounts/{account}?done=bound")),
        Err(e) => refused(&s, p, account, e).await,
    }
}

pub(in crate::console) async fn unbind(
    State(s): State<ConsoleState>,
    Path((account, binding)): Path<(String, String)>,
    p: Posted<Nothing>,
) -> Response {
    let (account, binding) = match ids(&account, &binding) {
        Ok(ids) => ids,
        Err(r) => return r.into_response(),
    };
    let base = format!("/console/service-accounts/{account}");
    if !p.confirmed {
        return layout::confirm(
            &p.signed,
            "Unbind this identity?",
            "Its next exchange and request are refused, and the tokens minted through it stop \
             working at once.",
            &format!("{base}/federated-identities/{binding}/delete"),
            "Unbind",
            &p.draft,
            &base,
        );
    }
    match s
        .manager
        .delete_federated_identity(&p.signed.actor, account, binding)
        .await
    {
        Ok(_) => layout::see_other(&format!("{base}?done=unbound")),
        Err(e) => refused(&s, p, account, e).await,
    }
}
