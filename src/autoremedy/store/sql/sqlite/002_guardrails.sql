-- Schema version 2: guardrails. Every verdict is kept on its run; pauses and the breaker are shared state;
-- escalations are an outbox written in the same transaction as the verdict or outcome that asks for them.

ALTER TABLE runs ADD COLUMN guardrail TEXT NOT NULL DEFAULT 'allowed';
ALTER TABLE runs ADD COLUMN counted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN not_before TEXT;
ALTER TABLE runs ADD COLUMN expires_at TEXT;
CREATE INDEX runs_rule_target ON runs (rule, target, created_at) WHERE counted = 1;
CREATE INDEX runs_counted ON runs (created_at) WHERE counted = 1;
CREATE INDEX runs_fingerprint_waiting ON runs (fingerprint) WHERE status IN ('delayed', 'deferred', 'awaiting_approval');
-- One active run per target, whatever replica or worker decided it.
CREATE UNIQUE INDEX runs_one_active_per_target ON runs (target)
    WHERE status IN ('planned', 'running', 'delayed', 'deferred', 'awaiting_approval');

CREATE TABLE pauses (
    scope TEXT PRIMARY KEY,  -- 'all' or a rule name
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);

CREATE TABLE breaker (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    open            INTEGER NOT NULL,
    opened_at       TEXT,
    last_attempt_at TEXT,
    closed_at       TEXT
);
INSERT INTO breaker (id, open) VALUES (1, 0);

CREATE TABLE escalations (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT,
    fingerprint TEXT NOT NULL,
    rule        TEXT NOT NULL,
    trigger     TEXT NOT NULL,  -- run_failed | breaker_open | approval_expired | ...
    detail      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
