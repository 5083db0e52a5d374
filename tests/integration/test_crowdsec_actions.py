"""`crowdsec.ban` and `crowdsec.unban` against a real CrowdSec Local API: ban and read back, repetition, unban,
allowlist refusals before any call, a stale token (expired by its `expire`, or refused after a LAPI restart), wrong
credentials, dry runs. Every request the actions send is recorded through an aiohttp trace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from autoremedy.actions.base import ActionContext, ActionResult, Outcome
from autoremedy.actions.crowdsec import USER_AGENT, BanInputs, CrowdSecActions, UnbanInputs
from autoremedy.config.integrations import CrowdSecSettings
from autoremedy.decide.crowdsec import parse_go_duration
from autoremedy.observability import get_logger
from tests.support.crowdsec import CrowdSecLapi

IP = "203.0.113.7"
OFFICE = "198.51.100.64/26"


@dataclass
class Call:
    method: str
    path: str
    status: int | None = None
    user_agent: str = ""


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)

    def trace(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._start)
        trace.on_request_end.append(self._end)
        return trace

    async def _start(self, _: aiohttp.ClientSession, context: SimpleNamespace, params: Any) -> None:
        call = Call(params.method, params.url.path, user_agent=params.headers.get("User-Agent", ""))
        context.call = call
        self.calls.append(call)

    async def _end(self, _: aiohttp.ClientSession, context: SimpleNamespace, params: Any) -> None:
        context.call.status = params.response.status

    def seen(self) -> list[tuple[str, str, int | None]]:
        return [(c.method, c.path, c.status) for c in self.calls]

    def count(self, method: str, path: str) -> int:
        return sum(1 for c in self.calls if (c.method, c.path) == (method, path))


class Clock:
    """time.monotonic, moved forward on demand."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.shift


@dataclass
class Lapi:
    lapi: CrowdSecLapi
    http: aiohttp.ClientSession
    recorder: Recorder
    clock: Clock

    def settings(self, **overrides: Any) -> CrowdSecSettings:
        values: dict[str, Any] = {
            "url": self.lapi.url,
            "machine_id": self.lapi.machine_id,
            "password": self.lapi.password,
            "bouncer_key": self.lapi.bouncer_key,
            "allowlist": [OFFICE],
        }
        return CrowdSecSettings(**{**values, **overrides})

    def actions(self, **overrides: Any) -> CrowdSecActions:
        return CrowdSecActions(self.settings(**overrides), clock=self.clock)

    def ctx(self, *, operation: str = "run1.0", dry_run: bool = False, seconds: float = 10) -> ActionContext:
        return ActionContext(
            run_id=operation.split(".", maxsplit=1)[0],
            operation_id=operation,
            target=f"ip/{IP}",
            deadline=asyncio.get_running_loop().time() + seconds,
            dry_run=dry_run,
            http=self.http,
            log=get_logger("test"),
        )


@pytest.fixture
async def cs(crowdsec: CrowdSecLapi) -> AsyncIterator[Lapi]:
    recorder = Recorder()
    async with aiohttp.ClientSession(trace_configs=[recorder.trace()]) as http:
        yield Lapi(crowdsec, http, recorder, Clock())


def assert_outcome(result: ActionResult, outcome: Outcome) -> None:
    assert result.outcome is outcome, result.message


# -- ban, read back, unban ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "scope", "stored"),
    [
        pytest.param(IP, "Ip", IP, id="address"),
        pytest.param("203.0.113.0/24", "Range", "203.0.113.0/24", id="ipv4-range"),
        pytest.param("2001:db8:1::/48", "Range", "2001:db8:1::/48", id="ipv6-range"),
        pytest.param("2001:DB8::7", "Ip", "2001:db8::7", id="ipv6-address-normalised"),
        pytest.param("::ffff:203.0.113.9", "Ip", "203.0.113.9", id="ipv4-mapped"),
        pytest.param("203.0.113.9/32", "Ip", "203.0.113.9", id="host-cidr-is-an-address"),
    ],
)
async def test_ban_is_read_back_as_bouncers_see_it(cs: Lapi, value: str, scope: str, stored: str) -> None:
    result = await cs.actions().ban(BanInputs(ip=value, duration="90m", reason="credential stuffing"), cs.ctx())
    assert_outcome(result, Outcome.DONE)
    assert result.data["took_effect"] is True
    assert (result.data["scope"], result.data["value"]) == (scope, stored)
    [decision] = await cs.lapi.decisions(stored)
    assert (decision["type"], decision["scope"], decision["value"]) == ("ban", scope, stored)
    assert (decision["origin"], decision["scenario"]) == ("autoremedy", "credential stuffing")
    remaining = parse_go_duration(decision["duration"])
    assert remaining is not None and timedelta(minutes=89) < remaining <= timedelta(minutes=90)
    assert "bouncers see it (1h29m" in result.message or "bouncers see it (1h30m" in result.message
    assert cs.recorder.seen() == [
        ("GET", "/v1/decisions", 200),  # already banned? (no)
        ("POST", "/v1/watchers/login", 200),
        ("POST", "/v1/alerts", 201),
        ("GET", "/v1/decisions", 200),  # read back
    ]
    assert {c.user_agent for c in cs.recorder.calls} == {USER_AGENT}
    assert USER_AGENT.count("/") == 1


async def test_the_alert_names_the_run_and_cscli_lists_it(cs: Lapi) -> None:
    await cs.actions().ban(BanInputs(ip=IP), cs.ctx(operation="run42.1"))
    [alert] = await cs.lapi.cscli_decisions()
    assert alert["message"].startswith("autoremedy run42.1: ")
    assert alert["scenario"] == f"autoremedy run run42 on ip/{IP}"  # the default reason
    [decision] = alert["decisions"]
    assert decision["origin"] == "autoremedy"
    remaining = parse_go_duration(decision["duration"])
    assert remaining is not None and timedelta(hours=3, minutes=59) < remaining <= timedelta(hours=4)


async def test_a_day_long_ban_is_sent_in_hours(cs: Lapi) -> None:
    """Prometheus' `1d` is not a Go duration: the LAPI would answer 500 `unknown unit "d"`."""
    result = await cs.actions().ban(BanInputs(ip=IP, duration="1d"), cs.ctx())
    assert_outcome(result, Outcome.DONE)
    [decision] = await cs.lapi.decisions(IP)
    remaining = parse_go_duration(decision["duration"])
    assert remaining is not None and timedelta(hours=23, minutes=59) < remaining <= timedelta(hours=24)


async def test_repeated_ban_pushes_no_second_alert(cs: Lapi) -> None:
    actions = cs.actions()
    assert_outcome(await actions.ban(BanInputs(ip=IP), cs.ctx()), Outcome.DONE)
    again = await actions.ban(BanInputs(ip=IP), cs.ctx())
    assert_outcome(again, Outcome.DONE)
    assert "already banned (3h59m" in again.message
    assert cs.recorder.count("POST", "/v1/alerts") == 1
    assert len(await cs.lapi.decisions(IP)) == 1
    assert len(await cs.lapi.cscli_decisions()) == 1


async def test_repeated_ban_without_a_bouncer_key_checks_through_the_watcher(cs: Lapi) -> None:
    actions = cs.actions(bouncer_key=None)
    first = await actions.ban(BanInputs(ip=IP), cs.ctx())
    assert_outcome(first, Outcome.DONE)
    assert first.data["took_effect"] is None
    assert "set crowdsec.bouncer_key" in first.message
    again = await actions.ban(BanInputs(ip=IP), cs.ctx())
    assert "already banned" in again.message
    assert cs.recorder.count("POST", "/v1/alerts") == 1
    assert cs.recorder.count("GET", "/v1/alerts") == 2
    assert cs.recorder.count("GET", "/v1/decisions") == 0
    assert len(await cs.lapi.decisions(IP)) == 1


async def test_a_wider_range_ban_does_not_count_as_a_ban_on_the_address(cs: Lapi) -> None:
    actions = cs.actions()
    await actions.ban(BanInputs(ip="203.0.113.0/24"), cs.ctx())
    result = await actions.ban(BanInputs(ip=IP), cs.ctx())
    assert "bouncers see it" in result.message
    assert {d["value"] for d in await cs.lapi.decisions(IP)} == {"203.0.113.0/24", IP}


async def test_unban_deletes_the_decisions(cs: Lapi) -> None:
    actions = cs.actions()
    await actions.ban(BanInputs(ip=IP), cs.ctx())
    result = await actions.unban(UnbanInputs(ip=IP), cs.ctx())
    assert_outcome(result, Outcome.DONE)
    assert result.message == f"deleted 1 decision(s) on {IP}"
    assert await cs.lapi.decisions(IP) == []
    again = await actions.unban(UnbanInputs(ip=IP), cs.ctx())
    assert_outcome(again, Outcome.DONE)
    assert again.message == f"no decision on {IP}: nothing to delete"


async def test_unban_of_a_range(cs: Lapi) -> None:
    actions = cs.actions()
    await actions.ban(BanInputs(ip="2001:db8:1::/48"), cs.ctx())
    result = await actions.unban(UnbanInputs(ip="2001:db8:1::/48"), cs.ctx())
    assert result.data["deleted"] == 1
    assert await cs.lapi.decisions("2001:db8:1::5") == []


# -- refused before any call --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "why"),
    [
        pytest.param("127.0.0.1", "is in 127.0.0.0/8, loopback", id="loopback"),
        pytest.param("10.1.2.3", "is in 10.0.0.0/8, private", id="private-10"),
        pytest.param("192.168.0.0/16", "is in 192.168.0.0/16, private", id="private-range"),
        pytest.param("172.20.0.1", "is in 172.16.0.0/12, private", id="private-172"),
        pytest.param("100.64.1.1", "carrier-grade NAT", id="cgnat"),
        pytest.param("169.254.169.254", "link-local", id="metadata-service"),
        pytest.param("fe80::1", "is in fe80::/10, link-local", id="ipv6-link-local"),
        pytest.param("::1", "is in ::1/128, loopback", id="ipv6-loopback"),
        pytest.param("::", "is in ::/128, unspecified", id="ipv6-unspecified"),
        pytest.param("fd00::1", "unique local", id="ipv6-ula"),
        pytest.param("::ffff:10.0.0.1", "is in 10.0.0.0/8", id="ipv4-mapped-private"),
        pytest.param("224.0.0.1", "is in 224.0.0.0/4, multicast", id="multicast"),
        pytest.param("ff02::1", "multicast", id="ipv6-multicast"),
        pytest.param("0.0.0.0", "unspecified", id="unspecified"),
        pytest.param("255.255.255.255", "reserved", id="broadcast"),
        pytest.param("198.51.100.70", f"is in {OFFICE}, in crowdsec.allowlist", id="configured-cidr"),
        pytest.param("198.51.100.0/24", f"overlaps {OFFICE}, in crowdsec.allowlist", id="range-over-configured"),
        pytest.param("203.0.112.0/23", "wider than /24 (crowdsec.max_prefix)", id="too-wide-ipv4"),
        pytest.param("2001:db8::/32", "wider than /48 (crowdsec.max_prefix_v6)", id="too-wide-ipv6"),
        pytest.param("0.0.0.0/0", "wider than /24", id="everything"),
        pytest.param("203.0.113.7/24", "has host bits set: write the network, 203.0.113.0/24", id="host-bits"),
        pytest.param("evil.example.com", "is not an IP address or CIDR", id="hostname"),
        pytest.param("", "the ip input is empty", id="empty"),
    ],
)
async def test_refusals_make_no_call(cs: Lapi, value: str, why: str) -> None:
    result = await cs.actions().ban(BanInputs(ip=value), cs.ctx())
    assert_outcome(result, Outcome.GIVE_UP)
    assert result.message.startswith("refused before any call: ")
    assert why in result.message
    assert cs.recorder.calls == []
    assert await cs.lapi.cscli_decisions() == []


async def test_a_narrower_max_prefix_refuses_a_range_the_default_allows(cs: Lapi) -> None:
    result = await cs.actions(max_prefix=28).ban(BanInputs(ip="203.0.113.0/24"), cs.ctx())
    assert "wider than /28 (crowdsec.max_prefix)" in result.message
    assert cs.recorder.calls == []


# -- tokens and credentials ---------------------------------------------------------------------------------


async def test_the_token_is_kept_until_it_expires_then_renewed(cs: Lapi) -> None:
    """The LAPI's tokens last an hour (its `expire`); the client's clock is moved past it instead of waiting."""
    actions = cs.actions(bouncer_key=None)
    for ip in ("203.0.113.1", "203.0.113.2"):
        assert_outcome(await actions.ban(BanInputs(ip=ip), cs.ctx()), Outcome.DONE)
    assert cs.recorder.count("POST", "/v1/watchers/login") == 1
    cs.clock.shift = timedelta(minutes=59, seconds=45).total_seconds()  # within 30 s of `expire`
    assert_outcome(await actions.ban(BanInputs(ip="203.0.113.3"), cs.ctx()), Outcome.DONE)
    assert cs.recorder.count("POST", "/v1/watchers/login") == 2
    assert_outcome(await actions.ban(BanInputs(ip="203.0.113.4"), cs.ctx()), Outcome.DONE)
    assert cs.recorder.count("POST", "/v1/watchers/login") == 2  # the new token lasts an hour from its login
    assert [c.status for c in cs.recorder.calls if c.path == "/v1/alerts"] == [200, 201] * 4


async def test_a_token_refused_after_a_lapi_restart_is_renewed_once(cs: Lapi) -> None:
    """A restarted LAPI signs with a new secret: the cached token gets 401 `signature is invalid`."""
    actions = cs.actions()
    assert_outcome(await actions.ban(BanInputs(ip="203.0.113.1"), cs.ctx()), Outcome.DONE)
    await cs.lapi.restart()
    cs.recorder.calls.clear()
    result = await actions.ban(BanInputs(ip="203.0.113.2"), cs.ctx())
    assert_outcome(result, Outcome.DONE)
    assert cs.recorder.seen() == [
        ("GET", "/v1/decisions", 200),
        ("POST", "/v1/alerts", 401),
        ("POST", "/v1/watchers/login", 200),
        ("POST", "/v1/alerts", 201),
        ("GET", "/v1/decisions", 200),
    ]
    assert len(await cs.lapi.decisions("203.0.113.2")) == 1


@pytest.mark.parametrize(
    ("overrides", "lapi_says"),
    [
        pytest.param({"password": "not-the-password"}, "incorrect Username or Password", id="wrong-password"),
        pytest.param({"machine_id": "nobody"}, "machine not found", id="unknown-machine"),
    ],
)
async def test_wrong_credentials_give_up_clearly(cs: Lapi, overrides: dict[str, str], lapi_says: str) -> None:
    result = await cs.actions(**overrides).ban(BanInputs(ip=IP), cs.ctx())
    assert_outcome(result, Outcome.GIVE_UP)
    machine = overrides.get("machine_id", cs.lapi.machine_id)
    assert f"refused the watcher login of machine {machine!r}: wrong credentials" in result.message
    assert lapi_says in result.message
    assert "check crowdsec.machine_id and crowdsec.password" in result.message
    assert cs.lapi.password not in result.message and "not-the-password" not in result.message
    assert cs.recorder.count("POST", "/v1/alerts") == 0


async def test_a_wrong_bouncer_key_gives_up_before_pushing(cs: Lapi) -> None:
    result = await cs.actions(bouncer_key="wrong-key-123").ban(BanInputs(ip=IP), cs.ctx())
    assert_outcome(result, Outcome.GIVE_UP)
    assert "refused the bouncer key (crowdsec.bouncer_key): access forbidden" in result.message
    assert "wrong-key-123" not in result.message
    assert cs.recorder.count("POST", "/v1/alerts") == 0


async def test_an_unreachable_lapi_is_retried(cs: Lapi) -> None:
    cs.lapi.stop()
    result = await cs.actions().ban(BanInputs(ip=IP), cs.ctx())
    assert_outcome(result, Outcome.RETRY)
    assert "CrowdSec LAPI unreachable (GET /v1/decisions)" in result.message


async def test_not_configured_gives_up() -> None:
    result = await CrowdSecActions(None).ban(BanInputs(ip=IP), _bare_ctx())
    assert_outcome(result, Outcome.GIVE_UP)
    assert "add a `crowdsec:` section" in result.message


def _bare_ctx() -> ActionContext:
    return ActionContext(
        run_id="r",
        operation_id="r.0",
        target="t",
        deadline=asyncio.get_running_loop().time() + 1,
        dry_run=False,
        http=None,  # type: ignore[arg-type] - never used: the action gives up first
        log=get_logger("test"),
    )


# -- dry run ------------------------------------------------------------------------------------------------


async def test_dry_run_ban_logs_in_and_pushes_nothing(cs: Lapi) -> None:
    result = await cs.actions().ban(BanInputs(ip=IP, duration="2h", reason="scraping"), cs.ctx(dry_run=True))
    assert_outcome(result, Outcome.DONE)
    assert result.message == f"dry run: would ban Ip {IP} for 2h (scraping)"
    assert result.data["alert"]["decisions"][0] == {
        "duration": "2h",
        "type": "ban",
        "scope": "Ip",
        "value": IP,
        "origin": "autoremedy",
        "scenario": "scraping",
    }
    assert cs.recorder.seen() == [("POST", "/v1/watchers/login", 200), ("GET", "/v1/decisions", 200)]
    assert await cs.lapi.cscli_decisions() == []


async def test_dry_run_ban_with_wrong_credentials_fails_as_the_real_run_would(cs: Lapi) -> None:
    result = await cs.actions(password="nope").ban(BanInputs(ip=IP), cs.ctx(dry_run=True))
    assert_outcome(result, Outcome.GIVE_UP)
    assert "wrong credentials" in result.message


async def test_dry_run_unban_deletes_nothing(cs: Lapi) -> None:
    actions = cs.actions()
    await actions.ban(BanInputs(ip=IP), cs.ctx())
    result = await actions.unban(UnbanInputs(ip=IP), cs.ctx(dry_run=True))
    assert_outcome(result, Outcome.DONE)
    assert result.message == f"dry run: would delete the decisions on {IP} (1 apply to it now)"
    assert cs.recorder.count("DELETE", "/v1/decisions") == 0
    assert len(await cs.lapi.decisions(IP)) == 1


# -- secrets ------------------------------------------------------------------------------------------------


def _texts(result: ActionResult) -> str:
    return f"{result.message} {result.data}"


async def test_no_secret_in_any_result(cs: Lapi, capsys: pytest.CaptureFixture[str]) -> None:
    actions = cs.actions()
    results: list[Callable[[], Any]] = [
        lambda: actions.ban(BanInputs(ip=IP), cs.ctx()),
        lambda: actions.ban(BanInputs(ip=IP), cs.ctx(dry_run=True)),
        lambda: actions.unban(UnbanInputs(ip=IP), cs.ctx()),
    ]
    texts = [_texts(await make()) for make in results]
    assert actions.client is not None
    token = actions.client._token
    assert token
    logged = capsys.readouterr()
    for secret in (cs.lapi.password, cs.lapi.bouncer_key, token):
        assert all(secret not in text for text in texts)
        assert secret not in logged.out + logged.err
