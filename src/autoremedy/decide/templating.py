"""Templating of playbook inputs with jinja2's sandbox.

Label and annotation values reach templates only as data: a template is compiled from the playbook or rule file,
never from an alert, and a rendered value is never rendered again. The sandbox refuses dunder and other unsafe
attribute access; StrictUndefined turns a missing label into an error instead of an empty string.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Immutable: a template cannot change the alert view (e.g. labels.update(...)) that other plans render from.
_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


class RenderError(Exception):
    """A template could not be rendered; the message says which and why."""


@lru_cache(maxsize=4096)
def compile_template(source: str) -> Template:
    """Compile once; raises jinja2.TemplateSyntaxError for a broken template."""
    return _ENV.from_string(source)


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def render_text(source: str, context: Mapping[str, Any], *, where: str) -> str:
    if not is_template(source):
        return source
    try:
        return compile_template(source).render(context)
    except Exception as exc:  # a label value can make any filter fail (int("x"), 1/0): that is a plan error
        raise RenderError(f"{where}: {type(exc).__name__}: {exc}") from exc


def render_value(value: Any, context: Mapping[str, Any], *, where: str) -> Any:
    """Render every string inside nested lists and maps; other scalars pass through unchanged."""
    if isinstance(value, str):
        return render_text(value, context, where=where)
    if isinstance(value, Mapping):
        return {key: render_value(item, context, where=f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context, where=f"{where}[{index}]") for index, item in enumerate(value)]
    return value


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
