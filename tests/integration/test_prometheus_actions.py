"""prometheus.query and prometheus.verify against a real Prometheus scraping a gauge the test controls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
import pytest_asyncio

from autoremedy.actions.base import ActionContext, Outcome
from autoremedy.actions.prometheus import PrometheusActions, PrometheusReader, QueryInputs, VerifyInputs
from autoremedy.config.settings import PrometheusSettings
from autoremedy.observability import get_logger
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess, wait_for
from tests.support.prometheus import prometheus_query, start_prometheus
from tests.support.receiver import GaugeExporter

# One Prometheus for the module (it takes ~5 s to discover its scrape target); each test sets the gauge it needs.
pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def exporter() -> AsyncIterator[GaugeExporter]:
    async with GaugeExporter() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def prometheus(
    tmp_path_factory: pytest.TempPathFactory, exporter: GaugeExporter
) -> AsyncIterator[ManagedProcess]:
    exporter.set("app_errors_ratio", 0.5, labels={"app": "web"})
    proc = await start_prometheus(
        tmp_path_factory.mktemp("prometheus"),
        scrape_targets=[exporter.host_port],
        alertmanager_url=None,
        rules_yaml="groups: []\n",
    )
    try:
        yield proc
    finally:
        proc.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def gauge(prometheus: ManagedProcess, exporter: GaugeExporter) -> GaugeExporter:
    """The gauge back at 0.5, and Prometheus seeing it, before each test."""
    exporter.set("app_errors_ratio", 0.5, labels={"app": "web"})
    await wait_for(lambda: _value_is(prometheus, "0.5"), timeout=15, message="Prometheus sees 0.5")
    return exporter


def actions(url: str) -> PrometheusActions:
    return PrometheusActions(PrometheusReader(PrometheusSettings(url=url, timeout=timedelta(seconds=2))))


async def ctx(seconds: float = 30, *, dry_run: bool = False) -> ActionContext:
    session = aiohttp.ClientSession()
    await session.close()  # the Prometheus actions do not use it
    return ActionContext(
        run_id="r",
        operation_id="r.0",
        target="t",
        dry_run=dry_run,
        http=session,
        deadline=asyncio.get_running_loop().time() + seconds,
        log=get_logger("test"),
    )


async def test_query_captures_the_value(prometheus: ManagedProcess, gauge: GaugeExporter) -> None:
    result = await actions(prometheus.base_url or "").query(
        QueryInputs(query='app_errors_ratio{app="web"}'), await ctx()
    )
    assert result.outcome is Outcome.DONE
    assert result.data["value"] == "0.5"
    assert result.data["series"][0]["labels"]["app"] == "web"


async def test_verify_true_at_once(prometheus: ManagedProcess, gauge: GaugeExporter) -> None:
    inputs = VerifyInputs(query="app_errors_ratio < 1", within="5s", interval="100ms")
    result = await actions(prometheus.base_url or "").verify(inputs, await ctx())
    assert result.outcome is Outcome.DONE
    assert (result.data["last_value"], result.data["checks"]) == ("0.5", 1)


async def test_verify_becomes_true_when_the_metric_recovers(prometheus: ManagedProcess, gauge: GaugeExporter) -> None:
    gauge.set("app_errors_ratio", 3, labels={"app": "web"})
    await wait_for(lambda: _value_is(prometheus, "3"), timeout=15, message="Prometheus sees the bad value")
    inputs = VerifyInputs(query="app_errors_ratio < 1", within="20s", interval="100ms")
    verifying = asyncio.create_task(actions(prometheus.base_url or "").verify(inputs, await ctx()))
    await wait_for(lambda: _value_is(prometheus, "3"), timeout=5, message="still bad while verifying")
    gauge.set("app_errors_ratio", 0.1, labels={"app": "web"})
    result = await asyncio.wait_for(verifying, timeout=30)
    assert result.outcome is Outcome.DONE and result.data["last_value"] == "0.1"
    assert result.data["checks"] > 1


async def _value_is(prometheus: ManagedProcess, value: str) -> bool:
    series = await prometheus_query(prometheus.base_url or "", "app_errors_ratio")
    return bool(series) and series[0]["value"][1] == value


async def test_verify_false_until_within_fails_with_the_reason(
    prometheus: ManagedProcess, gauge: GaugeExporter
) -> None:
    inputs = VerifyInputs(query="app_errors_ratio > 1", within="600ms", interval="100ms")
    result = await actions(prometheus.base_url or "").verify(inputs, await ctx())
    assert result.outcome is Outcome.GIVE_UP
    assert "returned no result within 600ms" in result.message and "last: empty result" in result.message
    assert result.data["checks"] >= 2


async def test_verify_makes_a_last_check_at_the_deadline(prometheus: ManagedProcess, gauge: GaugeExporter) -> None:
    # The condition turns true at 90% of `within`, between two regular checks (0s, 1s, 2s): only a check at the
    # deadline itself (3s) sees it. PromQL's time() is the query's evaluation time, so the flip needs no scrape.
    flips_at = time.time() + 2.7
    inputs = VerifyInputs(query=f"vector(time()) > {flips_at:.3f}", within="3s", interval="1s")
    result = await actions(prometheus.base_url or "").verify(inputs, await ctx())
    assert result.outcome is Outcome.DONE, result.message
    assert result.data["checks"] == 4


async def test_verify_stops_at_the_step_deadline(prometheus: ManagedProcess, gauge: GaugeExporter) -> None:
    inputs = VerifyInputs(query="app_errors_ratio > 1", within="1h", interval="100ms")
    result = await asyncio.wait_for(actions(prometheus.base_url or "").verify(inputs, await ctx(seconds=0.5)), 10)
    assert result.outcome is Outcome.GIVE_UP


async def test_unreachable_prometheus_is_reported() -> None:
    inputs = VerifyInputs(query="up", within="300ms", interval="100ms")
    result = await actions(f"http://127.0.0.1:{free_port()}").verify(inputs, await ctx())
    assert result.outcome is Outcome.GIVE_UP and "query failed" in result.message
    query = await actions(f"http://127.0.0.1:{free_port()}").query(QueryInputs(query="up"), await ctx())
    assert query.outcome is Outcome.RETRY


async def test_bad_promql_is_reported(prometheus: ManagedProcess) -> None:
    result = await actions(prometheus.base_url or "").query(QueryInputs(query="sum(("), await ctx())
    assert result.outcome is Outcome.RETRY and "PrometheusApiClientException" in result.message
