"""An in-process daemon on a free loopback port, with its own config, rules, playbooks and SQLite file, and the
payloads, token and small rules/playbooks the tests that drive it share. The `start_daemon` and `shared_postgres`
fixtures that use these helpers are in tests/integration/conftest.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from autoremedy.app import Daemon
from autoremedy.config.settings import load_settings
from tests.support.daemon import write_daemon_config
from tests.support.postgres import PostgresServer


async def fresh_database(server: PostgresServer) -> str:
    """A new, empty database on ``server`` (one per test, so tests sharing the server never see each other's rows)."""
    return await server.create_database(f"t_{uuid.uuid4().hex[:12]}")


# Copies of ../shared/fixtures/alertmanager-0.25 (bodies a real Alertmanager 0.25 sent), kept in the repo.
FIXTURES = Path(__file__).resolve().parents[2] / "examples"
TOKEN = "test-token"
TOKEN_NAME = "test"
FULL_AUTH: dict[str, Any] = {"tokens": [{"name": TOKEN_NAME, "token": TOKEN, "scopes": ["ingest", "read", "control"]}]}
"""The tests' credential: one token with every scope, recorded as `token:test`."""
JSON_BODY = {"Content-Type": "application/json"}  # what Alertmanager sends; anything else is refused (415)


def fixture_payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


@dataclass
class RunningDaemon:
    daemon: Daemon
    url: str
    http: aiohttp.ClientSession
    headers: dict[str, str]
    config_path: Path

    async def post_alerts(self, body: Any, *, headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {**JSON_BODY, **(headers if headers is not None else self.headers)}
        async with self.http.post(f"{self.url}/api/v1/alerts", data=data, headers=sent) as response:
            await response.read()
            return response

    async def get_json(self, path: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.url}{path}", headers=self.headers) as response:
            return response.status, await response.json()

    async def runs(self, **query: str) -> list[dict[str, Any]]:
        status, body = await self.get_json("/api/v1/runs?" + "&".join(f"{k}={v}" for k, v in query.items()))
        assert status == 200, body
        runs: list[dict[str, Any]] = body["runs"]
        return runs


def write_config(
    root: Path, *, rules: list[dict[str, Any]], playbooks: list[dict[str, Any]], extra: dict[str, Any] | None = None
) -> Path:
    """The process tests' config dir, with this module's token and its store file name."""
    overrides: dict[str, Any] = {"server": {"auth": FULL_AUTH}, "store": {"url": "sqlite:///store.db"}}
    for key, value in (extra or {}).items():
        overrides[key] = {**overrides[key], **value} if isinstance(value, dict) and key in overrides else value
    return write_daemon_config(root, rules=rules, playbooks=playbooks, **overrides)


StartDaemon = Callable[..., Awaitable[RunningDaemon]]


async def start_in_process(
    root: Path, *, rules: list[dict[str, Any]], playbooks: list[dict[str, Any]], extra: dict[str, Any] | None = None
) -> RunningDaemon:
    """Write a config under ``root`` and start a `Daemon` on this loop; the caller stops it (`stop_in_process`)."""
    config_path = write_config(root, rules=rules, playbooks=playbooks, extra=extra)
    settings = load_settings(config_path)
    daemon = Daemon(settings)
    await daemon.start()
    host, port = settings.server.host_port
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return RunningDaemon(daemon, f"http://{host}:{port}", aiohttp.ClientSession(), headers, config_path)


async def stop_in_process(running: RunningDaemon) -> None:
    await running.http.close()
    await running.daemon.stop()


LOG_PLAYBOOK = {
    "name": "note",
    "target": "app/{{ alert.labels.namespace }}/{{ alert.labels.app }}",
    "steps": [{"action": "log", "with": {"message": "{{ alert.labels.alertname }} {{ alert.status }}"}}],
}
DEMO_RULE = {"name": "demo", "matchers": ['alertname="DemoAppDown"'], "playbook": "note", "on": "both"}
