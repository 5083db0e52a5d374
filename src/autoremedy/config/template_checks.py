"""Checks of what templates do, at load time: secrets they read and alert values they put into PromQL.

- `secret("NAME")` must name a configured secret that has a value (an error: the step could never run), with a
  literal name, and only in step inputs (`target` and `params` are stored and shown as rendered).
- In a PromQL input, `{{ alert.* }}` / `{{ params.* }}` outside a quoted string is a warning: the escape keeps a
  value inside its string literal, but a value outside any string can still change the query's structure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import TemplateSyntaxError
from pydantic import BaseModel

from autoremedy.config.yamlfile import LoadedYaml, Path_, Problem
from autoremedy.decide.planning import Templating
from autoremedy.decide.templating import ESCAPE_PROMQL, secret_references, template_paths

_TAG = re.compile(r"\{\{(?P<expr>.*?)\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_ALERT_DATA = re.compile(r"\b(alert|params)\b")
_QUOTING_FILTER = re.compile(r"\|\s*(promql_str|promql_re)\s*$")
_REGEX_MATCHER = re.compile(r"[=!]~\s*$")
REGEX_QUOTE = "=~"
"""What `unquoted_alert_values` reports as the quote of a value inside a regex matcher's "..." string."""


def input_escapes(actions: Mapping[str, type[BaseModel]]) -> dict[str, dict[str, str]]:
    """action -> input (its YAML name) -> the escape its model declares (`json_schema_extra={"escape": ...}`)."""
    found: dict[str, dict[str, str]] = {}
    for action, model in actions.items():
        for name, info in model.model_fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and isinstance(extra.get("escape"), str):
                found.setdefault(action, {})[info.alias or name] = str(extra["escape"])
    return found


def secret_problems(
    value: Any, loaded: LoadedYaml, where: Path_, templating: Templating, *, allowed: bool
) -> list[Problem]:
    found = []
    for path, source in template_paths(value, where):
        label = ".".join(str(part) for part in path)
        for name in _references(source):
            if not allowed:
                message = f'{label}: secret("...") is only available in step inputs (with:)'
            elif name is None:
                message = f'{label}: secret() takes the name as a literal string, e.g. secret("WEBHOOK_TOKEN")'
            elif name not in templating.secrets:
                message = f"{label}: " + templating.unavailable.get(
                    name, f"secret {name!r} is not configured (add it under secrets: in the config)"
                )
            else:
                continue
            found.append(Problem(loaded.file, loaded.line_of(path), message))
    return found


def _references(source: str) -> Iterator[str | None]:
    try:
        yield from secret_references(source)
    except TemplateSyntaxError:  # reported by the compile check
        return


def promql_warnings(
    inputs: Mapping[str, Any], escapes: Mapping[str, str], loaded: LoadedYaml, where: Path_
) -> list[Problem]:
    found = []
    for key, escape in escapes.items():
        source = inputs.get(key)
        if escape != ESCAPE_PROMQL or not isinstance(source, str):
            continue
        for line_offset, expr, inside in unquoted_alert_values(source):
            line = loaded.line_of((*where, "with", key)) + line_offset
            label = ".".join(str(part) for part in (*where, "with", key))
            if inside == "'":
                message = (
                    f"{label}: {{{{{expr}}}}} sits in a '...' string, where a value holding a double quote makes the "
                    'query fail: use "..." instead'
                )
            elif inside == REGEX_QUOTE:
                message = (
                    f"{label}: {{{{{expr}}}}} sits in a regex matcher, where a value such as .* matches every "
                    "series: write =~{{ ... | promql_re }} to match the value exactly, or use ="
                )
            elif inside:
                message = f"{label}: {{{{{expr}}}}} is quoted twice (by the filter and by the quotes around it)"
            else:
                message = (
                    f"{label}: {{{{{expr}}}}} puts alert or params data outside a quoted PromQL string, where a "
                    'value can change the query: write it inside "..." or use | promql_str'
                )
            found.append(Problem(loaded.file, line, message))
    return found


def unquoted_alert_values(source: str) -> Iterator[tuple[int, str, str]]:
    """(line offset, expression, the quote it sits in or "") of each `{{ ... }}` using alert/params data outside
    a PromQL string literal unless piped into promql_str/promql_re (which quote it), inside one and piped (quoted
    twice), or inside '...' (Go has no \\" there). A backtick string is raw: not safe."""
    quote: str | None = None
    in_regex = False  # the open string is a regex matcher's (`=~"..."`): the escape keeps `.*` a regex
    position = 0
    for tag in _TAG.finditer(source):
        quote, opened = _quote_after(source[position : tag.start()], quote)
        if opened is not None:
            in_regex = _REGEX_MATCHER.search(source, 0, position + opened) is not None
        position = tag.end()
        expr = tag.group("expr")
        if expr is None or not _ALERT_DATA.search(expr):
            continue
        quoted_by_filter = _QUOTING_FILTER.search(expr.strip()) is not None
        quoted = quote in ('"', "'")
        if quoted == quoted_by_filter or quote == "'":  # unquoted and unfiltered, quoted twice, or in '...'
            yield source.count("\n", 0, tag.start()), expr, quote or ""
        elif in_regex:
            yield source.count("\n", 0, tag.start()), expr, REGEX_QUOTE


def _quote_after(text: str, quote: str | None) -> tuple[str | None, int | None]:
    """The string literal open at the end of `text`, given the one open at its start, and where in `text` it
    opened (None: before `text`, or none is open)."""
    escaped = False
    opened = None
    for index, char in enumerate(text):
        if quote is not None and quote != "`" and char == "\\" and not escaped:
            escaped = True
            continue
        if quote is None and char in "\"'`":
            quote, opened = char, index
        elif char == quote and not escaped:
            quote, opened = None, None
        escaped = False
    return quote, opened
