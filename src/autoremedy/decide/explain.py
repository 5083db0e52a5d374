"""Why an alert was, or was not, acted on: the one reading of its record that chat `explain` and the web console
share. Pure: plain values in, plain values out; each transport escapes and formats them its own way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from autoremedy.models.events import EventState
from autoremedy.models.runs import GuardrailReason, Run, RunStatus

VERDICT_PREFIX = "verdict_"
UNDECIDED_STATES = frozenset({"pending", "processing"})


@dataclass(frozen=True, slots=True)
class Explained:
    """One entry of an alert's story: a rule's guardrail verdict, or something that happened (and who did it)."""

    at: datetime
    kind: str
    actor: str
    message: str
    run_id: str | None
    verdict: Verdict | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    rule: str
    playbook: str
    target: str
    guardrail: str
    decision: str


def explain_entry(
    *, at: datetime, kind: str, actor: str, message: str, run_id: str | None, data: Mapping[str, Any]
) -> Explained:
    """An audit entry as people read it: verdict entries name the rule that matched and the guardrail's answer."""
    verdict = None
    if kind.startswith(VERDICT_PREFIX):
        verdict = Verdict(
            rule=str(data.get("rule")),
            playbook=str(data.get("playbook")),
            target=str(data.get("target")),
            guardrail=str(data.get("guardrail")),
            decision=str(data.get("decision", "?")),
        )
    return Explained(at=at, kind=kind, actor=actor, message=message, run_id=run_id, verdict=verdict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one alert event, in a few words, and the sentence behind it."""

    summary: str
    detail: str
    run_id: str | None = None
    acted: bool = False
    """A run went ahead (planned, ran, or is waiting for its turn), as opposed to nothing or a block."""


_ACTED = frozenset({RunStatus.PLANNED, RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.DRY_RUN, RunStatus.WAITING})


def outcomes_of(state: str, runs: Sequence[Run]) -> list[Outcome]:
    """The outcome of an alert event from its decision's runs: one per run, or why there was none."""
    if state in UNDECIDED_STATES:
        return [Outcome("waiting to be decided", "stored; the worker has not decided it yet")]
    if state == EventState.DEAD:
        return [Outcome("dead-lettered", "deciding it failed; the audit entry and the escalation say why")]
    if not runs:
        # An unmatched alert is an event in state no_rule_matched (older ones: done) without runs.
        return [Outcome("nothing: no rule matched", "no rule's matchers matched this alert")]
    return [_outcome_of_run(run) for run in runs]


def _outcome_of_run(run: Run) -> Outcome:
    if run.status in _ACTED or run.guardrail == GuardrailReason.ALLOWED:
        summary = f"{run.status.value}: rule {run.rule} ran playbook {run.playbook}"
        return Outcome(summary, run.reason, run.id, acted=run.status in _ACTED)
    held = run.status.value if run.guardrail == run.status.value else f"{run.status.value}: {run.guardrail}"
    return Outcome(held, run.reason, run.id)
