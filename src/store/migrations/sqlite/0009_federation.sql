-- Identities keygate did not issue, bound to accounts: a trusted issuer's
-- (by its configured name, or "x509" for a TLS client certificate's SPIFFE
-- id) subject, with optional claims that must also be equal. A deleted
-- binding is kept as a tombstone, so caches evict it and tokens minted
-- through it die with it.

CREATE TABLE federated_identities (
    id                 TEXT PRIMARY KEY NOT NULL,
    service_account_id TEXT NOT NULL REFERENCES service_accounts (id) ON DELETE CASCADE,
    issuer             TEXT NOT NULL,
    subject            TEXT NOT NULL,
    -- JSON object of claim name → exact string value.
    claims             TEXT NOT NULL,
    created_by         TEXT,
    created_at         INTEGER NOT NULL,
    deleted_at         INTEGER
);
CREATE INDEX federated_identities_account ON federated_identities (service_account_id);
CREATE INDEX federated_identities_live ON federated_identities (service_account_id) WHERE deleted_at IS NULL;
CREATE INDEX federated_identities_deleted ON federated_identities (deleted_at) WHERE deleted_at IS NOT NULL;
