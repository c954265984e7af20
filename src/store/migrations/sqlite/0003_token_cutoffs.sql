-- Token cut-offs that survive restarts and reach every replica: an account's
-- tokens issued before `tokens_not_before` (unix ms; set when it is disabled
-- or its scopes narrowed) are dead, and so are tokens minted from a key or
-- client credential that has since been revoked, deleted or has expired.

ALTER TABLE service_accounts ADD COLUMN tokens_not_before INTEGER;

CREATE INDEX api_keys_revoked ON api_keys (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX api_keys_expiring ON api_keys (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX client_credentials_deleted ON client_credentials (deleted_at) WHERE deleted_at IS NOT NULL;
