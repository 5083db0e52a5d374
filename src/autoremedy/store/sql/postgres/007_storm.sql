-- Schema version 7: events decided in batches. An event's decision failures are counted on its row, so one that
-- keeps failing is dead-lettered (state 'dead') instead of retried forever; an unmatched alert is marked
-- 'no_rule_matched' on its row (no audit entry of its own). A run records whether its playbook changes anything:
-- only those count towards (and are blocked by) the global circuit breaker.

ALTER TABLE events ADD COLUMN decide_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN last_error TEXT;
CREATE INDEX events_dead ON events (id) WHERE state = 'dead';
ALTER TABLE runs ADD COLUMN mutating INTEGER NOT NULL DEFAULT 1;
DROP INDEX runs_counted;
CREATE INDEX runs_counted ON runs (created_at) WHERE counted = 1 AND mutating = 1;
