"""The escalation outbox on SQLite: fan escalations out to channel deliveries, claim due deliveries with a lease,
record what each send did. Each function runs inside one write transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta

from autoremedy.models.events import AlertEvent
from autoremedy.models.runs import Run
from autoremedy.store.base import ClaimedDelivery, Escalation
from autoremedy.store.queries import load_queries
from autoremedy.store.rows import escalation_from_row, event_from_row, run_from_rows

Q = load_queries("sqlite")
ChooseChannels = Callable[[Escalation, AlertEvent | None], list[str]]


def fan_out(db: sqlite3.Connection, choose: ChooseChannels, now: datetime, limit: int) -> list[tuple[int, list[str]]]:
    """Deliveries for new escalations: a trigger goes where the policy says, a resolve where its triggers went."""
    done = []
    for row in db.execute(Q["escalations_to_fan_out"], {"limit": limit}).fetchall():
        escalation = escalation_from_row(row)
        if escalation.kind == "resolve":
            params = {"fingerprint": escalation.fingerprint, "rule": escalation.rule}
            channels = [r["channel"] for r in db.execute(Q["trigger_channels"], params)]
        else:
            channels = choose(escalation, _event_of(db, escalation))
        for channel in channels:
            db.execute(
                Q["insert_delivery"], {"escalation_id": escalation.id, "channel": channel, "now": now.isoformat()}
            )
        db.execute(Q["mark_fanned_out"], {"id": escalation.id})
        done.append((escalation.id, channels))
    return done


def claim(db: sqlite3.Connection, now: datetime, *, limit: int, lease: timedelta) -> list[ClaimedDelivery]:
    """Due deliveries, leased so a crashed sender's work is taken up again when the lease ends."""
    params = {"now": now.isoformat(), "locked_until": (now + lease).isoformat(), "limit": limit}
    claimed = []
    for row in db.execute(Q["claim_deliveries"], params).fetchall():
        escalation = escalation_from_row(db.execute(Q["get_escalation"], {"id": row["escalation_id"]}).fetchone())
        claimed.append(
            ClaimedDelivery(
                id=row["id"],
                channel=row["channel"],
                attempts=row["attempts"],
                escalation=escalation,
                run=_run_of(db, escalation),
                event=_event_of(db, escalation),
                thread_reference=_thread_reference(db, escalation, row["channel"]),
            )
        )
    return claimed


def _run_of(db: sqlite3.Connection, escalation: Escalation) -> Run | None:
    if escalation.run_id is None:
        return None
    row = db.execute(Q["get_run"], {"id": escalation.run_id}).fetchone()
    if row is None:
        return None
    return run_from_rows(row, db.execute(Q["list_steps"], {"run_id": escalation.run_id}).fetchall())


def _event_of(db: sqlite3.Connection, escalation: Escalation) -> AlertEvent | None:
    if escalation.run_id is not None:
        row = db.execute(
            "SELECT e.* FROM events e JOIN runs r ON r.event_id = e.id WHERE r.id = ?", (escalation.run_id,)
        ).fetchone()
        if row is not None:
            return event_from_row(row)
    row = db.execute(Q["event_of_alert"], {"fingerprint": escalation.fingerprint}).fetchone()
    return event_from_row(row) if row is not None else None


def _thread_reference(db: sqlite3.Connection, escalation: Escalation, channel: str) -> str | None:
    if escalation.kind != "resolve":
        return None
    params = {"fingerprint": escalation.fingerprint, "rule": escalation.rule, "channel": channel}
    row = db.execute(Q["thread_reference"], params).fetchone()
    return str(row["reference"]) if row is not None and row["reference"] else None
