//! One Waldur request: authenticated, its body read, its id parsed; and the
//! organizations and projects its answer names, each read once.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::wire::{Scope, WaldurError};
use super::Result;
use crate::admin::dialects::{object, origin, uuid_any, BodyError};
use crate::admin::extract::authenticate;
use crate::admin::{AdminState, MAX_BODY_BYTES};
use crate::authn::Principal;
use crate::listener::Scheme;
use crate::store::ServiceAccount;

/// A request, authenticated and read.
pub(super) struct Call {
    pub(super) actor: Arc<Principal>,
    pub(super) parts: Parts,
    body: Bytes,
}

impl Call {
    pub(super) async fn new(s: &AdminState, req: Request) -> Result<Self> {
        let (parts, body) = req.into_parts();
        let actor = authenticate(&parts, s).map_err(WaldurError::refused)?;
        let body = read(body).await?;
        Ok(Self { actor, parts, body })
    }

    pub(super) fn origin(&self) -> String {
        origin(&self.parts.headers, self.parts.extensions.get::<Scheme>())
    }

    /// The path's account id, read leniently (hyphens or not).
    pub(super) fn id(&self) -> Result<Uuid> {
        let path = self.parts.uri.path();
        let mut segments = path.rsplit('/').filter(|s| !s.is_empty());
        let last = segments.next().unwrap_or("");
        let raw = if last == "rotate_api_key" {
            segments.next().unwrap_or("")
        } else {
            last
        };
        uuid_any(raw).ok_or_else(WaldurError::not_found)
    }

    pub(super) fn object(&self) -> Result<Map<String, Value>> {
        object(&self.body).map_err(|e| match e {
            BodyError::Syntax(m) => {
                WaldurError::detail(StatusCode::BAD_REQUEST, format!("JSON parse error - {m}"))
            }
            BodyError::NotObject => WaldurError::field(
                "non_field_errors",
                "Invalid data. Expected a dictionary, but got list.",
            ),
        })
    }
}

async fn read(body: Body) -> Result<Bytes> {
    to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        WaldurError::detail(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large.")
    })
}

/// Organizations and projects of the accounts in one answer, each read once.
#[derive(Default)]
pub(super) struct Scopes {
    organizations: HashMap<Uuid, crate::store::Organization>,
    projects: HashMap<Uuid, crate::store::Project>,
}

impl Scopes {
    pub(super) async fn of(
        &mut self,
        s: &AdminState,
        actor: &Principal,
        a: &ServiceAccount,
    ) -> Result<Scope> {
        if !self.organizations.contains_key(&a.organization_id) {
            let org = s.manager.organization(actor, a.organization_id).await?;
            self.organizations.insert(org.id, org);
        }
        if let Some(pid) = a.project_id.filter(|p| !self.projects.contains_key(p)) {
            let project = s.manager.project(actor, pid).await?;
            self.projects.insert(project.id, project);
        }
        Ok(Scope {
            organization: self.organizations[&a.organization_id].clone(),
            project: a.project_id.map(|p| self.projects[&p].clone()),
        })
    }
}
