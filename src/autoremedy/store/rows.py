"""Rows to models, shared by the backends (column names are the same in each)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic_core import from_json, to_json

from autoremedy.models.events import AlertEvent, EventState, NewEvent
from autoremedy.models.notifications import NotificationKind, Trigger
from autoremedy.models.runs import Run, RunStatus, StepOutcome, StepRecord
from autoremedy.models.trusted import trusted
from autoremedy.store.base import AuditRecord, DeadEvent, Escalation

Row = Mapping[str, Any]


def time_of(value: Any) -> datetime | None:
    """A time column: SQLite stores ISO text, PostgreSQL timestamptz."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


_time = time_of


def labels_json(mapping: Mapping[str, str]) -> str:
    """Labels or annotations as stored: JSON with the names sorted (one text per label set), written by
    pydantic-core (the standard library's encoder took a fifth of the webhook's insert)."""
    return to_json(dict(sorted(mapping.items()))).decode()


EventKey = tuple[str, str, str]
"""An event's dedupe key: fingerprint, status, startsAt."""


def event_key(event: NewEvent) -> EventKey:
    return (event.fingerprint, event.status, event.starts_at)


def fold_duplicates(events: Sequence[NewEvent]) -> tuple[dict[EventKey, int], dict[EventKey, int]]:
    """First index and count of each key in a batch: one row per key in one INSERT (a statement may not insert
    and then update the same row on PostgreSQL, and SQLite does not say in which order it returns the rows)."""
    first: dict[EventKey, int] = {}
    counts: dict[EventKey, int] = {}
    for index, event in enumerate(events):
        key = event_key(event)
        first.setdefault(key, index)
        counts[key] = counts.get(key, 0) + 1
    return first, counts


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def event_from_row(row: Row) -> AlertEvent:
    # Built without validating again what the webhook validated and the store kept (models/trusted.py): a storm's
    # backlog is decided a batch of hundreds at a time.
    return trusted(
        AlertEvent,
        {
            "fingerprint": row["fingerprint"],
            "status": row["status"],
            "starts_at": row["starts_at"],
            "ends_at": row["ends_at"],
            "labels": from_json(row["labels"]),
            "annotations": from_json(row["annotations"]),
            "generator_url": row["generator_url"],
            "receiver": row["receiver"],
            "external_url": row["external_url"],
            "group_key": row["group_key"],
            "id": int(row["id"]),
            "received_at": _time(row["received_at"]) or datetime.min,
            "deliveries": int(row["deliveries"]),
            "state": EventState(row["state"]),
        },
    )


def step_from_row(row: Row) -> StepRecord:
    return StepRecord(
        index=row["idx"],
        name=row["name"],
        action=row["action"],
        inputs=_json(row["inputs"]),
        attempts=row["attempts"],
        outcome=StepOutcome(row["outcome"]),
        error=row["error"],
        result=_json(row["result"]),
        started_at=_time(row["started_at"]),
        finished_at=_time(row["finished_at"]),
    )


def run_from_rows(row: Row, steps: Sequence[Row]) -> Run:
    return Run(
        id=row["id"],
        status=RunStatus(row["status"]),
        reason=row["reason"],
        rule=row["rule"],
        playbook=row["playbook"],
        target=row["target"],
        fingerprint=row["fingerprint"],
        event_id=row["event_id"],
        alert_status=row["alert_status"],
        dry_run=bool(row["dry_run"]),
        guardrail=row["guardrail"],
        created_at=_time(row["created_at"]),
        not_before=_time(row["not_before"]),
        expires_at=_time(row["expires_at"]),
        wait_until=_time(row["wait_until"]),
        started_at=_time(row["started_at"]),
        finished_at=_time(row["finished_at"]),
        owner=row["owner"],
        epoch=row["epoch"],
        steps=[step_from_row(step) for step in steps],
    )


def audit_from_row(row: Row) -> AuditRecord:
    return AuditRecord(
        id=row["id"],
        at=_time(row["at"]) or datetime.min,
        kind=row["kind"],
        run_id=row["run_id"],
        fingerprint=row["fingerprint"],
        actor=row["actor"],
        message=row["message"],
        data=_json(row["data"]),
    )


def escalation_from_row(row: Row) -> Escalation:
    return Escalation(
        id=row["id"],
        run_id=row["run_id"],
        fingerprint=row["fingerprint"],
        rule=row["rule"],
        trigger=Trigger(row["trigger"]),
        detail=row["detail"],
        created_at=_time(row["created_at"]) or datetime.min,
        kind=NotificationKind(row["kind"]),
    )


def dead_event_from_row(row: Row) -> DeadEvent:
    labels = _json(row["labels"])
    return DeadEvent(
        id=row["id"],
        fingerprint=row["fingerprint"],
        status=row["status"],
        alertname=labels.get("alertname") if isinstance(labels, dict) else None,
        received_at=_time(row["received_at"]) or datetime.min,
        dead_at=_time(row["processed_at"]),
        attempts=int(row["decide_attempts"]),
        error=row["last_error"] or "",
    )
