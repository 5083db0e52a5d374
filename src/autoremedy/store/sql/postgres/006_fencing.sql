-- Schema version 6: fenced run ownership. Each claim of a run increments its epoch; the owner's step and outcome
-- writes carry (owner, epoch), so a writer that lost the run (taken over after a heartbeat gap) is refused.

ALTER TABLE runs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;

-- A delivery claimed again after its lease ran out while `sending` was never recorded (a crash mid-send): it may
-- have reached the channel, so the sender looks for it there (by its client-side id) before sending it again.
ALTER TABLE escalation_deliveries ADD COLUMN unrecorded INTEGER NOT NULL DEFAULT 0;
