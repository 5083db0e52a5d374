"""The PostgreSQL store, for several replicas on one database (asyncpg).

Replicas share the work through the database alone: claims skip rows another replica holds (`FOR UPDATE SKIP
LOCKED`), decisions serialise on the breaker row, one active run per target is a unique index, and a replica's
runs carry its heartbeat so another takes them over when it dies. A commit NOTIFYs the others, so they wake at
once instead of at their next poll. A lost connection is StoreUnavailable: the webhook answers 503 and the
worker retries, and the pool reconnects by itself when the database is back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg

from autoremedy.models.events import AlertEvent, NewEvent
from autoremedy.store.base import InsertOutcome, StoreDataError, StoreUnavailable
from autoremedy.store.history import History, history_of
from autoremedy.store.migrations import pending, renumberings
from autoremedy.store.queries import load_queries, positional
from autoremedy.store.rows import event_from_row, event_key, fold_duplicates, labels_json
from autoremedy.store.sqlstore import SqlStore
from autoremedy.store.tx import Row

Q = {name: positional(sql) for name, sql in load_queries("postgres").items()}
_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError, ConnectionError)
# The data itself is refused (class 22: NUL bytes, bad encodings, out-of-range values; class 23: constraints; 54000:
# an index row too large for a 9,000-character label): retrying the same write can never succeed.
_DATA_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, asyncpg.ProgramLimitExceededError)
MIGRATION_LOCK = 720_461_001  # pg_advisory_xact_lock key: one replica migrates, the others wait
CHANNEL = "autoremedy_events"


def _args(query: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    sql, names = Q[query]
    return sql, [params.get(name) for name in names]


class PostgresTx:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def rows(self, query: str, **params: Any) -> list[Row]:
        sql, args = _args(query, params)
        found: list[Row] = await self._connection.fetch(sql, *args)
        return found

    async def row(self, query: str, **params: Any) -> Row | None:
        sql, args = _args(query, params)
        found: Row | None = await self._connection.fetchrow(sql, *args)
        return found

    async def run(self, query: str, **params: Any) -> int:
        sql, args = _args(query, params)
        status: str = await self._connection.execute(sql, *args)
        count = status.rsplit(" ", 1)[-1]  # "UPDATE 3", "INSERT 0 1", "SELECT 1"
        return int(count) if count.isdigit() else 0

    async def run_many(self, query: str, params: Sequence[Mapping[str, Any]]) -> None:
        if not params:
            return
        sql, names = Q[query]
        await self._connection.executemany(sql, [[p.get(name) for name in names] for p in params])


class PostgresStore(SqlStore):
    def __init__(self, dsn: str, *, pool_size: int = 10, takeover_after: timedelta = timedelta(seconds=30)) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self.owner = f"pg-{uuid4().hex[:12]}"
        self.takeover_after = takeover_after
        self.on_notify: Callable[[], None] = lambda: None
        """Called when another replica committed new events."""

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=1, max_size=self._pool_size, timeout=10, command_timeout=30, reset=_keep_session
            )
        except _ERRORS as exc:
            raise StoreUnavailable(f"postgresql: {type(exc).__name__}: {exc}") from exc
        async with self._transaction() as connection:
            await _migrate(connection)
        await self.listen()

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def listen(self) -> None:
        """(Re)start listening for other replicas' commits; without it, polling still finds the work."""
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            self._listener = await asyncpg.connect(self._dsn, timeout=5)
            await self._listener.add_listener(CHANNEL, self._notified)
        except _ERRORS:
            self._listener = None

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        if payload != self.owner:  # this instance's own commits already woke its decider
            self.on_notify()

    # -- plumbing ---------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise StoreUnavailable("store is closed")
        try:
            async with self._pool.acquire(timeout=10) as connection, connection.transaction():
                yield connection
        except _DATA_ERRORS as exc:
            raise StoreDataError(f"postgresql: {type(exc).__name__}: {exc}") from exc
        except _ERRORS as exc:
            raise StoreUnavailable(f"postgresql: {type(exc).__name__}: {exc}") from exc

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[PostgresTx]:
        async with self._transaction() as connection:
            yield PostgresTx(connection)

    _read = _write

    # -- the decider's claim --------------------------------------------------------------------------------------

    async def claim_events(self, *, limit: int, now: datetime) -> list[AlertEvent]:
        """As every store claims them, except that the commit does not wait for the WAL flush: a claim is a lease
        (a dead instance's claims are requeued), the decision's commit that follows flushes it too, and a claim
        that a server crash loses leaves its events pending, to be claimed again. One fsync less per batch."""
        async with self._transaction() as connection:
            await connection.execute(Q["lease_commit"][0])
            rows = await PostgresTx(connection).rows("claim_events", owner=self.owner, now=now, limit=limit)
        return sorted((event_from_row(row) for row in rows), key=lambda event: event.id)

    # -- the webhook's hot path -------------------------------------------------------------------------------

    async def insert_events(self, events: Sequence[NewEvent], *, now: datetime) -> list[InsertOutcome]:
        keys, counts = fold_duplicates(events)
        columns = _columns([events[index] for index in keys.values()], [counts[key] for key in keys])
        async with self._transaction() as connection:
            sql, args = _args("insert_events_batch", {"now": now, **columns})
            rows = await connection.fetch(sql, *args)
            if any(row["inserted"] for row in rows):
                notify, owner = _args("notify_events", {"owner": self.owner})
                await connection.execute(notify, *owner)
        stored = {(r["fingerprint"], r["status"], r["starts_at"]): (int(r["id"]), bool(r["inserted"])) for r in rows}
        outcomes, seen = [], set()
        for event in events:
            key = event_key(event)
            event_id, inserted = stored[key]
            outcomes.append(InsertOutcome(event_id=event_id, duplicate=key in seen or not inserted))
            seen.add(key)
        return outcomes


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """What a connection going back to the pool needs beyond asyncpg's own rollback of an open transaction:
    nothing. The store sets no session state (no SET, LISTEN, session advisory lock or cursor outside a
    transaction: the listener has a connection of its own), and asyncpg's default reset query (advisory unlock,
    CLOSE ALL, UNLISTEN *, RESET ALL) is a transaction of its own after every transaction: it was half of all
    commits (docs/benchmarks.md)."""


def _columns(events: list[NewEvent], counts: list[int]) -> dict[str, list[Any]]:
    return {
        "fingerprints": [e.fingerprint for e in events],
        "statuses": [e.status for e in events],
        "starts": [e.starts_at for e in events],
        "ends": [e.ends_at for e in events],
        "labels": [labels_json(e.labels) for e in events],
        "annotations": [labels_json(e.annotations) for e in events],
        "generator_urls": [e.generator_url for e in events],
        "receivers": [e.receiver for e in events],
        "external_urls": [e.external_url for e in events],
        "group_keys": [e.group_key for e in events],
        "counts": counts,
    }


async def _migrate(connection: asyncpg.Connection) -> None:
    await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
    await connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TIMESTAMPTZ)"
    )
    recorded = [
        (row["version"], row["name"]) for row in await connection.fetch("SELECT version, name FROM schema_migrations")
    ]
    for move in renumberings("postgres", recorded):
        await connection.execute(
            "UPDATE schema_migrations SET version = $1, name = $2 WHERE version = $3",
            move.new_version,
            move.new_name,
            move.old_version,
        )
    applied = [row["version"] for row in await connection.fetch("SELECT version FROM schema_migrations")]
    for migration in pending("postgres", applied):
        await connection.execute(migration.sql)
        await connection.execute(
            "INSERT INTO schema_migrations VALUES ($1, $2, now())", migration.version, migration.name
        )


# -- the history, read-only, for `autoremedy backtest` ---------------------------------------------------


async def read_postgres_history(dsn: str, *, events_since: datetime, runs_since: datetime, until: datetime) -> History:
    queries = load_queries("postgres")
    events_sql, _ = positional(queries["history_events"])
    runs_sql, _ = positional(queries["history_runs"])
    try:
        connection = await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise StoreUnavailable(f"postgresql: {type(exc).__name__}: {exc}") from exc
    try:
        async with connection.transaction(readonly=True, isolation="repeatable_read"):
            events = await connection.fetch(events_sql, events_since, until)
            runs = await connection.fetch(runs_sql, runs_since, until)
    except (OSError, asyncpg.PostgresError) as exc:
        raise StoreUnavailable(f"postgresql: {type(exc).__name__}: {exc}") from exc
    finally:
        await connection.close()
    return history_of(events, runs)
