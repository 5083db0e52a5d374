-- SQLite's fragments of the shared queries: none needed. One process owns the file and every write
-- transaction is exclusive (BEGIN IMMEDIATE), so there is no row another transaction could hold.

-- fragment: skip_locked

-- fragment: lock_row

-- name: insert_events
-- Up to 64 events of a group commit in one statement: the row `(?, ...)` is repeated once per event
-- (store/sqlite.py), duplicates within the batch folded by the caller (`deliveries` counts them). The key comes
-- back with each row, since SQLite does not promise RETURNING's order.
INSERT INTO events (fingerprint, status, starts_at, ends_at, labels, annotations, generator_url, receiver,
                    external_url, group_key, received_at, last_received_at, deliveries)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (fingerprint, status, starts_at)
DO UPDATE SET deliveries = deliveries + excluded.deliveries, last_received_at = excluded.last_received_at
RETURNING id, deliveries, fingerprint, status, starts_at;

-- name: claim_due_runs
-- As the shared query, with each kind of due run taken from its index up to :limit before they are merged: an OR
-- of the four made SQLite gather and sort every planned run for each claim (a storm in which every alert acts
-- leaves thousands planned, and each claim took the worker's slots' worth of them).
UPDATE runs SET status = 'running', started_at = coalesce(started_at, :now), owner = :owner,
                heartbeat_at = :now,
                takeovers = takeovers + CASE WHEN status = 'running' THEN 1 ELSE 0 END, epoch = epoch + 1
WHERE id IN (
    SELECT id FROM (
        SELECT * FROM (SELECT id, created_at FROM runs WHERE status = 'planned' ORDER BY created_at, id LIMIT :limit)
        UNION ALL
        SELECT * FROM (SELECT id, created_at FROM runs WHERE status IN ('delayed', 'deferred') AND not_before <= :now
                       ORDER BY created_at, id LIMIT :limit)
        UNION ALL
        SELECT * FROM (SELECT id, created_at FROM runs WHERE status = 'waiting' AND wait_until <= :now
                       ORDER BY created_at, id LIMIT :limit)
        UNION ALL
        SELECT * FROM (SELECT id, created_at FROM runs
                       WHERE status = 'running' AND coalesce(heartbeat_at, started_at) < :stale_before
                         AND coalesce(owner, '') <> :owner  -- never a run the claimer itself still executes
                       ORDER BY created_at, id LIMIT :limit)
    )
    ORDER BY created_at, id LIMIT :limit
)
RETURNING id, takeovers, epoch;
