"""Recording decisions: a whole batch of claimed events in one transaction, with exactly the outcome recording them
one at a time would have had (same runs, verdicts, audit and escalations, in the same order).

The batch takes the breaker row lock first (PostgreSQL: `FOR UPDATE`; SQLite's write transaction is exclusive), so
verdicts across replicas are still made one at a time on facts that cannot change under them. Guardrail facts are
read at most once per batch for each rule, target and window, and brought up to date in memory with the runs the
batch decides; runs, steps, audit entries, escalations and event updates are written in bulk. A resolved alert
changes stored runs (it cancels and wakes them), so before one is handled what the batch has decided so far is
written and the facts are read again.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autoremedy.decide.guardrails import BreakerState, Guard, GuardFacts, Verdict, status_for
from autoremedy.models.events import AlertEvent, EventState
from autoremedy.models.ids import RuleName
from autoremedy.models.notifications import Trigger
from autoremedy.models.runs import RunStatus
from autoremedy.store.audit import insert_audit
from autoremedy.store.base import AuditEntry, DecidedRun, Decision, EventDecision, NewRun
from autoremedy.store.breaker import read_breaker, write_breaker
from autoremedy.store.outbox import Notice, escalate
from autoremedy.store.resolutions import on_resolved
from autoremedy.store.rows import time_of
from autoremedy.store.tx import Tx

FINAL_AT_ONCE = frozenset({RunStatus.SKIPPED, RunStatus.FAILED})
"""A new run in one of these is finished when decided: it neither holds its target nor counts as a run."""
MAX_ERROR_CHARS = 2000


async def record_batch(tx: Tx, batch: Sequence[EventDecision], now: datetime) -> list[Decision]:
    recording = _Batch(tx, await read_breaker(tx, lock=True), now)
    decisions = [await recording.record(item) for item in batch]
    await recording.writes.flush(tx, now)
    await write_breaker(tx, recording.breaker)
    return decisions


def made_due(decision: Decision) -> bool:
    """Whether recording it left a run due to be claimed now: a new planned run, or a waiting run it woke."""
    return bool(decision.woken) or any(run.status is RunStatus.PLANNED for run in decision.runs)


class _Batch:
    """One batch being recorded: its facts, its unwritten rows, and the breaker as the batch leaves it."""

    def __init__(self, tx: Tx, breaker: BreakerState, now: datetime) -> None:
        self.tx, self.breaker, self.now = tx, breaker, now
        self.facts, self.writes = _Facts(tx), _Writes()

    async def record(self, item: EventDecision) -> Decision:
        event = item.event
        cancelled: list[str] = []
        woken: list[str] = []
        if event.status == "resolved":
            # The resolution must see (and may cancel) the runs decided earlier in the batch.
            await self.writes.flush(self.tx, self.now)
            cancelled, woken = await on_resolved(self.tx, event, self.now)
            self.facts.forget()
        decided = [await self._decide_run(event, run, item.guard) for run in item.runs]
        self.writes.audit(item.audit, self.now)
        state = EventState.DONE if item.runs else EventState.NO_RULE_MATCHED
        self.writes.finished.setdefault(state, []).append(event.id)
        return Decision(decided, cancelled, woken)

    async def _decide_run(self, event: AlertEvent, run: NewRun, guard: Guard) -> DecidedRun:
        writes, now = self.writes, self.now
        if run.status is RunStatus.FAILED:
            writes.run(run, now, status=RunStatus.FAILED, verdict=None, expires_at=None)
            writes.escalate(Notice(run.id, event.fingerprint, run.rule, Trigger.PLAN_FAILED, run.reason), now)
            return DecidedRun(run.id, run.rule, RunStatus.FAILED, None)
        facts = await self.facts.for_run(run, guard, self.breaker)
        verdict, self.breaker = guard.verdict(run.rule, facts, mutates=run.mutates)
        status = status_for(verdict.decision)
        expires = guard.approval_expiry() if status is RunStatus.AWAITING_APPROVAL else None
        writes.run(run, now, status=status, verdict=verdict, expires_at=expires)
        self.facts.decided(run, status, now)
        writes.audit([_verdict_audit(event, run, verdict)], now)
        if verdict.escalate is not None:
            writes.escalate(Notice(run.id, event.fingerprint, run.rule, verdict.escalate, verdict.detail), now)
        if status is RunStatus.AWAITING_APPROVAL:  # the hook approval requests (Slack buttons) go out through
            writes.escalate(
                Notice(run.id, event.fingerprint, run.rule, Trigger.APPROVAL_REQUESTED, verdict.detail), now
            )
        return DecidedRun(run.id, run.rule, status, verdict)


# -- facts ----------------------------------------------------------------------------------------------------


class _Unwritten:
    """The runs decided in this batch and not yet written, which the facts count as if they were; indexed, since
    a storm in which every alert acts puts a thousand runs in one batch and each asks about the ones before."""

    def __init__(self) -> None:
        self.on_target: dict[str, str] = {}
        """The latest run on each target."""
        self.times: dict[tuple[str, str], list[datetime]] = {}
        """When each rule's runs on each target were created, oldest first."""
        self.mutating: list[datetime] = []
        """When the runs that count for the breaker were created, oldest first."""

    def add(self, run: NewRun, now: datetime) -> None:
        self.on_target[run.target] = run.id
        self.times.setdefault((run.rule, run.target), []).append(now)
        if run.mutates:
            self.mutating.append(now)

    def clear(self) -> None:
        self.on_target.clear()
        self.times.clear()
        self.mutating.clear()


class _Facts:
    """Guardrail facts for one batch: each read from the store at most once, plus the batch's unwritten runs."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx
        self._paused: dict[str, str | None] = {}
        self._active: dict[str, str | None] = {}
        self._times: dict[tuple[str, str, datetime], list[datetime]] = {}
        self._counts: dict[datetime, int] = {}
        self._unwritten = _Unwritten()

    def forget(self) -> None:
        """The store changed under the facts (the batch's runs written, a resolution applied): read again."""
        self._paused.clear()
        self._active.clear()
        self._times.clear()
        self._counts.clear()
        self._unwritten.clear()

    def decided(self, run: NewRun, status: RunStatus, now: datetime) -> None:
        if status not in FINAL_AT_ONCE:  # it holds its target and counts towards cooldowns, budgets, the breaker
            self._unwritten.add(run, now)

    async def for_run(self, run: NewRun, guard: Guard, breaker: BreakerState) -> GuardFacts:
        history_since, breaker_since = guard.history_since(run.rule), guard.breaker_since(breaker)
        return GuardFacts(
            paused=await self._paused_scope(run.rule),
            active_run_on_target=await self._active_run(run.target),
            run_times=await self._run_times(run.rule, run.target, history_since),
            global_runs_in_window=await self._global_runs(breaker_since),
            breaker=breaker,
        )

    async def _paused_scope(self, rule: str) -> str | None:
        if rule not in self._paused:
            row = await self._tx.row("paused_scope", rule=rule)
            self._paused[rule] = row["scope"] if row else None
        return self._paused[rule]

    async def _active_run(self, target: str) -> str | None:
        if target in self._unwritten.on_target:
            return self._unwritten.on_target[target]
        if target not in self._active:
            row = await self._tx.row("active_run_on_target", target=target)
            self._active[target] = row["id"] if row else None
        return self._active[target]

    async def _run_times(self, rule: str, target: str, since: datetime) -> list[datetime]:
        key = (rule, target, since)
        if key not in self._times:
            rows = await self._tx.rows("counted_run_times", rule=rule, target=target, since=since)
            self._times[key] = [t for t in (time_of(row["created_at"]) for row in rows) if t is not None]
        mine = _since(self._unwritten.times.get((rule, target), []), since)
        return sorted([*self._times[key], *mine], reverse=True)

    async def _global_runs(self, since: datetime) -> int:
        if since not in self._counts:
            row = await self._tx.row("count_counted_runs", since=since)
            self._counts[since] = int(row["n"]) if row else 0
        mutating = self._unwritten.mutating
        return self._counts[since] + len(mutating) - bisect_left(mutating, since)


def _since(times: list[datetime], since: datetime) -> list[datetime]:
    """The times at or after `since` of a list kept oldest first."""
    return times[bisect_left(times, since) :]


# -- writes ---------------------------------------------------------------------------------------------------


@dataclass
class _Writes:
    """The batch's inserts and updates, kept in decision order and written in bulk, one statement kind at a time."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    audits: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[dict[str, Any]] = field(default_factory=list)
    finished: dict[EventState, list[int]] = field(default_factory=dict)
    """Ids of the events decided, by the state they end in: one update per state."""

    def run(
        self, run: NewRun, now: datetime, *, status: RunStatus, verdict: Verdict | None, expires_at: datetime | None
    ) -> None:
        final = status in FINAL_AT_ONCE
        self.runs.append(
            {
                "id": run.id,
                "event_id": run.event_id,
                "status": status.value,
                "reason": verdict.detail if verdict is not None and status is not RunStatus.PLANNED else run.reason,
                "rule": run.rule,
                "playbook": run.playbook,
                "target": run.target,
                "fingerprint": run.fingerprint,
                "alert_status": run.alert_status,
                "dry_run": int(run.dry_run),
                "created_at": now,
                "finished_at": now if final else None,
                "guardrail": verdict.reason if verdict is not None else "not_asked",
                "counted": int(not final),
                "not_before": verdict.not_before if verdict is not None else None,
                "expires_at": expires_at,
                "mutating": int(run.mutates),
            }
        )
        outcome = "not_run" if final else "pending"
        self.steps.extend(
            {
                "run_id": run.id,
                "idx": step.index,
                "name": step.name,
                "action": step.action,
                "inputs": json.dumps(step.inputs),
                "outcome": outcome,
            }
            for step in run.steps
        )

    def audit(self, entries: Sequence[AuditEntry], now: datetime) -> None:
        self.audits.extend(
            {
                "at": now,
                "kind": entry.kind,
                "run_id": entry.run_id,
                "fingerprint": entry.fingerprint,
                "actor": entry.actor,
                "message": entry.message,
                "data": json.dumps(entry.data),
            }
            for entry in entries
        )

    def escalate(self, notice: Notice, now: datetime) -> None:
        self.escalations.append({**notice._asdict(), "created_at": now})

    async def flush(self, tx: Tx, now: datetime) -> None:
        for query, rows in (
            ("insert_guarded_run", self.runs),
            ("insert_step", self.steps),
            ("insert_audit", self.audits),
            ("insert_escalation", self.escalations),
        ):
            await tx.run_many(query, rows)
            rows.clear()
        for state, ids in self.finished.items():
            await tx.run("finish_events", state=state.value, ids=json.dumps(ids), now=now)
        self.finished.clear()


def _verdict_audit(event: AlertEvent, run: NewRun, verdict: Verdict) -> AuditEntry:
    data = {
        "event_id": event.id,
        "rule": run.rule,
        "playbook": run.playbook,
        "target": run.target,
        "decision": verdict.decision.value,
        "guardrail": verdict.reason,
    }
    return AuditEntry(f"verdict_{verdict.reason}", verdict.detail, run.id, event.fingerprint, data=data)


# -- failures -------------------------------------------------------------------------------------------------


async def record_failure(
    tx: Tx, event: AlertEvent, error: str, *, permanent: bool, max_attempts: int, rule: RuleName, now: datetime
) -> bool:
    """A claimed event whose decision failed: requeued with the failure counted, or dead-lettered (permanent, or
    failed `max_attempts` times) with an audit entry and an escalation. True when dead-lettered."""
    error = printable(error)
    if not permanent:
        requeued = await tx.row("requeue_failed_event", id=event.id, error=error, max_attempts=max_attempts)
        if requeued is not None:
            return False
    row = await tx.row("dead_letter_event", id=event.id, error=error, now=now)
    if row is None:  # no longer claimed (a recovery requeued it meanwhile): whoever claims it next decides it
        return False
    attempts = int(row["decide_attempts"])
    message = f"deciding the alert failed ({attempts} attempt{'s' if attempts > 1 else ''}); dead-lettered: {error}"
    data = {"event_id": event.id, "attempts": attempts, "error": error, "alert_status": event.status}
    await insert_audit(tx, [AuditEntry("event_dead_lettered", message, fingerprint=event.fingerprint, data=data)], now)
    await escalate(tx, Notice(None, event.fingerprint, rule, Trigger.PLAN_FAILED, message), now)
    return True


def printable(text: str) -> str:
    """An error message safe to store anywhere (a NUL byte is what made some of them), and not too long."""
    cleaned = "".join(ch if ch.isprintable() or ch in "\n\t" else f"\\x{ord(ch):02x}" for ch in text)
    return cleaned[:MAX_ERROR_CHARS]
