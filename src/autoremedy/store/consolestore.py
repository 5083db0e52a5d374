"""The web console's part of the store: sign-in sessions and the reads its pages make, over the shared `Tx`.

A mixin of SqlStore, so both backends get it; queries are in sql/console.sql.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from autoremedy.models.runs import Run, RunStatus
from autoremedy.store.base import ConsoleSession, EscalationSent, EventActivity
from autoremedy.store.rows import Row, event_from_row, run_from_rows, time_of
from autoremedy.store.tx import Tx


class ConsoleStoreMixin(ABC):
    @abstractmethod
    def _write(self) -> AbstractAsyncContextManager[Tx]: ...

    @abstractmethod
    def _read(self) -> AbstractAsyncContextManager[Tx]: ...

    async def create_console_session(self, session: ConsoleSession, *, now: datetime) -> None:
        async with self._write() as tx:
            await tx.run("prune_console_sessions", now=now)
            await tx.run(
                "insert_console_session",
                key_hash=session.key_hash,
                principal=session.principal,
                scopes=" ".join(sorted(session.scopes)),
                csrf_token=session.csrf_token,
                created_at=session.created_at,
                expires_at=session.expires_at,
            )

    async def console_session(self, key_hash: str, *, now: datetime) -> ConsoleSession | None:
        async with self._read() as tx:
            row = await tx.row("get_console_session", key_hash=key_hash, now=now)
        return _session_from_row(row) if row is not None else None

    async def end_console_session(self, key_hash: str) -> None:
        async with self._write() as tx:
            await tx.run("delete_console_session", key_hash=key_hash)

    async def search_runs(
        self, *, status: RunStatus | None, rule: str | None, target: str | None, limit: int
    ) -> list[Run]:
        params = {"status": status.value if status else None, "rule": rule, "target": target, "limit": limit}
        async with self._read() as tx:  # two queries, not one per run: the live runs page asks every second
            rows = await tx.rows("search_runs", **params)
            steps = await tx.rows("steps_of_searched_runs", **params)
        by_run: defaultdict[str, list[Row]] = defaultdict(list)
        for step in steps:
            by_run[step["run_id"]].append(step)
        return [run_from_rows(row, by_run[row["id"]]) for row in rows]

    async def runs_created_since(self, since: datetime) -> dict[str, int]:
        async with self._read() as tx:
            rows = await tx.rows("count_runs_created_since", since=since)
        return {row["status"]: int(row["n"]) for row in rows}

    async def recent_activity(self, *, limit: int) -> list[EventActivity]:
        async with self._read() as tx:
            events = await tx.rows("recent_events", limit=limit)
            runs = await tx.rows("runs_of_recent_events", limit=limit)
        by_event: defaultdict[int, list[Run]] = defaultdict(list)
        for row in runs:
            by_event[int(row["event_id"])].append(run_from_rows(row, []))
        return [EventActivity(event_from_row(row), str(row["state"]), by_event[int(row["id"])]) for row in events]

    async def counted_runs_since(self, since: datetime, *, limit: int) -> list[Run]:
        async with self._read() as tx:
            rows = await tx.rows("runs_holding_targets", since=since, limit=limit)
        return [run_from_rows(row, []) for row in rows]

    async def escalations_of_run(self, run_id: str) -> list[EscalationSent]:
        async with self._read() as tx:
            rows = await tx.rows("escalations_of_run", run_id=run_id)
        return [
            EscalationSent(
                trigger=row["trigger"],
                kind=row["kind"],
                detail=row["detail"],
                created_at=time_of(row["created_at"]) or datetime.min,
                channel=row["channel"],
                state=row["state"],
                attempts=int(row["attempts"] or 0),
                last_error=row["last_error"],
                sent_at=time_of(row["sent_at"]),
            )
            for row in rows
        ]


def _session_from_row(row: Row) -> ConsoleSession:
    return ConsoleSession(
        key_hash=row["key_hash"],
        principal=row["principal"],
        scopes=frozenset(str(row["scopes"]).split()),
        csrf_token=row["csrf_token"],
        created_at=time_of(row["created_at"]) or datetime.min,
        expires_at=time_of(row["expires_at"]) or datetime.min,
    )
