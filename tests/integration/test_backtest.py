"""`autoremedy backtest`: a daemon ingests a known history through its webhook (SQLite and PostgreSQL); a candidate
rules folder that gives the existing rule a cooldown and adds a rule with one is replayed over it, read-only, while
the daemon still runs and again once it has stopped, and reports exactly the expected counts and changes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from autoremedy.cli import main
from tests.support.daemon import DaemonProcess, DaemonProcesses, write_daemon_config
from tests.support.inprocess import fixture_payload, fresh_database
from tests.support.postgres import PostgresServer
from tests.support.procs import wait_for

PLAYBOOK = {
    "name": "note",
    "target": "{{ alert.labels.alertname }}/{{ alert.labels.instance }}",
    "steps": [{"action": "log", "with": {"message": "{{ alert.labels.instance }}"}}],
}
DISK = {"name": "disk-full", "matchers": ["alertname=DiskFull"], "playbook": "note"}
CPU = {"name": "cpu-high", "matchers": ["alertname=CPUHigh"], "playbook": "note", "cooldown": "1h"}
# (alertname, instance): each its own alert (startsAt differs), sent one after the other
HISTORY = [
    ("DiskFull", "a"),
    ("CPUHigh", "a"),
    ("DiskFull", "a"),
    ("DiskFull", "b"),
    ("CPUHigh", "a"),
    ("DiskFull", "a"),
]
EXPECTED_RULES = {
    "disk-full": {"matched": 4, "runs": 2, "blocked": {"cooldown": 2}, "failed": 0},
    "cpu-high": {"matched": 2, "runs": 1, "blocked": {"cooldown": 1}, "failed": 0},
}


def webhook(index: int, alertname: str, instance: str) -> dict[str, Any]:
    body = json.loads(json.dumps(fixture_payload("firing.json")))
    alert = body["alerts"][0]
    alert["labels"] = {"alertname": alertname, "instance": instance}
    alert["fingerprint"] = f"{alertname}{instance}"  # letters and digits, as Alertmanager's (issue 12)
    alert["startsAt"] = f"2026-01-05T12:{index:02d}:00Z"
    return body


async def ingest(http: aiohttp.ClientSession, daemon: DaemonProcess) -> None:
    """One alert at a time, each decided and its run finished before the next: a known history."""

    async def settled() -> bool:
        async with http.get(f"{daemon.url}/api/v1/status", headers=daemon.headers) as response:
            status = await response.json()
        return status["queue_depth"] == 0 and not status["runs"]

    for index, (alertname, instance) in enumerate(HISTORY):
        body = webhook(index, alertname, instance)
        async with http.post(f"{daemon.url}/api/v1/alerts", json=body, headers=daemon.headers) as response:
            assert response.status == 200, await response.text()
        await wait_for(settled, timeout=30, message=f"alert {index} decided and its run finished")
    assert [run["status"] for run in await daemon.runs(http)] == ["succeeded"] * 4


async def backtest(config: Path, candidate: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    argv = ["backtest", "--config", str(config), "--since", "1h", "--rules-dir", str(candidate), "--output", "json"]
    code = await asyncio.to_thread(main, argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


def check(report: dict[str, Any]) -> None:
    assert report["events"] == 6
    assert report["rules"] == EXPECTED_RULES
    assert report["recorded_runs"] == 4
    assert report["summary"] == {"appear": 1, "disappear": 2, "change": 0}
    changes = [(c["change"], c["rule"], c["alertname"], c["backtest"], c["recorded"]) for c in report["changes"]]
    cooldown = {"playbook": "note", "target": "DiskFull/a", "verdict": "cooldown"}
    recorded = {"playbook": "note", "target": "DiskFull/a", "status": "succeeded", "guardrail": "allowed"}
    assert [(kind, rule, name) for kind, rule, name, _, _ in changes] == [
        ("appear", "cpu-high", "CPUHigh"),
        ("disappear", "disk-full", "DiskFull"),
        ("disappear", "disk-full", "DiskFull"),
    ]
    appear = changes[0]
    assert appear[3] is not None and appear[3]["target"] == "CPUHigh/a" and appear[3]["verdict"] == "allowed"
    assert appear[4] is None
    for _, _, _, new, old in changes[1:]:
        assert new is not None and {k: new[k] for k in cooldown} == cooldown and "cooldown of 1h" in new["detail"]
        assert old == recorded


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_backtest_over_ingested_history_while_running_and_after_stopping(
    backend: str,
    tmp_path: Path,
    daemon_processes: DaemonProcesses,
    shared_postgres: PostgresServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = {"url": await fresh_database(shared_postgres)} if backend == "postgres" else {}
    config = write_daemon_config(tmp_path / "daemon", rules=[DISK], playbooks=[PLAYBOOK], store=store)
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    (candidate / "rules.yaml").write_text(yaml.safe_dump({"rules": [{**DISK, "cooldown": "1h"}, CPU]}))
    async with aiohttp.ClientSession() as http:
        daemon = await daemon_processes.start(config)
        await ingest(http, daemon)
        check(await backtest(config, candidate, capsys))  # while the daemon runs
        daemon.proc.stop()
    check(await backtest(config, candidate, capsys))
    # The configured rules replayed over their own history change nothing.
    same = await backtest(config, config.parent / "rules", capsys)
    assert same["summary"] == {"appear": 0, "disappear": 0, "change": 0}
    assert same["rules"] == {"disk-full": {"matched": 4, "runs": 4, "blocked": {}, "failed": 0}}


async def test_the_text_report(
    tmp_path: Path, daemon_processes: DaemonProcesses, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_daemon_config(tmp_path / "daemon", rules=[DISK], playbooks=[PLAYBOOK])
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    (candidate / "rules.yaml").write_text(yaml.safe_dump({"rules": [{**DISK, "cooldown": "1h"}, CPU]}))
    async with aiohttp.ClientSession() as http:
        daemon = await daemon_processes.start(config)
        await ingest(http, daemon)
    argv = ["backtest", "--since", "1h", "--rules-dir", str(candidate), "--config", str(config)]
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert "backtest: 6 events from" in out
    assert "disk-full        4     2       0  cooldown 2" in out
    assert "cpu-high         2     1       0  cooldown 1" in out
    assert "changes: 1 appear, 2 disappear, 0 change" in out
    assert "CPUHigh (firing) cpu-high: would start note on CPUHigh/a; not recorded" in out
    assert "DiskFull (firing) disk-full: would not start note on DiskFull/a (cooldown: cooldown of 1h" in out


async def test_a_missing_store_is_an_error_not_a_new_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_daemon_config(tmp_path, rules=[DISK], playbooks=[PLAYBOOK])
    assert await asyncio.to_thread(main, ["backtest", "--since", "1d", "--config", str(config)]) == 1
    assert "no such database" in capsys.readouterr().err
    assert not (tmp_path / "var" / "autoremedy.db").exists()
