"""One migration numbering for both backends, the translation of databases numbered before it, and the
fragments that let both dialects share one query text."""

from __future__ import annotations

import re

import pytest

from autoremedy.store.migrations import RENUMBERED, Renumbering, migrations, pending, renumberings
from autoremedy.store.queries import _fill, _parse, load_queries, sql_dir


def _change(name: str) -> str:
    return name.split("_", 1)[1]


def test_version_n_is_the_same_change_on_both_backends() -> None:
    sqlite = {m.version: m.name for m in migrations("sqlite")}
    postgres = {m.version: m.name for m in migrations("postgres")}
    assert max(sqlite) == max(postgres), "one backend has a change the other lacks"
    first = min(postgres)
    # PostgreSQL's first file holds SQLite's changes up to its number; from there every version is one change.
    assert postgres[first] == f"{first:03d}_initial.sql"
    for version in range(first + 1, max(postgres) + 1):
        assert _change(postgres[version]) == _change(sqlite[version]), version
    assert sorted(sqlite) == list(range(1, max(sqlite) + 1)), "a gap in SQLite's chain"


def test_every_renumbered_file_exists_under_its_new_name() -> None:
    for dialect, table in RENUMBERED.items():
        names = {m.version: m.name for m in migrations(dialect)}
        for version, name in table.values():
            assert names[version] == name


OLD_POSTGRES = [
    (1, "001_initial.sql"),
    (2, "002_chatops.sql"),
    (3, "003_fencing.sql"),
    (4, "004_storm.sql"),
    (5, "005_console_sessions.sql"),
]


def test_an_old_postgres_database_is_renumbered_highest_first() -> None:
    moves = renumberings("postgres", OLD_POSTGRES)
    assert moves == [
        Renumbering(5, 8, "008_console_sessions.sql"),
        Renumbering(4, 7, "007_storm.sql"),
        Renumbering(3, 6, "006_fencing.sql"),
        Renumbering(2, 5, "005_chatops.sql"),
        Renumbering(1, 4, "004_initial.sql"),
    ]
    # Applied in this order, no new number lands on a row not yet moved (the primary key would refuse it).
    rows = dict(OLD_POSTGRES)
    for move in moves:
        assert move.new_version not in rows
        rows[move.new_version] = rows.pop(move.old_version)
    assert pending("postgres", rows) == []


def test_an_old_database_part_way_up_gets_only_the_changes_it_lacks() -> None:
    old_at_fencing = OLD_POSTGRES[:3]
    applied = [move.new_version for move in renumberings("postgres", old_at_fencing)]
    assert sorted(applied) == [4, 5, 6]
    assert [m.name for m in pending("postgres", applied)] == ["007_storm.sql", "008_console_sessions.sql"]


def test_renumbered_and_new_databases_are_left_alone() -> None:
    new = [(m.version, m.name) for m in migrations("postgres")]
    assert renumberings("postgres", new) == []
    assert renumberings("postgres", []) == []
    sqlite = [(m.version, m.name) for m in migrations("sqlite")]
    assert renumberings("sqlite", sqlite) == []
    # SQLite's 004 is not PostgreSQL's old 004: the translation goes by file name, not by number.
    assert renumberings("postgres", [(4, "004_initial.sql")]) == []


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_every_fragment_is_filled(dialect: str) -> None:
    for name, sql in load_queries(dialect).items():
        assert "/*@" not in sql, name


def test_postgres_claims_skip_locked_rows_and_sqlite_claims_need_no_lock() -> None:
    for name in ("claim_events", "claim_due_runs", "claim_deliveries"):
        assert "FOR UPDATE SKIP LOCKED" in load_queries("postgres")[name], name
        assert "FOR UPDATE" not in load_queries("sqlite")[name], name
    assert re.search(r"FOR UPDATE\s*;?$", load_queries("postgres")["lock_breaker"])
    assert "FOR UPDATE" not in load_queries("sqlite")["lock_breaker"]


def test_postgres_overrides_only_what_the_dialects_do_differently() -> None:
    """A query copied whole to add one clause is what fragments replace: an override must differ in more."""
    shared: dict[str, str] = {}
    for path in sorted(sql_dir().iterdir(), key=lambda entry: entry.name):
        if path.name.endswith(".sql"):
            shared.update(_parse(path.read_text("utf-8"))[0])
    postgres_own, _ = _parse(sql_dir().joinpath("postgres", "queries.sql").read_text("utf-8"))
    for name, sql in postgres_own.items():
        if name in shared:
            without_fragments = re.sub(r"/\*@\w+\*/", "", shared[name])
            assert _words(without_fragments) != _words(re.sub(r"FOR UPDATE( SKIP LOCKED)?", "", sql)), name


def _words(sql: str) -> str:
    return " ".join(re.sub(r"--[^\n]*", "", sql).split())


def test_a_misspelt_fragment_is_an_error_not_a_missing_lock() -> None:
    with pytest.raises(KeyError, match="skip_lockd"):
        _fill("claim", "SELECT 1 /*@skip_lockd*/", {"skip_locked": "FOR UPDATE SKIP LOCKED"}, "postgres")


def test_fragments_are_parsed_without_their_comments() -> None:
    queries, fragments = _parse("-- name: q\nSELECT 1 /*@lock*/;\n\n-- fragment: lock\n-- why\nFOR UPDATE\n")
    assert queries == {"q": "SELECT 1 /*@lock*/;"}
    assert fragments == {"lock": "FOR UPDATE"}
