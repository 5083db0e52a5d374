"""YAML loading for config, rules and playbooks: safe, with line numbers, and `on` kept a string.

PyYAML's default resolver follows YAML 1.1, where a bare `on`, `off`, `yes` or `no` is a boolean: a rule's
`on: resolved` would become `True: resolved`. Our loader resolves only `true`/`false` as booleans (as YAML 1.2 does)
and records the line of every key, so validation errors can say file:line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong in a file, said so that an editor can jump to it."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class FileProblems(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class LoadedYaml:
    file: str
    data: Any
    lines: dict[Path_, int]

    def line_of(self, path: Path_) -> int:
        """Line of the deepest known prefix of path (1-based)."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1


def load_yaml_text(text: str, *, file: str) -> LoadedYaml:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return LoadedYaml(file, None, {})
        lines: dict[Path_, int] = {(): node.start_mark.line + 1}
        duplicates: list[Problem] = []
        _walk(node, (), lines, duplicates, file)
        if duplicates:
            raise FileProblems(duplicates)
        return LoadedYaml(file, loader.construct_document(node), lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise FileProblems([Problem(file, line, f"invalid YAML: {exc.problem or exc}")]) from exc
    finally:
        loader.dispose()


def load_yaml_file(path: Path) -> LoadedYaml:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FileProblems([Problem(str(path), 1, f"cannot read: {exc}")]) from exc
    return load_yaml_text(text, file=str(path))


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int], problems: list[Problem], file: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                problems.append(Problem(file, key_node.start_mark.line + 1, f"duplicate key {key!r}"))
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines, problems, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines, problems, file)
