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
