"""What each page shows, read from the store and the control service (the same calls as the API and chat)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from autoremedy.console.deps import ConsoleServices
from autoremedy.control.credentials import Principal
from autoremedy.control.service import StatusReport
from autoremedy.decide.explain import Explained, Outcome, explain_entry, outcomes_of
from autoremedy.decide.guardrails import counted_window
from autoremedy.decide.redact import redact, redact_text
from autoremedy.models.durations import format_duration
from autoremedy.models.events import AlertEvent
from autoremedy.models.rules import Rule
from autoremedy.models.runs import FINAL_STATUSES, Run, RunStatus, StepRecord
from autoremedy.store.base import AuditRecord, EscalationSent

RUNS_SHOWN: Final = 100
ALERTS_SHOWN: Final = 50
AUDIT_SHOWN: Final = 200
HEADER_WINDOW: Final = timedelta(hours=1)
MAX_COUNTED_RUNS: Final = 2000


@dataclass(frozen=True, slots=True)
class Header:
    queue_depth: int
    oldest_pending_seconds: float | None
    last_hour: list[tuple[str, int]]
    breaker_open: bool
    paused: list[str]


async def header(services: ConsoleServices, now: datetime) -> Header:
    status: StatusReport = await services.control.status()
    oldest = await services.store.oldest_pending()
    counts = await services.store.runs_created_since(now - HEADER_WINDOW)
    return Header(
        queue_depth=status.queue_depth,
        oldest_pending_seconds=(now - oldest).total_seconds() if oldest is not None else None,
        last_hour=sorted(counts.items()),
        breaker_open=status.breaker.open,
        paused=[pause.scope for pause in status.paused],
    )


# -- runs -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunFilter:
    status: RunStatus | None = None
    rule: str | None = None
    target: str | None = None

    def query(self) -> dict[str, str]:
        found = {"status": self.status.value if self.status else "", "rule": self.rule or "", "target": self.target}
        return {key: value for key, value in found.items() if value}


class BadFilter(ValueError):
    """A query parameter of the runs page is not usable; the message names it."""


def run_filter(query: Mapping[str, str]) -> RunFilter:
    status_text = query.get("status", "").strip()
    try:
        status = RunStatus(status_text) if status_text else None
    except ValueError:
        allowed = ", ".join(s.value for s in RunStatus)
        raise BadFilter(f"status must be one of {allowed}") from None
    rule, target = query.get("rule", "").strip(), query.get("target", "").strip()
    if len(rule) > 200 or len(target) > 500:
        raise BadFilter("rule and target filters are at most 200 and 500 characters")
    return RunFilter(status, rule or None, target or None)


async def runs(services: ConsoleServices, chosen: RunFilter) -> list[Run]:
    return await services.store.search_runs(
        status=chosen.status, rule=chosen.rule, target=chosen.target, limit=RUNS_SHOWN
    )


@dataclass(frozen=True, slots=True)
class StepView:
    step: StepRecord
    inputs: Any
    result: Any
    error: str | None
    verifies: bool = False
    """The step checks that the remediation worked (its action declares `verifies`)."""


def step_view(step: StepRecord, *, verifies: bool = False) -> StepView:
    # Redacted when stored; again on the way out, which covers records written before a secret was configured.
    error = redact_text(step.error) if step.error is not None else None
    result = redact(step.result) if step.result is not None else None
    return StepView(step, redact(step.inputs), result, error, verifies)


@dataclass(frozen=True, slots=True)
class RunDetail:
    run: Run
    event: AlertEvent | None
    rule: Rule | None
    steps: list[StepView]
    verdicts: list[Explained]
    audit: list[Explained]
    escalations: list[EscalationSent]
    may_decide: bool
    final: bool

    @property
    def verifications(self) -> list[StepView]:
        return [view for view in self.steps if view.verifies]


async def run_detail(services: ConsoleServices, run: Run, principal: Principal) -> RunDetail:
    store = services.store
    entries = [explained(entry) for entry in reversed(await store.list_audit(run_id=run.id, limit=AUDIT_SHOWN))]
    return RunDetail(
        run=run,
        event=await store.get_event(run.event_id),
        rule=services.rules().get(run.rule),
        steps=[step_view(step, verifies=services.verifies(step.action)) for step in run.steps],
        verdicts=[entry for entry in entries if entry.verdict is not None],
        audit=entries,
        escalations=await store.escalations_of_run(run.id),
        may_decide=run.status is RunStatus.AWAITING_APPROVAL and services.control.may_approve(principal, run),
        final=run.status in FINAL_STATUSES,
    )


def explained(entry: AuditRecord) -> Explained:
    return explain_entry(
        at=entry.at, kind=entry.kind, actor=entry.actor, message=entry.message, run_id=entry.run_id, data=entry.data
    )


# -- alerts: "why didn't it act?" -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertRow:
    event: AlertEvent
    state: str
    outcomes: list[Outcome]


async def alerts(services: ConsoleServices) -> list[AlertRow]:
    activity = await services.store.recent_activity(limit=ALERTS_SHOWN)
    return [AlertRow(a.event, a.state, outcomes_of(a.state, a.runs)) for a in activity]


async def alert_story(services: ConsoleServices, fingerprint: str) -> list[Explained]:
    """The same story chat `explain` tells: the alert's audit entries, oldest first."""
    entries = await services.store.fingerprint_audit(fingerprint, limit=AUDIT_SHOWN)
    return [explained(entry) for entry in reversed(entries)]


# -- approvals and guardrails ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Held:
    run: Run
    may_decide: bool


async def approvals(services: ConsoleServices, principal: Principal) -> list[Held]:
    held = await services.store.search_runs(status=RunStatus.AWAITING_APPROVAL, rule=None, target=None, limit=500)
    return [Held(run, services.control.may_approve(principal, run)) for run in held]


@dataclass(frozen=True, slots=True)
class BudgetUse:
    max: int
    per: str
    used: int

    @property
    def exhausted(self) -> bool:
        return self.used >= self.max


@dataclass(frozen=True, slots=True)
class TargetLimits:
    """What holds a rule back on one target now: its cooldown and its budgets."""

    rule: str
    target: str
    last_run_at: datetime
    cooldown_until: datetime | None
    budgets: list[BudgetUse] = field(default_factory=list)


def target_limits(rules: Mapping[str, Rule], counted: Iterable[Run], now: datetime) -> list[TargetLimits]:
    """Per (rule, target): the cooldown still running and each budget's use, from the runs guardrails count."""
    by_pair: dict[tuple[str, str], list[datetime]] = {}
    for run in counted:
        by_pair.setdefault((run.rule, run.target), []).append(run.created_at)
    found = []
    for (name, target), times in sorted(by_pair.items()):
        rule = rules.get(name)
        if rule is None:
            continue
        limits = _limits_of(rule, target, sorted(times, reverse=True), now)
        if limits is not None:
            found.append(limits)
    return found


def _limits_of(rule: Rule, target: str, times: Sequence[datetime], now: datetime) -> TargetLimits | None:
    until = times[0] + rule.cooldown if rule.cooldown is not None else None
    budgets = [
        BudgetUse(budget.max, format_duration(budget.per), sum(1 for at in times if now - at < budget.per))
        for budget in rule.budgets
    ]
    budgets = [use for use in budgets if use.used]
    if (until is None or until <= now) and not budgets:
        return None
    return TargetLimits(rule.name, target, times[0], until if until is not None and until > now else None, budgets)


async def limits_now(services: ConsoleServices, now: datetime) -> list[TargetLimits]:
    rules = services.rules()
    longest = max((counted_window(rule) for rule in rules.values()), default=timedelta(0))
    if longest <= timedelta(0):
        return []
    counted = await services.store.counted_runs_since(now - longest, limit=MAX_COUNTED_RUNS)
    return target_limits(rules, counted, now)
