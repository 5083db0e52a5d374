"""From an alert event to plans: which rules match, and each matching rule's playbook rendered into steps.

Pure: no I/O, no clock. The worker, `autoremedy simulate` and the executor all go through `decide`/`plan_for`, so
what simulate prints is what the daemon would do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from autoremedy.decide.matchers import Matcher
from autoremedy.decide.redact import redact_text
from autoremedy.decide.templating import ESCAPE_URL, RenderError, render_text, render_value
from autoremedy.decide.urls import UrlPolicy, url_refusal
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
class Templating:
    """What rendering needs besides the alert: configured secrets for `secret("NAME")` and the escape of each
    action input that declares one (`{"prometheus.verify": {"query": "promql"}}`)."""

    secrets: Mapping[str, str] = field(default_factory=dict)
    escapes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """action -> input -> `promql` (rendered with the PromQL escape) or `url` (checked by `url_refusal`)."""
    urls: UrlPolicy = field(default_factory=UrlPolicy)
    unavailable: Mapping[str, str] = field(default_factory=dict)
    """Configured secrets without a value, with why (a playbook using one is refused at load)."""

    def secret(self, name: str) -> str:
        if name not in self.secrets:
            raise KeyError(f"secret {name!r} is not configured (secrets: in the config)")
        return self.secrets[name]


@dataclass(frozen=True, slots=True)
class Ruleset:
    rules: tuple[CompiledRule, ...] = ()
    playbooks: Mapping[str, Playbook] = field(default_factory=dict)
    templating: Templating = field(default_factory=Templating)
    warnings: tuple[str, ...] = ()
    """`file:line: message` for what loads but deserves a look (a label outside a quoted PromQL string)."""


@dataclass(frozen=True, slots=True)
class PlannedStep:
    index: int
    name: str | None
    action: str
    inputs: dict[str, Any]
    timeout_seconds: float
    retries: int
    on_failure: str
    refusal: str | None = None
    """Why the step must give up without running (a URL whose host the alert chose)."""


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
MAX_TARGET_LENGTH = 512
"""The rendered target keys guardrails (one active run per target, cooldowns) and an index: a long or
unprintable one (a hostile label) is a plan error, never a value the store refuses."""


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
    """Every plan an alert leads to; `alert` is the event's template view."""
    return plans_for(ruleset, matching_rules(ruleset, alert["labels"], alert["status"]), alert, dry_run=dry_run)


def plans_for(
    ruleset: Ruleset, matched: Sequence[CompiledRule], alert: Mapping[str, Any], *, dry_run: bool
) -> list[Plan]:
    """The plans of the rules that matched (`matching_rules`): the decider asks for them only when one did, so a
    storm's unmatched alerts cost no template view. An alert labelled `autoremedy_dry_run="true"` (a manual run
    asked as a dry run) is rehearsed whatever the rule says."""
    plans = [
        plan_for(
            compiled.rule,
            ruleset.playbooks.get(compiled.rule.playbook),
            alert,
            dry_run=dry_run,
            templating=ruleset.templating,
        )
        for compiled in matched
    ]
    if alert["labels"].get(DRY_RUN_LABEL) == "true":  # only ever turns a dry run on: a label cannot make one real
        plans = [replace(plan, dry_run=True) for plan in plans]
    return plans


def plan_for(
    rule: Rule,
    playbook: Playbook | None,
    alert: Mapping[str, Any],
    *,
    dry_run: bool,
    templating: Templating | None = None,
) -> Plan:
    effective_dry_run = dry_run if rule.dry_run is None else rule.dry_run
    if playbook is None:
        return Plan(rule.name, rule.playbook, "", effective_dry_run, error=f"playbook {rule.playbook!r} not found")
    try:
        context = _context(rule, alert)
        target = _checked_target(render_text(playbook.target, context, where="target"))
        setup = templating or Templating()
        step_context = {**context, "secret": setup.secret}  # secrets only in step inputs, never target or params
        steps = tuple(_render_step(index, playbook, step_context, setup) for index in range(len(playbook.steps)))
    except RenderError as exc:
        error = redact_text(f"plan not rendered: {exc}")  # a filter's error can quote the value it choked on
        return Plan(rule.name, playbook.name, playbook.target, effective_dry_run, error=error)
    return Plan(rule.name, playbook.name, target, effective_dry_run, steps)


def _checked_target(target: str) -> str:
    if len(target) > MAX_TARGET_LENGTH:
        raise RenderError(f"target: {len(target)} characters rendered, at most {MAX_TARGET_LENGTH} allowed")
    if not target.isprintable():
        bad = next(char for char in target if not char.isprintable())
        raise RenderError(f"target: holds the unprintable character {bad!r}")
    return target


def _context(rule: Rule, alert: Mapping[str, Any]) -> dict[str, Any]:
    base = {"alert": alert, "rule": {"name": rule.name}}
    params = render_value(rule.params, {**base, "params": {}}, where="params")
    return {**base, "params": params}


def _render_step(index: int, playbook: Playbook, context: Mapping[str, Any], setup: Templating) -> PlannedStep:
    step = playbook.steps[index]
    label = step.name or f"steps[{index}]"
    escapes = setup.escapes.get(step.action, {})
    inputs = render_value(step.with_, context, where=f"{label}.with", escapes=escapes)
    return PlannedStep(
        index=index,
        name=step.name,
        action=step.action,
        inputs=inputs,
        refusal=_url_refusal(step.with_, inputs, escapes, setup.urls),
        timeout_seconds=step.timeout.total_seconds(),
        retries=step.retries,
        on_failure=step.on_failure,
    )


def _url_refusal(
    templates: Mapping[str, Any], inputs: Mapping[str, Any], escapes: Mapping[str, str], policy: UrlPolicy
) -> str | None:
    for key, kind in escapes.items():
        if kind == ESCAPE_URL and isinstance(templates.get(key), str) and isinstance(inputs.get(key), str):
            refusal = url_refusal(templates[key], inputs[key], policy)
            if refusal is not None:
                return redact_text(refusal)
    return None


def rule_named(ruleset: Ruleset, name: str) -> Rule | None:
    return next((compiled.rule for compiled in ruleset.rules if compiled.rule.name == name), None)
