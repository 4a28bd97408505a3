-- What a SCIM `active: false` does to a member: `remove` (the default, as before) or `disable`
-- (reversible: `active: true` enables them again).
ALTER TABLE orgs ADD COLUMN scim_deactivate TEXT NOT NULL DEFAULT 'remove';

-- Long work run in the background by the job worker (dropping an org's members, large
-- exports). A running job holds a lease its runner renews; one whose lease ran out died with
-- its process and is marked failed.
CREATE TABLE jobs (
    id            UUID PRIMARY KEY,
    org_id        UUID NOT NULL REFERENCES orgs(id),
    kind          TEXT NOT NULL,
    -- queued, running, succeeded, failed
    status        TEXT NOT NULL,
    params        TEXT NOT NULL,
    progress      BIGINT NOT NULL DEFAULT 0,
    total         BIGINT,
    result        TEXT,
    error         TEXT,
    actor_kind    TEXT NOT NULL,
    actor_id      TEXT,
    actor_label   TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    lease_until   TIMESTAMPTZ
);
CREATE INDEX jobs_queue ON jobs (status, created_at);
CREATE INDEX jobs_org ON jobs (org_id, id);

-- A produced file (an export), kept in the database in chunks so every replica can serve it.
CREATE TABLE job_files (
    job_id        UUID PRIMARY KEY REFERENCES jobs(id),
    org_id        UUID NOT NULL REFERENCES orgs(id),
    file_name     TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    chunks        BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    -- set when the chunks were deleted (the download answers 410 from then on)
    purged_at     TIMESTAMPTZ
);
CREATE INDEX job_files_expiry ON job_files (expires_at);
CREATE TABLE job_file_chunks (
    job_id  UUID NOT NULL REFERENCES jobs(id),
    seq     BIGINT NOT NULL,
    data    BYTEA NOT NULL,
    PRIMARY KEY (job_id, seq)
);
