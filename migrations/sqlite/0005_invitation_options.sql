-- Invitation options per org: how many addresses one request may invite (by hand, by import),
-- the cool-down between two invitation emails to one person, and whether every invitation
-- must name a group. Groups named by an invitation are joined when it is accepted.

ALTER TABLE orgs ADD COLUMN invite_limit INTEGER NOT NULL DEFAULT 10;
ALTER TABLE orgs ADD COLUMN import_invite_limit INTEGER NOT NULL DEFAULT 500;
ALTER TABLE orgs ADD COLUMN resend_cooldown_secs INTEGER NOT NULL DEFAULT 600;
ALTER TABLE orgs ADD COLUMN invite_requires_group BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE invitation_groups (
    org_id     BLOB NOT NULL REFERENCES orgs(id),
    member_id  BLOB NOT NULL REFERENCES members(id),
    group_id   BLOB NOT NULL REFERENCES groups(id),
    added_at   TEXT NOT NULL,
    PRIMARY KEY (member_id, group_id)
);
CREATE INDEX invitation_groups_group ON invitation_groups (group_id);

-- Invite links: a URL and an unlock code instead of an email. The link's token and the code
-- are stored hashed; a link is pending until one person accepts it, and dies when it expires,
-- is revoked, or has seen too many wrong codes.
ALTER TABLE orgs ADD COLUMN invite_link_days INTEGER NOT NULL DEFAULT 14;

CREATE TABLE invite_links (
    id             BLOB PRIMARY KEY NOT NULL,
    org_id         BLOB NOT NULL REFERENCES orgs(id),
    token_hash     BLOB NOT NULL UNIQUE,
    code_hash      BLOB NOT NULL,
    description    TEXT NOT NULL,
    email          TEXT,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    revoked_at     TEXT,
    accepted_at    TEXT,
    member_id      BLOB REFERENCES members(id),
    failed_codes   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX invite_links_org ON invite_links (org_id, created_at);

CREATE TABLE invite_link_groups (
    link_id   BLOB NOT NULL REFERENCES invite_links(id),
    group_id  BLOB NOT NULL REFERENCES groups(id),
    PRIMARY KEY (link_id, group_id)
);
CREATE INDEX invite_link_groups_group ON invite_link_groups (group_id);
