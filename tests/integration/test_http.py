"""Every status code the webhook and the runs API answer, through a real daemon on loopback."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from autoremedy.config.settings import load_settings
from autoremedy.control.service import ControlService
from autoremedy.ingest.common import Services
from autoremedy.ingest.server import build_app
from autoremedy.observability import Metrics
from autoremedy.store.groupcommit import GroupCommitter
from autoremedy.store.sqlite import SQLiteStore
from tests.support.inprocess import (
    DEMO_RULE,
    JSON_BODY,
    LOG_PLAYBOOK,
    TOKEN,
    StartDaemon,
    fixture_payload,
    write_config,
)
from tests.support.procs import wait_for

FIRING = fixture_payload("firing.json")
RESOLVED = fixture_payload("resolved.json")


async def test_firing_and_resolved_are_stored_and_each_leads_to_one_run(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK])
    for _ in range(3):  # HA peers and retries deliver the same alert again
        response = await d.post_alerts(FIRING)
        assert response.status == 200
    # One active run per target: the resolved run comes after the firing one has finished, as in real life.
    await wait_for(lambda: _runs_when(d, 1), timeout=10, message="the firing run finished")
    assert (await d.post_alerts(RESOLVED)).status == 200
    runs = await wait_for(lambda: _runs_when(d, 2), timeout=10, message="two runs expected")
    assert sorted(r["alert_status"] for r in runs) == ["firing", "resolved"]
    assert {r["status"] for r in runs} == {"succeeded"}
    assert {r["target"] for r in runs} == {"app/default/web"}
    metrics = await _metrics(d)
    assert 'autoremedy_alerts_received_total{status="firing"} 3.0' in metrics
    assert 'autoremedy_alerts_received_total{status="resolved"} 1.0' in metrics
    assert "autoremedy_alert_duplicates_total 2.0" in metrics
    assert 'autoremedy_runs_total{status="succeeded"} 2.0' in metrics


async def _runs_when(d: Any, count: int) -> list[dict[str, Any]] | None:
    runs: list[dict[str, Any]] = await d.runs()
    done = [r for r in runs if r["finished_at"]]
    return runs if len(done) >= count else None


async def _metrics(d: Any) -> str:
    async with d.http.get(f"{d.url}/metrics") as response:
        assert response.status == 200
        return str(await response.text())


async def test_duplicate_response_says_so(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK])
    async with d.http.post(f"{d.url}/api/v1/alerts", json=FIRING, headers=d.headers) as first:
        assert await first.json() == {"stored": 1, "duplicates": 0}
    async with d.http.post(f"{d.url}/api/v1/alerts", json=FIRING, headers=d.headers) as second:
        assert await second.json() == {"stored": 0, "duplicates": 1}


async def test_unknown_fields_from_newer_alertmanager_are_accepted(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK])
    body = copy.deepcopy(FIRING)
    body["notification_reason"] = "new_alerts"
    body["alerts"][0]["someFutureField"] = {"x": 1}
    assert (await d.post_alerts(body)).status == 200


def _without(path: list[Any]) -> dict[str, Any]:
    body = copy.deepcopy(FIRING)
    target = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return body


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(FIRING)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(b"{not json", "(body)", id="malformed-json"),
        pytest.param(b"", "(body)", id="empty-body"),
        pytest.param(_without(["alerts", 0, "fingerprint"]), "alerts.0.fingerprint", id="missing-fingerprint"),
        pytest.param(_without(["alerts"]), "alerts", id="missing-alerts"),
        pytest.param(_with(["version"], "3"), "version", id="wrong-version"),
        pytest.param(_with(["alerts", 0, "status"], "burning"), "alerts.0.status", id="bad-status"),
        pytest.param(_with(["alerts", 0, "startsAt"], "yesterday"), "alerts.0.startsAt", id="bad-time"),
        pytest.param(_with(["alerts", 0, "labels"], {"a": 1}), "alerts.0.labels.a", id="non-string-label"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(start_daemon: StartDaemon, body: Any, field: str) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK])
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with d.http.post(f"{d.url}/api/v1/alerts", data=data, headers={**d.headers, **JSON_BODY}) as response:
        assert response.status == 400
        answer = await response.json()
    assert field in [f["field"] for f in answer["fields"]], answer
    assert await d.runs() == []


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("Bearer wrong", id="wrong-token"),
        pytest.param("Bearer", id="empty-bearer"),
        pytest.param("Token test-token", id="other-scheme"),
        pytest.param("Basic " + base64.b64encode(b"ops:wrong").decode(), id="basic-wrong-password"),
        pytest.param("Basic " + base64.b64encode(b"nobody:pw").decode(), id="basic-unknown-user"),
        pytest.param("Basic %%%", id="basic-garbage"),
    ],
)
async def test_bad_credentials_are_401(start_daemon: StartDaemon, authorization: str | None) -> None:
    d = await start_daemon(
        rules=[DEMO_RULE],
        playbooks=[LOG_PLAYBOOK],
        extra={"server": {"auth": {"bearer_tokens": ["test-token"], "basic_users": {"ops": "pw"}}}},
    )
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await d.post_alerts(FIRING, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    async with d.http.get(f"{d.url}/api/v1/runs", headers=headers) as runs:
        assert runs.status == 401


async def test_basic_auth_as_alertmanager_sends_it(start_daemon: StartDaemon) -> None:
    d = await start_daemon(
        rules=[DEMO_RULE],
        playbooks=[LOG_PLAYBOOK],
        extra={"server": {"auth": {"basic_users": {"alertmanager": "s3cret:with:colons"}}}},
    )
    token = base64.b64encode(b"alertmanager:s3cret:with:colons").decode()
    assert (await d.post_alerts(FIRING, headers={"Authorization": f"Basic {token}"})).status == 200


async def test_body_over_the_limit_is_413(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK], extra={"server": {"max_body_bytes": 2048}})
    big = copy.deepcopy(FIRING)
    big["alerts"][0]["annotations"]["description"] = "x" * 4096
    response = await d.post_alerts(big)
    assert response.status == 413
    assert (await d.post_alerts(FIRING)).status == 200


async def test_store_that_cannot_commit_answers_503_with_retry_after(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK], extra={"store": {"busy_timeout": "200ms"}})
    path = d.daemon.settings.sqlite_path
    assert path is not None
    blocker = sqlite3.connect(Path(path), isolation_level=None, check_same_thread=False)
    # Another process holding the database: our commit cannot happen. Taken from a thread, so the daemon's
    # loop goes on and finishes whatever transaction it has in flight.
    await asyncio.to_thread(blocker.execute, "BEGIN EXCLUSIVE")
    try:
        response = await d.post_alerts(FIRING)
        assert response.status == 503
        assert int(response.headers["Retry-After"]) > 0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert (await d.post_alerts(FIRING)).status == 200  # Alertmanager's retry succeeds, and the alert is stored
    runs = await wait_for(lambda: _runs_when(d, 1), timeout=10, message="the retried alert leads to a run")
    assert len(runs) == 1


async def test_runs_api(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK])
    await d.post_alerts(FIRING)
    (run,) = await wait_for(lambda: _runs_when(d, 1), timeout=10, message="one run")
    status, one = await d.get_json(f"/api/v1/runs/{run['id']}")
    assert status == 200
    assert one["steps"][0]["inputs"] == {"message": "DemoAppDown firing"}
    assert one["steps"][0]["outcome"] == "done" and one["steps"][0]["attempts"] == 1
    assert [a["kind"] for a in one["audit"]] == ["run_succeeded", "verdict_allowed"]
    assert one["guardrail"] == "allowed"
    assert [r["id"] for r in await d.runs(status="succeeded", limit="1")] == [run["id"]]
    assert await d.runs(status="failed") == []
    assert (await d.get_json("/api/v1/runs/nope"))[0] == 404
    assert (await d.get_json("/api/v1/runs?status=bogus"))[0] == 400
    assert (await d.get_json("/api/v1/runs?limit=0"))[0] == 400
    assert (await d.get_json("/api/v1/runs?limit=x"))[0] == 400


async def test_health_and_readiness_need_no_credentials(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK])
    for path in ("/healthz", "/readyz"):
        async with d.http.get(f"{d.url}{path}") as response:
            assert response.status == 200, path


async def test_backpressure_answers_503_above_the_queue_limit(tmp_path: Path) -> None:
    """The webhook with no worker draining the queue: new alerts are refused once too many wait, and taken again
    when the backlog falls (the worker sets it from the store)."""
    settings = load_settings(
        write_config(tmp_path, rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK], extra={"engine": {"max_queue_depth": 5}})
    )
    store = SQLiteStore(tmp_path / "store.db")
    await store.open()
    metrics = Metrics()
    committer = GroupCommitter(lambda events: store.insert_events(events, now=datetime.now(UTC)))
    committer.on_commit = metrics.backlog.add
    committer.start()
    services = Services(
        settings=settings,
        store=store,
        committer=committer,
        metrics=metrics,
        is_ready=lambda: True,
        rule_names=lambda: {"demo"},
        wake=lambda: None,
        backlog=lambda: metrics.backlog.value,
        instance=store.owner,
        control=ControlService(
            store=store,
            approvers={},
            rule_names=lambda: {"demo"},
            wake=lambda: None,
            on_denied=lambda run: None,
            instance=store.owner,
        ),
    )
    runner = web.AppRunner(build_app(services))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/v1/alerts"
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            body = copy.deepcopy(FIRING)
            body["alerts"] = [{**FIRING["alerts"][0], "fingerprint": f"bp{i}"} for i in range(6)]
            async with http.post(url, json=body) as first:
                assert first.status == 200  # 0 waiting: accepted, now 6 wait
            async with http.post(url, json=FIRING) as refused:
                assert refused.status == 503 and "too many alerts" in (await refused.json())["error"]
                assert refused.headers["Retry-After"]
            metrics.backlog.set(0)  # the worker caught up
            async with http.post(url, json=FIRING) as accepted:
                assert accepted.status == 200
    finally:
        await runner.cleanup()
        await committer.stop()
        await store.close()
