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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from autoremedy.decide.guardrails import BreakerState, Guard
from autoremedy.models.events import AlertEvent, NewEvent
from autoremedy.models.runs import Run, RunStatus, StepRecord
from autoremedy.store import sqlite_outbox as outbox
from autoremedy.store.base import (
    AuditEntry,
    AuditRecord,
    ClaimedDelivery,
    Decision,
    DeliveryRecord,
    Escalation,
    InsertOutcome,
    NewRun,
    NotAwaitingApproval,
    Pause,
    Recovery,
    StoreUnavailable,
)
from autoremedy.store.queries import load_queries, migrations
from autoremedy.store.rows import audit_from_row, escalation_from_row, event_from_row, run_from_rows
from autoremedy.store.sqlite_decisions import (
    Notice,
    decide_in_transaction,
    escalate,
    insert_audit,
    read_breaker,
    resolve_escalations,
    skip_waiting,
    write_breaker,
)
from autoremedy.store.sqlite_outbox import ChooseChannels

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
        self,
        run_id: str,
        status: RunStatus,
        reason: str,
        audit: Sequence[AuditEntry],
        *,
        now: datetime,
        escalation: str | None = None,
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT fingerprint, rule FROM runs WHERE id = ?", (run_id,)).fetchone()
            params = {"id": run_id, "status": status.value, "reason": reason, "now": now.isoformat()}
            db.execute(Q["finish_run"], params)
            db.execute(Q["close_unfinished_steps"], {"run_id": run_id})
            insert_audit(db, audit, now)
            if row is None:
                return
            # The outcome and what people must hear about it commit together (the outbox).
            if escalation is not None:
                escalate(db, Notice(run_id, row["fingerprint"], row["rule"], escalation, reason), now)
            elif status is RunStatus.SUCCEEDED:
                fixed = "a later run of the rule succeeded"
                resolve_escalations(db, row["fingerprint"], rule=row["rule"], trigger="fixed", detail=fixed, now=now)

        await self._write(work)

    async def suspend_run(self, run_id: str, *, reason: str, wait_until: datetime, now: datetime) -> None:
        """The run waits, holding no worker slot, until woken (its alert resolved) or `wait_until`."""

        def work(db: sqlite3.Connection) -> None:
            # The resolved webhook may have been decided while the step was looking: then there is nobody left to
            # wake this run, so it is put straight back to be claimed, and finds the resolution.
            event = db.execute("SELECT event_id FROM runs WHERE id = ?", (run_id,)).fetchone()
            resolved = event and db.execute(Q["resolution_of_event"], {"event_id": event["event_id"]}).fetchone()
            params = {"id": run_id, "reason": reason, "wait_until": wait_until.isoformat()}
            db.execute(Q["suspend_run"], params)
            if resolved:
                db.execute(Q["wake_run"], {"id": run_id})
            insert_audit(db, [AuditEntry("run_waiting", reason, run_id)], now)

        await self._write(work)

    async def resolution_of(self, event_id: int) -> datetime | None:
        """When the alert of this (firing) event was reported resolved, if it was."""
        row = await self._read(lambda db: db.execute(Q["resolution_of_event"], {"event_id": event_id}).fetchone())
        return datetime.fromisoformat(row[0]) if row is not None else None

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
                    detail = "nobody approved or denied the run in time"
                    notice = Notice(row["id"], skipped["fingerprint"], skipped["rule"], "approval_expired", detail)
                    escalate(db, notice, now)
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
        return [escalation_from_row(row) for row in rows]

    async def active_counts(self) -> dict[str, int]:
        rows = await self._read(lambda db: db.execute(Q["count_runs_by_status"]).fetchall())
        return {row["status"]: int(row["n"]) for row in rows}

    # -- escalation outbox ----------------------------------------------------------------------------------

    async def fan_out(self, choose: ChooseChannels, *, now: datetime, limit: int) -> list[tuple[int, list[str]]]:
        return await self._write(lambda db: outbox.fan_out(db, choose, now, limit))

    async def claim_deliveries(self, *, now: datetime, limit: int, lease: timedelta) -> list[ClaimedDelivery]:
        return await self._write(lambda db: outbox.claim(db, now, limit=limit, lease=lease))

    async def delivery_sent(self, delivery_id: int, *, reference: str | None, now: datetime) -> None:
        params = {"id": delivery_id, "reference": reference, "now": now.isoformat()}
        await self._write(lambda db: db.execute(Q["delivery_sent"], params))

    async def delivery_retry(self, delivery_id: int, *, error: str, next_attempt_at: datetime) -> None:
        params = {"id": delivery_id, "error": error, "next_attempt_at": next_attempt_at.isoformat()}
        await self._write(lambda db: db.execute(Q["delivery_retry"], params))

    async def delivery_failed(self, delivery_id: int, *, error: str) -> None:
        await self._write(lambda db: db.execute(Q["delivery_failed"], {"id": delivery_id, "error": error}))

    async def deliveries(self, *, limit: int) -> list[DeliveryRecord]:
        rows = await self._read(lambda db: db.execute(Q["list_deliveries"], {"limit": limit}).fetchall())
        return [
            DeliveryRecord(
                id=r["id"],
                escalation_id=r["escalation_id"],
                channel=r["channel"],
                state=r["state"],
                attempts=r["attempts"],
                last_error=r["last_error"],
                reference=r["reference"],
                trigger=r["trigger"],
                kind=r["kind"],
                fingerprint=r["fingerprint"],
                rule=r["rule"],
            )
            for r in rows
        ]


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
