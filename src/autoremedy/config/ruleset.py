"""Load rules/*.yaml and playbooks/*.yaml into a Ruleset, collecting every problem with its file and line.

Checks: schema, matcher syntax, templates compile, referenced playbooks and actions exist, step inputs are ones the
action knows and the required ones are present. `autoremedy validate`, start-up and SIGHUP reload all use this.

What will run is checked as it will run: every `with:` and `params` value must survive the JSON encoding the store
uses (an unquoted YAML date does not), and each step's inputs are validated against its action's input model, a
template standing for any value of the right type (it is only known once rendered).
"""

from __future__ import annotations

import json
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
        stored = _json_problems(step.with_, loaded, (*where, "with"))
        found.extend(stored)
        if inputs_model is not None and not stored:
            found.extend(_type_problems(step.with_, inputs_model, loaded, (*where, "with")))
        found.extend(_template_problems(step.with_, loaded, (*where, "with")))
    return found


def _json_problems(value: Any, loaded: LoadedYaml, where: Path_) -> list[Problem]:
    """Values the store's JSON would refuse or change (a date, a number as a key): file:line each."""
    label = ".".join(str(part) for part in where)
    if isinstance(value, Mapping):
        found = [
            Problem(loaded.file, loaded.line_of(where), f"{label}: key {key!r} is not a string (quote it)")
            for key in value
            if not isinstance(key, str)
        ]
        for key, item in value.items():
            found.extend(_json_problems(item, loaded, (*where, str(key))))
        return found
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _json_problems(item, loaded, (*where, i))]
    if value is None or isinstance(value, str | bool | int):
        return []
    if isinstance(value, float) and json.loads(json.dumps(value)) == value:
        return []
    kind = type(value).__name__
    message = f"{label}: {value!r} is a YAML {kind}, not a JSON value; quote it to pass it as a string"
    return [Problem(loaded.file, loaded.line_of(where), message)]


def _type_problems(
    inputs: Mapping[str, Any], model: type[BaseModel], loaded: LoadedYaml, where: Path_
) -> list[Problem]:
    """The inputs validated as the action will (after the store's JSON round trip); errors under a template are
    left to run time, when its value is known, and unknown or missing inputs were reported already."""
    try:
        model.model_validate(json.loads(json.dumps(inputs)))
    except ValidationError as exc:
        templated = {path for path, _ in template_paths(inputs)}
        return [
            Problem(loaded.file, loaded.line_of((*where, *item["loc"])), _type_message(where, item))
            for item in exc.errors(include_url=False)
            if item["type"] not in ("extra_forbidden", "missing") and not _under_template(item["loc"], templated)
        ]
    return []


def _under_template(loc: tuple[int | str, ...], templated: set[tuple[str | int, ...]]) -> bool:
    return any(loc[: len(path)] == path or path[: len(loc)] == loc for path in templated)


def _type_message(where: Path_, item: Any) -> str:
    label = ".".join(str(part) for part in (*where, *item["loc"]))
    return f"{label}: {item['msg']} (got {item['input']!r})"


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
    found.extend(_json_problems(rule.params, loaded, (*where, "params")))
    found.extend(_template_problems(rule.params, loaded, (*where, "params")))
    return found
