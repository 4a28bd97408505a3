-- Phone numbers: several per member, typed, in the order given, at most one primary (checked
-- by the roster operation that writes a member's whole list). SCIM `phoneNumbers` live here,
-- not in `members.scim_data`.
CREATE TABLE member_phones (
    org_id      UUID NOT NULL REFERENCES orgs(id),
    member_id   UUID NOT NULL REFERENCES members(id),
    position    BIGINT NOT NULL,
    -- work, home, mobile, fax, pager, other (lowercase), or an org's own short label.
    phone_type  TEXT,
    value       TEXT NOT NULL,
    -- SCIM's `display` of the number, kept when a client sends one.
    display     TEXT,
    -- NULL: the primary mark was not stated (read as not primary).
    is_primary  BOOLEAN,
    PRIMARY KEY (org_id, member_id, position)
);

-- Entitlements: named items attached to a group (a training course, a licence), with an
-- optional reference in another system. Members have them through their groups.
CREATE TABLE entitlements (
    id            UUID PRIMARY KEY,
    org_id        UUID NOT NULL REFERENCES orgs(id),
    group_id      UUID NOT NULL REFERENCES groups(id),
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    external_ref  TEXT,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX entitlements_group_name ON entitlements (org_id, group_id, name_key);

-- One member's audit entries (the member detail's status trail and recent events, the audit
-- list's `member` filter).
CREATE INDEX audit_subject ON audit_log (org_id, subject_kind, subject_id, id);
