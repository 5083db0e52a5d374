"""The stored alert history, read-only, for `autoremedy backtest`: safe while the daemon runs.

SQLite is opened with `mode=ro` (the daemon's writes go on; WAL readers never block the writer) and PostgreSQL
reads in a READ ONLY, REPEATABLE READ transaction; both read the events and the runs from one snapshot. Nothing
here can write: no migration is applied, no row is claimed. Each backend reads its rows (store/sqlite.py,
store/postgres.py: `read_*_history`, where their driver is); the rows become a `History` here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from autoremedy.decide.backtest import RecordedRun
from autoremedy.decide.replay import ReplayEvent
from autoremedy.store.rows import time_of
from autoremedy.store.tx import Row


@dataclass(slots=True)
class History:
    events: list[ReplayEvent] = field(default_factory=list)
    """In the order they were received."""
    runs: dict[int, list[RecordedRun]] = field(default_factory=lambda: defaultdict(list))
    """By event id."""


def history_of(events: list[Row], runs: list[Row]) -> History:
    labels: dict[str, dict[str, str]] = {}  # few label sets, many events: each is parsed once
    history = History(events=[_event(row, labels) for row in events])
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


def _event(row: Row, labels: dict[str, dict[str, str]]) -> ReplayEvent:
    received = time_of(row["received_at"])
    assert received is not None
    parsed = labels.get(row["labels"])
    if parsed is None:
        parsed = labels[row["labels"]] = json.loads(row["labels"])
    view: dict[str, Any] = {  # as NewEvent.template_view names it, built without a model per row (100k rows)
        "status": row["status"],
        "labels": parsed,
        "annotations": json.loads(row["annotations"]),
        "startsAt": row["starts_at"],
        "endsAt": row["ends_at"],
        "generatorURL": row["generator_url"],
        "fingerprint": row["fingerprint"],
        "receiver": row["receiver"],
        "externalURL": row["external_url"],
    }
    return ReplayEvent(at=received, view=view, id=int(row["id"]))
