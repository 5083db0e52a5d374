"""Executes one claimed run: re-renders its plan from the stored event, runs each step with retries and a timeout
per attempt, records every step as it ends, and returns the run's final status with a reason.

The plan is rendered again here instead of being read back from the store, so secrets in templates never have to be
written to disk; a playbook changed since planning is refused rather than silently run in another shape.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import aiohttp
from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt, wait_exponential

from autoremedy.actions.base import ActionContext, ActionRegistry, ActionResult, ActionSpec, Outcome
from autoremedy.clock import SYSTEM_CLOCK, within
from autoremedy.decide.planning import Plan, PlannedStep, Ruleset, plan_for, rule_named
from autoremedy.decide.redact import redact, redact_text
from autoremedy.models.clock import Clock
from autoremedy.models.events import AlertEvent
from autoremedy.models.notifications import Trigger
from autoremedy.models.runs import Run, RunStatus, StepOutcome, StepRecord
from autoremedy.observability import Metrics, get_logger
from autoremedy.store.base import Store, StoreUnavailable

log = get_logger("autoremedy.executor")


_FINISHED = (StepOutcome.DONE, StepOutcome.FAILED)
STORE_RETRY_SECONDS = 0.5
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RunVerdict:
    status: RunStatus
    reason: str
    escalation: Trigger | None = None
    """The trigger to escalate with (run_failed, verification_failed), if people must hear about it."""
    wait_until: datetime | None = None
    """For WAITING: the run sleeps, holding no slot, until its alert resolves or this time."""
    steps: tuple[StepRecord, ...] = ()
    """Step records not yet written (the last step's end): the outcome is written with them, in one transaction."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the decider already has for a run it hands to its worker: the alert event and the plan it rendered
    for the run, moments ago, with the ruleset it decided by."""

    event: AlertEvent | None = None
    plan: Plan | None = None
    ruleset: Ruleset | None = None
    """The ruleset the plan was rendered by: a reload since (another one in force) renders the plan again."""


NOTHING_PREPARED = Prepared()


class Executor:
    def __init__(
        self,
        *,
        store: Store,
        registry: ActionRegistry,
        metrics: Metrics,
        http: aiohttp.ClientSession,
        retry_backoff_seconds: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._clock = clock
        self._store = store
        self._registry = registry
        self._metrics = metrics
        self._http = http
        self._backoff = retry_backoff_seconds

    async def execute(
        self, run: Run, ruleset: Ruleset, *, prepared: Prepared = NOTHING_PREPARED, start_recorded: bool = False
    ) -> RunVerdict:
        """Raises RunTakenOver as soon as the run turns out to be another instance's (this one must stop).

        Each step is recorded as started, fenced, before its action is called (a run taken over meanwhile stops
        there); its end is written with the next step's start, or with the run's outcome, in one transaction: a
        crash before that write runs the step again on resume, as a crash just before a write of its own would.
        `start_recorded`: `run` is as its claim returned it, which recorded the first step's start (fenced by the
        claim), so that start is not written again. `prepared`: what the decider that just decided the run has for
        it (its event, the plan it rendered), so the event is not read and the playbook not rendered again."""
        plan = _prepared_plan(run, prepared, ruleset) or await self._replan(run, ruleset, prepared.event)
        if isinstance(plan, RunVerdict):
            return _unstarted(run, plan) if start_recorded else plan
        claimed_start = start_recorded
        failed: list[str] = []
        ended: list[StepRecord] = []  # finished steps whose end is not written yet
        for planned in plan.steps:
            label = planned.name or f"{planned.index}:{planned.action}"
            stored = run.steps[planned.index] if planned.index < len(run.steps) else None
            if stored is not None and stored.outcome in _FINISHED:  # resuming: this step ran before
                failed.extend([label] if stored.outcome is StepOutcome.FAILED else [])
                continue
            record, result = await self._run_step(run, plan, planned, ended, started=stored if claimed_start else None)
            claimed_start, ended = False, [record]
            if result.outcome is Outcome.WAIT and result.wait_until is not None:
                return RunVerdict(RunStatus.WAITING, result.message, wait_until=result.wait_until)
            if record.outcome is StepOutcome.FAILED:
                if planned.on_failure == "abort":
                    return self._aborted(run, planned, f"step {label} failed: {record.error}", ended)
                failed.append(label)
        steps = tuple(ended)
        if run.dry_run:
            return RunVerdict(RunStatus.DRY_RUN, _dry_run_reason(failed), steps=steps)
        if failed:
            return RunVerdict(
                RunStatus.SUCCEEDED, f"done; failed steps continued past: {', '.join(failed)}", steps=steps
            )
        return RunVerdict(RunStatus.SUCCEEDED, "all steps done", steps=steps)

    def _aborted(self, run: Run, planned: PlannedStep, reason: str, ended: list[StepRecord]) -> RunVerdict:
        spec = self._registry.get(planned.action)
        trigger = Trigger.VERIFICATION_FAILED if spec is not None and spec.verifies else Trigger.RUN_FAILED
        return RunVerdict(RunStatus.FAILED, reason, escalation=None if run.dry_run else trigger, steps=tuple(ended))

    async def _record(self, run: Run, records: list[StepRecord]) -> None:
        """Step records, fenced, in one transaction; retried while the store is away: what a step did must not be
        lost to an outage, and a run taken over meanwhile is found out here (RunTakenOver) rather than run on.

        The steps the run's claim loaded are what the store had (what a previous owner finished is not done again);
        after the claim only this owner's fenced writes change them, so they are not read again."""
        await self._when_stored(functools.partial(self._store.update_steps, run.id, records, epoch=run.epoch))

    async def _replan(self, run: Run, ruleset: Ruleset, event: AlertEvent | None) -> Plan | RunVerdict:
        if event is None or event.id != run.event_id:
            event = await self._store.get_event(run.event_id)
        rule = rule_named(ruleset, run.rule)
        if event is None or rule is None:
            return RunVerdict(RunStatus.FAILED, f"rule {run.rule!r} no longer exists (removed by a reload)")
        view = event.template_view()
        plan = plan_for(rule, ruleset.playbooks.get(run.playbook), view, dry_run=False, templating=ruleset.templating)
        if plan.error is not None:
            return RunVerdict(RunStatus.FAILED, plan.error)
        if [s.action for s in plan.steps] != [s.action for s in run.steps]:
            return RunVerdict(RunStatus.FAILED, f"playbook {run.playbook!r} changed after the run was planned")
        return plan

    async def _run_step(
        self, run: Run, plan: Plan, planned: PlannedStep, ended: list[StepRecord], *, started: StepRecord | None
    ) -> tuple[StepRecord, ActionResult]:
        """Runs the step after recording its start, with `ended` (the previous step's end) in the same write, unless
        the run's claim recorded it (`started`: the record as the claim wrote it); returns its end record, not yet
        written (the caller writes it with what comes next)."""
        claimed_at = started.started_at if started is not None and not ended else None
        record = StepRecord(
            index=planned.index,
            name=planned.name,
            action=planned.action,
            inputs=redact(planned.inputs),
            started_at=claimed_at or self._clock.now(),
        )
        if claimed_at is None:
            await self._record(run, [*ended, record])
        clock = time.perf_counter()
        result, attempts = await self._attempts(run, plan, planned)
        self._metrics.step_duration.labels(planned.action, result.outcome.value).observe(time.perf_counter() - clock)
        if result.outcome is Outcome.WAIT:  # the step stays started; it is asked again when the run wakes
            return record, result
        outcome = StepOutcome.DONE if result.outcome is Outcome.DONE else StepOutcome.FAILED
        record = record.model_copy(
            update={
                "attempts": attempts,
                "outcome": outcome,
                "finished_at": self._clock.now(),
                "error": None if outcome is StepOutcome.DONE else redact_text(result.message),
                "result": redact({"message": result.message, **result.data}),
            }
        )
        json.dumps(record.result)  # an unencodable result fails the run here, as the action's fault (internal error)
        log.info(
            "step finished",
            step=planned.index,
            action=planned.action,
            outcome=outcome.value,
            attempts=attempts,
            message=redact_text(result.message),
        )
        return record, result

    async def _attempts(self, run: Run, plan: Plan, planned: PlannedStep) -> tuple[ActionResult, int]:
        if planned.refusal is not None:  # decided before any call: e.g. a URL whose host the alert chose
            return ActionResult.give_up(planned.refusal), 0
        spec = self._registry.get(planned.action)
        if spec is None:
            return ActionResult.give_up(f"unknown action {planned.action!r}"), 0
        try:
            inputs = spec.inputs.model_validate(planned.inputs)
        except ValidationError as exc:
            return ActionResult.give_up(f"invalid inputs: {_brief(exc)}"), 0
        if run.dry_run and not spec.dry_run:
            return ActionResult.done(f"dry run: {spec.name} cannot rehearse, not performed"), 0
        count = 0
        limit = _attempt_limit(spec, inputs, planned.timeout_seconds)

        async def attempt() -> ActionResult:
            nonlocal count
            count += 1
            deadline = self._clock.monotonic() + limit
            context = ActionContext(
                run_id=run.id,
                operation_id=f"{run.id}.{planned.index}",
                target=plan.target,
                deadline=deadline,
                dry_run=run.dry_run,
                http=self._http,
                log=log,
                waited_until=run.wait_until,
                alert_resolved_at=functools.partial(self._store.resolution_of, run.event_id),
                clock=self._clock,
            )
            return await _one_attempt(spec, inputs, context, limit_seconds=limit, clock=self._clock)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(planned.retries + 1),
            wait=wait_exponential(multiplier=self._backoff, max=60),
            retry=retry_if_result(lambda result: result.outcome is Outcome.RETRY),
            retry_error_callback=_last_result,
            sleep=self._clock.sleep,
        )
        result: ActionResult = await retrying(attempt)
        return result, count

    async def _when_stored(self, call: Callable[[], Awaitable[T]]) -> T:
        while True:
            try:
                return await call()
            except StoreUnavailable as exc:
                await log.awarning("store unavailable during a run; retrying", error=str(exc))
                await self._clock.sleep(STORE_RETRY_SECONDS)


async def _one_attempt(
    spec: ActionSpec, inputs: object, context: ActionContext, *, limit_seconds: float, clock: Clock
) -> ActionResult:
    try:
        return await within(clock, limit_seconds, spec.run(inputs, context))
    except TimeoutError:
        return ActionResult.retry(f"timed out after {limit_seconds:g}s")
    except Exception as exc:  # an action's bug must fail its step, not the daemon
        log.exception("action raised", action=spec.name)
        return ActionResult.give_up(f"unexpected error: {type(exc).__name__}: {exc}")


def _attempt_limit(spec: ActionSpec, inputs: object, timeout: float) -> float:
    """The step's timeout, stretched to cover an action's own time bound (prometheus.verify's `within`)."""
    bound = getattr(inputs, spec.time_input, None) if spec.time_input else None
    if isinstance(bound, timedelta):
        return max(timeout, bound.total_seconds() + 5)
    return timeout


def _prepared_plan(run: Run, prepared: Prepared, ruleset: Ruleset) -> Plan | None:
    """The decider's plan when it is this run's (rule, playbook and steps as recorded) and the ruleset it was
    rendered by is still in force, else None: render again (after a reload its rules decide)."""
    plan = prepared.plan
    if plan is None or prepared.ruleset is not ruleset or plan.error is not None:
        return None
    if (plan.rule, plan.playbook) != (run.rule, run.playbook):
        return None
    return plan if [s.action for s in plan.steps] == [s.action for s in run.steps] else None


def _unstarted(run: Run, verdict: RunVerdict) -> RunVerdict:
    """A run that fails before its first step (the plan could not be rendered again): the start its claim recorded
    is taken back, so the step ends `not_run`, as it does when no start was recorded."""
    step = next((s for s in run.steps if s.outcome not in _FINISHED), None)
    if step is None:
        return verdict
    return dataclasses.replace(verdict, steps=(step.model_copy(update={"started_at": None}), *verdict.steps))


def _dry_run_reason(failed: list[str]) -> str:
    if failed:
        return f"dry run: nothing changed; steps that would fail: {', '.join(failed)}"
    return "dry run: every step rehearsed, nothing changed"


def _last_result(state: RetryCallState) -> ActionResult:
    assert state.outcome is not None
    result: ActionResult = state.outcome.result()
    return result


def _brief(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors())
