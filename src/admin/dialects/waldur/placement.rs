//! Where Waldur's answers place an account: its organization (Waldur's
//! customer) and project, each read once per answer however many accounts
//! name it.

use std::collections::HashMap;

use uuid::Uuid;

use super::wire::Placement;
use super::Result;
use crate::admin::AdminState;
use crate::authn::Principal;
use crate::store::{Organization, Project, ServiceAccount};

/// Organizations and projects of the accounts in one answer, each read once.
#[derive(Default)]
pub(super) struct Placements {
    organizations: HashMap<Uuid, Organization>,
    projects: HashMap<Uuid, Project>,
}

impl Placements {
    pub(super) async fn of(
        &mut self,
        s: &AdminState,
        actor: &Principal,
        a: &ServiceAccount,
    ) -> Result<Placement> {
        if !self.organizations.contains_key(&a.organization_id) {
            let org = s.manager.organization(actor, a.organization_id).await?;
            self.organizations.insert(org.id, org);
        }
        if let Some(pid) = a.project_id.filter(|p| !self.projects.contains_key(p)) {
            let project = s.manager.project(actor, pid).await?;
            self.projects.insert(project.id, project);
        }
        Ok(Placement {
            organization: self.organizations[&a.organization_id].clone(),
            project: a.project_id.map(|p| self.projects[&p].clone()),
        })
    }
}
