"""The worker loop: execute planned runs with bounded concurrency, and keep the store tidy.

Two stages, each a transaction in the store, so a crash between them loses nothing: (1) an event becomes runs
(planned, or final at once when dry-run or unrenderable) and is marked decided: the decider's stage
(engine/decider.py); (2) a planned run is claimed, executed and finished: this loop's. It wakes when the decider
made runs or a slot frees, and polls only as a fallback.

Run ownership is fenced: a claim gives the run a new epoch, every write of the run carries (owner, epoch), and the
heartbeat (its own task, never behind a long batch) returns the runs still ours. A run another instance took over
after a heartbeat gap is stopped here at once, so no step runs on two instances in the same epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from autoremedy.background import BackgroundLoop
from autoremedy.clock import SYSTEM_CLOCK
from autoremedy.decide.planning import Ruleset
from autoremedy.engine.executor import NOTHING_PREPARED, Executor, Prepared, RunVerdict
from autoremedy.models.clock import Clock
from autoremedy.models.notifications import Trigger
from autoremedy.models.runs import GuardrailReason, Run, RunStatus
from autoremedy.observability import Metrics, get_logger
from autoremedy.store.base import AuditEntry, RunTakenOver, Store, StoreUnavailable

log = get_logger("autoremedy.worker")
TAKEN_OVER_TOO_OFTEN = "taken over 3 times: every instance that ran it stopped while running it; not resumed again"
PRUNE_EVERY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Upkeep:
    heartbeat_interval: timedelta = timedelta(seconds=5)
    retention: timedelta | None = timedelta(days=30)
    """Records older than this are pruned; None keeps everything."""


SHUTDOWN_REASON = "the daemon shut down before the run finished (grace period expired)"
STORE_RETRY_SECONDS = 0.5
"""How soon a heartbeat is tried again after the store failed: first thing when it is back."""


@dataclass(slots=True)
class Lease:
    """A run this instance executes, in the epoch of its claim."""

    run: Run
    task: asyncio.Task[None]
    claimed: int
    """The claim's sequence number: a heartbeat that started before the claim cannot know the run yet."""
    settling: bool = False
    """Its outcome is being written: from then on its absence from a heartbeat is expected."""
    lost: bool = False
    """Taken over by another instance: its task was cancelled for that, not for a shutdown."""


class Worker:
    def __init__(
        self,
        *,
        store: Store,
        executor: Executor,
        rules: Callable[[], Ruleset],
        metrics: Metrics,
        concurrency: int,
        poll_interval: float,
        upkeep: Upkeep | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._executor = executor
        self._rules = rules
        self._metrics = metrics
        self._slots = concurrency
        self._upkeep = upkeep or Upkeep()
        self._clock = clock
        self._last_upkeep = datetime.min.replace(tzinfo=UTC)
        self._last_prune = clock.now()  # not at start: a restart loop should not prune every time
        self._store_ok = asyncio.Event()
        """Set by a heartbeat that reached the store: after an outage, nothing is claimed before it."""
        self.on_outcome: Callable[[], None] = lambda: None
        """Called after a run's outcome queued an escalation (wakes the escalation sender)."""
        self._active: dict[str, Lease] = {}
        self._claims = 0
        self._reserved = 0
        """Slots the decider holds for runs it claims in its decision transaction (`reserve`, `hand_over`)."""
        self._maybe_due = True
        """Runs may be due that no claim has seen: set by a wake-up, cleared by a claim that left slots empty."""
        self._looked_at = float("-inf")
        self._poll = poll_interval
        errors = metrics.loop_errors
        self._loop = BackgroundLoop("worker", self._turn, poll_interval=poll_interval, errors=errors, clock=clock)
        self._beat = BackgroundLoop(
            "heartbeat", self._beat_turn, poll_interval=self._upkeep.heartbeat_interval.total_seconds(),
            errors=errors, clock=clock,
        )  # fmt: skip

    @property
    def _stopping(self) -> bool:
        return self._loop.stopping

    def wake(self) -> None:
        """Runs may be due (the decider made some, an approval, a resumed scope): look for them now."""
        self._maybe_due = True
        self._loop.wake()

    def reserve(self, wanted: int) -> int:
        """Up to `wanted` of the slots free now, held for the decider's next claim until `hand_over` gives them
        back."""
        if self._stopping or not self._store_ok.is_set():
            return 0
        held = max(0, min(wanted, self._slots - len(self._active) - self._reserved))
        self._reserved += held
        return held

    def hand_over(self, runs: Sequence[tuple[Run, Prepared]], *, reserved: int) -> None:
        """Execute runs the decider claimed for this instance in its decision transaction (their first step's
        start recorded there), and give back the `reserved` slots. Runs the batch left due without a slot for
        them are the decider's to say (`wake`)."""
        self._reserved -= reserved
        for run, prepared in runs:
            self._start(run, prepared)
        if reserved and self._maybe_due:  # a claim of the worker's own may have found no slot while they were held
            self._loop.wake()

    def start(self) -> None:
        self._store_ok.set()
        self._loop.start()
        self._beat.start()

    @property
    def tasks(self) -> dict[str, asyncio.Task[None]]:
        """The worker's long-lived tasks by name, for supervision: one that ends before stop() is a fault."""
        loops = (self._loop, self._beat)
        return {loop.name: loop.task for loop in loops if loop.task is not None}

    async def stop(self, *, grace: float) -> None:
        """Stop claiming; give running runs `grace` seconds, then interrupt them with a reason."""
        await self._loop.stop()
        if self._active:
            await asyncio.wait([lease.task for lease in self._active.values()], timeout=grace)
        for lease in list(self._active.values()):
            lease.task.cancel()
        if self._active:
            await asyncio.wait([lease.task for lease in self._active.values()])
        await self._beat.stop(grace=0)  # after the runs: they stay owned while they finish

    async def _turn(self) -> None:
        try:
            await self._store_ok.wait()  # after an outage, the heartbeat reaches the store first
            await self._start_planned()
            await self._housekeeping()
        except StoreUnavailable as exc:
            self._store_ok.clear()
            await log.aerror("store unavailable; will retry", error=str(exc))

    # -- ownership: heartbeats and fencing ---------------------------------------------------------------------

    async def _beat_turn(self) -> float | None:
        try:
            await self._heartbeat()
        except StoreUnavailable as exc:
            self._store_ok.clear()
            await log.awarning("heartbeat failed: store unavailable", error=str(exc))
            return min(self._upkeep.heartbeat_interval.total_seconds(), STORE_RETRY_SECONDS)
        return None

    async def _heartbeat(self) -> None:
        before = self._claims
        owned = await self._store.heartbeat(now=self._clock.now())
        if not self._store_ok.is_set():
            self._store_ok.set()
            self.wake()
        for lease in list(self._active.values()):
            known = lease.claimed <= before  # claimed before the heartbeat's update started: it must be there
            if known and not lease.settling and not lease.lost and owned.get(lease.run.id) != lease.run.epoch:
                lease.lost = True
                lease.task.cancel()

    async def _lost(self, run: Run) -> None:
        """Another instance took the run over: stop here, keep nothing of this instance's outcome, say so."""
        message = (
            f"stopped executing on this instance: another instance took the run over after a heartbeat gap "
            f"(this instance's claim, epoch {run.epoch}, is no longer current)"
        )
        await log.awarning("run taken over by another instance; stopped here", epoch=run.epoch)
        entry = AuditEntry("run_lost", message, run.id, run.fingerprint, data={"epoch": run.epoch})
        with contextlib.suppress(StoreUnavailable):
            await self._store.record_audit([entry], now=self._clock.now())
        self._metrics.runs_lost.inc()  # last: whoever watches the count finds the audit entry already written

    async def _housekeeping(self) -> None:
        """Now and then: expire approvals, requeue or interrupt what dead instances left, and prune old records."""
        now = self._clock.now()
        if now - self._last_upkeep < self._upkeep.heartbeat_interval:
            return
        self._last_upkeep = now
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

    async def _expire_approvals(self) -> None:
        for run_id in await self._store.expire_approvals(now=self._clock.now()):
            self._metrics.guardrail_blocks.labels(GuardrailReason.APPROVAL_EXPIRED).inc()
            self._metrics.runs.labels(RunStatus.SKIPPED.value).inc()
            await log.awarning("approval expired", run_id=run_id)

    # -- stage 2: planned runs are executed ----------------------------------------------------------------

    async def _start_planned(self) -> None:
        # As many runs as there are free slots in one claim, started at once: under a storm each transaction
        # waits its turn behind the webhooks' group commits, so one claim per run kept runs waiting. No claim when
        # nothing can be due since the last one left slots empty (a slot freed by a finished run is no news), but
        # at least once per poll interval: delayed runs come due, a dead instance's runs go stale.
        polling = self._clock.monotonic() - self._looked_at >= self._poll
        while not self._stopping and (self._maybe_due or polling):
            free = self._slots - len(self._active) - self._reserved
            if free <= 0:
                return
            self._maybe_due, polling = False, False
            self._looked_at = self._clock.monotonic()
            try:
                runs = await self._store.claim_runs(limit=free, now=self._clock.now())
            except StoreUnavailable:
                self._maybe_due = True
                raise
            for run in runs:
                self._start(run, NOTHING_PREPARED)
            if len(runs) >= free:
                self._maybe_due = True

    def _start(self, run: Run, prepared: Prepared) -> None:
        self._claims += 1
        task = asyncio.create_task(self._execute(run, prepared), name=f"run-{run.id}")
        self._active[run.id] = Lease(run, task, self._claims)
        task.add_done_callback(functools.partial(self._run_done, run.id))

    def _run_done(self, run_id: str, _task: asyncio.Task[None]) -> None:
        self._active.pop(run_id, None)
        self._loop.wake()  # a slot is free: claimed from if runs may be due

    async def _execute(self, run: Run, prepared: Prepared) -> None:
        structlog.contextvars.bind_contextvars(run_id=run.id, fingerprint=run.fingerprint)
        lease = self._active.get(run.id)  # registered before this task first runs
        self._metrics.runs_active.inc()
        try:
            verdict = await self._executor.execute(run, self._rules(), prepared=prepared, start_recorded=True)
        except RunTakenOver:
            verdict = None
        except asyncio.CancelledError:
            verdict = None if lease is not None and lease.lost else _interrupted(run)
        except Exception as exc:  # the run fails with the reason; the worker goes on
            await log.aexception("run crashed")
            reason = f"internal error: {type(exc).__name__}: {exc}"
            verdict = RunVerdict(RunStatus.FAILED, reason, None if run.dry_run else Trigger.RUN_FAILED)
        finally:
            self._metrics.runs_active.dec()
        if verdict is None:
            if lease is not None:  # the heartbeat must not cancel what is left: saying so
                lease.lost = True
            await self._lost(run)
            return
        await self._finish(run, verdict)

    async def _finish(self, run: Run, verdict: RunVerdict) -> None:
        lease = self._active.get(run.id)
        if lease is not None:
            lease.settling = True
        try:
            await self._record_outcome_when_possible(run, verdict)
        except RunTakenOver:
            await self._lost(run)
            return
        except StoreUnavailable as exc:
            # Shutting down: the run stays `running` in the store, and is resumed from its recorded steps after a
            # restart (or by another replica after takeover_after).
            await log.aerror("could not record the run's outcome", error=str(exc), status=verdict.status.value)
            return
        if verdict.status is RunStatus.WAITING:
            return
        self._metrics.runs.labels(verdict.status.value).inc()
        await log.ainfo("run finished", status=verdict.status.value, reason=verdict.reason)

    async def _record_outcome_when_possible(self, run: Run, verdict: RunVerdict) -> None:
        """Retried while the store is away (the heartbeat cancels the task if the run is taken over meanwhile);
        one try only once the daemon is stopping."""
        while True:
            try:
                await self._record_outcome(run, verdict)
                return
            except StoreUnavailable as exc:
                if self._stopping:
                    raise
                await log.awarning("could not record the run's outcome; retrying", error=str(exc))
                await self._clock.sleep(STORE_RETRY_SECONDS)

    async def _record_outcome(self, run: Run, verdict: RunVerdict) -> None:
        """The outcome, fenced; a store that refuses it (a data error, a bug) still gets the run failed."""
        try:
            await self._write_outcome(run, verdict)
        except (RunTakenOver, StoreUnavailable):
            raise
        except Exception as exc:
            await log.aexception("recording the run's outcome failed; failing the run instead")
            reason = f"internal error recording the outcome: {type(exc).__name__}"
            await self._write_outcome(run, RunVerdict(RunStatus.FAILED, reason, Trigger.RUN_FAILED))

    async def _write_outcome(self, run: Run, verdict: RunVerdict) -> None:
        now = self._clock.now()
        if verdict.status is RunStatus.WAITING and verdict.wait_until is not None:
            await self._store.suspend_run(
                run.id, reason=verdict.reason, wait_until=verdict.wait_until, now=now, epoch=run.epoch
            )
            await log.ainfo("run waiting, slot freed", until=verdict.wait_until.isoformat())
            return
        audit = AuditEntry(f"run_{verdict.status.value}", verdict.reason, run.id, run.fingerprint)
        escalated = await self._store.finish_run(
            run.id,
            verdict.status,
            verdict.reason,
            [audit],
            now=now,
            epoch=run.epoch,
            escalation=verdict.escalation,
            steps=verdict.steps,
        )
        if escalated:  # the escalation sender is woken only when it has something to send
            self.on_outcome()


def _interrupted(run: Run) -> RunVerdict:
    return RunVerdict(
        RunStatus.INTERRUPTED, SHUTDOWN_REASON, escalation=None if run.dry_run else Trigger.RUN_INTERRUPTED
    )
