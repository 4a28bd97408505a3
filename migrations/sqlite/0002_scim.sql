-- SCIM 2.0: members double as SCIM Users (userName, externalId, the client's full resource
-- document, a version for ETags, and a tombstone for DELETE); groups as SCIM Groups; each org
-- says what a SCIM-created member starts as.

ALTER TABLE members ADD COLUMN user_name TEXT NOT NULL DEFAULT '';
ALTER TABLE members ADD COLUMN user_name_key TEXT NOT NULL DEFAULT '';
ALTER TABLE members ADD COLUMN external_id TEXT;
ALTER TABLE members ADD COLUMN scim_data TEXT;
ALTER TABLE members ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE members ADD COLUMN scim_deleted BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE members SET user_name = member_email, user_name_key = email_key;
CREATE UNIQUE INDEX members_org_user_name ON members (org_id, user_name_key);
CREATE INDEX members_org_external_id ON members (org_id, external_id);

ALTER TABLE groups ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE groups ADD COLUMN scim_data TEXT;
CREATE INDEX groups_org_external_id ON groups (org_id, external_id);

ALTER TABLE orgs ADD COLUMN scim_new_members TEXT NOT NULL DEFAULT 'invite'
    CHECK (scim_new_members IN ('invite', 'invite_silently', 'enroll'));
