"""Guardrails through a running daemon: approvals over the API, delay cancelled by a resolved webhook, a
maintenance window deferring a run, the breaker under a storm, pause and resume from the CLI."""

from __future__ import annotations

import asyncio
import copy
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.inprocess import LOG_PLAYBOOK, RunningDaemon, StartDaemon, fixture_payload
from tests.support.procs import wait_for
from tests.support.receiver import RecordingReceiver

FIRING = fixture_payload("firing.json")
RESOLVED = fixture_payload("resolved.json")
RULE = {"name": "demo", "matchers": ["alertname=DemoAppDown"], "playbook": "note"}
FAST = {"engine": {"poll_interval": "50ms"}}


async def the_run(d: RunningDaemon, *statuses: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        runs = await d.runs()
        return runs[0] if runs and runs[0]["status"] in statuses else None

    return await wait_for(found, timeout=15, message=f"a run with status in {statuses}")


async def post_json(d: RunningDaemon, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    async with d.http.post(f"{d.url}{path}", json=body or {}, headers=d.headers) as response:
        return response.status, await response.json()


async def _breaker_gauge(d: RunningDaemon, value: int) -> bool:
    metrics = await (await d.http.get(f"{d.url}/metrics")).text()
    return f"autoremedy_breaker_open {float(value)}" in metrics


def storm(count: int) -> dict[str, Any]:
    body = copy.deepcopy(FIRING)
    template = body["alerts"][0]
    body["alerts"] = []
    for index in range(count):
        alert = copy.deepcopy(template)
        alert["fingerprint"] = f"storm{index:04d}"
        alert["labels"]["app"] = f"app{index}"  # a distinct target per alert
        body["alerts"].append(alert)
    return body


async def test_approval_granted_runs_the_playbook(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[{**RULE, "approval": "required"}], playbooks=[LOG_PLAYBOOK], extra=FAST)
    await d.post_alerts(FIRING)
    held = await the_run(d, "awaiting_approval")
    assert held["guardrail"] == "awaiting_approval" and held["expires_at"]
    status, body = await post_json(d, f"/api/v1/runs/{held['id']}/approve", {"by": "alice", "reason": "checked"})
    assert status == 200 and body["status"] == "planned"
    done = await the_run(d, "succeeded")
    assert done["id"] == held["id"]
    _, full = await d.get_json(f"/api/v1/runs/{held['id']}")
    approvals = [a for a in full["audit"] if a["kind"] == "approved"]
    assert approvals[0]["actor"] == "token:test" and "checked" in approvals[0]["message"]
    assert "by: alice (as stated by the caller)" in approvals[0]["message"]
    assert (await post_json(d, f"/api/v1/runs/{held['id']}/approve"))[0] == 409
    assert (await post_json(d, "/api/v1/runs/nope/approve"))[0] == 404


async def test_approval_denied_and_expired(start_daemon: StartDaemon) -> None:
    d = await start_daemon(
        rules=[{**RULE, "approval": "required"}],
        playbooks=[LOG_PLAYBOOK],
        extra={**FAST, "guardrails": {"approval_timeout": "300ms"}},
    )
    await d.post_alerts(FIRING)
    held = await the_run(d, "awaiting_approval")
    status, body = await post_json(d, f"/api/v1/runs/{held['id']}/deny", {"reason": "not during the sale"})
    assert status == 200 and (body["status"], body["guardrail"]) == ("skipped", "denied")
    assert "not during the sale" in body["reason"]
    second = copy.deepcopy(FIRING)
    second["alerts"][0]["startsAt"] = "2026-11-26T23:00:00Z"  # the alert fires again later
    await d.post_alerts(second)

    async def expired_now() -> dict[str, Any] | None:
        runs = await d.runs()
        return next((r for r in runs if r["guardrail"] == "approval_expired"), None)

    expired = await wait_for(expired_now, timeout=15, message="the approval expires")
    escalations = await d.daemon.store.escalations(limit=5)
    assert [(e.trigger, e.run_id) for e in escalations if e.trigger == "approval_expired"] == [
        ("approval_expired", expired["id"])
    ]


async def test_delay_is_cancelled_when_the_alert_resolves(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[{**RULE, "delay": "1h"}], playbooks=[LOG_PLAYBOOK], extra=FAST)
    await d.post_alerts(FIRING)
    delayed = await the_run(d, "delayed")
    assert datetime.fromisoformat(delayed["not_before"]) > datetime.now(UTC) + timedelta(minutes=59)
    await d.post_alerts(RESOLVED)
    cancelled = await the_run(d, "skipped")
    assert (cancelled["id"], cancelled["guardrail"]) == (delayed["id"], "alert_resolved")
    assert cancelled["steps"][0]["outcome"] == "not_run"


async def test_delay_runs_the_playbook_when_it_is_over(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[{**RULE, "delay": "300ms"}], playbooks=[LOG_PLAYBOOK], extra=FAST)
    await d.post_alerts(FIRING)
    delayed = await the_run(d, "delayed")
    done = await the_run(d, "succeeded")
    assert done["id"] == delayed["id"]
    assert datetime.fromisoformat(done["started_at"]) >= datetime.fromisoformat(done["not_before"])


async def test_maintenance_window_defers_the_run_until_it_ends(start_daemon: StartDaemon) -> None:
    now = datetime.now(UTC)
    window = {
        "name": "db-upgrade",
        "matchers": ["namespace=default"],
        "action": "defer",
        "start": (now - timedelta(minutes=5)).isoformat(),
        "end": (now + timedelta(seconds=3)).isoformat(),
    }
    d = await start_daemon(
        rules=[RULE], playbooks=[LOG_PLAYBOOK], extra={**FAST, "guardrails": {"maintenance_windows": [window]}}
    )
    await d.post_alerts(FIRING)
    deferred = await the_run(d, "deferred")
    assert deferred["guardrail"] == "maintenance" and "db-upgrade" in deferred["reason"]
    done = await the_run(d, "succeeded")
    assert done["id"] == deferred["id"]
    assert datetime.fromisoformat(done["started_at"]) >= datetime.fromisoformat(window["end"])


def http_playbook(url: str) -> dict[str, Any]:
    """A playbook that changes something (an HTTP call): the breaker counts and blocks its runs."""
    return {
        "name": "note",
        "target": "app/{{ alert.labels.namespace }}/{{ alert.labels.app }}",
        "steps": [{"action": "http.request", "with": {"url": url, "json": {"fp": "{{ alert.fingerprint }}"}}}],
    }


@pytest.fixture
async def hook() -> AsyncIterator[RecordingReceiver]:
    receiver = await RecordingReceiver().start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def test_breaker_opens_under_a_storm_and_closes_again(start_daemon: StartDaemon, hook: RecordingReceiver) -> None:
    breaker = {"max_runs": 5, "within": "10m", "quiet_period": "500ms"}
    d = await start_daemon(
        rules=[RULE], playbooks=[http_playbook(hook.url)], extra={**FAST, "guardrails": {"breaker": breaker}}
    )
    body = storm(200)
    for start in range(0, 200, 50):  # as Alertmanager would send them, in groups
        await d.post_alerts({**body, "alerts": body["alerts"][start : start + 50]})

    async def all_decided() -> list[dict[str, Any]] | None:
        runs = await d.runs(limit="1000")
        return runs if len(runs) == 200 and all(r["finished_at"] for r in runs) else None

    runs = await wait_for(all_decided, timeout=30, message="200 runs decided")
    by_guardrail: dict[str, int] = {}
    for run in runs:
        by_guardrail[run["guardrail"]] = by_guardrail.get(run["guardrail"], 0) + 1
    assert by_guardrail == {"allowed": 5, "breaker_open": 195}
    status, body = await d.get_json("/api/v1/status")
    assert status == 200 and body["breaker"]["open"] is True
    escalations = await d.daemon.store.escalations(limit=10)
    assert [e.trigger for e in escalations] == ["breaker_open"]  # once, not 195 times
    metrics = await (await d.http.get(f"{d.url}/metrics")).text()
    assert 'autoremedy_guardrail_blocks_total{reason="breaker_open"} 195.0' in metrics
    await wait_for(lambda: _breaker_gauge(d, 1), timeout=10, message="the breaker gauge says open")

    # The storm is over: after the quiet period without attempts the breaker closes by itself.
    await wait_for(lambda: _quiet_period_passed(d), timeout=10, message="the breaker's quiet period passes")
    more = storm(220)["alerts"]
    await d.post_alerts({**FIRING, "alerts": [more[200]]})
    run = await wait_for(lambda: _run_of(d, "storm0200"), timeout=15, message="the run after the storm")
    assert run["guardrail"] == "allowed"
    assert (await d.get_json("/api/v1/status"))[1]["breaker"]["open"] is False

    # A second storm opens it again (counting only runs since it closed); an operator closes it by command.
    await d.post_alerts({**FIRING, "alerts": more[201:210]})
    await wait_for(lambda: _run_of(d, "storm0209"), timeout=15, message="the second storm decided")
    assert (await d.get_json("/api/v1/status"))[1]["breaker"]["open"] is True
    status, answer = await post_json(d, "/api/v1/breaker/close", {"by": "ops"})
    assert (status, answer["was_open"]) == (200, True)
    await d.post_alerts({**FIRING, "alerts": [more[210]]})
    run = await wait_for(lambda: _run_of(d, "storm0210"), timeout=15, message="the run after closing")
    assert run["guardrail"] == "allowed"


async def test_log_only_runs_neither_count_towards_nor_are_blocked_by_the_breaker(
    start_daemon: StartDaemon, hook: RecordingReceiver
) -> None:
    breaker = {"max_runs": 20, "within": "10m"}
    noisy = {"name": "noisy", "matchers": ["alertname=DemoAppDown", "app=~noisy.*"], "playbook": "note-log"}
    acting = {"name": "acting", "matchers": ["alertname=DemoAppDown"], "playbook": "note"}
    log_only = {**LOG_PLAYBOOK, "name": "note-log"}
    d = await start_daemon(
        rules=[noisy, acting],
        playbooks=[log_only, http_playbook(hook.url)],
        extra={**FAST, "guardrails": {"breaker": breaker}},
    )
    alerts = storm(22)["alerts"]
    for index, alert in enumerate(alerts[:21]):
        alert["labels"]["app"] = f"noisy{index}"
    await d.post_alerts({**FIRING, "alerts": alerts[:21]})

    async def logged() -> list[dict[str, Any]] | None:
        runs = await d.runs(limit="100")
        return runs if len(runs) == 21 and all(r["status"] == "succeeded" for r in runs) else None

    runs = await wait_for(logged, timeout=30, message="21 log-only runs succeeded")
    assert {r["guardrail"] for r in runs} == {"allowed"}
    await d.post_alerts({**FIRING, "alerts": alerts[21:]})  # app21: the mutating rule
    run = await wait_for(lambda: _run_of(d, "storm0021"), timeout=15, message="the mutating run")
    assert (run["rule"], run["guardrail"]) == ("acting", "allowed")
    await hook.wait_for_requests(1, deadline_s=15)
    assert (await d.get_json("/api/v1/status"))[1]["breaker"]["open"] is False
    assert await _breaker_gauge(d, 0)


async def _quiet_period_passed(d: RunningDaemon) -> bool:
    state = await d.daemon.store.breaker()
    assert state.last_attempt_at is not None
    return datetime.now(UTC) - state.last_attempt_at > timedelta(milliseconds=500)


async def _run_of(d: RunningDaemon, fingerprint: str) -> dict[str, Any] | None:
    runs = await d.runs(limit="1000")
    return next((r for r in runs if r["fingerprint"] == fingerprint and r["finished_at"]), None)


async def cli(d: RunningDaemon, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autoremedy",
        "--config",
        str(d.config_path),
        *args,
        "--url",
        d.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    return int(process.returncode or 0), output.decode()


async def test_pause_and_resume_from_the_cli(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[RULE], playbooks=[LOG_PLAYBOOK], extra=FAST)
    code, output = await cli(d, "pause", "demo", "--reason", "deploy freeze", "--by", "carol")
    assert code == 0, output
    await d.post_alerts(FIRING)
    skipped = await the_run(d, "skipped")
    assert skipped["guardrail"] == "paused"
    code, output = await cli(d, "status")
    assert code == 0 and "demo by token:test (deploy freeze; by: carol (as stated by the caller))" in output, output
    assert (await cli(d, "pause", "no-such-rule"))[0] == 1
    code, output = await cli(d, "resume", "demo")
    assert code == 0 and "resumed: demo" in output
    again = copy.deepcopy(FIRING)
    again["alerts"][0]["startsAt"] = "2026-11-26T23:00:00Z"
    await d.post_alerts(again)
    assert (await the_run(d, "succeeded"))["guardrail"] == "allowed"
    audit = await d.daemon.store.list_audit(run_id=None, limit=50)
    assert {"paused", "resumed"} <= {a.kind for a in audit}
