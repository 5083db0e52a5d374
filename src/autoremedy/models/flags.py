"""Strict booleans for action inputs: a rendered template may say `true`/`false`, never `yes`, `1` or `on`.

pydantic's lax bool accepts "yes", "on", "1" and "y": a label rendered into `force:` could then switch a guard off
with a word nobody reads as a decision. Only what YAML and jinja2 print for a boolean is accepted.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

_WORDS = {"true": True, "false": False, "True": True, "False": False}


def _strict_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip() in _WORDS:
        return _WORDS[value.strip()]
    raise ValueError(f"must be true or false, not {str(value)[:40]!r}")


StrictFlag = Annotated[bool, BeforeValidator(_strict_bool)]
"""true/false, or the strings "true"/"false" ("True"/"False" as jinja2 renders a boolean)."""
