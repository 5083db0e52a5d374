"""Self-test of tests.support.postgres: real PostgreSQL 15 primaries and streaming replicas on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest

from tests.support.postgres import (
    PostgresPair,
    PostgresServer,
    start_postgres,
    start_replica,
)


def processes_under(root: Path) -> list[str]:
    """Every process whose cwd is inside ``root`` (each PostgreSQL process chdirs to its data dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd == str(root) or cwd.startswith(f"{root}/"):
            found.append(f"{entry.name} {cmdline}")
    return found


async def count_rows(server: PostgresServer, dbname: str) -> int:
    return int(await server.fetchval("SELECT count(*) FROM events", dbname=dbname))


async def test_primary_accepts_a_new_database_and_writes(postgres: PostgresServer) -> None:
    dsn = await postgres.create_database("app")
    assert dsn == f"postgresql://postgres@127.0.0.1:{postgres.port}/app"
    assert postgres.dsn() == f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE events (id serial PRIMARY KEY, body text NOT NULL)")
        await conn.execute("INSERT INTO events (body) VALUES ('one'), ('two')")
        assert await conn.fetchval("SELECT string_agg(body, ',' ORDER BY id) FROM events") == "one,two"
        assert await conn.fetchval("SHOW fsync") == "off"
        assert await conn.fetchval("SHOW wal_level") == "replica"
        assert await conn.fetchval("SHOW server_version_num") >= "150000"
    finally:
        await conn.close()
    assert postgres.is_running()
    assert postgres.data_dir.is_dir()
    assert postgres.pids(), "the server's processes are found by their cwd"
    assert "database system is ready to accept connections" in postgres.log_tail()


async def test_replica_streams_what_the_primary_writes(postgres_pair: PostgresPair) -> None:
    primary, replica = postgres_pair
    assert replica.port != primary.port
    assert await replica.is_in_recovery()
    assert not await primary.is_in_recovery()
    streaming = await primary.fetchval("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
    assert streaming == 1

    await primary.create_database("app")
    conn = await asyncpg.connect(primary.dsn("app"))
    try:
        await conn.execute("CREATE TABLE events (id serial PRIMARY KEY, body text NOT NULL)")
        await conn.executemany("INSERT INTO events (body) VALUES ($1)", [(f"e{i}",) for i in range(100)])
    finally:
        await conn.close()

    await replica.wait_caught_up(primary, deadline_s=10.0)
    assert await count_rows(replica, "app") == 100
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await replica.fetchval("INSERT INTO events (body) VALUES ('nope') RETURNING id", dbname="app")


async def test_stop_kill9_and_start_again_keep_data_dir_and_port(postgres: PostgresServer) -> None:
    await postgres.create_database("app")
    await postgres.fetchval("CREATE TABLE events (id serial PRIMARY KEY, body text NOT NULL)", dbname="app")
    await postgres.fetchval("INSERT INTO events (body) VALUES ('before stop')", dbname="app")
    port = postgres.port

    assert postgres.stop("fast") == 0
    assert not postgres.is_running()
    assert postgres.pids() == []
    with pytest.raises(OSError):
        await postgres.connect(timeout_s=2.0)
    assert postgres.stop() == 0, "stop() is idempotent"

    await postgres.start()
    assert postgres.port == port
    await postgres.fetchval("INSERT INTO events (body) VALUES ('before kill')", dbname="app")

    assert postgres.kill9() == -9
    assert not postgres.is_running()
    assert postgres.pids() == [], "no backend survives its postmaster"

    await postgres.start()  # crash recovery; every committed row survives a killed server (fsync only matters
    # for an OS crash)
    assert postgres.port == port
    assert await count_rows(postgres, "app") == 2
    assert "database system was interrupted" in postgres.log_tail()


async def test_promoted_replica_leaves_recovery_and_accepts_writes(postgres_pair: PostgresPair) -> None:
    primary, replica = postgres_pair
    await primary.create_database("app")
    await primary.fetchval("CREATE TABLE events (id serial PRIMARY KEY, body text NOT NULL)", dbname="app")
    await replica.wait_caught_up(primary)

    primary.stop("fast")
    await replica.promote()
    assert not await replica.is_in_recovery()
    await replica.fetchval("INSERT INTO events (body) VALUES ('after failover')", dbname="app")
    assert await count_rows(replica, "app") == 1


async def test_nothing_is_left_running(tmp_path: Path) -> None:
    primary = await start_postgres(tmp_path)
    replica: PostgresServer | None = None
    try:
        replica = await start_replica(primary, tmp_path)
        assert len(processes_under(tmp_path)) >= 2 * 5, processes_under(tmp_path)
    finally:
        if replica is not None:
            replica.stop("immediate")
        primary.stop("immediate")
    assert processes_under(tmp_path) == []
