//! Organizations and projects.

use serde_json::json;
use uuid::Uuid;

use super::narrowing::{lifetime_text, valid_lifetime};
use super::validate::valid_name;
use super::{
    from_store, Actor, Audit, Authority, Cursor, Error, Listing, Manager, Result, Written,
};
use crate::store::{Organization, Project, Write};

#[derive(Debug, Default)]
pub struct NewOrganization {
    pub name: String,
    pub abbreviation: Option<String>,
    /// The longest a key or credential made in it may live (`"90d"`).
    pub max_credential_lifetime: Option<String>,
}

#[derive(Debug, Default)]
pub struct OrganizationPatch {
    pub name: Option<String>,
    pub abbreviation: Option<Option<String>>,
    pub max_credential_lifetime: Option<Option<String>>,
}

#[derive(Debug, Default)]
pub struct NewProject {
    pub name: String,
}

#[derive(Debug, Default)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub archived: Option<bool>,
}

fn valid_abbreviation(a: Option<String>) -> Result<Option<String>> {
    // Judged as sent, then trimmed: the rule the admin API's document states.
    match a.map(|a| {
        (
            a.chars().count(),
            a.chars().any(char::is_control),
            a.trim().to_string(),
        )
    }) {
        Some((sent, control, a)) if a.is_empty() || sent > 32 || control => Err(Error::invalid(
            "abbreviation",
            "must be 1-32 characters without control characters",
        )),
        other => Ok(other.map(|(_, _, a)| a)),
    }
}

impl Manager {
    pub async fn create_organization(
        &self,
        actor: &Actor,
        new: NewOrganization,
    ) -> Result<Written<Organization>> {
        if !actor.admin {
            return Err(Error::Forbidden(
                "only platform admins may create organizations",
            ));
        }
        let now = self.now();
        let org = Organization {
            id: Uuid::now_v7(),
            name: valid_name("name", &new.name)?,
            abbreviation: valid_abbreviation(new.abbreviation)?,
            max_credential_lifetime: new
                .max_credential_lifetime
                .as_deref()
                .map(valid_lifetime)
                .transpose()?,
            created_at: now,
            updated_at: now,
        };
        let audit = Audit {
            action: "organization.create",
            target_type: "organization",
            target_id: org.id,
            organization_id: Some(org.id),
            details: json!({
                "name": org.name,
                "abbreviation": org.abbreviation,
                "max_credential_lifetime": org.max_credential_lifetime.map(lifetime_text),
            }),
        };
        let revision = self
            .commit(
                Some(actor),
                "organization",
                vec![Write::InsertOrganization(org.clone())],
                audit,
            )
            .await?;
        Ok(Written {
            value: org,
            revision,
        })
    }

    /// An organization the actor may see; anyone else's answers not found.
    pub async fn organization(&self, actor: &Actor, id: Uuid) -> Result<Organization> {
        actor.require_manager()?;
        if !actor.admin && actor.organization_id != id {
            return Err(Error::NotFound("organization"));
        }
        self.store
            .organization(id)
            .await
            .map_err(|e| from_store(e, "organization"))?
            .ok_or(Error::NotFound("organization"))
    }

    pub async fn organizations(
        &self,
        actor: &Actor,
        after: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Listing<Organization>> {
        actor.require_manager()?;
        let page = Self::page(Cursor::after(after), limit)?;
        let only = (!actor.admin).then_some(actor.organization_id);
        let orgs = self
            .store
            .organizations(only, page)
            .await
            .map_err(|e| from_store(e, "organization"))?;
        Ok(Self::listing(orgs, page))
    }

    pub async fn update_organization(
        &self,
        actor: &Actor,
        id: Uuid,
        patch: OrganizationPatch,
    ) -> Result<Written<Organization>> {
        let mut org = self.organization(actor, id).await?;
        if !actor.manages_org(id) {
            return Err(Error::Forbidden(
                "only the organization's owners may change it",
            ));
        }
        if let Some(name) = patch.name {
            let name = valid_name("name", &name)?;
            // SECURITY: organization names are one namespace across every
            // tenant, so a rename that collides says another tenant holds
            // the name. A tenant learns nothing of others: renaming is for
            // platform admins, and an owner's rename is refused whatever
            // the name (its own current name is no change and passes).
            if name != org.name && !actor.admin {
                return Err(Error::Forbidden(
                    "only platform admins may rename organizations",
                ));
            }
            org.name = name;
        }
        if let Some(abbreviation) = patch.abbreviation {
            org.abbreviation = valid_abbreviation(abbreviation)?;
        }
        if let Some(lifetime) = patch.max_credential_lifetime {
            // SECURITY: the longest lifetime is the platform's policy for
            // the organization; its owners live under it.
            if !actor.admin {
                return Err(Error::Forbidden(
                    "only platform admins may set max_credential_lifetime",
                ));
            }
            org.max_credential_lifetime = lifetime.as_deref().map(valid_lifetime).transpose()?;
        }
        org.updated_at = self.now();
        let audit = Audit {
            action: "organization.update",
            target_type: "organization",
            target_id: id,
            organization_id: Some(id),
            details: json!({
                "name": org.name,
                "abbreviation": org.abbreviation,
                "max_credential_lifetime": org.max_credential_lifetime.map(lifetime_text),
            }),
        };
        let revision = self
            .commit(
                Some(actor),
                "organization",
                vec![Write::UpdateOrganization(org.clone())],
                audit,
            )
            .await?;
        Ok(Written {
            value: org,
            revision,
        })
    }

    /// Deletes an organization with its projects. Refused while it still has
    /// open service accounts: close them first, so no live credential is
    /// dropped silently.
    pub async fn delete_organization(&self, actor: &Actor, id: Uuid) -> Result<Written<()>> {
        let org = self.organization(actor, id).await?;
        if !actor.admin {
            return Err(Error::Forbidden(
                "only platform admins may delete organizations",
            ));
        }
        let open = self
            .store
            .open_accounts_in(id)
            .await
            .map_err(|e| from_store(e, "organization"))?;
        if open > 0 {
            return Err(Error::Conflict {
                code: "organization_not_empty",
                param: None,
                message: format!(
                    "organization still has {open} open service account(s); close them first"
                ),
            });
        }
        let audit = Audit {
            action: "organization.delete",
            target_type: "organization",
            target_id: id,
            organization_id: Some(id),
            details: json!({ "name": org.name }),
        };
        let writes = vec![Write::DeleteOrganization {
            id,
            closed_after: self.now() - self.token_max_ttl_ms,
        }];
        let revision = match self.commit(Some(actor), "organization", writes, audit).await {
            Err(Error::Conflict { code: "concurrent_update", .. }) => {
                return Err(Error::Conflict {
                    code: "organization_not_empty",
                    param: None,
                    message: "organization has open accounts, or accounts closed less than tokens.max_ttl ago \
                              whose tokens may still be live; retry later"
                        .into(),
                })
            }
            other => other?,
        };
        Ok(Written {
            value: (),
            revision,
        })
    }

    pub async fn create_project(
        &self,
        actor: &Actor,
        org_id: Uuid,
        new: NewProject,
    ) -> Result<Written<Project>> {
        self.organization(actor, org_id).await?;
        if !actor.manages_org(org_id) {
            return Err(Error::Forbidden(
                "only the organization's owners may create projects",
            ));
        }
        let now = self.now();
        let project = Project {
            id: Uuid::now_v7(),
            organization_id: org_id,
            name: valid_name("name", &new.name)?,
            archived: false,
            created_at: now,
            updated_at: now,
        };
        let audit = Audit {
            action: "project.create",
            target_type: "project",
            target_id: project.id,
            organization_id: Some(org_id),
            details: json!({ "name": project.name }),
        };
        let revision = self
            .commit(
                Some(actor),
                "project",
                vec![Write::InsertProject(project.clone())],
                audit,
            )
            .await?;
        Ok(Written {
            value: project,
            revision,
        })
    }

    pub async fn projects(
        &self,
        actor: &Actor,
        org_id: Uuid,
        after: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Listing<Project>> {
        self.organization(actor, org_id).await?;
        let page = Self::page(Cursor::after(after), limit)?;
        if let Some(own) = actor.project_id.filter(|_| !actor.admin) {
            // A project-scoped owner sees exactly its own project.
            let mine = self.project(actor, own).await?;
            let data = if after.is_none_or(|a| a < mine.id) {
                vec![mine]
            } else {
                Vec::new()
            };
            return Ok(Listing {
                data,
                has_more: false,
                has_prev: after.is_some(),
            });
        }
        let projects = self
            .store
            .projects(org_id, page)
            .await
            .map_err(|e| from_store(e, "project"))?;
        Ok(Self::listing(projects, page))
    }

    pub async fn project(&self, actor: &Actor, id: Uuid) -> Result<Project> {
        actor.require_manager()?;
        let project = self
            .store
            .project(id)
            .await
            .map_err(|e| from_store(e, "project"))?
            .ok_or(Error::NotFound("project"))?;
        actor.check_sees(project.organization_id, Some(project.id), "project")?;
        Ok(project)
    }

    pub async fn update_project(
        &self,
        actor: &Actor,
        id: Uuid,
        patch: ProjectPatch,
    ) -> Result<Written<Project>> {
        let mut project = self.project(actor, id).await?;
        if !actor.manages_org(project.organization_id) {
            return Err(Error::Forbidden(
                "only the organization's owners may change projects",
            ));
        }
        if let Some(name) = patch.name {
            project.name = valid_name("name", &name)?;
        }
        if let Some(archived) = patch.archived {
            project.archived = archived;
        }
        project.updated_at = self.now();
        let audit = Audit {
            action: "project.update",
            target_type: "project",
            target_id: id,
            organization_id: Some(project.organization_id),
            details: json!({ "name": project.name, "archived": project.archived }),
        };
        let revision = self
            .commit(
                Some(actor),
                "project",
                vec![Write::UpdateProject(project.clone())],
                audit,
            )
            .await?;
        Ok(Written {
            value: project,
            revision,
        })
    }
}
