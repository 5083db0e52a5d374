"""Several autoremedy processes on one PostgreSQL: each remediation happens once, a dead replica's run is taken
over and resumed, and a stopped database gives 503s and nothing lost."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.daemon import DaemonProcess, DaemonProcesses, write_daemon_config
from tests.support.inprocess import fixture_payload
from tests.support.postgres import PostgresServer
from tests.support.procs import wait_for
from tests.support.receiver import RecordingReceiver

FIRING = fixture_payload("firing.json")
RULE = {"name": "demo", "matchers": ["alertname=DemoAppDown"], "playbook": "act"}
FAST = {"poll_interval": "200ms", "heartbeat_interval": "200ms", "takeover_after": "1500ms"}


def alerts(count: int) -> list[dict[str, Any]]:
    template = FIRING["alerts"][0]
    found = []
    for index in range(count):
        alert = copy.deepcopy(template)
        alert["fingerprint"] = f"ha{index:04d}"
        alert["labels"]["app"] = f"app{index}"
        found.append(alert)
    return found


def act(receiver: RecordingReceiver, *extra_steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "act",
        "target": "app/{{ alert.labels.namespace }}/{{ alert.labels.app }}",
        "steps": [
            {
                "name": "first",
                "action": "http.request",
                "with": {"url": f"{receiver.url}/first", "json": {"fingerprint": "{{ alert.fingerprint }}"}},
            },
            *extra_steps,
        ],
    }


async def replicas(
    tmp_path: Path, processes: DaemonProcesses, dsn: str, playbook: dict[str, Any], count: int
) -> list[DaemonProcess]:
    started = []
    for index in range(count):
        config = write_daemon_config(
            tmp_path / f"replica{index}",
            rules=[RULE],
            playbooks=[playbook],
            store={"url": dsn},
            engine=FAST,
            guardrails={"breaker": {"max_runs": 1000}},
        )
        started.append(await processes.start(config))
    return started


async def post(http: aiohttp.ClientSession, daemon: DaemonProcess, body: dict[str, Any]) -> int:
    async with http.post(f"{daemon.url}/api/v1/alerts", json=body, headers=daemon.headers) as response:
        return response.status


async def test_three_replicas_receiving_the_same_webhooks_act_once_per_alert(
    tmp_path: Path, shared_postgres: PostgresServer, daemon_processes: DaemonProcesses, receiver: RecordingReceiver
) -> None:
    dsn = await shared_postgres.create_database("three_replicas")
    nodes = await replicas(tmp_path, daemon_processes, dsn, act(receiver), 3)
    batches = [alerts(40)[start : start + 8] for start in range(0, 40, 8)]
    async with aiohttp.ClientSession() as http:
        for batch in batches:  # three Alertmanager peers deliver every notification, at the same time
            body = {**FIRING, "alerts": batch}
            assert await asyncio.gather(*(post(http, node, body) for node in nodes)) == [200, 200, 200]

        async def all_done() -> list[dict[str, Any]] | None:
            runs = await nodes[0].runs(http)
            return runs if len(runs) >= 40 and all(r["status"] == "succeeded" for r in runs) else None

        runs = await wait_for(all_done, timeout=60, message="40 runs succeeded")
    acted_on = [r.json["fingerprint"] for r in receiver.requests_to("/first")]
    assert sorted(acted_on) == sorted(f"ha{i:04d}" for i in range(40))  # each alert exactly once
    assert len(runs) == 40
    counted = await shared_postgres.fetchval(
        "SELECT array_agg(DISTINCT deliveries) FROM events", dbname="three_replicas"
    )
    assert counted == [3]  # every peer's delivery was acknowledged and counted, none stored twice


async def test_a_killed_replicas_run_is_taken_over_and_resumed(
    tmp_path: Path, shared_postgres: PostgresServer, daemon_processes: DaemonProcesses, receiver: RecordingReceiver
) -> None:
    dsn = await shared_postgres.create_database("takeover")
    playbook = act(
        receiver,
        {"name": "settle", "action": "wait", "timeout": "1m", "with": {"duration": "3s"}},
        {"name": "last", "action": "http.request", "with": {"url": f"{receiver.url}/last"}},
    )
    nodes = await replicas(tmp_path, daemon_processes, dsn, playbook, 2)
    async with aiohttp.ClientSession() as http:
        assert await post(http, nodes[0], {**FIRING, "alerts": alerts(1)}) == 200
        await receiver.wait_for_requests(1, path="/first", deadline_s=15)
        (run,) = await wait_for(lambda: nodes[0].runs(http), timeout=10, message="the run is listed")
        owner = await _owner(http, nodes, run["id"], shared_postgres, dsn)
        victim = next(node for node in nodes if node.url == owner)
        survivor = next(node for node in nodes if node.url != owner)
        victim.proc.kill9()

        async def finished() -> dict[str, Any] | None:
            async with http.get(f"{survivor.url}/api/v1/runs/{run['id']}", headers=survivor.headers) as response:
                body = await response.json()
            return body if body["status"] == "succeeded" else None

        done = await wait_for(finished, timeout=30, message="the survivor finishes the run")
    assert len(receiver.requests_to("/first")) == 1  # resumed after the last recorded step: not run again
    assert len(receiver.requests_to("/last")) == 1
    assert "run_taken_over" in [a["kind"] for a in done["audit"]]


async def _owner(
    http: aiohttp.ClientSession, nodes: list[DaemonProcess], run_id: str, server: PostgresServer, dsn: str
) -> str:
    owner = await server.fetchval("SELECT owner FROM runs WHERE id = $1", run_id, dbname=dsn.rsplit("/", 1)[1])
    for node in nodes:
        async with http.get(f"{node.url}/api/v1/status", headers=node.headers) as response:
            if (await response.json())["instance"] == owner:
                return node.url
    raise AssertionError(f"no replica is {owner}")


async def test_a_stopped_database_gives_503_and_work_resumes_when_it_is_back(
    tmp_path: Path, postgres: PostgresServer, daemon_processes: DaemonProcesses, receiver: RecordingReceiver
) -> None:
    dsn = await postgres.create_database("outage")
    (node,) = await replicas(tmp_path, daemon_processes, dsn, act(receiver), 1)
    async with aiohttp.ClientSession() as http:
        postgres.stop("fast")
        async with http.post(
            f"{node.url}/api/v1/alerts", json={**FIRING, "alerts": alerts(1)}, headers=node.headers
        ) as response:
            assert response.status == 503
            assert int(response.headers["Retry-After"]) > 0
        async with http.get(f"{node.url}/readyz") as ready:
            assert ready.status == 503
        assert node.proc.is_running()

        await postgres.start()
        await wait_for(lambda: _ready(http, node), timeout=30, message="ready again once the database is back")
        assert await post(http, node, {**FIRING, "alerts": alerts(1)}) == 200  # Alertmanager's retry
        await receiver.wait_for_requests(1, path="/first", deadline_s=30)


async def _ready(http: aiohttp.ClientSession, node: DaemonProcess) -> bool:
    async with http.get(f"{node.url}/readyz") as response:
        return response.status == 200
