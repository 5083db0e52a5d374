"""Reload on change, without a signal: a rules file replaced by rename (as editors save) and a ConfigMap-style
`..data` symlink swap (as the kubelet updates a volume) are acted on for the next alert; a broken change keeps the
running rules, sets autoremedy_config_last_reload_success to 0 and shows in `autoremedy status` with file:line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from autoremedy.cli import main
from tests.support.daemon import DaemonProcess, DaemonProcesses, write_daemon_config
from tests.support.inprocess import fixture_payload
from tests.support.procs import wait_for

FIRING = fixture_payload("firing.json")  # alertname DemoAppDown
PLAYBOOK = {
    "name": "note",
    "target": "alert/{{ alert.fingerprint }}",
    "steps": [{"action": "log", "with": {"message": "hi"}}],
}
WATCH = {"enabled": True, "poll_interval": "100ms", "settle": "200ms"}


def rules_text(name: str, alertname: str) -> str:
    return yaml.safe_dump({"rules": [{"name": name, "matchers": [f"alertname={alertname}"], "playbook": "note"}]})


def alert(fingerprint: str) -> dict[str, Any]:
    body = json.loads(json.dumps(FIRING))
    body["alerts"][0]["fingerprint"] = fingerprint
    body["alerts"][0]["startsAt"] = "2026-01-05T12:00:00Z"
    body["alerts"][0]["labels"]["attempt"] = fingerprint
    return body


async def metric(http: aiohttp.ClientSession, daemon: DaemonProcess, name: str) -> float | None:
    async with http.get(f"{daemon.url}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


async def reloads(http: aiohttp.ClientSession, daemon: DaemonProcess, result: str) -> float:
    return await metric(http, daemon, f'autoremedy_config_reloads_total{{result="{result}"}}') or 0.0


async def run_of(http: aiohttp.ClientSession, daemon: DaemonProcess, fingerprint: str) -> dict[str, Any] | None:
    return next((run for run in await daemon.runs(http) if run["fingerprint"] == fingerprint), None)


async def send(http: aiohttp.ClientSession, daemon: DaemonProcess, fingerprint: str) -> None:
    async with http.post(f"{daemon.url}/api/v1/alerts", json=alert(fingerprint), headers=daemon.headers) as response:
        assert response.status == 200, await response.text()


async def rule_acting_on(http: aiohttp.ClientSession, daemon: DaemonProcess, fingerprint: str) -> str:
    await send(http, daemon, fingerprint)
    run = await wait_for(lambda: run_of(http, daemon, fingerprint), timeout=15, message=f"a run for {fingerprint}")
    return str(run["rule"])


async def test_a_rule_file_replaced_by_rename_is_acted_on_without_a_signal(
    tmp_path: Path, daemon_processes: DaemonProcesses
) -> None:
    rule = {"name": "before", "matchers": ["alertname=DemoAppDown"], "playbook": "note"}
    config = write_daemon_config(tmp_path, rules=[rule], playbooks=[PLAYBOOK], rules_watch=WATCH)
    rules_file = tmp_path / "rules" / "rules.yaml"
    async with aiohttp.ClientSession() as http:
        daemon = await daemon_processes.start(config)
        assert await rule_acting_on(http, daemon, "a1") == "before"
        first_success = await metric(http, daemon, "autoremedy_config_last_reload_success_timestamp_seconds")
        assert await metric(http, daemon, "autoremedy_config_last_reload_success") == 1.0

        # As an editor saves: write a temporary file beside it, then rename it over the original.
        temporary = tmp_path / "rules" / ".rules.yaml.swp"
        temporary.write_text(rules_text("after", "DemoAppDown"))
        os.rename(temporary, rules_file)
        await wait_for(lambda: reloads(http, daemon, "succeeded"), timeout=15, message="the change is reloaded")
        assert await rule_acting_on(http, daemon, "a2") == "after"
        later = await metric(http, daemon, "autoremedy_config_last_reload_success_timestamp_seconds")
        assert first_success is not None and later is not None and later >= first_success

        # A broken change: refused, the running rules stay, the metric and the status say so with file:line.
        temporary.write_text("rules:\n  - name: broken\n    matchers: ['alertname=~\"(\"']\n    playbook: note\n")
        os.rename(temporary, rules_file)
        await wait_for(lambda: reloads(http, daemon, "failed"), timeout=15, message="the broken change is refused")
        assert await metric(http, daemon, "autoremedy_config_last_reload_success") == 0.0
        assert await rule_acting_on(http, daemon, "a3") == "after"
        async with http.get(f"{daemon.url}/api/v1/status", headers=daemon.headers) as response:
            status = (await response.json())["config"]
        assert status["last_reload_success"] is False
        [problem] = status["problems"]
        assert problem.startswith(f"{rules_file}:3: invalid matcher")
        assert f"{rules_file}:3: invalid matcher" in daemon.proc.log_tail(200)
        assert await reloads(http, daemon, "succeeded") == 1.0  # nothing else was reloaded meanwhile


async def test_a_configmap_symlink_swap_is_acted_on_without_a_signal(
    tmp_path: Path, daemon_processes: DaemonProcesses, capsys: Any
) -> None:
    config = write_daemon_config(tmp_path, rules=[], playbooks=[PLAYBOOK], rules_watch=WATCH)
    # The layout the kubelet gives a ConfigMap volume: files are symlinks through `..data` to a timestamped folder.
    rules = tmp_path / "rules"
    (rules / "rules.yaml").unlink()
    (rules / "..2026_01_05_12_00_00.1").mkdir()
    (rules / "..2026_01_05_12_00_00.1" / "rules.yaml").write_text(rules_text("v1", "DemoAppDown"))
    os.symlink("..2026_01_05_12_00_00.1", rules / "..data")
    os.symlink("..data/rules.yaml", rules / "rules.yaml")
    async with aiohttp.ClientSession() as http:
        daemon = await daemon_processes.start(config)
        assert await rule_acting_on(http, daemon, "b1") == "v1"

        (rules / "..2026_01_05_12_05_00.2").mkdir()
        (rules / "..2026_01_05_12_05_00.2" / "rules.yaml").write_text(rules_text("v2", "DemoAppDown"))
        os.symlink("..2026_01_05_12_05_00.2", rules / "..data_tmp")
        os.rename(rules / "..data_tmp", rules / "..data")  # the atomic swap
        await wait_for(lambda: reloads(http, daemon, "succeeded"), timeout=15, message="the swap is reloaded")
        assert await rule_acting_on(http, daemon, "b2") == "v2"

        # `autoremedy status` shows the last load.
        assert main(["status", "--config", str(config)]) == 0
        assert "rules loaded:" in capsys.readouterr().out
