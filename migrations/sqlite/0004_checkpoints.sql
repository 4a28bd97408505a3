-- Sources that read only changes after their first run (Microsoft Graph delta queries): where
-- the last applied run left off, and when the last full read was applied (a full read comes
-- round periodically to heal drift). A run records the checkpoint its read ended at and what it
-- covered; the source's checkpoint moves only when that run's plan is applied.

ALTER TABLE sync_sources ADD COLUMN checkpoint TEXT;
ALTER TABLE sync_sources ADD COLUMN full_at TEXT;
ALTER TABLE sync_runs ADD COLUMN checkpoint TEXT;
ALTER TABLE sync_runs ADD COLUMN coverage TEXT;
