"""The worker loop: claim stored alert events, decide their runs, execute planned runs with bounded concurrency.

Two stages, each a transaction in the store, so a crash between them loses nothing: (1) an event becomes runs
(planned, or final at once when dry-run or unrenderable) and is marked done; (2) a planned run is claimed, executed
and finished. The loop wakes on a signal after every webhook commit and polls only as a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from autoremedy.decide.guardrails import CompiledWindow, Guard
from autoremedy.decide.planning import Plan, Ruleset, decide
from autoremedy.decide.redact import redact
from autoremedy.engine.executor import Executor, RunVerdict
from autoremedy.models.events import AlertEvent
from autoremedy.models.guardrails import GuardrailSettings
from autoremedy.models.runs import FINAL_STATUSES, Run, RunStatus
from autoremedy.observability import Metrics, get_logger
from autoremedy.store.base import AuditEntry, Decision, NewRun, NewStep, Store, StoreUnavailable

log = get_logger("autoremedy.worker")
TAKEN_OVER_TOO_OFTEN = "taken over 3 times: every instance that ran it stopped while running it; not resumed again"
PRUNE_EVERY = timedelta(hours=1)
DECIDE_BATCH = 50


@dataclass(frozen=True, slots=True)
class Upkeep:
    heartbeat_interval: timedelta = timedelta(seconds=5)
    retention: timedelta | None = timedelta(days=30)
    """Records older than this are pruned; None keeps everything."""


SHUTDOWN_REASON = "the daemon shut down before the run finished (grace period expired)"


class Worker:
    def __init__(
        self,
        *,
        store: Store,
        executor: Executor,
        rules: Callable[[], Ruleset],
        metrics: Metrics,
        dry_run: bool,
        guardrails: GuardrailSettings,
        windows: Sequence[CompiledWindow],
        concurrency: int,
        poll_interval: float,
        upkeep: Upkeep | None = None,
    ) -> None:
        self._store = store
        self._executor = executor
        self._rules = rules
        self._metrics = metrics
        self._dry_run = dry_run
        self._guardrails = guardrails
        self._windows = windows
        self._slots = concurrency
        self._poll = poll_interval
        self._upkeep = upkeep or Upkeep()
        self._last_heartbeat = datetime.min.replace(tzinfo=UTC)
        self._last_prune = datetime.now(UTC)  # not at start: a restart loop should not prune every time
        self._wakeup = asyncio.Event()
        self.on_outcome: Callable[[], None] = lambda: None
        """Called after a run's outcome is recorded (wakes the escalation sender)."""
        self._stopping = False
        self._active: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="worker")

    async def stop(self, *, grace: float) -> None:
        """Stop claiming; give running runs `grace` seconds, then interrupt them with a reason."""
        self._stopping = True
        self.wake()
        if self._loop_task is not None:
            await self._loop_task
        if self._active:
            await asyncio.wait(list(self._active.values()), timeout=grace)
        for task in list(self._active.values()):
            task.cancel()
        if self._active:
            await asyncio.wait(list(self._active.values()))

    async def _loop(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                await self._decide_pending()
                await self._start_planned()
                self._metrics.backlog.set(await self._store.pending_events())
                await self._housekeeping()
            except StoreUnavailable as exc:
                await log.aerror("store unavailable; will retry", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._poll)

    async def _housekeeping(self) -> None:
        """Now and then: heartbeat the runs this instance executes, requeue or interrupt what dead instances left,
        and prune old records."""
        now = datetime.now(UTC)
        if now - self._last_heartbeat < self._upkeep.heartbeat_interval:
            return
        self._last_heartbeat = now
        await self._store.heartbeat(now=now)
        await self._expire_approvals()
        recovery = await self._store.recover(reason=TAKEN_OVER_TOO_OFTEN, now=now)
        if recovery.requeued_events or recovery.interrupted_runs:
            await log.awarning(
                "work of a dead instance recovered",
                requeued_events=recovery.requeued_events,
                interrupted_runs=recovery.interrupted_runs,
            )
        retention = self._upkeep.retention
        if retention is not None and now - self._last_prune >= PRUNE_EVERY:
            self._last_prune = now
            pruned = await self._store.prune(before=now - retention)
            await log.ainfo("pruned records past retention", **pruned)

    # -- stage 1: events become runs -----------------------------------------------------------------------

    async def _decide_pending(self) -> None:
        # A bounded batch, then planned runs get their turn: under a backlog, runs already decided must not wait
        # for every queued event to be decided first. More events mean another turn of the loop at once.
        for _ in range(DECIDE_BATCH):
            if self._stopping:
                return
            event = await self._store.claim_event(now=datetime.now(UTC))
            if event is None:
                return
            await self._decide(event)
        self.wake()

    async def _decide(self, event: AlertEvent) -> None:
        now = datetime.now(UTC)
        ruleset = self._rules()
        guard = Guard(
            rules={compiled.rule.name: compiled.rule for compiled in ruleset.rules},
            windows=self._windows,
            settings=self._guardrails,
            labels=event.labels,
            now=now,
        )
        try:
            plans = decide(ruleset, event.template_view(), dry_run=self._dry_run)
        except Exception as exc:  # a bug in deciding must not stop the queue nor retry the same event forever
            await log.aexception("deciding failed", event_id=event.id, fingerprint=event.fingerprint)
            message = f"deciding failed: {type(exc).__name__}: {exc}"
            failed = AuditEntry("decision_failed", message, fingerprint=event.fingerprint, data={"event_id": event.id})
            await self._store.record_decision(event, [], [failed], guard=guard, now=now)
            return
        runs = [_new_run(event, plan) for plan in plans]
        audit = [_failure_audit(event, run) for run in runs if run.status is RunStatus.FAILED]
        if not runs:
            audit.append(
                AuditEntry("no_rule_matched", f"no rule matched {event.status} alert", fingerprint=event.fingerprint)
            )
        decision = await self._store.record_decision(event, runs, audit, guard=guard, now=now)
        self.on_outcome()  # a decision may have queued escalations
        await self._account(event, decision)

    async def _account(self, event: AlertEvent, decision: Decision) -> None:
        for run_id in decision.woken:
            await log.ainfo("run woken: its alert resolved", run_id=run_id, fingerprint=event.fingerprint)
        for run_id in decision.cancelled:
            self._metrics.runs.labels(RunStatus.SKIPPED.value).inc()
            await log.ainfo("waiting run cancelled: the alert resolved", run_id=run_id, fingerprint=event.fingerprint)
        for decided in decision.runs:
            if decided.verdict is not None and decided.verdict.reason != "allowed":
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

    async def _expire_approvals(self) -> None:
        for run_id in await self._store.expire_approvals(now=datetime.now(UTC)):
            self._metrics.guardrail_blocks.labels("approval_expired").inc()
            self._metrics.runs.labels(RunStatus.SKIPPED.value).inc()
            await log.awarning("approval expired", run_id=run_id)

    # -- stage 2: planned runs are executed ----------------------------------------------------------------

    async def _start_planned(self) -> None:
        while not self._stopping and len(self._active) < self._slots:
            run = await self._store.claim_run(now=datetime.now(UTC))
            if run is None:
                return
            task = asyncio.create_task(self._execute(run), name=f"run-{run.id}")
            self._active[run.id] = task
            task.add_done_callback(functools.partial(self._run_done, run.id))

    def _run_done(self, run_id: str, _task: asyncio.Task[None]) -> None:
        self._active.pop(run_id, None)
        self.wake()  # a slot is free: look for more planned runs

    async def _execute(self, run: Run) -> None:
        structlog.contextvars.bind_contextvars(run_id=run.id, fingerprint=run.fingerprint)
        self._metrics.runs_active.inc()
        try:
            verdict = await self._executor.execute(run, self._rules())
        except asyncio.CancelledError:
            verdict = RunVerdict(RunStatus.INTERRUPTED, SHUTDOWN_REASON)
        except Exception as exc:  # the run fails with the reason; the worker goes on
            await log.aexception("run crashed")
            verdict = RunVerdict(RunStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self._metrics.runs_active.dec()
        await self._finish(run, verdict)

    async def _finish(self, run: Run, verdict: RunVerdict) -> None:
        audit = AuditEntry(f"run_{verdict.status.value}", verdict.reason, run.id, run.fingerprint)
        now = datetime.now(UTC)
        try:
            if verdict.status is RunStatus.WAITING and verdict.wait_until is not None:
                await self._store.suspend_run(run.id, reason=verdict.reason, wait_until=verdict.wait_until, now=now)
                await log.ainfo("run waiting, slot freed", until=verdict.wait_until.isoformat())
                return
            await self._store.finish_run(
                run.id, verdict.status, verdict.reason, [audit], now=now, escalation=verdict.escalation
            )
            self.on_outcome()
        except StoreUnavailable as exc:
            # The run stays `running` in the store; recovery marks it interrupted at the next start.
            await log.aerror("could not record the run's outcome", error=str(exc), status=verdict.status.value)
            return
        self._metrics.runs.labels(verdict.status.value).inc()
        await log.ainfo("run finished", status=verdict.status.value, reason=verdict.reason)


def _new_run(event: AlertEvent, plan: Plan) -> NewRun:
    if plan.error is not None:
        status, reason = RunStatus.FAILED, plan.error
    elif plan.dry_run:
        status, reason = RunStatus.PLANNED, "planned (dry run)"
    else:
        status, reason = RunStatus.PLANNED, "planned"
    steps = [NewStep(s.index, s.name, s.action, redact(s.inputs)) for s in plan.steps]
    return NewRun(
        id=secrets.token_hex(8),
        event_id=event.id,
        status=status,
        reason=reason,
        rule=plan.rule,
        playbook=plan.playbook,
        target=plan.target,
        fingerprint=event.fingerprint,
        alert_status=event.status,
        dry_run=plan.dry_run,
        steps=steps,
    )


def _failure_audit(event: AlertEvent, run: NewRun) -> AuditEntry:
    data = {"event_id": event.id, "rule": run.rule, "playbook": run.playbook, "target": run.target}
    return AuditEntry("run_failed", run.reason, run.id, event.fingerprint, data=data)
