"""What a resolved alert changes: its runs that have not started are cancelled, runs waiting for it are woken, and
what was escalated about it is resolved."""

from __future__ import annotations

from datetime import datetime

from autoremedy.models.events import AlertEvent
from autoremedy.models.notifications import Trigger
from autoremedy.models.runs import GuardrailReason
from autoremedy.store.approvals import skip_waiting
from autoremedy.store.outbox import resolve_escalations
from autoremedy.store.tx import Tx

CANCELLED_REASON = "the alert resolved before the run started"


async def on_resolved(tx: Tx, event: AlertEvent, now: datetime) -> tuple[list[str], list[str]]:
    """The alert is over: runs that have not started are cancelled, runs waiting for this are woken, and what was
    escalated about it is resolved."""
    cancelled = await cancel_waiting(tx, event.fingerprint, now)
    woken = [row["id"] for row in await tx.rows("wake_waiting_runs", fingerprint=event.fingerprint)]
    await resolve_escalations(
        tx, event.fingerprint, rule=None, trigger=Trigger.ALERT_RESOLVED, detail="the alert resolved", now=now
    )
    return cancelled, woken


async def cancel_waiting(tx: Tx, fingerprint: str, now: datetime) -> list[str]:
    cancelled = []
    for row in await tx.rows("waiting_runs_of_fingerprint", fingerprint=fingerprint):
        skipped = await skip_waiting(
            tx, row["id"], GuardrailReason.ALERT_RESOLVED, CANCELLED_REASON, now, kind="run_cancelled"
        )
        if skipped is not None:
            cancelled.append(row["id"])
    return cancelled
