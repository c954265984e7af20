-- keygate schema, PostgreSQL (same tables and columns as SQLite). Ids are UUID text (v7: ordered by creation), times
-- are unix milliseconds, scopes a JSON array, key hashes hex SHA-256.

CREATE TABLE organizations (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    abbreviation TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX organizations_name ON organizations (name);

CREATE TABLE projects (
    id              TEXT PRIMARY KEY NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    archived        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX projects_name ON projects (organization_id, name);

CREATE TABLE service_accounts (
    id              TEXT PRIMARY KEY NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    project_id      TEXT REFERENCES projects (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    description     TEXT,
    role            TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL,
    expires_at      BIGINT,
    closed_at       BIGINT,
    rate_limit      TEXT,
    created_by      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    last_used_at    BIGINT
);
-- A closed account's name may be reused.
CREATE UNIQUE INDEX service_accounts_name ON service_accounts (organization_id, name) WHERE closed_at IS NULL;
CREATE INDEX service_accounts_project ON service_accounts (project_id);

CREATE TABLE api_keys (
    id                 TEXT PRIMARY KEY NOT NULL,
    service_account_id TEXT NOT NULL REFERENCES service_accounts (id) ON DELETE CASCADE,
    hash               TEXT NOT NULL,
    redacted           TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT,
    revoked_at         BIGINT,
    last_used_at       BIGINT
);
CREATE UNIQUE INDEX api_keys_hash ON api_keys (hash);
CREATE INDEX api_keys_account ON api_keys (service_account_id);

-- The change feed: one row per committed write batch.
CREATE TABLE changes (
    revision BIGSERIAL PRIMARY KEY,
    at       BIGINT NOT NULL,
    accounts TEXT NOT NULL
);

CREATE TABLE audit_events (
    id              TEXT PRIMARY KEY NOT NULL,
    at              BIGINT NOT NULL,
    actor_id        TEXT,
    action          TEXT NOT NULL,
    target_type     TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    organization_id TEXT,
    details         TEXT NOT NULL
);
CREATE INDEX audit_events_org ON audit_events (organization_id, id);

CREATE TABLE replicas (
    id           TEXT PRIMARY KEY NOT NULL,
    hostname     TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    revision     BIGINT NOT NULL
);
