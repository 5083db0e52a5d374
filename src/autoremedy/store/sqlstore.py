"""The Store contract implemented once over a `Tx`; each backend provides transactions, reads and its hot path.

A backend subclasses SqlStore and implements `_write()` (a transaction), `_read()` (a read session), `open`,
`close`, `insert_events` (the webhook's hot path, batched its own way) and `stale_before` (when a run's owner
counts as dead).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from autoremedy.clock import SYSTEM_CLOCK
from autoremedy.decide.guardrails import BreakerState, Guard
from autoremedy.models.events import AlertEvent, NewEvent
from autoremedy.models.ids import RuleName, RunId
from autoremedy.models.notifications import Trigger
from autoremedy.models.runs import Run, RunStatus, StepRecord
from autoremedy.store import approvals, decisions, outbox, run_lifecycle
from autoremedy.store.audit import insert_audit
from autoremedy.store.base import (
    AuditEntry,
    AuditRecord,
    ClaimedDelivery,
    DeadEvent,
    Decision,
    DeliveryRecord,
    Escalation,
    EventDecision,
    InsertOutcome,
    NewRun,
    NotAwaitingApproval,
    Pause,
    Recorded,
    Recovery,
)
from autoremedy.store.breaker import read_breaker, write_breaker
from autoremedy.store.consolestore import ConsoleStoreMixin
from autoremedy.store.reads import load_run
from autoremedy.store.rows import (
    audit_from_row,
    dead_event_from_row,
    escalation_from_row,
    event_from_row,
    run_from_rows,
    time_of,
)
from autoremedy.store.tx import Tx

T = TypeVar("T")
MAX_TAKEOVERS = 3
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PRUNE_STEPS = ("prune_steps", "prune_runs", "prune_deliveries", "prune_escalations", "prune_events", "prune_audit")


class SqlStore(ConsoleStoreMixin, ABC):
    owner: str
    """This daemon instance: the owner of the runs it executes."""
    takeover_after: timedelta
    """A run whose heartbeat is older than this belongs to a dead instance and is taken over."""
    solo = False
    """True when only one process can use the store (SQLite): at start, every other owner is known dead."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def _write(self) -> AbstractAsyncContextManager[Tx]: ...

    @abstractmethod
    def _read(self) -> AbstractAsyncContextManager[Tx]: ...

    @abstractmethod
    async def insert_events(self, events: Sequence[NewEvent], *, now: datetime) -> list[InsertOutcome]: ...

    async def _transact(self, work: Callable[[Tx], Awaitable[T]], *, urgent: bool = False) -> T:
        """`work` in one write transaction. A backend may run it its own way (SQLite: on the writer thread in one
        hop, where the statements need no await) as long as it commits or rolls back the same. `urgent`: the run
        stage's writes, which a backend with one writer (SQLite) puts before queued ingest and decisions."""
        async with self._write() as tx:
            return await work(tx)

    def stale_before(self, now: datetime) -> datetime:
        return now - self.takeover_after

    async def ping(self) -> None:
        async with self._read() as tx:
            await tx.row("select_one")

    # -- events -----------------------------------------------------------------------------------------------

    async def claim_events(self, *, limit: int, now: datetime) -> list[AlertEvent]:
        rows = await self._transact(lambda tx: tx.rows("claim_events", owner=self.owner, now=now, limit=limit))
        return sorted((event_from_row(row) for row in rows), key=lambda event: event.id)

    async def claim_event(self, *, now: datetime) -> AlertEvent | None:
        claimed = await self.claim_events(limit=1, now=now)
        return claimed[0] if claimed else None

    async def get_event(self, event_id: int) -> AlertEvent | None:
        async with self._read() as tx:
            row = await tx.row("get_event", id=event_id)
        return event_from_row(row) if row is not None else None

    async def pending_events(self) -> int:
        async with self._read() as tx:
            row = await tx.row("count_pending_events")
        return int(row["n"]) if row else 0

    async def record_decision(
        self, event: AlertEvent, runs: Sequence[NewRun], audit: Sequence[AuditEntry], *, guard: Guard, now: datetime
    ) -> Decision:
        (decision,) = await self.record_decisions([EventDecision(event, runs, audit, guard)], now=now)
        return decision

    async def record_decisions(self, batch: Sequence[EventDecision], *, now: datetime) -> list[Decision]:
        return await self._transact(lambda tx: decisions.record_batch(tx, batch, now))

    async def record_and_claim(self, batch: Sequence[EventDecision], *, now: datetime, limit: int) -> Recorded:
        stale_before = self.stale_before(now)

        async def work(tx: Tx) -> Recorded:
            decided = await decisions.record_batch(tx, batch, now)
            if limit <= 0 or not any(decisions.made_due(decision) for decision in decided):
                return Recorded(decided, [])
            claimed = await run_lifecycle.claim_runs(
                tx, owner=self.owner, now=now, stale_before=stale_before, limit=limit
            )
            return Recorded(decided, claimed)

        return await self._transact(work)

    async def record_decision_failure(
        self, event: AlertEvent, error: str, *, permanent: bool, max_attempts: int, rule: RuleName, now: datetime
    ) -> bool:
        async with self._write() as tx:
            return await decisions.record_failure(
                tx, event, error, permanent=permanent, max_attempts=max_attempts, rule=rule, now=now
            )

    async def oldest_pending(self) -> datetime | None:
        async with self._read() as tx:
            row = await tx.row("oldest_pending_event")
        return time_of(row["received_at"]) if row is not None else None

    async def dead_events(self, *, limit: int) -> tuple[int, list[DeadEvent]]:
        async with self._read() as tx:
            count = await tx.row("count_dead_events")
            rows = await tx.rows("list_dead_events", limit=limit)
        return int(count["n"]) if count else 0, [dead_event_from_row(row) for row in rows]

    # -- runs -------------------------------------------------------------------------------------------------

    # The run stage's writes go through _transact too, urgent: under a webhook storm, a run's claim and step writes
    # must not each need several turns of the saturated event loop (SQLite: one hop to the writer thread per
    # transaction), nor wait behind the group commits and decision batches queued for the writer.

    async def claim_run(self, *, now: datetime) -> Run | None:
        claimed = await self.claim_runs(limit=1, now=now)
        return claimed[0] if claimed else None

    async def claim_runs(self, *, limit: int, now: datetime) -> list[Run]:
        stale_before = self.stale_before(now)
        return await self._transact(
            lambda tx: run_lifecycle.claim_runs(tx, owner=self.owner, now=now, stale_before=stale_before, limit=limit),
            urgent=True,
        )

    async def heartbeat(self, *, now: datetime) -> dict[str, int]:
        rows = await self._transact(lambda tx: tx.rows("heartbeat", owner=self.owner, now=now), urgent=True)
        return {row["id"]: int(row["epoch"]) for row in rows}

    async def update_step(self, run_id: RunId, step: StepRecord, *, epoch: int) -> None:
        await self.update_steps(run_id, [step], epoch=epoch)

    async def update_steps(self, run_id: RunId, steps: Sequence[StepRecord], *, epoch: int) -> None:
        fence = run_lifecycle.Fence(run_id, self.owner, epoch)
        params = [run_lifecycle.step_params(fence, step) for step in steps]  # encoded by the caller, see step_params
        await self._transact(lambda tx: run_lifecycle.record_steps(tx, fence, params), urgent=True)

    async def finish_run(
        self,
        run_id: RunId,
        status: RunStatus,
        reason: str,
        audit: Sequence[AuditEntry],
        *,
        now: datetime,
        epoch: int,
        escalation: Trigger | None = None,
        steps: Sequence[StepRecord] = (),
    ) -> bool:
        fence = run_lifecycle.Fence(run_id, self.owner, epoch)
        params = [run_lifecycle.step_params(fence, step) for step in steps]
        return await self._transact(
            lambda tx: run_lifecycle.finish_run(
                tx, fence, status, reason, audit, now=now, escalation=escalation, steps=params
            ),
            urgent=True,
        )

    async def suspend_run(self, run_id: RunId, *, reason: str, wait_until: datetime, now: datetime, epoch: int) -> None:
        fence = run_lifecycle.Fence(run_id, self.owner, epoch)
        await self._transact(
            lambda tx: run_lifecycle.suspend_run(tx, fence, reason=reason, wait_until=wait_until, now=now),
            urgent=True,
        )

    async def resolution_of(self, event_id: int) -> datetime | None:
        async with self._read() as tx:
            row = await tx.row("resolution_of_event", event_id=event_id)
        return time_of(row["received_at"]) if row is not None else None

    async def recover(self, *, reason: str, now: datetime) -> Recovery:
        """Events a dead instance was deciding go back to the queue; runs it was executing are resumed by whoever
        claims them next, unless they were taken over too often (then interrupted with the reason)."""
        stale = self.stale_before(now)
        async with self._write() as tx:
            if self.solo:
                await tx.run("orphan_other_owners_runs", owner=self.owner, epoch=EPOCH)
                await tx.run("orphan_other_owners_events", owner=self.owner, epoch=EPOCH)
            requeued = await tx.run("requeue_processing_events", stale_before=stale)
            rows = await tx.rows(
                "interrupt_running_runs", reason=reason, now=now, stale_before=stale, max_takeovers=MAX_TAKEOVERS
            )
            for row in rows:
                await tx.run("close_unfinished_steps", run_id=row["id"])
                message = f"run interrupted: {reason}"
                await insert_audit(tx, [AuditEntry("run_interrupted", message, row["id"], row["fingerprint"])], now)
                if not row["dry_run"]:  # half-done work: people hear about it like a failure
                    notice = outbox.Notice(row["id"], row["fingerprint"], row["rule"], Trigger.RUN_INTERRUPTED, message)
                    await outbox.escalate(tx, notice, now)
        return Recovery(requeued_events=requeued, interrupted_runs=[row["id"] for row in rows])

    async def get_run(self, run_id: str) -> Run | None:
        async with self._read() as tx:
            return await load_run(tx, run_id)

    async def list_runs(self, *, status: RunStatus | None, limit: int) -> list[Run]:
        async with self._read() as tx:
            rows = await tx.rows("list_runs", status=status.value if status else None, limit=limit)
            return [run_from_rows(row, await tx.rows("list_steps", run_id=row["id"])) for row in rows]

    async def list_audit(self, *, run_id: str | None, limit: int) -> list[AuditRecord]:
        async with self._read() as tx:
            rows = await tx.rows("list_audit", run_id=run_id, limit=limit)
        return [audit_from_row(row) for row in rows]

    async def fingerprint_audit(self, fingerprint: str, *, limit: int) -> list[AuditRecord]:
        async with self._read() as tx:
            rows = await tx.rows("list_audit_of_fingerprint", fingerprint=fingerprint, limit=limit)
        return [audit_from_row(row) for row in rows]

    async def record_audit(self, entries: Sequence[AuditEntry], *, now: datetime) -> None:
        async with self._write() as tx:
            await insert_audit(tx, entries, now)

    async def remember_request(self, signature: str, *, now: datetime, keep: timedelta) -> bool:
        async with self._write() as tx:
            await tx.run("prune_slack_signatures", before=now - keep)
            return await tx.run("remember_slack_signature", signature=signature, at=now) > 0

    # -- approvals, pauses, breaker ----------------------------------------------------------------------------

    async def approve(self, run_id: RunId, *, actor: str, reason: str, now: datetime) -> Run | None:
        return await self._approval(run_id, approved=True, actor=actor, reason=reason, now=now)

    async def deny(self, run_id: RunId, *, actor: str, reason: str, now: datetime) -> Run | None:
        return await self._approval(run_id, approved=False, actor=actor, reason=reason, now=now)

    async def _approval(self, run_id: RunId, *, approved: bool, actor: str, reason: str, now: datetime) -> Run | None:
        async with self._write() as tx:
            result = await approvals.settle_approval(tx, run_id, approved=approved, actor=actor, reason=reason, now=now)
        if result is False:
            raise NotAwaitingApproval(f"run {run_id} is not awaiting approval")
        return result if isinstance(result, Run) else None

    async def expire_approvals(self, *, now: datetime) -> list[str]:
        async with self._write() as tx:
            return await approvals.expire_approvals(tx, now)

    async def set_pause(self, scope: str, *, actor: str, reason: str, now: datetime) -> None:
        async with self._write() as tx:
            await tx.run("set_pause", scope=scope, actor=actor, reason=reason, at=now)
            entry = AuditEntry("paused", f"{scope} paused: {reason}", actor=actor, data={"scope": scope})
            await insert_audit(tx, [entry], now)

    async def clear_pause(self, scope: str, *, actor: str, now: datetime) -> bool:
        async with self._write() as tx:
            removed = await tx.run("clear_pause", scope=scope) > 0
            if removed:
                entry = AuditEntry("resumed", f"{scope} resumed", actor=actor, data={"scope": scope})
                await insert_audit(tx, [entry], now)
            return removed

    async def pauses(self) -> list[Pause]:
        async with self._read() as tx:
            rows = await tx.rows("list_pauses")
        return [Pause(r["scope"], r["actor"], r["reason"], time_of(r["at"]) or SYSTEM_CLOCK.now()) for r in rows]

    async def breaker(self) -> BreakerState:
        async with self._read() as tx:
            return await read_breaker(tx)

    async def close_breaker(self, *, actor: str, now: datetime) -> bool:
        async with self._write() as tx:
            was_open = (await read_breaker(tx, lock=True)).open
            await write_breaker(tx, BreakerState(closed_at=now))
            if was_open:
                entry = AuditEntry("breaker_closed", "circuit breaker closed by command", actor=actor)
                await insert_audit(tx, [entry], now)
            return was_open

    async def escalations(self, *, limit: int) -> list[Escalation]:
        async with self._read() as tx:
            rows = await tx.rows("list_escalations", limit=limit)
        return [escalation_from_row(row) for row in rows]

    async def active_counts(self) -> dict[str, int]:
        async with self._read() as tx:
            rows = await tx.rows("count_runs_by_status")
        return {row["status"]: int(row["n"]) for row in rows}

    # -- escalation outbox ------------------------------------------------------------------------------------

    async def fan_out(self, choose: outbox.ChooseChannels, *, now: datetime, limit: int) -> list[tuple[int, list[str]]]:
        async with self._write() as tx:
            return await outbox.fan_out(tx, choose, now, limit)

    async def outbox_has_work(self, *, now: datetime) -> bool:
        async with self._read() as tx:
            return await tx.row("outbox_has_work", now=now) is not None

    async def claim_deliveries(self, *, now: datetime, limit: int, lease: timedelta) -> list[ClaimedDelivery]:
        async with self._write() as tx:
            return await outbox.claim_deliveries(tx, now, limit=limit, lease=lease)

    async def delivery_sent(self, delivery_id: int, *, reference: str | None, now: datetime) -> None:
        async with self._write() as tx:
            await tx.run("delivery_sent", id=delivery_id, reference=reference, now=now)

    async def delivery_retry(self, delivery_id: int, *, error: str, next_attempt_at: datetime) -> None:
        async with self._write() as tx:
            await tx.run("delivery_retry", id=delivery_id, error=error, next_attempt_at=next_attempt_at)

    async def delivery_failed(self, delivery_id: int, *, error: str) -> None:
        async with self._write() as tx:
            await tx.run("delivery_failed", id=delivery_id, error=error)

    async def deliveries(self, *, limit: int) -> list[DeliveryRecord]:
        async with self._read() as tx:
            rows = await tx.rows("list_deliveries", limit=limit)
        return [
            DeliveryRecord(
                id=r["id"],
                escalation_id=r["escalation_id"],
                channel=r["channel"],
                state=r["state"],
                attempts=r["attempts"],
                last_error=r["last_error"],
                reference=r["reference"],
                trigger=r["trigger"],
                kind=r["kind"],
                fingerprint=r["fingerprint"],
                rule=r["rule"],
            )
            for r in rows
        ]

    # -- retention --------------------------------------------------------------------------------------------

    async def prune(self, *, before: datetime) -> dict[str, int]:
        """Delete finished runs, their steps, sent escalations, done events and audit entries older than `before`."""
        async with self._write() as tx:
            return {name.removeprefix("prune_"): await tx.run(name, before=before) for name in PRUNE_STEPS}
