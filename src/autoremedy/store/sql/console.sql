-- Named queries of the web console (sessions and the pages' reads), shared by every backend; same rules as
-- queries.sql.

-- name: insert_console_session
INSERT INTO console_sessions (key_hash, principal, scopes, csrf_token, created_at, expires_at)
VALUES (:key_hash, :principal, :scopes, :csrf_token, :created_at, :expires_at);

-- name: get_console_session
SELECT * FROM console_sessions WHERE key_hash = :key_hash AND expires_at > :now;

-- name: delete_console_session
DELETE FROM console_sessions WHERE key_hash = :key_hash;

-- name: prune_console_sessions
DELETE FROM console_sessions WHERE expires_at <= :now;

-- name: search_runs
SELECT * FROM runs
WHERE (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:rule AS TEXT) IS NULL OR rule = :rule)
  AND (CAST(:target AS TEXT) IS NULL OR target = :target)
ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: steps_of_searched_runs
SELECT * FROM run_steps WHERE run_id IN (
    SELECT id FROM runs
    WHERE (CAST(:status AS TEXT) IS NULL OR status = :status)
      AND (CAST(:rule AS TEXT) IS NULL OR rule = :rule)
      AND (CAST(:target AS TEXT) IS NULL OR target = :target)
    ORDER BY created_at DESC, id DESC LIMIT :limit)
ORDER BY run_id, idx;

-- name: count_runs_created_since
SELECT status, count(*) AS n FROM runs WHERE created_at >= :since GROUP BY status;

-- name: recent_events
SELECT * FROM events ORDER BY id DESC LIMIT :limit;

-- name: runs_of_recent_events
SELECT * FROM runs WHERE event_id IN (SELECT id FROM events ORDER BY id DESC LIMIT :limit)
ORDER BY created_at, id;

-- name: runs_holding_targets
SELECT * FROM runs WHERE counted = 1 AND created_at >= :since ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: escalations_of_run
SELECT e.id, e.trigger, e.kind, e.detail, e.created_at, d.channel, d.state, d.attempts, d.last_error, d.sent_at
FROM escalations e LEFT JOIN escalation_deliveries d ON d.escalation_id = e.id
WHERE e.run_id = :run_id ORDER BY e.id, d.channel;
