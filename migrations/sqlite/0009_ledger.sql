-- Points (credits): the org's pool and each member's balance, kept on their rows so lists can
-- sort by them, and the append-only ledger of every movement. A movement's idempotency key is
-- unique per org: a replay answers the movement it already made.

ALTER TABLE orgs ADD COLUMN points_pool INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN points INTEGER NOT NULL DEFAULT 0;

CREATE TABLE points_ledger (
    id               BLOB PRIMARY KEY NOT NULL,
    org_id           BLOB NOT NULL REFERENCES orgs(id),
    at               TEXT NOT NULL,
    -- pool_add: points added to the pool; give: pool → member; take: member → pool.
    kind             TEXT NOT NULL CHECK (kind IN ('pool_add', 'give', 'take')),
    member_id        BLOB REFERENCES members(id),
    amount           INTEGER NOT NULL CHECK (amount > 0),
    reason           TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    actor_kind       TEXT NOT NULL,
    actor_id         TEXT,
    actor_label      TEXT NOT NULL,
    pool_after       INTEGER NOT NULL,
    balance_after    INTEGER
);
CREATE UNIQUE INDEX points_ledger_key ON points_ledger (org_id, idempotency_key);
CREATE INDEX points_ledger_org ON points_ledger (org_id, id);
CREATE INDEX points_ledger_member ON points_ledger (org_id, member_id, id);
CREATE INDEX members_org_points ON members (org_id, points, id);

-- Fees and payments: a member's monthly fee and what they paid, in integer minor units of one
-- ISO 4217 currency per member (set by the first fee or payment). `total_paid` is the sum of
-- the member's payments, kept with each payment so lists can sort by it.
ALTER TABLE members ADD COLUMN monthly_fee INTEGER;
ALTER TABLE members ADD COLUMN currency TEXT;
ALTER TABLE members ADD COLUMN total_paid INTEGER NOT NULL DEFAULT 0;

CREATE TABLE payments (
    id           BLOB PRIMARY KEY NOT NULL,
    org_id       BLOB NOT NULL REFERENCES orgs(id),
    member_id    BLOB NOT NULL REFERENCES members(id),
    amount       INTEGER NOT NULL CHECK (amount > 0),
    currency     TEXT NOT NULL,
    paid_on      TEXT NOT NULL,
    note         TEXT,
    recorded_at  TEXT NOT NULL,
    actor_label  TEXT NOT NULL
);
CREATE INDEX payments_member ON payments (org_id, member_id, id);
CREATE INDEX members_org_total_paid ON members (org_id, total_paid, id);
