"""Migrations: `sql/<dialect>/NNN_name.sql`, one numbering for both backends.

Version N is the same change on SQLite and PostgreSQL, and the file has the same name on both. PostgreSQL support
came after SQLite's first four changes, so its chain starts at 004 with the four in one file. Databases created
before the chains shared numbers recorded PostgreSQL's files as 001-005; `renumberings` says how to rewrite their
schema table (by file name, so a row is moved once and nothing is applied twice or skipped).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from autoremedy.store.queries import sql_dir

_FILE = re.compile(r"^(\d+)_\w+\.sql$")

RENUMBERED: Final[Mapping[str, Mapping[str, tuple[int, str]]]] = {
    "postgres": {
        "001_initial.sql": (4, "004_initial.sql"),
        "002_chatops.sql": (5, "005_chatops.sql"),
        "003_fencing.sql": (6, "006_fencing.sql"),
        "004_storm.sql": (7, "007_storm.sql"),
        "005_console_sessions.sql": (8, "008_console_sessions.sql"),
    },
    "sqlite": {},
}
"""Per dialect: a file name recorded under the old numbering -> its version and name now."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@dataclass(frozen=True, slots=True)
class Renumbering:
    old_version: int
    new_version: int
    new_name: str


def migrations(dialect: str) -> list[Migration]:
    """Every numbered migration of `dialect`, in order."""
    found = []
    for entry in sql_dir().joinpath(dialect).iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    return sorted(found, key=lambda migration: migration.version)


def renumberings(dialect: str, recorded: Iterable[tuple[int, str | None]]) -> list[Renumbering]:
    """The rows (version, name) of a schema table written under the old numbering, with their numbers now.

    Highest first: every move is upwards, so moving in this order never lands on a row not yet moved."""
    table = RENUMBERED[dialect]
    moves = [
        Renumbering(version, *table[name])
        for version, name in recorded
        if name is not None and name in table and table[name][0] != version
    ]
    return sorted(moves, key=lambda move: move.old_version, reverse=True)


def pending(dialect: str, applied: Iterable[int]) -> list[Migration]:
    """The migrations a database that recorded `applied` (already renumbered) still needs, in order."""
    done = set(applied)
    return [migration for migration in migrations(dialect) if migration.version not in done]
