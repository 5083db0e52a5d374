-- Schema version 1: alert events (the durable queue), runs, their steps, and the audit log.
-- Times are ISO-8601 UTC text; JSON columns hold objects serialised by the application.

CREATE TABLE events (
    id               INTEGER PRIMARY KEY,
    fingerprint      TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    starts_at        TEXT    NOT NULL,
    ends_at          TEXT,
    labels           TEXT    NOT NULL,
    annotations      TEXT    NOT NULL,
    generator_url    TEXT    NOT NULL,
    receiver         TEXT    NOT NULL,
    external_url     TEXT    NOT NULL,
    group_key        TEXT    NOT NULL,
    received_at      TEXT    NOT NULL,
    last_received_at TEXT    NOT NULL,
    deliveries       INTEGER NOT NULL DEFAULT 1,
    state            TEXT    NOT NULL DEFAULT 'pending',  -- pending | processing | done
    processed_at     TEXT,
    UNIQUE (fingerprint, status, starts_at)
);
CREATE INDEX events_pending ON events (id) WHERE state = 'pending';

CREATE TABLE runs (
    id           TEXT    PRIMARY KEY,
    event_id     INTEGER NOT NULL REFERENCES events (id),
    status       TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    rule         TEXT    NOT NULL,
    playbook     TEXT    NOT NULL,
    target       TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    alert_status TEXT    NOT NULL,
    dry_run      INTEGER NOT NULL,
    created_at   TEXT    NOT NULL,
    started_at   TEXT,
    finished_at  TEXT
);
CREATE INDEX runs_status ON runs (status, created_at);
CREATE INDEX runs_created ON runs (created_at);

CREATE TABLE run_steps (
    run_id      TEXT    NOT NULL REFERENCES runs (id),
    idx         INTEGER NOT NULL,
    name        TEXT,
    action      TEXT    NOT NULL,
    inputs      TEXT    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    outcome     TEXT    NOT NULL DEFAULT 'pending',
    error       TEXT,
    result      TEXT,
    started_at  TEXT,
    finished_at TEXT,
    PRIMARY KEY (run_id, idx)
);

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    run_id      TEXT,
    fingerprint TEXT,
    actor       TEXT NOT NULL,
    message     TEXT NOT NULL,
    data        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_run ON audit (run_id);
