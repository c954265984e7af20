-- Lists page by id within an organization or a project (keyset pages, both
-- ways): with the id in the index a page reads only the rows it holds, in
-- order, instead of every account of the tenant and a sort.

CREATE INDEX service_accounts_org_page ON service_accounts (organization_id, id);
-- Waldur's lists answer a total: counting an organization's accounts in or
-- out of projects, open or closed, reads this index alone.
CREATE INDEX service_accounts_org_count ON service_accounts (organization_id, project_id, closed_at);
CREATE INDEX service_accounts_project_page ON service_accounts (project_id, id);
DROP INDEX service_accounts_project;
