-- Schema version 8: web console sign-ins, shared by every replica. A session is looked up by the SHA-256 of its
-- cookie value, so a copy of the database does not hand out live sessions; the CSRF token is per session. Expired
-- rows are pruned on sign-in.

CREATE TABLE console_sessions (
    key_hash   TEXT        PRIMARY KEY,
    principal  TEXT        NOT NULL,
    scopes     TEXT        NOT NULL,
    csrf_token TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
