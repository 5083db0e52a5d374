"""Running rule test cases: each case's timeline through `Replay`, each step's outcome against its expectation.

Pure: the ruleset, the guardrail settings and every time come in as arguments. The differences are values
(`Mismatch`) that the command prints as promtool does, or as JSON.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from autoremedy.decide.guardrails import CompiledWindow, compile_window
from autoremedy.decide.planning import Ruleset
from autoremedy.decide.replay import Replay, ReplayEvent, SimulatedRun, StepOutcome
from autoremedy.models.durations import format_duration
from autoremedy.models.events import NewEvent, canonical_time
from autoremedy.models.guardrails import GuardrailSettings
from autoremedy.models.rule_tests import Expectation, ExpectedRun, RuleTestCase, TimelineAlert

_ABSENT = object()


@dataclass(frozen=True, slots=True)
class Mismatch:
    step: int
    """1-based position of the alert in the case's timeline."""
    at: str
    field: str
    expected: Any
    got: Any

    def __str__(self) -> str:
        return f"alert {self.step} (at {self.at}): {self.field}: expected {_show(self.expected)}, got {_show(self.got)}"


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    source: str
    """file:line of the case."""
    mismatches: tuple[Mismatch, ...]
    matched_rules: frozenset[str]

    @property
    def passed(self) -> bool:
        return not self.mismatches


@dataclass(frozen=True, slots=True)
class Defaults:
    """What a case uses where it says nothing: the config's guardrails and dry_run."""

    guardrails: GuardrailSettings = field(default_factory=GuardrailSettings)
    dry_run: bool = False
    action_mutates: Callable[[str], bool] = lambda action: True
    """Whether an action changes something (`ActionSpec.mutates`): the breaker counts only such runs."""


def run_case(case: RuleTestCase, ruleset: Ruleset, *, source: str, defaults: Defaults) -> CaseResult:
    guardrails = case.guardrails or defaults.guardrails
    replay = Replay(
        ruleset,
        guardrails=guardrails,
        windows=_windows(guardrails),
        dry_run=defaults.dry_run if case.dry_run is None else case.dry_run,
        run_duration=case.run_duration,
        paused=frozenset(case.paused),
        action_mutates=defaults.action_mutates,
    )
    mismatches: list[Mismatch] = []
    matched: set[str] = set()
    starts: dict[str, str] = {}
    for number, alert in enumerate(case.alerts, start=1):
        outcome = replay.step(timeline_event(case, alert, starts))
        matched.update(outcome.matched)
        if alert.expect is not None:
            at = format_duration(alert.at)
            mismatches.extend(Mismatch(number, at, *diff) for diff in compare(alert.expect, outcome))
    return CaseResult(case.name, source, tuple(mismatches), frozenset(matched))


def _windows(guardrails: GuardrailSettings) -> list[CompiledWindow]:
    return [compile_window(window) for window in guardrails.maintenance_windows]


def timeline_event(case: RuleTestCase, alert: TimelineAlert, starts: dict[str, str]) -> ReplayEvent:
    """The alert as the daemon would store it; a resolved alert keeps the startsAt of its firing."""
    now = case.start + alert.at
    fingerprint = alert.fingerprint or label_fingerprint(alert.labels)
    if alert.status == "firing" or fingerprint not in starts:
        starts[fingerprint] = canonical_time(now)
    event = NewEvent(
        fingerprint=fingerprint,
        status=alert.status,
        starts_at=starts[fingerprint],
        ends_at=canonical_time(now) if alert.status == "resolved" else None,
        labels=alert.labels,
        annotations=alert.annotations,
        generator_url="",
        receiver="autoremedy",
        external_url="",
        group_key="{}",
    )
    return ReplayEvent(at=now, view=event.template_view())


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """A stable fingerprint from the labels (as Alertmanager derives one), for cases that give none."""
    text = "\xff".join(f"{key}\xfe{labels[key]}" for key in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def compare(expect: Expectation, outcome: StepOutcome) -> list[tuple[str, Any, Any]]:
    """(field, expected, got) for every difference; only what the expectation names is compared."""
    found: list[tuple[str, Any, Any]] = []
    if expect.matched is not None and list(outcome.matched) != expect.matched:
        found.append(("matched", expect.matched, list(outcome.matched)))
    if expect.cancelled is not None:
        cancelled = [run.rule for run in outcome.cancelled]
        if cancelled != expect.cancelled:
            found.append(("cancelled", expect.cancelled, cancelled))
    if expect.runs is not None:
        found.extend(_compare_runs(expect.runs, outcome.runs))
    return found


def _compare_runs(expected: Sequence[ExpectedRun], runs: Sequence[SimulatedRun]) -> list[tuple[str, Any, Any]]:
    if [e.rule for e in expected] != [r.rule for r in runs]:
        return [("runs", [_summary(e.rule, e.verdict) for e in expected], [_summary(r.rule, r.reason) for r in runs])]
    found = []
    for index, (want, run) in enumerate(zip(expected, runs, strict=True)):
        got = run_view(run)
        for key, value in want.model_dump(exclude_none=True, by_alias=True).items():
            found.extend(_partial(f"runs[{index}].{key}", value, got.get(key, _ABSENT)))
    return found


def _summary(rule: str, verdict: str | None) -> str:
    return f"{rule} ({verdict})" if verdict else rule


def run_view(run: SimulatedRun) -> dict[str, Any]:
    """A simulated run as expectations and reports name its parts."""
    return {
        "rule": run.rule,
        "playbook": run.plan.playbook,
        "target": run.plan.target,
        "verdict": run.reason,
        "detail": run.verdict.detail if run.verdict is not None else run.plan.error,
        "dry_run": run.plan.dry_run,
        "steps": [{"name": s.name, "action": s.action, "with": s.inputs} for s in run.plan.steps],
    }


def _partial(where: str, expected: Any, got: Any) -> list[tuple[str, Any, Any]]:
    if isinstance(expected, Mapping) and isinstance(got, Mapping):
        found = []
        for key, value in expected.items():
            found.extend(_partial(f"{where}.{key}", value, got.get(key, _ABSENT)))
        return found
    if isinstance(expected, list) and isinstance(got, list) and where.endswith(".steps"):
        if len(got) < len(expected):
            return [(f"{where}", f"at least {len(expected)} steps", f"{len(got)} steps")]
        return [diff for index, step in enumerate(expected) for diff in _partial(f"{where}[{index}]", step, got[index])]
    if got is _ABSENT:
        return [(where, expected, "(absent)")]
    return [] if _same(expected, got) else [(where, expected, got)]


def _same(expected: Any, got: Any) -> bool:
    # Templates render text: `replicas: 3` in a test matches a rendered "3".
    if expected == got:
        return True
    scalars = (str, int, float, bool)
    if isinstance(expected, scalars) and isinstance(got, str) and not isinstance(expected, str):
        return _text(expected) == got
    return False


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return repr(value)


def uncovered_rules(ruleset: Ruleset, results: Iterable[CaseResult]) -> list[str]:
    """Rules no case matched, in rule order."""
    matched: set[str] = set()
    for result in results:
        matched |= result.matched_rules
    return [compiled.rule.name for compiled in ruleset.rules if compiled.rule.name not in matched]
