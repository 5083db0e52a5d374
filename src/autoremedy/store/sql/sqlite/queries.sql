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
