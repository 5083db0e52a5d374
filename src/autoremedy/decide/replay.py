"""Alert events through the rules on a simulated clock: the decision stage of the daemon, held in memory.

`autoremedy test` and `autoremedy backtest` both go through `Replay.step`: the real matcher and planner
(`decide`), and the real guardrail verdicts (`Guard.verdict`) on facts kept here the way
`store/decisions.py` reads them from the store (a test holds the two equal). Nothing is executed: a
run that may start is taken to stay active on its target for `run_duration` after it starts (0s: it is over before
the next instant), a delayed or deferred run starts at its `not_before`, a run awaiting approval is never approved
and expires; a resolved alert cancels its runs that have not started, as the store does.

Pure: no I/O, no clock; `now` comes with every event and never goes backwards.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from autoremedy.decide.decide_memo import DecideMemo
from autoremedy.decide.guardrails import BreakerState, CompiledWindow, Guard, GuardFacts, Verdict, status_for
from autoremedy.decide.planning import Plan, Ruleset
from autoremedy.models.guardrails import GuardrailSettings
from autoremedy.models.runs import RunStatus

PLAN_FAILED = "plan_failed"
_WAITING = frozenset({RunStatus.DELAYED, RunStatus.DEFERRED, RunStatus.AWAITING_APPROVAL})


@dataclass(frozen=True, slots=True)
class ReplayEvent:
    """One alert event: its template view (what `alert` is in templates) and when it is decided."""

    at: datetime
    view: Mapping[str, Any]
    id: int = 0

    @property
    def fingerprint(self) -> str:
        return str(self.view["fingerprint"])

    @property
    def status(self) -> str:
        return str(self.view["status"])

    @property
    def labels(self) -> Mapping[str, str]:
        labels: Mapping[str, str] = self.view["labels"]
        return labels


@dataclass(slots=True)
class SimulatedRun:
    id: str
    plan: Plan
    fingerprint: str
    created_at: datetime
    status: RunStatus
    verdict: Verdict | None
    """None when the plan could not be rendered (the run fails at once, as the daemon records it)."""
    active_until: datetime
    cancelled_at: datetime | None = None
    mutates: bool = True
    """A step of its playbook changes something: only such runs count towards the global breaker."""

    @property
    def rule(self) -> str:
        return self.plan.rule

    @property
    def reason(self) -> str:
        """The verdict's code, or plan_failed."""
        return self.verdict.reason if self.verdict is not None else PLAN_FAILED

    @property
    def counted(self) -> bool:
        """Counts towards cooldowns, budgets and the breaker (as the store's `counted` column)."""
        return self.status not in (RunStatus.SKIPPED, RunStatus.FAILED)

    @property
    def starts(self) -> bool:
        """Not blocked: it runs now, or once its delay, window or approval allows."""
        return self.counted

    def active_at(self, now: datetime) -> bool:
        # A run is active at least at the instant it is decided: a second plan of the same event finds it.
        if not self.counted or (self.cancelled_at is not None and self.cancelled_at <= now):
            return False
        return self.created_at <= now and (now < self.active_until or now == self.created_at)

    def waiting_at(self, now: datetime) -> bool:
        """Not started yet (delayed, deferred or awaiting approval): a resolved alert cancels it."""
        return self.status in _WAITING and self.cancelled_at is None and now < self._start_at()

    def _start_at(self) -> datetime:
        if self.status is RunStatus.AWAITING_APPROVAL:
            return self.active_until
        assert self.verdict is not None and self.verdict.not_before is not None
        return self.verdict.not_before


@dataclass(frozen=True, slots=True)
class StepOutcome:
    matched: tuple[str, ...]
    runs: tuple[SimulatedRun, ...]
    cancelled: tuple[SimulatedRun, ...]


@dataclass(slots=True)
class _History:
    """The facts the store keeps, indexed for the queries `gather_facts` makes."""

    by_target: dict[str, list[SimulatedRun]] = field(default_factory=dict)
    """Runs that may still be active, per target (pruned as time passes: a run over stays over)."""
    counted_times: dict[tuple[str, str], list[datetime]] = field(default_factory=dict)
    all_counted_times: list[datetime] = field(default_factory=list)
    by_fingerprint: dict[str, list[SimulatedRun]] = field(default_factory=dict)
    """Runs that have not started yet, per alert."""

    def add(self, run: SimulatedRun) -> None:
        if not run.counted:
            return
        self.by_target.setdefault(run.plan.target, []).append(run)
        self.counted_times.setdefault((run.rule, run.plan.target), []).append(run.created_at)
        if run.mutates:  # the breaker counts remediation, not logging (as the store's `mutating` column)
            self.all_counted_times.append(run.created_at)
        if run.status in _WAITING:
            self.by_fingerprint.setdefault(run.fingerprint, []).append(run)

    def active_on(self, target: str, now: datetime) -> SimulatedRun | None:
        runs = [run for run in self.by_target.get(target, ()) if run.active_at(now)]
        self.by_target[target] = runs
        return runs[0] if runs else None

    def times_since(self, rule: str, target: str, since: datetime) -> list[datetime]:
        times = self.counted_times.get((rule, target), [])
        return times[bisect_left(times, since) :][::-1]

    def count_since(self, since: datetime) -> int:
        return len(self.all_counted_times) - bisect_left(self.all_counted_times, since)

    def cancel_waiting(self, fingerprint: str, now: datetime) -> list[SimulatedRun]:
        cancelled = [run for run in self.by_fingerprint.pop(fingerprint, []) if run.waiting_at(now)]
        for run in cancelled:
            run.cancelled_at = now
        return cancelled


class Replay:
    """The daemon's decisions for a sequence of events, in memory."""

    def __init__(
        self,
        ruleset: Ruleset,
        *,
        guardrails: GuardrailSettings,
        windows: Sequence[CompiledWindow] = (),
        dry_run: bool = False,
        run_duration: timedelta = timedelta(0),
        paused: frozenset[str] = frozenset(),
        action_mutates: Callable[[str], bool] = lambda action: True,
    ) -> None:
        """`action_mutates`: whether an action changes something (`ActionSpec.mutates`, from the registry)."""
        self.ruleset = ruleset
        self.action_mutates = action_mutates
        self.guardrails = guardrails
        self.windows = tuple(windows)
        self.dry_run = dry_run
        self.run_duration = run_duration
        self.paused = paused
        self.breaker = BreakerState()
        self._rules = {compiled.rule.name: compiled.rule for compiled in ruleset.rules}
        self._history = _History()
        self._now: datetime | None = None
        self._decided = 0
        self._decide = DecideMemo(ruleset)
        self._mutates: dict[tuple[str, ...], bool] = {}

    def step(self, event: ReplayEvent) -> StepOutcome:
        """Decide one event at `event.at`, as the worker and `store/decisions.py` do."""
        if self._now is not None and event.at < self._now:
            raise ValueError(f"events must come in time order: {event.at.isoformat()} after {self._now.isoformat()}")
        self._now = now = event.at
        plans = self._decide(event.view, dry_run=self.dry_run)
        matched = tuple(plan.rule for plan in plans)  # decide plans every matching rule, in order
        guard = Guard(self._rules, self.windows, self.guardrails, event.labels, now)
        cancelled = self._history.cancel_waiting(event.fingerprint, now) if event.status == "resolved" else []
        runs = []
        breaker = self.breaker
        for plan in plans:
            run, breaker = self._decide_one(plan, event, guard, breaker)
            self._history.add(run)
            runs.append(run)
        self.breaker = breaker
        return StepOutcome(matched, tuple(runs), tuple(cancelled))

    def facts(self, rule: str, target: str, guard: Guard, breaker: BreakerState) -> GuardFacts:
        """What `store/decisions.py` would read from the store now."""
        active = self._history.active_on(target, guard.now)
        return GuardFacts(
            paused=self._paused_scope(rule),
            active_run_on_target=active.id if active else None,
            run_times=self._history.times_since(rule, target, guard.history_since(rule)),
            global_runs_in_window=self._history.count_since(guard.breaker_since(breaker)),
            breaker=breaker,
        )

    def _plan_mutates(self, plan: Plan) -> bool:
        """A step of the plan changes something (asked once per list of actions: plans repeat)."""
        actions = tuple(step.action for step in plan.steps)
        found = self._mutates.get(actions)
        if found is None:
            found = self._mutates[actions] = any(self.action_mutates(action) for action in actions)
        return found

    def _paused_scope(self, rule: str) -> str | None:
        if "all" in self.paused:
            return "all"
        return rule if rule in self.paused else None

    def _decide_one(
        self, plan: Plan, event: ReplayEvent, guard: Guard, breaker: BreakerState
    ) -> tuple[SimulatedRun, BreakerState]:
        now = guard.now
        self._decided += 1
        run_id = f"replay-{self._decided}"
        if plan.error is not None:
            return SimulatedRun(run_id, plan, event.fingerprint, now, RunStatus.FAILED, None, now), breaker
        mutates = self._plan_mutates(plan)
        facts = self.facts(plan.rule, plan.target, guard, breaker)
        verdict, breaker = guard.verdict(plan.rule, facts, mutates=mutates)
        status = status_for(verdict.decision)
        if status is RunStatus.AWAITING_APPROVAL:
            until = guard.approval_expiry()
        else:
            until = (verdict.not_before or now) + self.run_duration
        return SimulatedRun(run_id, plan, event.fingerprint, now, status, verdict, until, mutates=mutates), breaker
