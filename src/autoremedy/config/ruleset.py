"""Load rules/*.yaml and playbooks/*.yaml into a Ruleset, collecting every problem with its file and line.

Checks: schema, matcher syntax, templates compile, referenced playbooks and actions exist, step inputs are ones the
action knows and the required ones are present. `autoremedy validate`, start-up and SIGHUP reload all use this.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError
from pydantic import BaseModel, ValidationError

from autoremedy.config.errors import problems_from_validation
from autoremedy.config.template_checks import input_escapes, promql_warnings, secret_problems
from autoremedy.config.yamlfile import FileProblems, LoadedYaml, Path_, Problem, load_yaml_file
from autoremedy.decide.matchers import MatcherError, parse_matcher
from autoremedy.decide.planning import CompiledRule, Ruleset, Templating
from autoremedy.decide.templating import compile_template, template_paths
from autoremedy.models.playbooks import Playbook
from autoremedy.models.rules import Rule, RulesFile

ActionInputs = Mapping[str, type[BaseModel]]


def load_ruleset(
    rules_dir: Path, playbooks_dir: Path, *, actions: ActionInputs, templating: Templating | None = None
) -> Ruleset:
    """The rules and playbooks in two folders; raises FileProblems listing everything wrong."""
    problems: list[Problem] = []
    checks = _TemplateChecks(replace(templating or Templating(), escapes=input_escapes(actions)))
    playbooks = _load_playbooks(playbooks_dir, actions, problems, checks)
    rules = _load_rules(rules_dir, playbooks, problems, checks)
    if problems:
        raise FileProblems(problems)
    warnings = tuple(str(warning) for warning in checks.warnings)
    return Ruleset(rules=tuple(rules), playbooks=playbooks, templating=checks.templating, warnings=warnings)


@dataclass
class _TemplateChecks:
    """Secrets templates read and alert data they put into PromQL (config/template_checks.py)."""

    templating: Templating
    warnings: list[Problem] = field(default_factory=list)

    def playbook(self, playbook: Playbook, loaded: LoadedYaml) -> list[Problem]:
        found = secret_problems(playbook.target, loaded, ("target",), self.templating, allowed=False)
        for index, step in enumerate(playbook.steps):
            where: Path_ = ("steps", index)
            found += secret_problems(step.with_, loaded, (*where, "with"), self.templating, allowed=True)
            escapes = self.templating.escapes.get(step.action, {})
            self.warnings += promql_warnings(step.with_, escapes, loaded, where)
        return found

    def rule(self, rule: Rule, loaded: LoadedYaml, where: Path_) -> list[Problem]:
        return secret_problems(rule.params, loaded, (*where, "params"), self.templating, allowed=False)


def _yaml_files(folder: Path, problems: list[Problem]) -> Iterator[LoadedYaml]:
    if not folder.is_dir():
        problems.append(Problem(str(folder), 1, "folder not found"))
        return
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            yield load_yaml_file(path)
        except FileProblems as exc:
            problems.extend(exc.problems)


def _load_playbooks(
    folder: Path, actions: ActionInputs, problems: list[Problem], checks: _TemplateChecks
) -> dict[str, Playbook]:
    playbooks: dict[str, Playbook] = {}
    for loaded in _yaml_files(folder, problems):
        try:
            playbook = Playbook.model_validate(loaded.data)
        except ValidationError as exc:
            problems.extend(problems_from_validation(exc, loaded))
            continue
        if playbook.name in playbooks:
            problems.append(
                Problem(loaded.file, loaded.line_of(("name",)), f"playbook {playbook.name!r} defined twice")
            )
            continue
        problems.extend(_check_playbook(playbook, loaded, actions))
        problems.extend(checks.playbook(playbook, loaded))
        playbooks[playbook.name] = playbook
    return playbooks


def _check_playbook(playbook: Playbook, loaded: LoadedYaml, actions: ActionInputs) -> list[Problem]:
    found = _template_problems(playbook.target, loaded, ("target",))
    for index, step in enumerate(playbook.steps):
        where: Path_ = ("steps", index)
        inputs_model = actions.get(step.action)
        if inputs_model is None:
            known = ", ".join(sorted(actions))
            message = f"steps.{index}.action: unknown action {step.action!r} (known: {known})"
            found.append(Problem(loaded.file, loaded.line_of((*where, "action")), message))
        else:
            found.extend(_input_problems(step.with_, inputs_model, loaded, where))
        found.extend(_template_problems(step.with_, loaded, (*where, "with")))
    return found


def _input_problems(
    inputs: Mapping[str, Any], model: type[BaseModel], loaded: LoadedYaml, where: Path_
) -> list[Problem]:
    fields = {info.alias or name: info for name, info in model.model_fields.items()}
    found = [
        Problem(
            loaded.file,
            loaded.line_of((*where, "with", key)),
            f"unknown input {key!r} (known: {', '.join(fields)})",
        )
        for key in inputs
        if key not in fields
    ]
    found.extend(
        Problem(loaded.file, loaded.line_of((*where, "with")), f"required input {key!r} is missing")
        for key, info in fields.items()
        if info.is_required() and key not in inputs
    )
    return found


def _template_problems(value: Any, loaded: LoadedYaml, where: Path_) -> list[Problem]:
    found = []
    for path, source in template_paths(value, where):
        try:
            compile_template(source)
        except TemplateSyntaxError as exc:
            line = loaded.line_of(path) + max((exc.lineno or 1) - 1, 0)
            label = ".".join(str(part) for part in path)
            found.append(Problem(loaded.file, line, f"{label}: template does not compile: {exc.message}"))
    return found


def _load_rules(
    folder: Path, playbooks: Mapping[str, Playbook], problems: list[Problem], checks: _TemplateChecks
) -> list[CompiledRule]:
    compiled: list[CompiledRule] = []
    names: set[str] = set()
    for loaded in _yaml_files(folder, problems):
        try:
            rules_file = RulesFile.model_validate(loaded.data)
        except ValidationError as exc:
            problems.extend(problems_from_validation(exc, loaded))
            continue
        for index, rule in enumerate(rules_file.rules):
            where: Path_ = ("rules", index)
            if rule.name in names:
                problems.append(
                    Problem(loaded.file, loaded.line_of((*where, "name")), f"rule {rule.name!r} defined twice")
                )
            names.add(rule.name)
            found = _rule_problems(rule, loaded, where, playbooks) + checks.rule(rule, loaded, where)
            problems.extend(found)
            if not found:
                matchers = tuple(parse_matcher(text) for text in rule.matchers)
                compiled.append(CompiledRule(rule, matchers, f"{loaded.file}:{loaded.line_of(where)}"))
    return compiled


def _rule_problems(rule: Rule, loaded: LoadedYaml, where: Path_, playbooks: Mapping[str, Playbook]) -> list[Problem]:
    found = []
    for index, text in enumerate(rule.matchers):
        try:
            parse_matcher(text)
        except MatcherError as exc:
            found.append(Problem(loaded.file, loaded.line_of((*where, "matchers", index)), str(exc)))
    if rule.playbook not in playbooks:
        message = f"rule {rule.name!r}: playbook {rule.playbook!r} not found"
        found.append(Problem(loaded.file, loaded.line_of((*where, "playbook")), message))
    found.extend(_template_problems(rule.params, loaded, (*where, "params")))
    return found
