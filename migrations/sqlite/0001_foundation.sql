-- The foundation: orgs, members and their links and groups, tokens, the audit log,
-- invitations and the email outbox. UUIDs are 16-byte BLOBs, times RFC 3339 TEXT in UTC.

CREATE TABLE orgs (
    id          BLOB PRIMARY KEY NOT NULL,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    managed_by  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE members (
    id              BLOB PRIMARY KEY NOT NULL,
    org_id          BLOB NOT NULL REFERENCES orgs(id),
    given_name      TEXT,
    family_name     TEXT,
    display_name    TEXT,
    name_key        TEXT NOT NULL,
    member_email    TEXT NOT NULL,
    email_key       TEXT NOT NULL,
    login_email     TEXT,
    login_key       TEXT,
    -- name_key, email_key and login_key joined by newlines: what the admin search looks in.
    search_key      TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    access          TEXT NOT NULL CHECK (access IN ('invited', 'enrolled', 'removed')),
    added_at        TEXT NOT NULL,
    invited_at      TEXT,
    invite_count    INTEGER NOT NULL DEFAULT 0,
    reminders_sent  INTEGER NOT NULL DEFAULT 0,
    enrolled_at     TEXT,
    last_active_at  TEXT,
    removed_at      TEXT,
    activity_at     TEXT NOT NULL,
    ever_enrolled   BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at      TEXT NOT NULL
);
CREATE UNIQUE INDEX members_org_email ON members (org_id, email_key);
CREATE INDEX members_org_email_id ON members (org_id, email_key, id);
CREATE INDEX members_org_added ON members (org_id, added_at, id);
CREATE INDEX members_org_name ON members (org_id, name_key, id);
CREATE INDEX members_org_activity ON members (org_id, activity_at, id);
CREATE INDEX members_org_role_access ON members (org_id, role, access);
CREATE INDEX members_org_access ON members (org_id, access);
CREATE INDEX members_reminders ON members (access, invited_at) WHERE access = 'invited';
CREATE UNIQUE INDEX members_one_owner ON members (org_id) WHERE role = 'owner';

-- Substring search (`LIKE '%term%'`, terms of 3+ characters) served by a trigram index that
-- mirrors members.search_key.
CREATE VIRTUAL TABLE members_search USING fts5(
    search_key, content='members', content_rowid='rowid', tokenize='trigram'
);
CREATE TRIGGER members_search_ai AFTER INSERT ON members BEGIN
    INSERT INTO members_search (rowid, search_key) VALUES (new.rowid, new.search_key);
END;
CREATE TRIGGER members_search_ad AFTER DELETE ON members BEGIN
    INSERT INTO members_search (members_search, rowid, search_key)
    VALUES ('delete', old.rowid, old.search_key);
END;
CREATE TRIGGER members_search_au AFTER UPDATE OF search_key ON members
WHEN old.search_key IS NOT new.search_key BEGIN
    INSERT INTO members_search (members_search, rowid, search_key)
    VALUES ('delete', old.rowid, old.search_key);
    INSERT INTO members_search (rowid, search_key) VALUES (new.rowid, new.search_key);
END;

CREATE TABLE member_links (
    org_id       BLOB NOT NULL REFERENCES orgs(id),
    source       TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    member_id    BLOB NOT NULL REFERENCES members(id),
    created_at   TEXT NOT NULL,
    PRIMARY KEY (org_id, source, external_id)
);
CREATE INDEX member_links_member ON member_links (member_id);

CREATE TABLE groups (
    id           BLOB PRIMARY KEY NOT NULL,
    org_id       BLOB NOT NULL REFERENCES orgs(id),
    name         TEXT NOT NULL,
    name_key     TEXT NOT NULL,
    external_id  TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX groups_org_name ON groups (org_id, name_key);

CREATE TABLE group_members (
    group_id   BLOB NOT NULL REFERENCES groups(id),
    member_id  BLOB NOT NULL REFERENCES members(id),
    added_at   TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member ON group_members (member_id);

CREATE TABLE tokens (
    id            BLOB PRIMARY KEY NOT NULL,
    org_id        BLOB REFERENCES orgs(id),
    kind          TEXT NOT NULL CHECK (kind IN ('admin', 'scim')),
    name          TEXT NOT NULL,
    secret_hash   BLOB NOT NULL,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT,
    revoked_at    TEXT
);
CREATE INDEX tokens_org ON tokens (org_id);

CREATE TABLE audit_log (
    id           BLOB PRIMARY KEY NOT NULL,
    org_id       BLOB REFERENCES orgs(id),
    at           TEXT NOT NULL,
    actor_kind   TEXT NOT NULL,
    actor_id     TEXT,
    actor_label  TEXT NOT NULL,
    action       TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject_id   TEXT,
    before       TEXT,
    after        TEXT
);
CREATE INDEX audit_org ON audit_log (org_id, id);

CREATE TABLE invitations (
    id           BLOB PRIMARY KEY NOT NULL,
    org_id       BLOB NOT NULL REFERENCES orgs(id),
    member_id    BLOB NOT NULL REFERENCES members(id),
    token_hash   BLOB NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    used_at      TEXT
);
CREATE INDEX invitations_member ON invitations (member_id);

CREATE TABLE outbox (
    id               BLOB PRIMARY KEY NOT NULL,
    org_id           BLOB REFERENCES orgs(id),
    member_id        BLOB REFERENCES members(id),
    kind             TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL UNIQUE,
    to_address       TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body             TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    available_at     TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    claimed_until    TEXT,
    last_error       TEXT,
    sent_at          TEXT,
    failed_at        TEXT,
    cancelled_at     TEXT
);
CREATE INDEX outbox_due ON outbox (available_at) WHERE sent_at IS NULL AND failed_at IS NULL AND cancelled_at IS NULL;
CREATE INDEX outbox_member ON outbox (member_id) WHERE sent_at IS NULL;
