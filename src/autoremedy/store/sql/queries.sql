-- Named queries shared by every backend. A query starts at its `-- name:` line and ends before the next one.
-- Parameters are written :name (SQLite's style); the PostgreSQL backend turns them into $n. A backend may override
-- a query in its own folder (sql/<dialect>/queries.sql), e.g. to add FOR UPDATE SKIP LOCKED.

-- name: claim_events
-- The oldest pending events, up to :limit, for one decision batch (RETURNING's order is not guaranteed: the
-- caller sorts by id).
UPDATE events SET state = 'processing', claimed_at = :now, claimed_by = :owner
WHERE id IN (SELECT id FROM events WHERE state = 'pending' ORDER BY id LIMIT :limit /*@skip_locked*/)
RETURNING *;

-- name: finish_events
-- The events of a decision batch with one outcome: :ids is a JSON array of event ids, :state 'done' (runs were
-- decided) or 'no_rule_matched' (nothing to do: no audit entry of its own).
UPDATE events SET state = :state, processed_at = :now WHERE id IN (SELECT value FROM json_each(:ids));

-- name: requeue_failed_event
-- A decision failed but may succeed later: back to the queue, the failure counted, unless it has failed enough.
UPDATE events SET state = 'pending', claimed_by = NULL, decide_attempts = decide_attempts + 1, last_error = :error
WHERE id = :id AND state = 'processing' AND decide_attempts + 1 < :max_attempts
RETURNING id;

-- name: dead_letter_event
UPDATE events SET state = 'dead', claimed_by = NULL, decide_attempts = decide_attempts + 1, last_error = :error,
                  processed_at = :now
WHERE id = :id AND state = 'processing'
RETURNING id, decide_attempts;

-- name: oldest_pending_event
SELECT received_at FROM events WHERE state = 'pending' ORDER BY id LIMIT 1;

-- name: count_dead_events
SELECT count(*) AS n FROM events WHERE state = 'dead';

-- name: list_dead_events
SELECT id, fingerprint, status, labels, received_at, processed_at, decide_attempts, last_error FROM events
WHERE state = 'dead' ORDER BY id DESC LIMIT :limit;

-- name: requeue_processing_events
UPDATE events SET state = 'pending', claimed_by = NULL
WHERE state = 'processing' AND claimed_at < :stale_before;

-- name: count_pending_events
SELECT count(*) AS n FROM events WHERE state IN ('pending', 'processing');

-- name: get_event
SELECT * FROM events WHERE id = :id;

-- name: insert_step
INSERT INTO run_steps (run_id, idx, name, action, inputs, outcome)
VALUES (:run_id, :idx, :name, :action, :inputs, :outcome);

-- name: update_step
-- Fenced: only the run's current owner, in the epoch of its claim, may write its steps.
UPDATE run_steps SET attempts = :attempts, outcome = :outcome, error = :error, result = :result,
                     started_at = :started_at, finished_at = :finished_at
WHERE run_id = :run_id AND idx = :idx
  AND EXISTS (SELECT 1 FROM runs
              WHERE runs.id = :run_id AND runs.status = 'running' AND runs.owner = :owner AND runs.epoch = :epoch);

-- name: finish_run
UPDATE runs SET status = :status, reason = :reason, finished_at = :now
WHERE id = :id AND status = 'running' AND owner = :owner AND epoch = :epoch;

-- name: interrupt_running_runs
UPDATE runs SET status = 'interrupted', reason = :reason, finished_at = :now
WHERE status = 'running' AND coalesce(heartbeat_at, started_at) < :stale_before AND takeovers >= :max_takeovers
RETURNING id, fingerprint, rule, dry_run;

-- name: close_unfinished_steps
UPDATE run_steps SET outcome = CASE WHEN started_at IS NULL THEN 'not_run' ELSE 'interrupted' END
WHERE run_id = :run_id AND outcome = 'pending';

-- name: get_run
SELECT * FROM runs WHERE id = :id;

-- name: list_runs
SELECT * FROM runs WHERE (CAST(:status AS TEXT) IS NULL OR status = :status) ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: list_steps
SELECT * FROM run_steps WHERE run_id = :run_id ORDER BY idx;

-- name: insert_audit
INSERT INTO audit (at, kind, run_id, fingerprint, actor, message, data)
VALUES (:at, :kind, :run_id, :fingerprint, :actor, :message, :data);

-- name: list_audit
SELECT * FROM audit WHERE (CAST(:run_id AS TEXT) IS NULL OR run_id = :run_id) ORDER BY id DESC LIMIT :limit;

-- name: claim_due_runs
-- Up to :limit due runs in one statement (the run stage claims as many as it has free slots).
UPDATE runs SET status = 'running', started_at = coalesce(started_at, :now), owner = :owner,
                heartbeat_at = :now,
                takeovers = takeovers + CASE WHEN status = 'running' THEN 1 ELSE 0 END, epoch = epoch + 1
WHERE id IN (
    SELECT id FROM runs
    WHERE status = 'planned'
       OR (status IN ('delayed', 'deferred') AND not_before <= :now)
       OR (status = 'waiting' AND wait_until <= :now)
       OR (status = 'running' AND coalesce(heartbeat_at, started_at) < :stale_before
           AND coalesce(owner, '') <> :owner)  -- never a run the claimer itself still executes
    ORDER BY created_at, id LIMIT :limit
    /*@skip_locked*/
)
RETURNING id, takeovers, epoch;

-- name: insert_guarded_run
INSERT INTO runs (id, event_id, status, reason, rule, playbook, target, fingerprint, alert_status, dry_run,
                  created_at, finished_at, guardrail, counted, not_before, expires_at, mutating)
VALUES (:id, :event_id, :status, :reason, :rule, :playbook, :target, :fingerprint, :alert_status, :dry_run,
        :created_at, :finished_at, :guardrail, :counted, :not_before, :expires_at, :mutating);

-- name: paused_scope
SELECT scope FROM pauses WHERE scope IN ('all', :rule) ORDER BY scope = 'all' DESC LIMIT 1;

-- name: active_run_on_target
SELECT id FROM runs
WHERE target = :target AND status IN ('planned', 'running', 'delayed', 'deferred', 'awaiting_approval', 'waiting')
LIMIT 1;

-- name: counted_run_times
SELECT created_at FROM runs
WHERE rule = :rule AND target = :target AND counted = 1 AND created_at >= :since
ORDER BY created_at DESC;

-- name: count_counted_runs
-- What the global circuit breaker counts: runs that change something (a log-only playbook does not).
SELECT count(*) AS n FROM runs WHERE counted = 1 AND mutating = 1 AND created_at >= :since;

-- name: read_breaker
SELECT open, opened_at, last_attempt_at, closed_at FROM breaker WHERE id = 1;

-- name: lock_breaker
-- Every decision takes this row lock first: verdicts across replicas are made one at a time, on facts that
-- cannot change under them (cooldowns, budgets, the breaker's count). SQLite's write transaction is already
-- exclusive (its lock_row is empty).
SELECT open, opened_at, last_attempt_at, closed_at FROM breaker WHERE id = 1 /*@lock_row*/;

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
INSERT INTO escalations (run_id, fingerprint, rule, trigger, detail, created_at, kind)
VALUES (:run_id, :fingerprint, :rule, :trigger, :detail, :created_at, :kind);

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
WHERE status IN ('planned', 'running', 'delayed', 'deferred', 'awaiting_approval', 'waiting')
GROUP BY status;

-- name: suspend_run
UPDATE runs SET status = 'waiting', reason = :reason, wait_until = :wait_until
WHERE id = :id AND status = 'running' AND owner = :owner AND epoch = :epoch;

-- name: wake_waiting_runs
UPDATE runs SET status = 'planned' WHERE fingerprint = :fingerprint AND status = 'waiting' RETURNING id;

-- name: resolution_of_event
SELECT r.received_at FROM events f JOIN events r
  ON r.fingerprint = f.fingerprint AND r.starts_at = f.starts_at AND r.status = 'resolved'
WHERE f.id = :event_id;

-- name: open_escalated_rules
-- Rules with a trigger for this alert that no later resolve has closed (guardrail and approval notices excluded:
-- they are not about the alert's state).
SELECT e.rule, max(e.run_id) AS run_id FROM escalations e
WHERE e.fingerprint = :fingerprint AND e.kind = 'trigger'
  AND e.trigger IN ('run_failed', 'verification_failed', 'plan_failed', 'run_interrupted')
  AND (CAST(:rule AS TEXT) IS NULL OR e.rule = :rule)
  AND NOT EXISTS (SELECT 1 FROM escalations r
                  WHERE r.fingerprint = e.fingerprint AND r.rule = e.rule AND r.kind = 'resolve' AND r.id > e.id)
GROUP BY e.rule;

-- name: escalations_to_fan_out
SELECT * FROM escalations WHERE fanned_out = 0 ORDER BY id LIMIT :limit;

-- name: mark_fanned_out
UPDATE escalations SET fanned_out = 1 WHERE id = :id;

-- name: insert_delivery
INSERT INTO escalation_deliveries (escalation_id, channel, next_attempt_at) VALUES (:escalation_id, :channel, :now)
ON CONFLICT (escalation_id, channel) DO NOTHING;

-- name: trigger_channels
-- Where this alert's earlier triggers went: a resolve follows them.
SELECT DISTINCT d.channel FROM escalation_deliveries d JOIN escalations e ON e.id = d.escalation_id
WHERE e.fingerprint = :fingerprint AND e.rule = :rule AND e.kind = 'trigger' AND d.state IN ('sent', 'pending', 'sending');

-- name: claim_deliveries
UPDATE escalation_deliveries SET state = 'sending', locked_until = :locked_until, attempts = attempts + 1,
                                 unrecorded = CASE WHEN state = 'sending' THEN 1 ELSE 0 END
WHERE id IN (
    SELECT id FROM escalation_deliveries
    WHERE (state = 'pending' AND next_attempt_at <= :now) OR (state = 'sending' AND locked_until <= :now)
    ORDER BY next_attempt_at LIMIT :limit
    /*@skip_locked*/
)
RETURNING id, escalation_id, channel, attempts, unrecorded;

-- name: delivery_sent
UPDATE escalation_deliveries SET state = 'sent', reference = :reference, sent_at = :now, last_error = NULL,
                                 locked_until = NULL
WHERE id = :id;

-- name: delivery_retry
UPDATE escalation_deliveries SET state = 'pending', next_attempt_at = :next_attempt_at, last_error = :error,
                                 locked_until = NULL
WHERE id = :id;

-- name: delivery_failed
UPDATE escalation_deliveries SET state = 'failed', last_error = :error, locked_until = NULL WHERE id = :id;

-- name: thread_reference
SELECT d.reference FROM escalation_deliveries d JOIN escalations e ON e.id = d.escalation_id
WHERE e.fingerprint = :fingerprint AND e.rule = :rule AND e.kind = 'trigger' AND d.channel = :channel
  AND d.state = 'sent'
ORDER BY d.id DESC LIMIT 1;

-- name: get_escalation
SELECT * FROM escalations WHERE id = :id;

-- name: list_deliveries
SELECT d.*, e.trigger, e.kind, e.fingerprint, e.rule FROM escalation_deliveries d
JOIN escalations e ON e.id = d.escalation_id ORDER BY d.id DESC LIMIT :limit;

-- name: event_of_alert
SELECT * FROM events WHERE fingerprint = :fingerprint ORDER BY id DESC LIMIT 1;

-- name: wake_run
UPDATE runs SET status = 'planned' WHERE id = :id AND status = 'waiting';

-- name: heartbeat
-- The runs still ours: one this instance executes but that is missing here was taken over (its task is stopped).
UPDATE runs SET heartbeat_at = :now WHERE owner = :owner AND status = 'running' RETURNING id, epoch;

-- name: run_brief
SELECT id, status, fingerprint, rule, event_id FROM runs WHERE id = :id;

-- name: event_of_run
SELECT e.* FROM events e JOIN runs r ON r.event_id = e.id WHERE r.id = :id;

-- name: select_one
SELECT 1;

-- name: prune_steps
DELETE FROM run_steps WHERE run_id IN (SELECT id FROM runs WHERE created_at < :before AND finished_at IS NOT NULL);

-- name: prune_runs
DELETE FROM runs WHERE created_at < :before AND finished_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM escalations e WHERE e.run_id = runs.id AND e.created_at >= :before);

-- name: prune_deliveries
DELETE FROM escalation_deliveries
WHERE escalation_id IN (SELECT id FROM escalations WHERE created_at < :before) AND state IN ('sent', 'failed');

-- name: prune_escalations
DELETE FROM escalations WHERE created_at < :before
  AND NOT EXISTS (SELECT 1 FROM escalation_deliveries d WHERE d.escalation_id = escalations.id);

-- name: prune_events
DELETE FROM events WHERE last_received_at < :before AND state IN ('done', 'no_rule_matched', 'dead')
  AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.event_id = events.id);

-- name: prune_audit
DELETE FROM audit WHERE at < :before;

-- name: orphan_other_owners_runs
UPDATE runs SET heartbeat_at = :epoch WHERE status = 'running' AND coalesce(owner, '') <> :owner;

-- name: orphan_other_owners_events
UPDATE events SET claimed_at = :epoch WHERE state = 'processing' AND coalesce(claimed_by, '') <> :owner;

-- name: outbox_has_work
SELECT 1 AS found WHERE EXISTS (SELECT 1 FROM escalations WHERE fanned_out = 0)
   OR EXISTS (SELECT 1 FROM escalation_deliveries
              WHERE (state = 'pending' AND next_attempt_at <= :now) OR (state = 'sending' AND locked_until <= :now));

-- name: remember_slack_signature
INSERT INTO slack_requests (signature, at) VALUES (:signature, :at) ON CONFLICT (signature) DO NOTHING;

-- name: prune_slack_signatures
DELETE FROM slack_requests WHERE at < :before;

-- name: list_audit_of_fingerprint
SELECT * FROM audit
WHERE fingerprint = :fingerprint OR run_id IN (SELECT id FROM runs WHERE fingerprint = :fingerprint)
ORDER BY id DESC LIMIT :limit;

-- == autoremedy backtest: read-only reads of the stored alert history (store/history.py) ======================
-- What was recorded is read from runs joined to their events, so it does not depend on how audit rows or event
-- statuses record an alert that no rule matched.

-- name: history_events
SELECT id, fingerprint, status, starts_at, ends_at, labels, annotations, generator_url, receiver, external_url,
       received_at
FROM events WHERE received_at >= :since AND received_at < :until
ORDER BY received_at, id;

-- name: history_runs
SELECT r.event_id, r.rule, r.playbook, r.target, r.status, r.guardrail
FROM runs r JOIN events e ON e.id = r.event_id
WHERE e.received_at >= :since AND e.received_at < :until
ORDER BY r.event_id, r.created_at, r.id;
