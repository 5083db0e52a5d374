"""A memo of `planning.decide` for replays over many alerts (`autoremedy backtest` over 100,000 events).

What `decide` returns for an alert depends on its status and labels (which rules match) and on the parts of the
alert the matching rules' templates read (their params, their playbooks' target and step inputs). Alerts that agree
on all of these get the same plans, so they are worked out once, by `decide` itself. Which parts a template reads
is told from its text: every `alert` in it must be followed by `.field` (and, for labels and annotations, by
`.name`, or the whole map counts); a template that uses `alert` any other way (whole, indexed, through a filter
or a method) turns the memo off for alerts that rule matches. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from autoremedy.decide.planning import CompiledRule, Plan, Ruleset, decide, matching_rules
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


class DecideMemo:
    """Call it as `decide(ruleset, alert, dry_run=...)` for one ruleset."""

    def __init__(self, ruleset: Ruleset) -> None:
        self._ruleset = ruleset
        self._reads = {compiled.rule.name: alert_reads(compiled, ruleset) for compiled in ruleset.rules}
        self._matched: dict[tuple[Any, ...], tuple[tuple[str, str | None], ...] | None] = {}
        self._plans: dict[tuple[Any, ...], list[Plan]] = {}

    def __call__(self, alert: Mapping[str, Any], *, dry_run: bool) -> list[Plan]:
        labels = tuple(sorted(alert["labels"].items()))
        matched = (alert["status"], labels)
        if matched not in self._matched:  # which rules match depends on the status and the labels alone
            self._matched[matched] = self._reads_of(alert)
        reads = self._matched[matched]
        if reads is None:
            return decide(self._ruleset, alert, dry_run=dry_run)
        key = (*matched, dry_run, *(_part(alert, field, name) for field, name in reads))
        plans = self._plans.get(key)
        if plans is None:
            if len(self._plans) >= LIMIT:
                self._plans.clear()
                self._matched.clear()
            plans = self._plans[key] = decide(self._ruleset, alert, dry_run=dry_run)
        return plans

    def _reads_of(self, alert: Mapping[str, Any]) -> tuple[tuple[str, str | None], ...] | None:
        """What the rules matching this alert read of it, in a fixed order; None if one cannot say."""
        reads: set[tuple[str, str | None]] = set()
        for compiled in matching_rules(self._ruleset, alert["labels"], alert["status"]):
            found = self._reads[compiled.rule.name]
            if found is None:
                return None
            reads |= found
        return tuple(sorted(reads, key=str))
