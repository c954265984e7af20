-- What the service-account APIs keygate also speaks need of the core: a
-- name for each API key, and free-form attributes an API carries per
-- account (Waldur's email, preferred_identifier, …), echoed, never
-- interpreted.

ALTER TABLE api_keys ADD COLUMN name TEXT;
ALTER TABLE service_accounts ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
