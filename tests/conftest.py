"""Pytest fixtures for end-to-end tests; loaded with ``pytest_plugins = ["tests.support.fixtures"]``.

- ``receiver``: a started ``RecordingReceiver`` (stopped at teardown).
- ``gauge_exporter``: a started ``GaugeExporter`` (stopped at teardown).
- ``prom_stack``: ``await prom_stack(webhook_url=..., rules_yaml=..., scrape_targets=[...])`` starts
  Alertmanager + Prometheus in the test's ``tmp_path`` and returns a ``PromStack``; every stack started is
  stopped at teardown, pass or fail. When the test failed, the services' log tails are printed to the
  teardown's captured stderr.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from .daemon import DaemonProcesses
from .prometheus import STARTUP_TIMEOUT_S, PromStack, start_stack
from .receiver import GaugeExporter, RecordingReceiver

_REPORT_KEY = pytest.StashKey[dict[str, pytest.TestReport]]()


class PromStackFactory(Protocol):
    async def __call__(
        self,
        *,
        webhook_url: str,
        rules_yaml: str,
        scrape_targets: Sequence[str] = (),
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        deadline_s: float = STARTUP_TIMEOUT_S,
    ) -> PromStack: ...


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
