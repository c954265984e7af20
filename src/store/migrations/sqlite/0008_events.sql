-- Events out of keygate. Each change-feed row names the audit row that
-- explains it (one event per committed change); webhooks; their deliveries
-- (the outbox every replica enqueues into and claims from); the feed
-- position up to which events have been enqueued; and the expiry warnings
-- already given (once per key and threshold, across the fleet).

ALTER TABLE changes ADD COLUMN audit_id TEXT;

CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY NOT NULL,
    organization_id TEXT REFERENCES organizations (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    -- JSON array of event patterns: "*", "api_key.*", "api_key.revoked".
    events          TEXT NOT NULL,
    -- whsec_…: deliveries are signed with it, so it is kept as is.
    secret          TEXT NOT NULL,
    created_by      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX webhooks_org ON webhooks (organization_id);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    revision        INTEGER NOT NULL,
    -- Deliveries of one lane (an account; '' for none) go out in revision order.
    lane            TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    -- pending | delivered | failed
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    leased_by       TEXT,
    last_attempt_at INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    delivered_at    INTEGER
);
-- One delivery per event and webhook, however many replicas enqueue it.
CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (webhook_id, revision);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_lane ON webhook_deliveries (webhook_id, lane, revision);

CREATE TABLE event_cursor (
    id       INTEGER PRIMARY KEY NOT NULL,
    revision INTEGER NOT NULL
);
INSERT INTO event_cursor (id, revision) SELECT 1, COALESCE(MAX(revision), 0) FROM changes;

CREATE TABLE expiry_warnings (
    key_id    TEXT NOT NULL,
    threshold TEXT NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (key_id, threshold)
);

-- A leaked client secret is looked up by its hash.
CREATE INDEX client_credentials_secret ON client_credentials (secret_hash);
