"""A label cannot change a verify query's structure, against a real Prometheus: the attack from issue 12 ends
`failed` and escalates, the same playbook verifies a healthy app, and awkward but legitimate label values
(quotes, backslashes, regex metacharacters, newlines) are found exactly."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from autoremedy.decide.templating import render_text
from tests.support.inprocess import RunningDaemon, StartDaemon, fixture_payload
from tests.support.procs import ManagedProcess, wait_for
from tests.support.prometheus import prometheus_query, start_prometheus
from tests.support.receiver import GaugeExporter
from tests.support.slack import SLACK_BOT_TOKEN, FakeSlack

pytestmark = pytest.mark.e2e

ATTACK = 'x"} > 1e12 or vector(1) #'
AWKWARD = ["o'brien", 'we"b', "back\\slash", "a.b*c+(d)|[e]{f}^$?", "two\nlines", "tab\there", "ünïcode ✓", "back`tick"]


@pytest.fixture
async def exporter() -> AsyncIterator[GaugeExporter]:
    async with GaugeExporter() as server:
        server.set("app_healthy", 1, labels={"app": "web"})
        server.set("app_healthy", 0, labels={"app": "broken"})
        for value in AWKWARD:
            server.set("app_healthy", 1, labels={"app": value})
        yield server


@pytest.fixture
async def prometheus(tmp_path: Path, exporter: GaugeExporter) -> AsyncIterator[ManagedProcess]:
    proc = await start_prometheus(
        tmp_path / "prometheus", scrape_targets=[exporter.host_port], alertmanager_url=None, rules_yaml="groups: []\n"
    )
    try:
        await wait_for(
            lambda: _series_count(proc, 2 + len(AWKWARD)), timeout=15, message="Prometheus sees every series"
        )
        yield proc
    finally:
        proc.stop()


async def _series_count(proc: ManagedProcess, count: int) -> bool:
    return len(await prometheus_query(proc.base_url or "", "app_healthy")) >= count


def _query(template: str, app: str) -> str:
    return render_text(template, {"alert": {"labels": {"app": app}}}, where="query", escape="promql")


async def _answer(proc: ManagedProcess, query: str) -> list[str] | str:
    """The `app` of each series a query returns, or "error" when Prometheus refuses the query."""
    try:
        series = await prometheus_query(proc.base_url or "", query)
    except RuntimeError:
        return "error"
    return [item["metric"]["app"] for item in series]


@pytest.mark.parametrize(
    ("template", "refused"),
    [
        pytest.param('app_healthy{app="{{ alert.labels.app }}"} == 1', (), id="double-quoted"),
        # In '...' Go accepts no \" escape: a value with a double quote fails the query (closed, not open).
        pytest.param("app_healthy{app='{{ alert.labels.app }}'} == 1", ('we"b',), id="single-quoted"),
        pytest.param("app_healthy{app={{ alert.labels.app | promql_str }}} == 1", (), id="promql_str"),
        pytest.param("app_healthy{app=~{{ alert.labels.app | promql_re }}} == 1", (), id="promql_re"),
    ],
)
async def test_awkward_values_are_matched_exactly(
    prometheus: ManagedProcess, template: str, refused: tuple[str, ...]
) -> None:
    for value in AWKWARD:
        expected = "error" if value in refused else [value]
        assert await _answer(prometheus, _query(template, value)) == expected, _query(template, value)
    for attack in (ATTACK, "x'} > 1e12 or vector(1) #", "x\\", ".*"):
        query = _query(template, attack)
        assert await _answer(prometheus, query) in ([], "error"), query


def _firing(app: str) -> dict[str, Any]:
    body = copy.deepcopy(fixture_payload("firing.json"))
    alert = body["alerts"][0]
    alert["labels"]["app"] = app
    alert["fingerprint"] = hashlib.sha256(app.encode()).hexdigest()[:16]
    return body


VERIFY = {
    "name": "check",
    "target": "app/{{ alert.labels.namespace }}",
    "steps": [
        {
            "name": "verify",
            "action": "prometheus.verify",
            "with": {"query": 'app_healthy{app="{{ alert.labels.app }}"} == 1', "within": "1s", "interval": "200ms"},
        }
    ],
}
RULE = {"name": "verify-app", "matchers": ['alertname="DemoAppDown"'], "playbook": "check", "on": "firing"}


async def _run_for(d: RunningDaemon, app: str) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        for run in await d.runs():
            status, full = await d.get_json(f"/api/v1/runs/{run['id']}")
            assert status == 200
            if full["finished_at"] and full["fingerprint"] == hashlib.sha256(app.encode()).hexdigest()[:16]:
                return dict(full)
        return None

    found: dict[str, Any] = await wait_for(finished, timeout=20, message=f"the run for app {app!r}")
    return found


async def test_the_attack_fails_and_escalates_and_a_healthy_app_verifies(
    start_daemon: StartDaemon, prometheus: ManagedProcess, fake_slack: FakeSlack
) -> None:
    extra = {
        "engine": {"poll_interval": "50ms"},
        "prometheus": {"url": prometheus.base_url},
        "notify": {"slack": {"token": SLACK_BOT_TOKEN, "channel": "C0ONCALL", "base_url": fake_slack.api_url}},
        "escalation": {"default": ["slack"], "retry_initial": "50ms"},
    }
    d = await start_daemon(rules=[RULE], playbooks=[VERIFY], extra=extra)
    assert (await d.post_alerts(_firing("web"))).status == 200
    healthy = await _run_for(d, "web")
    assert healthy["status"] == "succeeded", healthy["reason"]

    assert (await d.post_alerts(_firing(ATTACK))).status == 200
    attacked = await _run_for(d, ATTACK)
    assert attacked["status"] == "failed"
    assert "returned no result" in attacked["reason"]
    assert attacked["steps"][0]["inputs"]["query"] == 'app_healthy{app="x\\"} > 1e12 or vector(1) #"} == 1'
    messages = await fake_slack.wait_for_requests(1, path="/api/chat.postMessage")
    assert "did not fix it" in json.dumps([m.json for m in messages])
    assert len(fake_slack.top_level()) == 1  # the healthy run escalated nothing
