-- Schema version 4: SQLite's changes 001-004 in one step (PostgreSQL support came after them), so a version
-- number means the same schema on both backends. The same tables and columns, with PostgreSQL types.
-- Databases created before the chains shared numbers recorded this file as version 1: see store/migrations.py.
-- Times are timestamptz; JSON columns are text holding what the application serialised.

CREATE TABLE events (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint      TEXT        NOT NULL,
    status           TEXT        NOT NULL,
    starts_at        TEXT        NOT NULL,
    ends_at          TEXT,
    labels           TEXT        NOT NULL,
    annotations      TEXT        NOT NULL,
    generator_url    TEXT        NOT NULL,
    receiver         TEXT        NOT NULL,
    external_url     TEXT        NOT NULL,
    group_key        TEXT        NOT NULL,
    received_at      TIMESTAMPTZ NOT NULL,
    last_received_at TIMESTAMPTZ NOT NULL,
    deliveries       INTEGER     NOT NULL DEFAULT 1,
    state            TEXT        NOT NULL DEFAULT 'pending',
    processed_at     TIMESTAMPTZ,
    claimed_at       TIMESTAMPTZ,
    claimed_by       TEXT,
    UNIQUE (fingerprint, status, starts_at)
);
CREATE INDEX events_pending ON events (id) WHERE state = 'pending';
CREATE INDEX events_processing ON events (claimed_at) WHERE state = 'processing';
CREATE INDEX events_received ON events (last_received_at);

CREATE TABLE runs (
    id           TEXT        PRIMARY KEY,
    event_id     BIGINT      NOT NULL REFERENCES events (id),
    status       TEXT        NOT NULL,
    reason       TEXT        NOT NULL,
    rule         TEXT        NOT NULL,
    playbook     TEXT        NOT NULL,
    target       TEXT        NOT NULL,
    fingerprint  TEXT        NOT NULL,
    alert_status TEXT        NOT NULL,
    dry_run      INTEGER     NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    guardrail    TEXT        NOT NULL DEFAULT 'allowed',
    counted      INTEGER     NOT NULL DEFAULT 0,
    not_before   TIMESTAMPTZ,
    expires_at   TIMESTAMPTZ,
    wait_until   TIMESTAMPTZ,
    owner        TEXT,
    heartbeat_at TIMESTAMPTZ,
    takeovers    INTEGER     NOT NULL DEFAULT 0
);
CREATE INDEX runs_status ON runs (status, created_at);
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_rule_target ON runs (rule, target, created_at) WHERE counted = 1;
CREATE INDEX runs_counted ON runs (created_at) WHERE counted = 1;
CREATE INDEX runs_fingerprint_waiting ON runs (fingerprint) WHERE status IN ('delayed', 'deferred', 'awaiting_approval');
CREATE INDEX runs_waiting ON runs (fingerprint) WHERE status = 'waiting';
CREATE INDEX runs_running ON runs (heartbeat_at) WHERE status = 'running';
-- One active run per target, whatever replica decided it.
CREATE UNIQUE INDEX runs_one_active_per_target ON runs (target)
    WHERE status IN ('planned', 'running', 'delayed', 'deferred', 'awaiting_approval', 'waiting');

CREATE TABLE run_steps (
    run_id      TEXT        NOT NULL REFERENCES runs (id),
    idx         INTEGER     NOT NULL,
    name        TEXT,
    action      TEXT        NOT NULL,
    inputs      TEXT        NOT NULL,
    attempts    INTEGER     NOT NULL DEFAULT 0,
    outcome     TEXT        NOT NULL DEFAULT 'pending',
    error       TEXT,
    result      TEXT,
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    PRIMARY KEY (run_id, idx)
);

CREATE TABLE audit (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    kind        TEXT        NOT NULL,
    run_id      TEXT,
    fingerprint TEXT,
    actor       TEXT        NOT NULL,
    message     TEXT        NOT NULL,
    data        TEXT        NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_run ON audit (run_id);
CREATE INDEX audit_at ON audit (at);

CREATE TABLE pauses (
    scope  TEXT        PRIMARY KEY,
    actor  TEXT        NOT NULL,
    reason TEXT        NOT NULL,
    at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE breaker (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    open            INTEGER NOT NULL,
    opened_at       TIMESTAMPTZ,
    last_attempt_at TIMESTAMPTZ,
    closed_at       TIMESTAMPTZ
);
INSERT INTO breaker (id, open) VALUES (1, 0);

CREATE TABLE escalations (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      TEXT,
    fingerprint TEXT        NOT NULL,
    rule        TEXT        NOT NULL,
    trigger     TEXT        NOT NULL,
    detail      TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    kind        TEXT        NOT NULL DEFAULT 'trigger',
    fanned_out  INTEGER     NOT NULL DEFAULT 0
);
CREATE INDEX escalations_new ON escalations (id) WHERE fanned_out = 0;
CREATE INDEX escalations_alert ON escalations (fingerprint, rule, kind);
CREATE INDEX escalations_created ON escalations (created_at);

CREATE TABLE escalation_deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    escalation_id   BIGINT      NOT NULL REFERENCES escalations (id),
    channel         TEXT        NOT NULL,
    state           TEXT        NOT NULL DEFAULT 'pending',
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    locked_until    TIMESTAMPTZ,
    last_error      TEXT,
    reference       TEXT,
    sent_at         TIMESTAMPTZ,
    UNIQUE (escalation_id, channel)
);
CREATE INDEX deliveries_due ON escalation_deliveries (next_attempt_at) WHERE state IN ('pending', 'sending');
