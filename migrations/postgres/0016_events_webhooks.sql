-- The events feed: one row per event, numbered per org in commit order. `event_counters`
-- holds each org's last number; taking the next one locks the org's counter row until the
-- transaction ends, so numbers are handed out in the order transactions commit and a reader
-- that continues after the last number it saw never misses an event.
CREATE TABLE event_counters (
    org_id    UUID PRIMARY KEY REFERENCES orgs(id),
    last_seq  BIGINT NOT NULL
);

CREATE TABLE events (
    org_id        UUID NOT NULL REFERENCES orgs(id),
    seq           BIGINT NOT NULL,
    id            UUID NOT NULL UNIQUE,
    event_type    TEXT NOT NULL,
    at            TIMESTAMPTZ NOT NULL,
    subject_kind  TEXT NOT NULL,
    subject_id    TEXT,
    -- The audit entry the event was derived from.
    audit_id      UUID,
    -- The event's `data` (JSON).
    data          TEXT NOT NULL,
    PRIMARY KEY (org_id, seq)
);

-- Webhook subscriptions. `secret` is the signing key (`whsec_…`): stored so deliveries can be
-- signed, like other upstream credentials; never returned after creation, never logged.
CREATE TABLE webhooks (
    id                    UUID PRIMARY KEY,
    org_id                UUID NOT NULL REFERENCES orgs(id),
    url                   TEXT NOT NULL,
    -- JSON array of event types (`*` for all, `member.*` for a family).
    event_types           TEXT NOT NULL,
    description           TEXT,
    secret                TEXT NOT NULL,
    -- After a rotation the old secret signs too, until `previous_secret_until`.
    previous_secret       TEXT,
    previous_secret_until TIMESTAMPTZ,
    enabled               BOOLEAN NOT NULL,
    consecutive_failures  BIGINT NOT NULL DEFAULT 0,
    disabled_at           TIMESTAMPTZ,
    disabled_reason       TEXT,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhooks_org ON webhooks (org_id, id);

-- One row per (subscription, event): the webhook outbox, written with the event.
CREATE TABLE webhook_deliveries (
    id             UUID PRIMARY KEY,
    org_id         UUID NOT NULL REFERENCES orgs(id),
    webhook_id     UUID NOT NULL REFERENCES webhooks(id),
    event_id       UUID NOT NULL,
    event_seq      BIGINT NOT NULL,
    event_type     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    available_at   TIMESTAMPTZ NOT NULL,
    attempts       BIGINT NOT NULL DEFAULT 0,
    claimed_until  TIMESTAMPTZ,
    delivered_at   TIMESTAMPTZ,
    failed_at      TIMESTAMPTZ,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (available_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;

-- The delivery log: one row per attempt.
CREATE TABLE webhook_attempts (
    id           UUID PRIMARY KEY,
    org_id       UUID NOT NULL REFERENCES orgs(id),
    webhook_id   UUID NOT NULL REFERENCES webhooks(id),
    delivery_id  UUID NOT NULL REFERENCES webhook_deliveries(id),
    event_id     UUID NOT NULL,
    event_type   TEXT NOT NULL,
    attempt      BIGINT NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    duration_ms  BIGINT NOT NULL,
    status_code  BIGINT,
    error        TEXT,
    succeeded    BOOLEAN NOT NULL,
    -- When the next attempt is due (NULL: delivered, or given up).
    retry_at     TIMESTAMPTZ
);
CREATE INDEX webhook_attempts_hook ON webhook_attempts (webhook_id, id);
