"""An in-process daemon on a free loopback port, with its own config, rules, playbooks and SQLite file."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from autoremedy.app import Daemon
from autoremedy.config.settings import load_settings
from tests.support.daemon import write_daemon_config
from tests.support.postgres import PostgresServer, start_postgres


# Copies of ../shared/fixtures/alertmanager-0.25 (bodies a real Alertmanager 0.25 sent), kept in the repo.
@pytest.fixture(scope="session")
def shared_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (initdb costs about a second); tests take a fresh database each."""
    server = asyncio.run(start_postgres(tmp_path_factory.mktemp("shared-postgres")))
    try:
        yield server
    finally:
        server.stop("immediate")


async def fresh_database(server: PostgresServer) -> str:
    return await server.create_database(f"t_{uuid.uuid4().hex[:12]}")


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


@pytest.fixture
async def start_daemon(tmp_path: Path) -> AsyncIterator[StartDaemon]:
    started: list[RunningDaemon] = []

    async def start(
        *, rules: list[dict[str, Any]], playbooks: list[dict[str, Any]], extra: dict[str, Any] | None = None
    ) -> RunningDaemon:
        root = tmp_path / f"daemon{len(started)}"
        config_path = write_config(root, rules=rules, playbooks=playbooks, extra=extra)
        settings = load_settings(config_path)
        daemon = Daemon(settings)
        await daemon.start()
        host, port = settings.server.host_port
        running = RunningDaemon(
            daemon, f"http://{host}:{port}", aiohttp.ClientSession(), {"Authorization": f"Bearer {TOKEN}"}, config_path
        )
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            await running.http.close()
            await running.daemon.stop()


LOG_PLAYBOOK = {
    "name": "note",
    "target": "app/{{ alert.labels.namespace }}/{{ alert.labels.app }}",
    "steps": [{"action": "log", "with": {"message": "{{ alert.labels.alertname }} {{ alert.status }}"}}],
}
DEMO_RULE = {"name": "demo", "matchers": ['alertname="DemoAppDown"'], "playbook": "note", "on": "both"}
