-- no-transaction
-- Two more access states: `cancelled` (a pending invitation withdrawn before it was accepted)
-- and `disabled` (access suspended, reversible), each with the time it happened. SQLite cannot
-- alter a CHECK constraint, so the members table is rebuilt (rowids kept, so the trigram search
-- index that mirrors it stays valid), with foreign keys off for the swap, as SQLite's manual
-- prescribes; hence no surrounding migration transaction.

PRAGMA foreign_keys = OFF;
BEGIN;

CREATE TABLE members_new (
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
    access          TEXT NOT NULL
                    CHECK (access IN ('invited', 'enrolled', 'removed', 'cancelled', 'disabled')),
    added_at        TEXT NOT NULL,
    invited_at      TEXT,
    invite_count    INTEGER NOT NULL DEFAULT 0,
    reminders_sent  INTEGER NOT NULL DEFAULT 0,
    enrolled_at     TEXT,
    last_active_at  TEXT,
    removed_at      TEXT,
    activity_at     TEXT NOT NULL,
    ever_enrolled   BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at      TEXT NOT NULL,
    user_name       TEXT NOT NULL DEFAULT '',
    user_name_key   TEXT NOT NULL DEFAULT '',
    external_id     TEXT,
    scim_data       TEXT,
    version         INTEGER NOT NULL DEFAULT 1,
    scim_deleted    BOOLEAN NOT NULL DEFAULT FALSE,
    cancelled_at    TEXT,
    disabled_at     TEXT
);

INSERT INTO members_new (rowid, id, org_id, given_name, family_name, display_name, name_key,
    member_email, email_key, login_email, login_key, search_key, role, access, added_at,
    invited_at, invite_count, reminders_sent, enrolled_at, last_active_at, removed_at,
    activity_at, ever_enrolled, updated_at, user_name, user_name_key, external_id, scim_data,
    version, scim_deleted)
SELECT rowid, id, org_id, given_name, family_name, display_name, name_key,
    member_email, email_key, login_email, login_key, search_key, role, access, added_at,
    invited_at, invite_count, reminders_sent, enrolled_at, last_active_at, removed_at,
    activity_at, ever_enrolled, updated_at, user_name, user_name_key, external_id, scim_data,
    version, scim_deleted
FROM members;

DROP TABLE members;
ALTER TABLE members_new RENAME TO members;

CREATE UNIQUE INDEX members_org_email ON members (org_id, email_key);
CREATE INDEX members_org_email_id ON members (org_id, email_key, id);
CREATE INDEX members_org_added ON members (org_id, added_at, id);
CREATE INDEX members_org_name ON members (org_id, name_key, id);
CREATE INDEX members_org_activity ON members (org_id, activity_at, id);
CREATE INDEX members_org_role_access ON members (org_id, role, access);
CREATE INDEX members_org_access ON members (org_id, access);
CREATE INDEX members_reminders ON members (access, invited_at) WHERE access = 'invited';
CREATE UNIQUE INDEX members_one_owner ON members (org_id) WHERE role = 'owner';
CREATE UNIQUE INDEX members_org_user_name ON members (org_id, user_name_key);
CREATE INDEX members_org_external_id ON members (org_id, external_id);
CREATE INDEX members_org_id ON members (org_id, id);

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

COMMIT;
PRAGMA foreign_keys = ON;
