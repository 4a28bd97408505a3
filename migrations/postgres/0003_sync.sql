-- Sync: per-source state (leases, failure backoff), runs (one row per scheduled tick, manual
-- run or import job), their error rows and their stored plans; link claims; and the source
-- that makes an org integration-managed.

CREATE TABLE sync_sources (
    name                  TEXT PRIMARY KEY,
    org_id                UUID NOT NULL REFERENCES orgs(id),
    lease_owner           TEXT,
    lease_expires_at      TIMESTAMPTZ,
    consecutive_failures  BIGINT NOT NULL DEFAULT 0,
    retry_after           TIMESTAMPTZ,
    last_error            TEXT,
    updated_at            TIMESTAMPTZ NOT NULL
);

CREATE TABLE sync_runs (
    id                UUID PRIMARY KEY,
    source            TEXT NOT NULL,
    org_id            UUID NOT NULL REFERENCES orgs(id),
    kind              TEXT NOT NULL CHECK (kind IN ('sync', 'import')),
    trigger           TEXT NOT NULL,
    -- The scheduled tick this run is; unique per source, so each tick runs once.
    fire_time         TIMESTAMPTZ,
    status            TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'held',
                          'interrupted', 'superseded', 'invalid', 'preview', 'cancelled')),
    phase             TEXT NOT NULL,
    started_at        TIMESTAMPTZ NOT NULL,
    finished_at       TIMESTAMPTZ,
    lease_owner       TEXT,
    lease_name        TEXT,
    fetched           BIGINT NOT NULL DEFAULT 0,
    created           BIGINT NOT NULL DEFAULT 0,
    updated           BIGINT NOT NULL DEFAULT 0,
    removed           BIGINT NOT NULL DEFAULT 0,
    reactivated       BIGINT NOT NULL DEFAULT 0,
    unchanged         BIGINT NOT NULL DEFAULT 0,
    errors            BIGINT NOT NULL DEFAULT 0,
    planned_creates       BIGINT NOT NULL DEFAULT 0,
    planned_updates       BIGINT NOT NULL DEFAULT 0,
    planned_removals      BIGINT NOT NULL DEFAULT 0,
    planned_reactivations BIGINT NOT NULL DEFAULT 0,
    message           TEXT,
    warnings          TEXT NOT NULL DEFAULT '[]',
    approved_by       TEXT,
    approved_at       TIMESTAMPTZ,
    filename          TEXT,
    created_by        TEXT NOT NULL,
    UNIQUE (source, fire_time)
);
CREATE INDEX sync_runs_source ON sync_runs (source, id);
CREATE INDEX sync_runs_org ON sync_runs (org_id, kind, id);
CREATE INDEX sync_runs_status ON sync_runs (status);

CREATE TABLE sync_run_errors (
    run_id       UUID NOT NULL REFERENCES sync_runs(id),
    seq          BIGINT NOT NULL,
    line         BIGINT NOT NULL,
    external_id  TEXT,
    field        TEXT,
    value        TEXT,
    message      TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE sync_plan_items (
    run_id       UUID NOT NULL REFERENCES sync_runs(id),
    seq          BIGINT NOT NULL,
    action       TEXT NOT NULL,
    member_id    UUID,
    external_id  TEXT,
    email        TEXT,
    detail       TEXT NOT NULL,
    applied      BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (run_id, seq)
);

-- A link whose source no longer lists the person (or lists them inactive) stays for matching
-- but no longer claims them.
ALTER TABLE member_links ADD COLUMN claiming BOOLEAN NOT NULL DEFAULT TRUE;
DROP INDEX member_links_member;
-- The member index a sync plans against is read in id order, a page at a time.
CREATE INDEX members_org_id ON members (org_id, id);
CREATE INDEX member_links_member_source ON member_links (member_id, source);

-- The authoritative source that manages the org, set from config at start.
ALTER TABLE orgs ADD COLUMN managed_by_source TEXT;
