"""The embedded SQLite store (WAL): zero set-up, one file, one writer.

Writes run on a dedicated writer thread and connection, reads (API, CLI) on another, so a long commit never blocks
a status query. A transaction holds an asyncio lock for its whole life, so no other coroutine's statements can
join it. The webhook's hot path (`insert_events`) runs as one function on the writer thread: one thread hop and one
commit for a whole group of webhooks. `synchronous=NORMAL` in WAL mode loses nothing on a process crash (kill -9);
`FULL` also survives power loss.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

from autoremedy.models.events import NewEvent
from autoremedy.store.base import InsertOutcome, StoreDataError, StoreUnavailable
from autoremedy.store.history import History, history_of
from autoremedy.store.migrations import pending, renumberings
from autoremedy.store.queries import load_queries
from autoremedy.store.rows import EventKey, event_key, fold_duplicates, labels_json
from autoremedy.store.sqlstore import SqlStore
from autoremedy.store.tx import Row, Tx
from autoremedy.store.writelock import WriteLock

T = TypeVar("T")
Q = load_queries("sqlite")
# The data itself is refused (a constraint, a value SQLite cannot bind): the same write can never succeed. Locks,
# a full disk or I/O errors (OperationalError) pass with time: those are StoreUnavailable.
_DATA_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.ProgrammingError,
    TypeError,
    ValueError,
    OverflowError,
)


WAL_CHECKPOINT_PAGES = 10_000
WAL_SIZE_LIMIT = 64 * 1024 * 1024


class SQLiteTx:
    def __init__(self, store: SQLiteStore, pool: ThreadPoolExecutor, db: sqlite3.Connection) -> None:
        self._store, self._pool, self._db = store, pool, db

    async def rows(self, query: str, **params: Any) -> list[Row]:
        sql, values = Q[query], _values(params)
        return await self._store.on(self._pool, lambda: self._db.execute(sql, values).fetchall())

    async def row(self, query: str, **params: Any) -> Row | None:
        sql, values = Q[query], _values(params)
        found: Row | None = await self._store.on(self._pool, lambda: self._db.execute(sql, values).fetchone())
        return found

    async def run(self, query: str, **params: Any) -> int:
        sql, values = Q[query], _values(params)
        return await self._store.on(self._pool, lambda: self._db.execute(sql, values).rowcount)

    async def run_many(self, query: str, params: Sequence[Mapping[str, Any]]) -> None:
        if not params:
            return
        sql, values = Q[query], [_values(dict(p)) for p in params]
        await self._store.on(self._pool, lambda: self._db.executemany(sql, values))


class _DirectTx:
    """A Tx on the writer thread itself: every statement runs at once, so store logic written as coroutines over
    it completes without ever suspending (see `_run_through`), and a whole transaction costs one thread hop."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    async def rows(self, query: str, **params: Any) -> list[Row]:
        found: list[Row] = self._db.execute(Q[query], _values(params)).fetchall()
        return found

    async def row(self, query: str, **params: Any) -> Row | None:
        found: Row | None = self._db.execute(Q[query], _values(params)).fetchone()
        return found

    async def run(self, query: str, **params: Any) -> int:
        return self._db.execute(Q[query], _values(params)).rowcount

    async def run_many(self, query: str, params: Sequence[Mapping[str, Any]]) -> None:
        if params:
            self._db.executemany(Q[query], [_values(dict(p)) for p in params])


def _run_through(work: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (its statements go to a _DirectTx)."""
    try:
        work.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    work.close()
    raise RuntimeError("store logic waited for something on the writer thread")


def _values(params: dict[str, Any]) -> dict[str, Any]:
    """SQLite keeps times as ISO-8601 text (UTC, so they compare correctly as strings)."""
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in params.items()}


class SQLiteStore(SqlStore):
    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 5000,
        takeover_after: timedelta = timedelta(seconds=30),
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        self._write_db: sqlite3.Connection | None = None
        self._read_db: sqlite3.Connection | None = None
        self._write_lock = WriteLock()
        self.owner = f"sqlite-{uuid4().hex[:12]}"
        self.takeover_after = takeover_after

    solo = True  # one process owns an SQLite file: another owner's claims were cut off when it died

    # -- life cycle -------------------------------------------------------------------------------------------

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._write_db = await self.on(self._writer, self._connect)
        db = self._write_db
        await self.on(self._writer, lambda: _transaction(db, _migrate))
        self._read_db = await self.on(self._reader, self._connect)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        db.execute("PRAGMA foreign_keys=ON")
        # A checkpoint (copying the WAL into the database file, and an fsync of it) runs inside the commit that
        # crosses the threshold, on the one writer, while the webhooks' group commits wait. SQLite's default of
        # 1,000 pages (4 MB) made a 10,000-alert storm checkpoint two or three times; 10,000 pages (40 MB) rewrite
        # the hot pages (indexes, the breaker row) once per 40 MB instead, and the storm ran 14% faster
        # (docs/benchmarks.md). The WAL file is cut back to 64 MB after a checkpoint.
        db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        db.execute("PRAGMA temp_store=MEMORY")  # the sort of a claim's candidates: no temporary file
        return db

    async def close(self) -> None:
        for pool, db in ((self._writer, self._write_db), (self._reader, self._read_db)):
            if db is not None:
                await self.on(pool, db.close)
            pool.shutdown(wait=True)
        self._write_db = self._read_db = None

    # -- plumbing ---------------------------------------------------------------------------------------------

    async def on(self, pool: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn)
        except _DATA_ERRORS as exc:
            raise StoreDataError(f"sqlite: {type(exc).__name__}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from exc

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[SQLiteTx]:
        db = self._write_db
        if db is None:
            raise StoreUnavailable("store is closed")
        async with self._write_lock.hold():
            await self.on(self._writer, lambda: db.execute("BEGIN IMMEDIATE"))
            try:
                yield SQLiteTx(self, self._writer, db)
            except BaseException:
                await self.on(self._writer, lambda: db.execute("ROLLBACK"))
                raise
            await self.on(self._writer, lambda: db.execute("COMMIT"))

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[SQLiteTx]:
        db = self._read_db
        if db is None:
            raise StoreUnavailable("store is closed")
        yield SQLiteTx(self, self._reader, db)

    async def _transact(self, work: Callable[[Tx], Awaitable[T]], *, urgent: bool = False) -> T:
        # One hop to the writer thread for the whole transaction: under a webhook storm each hop waits for the
        # event loop's turn, so a batch of decisions must not need one per statement.
        db = self._write_db
        if db is None:
            raise StoreUnavailable("store is closed")

        def transaction(connection: sqlite3.Connection) -> T:
            awaitable = work(_DirectTx(connection))
            assert isinstance(awaitable, Coroutine)  # an async function's result, driven here without a loop
            result: T = _run_through(awaitable)
            return result

        async with self._write_lock.hold(urgent=urgent):
            result: T = await self.on(self._writer, lambda: _transaction(db, transaction))
        return result

    # -- the webhook's hot path -------------------------------------------------------------------------------

    async def insert_events(self, events: Sequence[NewEvent], *, now: datetime) -> list[InsertOutcome]:
        db = self._write_db
        if db is None:
            raise StoreUnavailable("store is closed")
        # Rows are built on the writer thread too: for a big webhook (18,000 alerts) that is half a second of CPU that
        # would otherwise hold the event loop.
        async with self._write_lock.hold():
            return await self.on(self._writer, lambda: _transaction(db, lambda c: _insert_events(c, events, now)))


def _transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result


def _migrate(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)")
    recorded = [(row[0], row[1]) for row in db.execute("SELECT version, name FROM schema_migrations")]
    for move in renumberings("sqlite", recorded):
        db.execute(
            "UPDATE schema_migrations SET version = ?, name = ? WHERE version = ?",
            (move.new_version, move.new_name, move.old_version),
        )
    applied = [row[0] for row in db.execute("SELECT version FROM schema_migrations")]
    for migration in pending("sqlite", applied):
        for statement in _statements(migration.sql):
            db.execute(statement)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, datetime('now'))", (migration.version, migration.name))


def _statements(sql: str) -> list[str]:
    # Migrations hold no triggers or string literals with ';', so splitting is safe and keeps every statement
    # inside our transaction (executescript would commit first). Comment lines go first: they may hold ';'.
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [part.strip() for part in code.split(";") if part.strip()]


_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
assert Q["insert_events"].count(_ROW) == 1, "insert_events must hold one row of 13 parameters"
_MOST_ROWS = 64
"""Rows per INSERT statement: batches are cut into 64, 32, ... 1, so a few prepared statements serve any size."""


def _insert_events(db: sqlite3.Connection, events: Sequence[NewEvent], now: datetime) -> list[InsertOutcome]:
    """Each event's row id and whether it was stored before (or earlier in this batch): a duplicate delivery."""
    first, counts = fold_duplicates(events)
    received_at = now.isoformat()
    rows = [_event_row(events[index], counts[key], received_at) for key, index in first.items()]
    stored: dict[EventKey, tuple[int, bool]] = {}
    while rows:
        size = min(_MOST_ROWS, 1 << (len(rows).bit_length() - 1))
        chunk, rows = rows[:size], rows[size:]
        sql = Q["insert_events"].replace(_ROW, ", ".join([_ROW] * size))
        for row in db.execute(sql, [value for values in chunk for value in values]).fetchall():
            key = (row["fingerprint"], row["status"], row["starts_at"])
            stored[key] = (int(row["id"]), int(row["deliveries"]) > counts[key])
    outcomes, seen = [], set()
    for event in events:
        key = event_key(event)
        event_id, before = stored[key]
        outcomes.append(InsertOutcome(event_id=event_id, duplicate=before or key in seen))
        seen.add(key)
    return outcomes


def _event_row(event: NewEvent, deliveries: int, received_at: str) -> tuple[Any, ...]:
    return (
        event.fingerprint,
        event.status,
        event.starts_at,
        event.ends_at,
        labels_json(event.labels),
        labels_json(event.annotations),
        event.generator_url,
        event.receiver,
        event.external_url,
        event.group_key,
        received_at,
        received_at,
        deliveries,
    )


# -- the history, read-only, for `autoremedy backtest` ---------------------------------------------------


def read_sqlite_history(path: Path, *, events_since: datetime, runs_since: datetime, until: datetime) -> History:
    if not path.is_file():
        raise StoreUnavailable(f"sqlite: {path}: no such database")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"sqlite: {path}: {exc}") from exc
    db.row_factory = sqlite3.Row
    try:
        db.execute("BEGIN")  # one snapshot for both reads
        events = db.execute(Q["history_events"], _times(events_since, until)).fetchall()
        runs = db.execute(Q["history_runs"], _times(runs_since, until)).fetchall()
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"sqlite: {path}: {exc}") from exc
    finally:
        db.close()
    return history_of(events, runs)


def _times(since: datetime, until: datetime) -> dict[str, str]:
    return {"since": since.isoformat(), "until": until.isoformat()}
