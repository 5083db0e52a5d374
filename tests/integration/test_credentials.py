"""Scoped credentials against a running daemon: every route with every kind of credential (none, wrong, bytes
that are not ASCII, each scope, the legacy bearer token and basic user), approvals that follow the playbook's
approvers whatever the credential claims in `by`, and the requester of a manual run who cannot approve it."""

from __future__ import annotations

import asyncio
import base64
import copy
import os
import sys
from typing import Any

import pytest

from autoremedy.ingest.server import api_routes
from tests.integration.test_chatops import chatops_config, slash
from tests.support.inprocess import LOG_PLAYBOOK, RunningDaemon, StartDaemon, fixture_payload
from tests.support.procs import wait_for
from tests.support.rawhttp import raw_request
from tests.support.slack import FakeSlack

FIRING = fixture_payload("firing.json")
INGEST, READ, OPS, LEAD, LEGACY = "t-ingest-1", "t-read-2", "t-ops-3", "t-lead-4", "t-legacy-5"
TOKENS = [
    {"name": "alertmanager", "token": INGEST, "scopes": ["ingest"]},
    {"name": "dashboard", "token": READ, "scopes": ["read"]},
    {"name": "ops-cli", "token": OPS, "scopes": ["read", "control"]},
    {"name": "oncall-lead", "token": LEAD, "scopes": ["read", "control"]},
]
USERS = [{"name": "carol", "password": "carol-pw", "scopes": ["read", "control"]}]
AUTH = {"tokens": TOKENS, "users": USERS, "bearer_tokens": [LEGACY], "basic_users": {"am": "basic-pw"}}
GUARDED = {**LOG_PLAYBOOK, "name": "guarded"}
MANUAL_RULE = {
    "name": "manual-note",
    "matchers": ['alertname="manual"', 'autoremedy_playbook="note"'],
    "playbook": "note",
    "approval": "required",
}
RULES = [{"name": "demo", "matchers": ["alertname=DemoAppDown"], "playbook": "guarded", "approval": "required"}]
CONFIG = {
    "server": {"auth": AUTH},
    "engine": {"poll_interval": "50ms"},
    "chatops": {"approvers": {"guarded": ["U0ONLY", "token:oncall-lead", "basic:carol"]}},
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


CREDENTIALS: dict[str, tuple[dict[str, str], set[str]]] = {
    "ingest-token": (bearer(INGEST), {"ingest"}),
    "read-token": (bearer(READ), {"read"}),
    "control-token": (bearer(OPS), {"read", "control"}),
    "legacy-bearer": (bearer(LEGACY), {"ingest", "read"}),
    "legacy-basic": (basic("am", "basic-pw"), {"ingest", "read"}),
    "scoped-basic-user": (basic("carol", "carol-pw"), {"read", "control"}),
}
# (method, path, body, scope, the status when allowed: the unknown run and rule are 404 past the credential check)
ROUTES: list[tuple[str, str, Any, str, int]] = [
    ("POST", "/api/v1/alerts", FIRING, "ingest", 200),
    ("GET", "/api/v1/runs", None, "read", 200),
    ("GET", "/api/v1/runs/nope", None, "read", 404),
    ("GET", "/api/v1/status", None, "read", 200),
    ("POST", "/api/v1/runs/nope/approve", {}, "control", 404),
    ("POST", "/api/v1/runs/nope/deny", {}, "control", 404),
    ("POST", "/api/v1/pause", {"rule": "no-such-rule"}, "control", 404),
    ("POST", "/api/v1/resume", {"rule": "demo"}, "control", 200),
    ("POST", "/api/v1/breaker/close", {}, "control", 200),
]


def test_the_table_covers_every_route_that_needs_a_credential() -> None:
    scoped = {(method, path, str(scope)) for method, path, _, scope in api_routes() if scope is not None}
    tested = {(method, path.replace("/nope", "/{run_id}"), scope) for method, path, _, scope, _ in ROUTES}
    assert scoped == tested


async def call(d: RunningDaemon, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    async with d.http.request(method, f"{d.url}{path}", json=body, headers=headers) as response:
        answer = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, answer


async def start(start_daemon: StartDaemon, **extra: Any) -> RunningDaemon:
    config = copy.deepcopy(CONFIG)
    config["server"]["auth"].update(extra)
    d = await start_daemon(rules=RULES, playbooks=[GUARDED], extra=config)
    d.headers = bearer(OPS)  # the helpers' reads
    return d


async def test_every_route_takes_only_the_credentials_with_its_scope(start_daemon: StartDaemon) -> None:
    d = await start(start_daemon)
    outcomes = []
    for credential, (headers, scopes) in CREDENTIALS.items():
        for method, path, body, scope, allowed_status in ROUTES:
            status, answer = await call(d, method, path, body, headers)
            outcomes.append((credential, method, path, status))
            if scope in scopes:
                assert status == allowed_status, (credential, path, answer)
            else:
                assert status == 403, (credential, path, answer)
                assert answer["scope"] == scope and f"lacks the scope `{scope}`" in answer["error"]
    assert len(outcomes) == len(CREDENTIALS) * len(ROUTES)


REFUSED_HEADERS = [
    pytest.param({}, id="no-credential"),
    pytest.param(bearer("not-a-token"), id="wrong-token"),
    pytest.param(bearer(""), id="empty-bearer"),
    pytest.param(basic("am", "wrong"), id="basic-wrong-password"),
    pytest.param(basic("nobody", "basic-pw"), id="basic-unknown-user"),
    pytest.param(basic("carol", "basic-pw"), id="basic-other-users-password"),
    pytest.param({"Authorization": "Token " + OPS}, id="unknown-scheme"),
]


@pytest.mark.parametrize("headers", REFUSED_HEADERS)
async def test_every_route_refuses_missing_and_wrong_credentials(
    start_daemon: StartDaemon, headers: dict[str, str]
) -> None:
    d = await start(start_daemon)
    for method, path, body, _, _ in ROUTES:
        status, answer = await call(d, method, path, body, headers)
        assert (status, answer["error"]) == (401, "missing or invalid credentials"), path


RAW_AUTHORIZATION = [
    pytest.param(b"Bearer \xff\xfe", id="bearer-binary"),
    pytest.param(b"Bearer t-ops-3\xc3\xa9", id="bearer-utf8-suffix"),
    pytest.param("Bearer tést".encode("latin-1"), id="bearer-latin1"),
    pytest.param(b"Basic \xff\xff\xff\xff", id="basic-binary"),
    pytest.param(b"Basic " + base64.b64encode(b"am\xff:basic-pw"), id="basic-user-not-utf8"),
    pytest.param(b"Basic " + base64.b64encode(b"am:basic-pw\xff"), id="basic-password-not-utf8"),
    pytest.param("Basic ²".encode(), id="basic-superscript"),
]


@pytest.mark.parametrize("authorization", RAW_AUTHORIZATION)
async def test_authorization_that_is_not_ascii_is_401(start_daemon: StartDaemon, authorization: bytes) -> None:
    d = await start(start_daemon)
    for method, path, _, _, _ in ROUTES:
        headers = {"Authorization": authorization, "Content-Type": "application/json"}
        status, _ = await raw_request(d.url, method, path, headers=headers, body=b"{}")
        assert status == 401, path
    status, _ = await call(d, "GET", "/readyz", None, {})
    assert status == 200


async def held_run(d: RunningDaemon) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        runs = await d.runs()
        return runs[0] if runs and runs[0]["status"] == "awaiting_approval" else None

    return await wait_for(found, timeout=15, message="a run awaiting approval")


async def test_approval_follows_the_playbook_approvers_not_the_claimed_by(start_daemon: StartDaemon) -> None:
    d = await start(start_daemon)
    assert (await call(d, "POST", "/api/v1/alerts", FIRING, bearer(INGEST)))[0] == 200
    held = await held_run(d)
    approve = f"/api/v1/runs/{held['id']}/approve"
    # The webhook's token cannot approve what it created, whoever it claims to be.
    for token in (INGEST, LEGACY, READ):
        status, answer = await call(d, "POST", approve, {"by": "U0ONLY"}, bearer(token))
        assert (status, answer["scope"]) == (403, "control"), answer
    # A control token that the playbook's approvers do not name is refused, on approve and deny alike.
    for verb in ("approve", "deny"):
        status, answer = await call(d, "POST", f"/api/v1/runs/{held['id']}/{verb}", {"by": "U0ONLY"}, bearer(OPS))
        assert status == 403 and "token:ops-cli is not an approver of playbook 'guarded'" in answer["error"]
    assert (await d.runs())[0]["status"] == "awaiting_approval"

    status, answer = await call(d, "POST", approve, {}, basic("am", "basic-pw"))  # a legacy user cannot steer
    assert (status, answer["scope"]) == (403, "control")
    status, run = await call(d, "POST", approve, {"by": "U0ONLY", "reason": "checked"}, bearer(LEAD))
    assert (status, run["status"]) == (200, "planned"), run
    _, full = await d.get_json(f"/api/v1/runs/{held['id']}")
    (approval,) = [a for a in full["audit"] if a["kind"] == "approved"]
    assert approval["actor"] == "token:oncall-lead"
    assert "checked" in approval["message"] and "by: U0ONLY (as stated by the caller)" in approval["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/runs/nope/approve", {"reason": "ok\u0000"}, "reason"),
        ("/api/v1/runs/nope/deny", {"by": "mallory\u001b[31m"}, "by"),
        ("/api/v1/pause", {"rule": "demo\u0000"}, "rule"),
        ("/api/v1/pause", {"reason": "x" * 2001}, "reason"),
        ("/api/v1/pause", {"actor": "someone"}, "actor"),
    ],
)
async def test_control_bodies_are_checked_field_by_field(
    start_daemon: StartDaemon, path: str, body: dict[str, str], field: str
) -> None:
    d = await start(start_daemon)
    status, answer = await call(d, "POST", path, body, bearer(OPS))
    assert status == 400 and [f["field"] for f in answer["fields"]] == [field], answer


async def test_pause_resume_and_breaker_record_the_credential(start_daemon: StartDaemon) -> None:
    d = await start(start_daemon)
    status, _ = await call(d, "POST", "/api/v1/pause", {"rule": "demo", "by": "mallory", "reason": "x"}, bearer(OPS))
    assert status == 200
    (pause,) = await d.daemon.store.pauses()
    assert pause.actor == "token:ops-cli" and "by: mallory" in pause.reason
    assert (await call(d, "POST", "/api/v1/resume", {"rule": "demo"}, bearer(OPS)))[1]["was_paused"] is True
    audit = await d.daemon.store.list_audit(run_id=None, limit=10)
    assert {(a.kind, a.actor) for a in audit} >= {("paused", "token:ops-cli"), ("resumed", "token:ops-cli")}


async def test_metrics_are_open_unless_protected(start_daemon: StartDaemon) -> None:
    d = await start(start_daemon)
    assert (await call(d, "GET", "/metrics", None, {}))[0] == 200
    protected = await start(start_daemon, protect_metrics=True)
    assert (await call(protected, "GET", "/metrics", None, {}))[0] == 401
    status, answer = await call(protected, "GET", "/metrics", None, bearer(INGEST))
    assert (status, answer["scope"]) == (403, "read")
    status, text = await call(protected, "GET", "/metrics", None, bearer(READ))
    assert status == 200 and "autoremedy_runs_total" in text


async def test_the_requester_of_a_manual_run_cannot_approve_it(
    start_daemon: StartDaemon, fake_slack: FakeSlack
) -> None:
    config = chatops_config(fake_slack)
    d = await start_daemon(rules=[MANUAL_RULE], playbooks=[LOG_PLAYBOOK], extra=config)
    asked = await slash(d, "run note namespace=shop app=web", "U0ADMIN")
    assert "decides it" in asked["text"], asked
    held = await held_run(d)
    for command in (f"approve {held['id']}", f"deny {held['id']}"):
        refused = await slash(d, command, "U0ADMIN")
        assert "slack:U0ADMIN requested run" in refused["text"] and "cannot also approve" in refused["text"]
    assert (await d.runs())[0]["status"] == "awaiting_approval"
    approved = await slash(d, f"approve {held['id']} second pair of eyes", "U0APPROVER")
    assert "<@U0APPROVER> approved" in approved["text"]
    audit = await d.daemon.store.list_audit(run_id=held["id"], limit=20)
    assert [a.actor for a in audit if a.kind == "approved"] == ["slack:U0APPROVER"]


async def test_the_requester_cannot_approve_with_a_token_of_theirs_nor_with_one_that_could_be_theirs(
    start_daemon: StartDaemon, fake_slack: FakeSlack
) -> None:
    """Identities are linked across transports by `slack_user`: the requester's own token is refused as the
    requester, a token naming nobody is refused as possibly the requester, another person's token may decide."""
    config = chatops_config(fake_slack)
    config["server"] = {
        "auth": {
            "tokens": [
                {"name": "admin-laptop", "token": "t-admin", "scopes": ["read", "control"], "slack_user": "U0ADMIN"},
                {"name": "shared-ops", "token": "t-shared", "scopes": ["read", "control"]},
                {"name": "approver-cli", "token": "t-other", "scopes": ["read", "control"], "slack_user": "U0OTHER"},
            ]
        }
    }
    d = await start_daemon(rules=[MANUAL_RULE], playbooks=[LOG_PLAYBOOK], extra=config)
    d.headers = bearer("t-other")
    asked = await slash(d, "run note namespace=shop app=web", "U0ADMIN")
    assert "decides it" in asked["text"], asked
    held = await held_run(d)
    approve = f"/api/v1/runs/{held['id']}/approve"
    status, answer = await call(d, "POST", approve, {}, bearer("t-admin"))
    assert status == 403 and "slack:U0ADMIN requested run" in answer["error"], answer
    status, answer = await call(d, "POST", approve, {}, bearer("t-shared"))
    assert status == 403 and "token:shared-ops names no Slack user" in answer["error"], answer
    assert (await d.runs())[0]["status"] == "awaiting_approval"
    status, answer = await call(d, "POST", approve, {"reason": "second pair of eyes"}, bearer("t-other"))
    assert status == 200, answer
    audit = await d.daemon.store.list_audit(run_id=held["id"], limit=20)
    assert [a.actor for a in audit if a.kind == "approved"] == ["token:approver-cli"]


async def test_an_address_that_keeps_failing_to_sign_in_waits_on_the_api_and_the_console(
    start_daemon: StartDaemon,
) -> None:
    d = await start(start_daemon, max_failures=3, failure_window="1h")
    for _ in range(3):
        assert (await call(d, "GET", "/api/v1/status", None, basic("carol", "guess")))[0] == 401
    status, answer = await call(d, "GET", "/api/v1/status", None, bearer(OPS))  # even the right token waits
    assert status == 429 and "too many failed sign-ins from 127.0.0.1" in answer["error"], answer
    form = {"user": "carol", "secret": "carol-pw", "next": "/ui/runs"}
    async with d.http.post(f"{d.url}/ui/login", data=form, headers={"Origin": d.url}, allow_redirects=False) as r:
        assert r.status == 429 and int(r.headers["Retry-After"]) > 3500
        assert "Too many failed sign-ins" in await r.text()


async def autoremedy_cli(d: RunningDaemon, *args: str, token: str | None = None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOREMEDY_")}
    if token is not None:
        env["AUTOREMEDY_TOKEN"] = token
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autoremedy",
        "--config",
        str(d.config_path),
        *args,
        "--url",
        d.url,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    return int(process.returncode or 0), output.decode()


async def test_the_cli_steers_with_a_control_token(start_daemon: StartDaemon) -> None:
    legacy_only = await start_daemon(
        rules=RULES, playbooks=[GUARDED], extra={"server": {"auth": {"bearer_tokens": [LEGACY]}}}
    )
    # Reads work with the legacy token from the config; steering needs a control token, and the CLI says so.
    assert (await autoremedy_cli(legacy_only, "status"))[0] == 0
    code, output = await autoremedy_cli(legacy_only, "pause", "demo")
    assert code == 1 and "needs a token with the control scope" in output and "AUTOREMEDY_TOKEN" in output
    code, output = await autoremedy_cli(legacy_only, "pause", "demo", token=LEGACY)
    assert code == 1 and "403" in output and "lacks the scope `control`" in output

    d = await start(start_daemon)  # its config names ops-cli first among the control tokens
    code, output = await autoremedy_cli(d, "pause", "demo", "--reason", "freeze", "--by", "carol")
    assert code == 0, output
    (pause,) = await d.daemon.store.pauses()
    assert (pause.actor, pause.reason) == ("token:ops-cli", "freeze; by: carol (as stated by the caller)")
    code, output = await autoremedy_cli(d, "resume", "demo", token=LEAD)
    assert code == 0 and "resumed: demo" in output
    resumed = [a for a in await d.daemon.store.list_audit(run_id=None, limit=10) if a.kind == "resumed"]
    assert [a.actor for a in resumed] == ["token:oncall-lead"]
