-- Named queries for the SQLite store. A query starts at its `-- name:` line and ends before the next one.

-- name: insert_event
INSERT INTO events (fingerprint, status, starts_at, ends_at, labels, annotations, generator_url, receiver,
                    external_url, group_key, received_at, last_received_at)
VALUES (:fingerprint, :status, :starts_at, :ends_at, :labels, :annotations, :generator_url, :receiver,
        :external_url, :group_key, :now, :now)
ON CONFLICT (fingerprint, status, starts_at)
DO UPDATE SET deliveries = deliveries + 1, last_received_at = excluded.last_received_at
RETURNING id, deliveries;

-- name: claim_event
UPDATE events SET state = 'processing'
WHERE id = (SELECT id FROM events WHERE state = 'pending' ORDER BY id LIMIT 1)
RETURNING *;

-- name: finish_event
UPDATE events SET state = 'done', processed_at = :now WHERE id = :id;

-- name: requeue_processing_events
UPDATE events SET state = 'pending' WHERE state = 'processing';

-- name: count_pending_events
SELECT count(*) FROM events WHERE state IN ('pending', 'processing');

-- name: get_event
SELECT * FROM events WHERE id = :id;

-- name: insert_step
INSERT INTO run_steps (run_id, idx, name, action, inputs, outcome)
VALUES (:run_id, :idx, :name, :action, :inputs, :outcome);

-- name: update_step
UPDATE run_steps SET attempts = :attempts, outcome = :outcome, error = :error, result = :result,
                     started_at = :started_at, finished_at = :finished_at
WHERE run_id = :run_id AND idx = :idx;

-- name: finish_run
UPDATE runs SET status = :status, reason = :reason, finished_at = :now WHERE id = :id AND status = 'running';

-- name: interrupt_running_runs
UPDATE runs SET status = 'interrupted', reason = :reason, finished_at = :now
WHERE status = 'running'
RETURNING id, fingerprint;

-- name: close_unfinished_steps
UPDATE run_steps SET outcome = CASE WHEN started_at IS NULL THEN 'not_run' ELSE 'interrupted' END
WHERE run_id = :run_id AND outcome = 'pending';

-- name: get_run
SELECT * FROM runs WHERE id = :id;

-- name: list_runs
SELECT * FROM runs WHERE (:status IS NULL OR status = :status) ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: list_steps
SELECT * FROM run_steps WHERE run_id = :run_id ORDER BY idx;

-- name: insert_audit
INSERT INTO audit (at, kind, run_id, fingerprint, actor, message, data)
VALUES (:at, :kind, :run_id, :fingerprint, :actor, :message, :data);

-- name: list_audit
SELECT * FROM audit WHERE (:run_id IS NULL OR run_id = :run_id) ORDER BY id DESC LIMIT :limit;

-- name: claim_due_run
UPDATE runs SET status = 'running', started_at = :now
WHERE id = (
    SELECT id FROM runs
    WHERE status = 'planned' OR (status IN ('delayed', 'deferred') AND not_before <= :now)
    ORDER BY created_at, id LIMIT 1
)
RETURNING id;

-- name: insert_guarded_run
INSERT INTO runs (id, event_id, status, reason, rule, playbook, target, fingerprint, alert_status, dry_run,
                  created_at, finished_at, guardrail, counted, not_before, expires_at)
VALUES (:id, :event_id, :status, :reason, :rule, :playbook, :target, :fingerprint, :alert_status, :dry_run,
        :created_at, :finished_at, :guardrail, :counted, :not_before, :expires_at);

-- name: paused_scope
SELECT scope FROM pauses WHERE scope IN ('all', :rule) ORDER BY scope = 'all' DESC LIMIT 1;

-- name: active_run_on_target
SELECT id FROM runs
WHERE target = :target AND status IN ('planned', 'running', 'delayed', 'deferred', 'awaiting_approval')
LIMIT 1;

-- name: counted_run_times
SELECT created_at FROM runs
WHERE rule = :rule AND target = :target AND counted = 1 AND created_at >= :since
ORDER BY created_at DESC;

-- name: count_counted_runs
SELECT count(*) FROM runs WHERE counted = 1 AND created_at >= :since;

-- name: read_breaker
SELECT open, opened_at, last_attempt_at, closed_at FROM breaker WHERE id = 1;

-- name: write_breaker
UPDATE breaker SET open = :open, opened_at = :opened_at, last_attempt_at = :last_attempt_at, closed_at = :closed_at
WHERE id = 1;

-- name: waiting_runs_of_fingerprint
SELECT id FROM runs WHERE fingerprint = :fingerprint AND status IN ('delayed', 'deferred', 'awaiting_approval');

-- name: skip_waiting_run
UPDATE runs SET status = 'skipped', guardrail = :guardrail, reason = :reason, finished_at = :now
WHERE id = :id AND status IN ('delayed', 'deferred', 'awaiting_approval')
RETURNING id, fingerprint, rule;

-- name: approve_run
UPDATE runs SET status = 'planned', reason = :reason, expires_at = NULL
WHERE id = :id AND status = 'awaiting_approval'
RETURNING id, fingerprint;

-- name: expired_approvals
SELECT id FROM runs WHERE status = 'awaiting_approval' AND expires_at <= :now;

-- name: insert_escalation
INSERT INTO escalations (run_id, fingerprint, rule, trigger, detail, created_at)
VALUES (:run_id, :fingerprint, :rule, :trigger, :detail, :created_at);

-- name: list_escalations
SELECT * FROM escalations ORDER BY id DESC LIMIT :limit;

-- name: set_pause
INSERT INTO pauses (scope, actor, reason, at) VALUES (:scope, :actor, :reason, :at)
ON CONFLICT (scope) DO UPDATE SET actor = excluded.actor, reason = excluded.reason, at = excluded.at;

-- name: clear_pause
DELETE FROM pauses WHERE scope = :scope;

-- name: list_pauses
SELECT * FROM pauses ORDER BY scope;

-- name: count_runs_by_status
SELECT status, count(*) AS n FROM runs
WHERE status IN ('planned', 'running', 'delayed', 'deferred', 'awaiting_approval')
GROUP BY status;
