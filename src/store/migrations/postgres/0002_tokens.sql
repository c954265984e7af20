-- Token broker: signing keys, client credentials, revoked token ids, and
-- change-feed topics for changes that are not about one account.

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY NOT NULL,
    algorithm    TEXT NOT NULL,
    private_der  TEXT NOT NULL,            -- base64 PKCS#8; a secret at rest
    public_jwk   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    activates_at BIGINT NOT NULL,         -- published before, signs from
    retires_at   BIGINT                   -- unpublished and unused from
);

CREATE TABLE client_credentials (
    id                 TEXT PRIMARY KEY NOT NULL,
    client_id          TEXT NOT NULL,
    service_account_id TEXT NOT NULL REFERENCES service_accounts (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    description        TEXT,
    secret_hash        TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT,
    deleted_at         BIGINT,
    last_used_at       BIGINT
);
CREATE UNIQUE INDEX client_credentials_client_id ON client_credentials (client_id);
CREATE INDEX client_credentials_account ON client_credentials (service_account_id);

CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);

ALTER TABLE changes ADD COLUMN topics TEXT NOT NULL DEFAULT '[]';
