-- Schema version 4: runs owned by a daemon instance with a heartbeat, so another can take over a dead one's runs;
-- events claimed with a time, so a dead claimer's events go back to the queue.

ALTER TABLE runs ADD COLUMN owner TEXT;
ALTER TABLE runs ADD COLUMN heartbeat_at TEXT;
ALTER TABLE runs ADD COLUMN takeovers INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_running ON runs (heartbeat_at) WHERE status = 'running';
ALTER TABLE events ADD COLUMN claimed_at TEXT;
ALTER TABLE events ADD COLUMN claimed_by TEXT;
CREATE INDEX events_processing ON events (claimed_at) WHERE state = 'processing';
CREATE INDEX events_received ON events (last_received_at);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX escalations_created ON escalations (created_at);
