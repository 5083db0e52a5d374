"""The daemon as a real process: kill -9 loses nothing acked, SIGTERM drains, SIGHUP reloads."""

from __future__ import annotations

import asyncio
import copy
import signal
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.daemon import DaemonProcess, DaemonProcesses, write_daemon_config
from tests.support.inprocess import fixture_payload
from tests.support.procs import wait_for
from tests.support.receiver import RecordingReceiver

FIRING = fixture_payload("firing.json")
RULE = {"name": "demo", "matchers": ["alertname=DemoAppDown"], "playbook": "slow"}


def slow_playbook(seconds: str) -> dict[str, Any]:
    return {
        "name": "slow",
        "target": "alert/{{ alert.fingerprint }}",
        "steps": [
            {"name": "settle", "action": "wait", "timeout": "1h", "with": {"duration": seconds}},
            {"name": "note", "action": "log", "with": {"message": "done {{ alert.fingerprint }}"}},
        ],
    }


def calling_playbook(url: str) -> dict[str, Any]:
    return {
        "name": "slow",
        "target": "alert/{{ alert.fingerprint }}",
        "steps": [
            {"name": "call", "action": "http.request", "with": {"url": url + "/hook/{{ alert.fingerprint }}"}},
            {"name": "note", "action": "log", "with": {"message": "done {{ alert.fingerprint }}"}},
        ],
    }


def alert_batch(first: int, count: int) -> dict[str, Any]:
    body = copy.deepcopy(FIRING)
    template = body["alerts"][0]
    body["alerts"] = []
    for index in range(first, first + count):
        alert = copy.deepcopy(template)
        alert["fingerprint"] = f"fp{index:04d}"
        alert["labels"]["instance"] = f"10.0.0.{index}:9100"
        body["alerts"].append(alert)
    return body


async def post(http: aiohttp.ClientSession, daemon: DaemonProcess, body: dict[str, Any]) -> int:
    async with http.post(f"{daemon.url}/api/v1/alerts", json=body, headers=daemon.headers) as response:
        return response.status


async def run_with_status(http: aiohttp.ClientSession, daemon: DaemonProcess, status: str) -> dict[str, Any] | None:
    return next((r for r in await daemon.runs(http) if r["status"] == status), None)


async def test_kill_9_loses_no_acked_event_and_resumes_the_cut_run(
    tmp_path: Path, daemon_processes: DaemonProcesses
) -> None:
    async with RecordingReceiver() as receiver, aiohttp.ClientSession() as http:
        config = write_daemon_config(
            tmp_path,
            rules=[RULE],
            playbooks=[calling_playbook(receiver.url)],
            engine={"concurrency": 1},
            guardrails={"breaker": {"max_runs": 1000}},  # 100 alerts at once would rightly open the default breaker
        )
        receiver.hold()  # the first run's call stays in flight until released: the kill certainly cuts a run
        daemon = await daemon_processes.start(config)
        statuses = await asyncio.gather(*(post(http, daemon, alert_batch(i * 5, 5)) for i in range(20)))
        assert statuses == [200] * 20  # 100 alerts acknowledged
        await receiver.wait_for_requests(1, deadline_s=15)
        daemon.proc.kill9()
        receiver.release()

        acked = {f"fp{i:04d}" for i in range(100)}
        stored = {row[0] for row in daemon.query_db("SELECT fingerprint FROM events")}
        assert stored == acked
        cut = daemon.query_db("SELECT id FROM runs WHERE status = 'running'")
        assert len(cut) == 1
        unfinished = daemon.query_db("SELECT count(*) FROM runs WHERE status = 'planned'")[0][0]
        pending = daemon.query_db("SELECT count(*) FROM events WHERE state != 'done'")[0][0]
        assert unfinished + pending > 0, "the kill should leave work behind, or this test proves nothing"

        restarted = await daemon_processes.start(config)

        async def all_final() -> list[dict[str, Any]] | None:
            runs = await restarted.runs(http)
            return runs if len(runs) == 100 and all(r["finished_at"] for r in runs) else None

        runs = await wait_for(all_final, timeout=60, message="every acked alert processed after restart")
        async with http.get(f"{restarted.url}/api/v1/runs/{cut[0][0]}", headers=restarted.headers) as response:
            resumed = await response.json()
    assert {r["fingerprint"] for r in runs} == acked  # one run per alert, none lost, none doubled
    assert {r["status"] for r in runs} == {"succeeded"}
    assert "run_taken_over" in [a["kind"] for a in resumed["audit"]]  # the cut run resumed where it stopped
    keys = {r.headers["Idempotency-Key"] for r in receiver.requests}
    assert len(keys) == 100  # the cut call was repeated after the restart, under the same key


async def test_sigterm_lets_a_running_run_finish(tmp_path: Path, daemon_processes: DaemonProcesses) -> None:
    config = write_daemon_config(
        tmp_path, rules=[RULE], playbooks=[slow_playbook("1s")], server={"shutdown_grace": "20s"}
    )
    async with aiohttp.ClientSession() as http:
        daemon = await daemon_processes.start(config)
        assert await post(http, daemon, FIRING) == 200
        await wait_for(lambda: run_with_status(http, daemon, "running"), timeout=15, message="a run in progress")
        assert daemon.proc.stop(timeout=30) == 0  # SIGTERM, then wait: exits cleanly after draining
    (status,) = daemon.query_db("SELECT status FROM runs")
    assert status == ("succeeded",)


async def test_sigterm_interrupts_a_run_longer_than_the_grace_period(
    tmp_path: Path, daemon_processes: DaemonProcesses
) -> None:
    config = write_daemon_config(
        tmp_path, rules=[RULE], playbooks=[slow_playbook("1h")], server={"shutdown_grace": "200ms"}
    )
    async with aiohttp.ClientSession() as http:
        daemon = await daemon_processes.start(config)
        assert await post(http, daemon, FIRING) == 200
        await wait_for(lambda: run_with_status(http, daemon, "running"), timeout=15, message="a run in progress")
        assert daemon.proc.stop(timeout=30) == 0
    ((status, reason),) = daemon.query_db("SELECT status, reason FROM runs")
    assert status == "interrupted"
    assert "grace period" in reason
    steps = daemon.query_db("SELECT outcome FROM run_steps ORDER BY idx")
    assert steps == [("interrupted",), ("not_run",)]


async def test_sighup_reloads_rules_and_keeps_them_when_invalid(
    tmp_path: Path, daemon_processes: DaemonProcesses
) -> None:
    config = write_daemon_config(
        tmp_path, rules=[{**RULE, "matchers": ["alertname=Other"]}], playbooks=[slow_playbook("10ms")]
    )
    rules_file = tmp_path / "rules" / "rules.yaml"
    async with aiohttp.ClientSession() as http:
        daemon = await daemon_processes.start(config)

        async def reloads(result: str, count: int) -> bool:
            async with http.get(f"{daemon.url}/metrics") as response:
                return f'autoremedy_config_reloads_total{{result="{result}"}} {count}.0' in await response.text()

        rules_file.write_text("rules: [{name: x, matchers: ['alertname=~\"(\"'], playbook: slow}]\n")
        daemon.proc.send_signal(signal.SIGHUP)
        await wait_for(lambda: reloads("failed", 1), timeout=10, message="the invalid reload is refused")
        assert daemon.proc.is_running()

        rules_file.write_text("rules: [{name: demo, matchers: ['alertname=DemoAppDown'], playbook: slow}]\n")
        daemon.proc.send_signal(signal.SIGHUP)
        await wait_for(lambda: reloads("succeeded", 1), timeout=10, message="the valid reload is taken")
        assert await post(http, daemon, FIRING) == 200
        run = await wait_for(lambda: run_with_status(http, daemon, "succeeded"), timeout=15, message="a run")
    assert run["rule"] == "demo"


async def test_a_cooldown_survives_kill_9(tmp_path: Path, daemon_processes: DaemonProcesses) -> None:
    rule = {**RULE, "cooldown": "1h", "playbook": "slow"}
    playbook = {**slow_playbook("10ms"), "target": "app/{{ alert.labels.namespace }}/{{ alert.labels.app }}"}
    config = write_daemon_config(tmp_path, rules=[rule], playbooks=[playbook])
    async with aiohttp.ClientSession() as http:
        daemon = await daemon_processes.start(config)
        assert await post(http, daemon, FIRING) == 200
        await wait_for(lambda: run_with_status(http, daemon, "succeeded"), timeout=15, message="the first run")
        daemon.proc.kill9()

        restarted = await daemon_processes.start(config)
        again = copy.deepcopy(FIRING)
        again["alerts"][0]["startsAt"] = "2026-11-26T23:00:00Z"  # the same alert fires again
        assert await post(http, restarted, again) == 200
        skipped = await wait_for(
            lambda: run_with_status(http, restarted, "skipped"),
            timeout=15,
            message="the second run is held back by the cooldown",
        )
    assert skipped["guardrail"] == "cooldown"
    assert skipped["target"] == "app/default/web"
