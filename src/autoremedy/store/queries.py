"""Named SQL queries read from .sql files: Python refers to a query by name, SQL stays in SQL files.

`sql/*.sql` (queries.sql, and console.sql for the web console) hold the queries every backend shares;
`sql/<dialect>/queries.sql` may override some where the dialects truly differ (e.g. `unnest` for a batch on
PostgreSQL) and defines the fragments: a clause only some dialects need is written `/*@name*/` in the shared text
and filled from the dialect's `-- fragment: name` (empty where the dialect needs none, e.g. SQLite's
`skip_locked`: one writer, no row another transaction could hold). A fragment the dialect does not define is an
error, so a misspelt one cannot silently drop a lock. Migrations: store/migrations.py.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from importlib.abc import Traversable

_SECTION = re.compile(r"^--\s*(name|fragment):\s*(\w+)\s*$", re.M)
_PLACEHOLDER = re.compile(r"/\*@(\w+)\*/")
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def sql_dir() -> Traversable:
    return resources.files("autoremedy.store").joinpath("sql")


def _parse(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """The `-- name:` queries and the `-- fragment:` clauses of a file (a fragment's comment lines left out)."""
    parts = _SECTION.split(text)
    queries: dict[str, str] = {}
    fragments: dict[str, str] = {}
    for kind, name, body in zip(parts[1::3], parts[2::3], parts[3::3], strict=True):
        if kind == "name":
            queries[name] = body.strip()
        else:
            lines = (line.strip() for line in body.splitlines())
            fragments[name] = " ".join(line for line in lines if line and not line.startswith("--"))
    return queries, fragments


def _fill(name: str, sql: str, fragments: dict[str, str], dialect: str) -> str:
    def fragment(match: re.Match[str]) -> str:
        if match.group(1) not in fragments:
            raise KeyError(f"query {name}: fragment {match.group(1)} is not defined for {dialect}")
        return fragments[match.group(1)]

    return _PLACEHOLDER.sub(fragment, sql)


@cache
def load_queries(dialect: str) -> dict[str, str]:
    queries: dict[str, str] = {}
    for shared in sorted(entry.name for entry in sql_dir().iterdir() if entry.name.endswith(".sql")):
        found = _parse(sql_dir().joinpath(shared).read_text("utf-8"))[0]
        twice = sorted(found.keys() & queries.keys())
        if twice:  # only a dialect's own file may replace a shared query; two shared ones would shadow silently
            raise KeyError(f"{shared}: queries already defined in another shared file: {', '.join(twice)}")
        queries.update(found)
    overrides = sql_dir().joinpath(dialect, "queries.sql")
    own, fragments = _parse(overrides.read_text("utf-8") if overrides.is_file() else "")
    queries.update(own)
    return {name: _fill(name, sql, fragments, dialect) for name, sql in queries.items()}


def positional(sql: str) -> tuple[str, list[str]]:
    """`:name` parameters as PostgreSQL's `$n`, and the names in their order (`::type` casts are left alone)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _PARAM.sub(number, sql), names
