"""Fixtures every level shares: the local fakes (Slack, PagerDuty, Opsgenie), real PostgreSQL and CrowdSec, the
recording receiver and gauge exporter, Prometheus + Alertmanager stacks and daemons run as processes. Each is
stopped at teardown, pass or fail; when the test failed, the services' log tails go to the teardown's captured
stderr. The helpers and fakes themselves live in tests/support/ (see its README.md).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.crowdsec import CrowdSecLapi, start_crowdsec
from tests.support.daemon import DaemonProcesses
from tests.support.opsgenie import FakeOpsgenie
from tests.support.pagerduty import FakePagerDuty
from tests.support.postgres import PostgresPair, PostgresServer, start_postgres, start_replica
from tests.support.prometheus import STARTUP_TIMEOUT_S, PromStack, PromStackFactory, start_stack
from tests.support.receiver import GaugeExporter, RecordingReceiver
from tests.support.slack import FakeSlack

_REPORT_KEY = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(_REPORT_KEY, {})[report.when] = report
    return report


def _test_failed(node: pytest.Item) -> bool:
    reports = node.stash.get(_REPORT_KEY, {})
    return any(r.failed for r in reports.values())


@pytest.fixture
async def receiver() -> AsyncIterator[RecordingReceiver]:
    async with RecordingReceiver() as server:
        yield server


@pytest.fixture
async def gauge_exporter() -> AsyncIterator[GaugeExporter]:
    async with GaugeExporter() as server:
        yield server


@pytest.fixture
async def prom_stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PromStackFactory]:
    stacks: list[PromStack] = []

    async def factory(
        *,
        webhook_url: str,
        rules_yaml: str,
        scrape_targets: Sequence[str] = (),
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        deadline_s: float = STARTUP_TIMEOUT_S,
    ) -> PromStack:
        # start_stack stops whatever it started if it fails, so only successful stacks need tracking.
        stack = await start_stack(
            tmp_path / f"stack{len(stacks)}",
            webhook_url=webhook_url,
            rules_yaml=rules_yaml,
            scrape_targets=scrape_targets,
            bearer_token=bearer_token,
            basic_auth=basic_auth,
            deadline_s=deadline_s,
        )
        stacks.append(stack)
        return stack

    try:
        yield factory
    finally:
        if isinstance(request.node, pytest.Item) and _test_failed(request.node):
            for stack in stacks:
                print(stack.log_tails(), file=sys.stderr)
        # ExitStack: every stack is stopped (last started first) even if stopping another one raises.
        with contextlib.ExitStack() as cleanup:
            for stack in stacks:
                cleanup.callback(stack.stop)


@pytest.fixture
def daemon_processes(request: pytest.FixtureRequest) -> Iterator[DaemonProcesses]:
    processes = DaemonProcesses()
    try:
        yield processes
    finally:
        processes.stop_all()
        if _test_failed(request.node):
            sys.stderr.write(processes.log_tails())


@pytest.fixture(name="fake_slack")
async def fake_slack_fixture() -> AsyncIterator[FakeSlack]:
    """A started ``FakeSlack`` with the default bot token (stopped at teardown)."""
    async with FakeSlack() as server:
        yield server


@pytest.fixture(name="fake_pagerduty")
async def fake_pagerduty_fixture() -> AsyncIterator[FakePagerDuty]:
    """A started ``FakePagerDuty`` with the default routing key (stopped at teardown)."""
    async with FakePagerDuty() as server:
        yield server


@pytest.fixture(name="fake_opsgenie")
async def fake_opsgenie_fixture() -> AsyncIterator[FakeOpsgenie]:
    """A started ``FakeOpsgenie`` with the default API key (stopped at teardown)."""
    async with FakeOpsgenie() as server:
        yield server


def _teardown(request: pytest.FixtureRequest, failed_before: int, servers: Sequence[PostgresServer]) -> None:
    """Stop every server (last started first); print their log tails if the test failed."""
    if request.session.testsfailed > failed_before:
        for server in servers:
            print(f"--- {server.name} ({server.root}) ---\n{server.log_tail()}", file=sys.stderr)
    with contextlib.ExitStack() as cleanup:
        for server in servers:
            cleanup.callback(server.stop, "immediate")


@pytest.fixture(name="postgres")
async def postgres_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PostgresServer]:
    """A started PostgreSQL 15 primary in ``tmp_path/pg``; stopped (immediate) at teardown."""
    failed_before = request.session.testsfailed
    server = await start_postgres(tmp_path)
    try:
        yield server
    finally:
        _teardown(request, failed_before, [server])


@pytest.fixture(name="postgres_pair")
async def postgres_pair_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PostgresPair]:
    """A primary (``tmp_path/pg``) and a replica streaming from it (``tmp_path/replica``)."""
    failed_before = request.session.testsfailed
    servers: list[PostgresServer] = []
    try:
        servers.append(await start_postgres(tmp_path))
        servers.append(await start_replica(servers[0], tmp_path))
        yield PostgresPair(servers[0], servers[1])
    finally:
        _teardown(request, failed_before, servers)


@pytest.fixture(name="crowdsec")
async def crowdsec_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CrowdSecLapi]:
    """``crowdsec``: a started LAPI in ``tmp_path/crowdsec`` with a watcher and a bouncer; stopped at teardown
    (its log tail printed if the test failed). Start-up takes ~0.25 s, so it is function-scoped."""
    failed_before = request.session.testsfailed
    lapi = await start_crowdsec(tmp_path / "crowdsec")
    try:
        yield lapi
    finally:
        if request.session.testsfailed > failed_before:
            print(f"--- crowdsec ({lapi.proc.log_path}) ---\n{lapi.log_tail()}", file=sys.stderr)
        lapi.stop()
