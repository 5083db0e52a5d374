"""A memo of `planning.decide` for replays over many alerts (`autoremedy backtest` over 100,000 events).

What `decide` returns for an alert depends on its status and labels (which rules match) and, for each matching
rule, on the parts of the alert that rule's templates read (its params, its playbook's target and step inputs).
The memo keeps each rule's plan apart (`plan_for`, as `decide` calls it): alerts that agree on what one rule reads
share that rule's plan even when another matching rule reads a part unique to each alert (`startsAt`), so only that
rule is rendered again. Which parts a template reads
is told from its text: every `alert` in it must be followed by `.field` (and, for labels and annotations, by
`.name`, or the whole map counts); a template that uses `alert` any other way (whole, indexed, through a filter
or a method) turns the memo off for that rule. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from autoremedy.decide.planning import DRY_RUN_LABEL, CompiledRule, Plan, Ruleset, matching_rules, plan_for
from autoremedy.decide.templating import template_paths

_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)  # only what jinja evaluates: "alert/" in the text is text
_ALERT = re.compile(r"\balert\b(?:\s*\.\s*([A-Za-z_]\w*)(?:\s*\.\s*([A-Za-z_]\w*)(\s*\()?)?)?")
_MAPS = frozenset({"labels", "annotations"})
LIMIT = 200_000
Reads = frozenset[tuple[str, str | None]]
"""(field, key): `("annotations", "summary")` for one annotation, `("startsAt", None)` for a whole field."""


def alert_reads(rule: CompiledRule, ruleset: Ruleset) -> Reads | None:
    """What the rule's templates read of the alert, or None when their text cannot say."""
    playbook = ruleset.playbooks.get(rule.rule.playbook)
    values: list[Any] = [rule.rule.params]
    if playbook is not None:
        values += [playbook.target, *(step.with_ for step in playbook.steps)]
    reads: set[tuple[str, str | None]] = set()
    for value in values:
        for _, source in template_paths(value):
            for match in (m for block in _BLOCK.findall(source) for m in _ALERT.finditer(block)):
                field, key, call = match.groups()
                if field is None:
                    return None
                whole = field not in _MAPS or key is None or call is not None
                reads.add((field, None if whole else key))
    return frozenset(reads)


def _part(alert: Mapping[str, Any], field: str, key: str | None) -> Any:
    value = alert.get(field)
    if key is not None:
        return value.get(key) if isinstance(value, Mapping) else None
    return tuple(sorted(value.items())) if isinstance(value, Mapping) else value


_Order = tuple[tuple[str, str | None], ...]
"""What a rule reads, in a fixed order (a key's parts), or None when its templates cannot say."""
_Matched = tuple[tuple[CompiledRule, _Order | None], ...]


class DecideMemo:
    """Call it as `decide(ruleset, alert, dry_run=...)` for one ruleset."""

    def __init__(self, ruleset: Ruleset) -> None:
        self._ruleset = ruleset
        self._reads = {compiled.rule.name: _ordered(alert_reads(compiled, ruleset)) for compiled in ruleset.rules}
        self._matched: dict[tuple[Any, ...], _Matched] = {}
        self._plans: dict[tuple[Any, ...], Plan] = {}

    def __call__(self, alert: Mapping[str, Any], *, dry_run: bool) -> list[Plan]:
        labels = alert["labels"]
        matched = (alert["status"], tuple(sorted(labels.items())))
        rules = self._matched.get(matched)
        if rules is None:  # which rules match depends on the status and the labels alone
            rules = self._matched[matched] = tuple(
                (compiled, self._reads[compiled.rule.name])
                for compiled in matching_rules(self._ruleset, labels, alert["status"])
            )
        plans = [self._plan(compiled, reads, alert, dry_run) for compiled, reads in rules]
        if labels.get(DRY_RUN_LABEL) == "true":  # as `decide`: a label only ever turns a dry run on
            plans = [replace(plan, dry_run=True) for plan in plans]
        return plans

    def _plan(
        self,
        compiled: CompiledRule,
        reads: _Order | None,
        alert: Mapping[str, Any],
        dry_run: bool,
    ) -> Plan:
        if reads is None:
            return self._render(compiled, alert, dry_run)
        key = (compiled.rule.name, dry_run, *(_part(alert, field, name) for field, name in reads))
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= LIMIT:
                self._plans.clear()
            plan = self._plans[key] = self._render(compiled, alert, dry_run)
        return plan

    def _render(self, compiled: CompiledRule, alert: Mapping[str, Any], dry_run: bool) -> Plan:
        rule, ruleset = compiled.rule, self._ruleset
        return plan_for(
            rule, ruleset.playbooks.get(rule.playbook), alert, dry_run=dry_run, templating=ruleset.templating
        )


def _ordered(reads: Reads | None) -> _Order | None:
    """A fixed order, so that the parts read make a key."""
    return None if reads is None else tuple(sorted(reads, key=str))
