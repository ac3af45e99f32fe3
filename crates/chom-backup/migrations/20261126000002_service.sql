-- The service: a job queue, API tokens, webhooks, and scheduler state.

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,       -- ULID, increasing
    kind             TEXT NOT NULL,          -- backup | restore | verify | retention | prune
    site_id          TEXT,                   -- the site it concerns, if one
    backup_id        TEXT,                   -- the backup a backup job makes
    lane             TEXT NOT NULL,          -- one running job per lane: the site's id, or "repository" for prune
    payload          TEXT NOT NULL,          -- JSON of the request
    status           TEXT NOT NULL,          -- queued | running | completed | failed | cancelled
    attempts         BIGINT NOT NULL,
    max_attempts     BIGINT NOT NULL,
    run_after        BIGINT NOT NULL,        -- not before this time (backoff)
    lease_owner      TEXT,                   -- worker id while running
    ran_by           TEXT,                   -- the worker that last took it
    lease_expires_at BIGINT,
    cancel_requested BIGINT NOT NULL,
    progress         TEXT,                   -- JSON: bytes and files done and total
    result           TEXT,                   -- JSON of the outcome
    error            TEXT,
    actor            TEXT NOT NULL,          -- who asked
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT
);
CREATE INDEX jobs_by_status ON jobs (status, run_after);
CREATE INDEX jobs_by_site ON jobs (site_id, status);
CREATE INDEX jobs_by_lane ON jobs (lane, status);
CREATE INDEX jobs_by_backup ON jobs (backup_id, status);
-- A backup queued for a site that already has one queued is merged into it.
CREATE UNIQUE INDEX jobs_one_queued_backup ON jobs (lane) WHERE status = 'queued' AND kind = 'backup';

CREATE TABLE api_tokens (
    name        TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,        -- BLAKE3 of the secret; the secret is shown once
    admin       BIGINT NOT NULL,
    scopes      TEXT NOT NULL,               -- JSON: [{"site_id": ..., "permissions": [...]}]
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,               -- HMAC key for signatures
    events      TEXT NOT NULL,               -- JSON array of event kinds; empty = all
    created_at  BIGINT NOT NULL,
    last_event  TEXT,                        -- id of the last event delivered (in order)
    attempts    BIGINT NOT NULL,             -- failed tries of the next event
    next_attempt_at BIGINT NOT NULL,         -- backoff after a failure
    lease_owner TEXT,                        -- the process delivering it
    lease_expires_at BIGINT
);

CREATE TABLE webhook_deliveries (
    id           TEXT PRIMARY KEY,
    webhook_id   TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    attempt      BIGINT NOT NULL,
    status_code  BIGINT,
    error        TEXT,
    at           BIGINT NOT NULL
);
CREATE INDEX deliveries_by_webhook ON webhook_deliveries (webhook_id, at);

-- What the scheduler last did per site.
CREATE TABLE schedule_state (
    site_id        TEXT PRIMARY KEY,
    last_slot_at   BIGINT,                   -- the slot last enqueued
    stale_since    BIGINT,                   -- set while the site is stale
    missed_slots   BIGINT NOT NULL DEFAULT 0 -- slots that passed without a backup starting
);
