-- Partial indexes for the reads a start makes after the keys: the
-- accounts a JWT must be checked against, and the accounts whose keys or
-- credentials narrow them. Each held only a few rows' worth of answer but
-- read its tables whole (at a million keys, ~0.3 s of a start to ready,
-- a tenth of it, for nothing found). Each index holds just the rows its
-- read returns, so the read is as long as its answer.
--
-- A partial index serves a query only when the query's WHERE says what
-- the index's WHERE says, term for term: these match
-- `RESTRICTED_ACCOUNTS` and `NARROWED_ACCOUNTS` in src/store/sql, and a
-- test there fails when they part.

CREATE INDEX service_accounts_restricted ON service_accounts (id)
WHERE closed_at IS NOT NULL OR enabled = FALSE OR expires_at IS NOT NULL
   OR rate_limit IS NOT NULL OR tokens_not_before IS NOT NULL;

CREATE INDEX service_accounts_quota ON service_accounts (id) WHERE quota IS NOT NULL;

CREATE INDEX api_keys_narrowing ON api_keys (service_account_id)
WHERE revoked_at IS NULL AND (quota IS NOT NULL OR scopes IS NOT NULL OR allowed_cidrs IS NOT NULL);

CREATE INDEX client_credentials_narrowing ON client_credentials (service_account_id)
WHERE deleted_at IS NULL AND (quota IS NOT NULL OR scopes IS NOT NULL OR allowed_cidrs IS NOT NULL);
