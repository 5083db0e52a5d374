"""From an alert event to plans: which rules match, and each matching rule's playbook rendered into steps.

Pure: no I/O, no clock. The worker, `autoremedy simulate` and the executor all go through `decide`/`plan_for`, so
what simulate prints is what the daemon would do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from autoremedy.decide.matchers import Matcher
from autoremedy.decide.templating import RenderError, render_text, render_value
from autoremedy.models.playbooks import Playbook
from autoremedy.models.rules import Rule


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    matchers: tuple[Matcher, ...]
    source: str = ""
    """file:line the rule was read from, for people."""

    def matches(self, labels: Mapping[str, str], status: str) -> bool:
        return status in self.rule.on and all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True, slots=True)
class Ruleset:
    rules: tuple[CompiledRule, ...] = ()
    playbooks: Mapping[str, Playbook] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlannedStep:
    index: int
    name: str | None
    action: str
    inputs: dict[str, Any]
    timeout_seconds: float
    retries: int
    on_failure: str


@dataclass(frozen=True, slots=True)
class Plan:
    """A rule's playbook rendered for one alert; `error` says why it could not be rendered."""

    rule: str
    playbook: str
    target: str
    dry_run: bool
    steps: tuple[PlannedStep, ...] = ()
    error: str | None = None


DRY_RUN_LABEL = "autoremedy_dry_run"


def matching_rules(ruleset: Ruleset, labels: Mapping[str, str], status: str) -> list[CompiledRule]:
    """Rules in order; the first match ends the search unless that rule says `continue`."""
    matched: list[CompiledRule] = []
    for compiled in ruleset.rules:
        if compiled.matches(labels, status):
            matched.append(compiled)
            if not compiled.rule.continue_:
                break
    return matched


def decide(ruleset: Ruleset, alert: Mapping[str, Any], *, dry_run: bool) -> list[Plan]:
    """Every plan an alert leads to; `alert` is the event's template view. An alert labelled
    `autoremedy_dry_run="true"` (a manual run asked as a dry run) is rehearsed whatever the rule says."""
    plans = [
        plan_for(compiled.rule, ruleset.playbooks.get(compiled.rule.playbook), alert, dry_run=dry_run)
        for compiled in matching_rules(ruleset, alert["labels"], alert["status"])
    ]
    if alert["labels"].get(DRY_RUN_LABEL) == "true":
        plans = [replace(plan, dry_run=True) for plan in plans]
    return plans


def plan_for(rule: Rule, playbook: Playbook | None, alert: Mapping[str, Any], *, dry_run: bool) -> Plan:
    effective_dry_run = dry_run if rule.dry_run is None else rule.dry_run
    if playbook is None:
        return Plan(rule.name, rule.playbook, "", effective_dry_run, error=f"playbook {rule.playbook!r} not found")
    try:
        context = _context(rule, alert)
        target = render_text(playbook.target, context, where="target")
        steps = tuple(_render_step(index, playbook, context) for index in range(len(playbook.steps)))
    except RenderError as exc:
        return Plan(rule.name, playbook.name, playbook.target, effective_dry_run, error=f"plan not rendered: {exc}")
    return Plan(rule.name, playbook.name, target, effective_dry_run, steps)


def _context(rule: Rule, alert: Mapping[str, Any]) -> dict[str, Any]:
    base = {"alert": alert, "rule": {"name": rule.name}}
    params = render_value(rule.params, {**base, "params": {}}, where="params")
    return {**base, "params": params}


def _render_step(index: int, playbook: Playbook, context: Mapping[str, Any]) -> PlannedStep:
    step = playbook.steps[index]
    label = step.name or f"steps[{index}]"
    return PlannedStep(
        index=index,
        name=step.name,
        action=step.action,
        inputs=render_value(step.with_, context, where=f"{label}.with"),
        timeout_seconds=step.timeout.total_seconds(),
        retries=step.retries,
        on_failure=step.on_failure,
    )


def rule_named(ruleset: Ruleset, name: str) -> Rule | None:
    return next((compiled.rule for compiled in ruleset.rules if compiled.rule.name == name), None)
