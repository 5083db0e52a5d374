"""The store's logic, written once for every backend over a `Tx`: what a resolved alert changes, run life cycle,
approvals, the escalation outbox (recording decisions is store/decisions.py). Each function runs inside the
caller's transaction, so what it reads and what it writes commit together."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from autoremedy.decide.guardrails import BreakerState
from autoremedy.models.events import AlertEvent
from autoremedy.models.runs import Run, RunStatus
from autoremedy.store.base import AuditEntry, ClaimedDelivery, Escalation, RunTakenOver
from autoremedy.store.rows import escalation_from_row, event_from_row, run_from_rows, time_of
from autoremedy.store.tx import Tx

CANCELLED_REASON = "the alert resolved before the run started"
ChooseChannels = Callable[[Escalation, AlertEvent | None], list[str]]


class Notice(NamedTuple):
    run_id: str | None
    fingerprint: str
    rule: str
    trigger: str
    detail: str
    kind: str = "trigger"


# -- decisions (recorded a batch at a time by store/decisions.py) ------------------------------------------------


async def on_resolved(tx: Tx, event: AlertEvent, now: datetime) -> tuple[list[str], list[str]]:
    """The alert is over: runs that have not started are cancelled, runs waiting for this are woken, and what was
    escalated about it is resolved."""
    cancelled = await cancel_waiting(tx, event.fingerprint, now)
    woken = [row["id"] for row in await tx.rows("wake_waiting_runs", fingerprint=event.fingerprint)]
    await resolve_escalations(
        tx, event.fingerprint, rule=None, trigger="alert_resolved", detail="the alert resolved", now=now
    )
    return cancelled, woken


async def cancel_waiting(tx: Tx, fingerprint: str, now: datetime) -> list[str]:
    cancelled = []
    for row in await tx.rows("waiting_runs_of_fingerprint", fingerprint=fingerprint):
        if await skip_waiting(tx, row["id"], "alert_resolved", CANCELLED_REASON, now, kind="run_cancelled"):
            cancelled.append(row["id"])
    return cancelled


async def skip_waiting(
    tx: Tx, run_id: str, guardrail: str, reason: str, now: datetime, *, kind: str, actor: str = "autoremedy"
) -> Notice | None:
    row = await tx.row("skip_waiting_run", id=run_id, guardrail=guardrail, reason=reason, now=now)
    if row is None:
        return None
    await tx.run("close_unfinished_steps", run_id=run_id)
    await insert_audit(tx, [AuditEntry(kind, reason, run_id, row["fingerprint"], actor=actor)], now)
    return Notice(run_id, row["fingerprint"], row["rule"], guardrail, reason)


async def read_breaker(tx: Tx, *, lock: bool = False) -> BreakerState:
    row = await tx.row("lock_breaker" if lock else "read_breaker")
    if row is None:
        return BreakerState()
    return BreakerState(
        open=bool(row["open"]),
        opened_at=time_of(row["opened_at"]),
        last_attempt_at=time_of(row["last_attempt_at"]),
        closed_at=time_of(row["closed_at"]),
    )


async def write_breaker(tx: Tx, state: BreakerState) -> None:
    await tx.run(
        "write_breaker",
        open=int(state.open),
        opened_at=state.opened_at,
        last_attempt_at=state.last_attempt_at,
        closed_at=state.closed_at,
    )


async def insert_audit(tx: Tx, entries: Sequence[AuditEntry], now: datetime) -> None:
    for entry in entries:
        await tx.run(
            "insert_audit",
            at=now,
            kind=entry.kind,
            run_id=entry.run_id,
            fingerprint=entry.fingerprint,
            actor=entry.actor,
            message=entry.message,
            data=json.dumps(entry.data),
        )


# -- escalations ----------------------------------------------------------------------------------------------


async def escalate(tx: Tx, notice: Notice, now: datetime) -> None:
    """Queue an escalation in the outbox, in the caller's transaction; the notifier fans it out to channels."""
    await tx.run("insert_escalation", **notice._asdict(), created_at=now)


async def resolve_escalations(
    tx: Tx, fingerprint: str, *, rule: str | None, trigger: str, detail: str, now: datetime
) -> None:
    for row in await tx.rows("open_escalated_rules", fingerprint=fingerprint, rule=rule):
        await escalate(tx, Notice(row["run_id"], fingerprint, row["rule"], trigger, detail, kind="resolve"), now)


async def fan_out(tx: Tx, choose: ChooseChannels, now: datetime, limit: int) -> list[tuple[int, list[str]]]:
    """Deliveries for new escalations: a trigger goes where the policy says, a resolve where its triggers went."""
    done = []
    for row in await tx.rows("escalations_to_fan_out", limit=limit):
        escalation = escalation_from_row(row)
        if escalation.kind == "resolve":
            found = await tx.rows("trigger_channels", fingerprint=escalation.fingerprint, rule=escalation.rule)
            channels = sorted(r["channel"] for r in found)
        else:
            channels = choose(escalation, await event_of(tx, escalation))
        for channel in channels:
            await tx.run("insert_delivery", escalation_id=escalation.id, channel=channel, now=now)
        await tx.run("mark_fanned_out", id=escalation.id)
        done.append((escalation.id, channels))
    return done


async def claim_deliveries(tx: Tx, now: datetime, *, limit: int, lease: timedelta) -> list[ClaimedDelivery]:
    """Due deliveries, leased so a crashed sender's work is taken up again when the lease ends."""
    claimed = []
    for row in await tx.rows("claim_deliveries", now=now, locked_until=now + lease, limit=limit):
        found = await tx.row("get_escalation", id=row["escalation_id"])
        assert found is not None
        escalation = escalation_from_row(found)
        claimed.append(
            ClaimedDelivery(
                id=row["id"],
                channel=row["channel"],
                attempts=row["attempts"],
                escalation=escalation,
                run=await load_run(tx, escalation.run_id) if escalation.run_id else None,
                event=await event_of(tx, escalation),
                thread_reference=await _thread_reference(tx, escalation, row["channel"]),
                unrecorded=bool(row["unrecorded"]),
            )
        )
    return claimed


async def event_of(tx: Tx, escalation: Escalation) -> AlertEvent | None:
    row = await tx.row("event_of_run", id=escalation.run_id) if escalation.run_id else None
    row = row or await tx.row("event_of_alert", fingerprint=escalation.fingerprint)
    return event_from_row(row) if row is not None else None


async def _thread_reference(tx: Tx, escalation: Escalation, channel: str) -> str | None:
    if escalation.kind != "resolve":
        return None
    row = await tx.row("thread_reference", fingerprint=escalation.fingerprint, rule=escalation.rule, channel=channel)
    return str(row["reference"]) if row is not None and row["reference"] else None


# -- runs -----------------------------------------------------------------------------------------------------


async def load_run(tx: Tx, run_id: str) -> Run | None:
    row = await tx.row("get_run", id=run_id)
    if row is None:
        return None
    return run_from_rows(row, await tx.rows("list_steps", run_id=run_id))


class Fence(NamedTuple):
    """Who may write a running run: its owner, in the epoch of its claim."""

    run_id: str
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
    escalation: str | None,
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
            trigger="fixed",
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


async def decide_approval(
    tx: Tx, run_id: str, *, approved: bool, actor: str, reason: str, now: datetime
) -> Run | bool | None:
    """The run after approval or denial; None when unknown; False when it is not awaiting approval."""
    brief = await tx.row("run_brief", id=run_id)
    if brief is None:
        return None
    if brief["status"] != "awaiting_approval":
        return False
    message = f"{'approved' if approved else 'denied'} by {actor}" + (f": {reason}" if reason else "")
    if approved:
        await tx.run("approve_run", id=run_id, reason=message)
        await insert_audit(tx, [AuditEntry("approved", message, run_id, brief["fingerprint"], actor=actor)], now)
    else:
        await skip_waiting(tx, run_id, "denied", message, now, kind="denied", actor=actor)
    return await load_run(tx, run_id)


async def expire_approvals(tx: Tx, now: datetime) -> list[str]:
    expired = []
    for row in await tx.rows("expired_approvals", now=now):
        notice = await skip_waiting(
            tx, row["id"], "approval_expired", "nobody approved or denied it in time", now, kind="approval_expired"
        )
        if notice is not None:
            await escalate(tx, notice._replace(detail="nobody approved or denied the run in time"), now)
            expired.append(row["id"])
    return expired
