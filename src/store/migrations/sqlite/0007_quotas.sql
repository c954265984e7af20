-- Quotas and per-credential limits.
--
-- `quota`: JSON {"limit", "period" ("day"|"month"|"none"), "reset_at"?}
-- on accounts, API keys and client credentials; NULL: no quota.
-- `scopes` on keys and credentials: JSON array, a subset of the account's
-- (NULL: the account's). `allowed_cidrs`: JSON array of CIDRs (NULL: any
-- address). `max_credential_lifetime` on organizations: seconds.

ALTER TABLE service_accounts ADD COLUMN quota TEXT;
ALTER TABLE api_keys ADD COLUMN quota TEXT;
ALTER TABLE api_keys ADD COLUMN scopes TEXT;
ALTER TABLE api_keys ADD COLUMN allowed_cidrs TEXT;
ALTER TABLE client_credentials ADD COLUMN quota TEXT;
ALTER TABLE client_credentials ADD COLUMN scopes TEXT;
ALTER TABLE client_credentials ADD COLUMN allowed_cidrs TEXT;
ALTER TABLE organizations ADD COLUMN max_credential_lifetime INTEGER;

-- What each quota window has spent, summed from every replica's flushes.
-- A window starts at its period's start (or at the quota's reset, if
-- later) and ends at the period's end (`none`: never).
CREATE TABLE quota_spend (
    subject_id   TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    spent        INTEGER NOT NULL,
    PRIMARY KEY (subject_id, window_start)
);
CREATE INDEX quota_spend_end ON quota_spend (window_end);

-- Traffic per account, UTC day, route and outcome (admitted, or why not).
CREATE TABLE usage_daily (
    account_id TEXT NOT NULL,
    day        INTEGER NOT NULL,
    route      TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    requests   INTEGER NOT NULL,
    spent      INTEGER NOT NULL,
    PRIMARY KEY (account_id, day, route, outcome)
);

-- `quota.exhausted` is given once per quota window across the fleet: the
-- row's key refuses a second one.
CREATE TABLE quota_exhaustions (
    subject_id   TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    PRIMARY KEY (subject_id, window_start)
);
