//! The admin verbs: each one request to a running admin API, its answer
//! printed as JSON, its error on stderr with a failing exit status.

use serde_json::{json, Value};

use super::*;

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
        Command::Key(KeyCmd::Issue {
            account,
            scopes,
            cidrs,
            quota,
            expires_at,
        }) => (
            "POST",
            format!("/v1/service-accounts/{account}/api-keys"),
            Some(json!({
                "scopes": (!scopes.is_empty()).then_some(scopes),
                "allowed_cidrs": (!cidrs.is_empty()).then_some(cidrs),
                "quota": quota,
                "expires_at": expires_at,
            })),
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
            public_jwk_file,
        }) => {
            let mut body =
                json!({ "name": name, "description": description, "expires_at": expires_at });
            if let Some(path) = public_jwk_file {
                match read_jwk(path) {
                    Ok(jwk) => body["public_jwk"] = jwk,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return 2;
                    }
                }
            }
            (
                "POST",
                format!("/v1/service-accounts/{account}/credentials"),
                Some(body),
            )
        }
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
        Command::Quota(cmd) => match quota::request(cmd) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        },
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
        Command::FederatedIdentity(FederationCmd::Bind {
            account,
            issuer,
            subject,
            claims,
        }) => (
            "POST",
            format!("/v1/service-accounts/{account}/federated-identities"),
            Some(json!({
                "issuer": issuer,
                "subject": subject,
                "claims": claims.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            })),
        ),
        Command::FederatedIdentity(FederationCmd::List { account }) => (
            "GET",
            format!("/v1/service-accounts/{account}/federated-identities"),
            None,
        ),
        Command::FederatedIdentity(FederationCmd::Unbind { account, binding }) => (
            "DELETE",
            format!("/v1/service-accounts/{account}/federated-identities/{binding}"),
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

/// The JSON of a `--public-jwk-file` (the server validates the key).
fn read_jwk(path: &std::path::Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}
