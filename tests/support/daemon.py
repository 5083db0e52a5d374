"""autoremedy as a real process, for crash, signal and end-to-end tests."""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.support.ports import free_port
from tests.support.procs import ManagedProcess

TOKEN = "process-token"


def write_daemon_config(
    root: Path, *, rules: list[dict[str, Any]], playbooks: list[dict[str, Any]], **overrides: Any
) -> Path:
    """A config dir under root: autoremedy.yaml, rules/, playbooks/, SQLite in var/."""
    (root / "rules").mkdir(parents=True, exist_ok=True)
    (root / "playbooks").mkdir(parents=True, exist_ok=True)
    (root / "rules" / "rules.yaml").write_text(yaml.safe_dump({"rules": rules}, sort_keys=False))
    for playbook in playbooks:
        (root / "playbooks" / f"{playbook['name']}.yaml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    config: dict[str, Any] = {
        "server": {"listen": f"127.0.0.1:{free_port()}", "auth": {"bearer_tokens": [TOKEN]}},
        "store": {"url": "sqlite:///var/autoremedy.db"},
        "engine": {"poll_interval": "100ms"},
        "logging": {"level": "debug"},
        # Tests that edit rule files reload them when they say so; the watcher is tested on its own.
        "rules_watch": {"enabled": False},
    }
    for section, values in overrides.items():
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    path = root / "autoremedy.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class DaemonProcess:
    config_path: Path
    proc: ManagedProcess
    url: str

    @property
    def headers(self) -> dict[str, str]:
        # As Alertmanager sends them: the webhook refuses a body that is not application/json (415).
        return {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    @property
    def db_path(self) -> Path:
        return self.config_path.parent / "var" / "autoremedy.db"

    async def runs(self, http: aiohttp.ClientSession, limit: int = 1000) -> list[dict[str, Any]]:
        async with http.get(f"{self.url}/api/v1/runs?limit={limit}", headers=self.headers) as response:
            assert response.status == 200, await response.text()
            runs: list[dict[str, Any]] = (await response.json())["runs"]
            return runs

    def query_db(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the store directly (read-only), e.g. after the process is gone."""
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()


async def start_daemon_process(config_path: Path, *, deadline_s: float = 30.0) -> DaemonProcess:
    config = yaml.safe_load(config_path.read_text())  # noqa: ASYNC240 - a small file, read once
    url = f"http://{config['server']['listen']}"
    proc = ManagedProcess(
        [sys.executable, "-m", "autoremedy", "--config", str(config_path), "serve"],
        log_dir=config_path.parent / "logs",
        name="autoremedy",
        base_url=url,
    ).start()
    try:
        await proc.wait_http_ok(f"{url}/readyz", deadline_s=deadline_s)
    except BaseException:
        proc.stop()
        raise
    return DaemonProcess(config_path, proc, url)


class DaemonProcesses:
    """Starts autoremedy processes and stops every one at teardown, even when the test failed."""

    def __init__(self) -> None:
        self.started: list[DaemonProcess] = []

    async def start(self, config_path: Path) -> DaemonProcess:
        daemon = await start_daemon_process(config_path)
        self.started.append(daemon)
        return daemon

    def stop_all(self) -> None:
        for daemon in self.started:
            daemon.proc.stop()

    def log_tails(self) -> str:
        return "\n".join(f"--- {d.proc.log_path} ---\n{d.proc.log_tail(60)}" for d in self.started)
