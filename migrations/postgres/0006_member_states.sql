-- Two more access states: `cancelled` (a pending invitation withdrawn before it was accepted)
-- and `disabled` (access suspended, reversible), each with the time it happened.

ALTER TABLE members DROP CONSTRAINT members_access_check;
ALTER TABLE members ADD CONSTRAINT members_access_check
    CHECK (access IN ('invited', 'enrolled', 'removed', 'cancelled', 'disabled'));
ALTER TABLE members ADD COLUMN cancelled_at TIMESTAMPTZ;
ALTER TABLE members ADD COLUMN disabled_at TIMESTAMPTZ;
