-- PostgreSQL's versions of queries where it needs its own: claims skip rows other replicas hold
-- (FOR UPDATE SKIP LOCKED), decisions serialise on the breaker row, and events are inserted a batch at a time.

-- name: claim_events
UPDATE events SET state = 'processing', claimed_at = :now, claimed_by = :owner
WHERE id IN (SELECT id FROM events WHERE state = 'pending' ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
RETURNING *;

-- name: claim_due_run
UPDATE runs SET status = 'running', started_at = coalesce(started_at, :now), owner = :owner,
                heartbeat_at = :now,
                takeovers = takeovers + CASE WHEN status = 'running' THEN 1 ELSE 0 END, epoch = epoch + 1
WHERE id = (
    SELECT id FROM runs
    WHERE status = 'planned'
       OR (status IN ('delayed', 'deferred') AND not_before <= :now)
       OR (status = 'waiting' AND wait_until <= :now)
       OR (status = 'running' AND coalesce(heartbeat_at, started_at) < :stale_before
           AND coalesce(owner, '') <> :owner)  -- never a run the claimer itself still executes
    ORDER BY created_at, id LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING id, takeovers, epoch;

-- name: claim_deliveries
UPDATE escalation_deliveries SET state = 'sending', locked_until = :locked_until, attempts = attempts + 1,
                                 unrecorded = CASE WHEN state = 'sending' THEN 1 ELSE 0 END
WHERE id IN (
    SELECT id FROM escalation_deliveries
    WHERE (state = 'pending' AND next_attempt_at <= :now) OR (state = 'sending' AND locked_until <= :now)
    ORDER BY next_attempt_at LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
RETURNING id, escalation_id, channel, attempts, unrecorded;

-- name: finish_events
UPDATE events SET state = :state, processed_at = :now
WHERE id IN (SELECT jsonb_array_elements_text(:ids::jsonb)::bigint);

-- name: lock_breaker
-- Every decision takes this row lock first: verdicts across replicas are made one at a time, on facts that
-- cannot change under them (cooldowns, budgets, the breaker's count).
SELECT open, opened_at, last_attempt_at, closed_at FROM breaker WHERE id = 1 FOR UPDATE;

-- name: insert_events_batch
-- A batch from the group commit; duplicates within it are folded by the caller (`n` deliveries per key).
INSERT INTO events (fingerprint, status, starts_at, ends_at, labels, annotations, generator_url, receiver,
                    external_url, group_key, received_at, last_received_at, deliveries)
SELECT u.f, u.s, u.st, u.e, u.l, u.a, u.g, u.r, u.x, u.k, :now, :now, u.n
FROM unnest(:fingerprints::text[], :statuses::text[], :starts::text[], :ends::text[], :labels::text[],
            :annotations::text[], :generator_urls::text[], :receivers::text[], :external_urls::text[],
            :group_keys::text[], :counts::int[]) AS u(f, s, st, e, l, a, g, r, x, k, n)
ON CONFLICT (fingerprint, status, starts_at)
DO UPDATE SET deliveries = events.deliveries + excluded.deliveries, last_received_at = excluded.last_received_at
RETURNING id, fingerprint, status, starts_at, (xmax = 0) AS inserted;

-- name: notify_events
SELECT pg_notify('autoremedy_events', '');
