-- The public join page of an org and the requests people make through it. A request is not a
-- member: it waits for its email to be verified (`unverified`), then either makes a member at
-- once (`joined`) or waits for an admin (`pending`, an application) who approves (`approved`)
-- or declines it (`declined`). Turning the page off voids every unverified request (`void`).
-- Lists and questions are JSON text: they are read and written whole.

CREATE TABLE join_pages (
    org_id            UUID PRIMARY KEY NOT NULL REFERENCES orgs(id),
    enabled           BOOLEAN NOT NULL DEFAULT FALSE,
    slug              TEXT UNIQUE,
    allowed_domains   TEXT NOT NULL DEFAULT '[]',
    allowed_emails    TEXT NOT NULL DEFAULT '[]',
    require_approval  BOOLEAN NOT NULL DEFAULT FALSE,
    questions         TEXT NOT NULL DEFAULT '[]',
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE join_requests (
    id            UUID PRIMARY KEY NOT NULL,
    org_id        UUID NOT NULL REFERENCES orgs(id),
    email         TEXT NOT NULL,
    given_name    TEXT,
    family_name   TEXT,
    answers       TEXT NOT NULL DEFAULT '{}',
    token_hash    BYTEA UNIQUE,
    status        TEXT NOT NULL
                  CHECK (status IN ('unverified', 'pending', 'joined', 'approved', 'declined', 'void')),
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    verified_at   TIMESTAMPTZ,
    decided_at    TIMESTAMPTZ,
    decided_by    TEXT,
    reason        TEXT,
    member_id     UUID REFERENCES members(id)
);
CREATE INDEX join_requests_org_status ON join_requests (org_id, status, created_at, id);
