-- The chom-backup catalog. One migration set for SQLite and PostgreSQL:
-- portable types only (TEXT, BIGINT), ids are ULIDs, times are microseconds
-- since the Unix epoch, flags are 0/1.

CREATE TABLE sites (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    root            TEXT NOT NULL,
    excludes        TEXT NOT NULL,          -- JSON array of patterns
    db_engine       TEXT,                   -- sqlite | mysql | postgres
    db_location     TEXT,                   -- JSON: {"kind": "file"|"tcp"|"socket", ...}
    db_name         TEXT,
    db_user         TEXT,
    db_password_ref TEXT,                   -- file:PATH | env:VAR (never the secret)
    timezone        TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE backups (
    id                TEXT PRIMARY KEY,
    site_id           TEXT NOT NULL REFERENCES sites (id),
    backup_type       TEXT NOT NULL,        -- full | files | database
    status            TEXT NOT NULL,        -- pending | running | completed | failed
    trigger_kind      TEXT NOT NULL,        -- manual | schedule | api | safety
    retention_days    BIGINT NOT NULL,
    compression_level BIGINT NOT NULL,
    require_encryption BIGINT NOT NULL,
    encrypted         BIGINT NOT NULL,
    snapshot_id       TEXT,
    logical_bytes     BIGINT NOT NULL,
    added_bytes       BIGINT NOT NULL,
    file_count        BIGINT NOT NULL,
    checksum          TEXT,
    created_at        BIGINT NOT NULL,
    started_at        BIGINT,
    completed_at      BIGINT,
    expires_at        BIGINT NOT NULL,
    error             TEXT
);
CREATE INDEX backups_by_site ON backups (site_id, created_at);

CREATE TABLE schedules (
    site_id           TEXT PRIMARY KEY REFERENCES sites (id),
    frequency         TEXT NOT NULL,        -- daily | weekly | monthly | a cron expression
    backup_type       TEXT NOT NULL,
    retention_days    BIGINT NOT NULL,
    compression_level BIGINT NOT NULL,
    require_encryption BIGINT NOT NULL,
    created_at        BIGINT NOT NULL
);

-- The outbox: every event, written in the same transaction as its change.
CREATE TABLE events (
    id           TEXT PRIMARY KEY,          -- ULID, increasing
    kind         TEXT NOT NULL,
    site_id      TEXT,
    backup_id    TEXT,
    payload      TEXT NOT NULL,             -- JSON
    created_at   BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX events_by_site ON events (site_id, id);

-- Append-only: rows are inserted, never updated or deleted.
CREATE TABLE audit_log (
    id        TEXT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    site_id   TEXT,
    backup_id TEXT,
    outcome   TEXT NOT NULL,                -- ok | failed
    detail    TEXT
);
CREATE INDEX audit_by_site ON audit_log (site_id, at);

-- One backup or restore per site at a time.
CREATE TABLE site_locks (
    site_id      TEXT PRIMARY KEY,
    operation    TEXT NOT NULL,             -- backup | restore | retention
    backup_id    TEXT,                      -- the backup being made or restored
    holder_host  TEXT NOT NULL,
    holder_pid   BIGINT NOT NULL,
    acquired_at  BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
