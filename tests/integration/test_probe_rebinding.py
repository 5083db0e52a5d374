"""Without credentials (a loopback listener) every caller has every scope. A web page can reach that port through
DNS rebinding, its own name resolving to 127.0.0.1: its requests carry that name as Host, and are refused."""

from __future__ import annotations

import pytest

from autoremedy.ingest.server import is_local_host
from tests.support.inprocess import DEMO_RULE, LOG_PLAYBOOK, StartDaemon

NO_CREDENTIALS = {"server": {"auth": {}}}


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/v1/pause"), ("POST", "/api/v1/alerts"), ("GET", "/api/v1/runs"), ("GET", "/ui/runs")],
)
async def test_a_rebound_name_is_refused_without_credentials(start_daemon: StartDaemon, method: str, path: str) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK], extra=NO_CREDENTIALS)
    port = d.url.rsplit(":", 1)[1]
    rebound = {"Host": f"rebind.attacker.example:{port}", "Origin": f"http://rebind.attacker.example:{port}"}
    headers = {**rebound, "Content-Type": "application/json"}
    async with d.http.request(method, f"{d.url}{path}", data=b"{}", headers=headers, allow_redirects=False) as r:
        assert r.status == 403, await r.text()
        assert "configure server.auth" in await r.text()
    assert await d.daemon.store.pauses() == []


async def test_local_names_are_served_without_credentials(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK], extra=NO_CREDENTIALS)
    port = d.url.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1"):
        async with d.http.post(f"{d.url}/api/v1/pause", json={}, headers={"Host": host}) as response:
            assert response.status == 200, (host, await response.text())
    async with d.http.get(f"{d.url}/healthz", headers={"Host": "rebind.attacker.example"}) as response:
        assert response.status == 200  # probes are not steered


async def test_with_credentials_the_host_is_not_checked(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK])
    async with d.http.get(f"{d.url}/api/v1/runs", headers={**d.headers, "Host": "autoremedy.svc"}) as response:
        assert response.status == 200


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1:8080", True),
        ("localhost", True),
        ("[::1]:9", True),
        ("10.0.0.5", True),
        ("rebind.attacker.example:8080", False),
        ("localhost.attacker.example", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
        ("[::1", False),
    ],
)
def test_is_local_host(host: str, local: bool) -> None:
    assert is_local_host(host) is local
