"""Both backends migrated from scratch hold the same schema (tables, columns with their types mapped between the
dialects, primary keys, indexes with their predicates, unique and check constraints), and a PostgreSQL database
numbered before the chains shared numbers is upgraded without applying anything twice or skipping anything."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from autoremedy.store.migrations import RENUMBERED, migrations
from autoremedy.store.postgres import PostgresStore
from autoremedy.store.sqlite import SQLiteStore
from tests.support.inprocess import fresh_database
from tests.support.postgres import PostgresServer

# The one place the dialects differ on purpose: SQLite keeps times as ISO-8601 text and has one integer type.
POSTGRES_KINDS = {"text": "text", "timestamp with time zone": "text", "integer": "integer", "bigint": "integer"}
SQLITE_KINDS = {"TEXT": "text", "INTEGER": "integer"}


@dataclass
class Schema:
    columns: dict[str, dict[str, tuple[str, bool, str | None]]] = field(default_factory=dict)
    """table -> column -> (kind, not null, default)."""
    primary_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    indexes: dict[str, tuple[str, bool, tuple[str, ...], str]] = field(default_factory=dict)
    """name -> (table, unique, columns, predicate) for the indexes a migration created by name."""
    unique: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)
    checks: set[tuple[str, str]] = field(default_factory=set)


def _predicate(sql: str) -> str:
    """A partial index's WHERE (or a CHECK) in one spelling: PostgreSQL's casts and `= ANY (ARRAY[...])` undone."""
    sql = re.sub(r"::\w+(\[\])?", "", sql)
    sql = re.sub(r"(\w+) = ANY \(ARRAY\[(.*?)\]\)", r"\1 IN (\2)", sql)
    return re.sub(r"[\s()]", "", sql).lower()


def _default(value: str | None) -> str | None:
    return None if value is None else re.sub(r"::\w+", "", value).strip("()")


def sqlite_schema(path: Path) -> Schema:
    schema = Schema()
    db = sqlite3.connect(path)
    try:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            info = db.execute(f"PRAGMA table_info({table})").fetchall()
            schema.columns[table] = {
                name: (SQLITE_KINDS[kind], bool(notnull) or pk > 0, _default(default))
                for _, name, kind, notnull, default, pk in info
            }
            schema.primary_keys[table] = tuple(row[1] for row in sorted(info, key=lambda row: row[5]) if row[5])
            sql = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
            schema.checks |= {(table, _predicate(check)) for check in re.findall(r"CHECK\s*\((.*?)\)", sql)}
            for _, index, unique, origin, _partial in db.execute(f"PRAGMA index_list({table})").fetchall():
                columns = tuple(row[2] for row in db.execute(f"PRAGMA index_info({index})"))
                if origin == "u":
                    schema.unique.add((table, columns))
                elif origin == "c":
                    created = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (index,)).fetchone()[0]
                    where = created.split(" WHERE ", 1)[1] if " WHERE " in created else ""
                    schema.indexes[index] = (table, bool(unique), columns, _predicate(where))
    finally:
        db.close()
    return schema


async def postgres_schema(dsn: str) -> Schema:
    schema = Schema()
    db = await asyncpg.connect(dsn)
    try:
        for row in await db.fetch(
            "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity"
            " FROM information_schema.columns WHERE table_schema = 'public'"
        ):
            default = None if row["is_identity"] == "YES" else _default(row["column_default"])
            kind = (POSTGRES_KINDS[row["data_type"]], row["is_nullable"] == "NO", default)
            schema.columns.setdefault(row["table_name"], {})[row["column_name"]] = kind
        for row in await db.fetch(
            "SELECT c.conrelid::regclass::text AS tab, c.contype::text AS contype, pg_get_constraintdef(c.oid) AS def,"
            " array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o)"
            "       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o) AS cols"
            " FROM pg_constraint c JOIN pg_namespace s ON s.oid = c.connamespace WHERE s.nspname = 'public'"
        ):
            if row["contype"] == "p":
                schema.primary_keys[row["tab"]] = tuple(row["cols"])
            elif row["contype"] == "u":
                schema.unique.add((row["tab"], tuple(row["cols"])))
            elif row["contype"] == "c":
                schema.checks.add((row["tab"], _predicate(row["def"].removeprefix("CHECK "))))
        for row in await db.fetch(
            "SELECT i.indexrelid::regclass::text AS name, i.indrelid::regclass::text AS tab, i.indisunique,"
            " pg_get_expr(i.indpred, i.indrelid) AS pred,"
            " array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)"
            "       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) AS cols"
            " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_namespace s ON s.oid = c.relnamespace"
            " WHERE s.nspname = 'public' AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
        ):
            predicate = _predicate(row["pred"] or "")
            schema.indexes[row["name"]] = (row["tab"], row["indisunique"], tuple(row["cols"]), predicate)
    finally:
        await db.close()
    return schema


@pytest.fixture
async def both(tmp_path: Path, shared_postgres: PostgresServer) -> tuple[Schema, Schema]:
    sqlite = SQLiteStore(tmp_path / "store.db")
    await sqlite.open()
    await sqlite.close()
    dsn = await fresh_database(shared_postgres)
    postgres = PostgresStore(dsn)
    await postgres.open()
    await postgres.close()
    return sqlite_schema(tmp_path / "store.db"), await postgres_schema(dsn)


async def test_the_same_tables_and_columns_with_mapped_types(both: tuple[Schema, Schema]) -> None:
    sqlite, postgres = both
    assert "events" in sqlite.columns and "console_sessions" in sqlite.columns  # the introspection saw the schema
    schema_table = "schema_migrations"  # its applied_at is each backend's own clock format; compared separately
    assert sqlite.columns.keys() == postgres.columns.keys()
    for table in sqlite.columns:
        if table != schema_table:
            assert sqlite.columns[table] == postgres.columns[table], table
    assert sqlite.columns[schema_table].keys() == postgres.columns[schema_table].keys()
    assert sqlite.primary_keys == postgres.primary_keys


async def test_the_same_indexes_unique_and_check_constraints(both: tuple[Schema, Schema]) -> None:
    sqlite, postgres = both
    assert "runs_one_active_per_target" in sqlite.indexes
    assert sqlite.indexes == postgres.indexes
    assert sqlite.unique == postgres.unique
    assert sqlite.checks == postgres.checks
    assert ("breaker", "id=1") in sqlite.checks


async def test_both_record_the_same_versions(tmp_path: Path, shared_postgres: PostgresServer) -> None:
    sqlite = SQLiteStore(tmp_path / "store.db")
    await sqlite.open()
    await sqlite.close()
    dsn = await fresh_database(shared_postgres)
    postgres = PostgresStore(dsn)
    await postgres.open()
    await postgres.close()
    db = sqlite3.connect(tmp_path / "store.db")
    sqlite_versions = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
    db.close()
    conn = await asyncpg.connect(dsn)
    postgres_versions = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
    await conn.close()
    assert max(sqlite_versions) == max(postgres_versions) == migrations("sqlite")[-1].version
    assert postgres_versions <= sqlite_versions


async def _old_postgres_database(server: PostgresServer, up_to: int) -> str:
    """A database as the daemon left it before the renumbering: PostgreSQL's files 1..`up_to` applied, recorded
    under their old numbers and names."""
    old = sorted((int(name[:3]), name) for name in RENUMBERED["postgres"])
    new_by_old_name = RENUMBERED["postgres"]
    files = {m.name: m.sql for m in migrations("postgres")}
    dsn = await fresh_database(server)
    db = await asyncpg.connect(dsn)
    try:
        await db.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TIMESTAMPTZ)"
        )
        for version, name in old[:up_to]:
            await db.execute(files[new_by_old_name[name][1]])
            await db.execute("INSERT INTO schema_migrations VALUES ($1, $2, now())", version, name)
    finally:
        await db.close()
    return dsn


@pytest.mark.parametrize("up_to", [3, 5])
async def test_an_old_postgres_database_upgrades_without_reapplying(
    shared_postgres: PostgresServer, up_to: int
) -> None:
    dsn = await _old_postgres_database(shared_postgres, up_to)
    store = PostgresStore(dsn)
    await store.open()  # applying 004_initial.sql again would fail: its tables exist
    await store.close()
    await store.open()  # and a second open changes nothing
    await store.close()
    db = await asyncpg.connect(dsn)
    try:
        recorded = [
            (row[0], row[1]) for row in await db.fetch("SELECT version, name FROM schema_migrations ORDER BY 1")
        ]
    finally:
        await db.close()
    assert recorded == [(m.version, m.name) for m in migrations("postgres")]
    fresh = await fresh_database(shared_postgres)
    new = PostgresStore(fresh)
    await new.open()
    await new.close()
    assert await postgres_schema(dsn) == await postgres_schema(fresh)
