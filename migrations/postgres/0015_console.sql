-- The web console's sign-in: one-time links emailed to an owner's or admin's member address
-- (only a hash of the token is kept), and server-side sessions (the cookie holds the secret,
-- the row its hash). A session with no org is the operator's. No foreign key to members: a
-- session names its member only to check, on every request, that they are still an admin.
CREATE TABLE console_sign_in_links (
    id          UUID PRIMARY KEY,
    org_id      UUID NOT NULL REFERENCES orgs(id),
    member_id   UUID NOT NULL,
    token_hash  BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE UNIQUE INDEX console_sign_in_links_token ON console_sign_in_links (token_hash);

CREATE TABLE console_sessions (
    id            UUID PRIMARY KEY,
    token_hash    BYTEA NOT NULL,
    org_id        UUID REFERENCES orgs(id),
    member_id     UUID,
    -- The CSRF token every form of the session carries.
    csrf          TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ
);
CREATE UNIQUE INDEX console_sessions_token ON console_sessions (token_hash);
CREATE INDEX console_sessions_member ON console_sessions (org_id, member_id);
