"""Guardrail verdicts: may this rule act on this target now? Pure: every fact and `now` come in as arguments.

The store gathers the facts and records the verdict in the same transaction, so two workers (or replicas) cannot
both pass a cooldown. Each verdict carries a reason code (for metrics and the API) and a sentence for people.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from autoremedy.decide.matchers import Matcher, parse_matcher
from autoremedy.models.durations import format_duration as fmt
from autoremedy.models.guardrails import WEEKDAYS, BreakerSettings, GuardrailSettings, MaintenanceWindow
from autoremedy.models.notifications import Trigger
from autoremedy.models.rules import Rule
from autoremedy.models.runs import GuardrailReason, RunStatus


class Decision(StrEnum):
    ALLOW = "allow"
    SKIP = "skip"
    DEFER = "defer"
    DELAY = "delay"
    AWAIT_APPROVAL = "await_approval"


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    reason: GuardrailReason
    detail: str
    not_before: datetime | None = None
    escalate: Trigger | None = None
    """A person should hear about this block, and why (the breaker has just opened)."""


@dataclass(frozen=True, slots=True)
class BreakerState:
    open: bool = False
    opened_at: datetime | None = None
    last_attempt_at: datetime | None = None
    """When a run was last attempted while it was open: the quiet period counts from here."""
    closed_at: datetime | None = None
    """When it last closed: runs before this no longer count towards opening it again."""


@dataclass(frozen=True, slots=True)
class GuardFacts:
    """What the store knows when the verdict is made (read in the verdict's transaction)."""

    paused: str | None = None
    """'all' or the rule's name when automation is paused for it."""
    active_run_on_target: str | None = None
    run_times: Sequence[datetime] = ()
    """When this rule's earlier counted runs on this target were created, newest first."""
    global_runs_in_window: int = 0
    """Counted runs of all rules within the breaker's `within` (and since it last closed)."""
    breaker: BreakerState = field(default_factory=BreakerState)


@dataclass(frozen=True, slots=True)
class CompiledWindow:
    window: MaintenanceWindow
    matchers: tuple[Matcher, ...]
    zone: ZoneInfo


def compile_window(window: MaintenanceWindow) -> CompiledWindow:
    """Raises ValueError naming the problem (bad matcher or time zone)."""
    try:
        zone = ZoneInfo(window.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"window {window.name!r}: unknown time zone {window.timezone!r}") from exc
    return CompiledWindow(window, tuple(parse_matcher(text) for text in window.matchers), zone)


def window_end(window: CompiledWindow, labels: Mapping[str, str], now: datetime) -> datetime | None:
    """When the window covering this alert at `now` ends, or None if none covers it."""
    if not all(m.matches(labels) for m in window.matchers):
        return None
    spec = window.window
    if spec.start is not None and spec.end is not None:
        return spec.end if spec.start <= now < spec.end else None
    return _weekly_end(window, now)


def _weekly_end(window: CompiledWindow, now: datetime) -> datetime | None:
    spec = window.window
    assert spec.at is not None and spec.duration is not None
    hours, minutes = (int(part) for part in spec.at.split(":"))
    local_now = now.astimezone(window.zone)
    # A window that started on an earlier day may still be open: look back as far as its duration reaches.
    for days_back in range(spec.duration.days + 2):
        day = local_now.date() - timedelta(days=days_back)
        if WEEKDAYS[day.weekday()] not in spec.days:
            continue
        start = datetime.combine(day, time(hours, minutes), tzinfo=window.zone)
        end = start + spec.duration
        if start <= local_now < end:
            return end.astimezone(now.tzinfo)
    return None


def breaker_now(state: BreakerState, settings: BreakerSettings, now: datetime) -> BreakerState:
    """An open breaker closes by itself once nothing was attempted for the quiet period."""
    if state.open and state.last_attempt_at is not None and now - state.last_attempt_at >= settings.quiet_period:
        return BreakerState(closed_at=now)
    return state


def judge(
    rule: Rule,
    facts: GuardFacts,
    *,
    labels: Mapping[str, str],
    windows: Sequence[CompiledWindow],
    breaker: BreakerSettings,
    now: datetime,
    mutates: bool = True,
) -> tuple[Verdict, BreakerState]:
    """The verdict for one planned run, and the breaker state to store. A run that changes nothing (a playbook of
    logs, waits and checks) is neither blocked by the breaker nor an attempt that keeps it open."""
    state = breaker_now(facts.breaker, breaker, now)
    verdict = _before_breaker(facts, labels, windows, now)
    if verdict is not None:
        return verdict, state
    if not mutates:
        return _after_breaker(rule, facts, now), state
    # Runs counted before the breaker closed belong to the storm that opened it.
    recent = 0 if facts.breaker.open and not state.open else facts.global_runs_in_window
    if state.open or recent >= breaker.max_runs:
        opened = state.opened_at if state.open and state.opened_at is not None else now
        detail = (
            f"circuit breaker open since {opened.isoformat()}: more than {breaker.max_runs} runs within "
            f"{fmt(breaker.within)}; it closes after {fmt(breaker.quiet_period)} without attempts, or by command"
        )
        # People hear about the breaker once, when it opens, not once per blocked run.
        return (
            Verdict(
                Decision.SKIP,
                GuardrailReason.BREAKER_OPEN,
                detail,
                escalate=None if state.open else Trigger.BREAKER_OPEN,
            ),
            BreakerState(open=True, opened_at=opened, last_attempt_at=now),
        )
    return _after_breaker(rule, facts, now), state


def _before_breaker(
    facts: GuardFacts, labels: Mapping[str, str], windows: Sequence[CompiledWindow], now: datetime
) -> Verdict | None:
    if facts.paused is not None:
        scope = "all automation" if facts.paused == "all" else f"rule {facts.paused!r}"
        return Verdict(Decision.SKIP, GuardrailReason.PAUSED, f"{scope} is paused")
    for window in windows:
        end = window_end(window, labels, now)
        if end is None:
            continue
        name = window.window.name
        if window.window.action == "defer":
            return Verdict(
                Decision.DEFER,
                GuardrailReason.MAINTENANCE,
                f"maintenance window {name!r}: deferred until {end.isoformat()}",
                not_before=end,
            )
        return Verdict(
            Decision.SKIP, GuardrailReason.MAINTENANCE, f"maintenance window {name!r} until {end.isoformat()}"
        )
    return None


def _after_breaker(rule: Rule, facts: GuardFacts, now: datetime) -> Verdict:
    if facts.active_run_on_target is not None:
        return Verdict(
            Decision.SKIP,
            GuardrailReason.TARGET_BUSY,
            f"run {facts.active_run_on_target} is already active on this target",
        )
    limit = _limit(rule, facts, now)
    if limit is not None:
        return limit
    if rule.approval == "required":
        return Verdict(
            Decision.AWAIT_APPROVAL, GuardrailReason.AWAITING_APPROVAL, "the rule requires a person's approval"
        )
    if rule.delay is not None and rule.delay > timedelta(0):
        return Verdict(
            Decision.DELAY,
            GuardrailReason.DELAYED,
            f"delayed by {fmt(rule.delay)}; cancelled if the alert resolves",
            not_before=now + rule.delay,
        )
    return Verdict(Decision.ALLOW, GuardrailReason.ALLOWED, "no guardrail applies")


def _limit(rule: Rule, facts: GuardFacts, now: datetime) -> Verdict | None:
    if rule.cooldown is not None and facts.run_times and now - facts.run_times[0] < rule.cooldown:
        until = facts.run_times[0] + rule.cooldown
        return Verdict(
            Decision.SKIP,
            GuardrailReason.COOLDOWN,
            f"cooldown of {fmt(rule.cooldown)} after the run at "
            f"{facts.run_times[0].isoformat()}, until {until.isoformat()}",
        )
    for budget in rule.budgets:
        used = sum(1 for at in facts.run_times if now - at < budget.per)
        if used >= budget.max:
            return Verdict(
                Decision.SKIP,
                GuardrailReason.BUDGET_EXHAUSTED,
                f"budget of {budget.max} runs per {fmt(budget.per)} used up on this target ({used} runs)",
            )
    return None


def counted_window(rule: Rule) -> timedelta:
    """How far back this rule's run history matters (its cooldown and longest budget)."""
    spans = [budget.per for budget in rule.budgets]
    if rule.cooldown is not None:
        spans.append(rule.cooldown)
    return max(spans, default=timedelta(0))


_STATUS = {
    Decision.ALLOW: RunStatus.PLANNED,
    Decision.SKIP: RunStatus.SKIPPED,
    Decision.DEFER: RunStatus.DEFERRED,
    Decision.DELAY: RunStatus.DELAYED,
    Decision.AWAIT_APPROVAL: RunStatus.AWAITING_APPROVAL,
}


def status_for(decision: Decision) -> RunStatus:
    return _STATUS[decision]


@dataclass(frozen=True, slots=True)
class Guard:
    """Everything a verdict needs apart from the store's facts, for one alert event at one instant."""

    rules: Mapping[str, Rule]
    windows: Sequence[CompiledWindow]
    settings: GuardrailSettings
    labels: Mapping[str, str]
    now: datetime

    def history_since(self, rule: str) -> datetime:
        found = self.rules.get(rule)
        return self.now - (counted_window(found) if found is not None else timedelta(0))

    def breaker_since(self, state: BreakerState) -> datetime:
        since = self.now - self.settings.breaker.within
        return max(since, state.closed_at) if state.closed_at is not None else since

    def verdict(self, rule: str, facts: GuardFacts, *, mutates: bool = True) -> tuple[Verdict, BreakerState]:
        found = self.rules.get(rule)
        if found is None:  # the rule went away in a reload between planning and now
            return Verdict(
                Decision.SKIP, GuardrailReason.RULE_REMOVED, f"rule {rule!r} no longer exists"
            ), facts.breaker
        return judge(
            found,
            facts,
            labels=self.labels,
            windows=self.windows,
            breaker=self.settings.breaker,
            now=self.now,
            mutates=mutates,
        )

    def approval_expiry(self) -> datetime:
        return self.now + self.settings.approval_timeout
