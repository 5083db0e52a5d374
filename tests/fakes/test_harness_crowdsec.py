"""Self-test of tests.support.crowdsec: a real CrowdSec Local API, driven over HTTP as autoremedy would."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.crowdsec import (
    USER_AGENT,
    CrowdSecLapi,
    ban_alert,
)
from tests.support.procs import wait_for

IP = "203.0.113.7"


async def login(http: aiohttp.ClientSession, lapi: CrowdSecLapi) -> tuple[int, Any]:
    async with http.post(
        f"{lapi.url}/v1/watchers/login", json={"machine_id": lapi.machine_id, "password": lapi.password}
    ) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_watcher_bans_an_ip_the_bouncer_sees_and_unbans_it(crowdsec: CrowdSecLapi) -> None:
    assert await crowdsec.decisions(IP) == [], "the LAPI answers null when there is no decision"
    async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as http:
        status, body = await login(http, crowdsec)
        assert status == 200, body
        auth = {"Authorization": f"Bearer {body['token']}"}

        async with http.post(f"{crowdsec.url}/v1/alerts", json=[ban_alert(IP, duration="1h")], headers=auth) as resp:
            created = await resp.json(content_type=None)
            assert resp.status == 201, created
        assert len(created) == 1

        [decision] = await crowdsec.decisions(IP)
        assert (decision["type"], decision["scope"], decision["value"]) == ("ban", "Ip", IP)
        assert decision["origin"] == "autoremedy"
        assert decision["duration"].startswith(("59m", "1h")), decision["duration"]
        assert await crowdsec.decisions("203.0.113.8") == []

        [alert] = await crowdsec.cscli_decisions()  # -a: origin "autoremedy" is hidden without it
        assert [d["value"] for d in alert["decisions"]] == [IP]

        async with http.delete(f"{crowdsec.url}/v1/decisions", params={"ip": IP}, headers=auth) as resp:
            deleted = await resp.json(content_type=None)
            assert resp.status == 200, deleted
        assert deleted == {"nbDeleted": "1"}

    assert await crowdsec.decisions(IP) == []
    assert await crowdsec.cscli_decisions() == []


async def test_login_with_aiohttps_default_user_agent_is_refused(crowdsec: CrowdSecLapi) -> None:
    async with aiohttp.ClientSession() as http:  # User-Agent: Python/3.x aiohttp/3.x - two slashes
        status, body = await login(http, crowdsec)
    assert status == 401, body
    assert body["message"] == "incorrect Username or Password"
    await wait_for(
        lambda: "bad user agent" in crowdsec.log_tail(200),
        timeout=5.0,
        message=lambda: f"no 'bad user agent' in the LAPI log:\n{crowdsec.log_tail()}",
    )

    async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as http:
        status, body = await login(http, crowdsec)
    assert status == 200, body
    assert await crowdsec.watcher_token() != ""


async def test_alert_missing_a_required_field_gets_500_not_400(crowdsec: CrowdSecLapi) -> None:
    alert = ban_alert(IP)
    del alert["capacity"]
    async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as http:
        auth = {"Authorization": f"Bearer {await crowdsec.watcher_token()}"}
        async with http.post(f"{crowdsec.url}/v1/alerts", json=[alert], headers=auth) as resp:
            assert resp.status == 500, await resp.text()
    assert await crowdsec.decisions(IP) == []


async def test_stop_ends_the_lapi(crowdsec: CrowdSecLapi) -> None:
    assert crowdsec.is_running()
    crowdsec.stop()
    assert not crowdsec.is_running()
    async with aiohttp.ClientSession() as http:
        try:
            async with http.get(f"{crowdsec.url}/health") as resp:
                raise AssertionError(f"still answering: HTTP {resp.status}")
        except aiohttp.ClientConnectionError:
            pass
