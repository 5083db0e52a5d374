"""The decision stage: stored alert events become runs, a batch at a time, in a task of its own.

A turn claims up to `batch_size` pending events in one transaction, decides each in memory with the pure core (one
ruleset and one instant for the whole batch) and records every decision in one more transaction
(store/decisions.py). The task is woken by every commit of new events and, while events wait, takes its next batch
at once: the store's write lock is first come, first served, so under a webhook storm a batch waits for at most
the group commit ahead of it, and deciding keeps its share of the process instead of queueing behind every
request (measured in docs/benchmarks.md).

A batch that cannot be recorded is split in halves until the event at fault is found (poison isolation): the rest
of the batch is recorded, and that event is requeued with its failure counted, or dead-lettered (status `dead`, an
audit entry, a `plan_failed` escalation) when the failure is permanent or happened `max_attempts` times. A store
that cannot be reached is not the events' fault: their claims are left to go stale and be requeued.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from autoremedy.background import AT_ONCE, BackgroundLoop
from autoremedy.clock import SYSTEM_CLOCK
from autoremedy.decide.guardrails import CompiledWindow, Guard
from autoremedy.decide.planning import Plan, Ruleset, matching_rules, plans_for
from autoremedy.decide.redact import redact
from autoremedy.engine.executor import Prepared
from autoremedy.models.clock import Clock
from autoremedy.models.events import AlertEvent
from autoremedy.models.guardrails import GuardrailSettings
from autoremedy.models.ids import RuleName, RunId
from autoremedy.models.rules import Rule
from autoremedy.models.runs import FINAL_STATUSES, GuardrailReason, Run, RunStatus
from autoremedy.observability import Metrics, get_logger
from autoremedy.store.base import AuditEntry, Decision, EventDecision, NewRun, NewStep, Store, StoreUnavailable

log = get_logger("autoremedy.decider")
QUEUE_METRICS_EVERY = 1.0
"""Seconds between reads of the queue's age and the breaker for /metrics."""
QUEUE_COUNT_EVERY = 10.0
"""Seconds between exact counts of the queue while it is not empty (a count of a million rows is not free)."""
NO_RULE = RuleName("-")
"""The rule an escalation names when deciding an event failed before any rule was known."""
EVERY_FREE_SLOT = 1 << 30
"""What a batch asks of the worker's free slots when it cannot tell how many runs it will leave due."""
MAX_GROWTH = 2
"""While a backlog lasts, batches grow up to this many times `batch_size`: under a webhook storm every await
waits for the event loop's turn, so fewer, larger batches are what keeps deciding's share."""


@dataclass(frozen=True, slots=True)
class DecideSettings:
    dry_run: bool
    guardrails: GuardrailSettings
    windows: Sequence[CompiledWindow]
    batch_size: int = 500
    max_attempts: int = 3
    poll_interval: float = 2.0


class Decider:
    def __init__(
        self,
        *,
        store: Store,
        rules: Callable[[], Ruleset],
        metrics: Metrics,
        action_mutates: Callable[[str], bool],
        settings: DecideSettings,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._rules = rules
        self._metrics = metrics
        self._action_mutates = action_mutates
        self._settings = settings
        self._clock = clock
        self._metrics_at = -QUEUE_METRICS_EVERY
        self._counted_at = -QUEUE_COUNT_EVERY
        self._limit = settings.batch_size
        self._loop = BackgroundLoop(
            "decider", self._turn, poll_interval=settings.poll_interval, errors=metrics.loop_errors, clock=clock
        )
        self.on_planned: Callable[[], None] = lambda: None
        """Called when a batch left runs due that its transaction did not claim for the worker (wakes the worker)."""
        self.runner: Runner = _NO_RUNNER
        """This instance's worker: the batch's transaction claims as many due runs as it has free slots."""
        self._claimed: list[Run] = []
        self._plans: dict[str, Plan] = {}
        """The plans this batch rendered, by run: handed to the worker with the runs it claims."""
        self.on_outcome: Callable[[], None] = lambda: None
        """Called when a batch may have queued escalations (wakes the escalation sender)."""

    def wake(self) -> None:
        self._loop.wake()

    @property
    def task(self) -> asyncio.Task[None] | None:
        """Its long-lived task, for supervision: one that ends before stop() is a fault."""
        return self._loop.task

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Finish the batch in hand, then stop; events still queued are decided at the next start."""
        await self._loop.stop()

    async def _turn(self) -> float | None:
        """One batch; a bug raised here is counted and backed off by the loop, and its claims go stale."""
        claimed, limit = 0, self._limit
        try:
            claimed = await self.decide_batch()
            await self._queue_metrics(drained=claimed < limit)
        except StoreUnavailable as exc:
            await log.aerror("store unavailable; will retry", error=str(exc))
        full = claimed >= limit
        base = self._settings.batch_size
        self._limit = min(limit * 2, base * MAX_GROWTH) if full else base
        # More wait: the loop lets what is ready run, then takes the next batch at once.
        return AT_ONCE if full else None

    async def decide_batch(self) -> int:
        """Claim, decide and record one batch; the number of events claimed (0: the queue is empty)."""
        started = time.perf_counter()
        now = self._clock.now()
        events = await self._store.claim_events(limit=self._limit, now=now)
        if not events:
            return 0
        self._metrics.decide_batch_size.observe(len(events))
        self._metrics.backlog.add(-len(events))
        ruleset = self._rules()
        rules = {compiled.rule.name: compiled.rule for compiled in ruleset.rules}
        batch: list[EventDecision] = []
        for event in events:
            try:
                batch.append(self._decide(event, ruleset, rules, now))
            except Exception as exc:  # a bug in deciding fails this event, not the batch nor the loop
                await log.aexception("deciding failed", event_id=event.id, fingerprint=event.fingerprint)
                await self._failed(event, exc, permanent=True, rule=NO_RULE, now=now)
        reserved = self.runner.reserve(_may_make_due(batch))
        try:
            recorded = await self._record(batch, now, reserved)
        finally:  # the slots go back to the worker whatever happened, with the runs claimed for them
            claimed, self._claimed = self._claimed, []
            by_id = {event.id: event for event in events}
            plans, self._plans = self._plans, {}
            prepared = [(run, Prepared(by_id.get(run.event_id), plans.get(run.id), ruleset)) for run in claimed]
            self.runner.hand_over(prepared, reserved=reserved)
        await self._account(recorded, claimed={run.id for run in claimed})
        self._metrics.decide_batch_duration.observe(time.perf_counter() - started)
        return len(events)

    def _decide(self, event: AlertEvent, ruleset: Ruleset, rules: dict[str, Rule], now: datetime) -> EventDecision:
        guard = Guard(
            rules=rules,
            windows=self._settings.windows,
            settings=self._settings.guardrails,
            labels=event.labels,
            now=now,
        )
        matched = matching_rules(ruleset, event.labels, event.status)
        plans = plans_for(ruleset, matched, event.template_view(), dry_run=self._settings.dry_run) if matched else []
        runs = [_new_run(event, plan, mutates=self._mutates(plan)) for plan in plans]
        self._plans.update((run.id, plan) for run, plan in zip(runs, plans, strict=True) if plan.error is None)
        audit = [_failure_audit(event, run) for run in runs if run.status is RunStatus.FAILED]
        return EventDecision(event, runs, audit, guard)

    def _mutates(self, plan: Plan) -> bool:
        # An unrendered plan runs nothing; it is failed before the breaker is asked, so either answer is right.
        return plan.error is not None or any(self._action_mutates(step.action) for step in plan.steps)

    # -- recording, with poison isolation ---------------------------------------------------------------------

    async def _record(
        self, batch: list[EventDecision], now: datetime, slots: int
    ) -> list[tuple[EventDecision, Decision]]:
        """Records the batch; its transaction claims due runs for up to `slots` minus those claimed so far."""
        if not batch:
            return []
        try:
            limit = slots - len(self._claimed)
            decisions, claimed = await self._store.record_and_claim(batch, now=now, limit=limit)
            self._claimed.extend(claimed)
            return list(zip(batch, decisions, strict=True))
        except Exception as exc:
            if isinstance(exc, StoreUnavailable) and not await self._reachable():
                raise  # not the events' fault: their claims go stale and they are decided again
            if len(batch) == 1:
                item = batch[0]
                rule = item.runs[0].rule if item.runs else NO_RULE
                await self._failed(item.event, exc, permanent=_permanent(exc), rule=rule, now=now)
                return []
            half = len(batch) // 2
            return await self._record(batch[:half], now, slots) + await self._record(batch[half:], now, slots)

    async def _reachable(self) -> bool:
        try:
            await self._store.ping()
        except StoreUnavailable:
            return False
        return True

    async def _failed(
        self, event: AlertEvent, exc: Exception, *, permanent: bool, rule: RuleName, now: datetime
    ) -> None:
        self._metrics.decision_failures.inc()
        error = f"{type(exc).__name__}: {exc}"
        dead = await self._store.record_decision_failure(
            event, error, permanent=permanent, max_attempts=self._settings.max_attempts, rule=rule, now=now
        )
        if dead:
            self._metrics.events_decided.labels("dead_lettered").inc()
            self.on_outcome()
            await log.aerror("event dead-lettered", event_id=event.id, fingerprint=event.fingerprint, error=error)
        else:
            await log.awarning("decision failed; requeued", event_id=event.id, error=error)

    # -- what a batch did -------------------------------------------------------------------------------------

    async def _account(self, recorded: list[tuple[EventDecision, Decision]], *, claimed: set[str]) -> None:
        """Metrics and logs of what the batch did; the worker woken when runs the batch left due were not claimed
        in its transaction (no free slot for them), the escalation sender when escalations may be queued."""
        unclaimed = escalating = False
        acted = 0
        for item, decision in recorded:
            if not (item.runs or decision.cancelled or decision.woken):
                continue  # nothing happened that a person or the worker needs to hear about
            acted += bool(item.runs)
            unclaimed = unclaimed or any(run_id not in claimed for run_id in _left_due(decision))
            escalating = escalating or _may_escalate(item, decision)
            await self._log_decision(item.event, decision)
        self._metrics.events_decided.labels("runs").inc(acted)
        self._metrics.events_decided.labels("no_rule_matched").inc(len(recorded) - acted)
        if unclaimed:
            self.on_planned()
        if escalating:
            self.on_outcome()

    async def _log_decision(self, event: AlertEvent, decision: Decision) -> None:
        for run_id in decision.woken:
            await log.ainfo("run woken: its alert resolved", run_id=run_id, fingerprint=event.fingerprint)
        for run_id in decision.cancelled:
            self._metrics.runs.labels(RunStatus.SKIPPED.value).inc()
            await log.ainfo("waiting run cancelled: the alert resolved", run_id=run_id, fingerprint=event.fingerprint)
        for decided in decision.runs:
            if decided.verdict is not None and decided.verdict.reason != GuardrailReason.ALLOWED:
                self._metrics.guardrail_blocks.labels(decided.verdict.reason).inc()
            if decided.status in FINAL_STATUSES:
                self._metrics.runs.labels(decided.status.value).inc()
            reason = decided.verdict.detail if decided.verdict is not None else "plan not rendered"
            await log.ainfo(
                "run decided",
                run_id=decided.run_id,
                fingerprint=event.fingerprint,
                rule=decided.rule,
                status=decided.status.value,
                reason=reason,
            )

    async def _queue_metrics(self, *, drained: bool) -> None:
        """The queue's age and the breaker for /metrics, at most once a second; the queue depth counted exactly
        then when the queue has drained, else every QUEUE_COUNT_EVERY (other replicas decide too); in between,
        each batch takes what it claimed off the count."""
        clock = self._clock.monotonic()
        if clock - self._metrics_at < QUEUE_METRICS_EVERY:
            return
        self._metrics_at = clock
        oldest = await self._store.oldest_pending()
        age = (self._clock.now() - oldest).total_seconds() if oldest is not None else 0.0
        self._metrics.queue_oldest_age.set(max(0.0, age))
        self._metrics.breaker_open.set(int((await self._store.breaker()).open))
        if drained or clock - self._counted_at >= QUEUE_COUNT_EVERY:
            self._counted_at = clock
            self._metrics.backlog.set(await self._store.pending_events())


class Runner(Protocol):
    """What the decider needs of its instance's worker to hand it the runs a batch's transaction claimed."""

    def reserve(self, wanted: int) -> int:
        """Up to `wanted` free slots, held until hand_over."""

    def hand_over(self, runs: Sequence[tuple[Run, Prepared]], *, reserved: int) -> None:
        """Execute these claimed runs (each with what the decider has for it) and give the reserved slots back."""


class _NoRunner:
    """No worker to hand runs to: none are claimed, the worker is woken for them instead."""

    def reserve(self, wanted: int) -> int:
        return 0

    def hand_over(self, runs: Sequence[tuple[Run, Prepared]], *, reserved: int) -> None:
        assert not runs


_NO_RUNNER = _NoRunner()


def _left_due(decision: Decision) -> list[str]:
    """The runs recording the decision left due now: planned (allowed by the guardrails), or woken."""
    return [run.run_id for run in decision.runs if run.status is RunStatus.PLANNED] + decision.woken


def _may_make_due(batch: Sequence[EventDecision]) -> int:
    """How many runs recording the batch may leave due, at most: its planned runs (a guardrail may hold some back),
    and for a resolved alert the waiting runs it wakes, however many."""
    if any(item.event.status == "resolved" for item in batch):
        return EVERY_FREE_SLOT
    return sum(1 for item in batch for run in item.runs if run.status is RunStatus.PLANNED)


def _may_escalate(item: EventDecision, decision: Decision) -> bool:
    """Whether recording it may have queued an escalation (a failed plan, an opened breaker, an approval request,
    a resolution); an allowed run queues none, so the escalation sender is not woken for it."""
    if item.event.status == "resolved":
        return True
    return any(
        run.status in (RunStatus.FAILED, RunStatus.AWAITING_APPROVAL)
        or (run.verdict is not None and run.verdict.escalate is not None)
        for run in decision.runs
    )


def _permanent(exc: Exception) -> bool:
    """Whether retrying the same decision can never succeed. The store raises StoreUnavailable for what may pass
    (a lost connection, a busy database) and something else (a data error, an encoding error) for what cannot."""
    return not isinstance(exc, StoreUnavailable)


def _new_run(event: AlertEvent, plan: Plan, *, mutates: bool) -> NewRun:
    if plan.error is not None:
        status, reason = RunStatus.FAILED, plan.error
    elif plan.dry_run:
        status, reason = RunStatus.PLANNED, "planned (dry run)"
    else:
        status, reason = RunStatus.PLANNED, "planned"
    steps = [NewStep(s.index, s.name, s.action, redact(s.inputs)) for s in plan.steps]
    return NewRun(
        id=RunId(secrets.token_hex(8)),
        event_id=event.id,
        status=status,
        reason=reason,
        rule=RuleName(plan.rule),
        playbook=plan.playbook,
        target=plan.target,
        fingerprint=event.fingerprint,
        alert_status=event.status,
        dry_run=plan.dry_run,
        steps=steps,
        mutates=mutates,
    )


def _failure_audit(event: AlertEvent, run: NewRun) -> AuditEntry:
    data = {"event_id": event.id, "rule": run.rule, "playbook": run.playbook, "target": run.target}
    return AuditEntry("run_failed", run.reason, run.id, event.fingerprint, data=data)
