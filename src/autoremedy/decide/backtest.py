"""Backtest: stored alert history through candidate rules, compared with the runs the daemon recorded.

Pure: the events and the recorded runs come in as values (read by `store.history`), the clock is each event's
time. Events before `report_from` are replayed only to warm up cooldowns, budgets and the breaker; they are not
reported. A run "starts" when its verdict does not block it (it runs now, or after its delay, maintenance window
or approval); a recorded run counts as started when its guardrail let it (a later cancel by a resolve, a denial or
an expired approval does not change that). Changes are per event and rule: a run that would appear, disappear, or
start with another playbook or target.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autoremedy.decide.replay import Replay, ReplayEvent, SimulatedRun
from autoremedy.models.runs import GuardrailReason, RunStatus

# Guardrail codes a run keeps after it was let through and later stopped before it started.
_STOPPED_AFTER_START = frozenset(
    {GuardrailReason.ALERT_RESOLVED, GuardrailReason.DENIED, GuardrailReason.APPROVAL_EXPIRED}
)
NOT_ASKED = "not_asked"  # the plan was not rendered: no guardrail was asked


@dataclass(frozen=True, slots=True)
class RecordedRun:
    """A run the daemon recorded for a stored event (table runs)."""

    event_id: int
    rule: str
    playbook: str
    target: str
    status: str
    guardrail: str

    @property
    def started(self) -> bool:
        if self.guardrail == NOT_ASKED:
            return False
        return self.status != RunStatus.SKIPPED or self.guardrail in _STOPPED_AFTER_START


@dataclass(slots=True)
class RuleCounts:
    matched: int = 0
    runs: int = 0
    blocked: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    """Plans that could not be rendered (a missing label, a failing filter)."""

    def as_json(self) -> dict[str, Any]:
        blocked = dict(sorted(self.blocked.items()))
        return {"matched": self.matched, "runs": self.runs, "blocked": blocked, "failed": self.failed}


@dataclass(slots=True)
class BacktestReport:
    events: int = 0
    rules: dict[str, RuleCounts] = field(default_factory=dict)
    recorded_runs: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        kinds = Counter(change["change"] for change in self.changes)
        return {
            "events": self.events,
            "rules": {name: counts.as_json() for name, counts in self.rules.items()},
            "recorded_runs": self.recorded_runs,
            "summary": {kind: kinds.get(kind, 0) for kind in ("appear", "disappear", "change")},
            "changes": self.changes,
        }


def backtest(
    replay: Replay,
    events: Iterable[ReplayEvent],
    recorded: Mapping[int, Sequence[RecordedRun]],
    *,
    report_from: datetime,
) -> BacktestReport:
    report = BacktestReport(rules={compiled.rule.name: RuleCounts() for compiled in replay.ruleset.rules})
    for event in events:
        outcome = replay.step(event)
        if event.at < report_from:
            continue
        report.events += 1
        for name in outcome.matched:
            report.rules[name].matched += 1
        for run in outcome.runs:
            _count(report.rules[run.rule], run)
        runs = recorded.get(event.id, ())
        report.recorded_runs += sum(1 for run in runs if run.started)
        report.changes.extend(_changes(event, outcome.runs, runs))
    return report


def _count(counts: RuleCounts, run: SimulatedRun) -> None:
    if run.verdict is None:
        counts.failed += 1
    elif run.starts:
        counts.runs += 1
    else:
        counts.blocked[run.reason] += 1


def _changes(
    event: ReplayEvent, simulated: Sequence[SimulatedRun], recorded: Sequence[RecordedRun]
) -> list[dict[str, Any]]:
    if not simulated and not recorded:
        return []
    would = {run.rule: run for run in simulated}
    did = {run.rule: run for run in recorded}
    found = []
    for rule in [*would, *(rule for rule in did if rule not in would)]:
        new, old = would.get(rule), did.get(rule)
        new_starts, old_starts = new is not None and new.starts, old is not None and old.started
        if not new_starts and not old_starts:
            continue
        if new_starts and old_starts:
            assert new is not None and old is not None
            if (new.plan.playbook, new.plan.target) == (old.playbook, old.target):
                continue
            kind = "change"
        else:
            kind = "appear" if new_starts else "disappear"
        found.append(_change(kind, event, rule, new, old))
    return found


def _change(
    kind: str, event: ReplayEvent, rule: str, new: SimulatedRun | None, old: RecordedRun | None
) -> dict[str, Any]:
    return {
        "change": kind,
        "event_id": event.id,
        "at": event.at.isoformat(),
        "fingerprint": event.fingerprint,
        "alertname": event.labels.get("alertname", ""),
        "status": event.status,
        "rule": rule,
        "backtest": _simulated(new),
        "recorded": _recorded(old),
    }


def _simulated(run: SimulatedRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    detail = run.verdict.detail if run.verdict is not None else run.plan.error
    return {"playbook": run.plan.playbook, "target": run.plan.target, "verdict": run.reason, "detail": detail}


def _recorded(run: RecordedRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {"playbook": run.playbook, "target": run.target, "status": run.status, "guardrail": run.guardrail}
