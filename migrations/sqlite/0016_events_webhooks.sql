-- The events feed: one row per event, numbered per org in commit order. `event_counters`
-- holds each org's last number; taking the next one locks the org's counter row until the
-- transaction ends, so numbers are handed out in the order transactions commit and a reader
-- that continues after the last number it saw never misses an event.
CREATE TABLE event_counters (
    org_id    BLOB PRIMARY KEY NOT NULL REFERENCES orgs(id),
    last_seq  INTEGER NOT NULL
);

CREATE TABLE events (
    org_id        BLOB NOT NULL REFERENCES orgs(id),
    seq           INTEGER NOT NULL,
    id            BLOB NOT NULL UNIQUE,
    event_type    TEXT NOT NULL,
    at            TEXT NOT NULL,
    subject_kind  TEXT NOT NULL,
    subject_id    TEXT,
    -- The audit entry the event was derived from.
    audit_id      BLOB,
    -- The event's `data` (JSON).
    data          TEXT NOT NULL,
    PRIMARY KEY (org_id, seq)
);

-- Webhook subscriptions. `secret` is the signing key (`whsec_…`): stored so deliveries can be
-- signed, like other upstream credentials; never returned after creation, never logged.
CREATE TABLE webhooks (
    id                    BLOB PRIMARY KEY NOT NULL,
    org_id                BLOB NOT NULL REFERENCES orgs(id),
    url                   TEXT NOT NULL,
    -- JSON array of event types (`*` for all, `member.*` for a family).
    event_types           TEXT NOT NULL,
    description           TEXT,
    secret                TEXT NOT NULL,
    -- After a rotation the old secret signs too, until `previous_secret_until`.
    previous_secret       TEXT,
    previous_secret_until TEXT,
    enabled               BOOLEAN NOT NULL,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    disabled_at           TEXT,
    disabled_reason       TEXT,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
);
CREATE INDEX webhooks_org ON webhooks (org_id, id);

-- One row per (subscription, event): the webhook outbox, written with the event.
CREATE TABLE webhook_deliveries (
    id             BLOB PRIMARY KEY NOT NULL,
    org_id         BLOB NOT NULL REFERENCES orgs(id),
    webhook_id     BLOB NOT NULL REFERENCES webhooks(id),
    event_id       BLOB NOT NULL,
    event_seq      INTEGER NOT NULL,
    event_type     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    available_at   TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    claimed_until  TEXT,
    delivered_at   TEXT,
    failed_at      TEXT,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (available_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;

-- The delivery log: one row per attempt.
CREATE TABLE webhook_attempts (
    id           BLOB PRIMARY KEY NOT NULL,
    org_id       BLOB NOT NULL REFERENCES orgs(id),
    webhook_id   BLOB NOT NULL REFERENCES webhooks(id),
    delivery_id  BLOB NOT NULL REFERENCES webhook_deliveries(id),
    event_id     BLOB NOT NULL,
    event_type   TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    at           TEXT NOT NULL,
    duration_ms  INTEGER NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    succeeded    BOOLEAN NOT NULL,
    -- When the next attempt is due (NULL: delivered, or given up).
    retry_at     TEXT
);
CREATE INDEX webhook_attempts_hook ON webhook_attempts (webhook_id, id);
