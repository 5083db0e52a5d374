"""Runs held for a person (awaiting approval, delayed, deferred): approved, denied, expired or cancelled."""

from __future__ import annotations

from datetime import datetime

from autoremedy.models.ids import RunId
from autoremedy.models.notifications import Trigger
from autoremedy.models.runs import GuardrailReason, Run, RunStatus
from autoremedy.store.audit import insert_audit
from autoremedy.store.base import AuditEntry
from autoremedy.store.outbox import Notice, escalate
from autoremedy.store.reads import load_run
from autoremedy.store.tx import Row, Tx


async def skip_waiting(
    tx: Tx,
    run_id: RunId,
    guardrail: GuardrailReason,
    reason: str,
    now: datetime,
    *,
    kind: str,
    actor: str = "autoremedy",
) -> Row | None:
    """The skipped run's id, fingerprint and rule; None when it was no longer waiting."""
    row = await tx.row("skip_waiting_run", id=run_id, guardrail=guardrail, reason=reason, now=now)
    if row is None:
        return None
    await tx.run("close_unfinished_steps", run_id=run_id)
    await insert_audit(tx, [AuditEntry(kind, reason, run_id, row["fingerprint"], actor=actor)], now)
    return row


async def settle_approval(
    tx: Tx, run_id: RunId, *, approved: bool, actor: str, reason: str, now: datetime
) -> Run | bool | None:
    """The run after approval or denial; None when unknown; False when it is not awaiting approval."""
    brief = await tx.row("run_brief", id=run_id)
    if brief is None:
        return None
    if brief["status"] != RunStatus.AWAITING_APPROVAL:
        return False
    message = f"{'approved' if approved else 'denied'} by {actor}" + (f": {reason}" if reason else "")
    if approved:
        await tx.run("approve_run", id=run_id, reason=message)
        await insert_audit(tx, [AuditEntry("approved", message, run_id, brief["fingerprint"], actor=actor)], now)
    else:
        await skip_waiting(tx, run_id, GuardrailReason.DENIED, message, now, kind="denied", actor=actor)
    return await load_run(tx, run_id)


async def expire_approvals(tx: Tx, now: datetime) -> list[str]:
    expired = []
    for row in await tx.rows("expired_approvals", now=now):
        why = "nobody approved or denied it in time"
        skipped = await skip_waiting(tx, row["id"], GuardrailReason.APPROVAL_EXPIRED, why, now, kind="approval_expired")
        if skipped is not None:
            detail = "nobody approved or denied the run in time"
            notice = Notice(row["id"], skipped["fingerprint"], skipped["rule"], Trigger.APPROVAL_EXPIRED, detail)
            await escalate(tx, notice, now)
            expired.append(row["id"])
    return expired
