"""`postgres.promote` and `postgres.check_writable` against a real PostgreSQL 15 primary and streaming replica:
split-brain refusal, promotion once the primary is down, force, repetition, dry run, unknown names, and
connection timeouts bounded by the step's deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from autoremedy.actions.base import ActionContext, ActionResult, Outcome
from autoremedy.actions.postgres import CheckWritableInputs, PostgresActions, PromoteInputs
from autoremedy.config.integrations import DatabaseSettings
from autoremedy.observability import get_logger
from tests.support.postgres import PostgresPair

DB = "orders"


@dataclass
class Pg:
    pair: PostgresPair
    http: aiohttp.ClientSession

    def actions(self, **overrides: Any) -> PostgresActions:
        values = {"primary": self.pair.primary.dsn(), "replica": self.pair.replica.dsn(), **overrides}
        return PostgresActions({DB: DatabaseSettings(**values)})

    def ctx(self, *, dry_run: bool = False, seconds: float = 10) -> ActionContext:
        return ActionContext(
            run_id="run1",
            operation_id="run1.0",
            target=f"database/{DB}",
            deadline=asyncio.get_running_loop().time() + seconds,
            dry_run=dry_run,
            http=self.http,
            log=get_logger("test"),
        )

    async def promote(self, *, force: bool = False, dry_run: bool = False, **overrides: Any) -> ActionResult:
        return await self.actions(**overrides).promote(
            PromoteInputs(database=DB, force=force), self.ctx(dry_run=dry_run)
        )


@pytest.fixture
async def pg(postgres_pair: PostgresPair) -> AsyncIterator[Pg]:
    primary = postgres_pair.primary
    await primary.fetchval("CREATE TABLE orders (id serial PRIMARY KEY, note text)")
    await primary.fetchval("INSERT INTO orders (note) VALUES ('before failover')")
    await postgres_pair.replica.wait_caught_up(primary)
    async with aiohttp.ClientSession() as http:
        yield Pg(postgres_pair, http)


def assert_outcome(result: ActionResult, outcome: Outcome) -> None:
    assert result.outcome is outcome, result.message


async def test_refuses_while_the_primary_accepts_writes(pg: Pg) -> None:
    result = await pg.promote()
    assert_outcome(result, Outcome.GIVE_UP)
    assert result.message.startswith(
        "refused: the old primary still accepts writes; promoting the replica would make two primaries (split "
        "brain). Stop or fence the old primary, or set force: true"
    )
    assert "[old primary accepted a write (rolled back)]" in result.message
    assert result.data["old_primary"] == "accepts_writes"
    assert result.data["behind_bytes"] == 0  # caught up, and the probe's write was rolled back
    assert result.data["replay_lag_bytes"] == 0
    assert await pg.pair.replica.is_in_recovery()
    assert await pg.pair.primary.fetchval("SELECT count(*) FROM pg_class WHERE relname = 'autoremedy_write_probe'") == 0


async def test_promotes_once_the_primary_is_down(pg: Pg) -> None:
    pg.pair.primary.stop("fast")
    result = await pg.promote()
    assert_outcome(result, Outcome.DONE)
    assert result.message.startswith(f"promoted the replica of {DB!r} (")
    assert result.message.endswith(": the old primary is unreachable")
    assert (result.data["old_primary"], result.data["forced"], result.data["behind_bytes"]) == (
        "unreachable",
        False,
        None,
    )
    assert "ConnectionRefusedError" in result.data["old_primary_detail"]
    replica = pg.pair.replica
    assert not await replica.is_in_recovery()
    await replica.fetchval("INSERT INTO orders (note) VALUES ('after failover')")
    assert await replica.fetchval("SELECT array_agg(note ORDER BY id) FROM orders") == [
        "before failover",
        "after failover",
    ]


async def test_force_promotes_with_the_primary_up_and_says_so(pg: Pg) -> None:
    result = await pg.promote(force=True)
    assert_outcome(result, Outcome.DONE)
    assert "forced although the old primary still accepts writes: fence it now" in result.message
    assert result.data["forced"] is True
    assert not await pg.pair.replica.is_in_recovery()
    assert not await pg.pair.primary.is_in_recovery()  # two primaries: what force accepts


async def test_repetition_is_a_no_op(pg: Pg) -> None:
    pg.pair.primary.stop("fast")
    assert_outcome(await pg.promote(), Outcome.DONE)
    again = await pg.promote()
    assert_outcome(again, Outcome.DONE)
    assert again.message == f"the replica of {DB!r} is already primary (not in recovery)"
    assert not await pg.pair.replica.is_in_recovery()


async def test_dry_run_checks_everything_and_promotes_nothing(pg: Pg) -> None:
    refused = await pg.promote(dry_run=True)
    assert_outcome(refused, Outcome.GIVE_UP)  # what the real run would say
    assert "split brain" in refused.message
    pg.pair.primary.stop("fast")
    result = await pg.promote(dry_run=True)
    assert_outcome(result, Outcome.DONE)
    assert result.message.startswith(f"dry run: would promote the replica of {DB!r} (")
    assert await pg.pair.replica.is_in_recovery()


async def test_a_read_only_primary_counts_as_fenced(pg: Pg) -> None:
    primary = pg.pair.primary
    await primary.fetchval("ALTER SYSTEM SET default_transaction_read_only = on")
    await primary.fetchval("SELECT pg_reload_conf()")
    result = await pg.promote()
    assert_outcome(result, Outcome.DONE)
    assert result.data["old_primary"] == "read_only"
    assert "cannot execute CREATE TABLE in a read-only transaction" in result.data["old_primary_detail"]


async def test_unknown_database_names_the_configured_ones(pg: Pg) -> None:
    result = await pg.actions().promote(PromoteInputs(database="billing"), pg.ctx())
    assert_outcome(result, Outcome.GIVE_UP)
    assert result.message == f"unknown database 'billing' (configured: {DB})"
    empty = await PostgresActions({}).promote(PromoteInputs(database="billing"), pg.ctx())
    assert empty.message == "unknown database 'billing' (configured: none: add a `databases:` section to the config)"


async def test_an_unreachable_replica_is_retried(pg: Pg) -> None:
    pg.pair.replica.stop("fast")
    result = await pg.promote()
    assert_outcome(result, Outcome.RETRY)
    assert result.message.startswith(f"the replica of {DB!r} is unreachable: ConnectionRefusedError")


async def test_a_hung_primary_cannot_use_up_the_step(pg: Pg) -> None:
    """A primary that accepts TCP and never answers: its check gets half of what is left, then counts as
    unreachable, and the promotion still fits in the step."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pg.pair.primary.stop("fast")
    try:
        started = time.monotonic()
        result = await pg.actions(primary=f"postgresql://postgres@127.0.0.1:{port}/postgres").promote(
            PromoteInputs(database=DB), pg.ctx(seconds=3)
        )
        elapsed = time.monotonic() - started
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert_outcome(result, Outcome.DONE)
    assert "old primary unreachable: TimeoutError" in result.data["old_primary_detail"]
    assert 1.0 < elapsed < 3.0
    assert not await pg.pair.replica.is_in_recovery()


async def test_no_time_left_is_retried_without_connecting(pg: Pg) -> None:
    result = await pg.actions().promote(PromoteInputs(database=DB), pg.ctx(seconds=0.05))
    assert_outcome(result, Outcome.RETRY)
    assert result.message == f"no time left in the step to reach the replica of {DB!r}"


async def test_a_password_from_config_is_never_in_results(pg: Pg) -> None:
    result = await pg.promote(password="s3cret-pw")  # trust auth: accepted and unused
    assert "s3cret-pw" not in f"{result.message} {result.data}"


# -- check_writable ------------------------------------------------------------------------------------------


async def test_check_writable_commits_on_the_promoted_replica(pg: Pg) -> None:
    actions = pg.actions()
    inputs = CheckWritableInputs(database=DB)
    standby = await actions.check_writable(inputs, pg.ctx())
    assert_outcome(standby, Outcome.RETRY)
    assert standby.message == f"the replica of {DB!r} is in recovery (a standby): it takes no writes"
    pg.pair.primary.stop("fast")
    await pg.promote()
    result = await actions.check_writable(inputs, pg.ctx())
    assert_outcome(result, Outcome.DONE)
    assert result.message.startswith(f"the replica of {DB!r} commits writes (")
    replica = pg.pair.replica
    assert await replica.fetchval("SELECT count(*) FROM pg_class WHERE relname = 'autoremedy_write_probe'") == 0


async def test_check_writable_on_the_primary_and_in_a_dry_run(pg: Pg) -> None:
    actions = pg.actions()
    primary = await actions.check_writable(CheckWritableInputs(database=DB, server="primary"), pg.ctx())
    assert_outcome(primary, Outcome.DONE)
    dry = await actions.check_writable(CheckWritableInputs(database=DB), pg.ctx(dry_run=True))
    assert_outcome(dry, Outcome.DONE)
    assert dry.message == (f"dry run: would commit a probe write on the replica of {DB!r}; now in recovery (a standby)")


async def test_check_writable_refused_by_a_read_only_server(pg: Pg) -> None:
    primary = pg.pair.primary
    await primary.fetchval("ALTER SYSTEM SET default_transaction_read_only = on")
    await primary.fetchval("SELECT pg_reload_conf()")
    result = await pg.actions().check_writable(CheckWritableInputs(database=DB, server="primary"), pg.ctx())
    assert_outcome(result, Outcome.GIVE_UP)
    assert result.message.startswith(f"the primary of {DB!r} refuses writes: cannot execute CREATE TABLE")
