-- Schema version 6: fenced run ownership. Each claim of a run increments its epoch; the owner's step and outcome
-- writes carry (owner, epoch), so a writer that lost the run (taken over after a heartbeat gap) is refused.

ALTER TABLE runs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
