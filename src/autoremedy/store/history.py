"""The stored alert history, read-only, for `autoremedy backtest`: safe while the daemon runs.

SQLite is opened with `mode=ro` (the daemon's writes go on; WAL readers never block the writer) and PostgreSQL
reads in a READ ONLY, REPEATABLE READ transaction; both read the events and the runs from one snapshot. Nothing
here can write: no migration is applied, no row is claimed.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from autoremedy.decide.backtest import RecordedRun
from autoremedy.decide.replay import ReplayEvent
from autoremedy.store.base import StoreUnavailable
from autoremedy.store.queries import load_queries, positional
from autoremedy.store.rows import time_of
from autoremedy.store.tx import Row


@dataclass(slots=True)
class History:
    events: list[ReplayEvent] = field(default_factory=list)
    """In the order they were received."""
    runs: dict[int, list[RecordedRun]] = field(default_factory=lambda: defaultdict(list))
    """By event id."""


def read_sqlite_history(path: Path, *, events_since: datetime, runs_since: datetime, until: datetime) -> History:
    if not path.is_file():
        raise StoreUnavailable(f"sqlite: {path}: no such database")
    queries = load_queries("sqlite")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"sqlite: {path}: {exc}") from exc
    db.row_factory = sqlite3.Row
    try:
        db.execute("BEGIN")  # one snapshot for both reads
        events = db.execute(queries["history_events"], _times(events_since, until)).fetchall()
        runs = db.execute(queries["history_runs"], _times(runs_since, until)).fetchall()
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"sqlite: {path}: {exc}") from exc
    finally:
        db.close()
    return _history(events, runs)


def _times(since: datetime, until: datetime) -> dict[str, str]:
    return {"since": since.isoformat(), "until": until.isoformat()}


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
    return _history(events, runs)


def _history(events: list[Row], runs: list[Row]) -> History:
    history = History(events=[_event(row) for row in events])
    for row in runs:
        history.runs[int(row["event_id"])].append(
            RecordedRun(
                event_id=int(row["event_id"]),
                rule=row["rule"],
                playbook=row["playbook"],
                target=row["target"],
                status=row["status"],
                guardrail=row["guardrail"],
            )
        )
    return history


def _event(row: Row) -> ReplayEvent:
    received = time_of(row["received_at"])
    assert received is not None
    view: dict[str, Any] = {  # as NewEvent.template_view names it, built without a model per row (100k rows)
        "status": row["status"],
        "labels": json.loads(row["labels"]),
        "annotations": json.loads(row["annotations"]),
        "startsAt": row["starts_at"],
        "endsAt": row["ends_at"],
        "generatorURL": row["generator_url"],
        "fingerprint": row["fingerprint"],
        "receiver": row["receiver"],
        "externalURL": row["external_url"],
    }
    return ReplayEvent(at=received, view=view, id=int(row["id"]))
