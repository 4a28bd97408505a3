-- The foundation: orgs, members and their links and groups, tokens, the audit log,
-- invitations and the email outbox. UUIDs are native uuid, times timestamptz.

CREATE TABLE orgs (
    id          UUID PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    managed_by  TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE members (
    id              UUID PRIMARY KEY,
    org_id          UUID NOT NULL REFERENCES orgs(id),
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
    added_at        TIMESTAMPTZ NOT NULL,
    invited_at      TIMESTAMPTZ,
    invite_count    BIGINT NOT NULL DEFAULT 0,
    reminders_sent  BIGINT NOT NULL DEFAULT 0,
    enrolled_at     TIMESTAMPTZ,
    last_active_at  TIMESTAMPTZ,
    removed_at      TIMESTAMPTZ,
    activity_at     TIMESTAMPTZ NOT NULL,
    ever_enrolled   BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX members_org_email ON members (org_id, email_key);
CREATE INDEX members_org_email_id ON members (org_id, email_key, id);
CREATE INDEX members_org_added ON members (org_id, added_at, id);
CREATE INDEX members_org_name ON members (org_id, name_key, id);
CREATE INDEX members_org_activity ON members (org_id, activity_at, id);
CREATE INDEX members_org_role_access ON members (org_id, role, access);
CREATE INDEX members_org_access ON members (org_id, access);
CREATE INDEX members_reminders ON members (access, invited_at) WHERE access = 'invited';
-- Substring search (`LIKE '%term%'`) served by trigrams.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX members_search ON members USING gin (search_key gin_trgm_ops);
CREATE UNIQUE INDEX members_one_owner ON members (org_id) WHERE role = 'owner';

CREATE TABLE member_links (
    org_id       UUID NOT NULL REFERENCES orgs(id),
    source       TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    member_id    UUID NOT NULL REFERENCES members(id),
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, source, external_id)
);
CREATE INDEX member_links_member ON member_links (member_id);

CREATE TABLE groups (
    id           UUID PRIMARY KEY,
    org_id       UUID NOT NULL REFERENCES orgs(id),
    name         TEXT NOT NULL,
    name_key     TEXT NOT NULL,
    external_id  TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX groups_org_name ON groups (org_id, name_key);

CREATE TABLE group_members (
    group_id   UUID NOT NULL REFERENCES groups(id),
    member_id  UUID NOT NULL REFERENCES members(id),
    added_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member ON group_members (member_id);

CREATE TABLE tokens (
    id            UUID PRIMARY KEY,
    org_id        UUID REFERENCES orgs(id),
    kind          TEXT NOT NULL CHECK (kind IN ('admin', 'scim')),
    name          TEXT NOT NULL,
    secret_hash   BYTEA NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);
CREATE INDEX tokens_org ON tokens (org_id);

CREATE TABLE audit_log (
    id           UUID PRIMARY KEY,
    org_id       UUID REFERENCES orgs(id),
    at           TIMESTAMPTZ NOT NULL,
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
    id           UUID PRIMARY KEY,
    org_id       UUID NOT NULL REFERENCES orgs(id),
    member_id    UUID NOT NULL REFERENCES members(id),
    token_hash   BYTEA NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ
);
CREATE INDEX invitations_member ON invitations (member_id);

CREATE TABLE outbox (
    id               UUID PRIMARY KEY,
    org_id           UUID REFERENCES orgs(id),
    member_id        UUID REFERENCES members(id),
    kind             TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL UNIQUE,
    to_address       TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body             TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    available_at     TIMESTAMPTZ NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    claimed_until    TIMESTAMPTZ,
    last_error       TEXT,
    sent_at          TIMESTAMPTZ,
    failed_at        TIMESTAMPTZ,
    cancelled_at     TIMESTAMPTZ
);
CREATE INDEX outbox_due ON outbox (available_at) WHERE sent_at IS NULL AND failed_at IS NULL AND cancelled_at IS NULL;
CREATE INDEX outbox_member ON outbox (member_id) WHERE sent_at IS NULL;
