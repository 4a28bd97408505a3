-- What a SCIM `active: false` does to a member: `remove` (the default, as before) or `disable`
-- (reversible: `active: true` enables them again).
ALTER TABLE orgs ADD COLUMN scim_deactivate TEXT NOT NULL DEFAULT 'remove';

-- Long work run in the background by the job worker (dropping an org's members, large
-- exports). A running job holds a lease its runner renews; one whose lease ran out died with
-- its process and is marked failed.
CREATE TABLE jobs (
    id            BLOB PRIMARY KEY NOT NULL,
    org_id        BLOB NOT NULL REFERENCES orgs(id),
    kind          TEXT NOT NULL,
    -- queued, running, succeeded, failed
    status        TEXT NOT NULL,
    params        TEXT NOT NULL,
    progress      INTEGER NOT NULL DEFAULT 0,
    total         INTEGER,
    result        TEXT,
    error         TEXT,
    actor_kind    TEXT NOT NULL,
    actor_id      TEXT,
    actor_label   TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    lease_until   TEXT
);
CREATE INDEX jobs_queue ON jobs (status, created_at);
CREATE INDEX jobs_org ON jobs (org_id, id);

-- A produced file (an export), kept in the database in chunks so every replica can serve it.
CREATE TABLE job_files (
    job_id        BLOB PRIMARY KEY NOT NULL REFERENCES jobs(id),
    org_id        BLOB NOT NULL REFERENCES orgs(id),
    file_name     TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          INTEGER NOT NULL,
    chunks        INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    -- set when the chunks were deleted (the download answers 410 from then on)
    purged_at     TEXT
);
CREATE INDEX job_files_expiry ON job_files (expires_at);
CREATE TABLE job_file_chunks (
    job_id  BLOB NOT NULL REFERENCES jobs(id),
    seq     INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (job_id, seq)
);
