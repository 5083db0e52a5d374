"""Table-driven tests of every guardrail verdict: a pure function of (rule, facts, labels, windows, now)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autoremedy.decide.guardrails import (
    BreakerState,
    CompiledWindow,
    Decision,
    GuardFacts,
    breaker_now,
    compile_window,
    judge,
    window_end,
)
from autoremedy.models.guardrails import BreakerSettings, MaintenanceWindow
from autoremedy.models.rules import Rule

NOW = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)  # a Thursday
MIN = timedelta(minutes=1)
BREAKER = BreakerSettings(max_runs=3, within=timedelta(minutes=10), quiet_period=timedelta(minutes=15))


def rule(**extra: Any) -> Rule:
    return Rule.model_validate({"name": "r", "playbook": "p", **extra})


def window(**spec: Any) -> CompiledWindow:
    return compile_window(MaintenanceWindow.model_validate({"name": "w", **spec}))


# (rule settings, facts, expected decision, expected reason)
VERDICTS = [
    pytest.param({}, GuardFacts(), Decision.ALLOW, "allowed", id="nothing-applies"),
    pytest.param({}, GuardFacts(paused="all"), Decision.SKIP, "paused", id="paused-globally"),
    pytest.param({}, GuardFacts(paused="r"), Decision.SKIP, "paused", id="paused-rule"),
    pytest.param({}, GuardFacts(active_run_on_target="x1"), Decision.SKIP, "target_busy", id="target-busy"),
    pytest.param(
        {"cooldown": "10m"}, GuardFacts(run_times=[NOW - 9 * MIN]), Decision.SKIP, "cooldown", id="in-cooldown"
    ),
    pytest.param(
        {"cooldown": "10m"}, GuardFacts(run_times=[NOW - 10 * MIN]), Decision.ALLOW, "allowed", id="cooldown-just-over"
    ),
    pytest.param(
        {"budgets": ["3/1h"]},
        GuardFacts(run_times=[NOW - 1 * MIN, NOW - 20 * MIN, NOW - 59 * MIN]),
        Decision.SKIP,
        "budget_exhausted",
        id="hourly-budget-used",
    ),
    pytest.param(
        {"budgets": ["3/1h"]},
        GuardFacts(run_times=[NOW - 1 * MIN, NOW - 20 * MIN, NOW - 60 * MIN]),
        Decision.ALLOW,
        "allowed",
        id="oldest-run-left-the-hour",
    ),
    pytest.param(
        {"budgets": ["3/1h", {"max": 4, "per": "1d"}]},
        GuardFacts(run_times=[NOW - 2 * 60 * MIN, NOW - 3 * 60 * MIN, NOW - 4 * 60 * MIN, NOW - 5 * 60 * MIN]),
        Decision.SKIP,
        "budget_exhausted",
        id="daily-budget-used",
    ),
    pytest.param({"approval": "required"}, GuardFacts(), Decision.AWAIT_APPROVAL, "awaiting_approval", id="approval"),
    pytest.param({"delay": "2m"}, GuardFacts(), Decision.DELAY, "delayed", id="delay"),
    pytest.param(
        {"delay": "2m", "approval": "required"},
        GuardFacts(),
        Decision.AWAIT_APPROVAL,
        "awaiting_approval",
        id="approval-before-delay",
    ),
    pytest.param(
        {"cooldown": "10m", "approval": "required"},
        GuardFacts(run_times=[NOW - MIN]),
        Decision.SKIP,
        "cooldown",
        id="cooldown-before-approval",
    ),
    pytest.param({}, GuardFacts(global_runs_in_window=3), Decision.SKIP, "breaker_open", id="breaker-trips"),
    pytest.param({}, GuardFacts(global_runs_in_window=2), Decision.ALLOW, "allowed", id="breaker-below-limit"),
    pytest.param(
        {},
        GuardFacts(breaker=BreakerState(open=True, opened_at=NOW - MIN, last_attempt_at=NOW - MIN)),
        Decision.SKIP,
        "breaker_open",
        id="breaker-stays-open",
    ),
    pytest.param(
        {},
        GuardFacts(breaker=BreakerState(open=True, opened_at=NOW - 60 * MIN, last_attempt_at=NOW - 15 * MIN)),
        Decision.ALLOW,
        "allowed",
        id="breaker-closed-after-quiet-period",
    ),
    pytest.param(
        {}, GuardFacts(paused="all", global_runs_in_window=99), Decision.SKIP, "paused", id="pause-before-breaker"
    ),
    pytest.param(
        {},
        GuardFacts(active_run_on_target="x", global_runs_in_window=99),
        Decision.SKIP,
        "breaker_open",
        id="breaker-before-target",
    ),
]


@pytest.mark.parametrize(("settings", "facts", "decision", "reason"), VERDICTS)
def test_verdicts(settings: dict[str, Any], facts: GuardFacts, decision: Decision, reason: str) -> None:
    verdict, _ = judge(rule(**settings), facts, labels={}, windows=(), breaker=BREAKER, now=NOW)
    assert (verdict.decision, verdict.reason) == (decision, reason)
    assert verdict.detail


def test_delay_sets_when_the_run_becomes_due() -> None:
    verdict, _ = judge(rule(delay="2m"), GuardFacts(), labels={}, windows=(), breaker=BREAKER, now=NOW)
    assert verdict.not_before == NOW + 2 * MIN


def test_breaker_state_opens_escalates_and_records_the_attempt() -> None:
    verdict, state = judge(rule(), GuardFacts(global_runs_in_window=3), labels={}, windows=(), breaker=BREAKER, now=NOW)
    assert verdict.escalate
    assert state == BreakerState(open=True, opened_at=NOW, last_attempt_at=NOW)
    later = NOW + 5 * MIN
    _, state = judge(rule(), GuardFacts(breaker=state), labels={}, windows=(), breaker=BREAKER, now=later)
    assert state == BreakerState(open=True, opened_at=NOW, last_attempt_at=later)  # the quiet period restarts
    again, _ = judge(rule(), GuardFacts(breaker=state), labels={}, windows=(), breaker=BREAKER, now=later)
    assert not again.escalate  # people heard when it opened


@pytest.mark.parametrize(
    ("state", "now", "still_open"),
    [
        pytest.param(BreakerState(), NOW, False, id="closed-stays-closed"),
        pytest.param(BreakerState(True, NOW, NOW - 14 * MIN), NOW, True, id="within-quiet-period"),
        pytest.param(BreakerState(True, NOW, NOW - 15 * MIN), NOW, False, id="quiet-period-over"),
    ],
)
def test_breaker_closes_after_the_quiet_period(state: BreakerState, now: datetime, still_open: bool) -> None:
    assert breaker_now(state, BREAKER, now).open is still_open


# (window spec, labels, now, ends at or None)
WINDOWS = [
    pytest.param(
        {"start": "2026-11-26T21:00:00Z", "end": "2026-11-26T23:00:00Z"},
        {},
        NOW,
        datetime(2026, 11, 26, 23, tzinfo=UTC),
        id="absolute-inside",
    ),
    pytest.param(
        {"start": "2026-11-26T22:00:01Z", "end": "2026-11-26T23:00:00Z"}, {}, NOW, None, id="absolute-not-yet"
    ),
    pytest.param(
        {"start": "2026-11-26T21:00:00Z", "end": "2026-11-26T22:00:00Z"}, {}, NOW, None, id="absolute-end-is-exclusive"
    ),
    pytest.param(
        {"days": ["thu"], "at": "22:30", "duration": "1h", "timezone": "Europe/Berlin"},
        {},
        NOW,
        datetime(2026, 11, 26, 22, 30, tzinfo=UTC),
        id="weekly-berlin-23h-is-22h-utc",
    ),
    pytest.param(
        {"days": ["wed"], "at": "23:00", "duration": "24h"},
        {},
        NOW,
        datetime(2026, 11, 26, 23, tzinfo=UTC),
        id="weekly-started-yesterday",
    ),
    pytest.param({"days": ["fri", "sat"], "at": "00:00", "duration": "2h"}, {}, NOW, None, id="weekly-other-days"),
    pytest.param(
        {"days": ["thu"], "at": "21:00", "duration": "2h", "matchers": ["namespace=db"]},
        {"namespace": "web"},
        NOW,
        None,
        id="matchers-exclude",
    ),
    pytest.param(
        {"days": ["thu"], "at": "21:00", "duration": "2h", "matchers": ["namespace=db"]},
        {"namespace": "db"},
        NOW,
        datetime(2026, 11, 26, 23, tzinfo=UTC),
        id="matchers-include",
    ),
]


@pytest.mark.parametrize(("spec", "labels", "now", "ends"), WINDOWS)
def test_maintenance_windows(
    spec: dict[str, Any], labels: dict[str, str], now: datetime, ends: datetime | None
) -> None:
    assert window_end(window(**spec), labels, now) == ends


@pytest.mark.parametrize(("action", "decision"), [("defer", Decision.DEFER), ("skip", Decision.SKIP)])
def test_window_defers_or_skips(action: str, decision: Decision) -> None:
    spec = window(start="2026-11-26T21:00:00Z", end="2026-11-26T23:00:00Z", action=action)
    verdict, _ = judge(
        rule(), GuardFacts(global_runs_in_window=99), labels={}, windows=[spec], breaker=BREAKER, now=NOW
    )
    assert (verdict.decision, verdict.reason) == (decision, "maintenance")
    assert verdict.not_before == (datetime(2026, 11, 26, 23, tzinfo=UTC) if action == "defer" else None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            {"days": ["mon"], "at": "02:00", "duration": "1h", "timezone": "Mars/Olympus"},
            "unknown time zone",
            id="bad-zone",
        ),
        pytest.param(
            {"days": ["mon"], "at": "02:00", "duration": "1h", "matchers": ["a=~("]},
            "invalid matcher",
            id="bad-matcher",
        ),
    ],
)
def test_window_problems(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        window(**spec)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"days": ["mon"], "at": "02:00"}, id="weekly-without-duration"),
        pytest.param({"start": "2026-11-26T21:00:00Z"}, id="absolute-without-end"),
        pytest.param({"start": "2026-11-26T21:00:00Z", "end": "2026-11-26T20:00:00Z"}, id="end-before-start"),
        pytest.param(
            {"start": "2026-11-26T21:00:00Z", "end": "2026-11-26T23:00:00Z", "days": ["mon"]}, id="both-kinds"
        ),
        pytest.param({"days": ["mon"], "at": "25:00", "duration": "1h"}, id="bad-time"),
    ],
)
def test_window_shapes_are_validated(spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MaintenanceWindow.model_validate({"name": "w", **spec})


@pytest.mark.parametrize(
    ("text", "maximum", "seconds"),
    [("3/1h", 3, 3600), ("7 / 1d", 7, 86400)],
)
def test_budget_short_form(text: str, maximum: int, seconds: int) -> None:
    budget = rule(budgets=[text]).budgets[0]
    assert (budget.max, budget.per.total_seconds()) == (maximum, seconds)


@pytest.mark.parametrize("text", ["3", "x/1h", "3/1x", "0/1h"])
def test_bad_budgets_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        rule(budgets=[text])


@pytest.mark.parametrize(
    "facts",
    [
        pytest.param(GuardFacts(global_runs_in_window=99), id="over-the-limit"),
        pytest.param(
            GuardFacts(breaker=BreakerState(open=True, opened_at=NOW - MIN, last_attempt_at=NOW - MIN)), id="open"
        ),
    ],
)
def test_a_run_that_changes_nothing_is_neither_blocked_by_nor_counted_by_the_breaker(facts: GuardFacts) -> None:
    verdict, state = judge(rule(), facts, labels={}, windows=(), breaker=BREAKER, now=NOW, mutates=False)
    assert (verdict.decision, verdict.reason) == (Decision.ALLOW, "allowed")
    assert state == facts.breaker  # not an attempt: an open breaker's quiet period is not restarted by it
    mutating, _ = judge(rule(), facts, labels={}, windows=(), breaker=BREAKER, now=NOW)
    assert mutating.reason == "breaker_open"


def test_other_guardrails_still_apply_to_a_run_that_changes_nothing() -> None:
    facts = GuardFacts(active_run_on_target="r1", global_runs_in_window=99)
    verdict, _ = judge(rule(), facts, labels={}, windows=(), breaker=BREAKER, now=NOW, mutates=False)
    assert verdict.reason == "target_busy"
