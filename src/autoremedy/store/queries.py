"""Named SQL queries read from .sql files: Python refers to a query by name, SQL stays in SQL files.

`sql/*.sql` (queries.sql, and console.sql for the web console) hold the queries every backend shares;
`sql/<dialect>/queries.sql` may override some (e.g. to add `FOR UPDATE SKIP LOCKED` on PostgreSQL).
Migrations are `sql/<dialect>/NNN_name.sql`, applied in order.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from importlib.abc import Traversable

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.M)
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def _sql_dir() -> Traversable:
    return resources.files("autoremedy.store").joinpath("sql")


def _parse(text: str) -> dict[str, str]:
    parts = _NAME.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


@cache
def load_queries(dialect: str) -> dict[str, str]:
    queries: dict[str, str] = {}
    for shared in sorted(entry.name for entry in _sql_dir().iterdir() if entry.name.endswith(".sql")):
        queries.update(_parse(_sql_dir().joinpath(shared).read_text("utf-8")))
    overrides = _sql_dir().joinpath(dialect, "queries.sql")
    if overrides.is_file():
        queries.update(_parse(overrides.read_text("utf-8")))
    return queries


def positional(sql: str) -> tuple[str, list[str]]:
    """`:name` parameters as PostgreSQL's `$n`, and the names in their order (`::type` casts are left alone)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _PARAM.sub(number, sql), names


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every numbered migration, in order."""
    found = []
    for entry in _sql_dir().joinpath(dialect).iterdir():
        match = re.match(r"^(\d+)_\w+\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text("utf-8")))
    return sorted(found)
