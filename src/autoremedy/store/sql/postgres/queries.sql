-- PostgreSQL's own versions of the queries where the dialects differ (arrays, batches, notifications), and the
-- fragments the shared queries leave to the dialect.

-- name: finish_events
UPDATE events SET state = :state, processed_at = :now
WHERE id IN (SELECT jsonb_array_elements_text(:ids::jsonb)::bigint);

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

-- name: lease_commit
-- A transaction that only takes a lease (the decider's claim of events) commits without waiting for the WAL flush.
SET LOCAL synchronous_commit TO OFF;

-- name: notify_events
-- The payload names the instance that committed: its own listener ignores it (its decider is already awake).
SELECT pg_notify('autoremedy_events', :owner);

-- fragment: skip_locked
-- Claims skip rows another replica holds, so two replicas never claim the same event, run or delivery.
FOR UPDATE SKIP LOCKED

-- fragment: lock_row
-- Decisions serialise on the breaker row.
FOR UPDATE
