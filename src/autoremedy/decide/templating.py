"""Templating of playbook inputs with jinja2's sandbox.

Label and annotation values reach templates only as data: a template is compiled from the playbook or rule file,
never from an alert, and a rendered value is never rendered again. The sandbox refuses dunder and other unsafe
attribute access; StrictUndefined turns a missing label into an error instead of an empty string.

Inputs that are PromQL (an action declares them, see `ESCAPE_PROMQL`) are rendered with an escape, as autoescape
does for HTML: every `{{ ... }}` that yields a string lands as PromQL string-literal content, so a label value
inside `"..."` cannot close the string and change the query. jinja2's own autoescape cannot do this: it always
calls markupsafe's HTML escape (`<` becomes `&lt;`, which would change a label value) and only `__html__`
objects bypass it. Its `finalize` hook sees each expression's value before output, which is the place for a
custom escape; values the `promql_str`/`promql_re` filters return are marked already escaped (as `Markup` is).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any, Final

from jinja2 import StrictUndefined, Template, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ESCAPE_PROMQL: Final = "promql"
"""The escape of PromQL inputs; an action input declares it with `json_schema_extra={"escape": "promql"}`."""
ESCAPE_URL: Final = "url"
"""Not an escape: a URL input is rendered as it is, then its host is checked (decide/urls.py)."""
SECRET_FUNCTION: Final = "secret"

# Go's strconv.Quote for what it escapes in ASCII, plus `'` (as \x27, valid in both '...' and "..." in PromQL) so
# that a single-quoted matcher is as safe as a double-quoted one, and the backtick (as \x60) so that a value in a
# `...` raw string (which has no escapes: validate warns about it) reads wrong instead of closing the string.
_GO_ESCAPES: Final = {
    "\\": "\\\\",
    '"': '\\"',
    "'": "\\x27",
    "`": "\\x60",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}
_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


class PromQLSafe(str):
    """A string already made safe for a PromQL query (the result of `promql_str`/`promql_re`): not escaped again."""

    __slots__ = ()


def promql_escape(value: str) -> str:
    """`value` as the content of a PromQL string literal (Go escaping: backslash, quotes, control characters)."""
    return "".join(_GO_ESCAPES.get(char) or (char if char.isprintable() else _go_code_point(char)) for char in value)


def _go_code_point(char: str) -> str:
    code = ord(char)
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def promql_str(value: object) -> PromQLSafe:
    """`"value"`: a whole, quoted PromQL string (for a matcher value, label_replace arguments, ...)."""
    return PromQLSafe(f'"{promql_escape(str(value))}"')


def promql_re(value: object) -> PromQLSafe:
    """A quoted regex matching exactly `value`: RE2 metacharacters escaped as Go's regexp.QuoteMeta does; PromQL
    anchors `=~` at both ends, so `{job=~{{ x | promql_re }}}` matches `x` and nothing longer."""
    quoted = _RE2_SPECIAL.sub(r"\\\1", str(value))
    return PromQLSafe(f'"{promql_escape(quoted)}"')


def _promql_finalize(value: Any) -> Any:
    """Every value but a number or an already quoted one is escaped as text: a list or a map (`{{ [x] }}`,
    `{{ x.split("-") }}`) prints its items with Python's repr, which leaves a `"` inside them unescaped."""
    if isinstance(value, PromQLSafe | int | float):
        return value
    return promql_escape(str(value))


def _environment(finalize: Callable[[Any], Any] | None = None) -> ImmutableSandboxedEnvironment:
    # Immutable: a template cannot change the alert view (e.g. labels.update(...)) that other plans render from.
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, finalize=finalize
    )
    env.filters["promql_str"] = promql_str
    env.filters["promql_re"] = promql_re
    return env


_ENVIRONMENTS: Final = {None: _environment(), ESCAPE_PROMQL: _environment(_promql_finalize)}


class RenderError(Exception):
    """A template could not be rendered; the message says which and why."""


@lru_cache(maxsize=4096)
def compile_template(source: str, escape: str | None = None) -> Template:
    """Compile once; raises jinja2.TemplateSyntaxError for a broken template."""
    template = _ENVIRONMENTS[escape].from_string(source)
    # jinja2 keeps a template's globals as a ChainMap over the environment's and copies it into a new dict on
    # every render; a plain dict of the same (fixed) globals renders 3-4x faster (backtests render 100,000s).
    template.globals = dict(template.globals)
    return template


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def render_text(source: str, context: Mapping[str, Any], *, where: str, escape: str | None = None) -> str:
    if not is_template(source):
        return source
    try:
        return compile_template(source, escape).render(context)
    except Exception as exc:  # a label value can make any filter fail (int("x"), 1/0): that is a plan error
        raise RenderError(f"{where}: {type(exc).__name__}: {exc}") from exc


def render_value(
    value: Any, context: Mapping[str, Any], *, where: str, escapes: Mapping[str, str] | None = None
) -> Any:
    """Render every string inside nested lists and maps; other scalars pass through unchanged. `escapes` names
    the escape of top-level keys (`{"query": "promql"}`)."""
    if isinstance(value, str):
        return render_text(value, context, where=where)
    if isinstance(value, Mapping):
        return {
            key: _render_entry(item, context, where=f"{where}.{key}", escape=(escapes or {}).get(key))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [render_value(item, context, where=f"{where}[{index}]") for index, item in enumerate(value)]
    return value


def _render_entry(value: Any, context: Mapping[str, Any], *, where: str, escape: str | None) -> Any:
    if escape in _ENVIRONMENTS and isinstance(value, str):
        return render_text(value, context, where=where, escape=escape)
    return render_value(value, context, where=where)


def template_paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str]]:
    """Every template string inside a value with its path (keys and list indexes), to compile-check files."""
    if isinstance(value, str):
        return [(path, value)] if is_template(value) else []
    if isinstance(value, Mapping):
        return [found for key, item in value.items() for found in template_paths(item, (*path, key))]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in template_paths(item, (*path, i))]
    return []


def template_sources(value: Any, *, where: str) -> list[tuple[str, str]]:
    """Every template string inside a value, with where it sits written for people (`where.key[0]`)."""
    return [
        (where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path), source)
        for path, source in template_paths(value)
    ]


def secret_references(source: str) -> Iterator[str | None]:
    """The names a template passes to `secret(...)`; None for a call whose name is not a literal string
    (refused: which secrets a playbook reads must be known before any alert arrives)."""
    parsed = _ENVIRONMENTS[None].parse(source)
    called = set()
    for call in parsed.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name == SECRET_FUNCTION:
            called.add(id(call.node))
            first = call.args[0] if call.args else None
            yield first.value if isinstance(first, nodes.Const) and isinstance(first.value, str) else None
    for name in parsed.find_all(nodes.Name):
        if name.name == SECRET_FUNCTION and id(name) not in called:
            yield None  # passed on (`{% set s = secret %}{{ s(alert.labels.n) }}`): a label would pick the secret
