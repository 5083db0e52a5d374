"""A run's life after its decision: claimed by an instance (a new epoch), its outcome or its wait recorded, each
write fenced by (owner, epoch) so a stale owner's writes are refused."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from autoremedy.models.ids import RunId
from autoremedy.models.notifications import Trigger
from autoremedy.models.runs import Run, RunStatus, StepOutcome, StepRecord
from autoremedy.store.audit import insert_audit
from autoremedy.store.base import AuditEntry, RunTakenOver
from autoremedy.store.outbox import Notice, escalate, resolve_escalations
from autoremedy.store.reads import load_run
from autoremedy.store.tx import Tx

_FINISHED = (StepOutcome.DONE, StepOutcome.FAILED)


class Fence(NamedTuple):
    """Who may write a running run: its owner, in the epoch of its claim."""

    run_id: RunId
    owner: str
    epoch: int


def step_params(fence: Fence, step: StepRecord) -> dict[str, Any]:
    """The fenced update of one step's record. Its result is encoded here, before any transaction: a result that
    cannot be encoded is the action's fault, not the store's."""
    return {
        "owner": fence.owner,
        "epoch": fence.epoch,
        "run_id": fence.run_id,
        "idx": step.index,
        "attempts": step.attempts,
        "outcome": step.outcome.value,
        "error": step.error,
        "result": json.dumps(step.result) if step.result is not None else None,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
    }


async def record_steps(tx: Tx, fence: Fence, steps: Sequence[dict[str, Any]]) -> None:
    """Step records (from `step_params`) in order; RunTakenOver, rolling the transaction back, when the run is no
    longer this owner's in this epoch."""
    for params in steps:
        if not await tx.run("update_step", **params):  # it matched nothing, wrote nothing
            raise RunTakenOver(fence.run_id, fence.epoch)


async def finish_run(
    tx: Tx,
    fence: Fence,
    status: RunStatus,
    reason: str,
    audit: Sequence[AuditEntry],
    *,
    now: datetime,
    escalation: Trigger | None,
    steps: Sequence[dict[str, Any]] = (),
) -> bool:
    """The run's outcome, after the records of its last steps (`steps`, from `step_params`) in the same
    transaction. True when an escalation was queued with it (the escalation sender has work)."""
    run_id = fence.run_id
    await record_steps(tx, fence, steps)
    brief = await tx.row("run_brief", id=run_id)
    finished = await tx.run(
        "finish_run", id=run_id, status=status.value, reason=reason, now=now, owner=fence.owner, epoch=fence.epoch
    )
    if not finished:  # the transaction rolls back: nothing of a stale owner's outcome is kept
        raise RunTakenOver(run_id, fence.epoch)
    await tx.run("close_unfinished_steps", run_id=run_id)
    await insert_audit(tx, audit, now)
    if brief is None:
        return False
    # The outcome and what people must hear about it commit together (the outbox).
    if escalation is not None:
        await escalate(tx, Notice(run_id, brief["fingerprint"], brief["rule"], escalation, reason), now)
        return True
    if status is RunStatus.SUCCEEDED:
        return await resolve_escalations(
            tx,
            brief["fingerprint"],
            rule=brief["rule"],
            trigger=Trigger.FIXED,
            detail="a later run of the rule succeeded",
            now=now,
        )
    return False


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


async def claim_runs(tx: Tx, *, owner: str, now: datetime, stale_before: datetime, limit: int) -> list[Run]:
    """Up to `limit` due runs, claimed in one statement, each with its steps as recorded (a resumed run's finished
    steps are not run again) and the start of the step it runs first recorded (`start_first_step`)."""
    rows = await tx.rows("claim_due_runs", owner=owner, now=now, stale_before=stale_before, limit=limit)
    claimed = []
    for row in rows:
        if row["takeovers"]:
            message = f"taken over by {owner}: its previous owner stopped heartbeating; resuming after the last step"
            data = {"owner": owner, "epoch": row["epoch"]}
            await insert_audit(tx, [AuditEntry("run_taken_over", message, row["id"], data=data)], now)
        run = await load_run(tx, row["id"])
        if run is not None:
            claimed.append(await start_first_step(tx, run, owner=owner, now=now))
    return sorted(claimed, key=lambda run: (run.created_at, run.id))


async def start_first_step(tx: Tx, run: Run, *, owner: str, now: datetime) -> Run:
    """The claim records the start of the step the executor runs first (the first one not finished), fenced by the
    claim itself: committed before the action is called, as every step's start is, without a transaction of its
    own. The executor, told so, does not record it again (Executor.execute's `start_recorded`)."""
    step = next((s for s in run.steps if s.outcome not in _FINISHED), None)
    if step is None:
        return run
    fence = Fence(run.id, owner, run.epoch)
    started = StepRecord(index=step.index, name=step.name, action=step.action, inputs=step.inputs, started_at=now)
    await record_steps(tx, fence, [step_params(fence, started)])
    return run.model_copy(update={"steps": [started if s.index == step.index else s for s in run.steps]})
