"""Fixtures of the integration tests: a daemon in this test's event loop, and one PostgreSQL server per session.

The helpers they use (and that test modules import) live in tests/support/inprocess.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.inprocess import RunningDaemon, StartDaemon, start_in_process, stop_in_process
from tests.support.postgres import PostgresServer, start_postgres


@pytest.fixture(scope="session")
def shared_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (initdb costs about a second); tests take a fresh database each."""
    server = asyncio.run(start_postgres(tmp_path_factory.mktemp("shared-postgres")))
    try:
        yield server
    finally:
        server.stop("immediate")


@pytest.fixture
async def start_daemon(tmp_path: Path) -> AsyncIterator[StartDaemon]:
    """Start in-process daemons (each in its own config dir under tmp_path); all are stopped at teardown."""
    started: list[RunningDaemon] = []

    async def start(
        *, rules: list[dict[str, Any]], playbooks: list[dict[str, Any]], extra: dict[str, Any] | None = None
    ) -> RunningDaemon:
        running = await start_in_process(
            tmp_path / f"daemon{len(started)}", rules=rules, playbooks=playbooks, extra=extra
        )
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            await stop_in_process(running)
