-- Invitation options per org: how many addresses one request may invite (by hand, by import),
-- the cool-down between two invitation emails to one person, and whether every invitation
-- must name a group. Groups named by an invitation are joined when it is accepted.

ALTER TABLE orgs ADD COLUMN invite_limit BIGINT NOT NULL DEFAULT 10;
ALTER TABLE orgs ADD COLUMN import_invite_limit BIGINT NOT NULL DEFAULT 500;
ALTER TABLE orgs ADD COLUMN resend_cooldown_secs BIGINT NOT NULL DEFAULT 600;
ALTER TABLE orgs ADD COLUMN invite_requires_group BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE invitation_groups (
    org_id     UUID NOT NULL REFERENCES orgs(id),
    member_id  UUID NOT NULL REFERENCES members(id),
    group_id   UUID NOT NULL REFERENCES groups(id),
    added_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (member_id, group_id)
);
CREATE INDEX invitation_groups_group ON invitation_groups (group_id);

-- Invite links: a URL and an unlock code instead of an email. The link's token and the code
-- are stored hashed; a link is pending until one person accepts it, and dies when it expires,
-- is revoked, or has seen too many wrong codes.
ALTER TABLE orgs ADD COLUMN invite_link_days BIGINT NOT NULL DEFAULT 14;

CREATE TABLE invite_links (
    id             UUID PRIMARY KEY NOT NULL,
    org_id         UUID NOT NULL REFERENCES orgs(id),
    token_hash     BYTEA NOT NULL UNIQUE,
    code_hash      BYTEA NOT NULL,
    description    TEXT NOT NULL,
    email          TEXT,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_by     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    revoked_at     TIMESTAMPTZ,
    accepted_at    TIMESTAMPTZ,
    member_id      UUID REFERENCES members(id),
    failed_codes   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX invite_links_org ON invite_links (org_id, created_at);

CREATE TABLE invite_link_groups (
    link_id   UUID NOT NULL REFERENCES invite_links(id),
    group_id  UUID NOT NULL REFERENCES groups(id),
    PRIMARY KEY (link_id, group_id)
);
CREATE INDEX invite_link_groups_group ON invite_link_groups (group_id);
