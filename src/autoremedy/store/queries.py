"""Named SQL queries read from .sql files: Python refers to a query by name, SQL stays in SQL files."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.M)


@cache
def load_queries(dialect: str) -> dict[str, str]:
    text = resources.files("autoremedy.store").joinpath("sql", dialect, "queries.sql").read_text("utf-8")
    parts = _NAME.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every numbered migration, in order."""
    folder = resources.files("autoremedy.store").joinpath("sql", dialect)
    found = []
    for entry in folder.iterdir():
        match = re.match(r"^(\d+)_\w+\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text("utf-8")))
    return sorted(found)
