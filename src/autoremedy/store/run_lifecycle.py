"""A run's life after its decision: claimed by an instance (a new epoch), its outcome or its wait recorded, each
write fenced by (owner, epoch) so a stale owner's writes are refused."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from autoremedy.models.ids import RunId
from autoremedy.models.notifications import Trigger
from autoremedy.models.runs import Run, RunStatus
from autoremedy.store.audit import insert_audit
from autoremedy.store.base import AuditEntry, RunTakenOver
from autoremedy.store.outbox import Notice, escalate, resolve_escalations
from autoremedy.store.reads import load_run
from autoremedy.store.tx import Tx


class Fence(NamedTuple):
    """Who may write a running run: its owner, in the epoch of its claim."""

    run_id: RunId
    owner: str
    epoch: int


async def finish_run(
    tx: Tx,
    fence: Fence,
    status: RunStatus,
    reason: str,
    audit: Sequence[AuditEntry],
    *,
    now: datetime,
    escalation: Trigger | None,
) -> None:
    run_id = fence.run_id
    brief = await tx.row("run_brief", id=run_id)
    finished = await tx.run(
        "finish_run", id=run_id, status=status.value, reason=reason, now=now, owner=fence.owner, epoch=fence.epoch
    )
    if not finished:  # the transaction rolls back: nothing of a stale owner's outcome is kept
        raise RunTakenOver(run_id, fence.epoch)
    await tx.run("close_unfinished_steps", run_id=run_id)
    await insert_audit(tx, audit, now)
    if brief is None:
        return
    # The outcome and what people must hear about it commit together (the outbox).
    if escalation is not None:
        await escalate(tx, Notice(run_id, brief["fingerprint"], brief["rule"], escalation, reason), now)
    elif status is RunStatus.SUCCEEDED:
        await resolve_escalations(
            tx,
            brief["fingerprint"],
            rule=brief["rule"],
            trigger=Trigger.FIXED,
            detail="a later run of the rule succeeded",
            now=now,
        )


async def suspend_run(tx: Tx, fence: Fence, *, reason: str, wait_until: datetime, now: datetime) -> None:
    # The resolved webhook may have been decided while the step was looking: then nobody is left to wake this
    # run, so it goes straight back to be claimed, and finds the resolution.
    run_id = fence.run_id
    brief = await tx.row("run_brief", id=run_id)
    resolved = brief is not None and await tx.row("resolution_of_event", event_id=brief["event_id"]) is not None
    owner, epoch = fence.owner, fence.epoch
    if not await tx.run("suspend_run", id=run_id, reason=reason, wait_until=wait_until, owner=owner, epoch=epoch):
        raise RunTakenOver(run_id, epoch)
    if resolved:
        await tx.run("wake_run", id=run_id)
    await insert_audit(tx, [AuditEntry("run_waiting", reason, run_id)], now)


async def claim_run(tx: Tx, *, owner: str, now: datetime, stale_before: datetime) -> Run | None:
    row = await tx.row("claim_due_run", owner=owner, now=now, stale_before=stale_before)
    if row is None:
        return None
    if row["takeovers"]:
        message = f"taken over by {owner}: its previous owner stopped heartbeating; resuming after the last step"
        data = {"owner": owner, "epoch": row["epoch"]}
        await insert_audit(tx, [AuditEntry("run_taken_over", message, row["id"], data=data)], now)
    return await load_run(tx, row["id"])
