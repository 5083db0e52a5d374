"""Load rule test files (`rule-tests/*.yaml`) with every problem as file:line, as rules and playbooks are loaded.

Besides the schema, a test may only name rules and playbooks that exist: a misspelt name in an expectation is a
problem in the test file (exit 2), not a failing case.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from autoremedy.config.errors import problems_from_validation
from autoremedy.config.yamlfile import FileProblems, LoadedYaml, Path_, Problem, load_yaml_file
from autoremedy.decide.planning import Ruleset
from autoremedy.models.rule_tests import Expectation, RuleTestCase, RuleTestFile


@dataclass(frozen=True, slots=True)
class LoadedCase:
    case: RuleTestCase
    file: str
    line: int

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"


def rule_test_paths(paths: Sequence[Path]) -> list[Path]:
    """The files named, and the *.yaml / *.yml files of the folders named, in name order."""
    found: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted([*path.glob("*.yaml"), *path.glob("*.yml")]))
        elif path.is_file():
            found.append(path)
        else:
            problems.append(Problem(str(path), 1, "no such file or folder"))
    if problems:
        raise FileProblems(problems)
    return found


def load_rule_tests(files: Sequence[Path], ruleset: Ruleset) -> list[LoadedCase]:
    """Every case of the files; raises FileProblems listing everything wrong with them."""
    problems: list[Problem] = []
    cases: list[LoadedCase] = []
    for loaded in _loaded(files, problems):
        try:
            parsed = RuleTestFile.model_validate(loaded.data)
        except ValidationError as exc:
            problems.extend(problems_from_validation(exc, loaded))
            continue
        for index, case in enumerate(parsed.tests):
            problems.extend(_unknown_names(case, loaded, ("tests", index), ruleset))
            cases.append(LoadedCase(case, loaded.file, loaded.line_of(("tests", index))))
    if problems:
        raise FileProblems(problems)
    return cases


def _loaded(files: Sequence[Path], problems: list[Problem]) -> Iterator[LoadedYaml]:
    for path in files:
        try:
            yield load_yaml_file(path)
        except FileProblems as exc:
            problems.extend(exc.problems)


def _unknown_names(case: RuleTestCase, loaded: LoadedYaml, where: Path_, ruleset: Ruleset) -> list[Problem]:
    rules = {compiled.rule.name for compiled in ruleset.rules} | {"all"}
    names: list[tuple[str, str, Path_]] = [("rule", name, (*where, "paused")) for name in case.paused]
    for number, alert in enumerate(case.alerts):
        if alert.expect is not None:
            names.extend(_expected_names(alert.expect, (*where, "alerts", number, "expect")))
    found = []
    for kind, name, path in names:
        known = rules if kind == "rule" else ruleset.playbooks
        if name not in known or (kind == "rule" and name == "all" and path[-1] != "paused"):
            found.append(Problem(loaded.file, loaded.line_of(path), f"unknown {kind} {name!r}"))
    return found


def _expected_names(expect: Expectation, at: Path_) -> list[tuple[str, str, Path_]]:
    names = [("rule", name, (*at, "matched", index)) for index, name in enumerate(expect.matched or [])]
    names += [("rule", name, (*at, "cancelled", index)) for index, name in enumerate(expect.cancelled or [])]
    for index, run in enumerate(expect.runs or []):
        names.append(("rule", run.rule, (*at, "runs", index, "rule")))
        if run.playbook is not None:
            names.append(("playbook", run.playbook, (*at, "runs", index, "playbook")))
    return names
