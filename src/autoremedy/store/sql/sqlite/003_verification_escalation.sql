-- Schema version 3: runs that wait for their alert to resolve, and the escalation outbox's deliveries.

-- A run waiting for its alert to resolve (an `alert.resolved` step) holds no worker slot but still owns its target.
ALTER TABLE runs ADD COLUMN wait_until TEXT;
DROP INDEX runs_one_active_per_target;
CREATE UNIQUE INDEX runs_one_active_per_target ON runs (target)
    WHERE status IN ('planned', 'running', 'delayed', 'deferred', 'awaiting_approval', 'waiting');
CREATE INDEX runs_waiting ON runs (fingerprint) WHERE status = 'waiting';

-- trigger: a person should look; resolve: close what the trigger opened (same dedup key).
ALTER TABLE escalations ADD COLUMN kind TEXT NOT NULL DEFAULT 'trigger';
ALTER TABLE escalations ADD COLUMN fanned_out INTEGER NOT NULL DEFAULT 0;
CREATE INDEX escalations_new ON escalations (id) WHERE fanned_out = 0;
CREATE INDEX escalations_alert ON escalations (fingerprint, rule, kind);

-- One row per escalation and channel: sent at most once, retried from here until it is.
CREATE TABLE escalation_deliveries (
    id              INTEGER PRIMARY KEY,
    escalation_id   INTEGER NOT NULL REFERENCES escalations (id),
    channel         TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending',  -- pending | sending | sent | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    locked_until    TEXT,
    last_error      TEXT,
    reference       TEXT,
    sent_at         TEXT,
    UNIQUE (escalation_id, channel)
);
CREATE INDEX deliveries_due ON escalation_deliveries (next_attempt_at) WHERE state IN ('pending', 'sending');
