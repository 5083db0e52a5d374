"""The embedded SQLite store (WAL): zero set-up, one file, one writer.

Each operation is one synchronous function run on a dedicated database thread, so a transaction is one unit of work
that no other coroutine can interleave with. Writes have their own thread and connection; reads (API, CLI) have
another, so a long commit never blocks a status query. `synchronous=NORMAL` in WAL mode loses nothing on a process
crash (kill -9); `FULL` also survives power loss.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from autoremedy.decide.guardrails import BreakerState, Guard
from autoremedy.models.events import AlertEvent, NewEvent
from autoremedy.models.runs import Run, RunStatus, StepRecord
from autoremedy.store.base import (
    AuditEntry,
    AuditRecord,
    Decision,
    Escalation,
    InsertOutcome,
    NewRun,
    NotAwaitingApproval,
    Pause,
    Recovery,
    StoreUnavailable,
)
from autoremedy.store.queries import load_queries, migrations
from autoremedy.store.rows import audit_from_row, event_from_row, run_from_rows
from autoremedy.store.sqlite_decisions import (
    decide_in_transaction,
    insert_audit,
    insert_escalation,
    read_breaker,
    skip_waiting,
    write_breaker,
)

T = TypeVar("T")
Q = load_queries("sqlite")


class SQLiteStore:
    def __init__(self, path: Path, *, synchronous: str = "NORMAL", busy_timeout_ms: int = 5000) -> None:
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        self._write_db: sqlite3.Connection | None = None
        self._read_db: sqlite3.Connection | None = None

    # -- life cycle -------------------------------------------------------------------------------------------

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._write_db = await self._on(self._writer, self._connect)
        await self._write(_migrate)
        self._read_db = await self._on(self._reader, self._connect)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    async def close(self) -> None:
        for pool, db in ((self._writer, self._write_db), (self._reader, self._read_db)):
            if db is not None:
                await self._on(pool, db.close)
            pool.shutdown(wait=True)
        self._write_db = self._read_db = None

    async def ping(self) -> None:
        await self._read(lambda db: db.execute("SELECT 1").fetchone())

    # -- plumbing ---------------------------------------------------------------------------------------------

    async def _on(self, pool: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from exc

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._write_db
        if db is None:
            raise StoreUnavailable("store is closed")
        return await self._on(self._writer, lambda: _transaction(db, work))

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._read_db
        if db is None:
            raise StoreUnavailable("store is closed")
        return await self._on(self._reader, lambda: work(db))

    # -- events -----------------------------------------------------------------------------------------------

    async def insert_events(self, events: Sequence[NewEvent], *, now: datetime) -> list[InsertOutcome]:
        rows = [_event_params(event, now) for event in events]
        return await self._write(lambda db: [_insert_event(db, row) for row in rows])

    async def claim_event(self) -> AlertEvent | None:
        row = await self._write(lambda db: db.execute(Q["claim_event"]).fetchone())
        return event_from_row(row) if row is not None else None

    async def get_event(self, event_id: int) -> AlertEvent | None:
        row = await self._read(lambda db: db.execute(Q["get_event"], {"id": event_id}).fetchone())
        return event_from_row(row) if row is not None else None

    async def pending_events(self) -> int:
        row = await self._read(lambda db: db.execute(Q["count_pending_events"]).fetchone())
        return int(row[0])

    async def record_decision(
        self, event: AlertEvent, runs: Sequence[NewRun], audit: Sequence[AuditEntry], *, guard: Guard, now: datetime
    ) -> Decision:
        return await self._write(lambda db: decide_in_transaction(db, event, runs, audit, guard=guard, now=now))

    # -- runs -------------------------------------------------------------------------------------------------

    async def claim_run(self, *, now: datetime) -> Run | None:
        def work(db: sqlite3.Connection) -> Run | None:
            row = db.execute(Q["claim_due_run"], {"now": now.isoformat()}).fetchone()
            return _load_run(db, row["id"]) if row is not None else None

        return await self._write(work)

    async def update_step(self, run_id: str, step: StepRecord) -> None:
        params = {
            "run_id": run_id,
            "idx": step.index,
            "attempts": step.attempts,
            "outcome": step.outcome.value,
            "error": step.error,
            "result": json.dumps(step.result) if step.result is not None else None,
            "started_at": step.started_at.isoformat() if step.started_at else None,
            "finished_at": step.finished_at.isoformat() if step.finished_at else None,
        }
        await self._write(lambda db: db.execute(Q["update_step"], params))

    async def finish_run(
        self, run_id: str, status: RunStatus, reason: str, audit: Sequence[AuditEntry], *, now: datetime
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                Q["finish_run"],
                {"id": run_id, "status": status.value, "reason": reason, "now": now.isoformat()},
            )
            db.execute(Q["close_unfinished_steps"], {"run_id": run_id})
            insert_audit(db, audit, now)

        await self._write(work)

    async def recover(self, *, reason: str, now: datetime) -> Recovery:
        def work(db: sqlite3.Connection) -> Recovery:
            requeued = db.execute(Q["requeue_processing_events"]).rowcount
            rows = db.execute(Q["interrupt_running_runs"], {"reason": reason, "now": now.isoformat()}).fetchall()
            for row in rows:
                db.execute(Q["close_unfinished_steps"], {"run_id": row["id"]})
                message = f"run interrupted: {reason}"
                insert_audit(db, [AuditEntry("run_interrupted", message, row["id"], row["fingerprint"])], now)
            return Recovery(requeued_events=requeued, interrupted_runs=[row["id"] for row in rows])

        return await self._write(work)

    async def get_run(self, run_id: str) -> Run | None:
        return await self._read(lambda db: _load_run(db, run_id))

    async def list_runs(self, *, status: RunStatus | None, limit: int) -> list[Run]:
        def work(db: sqlite3.Connection) -> list[Run]:
            params = {"status": status.value if status else None, "limit": limit}
            rows = db.execute(Q["list_runs"], params).fetchall()
            return [run_from_rows(row, db.execute(Q["list_steps"], {"run_id": row["id"]}).fetchall()) for row in rows]

        return await self._read(work)

    async def list_audit(self, *, run_id: str | None, limit: int) -> list[AuditRecord]:
        rows = await self._read(lambda db: db.execute(Q["list_audit"], {"run_id": run_id, "limit": limit}).fetchall())
        return [audit_from_row(row) for row in rows]

    # -- approvals, pauses, breaker ------------------------------------------------------------------------

    async def approve(self, run_id: str, *, actor: str, reason: str, now: datetime) -> Run | None:
        def work(db: sqlite3.Connection) -> Run | None:
            message = f"approved by {actor}" + (f": {reason}" if reason else "")
            row = db.execute(Q["approve_run"], {"id": run_id, "reason": message}).fetchone()
            if row is None:
                return _unchanged(db, run_id)
            insert_audit(db, [AuditEntry("approved", message, run_id, row["fingerprint"], actor=actor)], now)
            return _load_run(db, run_id)

        return await self._write(work)

    async def deny(self, run_id: str, *, actor: str, reason: str, now: datetime) -> Run | None:
        def work(db: sqlite3.Connection) -> Run | None:
            message = f"denied by {actor}" + (f": {reason}" if reason else "")
            if _status(db, run_id) != "awaiting_approval":
                return _unchanged(db, run_id)
            skip_waiting(db, run_id, "denied", message, now, kind="denied", actor=actor)
            return _load_run(db, run_id)

        return await self._write(work)

    async def expire_approvals(self, *, now: datetime) -> list[str]:
        def work(db: sqlite3.Connection) -> list[str]:
            expired = []
            for row in db.execute(Q["expired_approvals"], {"now": now.isoformat()}).fetchall():
                skipped = skip_waiting(
                    db,
                    row["id"],
                    "approval_expired",
                    "nobody approved or denied it in time",
                    now,
                    kind="approval_expired",
                )
                if skipped is not None:
                    insert_escalation(
                        db,
                        run_id=row["id"],
                        fingerprint=skipped["fingerprint"],
                        rule=skipped["rule"],
                        trigger="approval_expired",
                        detail="nobody approved or denied the run in time",
                        now=now,
                    )
                    expired.append(row["id"])
            return expired

        return await self._write(work)

    async def set_pause(self, scope: str, *, actor: str, reason: str, now: datetime) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(Q["set_pause"], {"scope": scope, "actor": actor, "reason": reason, "at": now.isoformat()})
            insert_audit(
                db, [AuditEntry("paused", f"{scope} paused: {reason}", actor=actor, data={"scope": scope})], now
            )

        await self._write(work)

    async def clear_pause(self, scope: str, *, actor: str, now: datetime) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            removed = db.execute(Q["clear_pause"], {"scope": scope}).rowcount > 0
            if removed:
                insert_audit(db, [AuditEntry("resumed", f"{scope} resumed", actor=actor, data={"scope": scope})], now)
            return removed

        return await self._write(work)

    async def pauses(self) -> list[Pause]:
        rows = await self._read(lambda db: db.execute(Q["list_pauses"]).fetchall())
        return [Pause(r["scope"], r["actor"], r["reason"], datetime.fromisoformat(r["at"])) for r in rows]

    async def breaker(self) -> BreakerState:
        return await self._read(read_breaker)

    async def close_breaker(self, *, actor: str, now: datetime) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            was_open = read_breaker(db).open
            write_breaker(db, BreakerState(closed_at=now))
            if was_open:
                insert_audit(db, [AuditEntry("breaker_closed", "circuit breaker closed by command", actor=actor)], now)
            return was_open

        return await self._write(work)

    async def escalations(self, *, limit: int) -> list[Escalation]:
        rows = await self._read(lambda db: db.execute(Q["list_escalations"], {"limit": limit}).fetchall())
        return [
            Escalation(
                r["id"],
                r["run_id"],
                r["fingerprint"],
                r["rule"],
                r["trigger"],
                r["detail"],
                datetime.fromisoformat(r["created_at"]),
            )
            for r in rows
        ]

    async def active_counts(self) -> dict[str, int]:
        rows = await self._read(lambda db: db.execute(Q["count_runs_by_status"]).fetchall())
        return {row["status"]: int(row["n"]) for row in rows}


def _status(db: sqlite3.Connection, run_id: str) -> str | None:
    row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    return str(row["status"]) if row is not None else None


def _unchanged(db: sqlite3.Connection, run_id: str) -> Run | None:
    """None for an unknown run; NotAwaitingApproval for a run that cannot be approved or denied now."""
    if _status(db, run_id) is None:
        return None
    raise NotAwaitingApproval(f"run {run_id} is not awaiting approval")


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
    applied = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
    for version, name, sql in migrations("sqlite"):
        if version not in applied:
            for statement in _statements(sql):
                db.execute(statement)
            db.execute("INSERT INTO schema_migrations VALUES (?, ?, datetime('now'))", (version, name))


def _statements(sql: str) -> list[str]:
    # Migrations hold no triggers or string literals with ';', so splitting is safe and keeps every statement
    # inside our transaction (executescript would commit first). Comment lines go first: they may hold ';'.
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [part.strip() for part in code.split(";") if part.strip()]


def _event_params(event: NewEvent, now: datetime) -> dict[str, Any]:
    params = event.model_dump()
    params["labels"] = json.dumps(event.labels, sort_keys=True)
    params["annotations"] = json.dumps(event.annotations, sort_keys=True)
    params["now"] = now.isoformat()
    return params


def _insert_event(db: sqlite3.Connection, params: dict[str, Any]) -> InsertOutcome:
    row = db.execute(Q["insert_event"], params).fetchone()
    return InsertOutcome(event_id=int(row["id"]), duplicate=int(row["deliveries"]) > 1)


def _load_run(db: sqlite3.Connection, run_id: str) -> Run | None:
    row = db.execute(Q["get_run"], {"id": run_id}).fetchone()
    if row is None:
        return None
    return run_from_rows(row, db.execute(Q["list_steps"], {"run_id": run_id}).fetchall())
