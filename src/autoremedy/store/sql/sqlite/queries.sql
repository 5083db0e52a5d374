-- SQLite's fragments of the shared queries: none needed. One process owns the file and every write
-- transaction is exclusive (BEGIN IMMEDIATE), so there is no row another transaction could hold.

-- fragment: skip_locked

-- fragment: lock_row
