"""The web console over plain HTTP (the browser suite, tests/browser, drives it in Chromium): sign-in with each
kind of credential, the session cookie's flags, sign-out and expiry, the CSRF token and Origin checks, escaping of
hostile labels, links only for http(s), and the console switched off."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from autoremedy.console.sessions import COOKIE, key_hash
from autoremedy.store.base import ConsoleSession
from tests.support.inprocess import LOG_PLAYBOOK, RunningDaemon, StartDaemon, fixture_payload
from tests.support.procs import wait_for

CONTROL = "control-token-0123456789"
READER = "read-token-0123456789"
INGEST = "ingest-token-0123456789"
TOKENS = [
    {"name": "oncall", "token": CONTROL, "scopes": ["read", "control"]},
    {"name": "viewer", "token": READER, "scopes": ["read"]},
    {"name": "alertmanager", "token": INGEST, "scopes": ["ingest"]},
]
HELD_RULE = {"name": "held", "matchers": ['alertname="DemoAppDown"'], "playbook": "note", "approval": "required"}


def auth(**extra: Any) -> dict[str, Any]:
    credentials = {
        "tokens": TOKENS,
        "users": [{"name": "bob", "password": "bob-password-1", "scopes": ["read", "control"]}],
        "basic_users": {"alice": "alice-password-1"},
    }
    return {"server": {"auth": credentials, **extra}}


@dataclass
class Browserless:
    """A console client: a cookie jar, and the Origin a browser would send."""

    d: RunningDaemon
    http: aiohttp.ClientSession

    @property
    def origin(self) -> str:
        return self.d.url

    async def sign_in(self, secret: str, user: str = "", *, origin: str | None = None) -> aiohttp.ClientResponse:
        form = {"secret": secret, "user": user, "next": "/ui/runs"}
        headers = {"Origin": origin if origin is not None else self.origin}
        async with self.http.post(
            f"{self.d.url}/ui/login", data=form, headers=headers, allow_redirects=False
        ) as response:
            await response.read()
            return response

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(f"{self.d.url}{path}", allow_redirects=False) as response:
            return response.status, await response.text()

    async def post(self, path: str, form: dict[str, str], *, origin: str | None = "") -> tuple[int, str]:
        headers = {} if origin is None else {"Origin": origin or self.origin}
        async with self.http.post(f"{self.d.url}{path}", data=form, headers=headers, allow_redirects=False) as response:
            return response.status, await response.text()

    async def csrf(self, path: str = "/ui/runs") -> str:
        status, html = await self.get(path)
        assert status == 200, html
        found = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert found is not None, "no CSRF token on the page"
        return found.group(1)


@pytest.fixture
async def clients() -> AsyncIterator[list[aiohttp.ClientSession]]:
    opened: list[aiohttp.ClientSession] = []
    yield opened
    for http in opened:
        await http.close()


async def client(d: RunningDaemon, opened: list[aiohttp.ClientSession]) -> Browserless:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # unsafe: cookies for 127.0.0.1
    opened.append(http)
    return Browserless(d, http)


async def held_run(d: RunningDaemon) -> dict[str, Any]:
    await d.post_alerts(fixture_payload("firing.json"), headers={"Authorization": f"Bearer {INGEST}"})

    async def found() -> dict[str, Any] | None:
        runs = await d.daemon.store.list_runs(status=None, limit=10)
        return next((r.model_dump(mode="json") for r in runs if r.status.value == "awaiting_approval"), None)

    return await wait_for(found, timeout=15, message="a run awaiting approval")


async def test_sign_in_sets_a_strict_http_only_session_cookie(
    start_daemon: StartDaemon, clients: list[aiohttp.ClientSession]
) -> None:
    d = await start_daemon(rules=[HELD_RULE], playbooks=[LOG_PLAYBOOK], extra=auth())
    c = await client(d, clients)
    assert (await c.get("/ui/runs"))[0] == 303  # to the sign-in page
    response = await c.sign_in(CONTROL)
    assert response.status == 303 and response.headers["Location"] == "/ui/runs"
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/ui"
    assert not cookie["secure"]  # plain HTTP and server.ui.secure_cookies off
    assert int(cookie["max-age"]) == 12 * 3600
    session = await d.daemon.store.console_session(key_hash(cookie.value), now=_now())
    assert session is not None and session.principal == "token:oncall" and session.scopes == {"read", "control"}
    status, html = await c.get("/ui/runs")
    assert status == 200 and "token:oncall" in html
    csp = (await c.http.get(f"{d.url}/ui/runs")).headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


async def test_who_can_sign_in(start_daemon: StartDaemon, clients: list[aiohttp.ClientSession]) -> None:
    d = await start_daemon(rules=[HELD_RULE], playbooks=[LOG_PLAYBOOK], extra=auth())
    c = await client(d, clients)
    refused = await c.sign_in(INGEST)
    assert refused.status == 403 and COOKIE not in refused.cookies
    assert (await c.sign_in("not-a-token")).status == 401
    assert (await c.sign_in("alice-password-1", "bob")).status == 401
    assert (await c.sign_in(CONTROL, origin="http://evil.example")).status == 403
    legacy = await c.sign_in("alice-password-1", "alice")
    assert legacy.status == 303
    status, html = await c.get("/ui/approvals")
    assert status == 200 and "basic:alice" in html and "(ingest, read)" in html


async def test_a_basic_auth_user_with_the_control_scope_approves_with_a_password(
    start_daemon: StartDaemon, clients: list[aiohttp.ClientSession]
) -> None:
    d = await start_daemon(rules=[HELD_RULE], playbooks=[LOG_PLAYBOOK], extra=auth())
    run = await held_run(d)
    c = await client(d, clients)
    assert (await c.sign_in("bob-password-1", "bob")).status == 303
    status, html = await c.get(f"/ui/runs/{run['id']}")
    assert status == 200 and 'class="approve"' in html
    token = await c.csrf()
    reason = f"not now (pasted by mistake: {CONTROL})"
    assert (await c.post(f"/ui/runs/{run['id']}/deny", {"csrf_token": token, "reason": reason}))[0] == 303
    audit = await d.daemon.store.list_audit(run_id=run["id"], limit=20)
    denied = next(a for a in audit if a.kind == "denied")
    assert denied.actor == "basic:bob" and "not now" in denied.message
    assert CONTROL not in denied.message  # a configured secret is masked in what the audit keeps


async def test_a_session_has_only_the_rights_its_credential_still_has(
    start_daemon: StartDaemon, clients: list[aiohttp.ClientSession]
) -> None:
    """Sessions outlive a config change (they are in the store): one whose token is gone is signed out, one whose
    token lost a scope loses it too."""
    d = await start_daemon(rules=[HELD_RULE], playbooks=[LOG_PLAYBOOK], extra=auth())
    run = await held_run(d)
    hour = timedelta(hours=1)
    for key, principal in (("gone-key", "token:removed"), ("narrowed-key", "token:viewer")):
        session = ConsoleSession(
            key_hash(key), principal, frozenset({"read", "control"}), "csrf", _now(), _now() + hour
        )
        await d.daemon.store.create_console_session(session, now=_now())
    gone = await client(d, clients)
    gone.http.cookie_jar.update_cookies({COOKIE: "gone-key"})
    assert (await gone.get("/ui/runs"))[0] == 303
    narrowed = await client(d, clients)
    narrowed.http.cookie_jar.update_cookies({COOKIE: "narrowed-key"})
    status, html = await narrowed.get(f"/ui/runs/{run['id']}")
    assert status == 200 and 'class="approve"' not in html and "(read)" in html
    assert (await narrowed.post(f"/ui/runs/{run['id']}/approve", {"csrf_token": "csrf"}))[0] == 403


async def test_state_changes_need_this_origin_and_the_sessions_csrf_token(
    start_daemon: StartDaemon, clients: list[aiohttp.ClientSession]
) -> None:
    d = await start_daemon(rules=[HELD_RULE], playbooks=[LOG_PLAYBOOK], extra=auth())
    run = await held_run(d)
    c = await client(d, clients)
    await c.sign_in(CONTROL)
    token = await c.csrf()
    path = f"/ui/runs/{run['id']}/approve"
    assert (await c.post(path, {"reason": "x"}))[0] == 403  # no CSRF token
    assert (await c.post(path, {"csrf_token": "forged"}))[0] == 403
    assert (await c.post(path, {"csrf_token": token}, origin="http://evil.example"))[0] == 403
    assert (await c.post(path, {"csrf_token": token}, origin=None))[0] == 403  # no Origin at all
    other = await client(d, clients)
    await other.sign_in(CONTROL)
    assert (await other.post(path, {"csrf_token": token}))[0] == 403  # another session's token
    still = await d.daemon.store.get_run(run["id"])
    assert still is not None and still.status.value == "awaiting_approval"
    status, _ = await c.post(path, {"csrf_token": token, "reason": "looks fine"})
    assert status == 303
    audit = await d.daemon.store.list_audit(run_id=run["id"], limit=20)
    approved = next(a for a in audit if a.kind == "approved")
    assert approved.actor == "token:oncall" and "looks fine" in approved.message


async def test_a_read_only_session_sees_no_buttons_and_cannot_decide(
    start_daemon: StartDaemon, clients: list[aiohttp.ClientSession]
) -> None:
    d = await start_daemon(rules=[HELD_RULE], playbooks=[LOG_PLAYBOOK], extra=auth())
    run = await held_run(d)
    c = await client(d, clients)
    await c.sign_in(READER)
    token = await c.csrf()
    for page in ("/ui/approvals", f"/ui/runs/{run['id']}", "/ui/guardrails"):
        status, html = await c.get(page)
        assert status == 200
        assert 'class="approve"' not in html and 'class="deny"' not in html and ">Pause<" not in html
    status, html = await c.post(f"/ui/runs/{run['id']}/approve", {"csrf_token": token})
    assert status == 403 and "lacks the scope" in html
    assert (await c.post("/ui/pause", {"csrf_token": token}))[0] == 403
    assert (await c.post("/ui/breaker/close", {"csrf_token": token}))[0] == 403
    assert await d.daemon.store.pauses() == []


async def test_pause_resume_and_sign_out(start_daemon: StartDaemon, clients: list[aiohttp.ClientSession]) -> None:
    d = await start_daemon(rules=[HELD_RULE], playbooks=[LOG_PLAYBOOK], extra=auth())
    c = await client(d, clients)
    response = await c.sign_in(CONTROL)
    token = await c.csrf("/ui/guardrails")
    assert (await c.post("/ui/pause", {"csrf_token": token, "rule": "held", "reason": "deploy"}))[0] == 303
    (pause,) = await d.daemon.store.pauses()
    assert (pause.scope, pause.actor, pause.reason) == ("held", "token:oncall", "deploy")
    _, html = await c.get("/ui/guardrails")
    assert "rule held" in html and ">Resume" in html
    assert (await c.post("/ui/pause", {"csrf_token": token, "rule": "nope"}))[0] == 404
    assert (await c.post("/ui/resume", {"csrf_token": token, "rule": "held"}))[0] == 303
    assert await d.daemon.store.pauses() == []
    assert (await c.post("/ui/logout", {"csrf_token": token}))[0] == 303
    assert await d.daemon.store.console_session(key_hash(response.cookies[COOKIE].value), now=_now()) is None
    assert (await c.get("/ui/runs"))[0] == 303


async def test_hostile_labels_are_escaped_and_only_http_links_are_links(
    start_daemon: StartDaemon, clients: list[aiohttp.ClientSession]
) -> None:
    rule = {"name": "any", "matchers": ['alertname="Hostile"'], "playbook": "note"}
    d = await start_daemon(rules=[rule], playbooks=[LOG_PLAYBOOK], extra=auth())
    payload = fixture_payload("firing.json")
    alert = payload["alerts"][0]
    alert["labels"] |= {"alertname": "Hostile", "app": "<script>alert(1)</script>", "namespace": '"><img src=x>'}
    alert["annotations"] = {"runbook": "javascript:alert(1)", "dashboard": "https://grafana.example/d/1?a=1&b=2"}
    await d.post_alerts(payload, headers={"Authorization": f"Bearer {INGEST}"})
    runs = await wait_for(lambda: d.daemon.store.list_runs(status=None, limit=5), timeout=15, message="a run")
    c = await client(d, clients)
    await c.sign_in(READER)
    for page in ("/ui/alerts", f"/ui/runs/{runs[0].id}", "/ui/runs"):
        status, html = await c.get(page)
        assert status == 200
        assert "<script>alert" not in html and "<img src=x>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    _, html = await c.get(f"/ui/runs/{runs[0].id}")
    assert 'href="javascript:' not in html and "javascript:alert(1)" in html
    assert 'href="https://grafana.example/d/1?a=1&amp;b=2"' in html


async def test_the_console_can_be_switched_off(start_daemon: StartDaemon, clients: list[aiohttp.ClientSession]) -> None:
    d = await start_daemon(rules=[], playbooks=[LOG_PLAYBOOK], extra=auth(ui={"enabled": False}))
    c = await client(d, clients)
    assert (await c.get("/ui/login"))[0] == 404
    assert (await c.sign_in(CONTROL)).status == 404


def _now() -> datetime:
    return datetime.now(UTC)
