"""Runs end to end inside one daemon: http.request against a local receiver, retries, timeouts, failures,
dry-run, redaction and reloads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from autoremedy.models.events import EventState
from tests.support.inprocess import DEMO_RULE, LOG_PLAYBOOK, RunningDaemon, StartDaemon, fixture_payload
from tests.support.ports import free_port
from tests.support.procs import wait_for
from tests.support.receiver import RecordingReceiver

FIRING = fixture_payload("firing.json")
FAST = {"engine": {"retry_backoff": "10ms", "poll_interval": "100ms"}}


@pytest.fixture
async def hook() -> AsyncIterator[RecordingReceiver]:
    receiver = await RecordingReceiver().start()
    try:
        yield receiver
    finally:
        await receiver.stop()


def http_playbook(url: str, *, retries: int = 0, **step: Any) -> dict[str, Any]:
    return {
        "name": "call",
        "target": "app/{{ alert.labels.namespace }}/{{ alert.labels.app }}",
        "steps": [
            {
                "name": "notify",
                "action": "http.request",
                "retries": retries,
                "with": {
                    "url": url,
                    "headers": {"Authorization": "Bearer hook-secret", "X-Alert": "{{ alert.labels.alertname }}"},
                    "json": {
                        "app": "{{ alert.labels.app }}",
                        "summary": "{{ alert.annotations.summary }}",
                        "rule": "{{ rule.name }}",
                        "why": "{{ params.why }}",
                        "count": 3,
                    },
                },
                **step,
            }
        ],
    }


RULE = {
    **DEMO_RULE,
    "playbook": "call",
    "on": "firing",
    "params": {"why": "{{ alert.labels.severity }} in {{ alert.labels.namespace }}"},
}


async def finished_run(d: RunningDaemon) -> dict[str, Any]:
    async def one() -> dict[str, Any] | None:
        runs = await d.runs()
        return runs[0] if runs and runs[0]["finished_at"] else None

    run = await wait_for(one, timeout=15, message="a finished run")
    status, full = await d.get_json(f"/api/v1/runs/{run['id']}")
    assert status == 200
    return dict(full)


async def test_http_request_sends_the_templated_body(start_daemon: StartDaemon, hook: RecordingReceiver) -> None:
    d = await start_daemon(rules=[RULE], playbooks=[http_playbook(f"{hook.url}/incident")], extra=FAST)
    await d.post_alerts(FIRING)
    run = await finished_run(d)
    assert (run["status"], run["reason"]) == ("succeeded", "all steps done")
    (request,) = hook.requests_to("/incident", "POST")
    assert request.json == {
        "app": "web",
        "summary": "web deployment unhealthy",
        "rule": "demo",
        "why": "critical in default",
        "count": 3,
    }
    assert request.headers["Authorization"] == "Bearer hook-secret"
    assert request.headers["X-Alert"] == "DemoAppDown"
    step = run["steps"][0]
    assert step["inputs"]["headers"] == {"Authorization": "<redacted>", "X-Alert": "DemoAppDown"}
    assert step["result"]["status"] == 200
    assert "hook-secret" not in str(run)


async def test_5xx_is_retried_with_backoff_then_fails(start_daemon: StartDaemon, hook: RecordingReceiver) -> None:
    hook.set_response("/flaky", 503, "busy")
    d = await start_daemon(rules=[RULE], playbooks=[http_playbook(f"{hook.url}/flaky", retries=2)], extra=FAST)
    await d.post_alerts(FIRING)
    run = await finished_run(d)
    assert run["status"] == "failed"
    assert "answered 503" in run["reason"]
    assert run["steps"][0]["attempts"] == 3
    assert len(hook.requests_to("/flaky")) == 3


async def test_retry_succeeds_when_the_service_recovers(start_daemon: StartDaemon, hook: RecordingReceiver) -> None:
    hook.set_response("/flaky", 429, "slow down")
    d = await start_daemon(
        rules=[RULE],
        playbooks=[http_playbook(f"{hook.url}/flaky", retries=5)],
        extra={"engine": {"retry_backoff": "200ms"}},
    )
    await d.post_alerts(FIRING)
    await hook.wait_for_requests(1, path="/flaky", deadline_s=10)
    hook.reset_response("/flaky")
    run = await finished_run(d)
    assert run["status"] == "succeeded"
    assert run["steps"][0]["attempts"] == len(hook.requests_to("/flaky")) >= 2


async def test_4xx_gives_up_at_once(start_daemon: StartDaemon, hook: RecordingReceiver) -> None:
    hook.set_response("/gone", 404, "no such hook")
    d = await start_daemon(rules=[RULE], playbooks=[http_playbook(f"{hook.url}/gone", retries=3)], extra=FAST)
    await d.post_alerts(FIRING)
    run = await finished_run(d)
    assert run["status"] == "failed" and "answered 404" in run["reason"]
    assert run["steps"][0]["attempts"] == 1


async def test_expect_status_accepts_what_the_playbook_says(start_daemon: StartDaemon, hook: RecordingReceiver) -> None:
    hook.set_response("/exists", 409, "already open")
    playbook = http_playbook(f"{hook.url}/exists")
    playbook["steps"][0]["with"]["expect_status"] = [200, 409]
    d = await start_daemon(rules=[RULE], playbooks=[playbook], extra=FAST)
    await d.post_alerts(FIRING)
    assert (await finished_run(d))["status"] == "succeeded"


async def test_unreachable_url_is_retried_then_fails(start_daemon: StartDaemon) -> None:
    d = await start_daemon(
        rules=[RULE], playbooks=[http_playbook(f"http://127.0.0.1:{free_port()}/x", retries=1)], extra=FAST
    )
    await d.post_alerts(FIRING)
    run = await finished_run(d)
    assert run["status"] == "failed" and "ClientConnectorError" in run["reason"]
    assert run["steps"][0]["attempts"] == 2


async def test_step_timeout_and_on_failure_continue(start_daemon: StartDaemon) -> None:
    playbook = {
        "name": "slow",
        "target": "x/{{ alert.fingerprint }}",
        "steps": [
            {
                "name": "too-slow",
                "action": "wait",
                "timeout": "100ms",
                "on_failure": "continue",
                "with": {"duration": "30s"},
            },
            {"name": "after", "action": "log", "with": {"message": "still here"}},
        ],
    }
    d = await start_daemon(rules=[{**RULE, "playbook": "slow"}], playbooks=[playbook], extra=FAST)
    await d.post_alerts(FIRING)
    run = await finished_run(d)
    assert run["status"] == "succeeded"
    assert "too-slow" in run["reason"]
    assert [s["outcome"] for s in run["steps"]] == ["failed", "done"]
    assert run["steps"][0]["error"] == "timed out after 0.1s"


async def test_abort_leaves_later_steps_not_run(start_daemon: StartDaemon, hook: RecordingReceiver) -> None:
    hook.set_response("/bad", 400, "no")
    playbook = http_playbook(f"{hook.url}/bad")
    playbook["steps"].append({"action": "log", "with": {"message": "never"}})
    d = await start_daemon(rules=[RULE], playbooks=[playbook], extra=FAST)
    await d.post_alerts(FIRING)
    run = await finished_run(d)
    assert run["status"] == "failed"
    assert [s["outcome"] for s in run["steps"]] == ["failed", "not_run"]


async def test_missing_label_fails_the_plan_and_performs_nothing(
    start_daemon: StartDaemon, hook: RecordingReceiver
) -> None:
    playbook = http_playbook(f"{hook.url}/x")
    playbook["target"] = "deployment/{{ alert.labels.namespace }}/{{ alert.labels.deployment }}"
    d = await start_daemon(rules=[RULE], playbooks=[playbook], extra=FAST)
    await d.post_alerts(FIRING)
    run = await finished_run(d)
    assert run["status"] == "failed"
    assert run["reason"].startswith("plan not rendered: target")
    assert "deployment" in run["reason"]
    assert hook.requests == []


@pytest.mark.parametrize(
    ("global_dry_run", "rule_dry_run", "expected"),
    [
        pytest.param(True, None, "dry_run", id="global"),
        pytest.param(False, True, "dry_run", id="per-rule"),
        pytest.param(True, False, "succeeded", id="rule-overrides-global"),
    ],
)
async def test_dry_run_records_the_plan_and_performs_nothing(
    start_daemon: StartDaemon,
    hook: RecordingReceiver,
    global_dry_run: bool,
    rule_dry_run: bool | None,
    expected: str,
) -> None:
    rule = {**RULE, **({} if rule_dry_run is None else {"dry_run": rule_dry_run})}
    d = await start_daemon(
        rules=[rule], playbooks=[http_playbook(f"{hook.url}/x")], extra={**FAST, "dry_run": global_dry_run}
    )
    await d.post_alerts(FIRING)
    run = await finished_run(d)
    assert run["status"] == expected
    if expected == "dry_run":
        assert run["dry_run"] is True
        assert run["steps"][0]["inputs"]["json"]["why"] == "critical in default"
        assert run["steps"][0]["outcome"] == "done"
        assert run["steps"][0]["result"]["message"] == f"dry run: would send POST {hook.url}/x"
        assert run["reason"] == "dry run: every step rehearsed, nothing changed"
        assert hook.requests == []
    else:
        assert len(hook.requests) == 1


async def test_reload_keeps_the_old_rules_when_the_new_ones_are_invalid(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK], extra=FAST)
    rules_file = d.daemon.settings.rules_dir / "rules.yaml"
    rules_file.write_text("rules:\n  - name: broken\n    matchers: ['alertname=~\"(\"']\n    playbook: note\n")
    assert await d.daemon.reload() is False
    assert [c.rule.name for c in d.daemon.ruleset.rules] == ["demo"]
    rules_file.write_text("rules:\n  - name: renamed\n    matchers: ['alertname=DemoAppDown']\n    playbook: note\n")
    assert await d.daemon.reload() is True
    await d.post_alerts(FIRING)
    assert (await finished_run(d))["rule"] == "renamed"
    metrics = await (await d.http.get(f"{d.url}/metrics")).text()
    assert 'autoremedy_config_reloads_total{result="failed"} 1.0' in metrics


async def test_alert_matching_no_rule_makes_no_run(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[{**DEMO_RULE, "matchers": ["alertname=Other"]}], playbooks=[LOG_PLAYBOOK])
    assert (await d.post_alerts(FIRING)).status == 200

    async def decided() -> bool:
        found = await d.daemon.store.get_event(1)  # the first event of a fresh store
        return found is not None and found.state is EventState.NO_RULE_MATCHED

    await wait_for(decided, timeout=10, message="the event is marked no_rule_matched")
    # Marked on its own row, counted in a metric; no audit entry and no run.
    assert await d.daemon.store.list_audit(run_id=None, limit=5) == []
    assert await d.runs() == []
    metrics = await (await d.http.get(f"{d.url}/metrics")).text()
    assert 'autoremedy_events_decided_total{outcome="no_rule_matched"} 1.0' in metrics
