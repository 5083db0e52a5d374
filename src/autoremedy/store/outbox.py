"""The escalation outbox: escalations queued in the caller's transaction (with the outcome they report), fanned
out to channels, and delivered with leases and retries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NamedTuple

from autoremedy.models.events import AlertEvent
from autoremedy.models.ids import Fingerprint, RuleName, RunId
from autoremedy.models.notifications import NotificationKind, Trigger
from autoremedy.store.base import ClaimedDelivery, Escalation
from autoremedy.store.reads import load_run
from autoremedy.store.rows import escalation_from_row, event_from_row
from autoremedy.store.tx import Tx

ChooseChannels = Callable[[Escalation, AlertEvent | None], list[str]]


class Notice(NamedTuple):
    run_id: RunId | None
    fingerprint: Fingerprint
    rule: RuleName
    trigger: Trigger
    detail: str
    kind: NotificationKind = NotificationKind.TRIGGER


async def escalate(tx: Tx, notice: Notice, now: datetime) -> None:
    """Queue an escalation in the outbox, in the caller's transaction; the notifier fans it out to channels."""
    await tx.run("insert_escalation", **notice._asdict(), created_at=now)


async def resolve_escalations(
    tx: Tx, fingerprint: Fingerprint, *, rule: RuleName | None, trigger: Trigger, detail: str, now: datetime
) -> bool:
    """A resolve for each rule whose triggers for this alert are still open; True when one was queued."""
    rows = await tx.rows("open_escalated_rules", fingerprint=fingerprint, rule=rule)
    for row in rows:
        notice = Notice(row["run_id"], fingerprint, row["rule"], trigger, detail, kind=NotificationKind.RESOLVE)
        await escalate(tx, notice, now)
    return bool(rows)


async def fan_out(tx: Tx, choose: ChooseChannels, now: datetime, limit: int) -> list[tuple[int, list[str]]]:
    """Deliveries for new escalations: a trigger goes where the policy says, a resolve where its triggers went."""
    done = []
    for row in await tx.rows("escalations_to_fan_out", limit=limit):
        escalation = escalation_from_row(row)
        if escalation.kind == NotificationKind.RESOLVE:
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
    if escalation.kind != NotificationKind.RESOLVE:
        return None
    row = await tx.row("thread_reference", fingerprint=escalation.fingerprint, rule=escalation.rule, channel=channel)
    return str(row["reference"]) if row is not None and row["reference"] else None
