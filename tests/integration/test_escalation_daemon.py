"""Escalation through a running daemon to the fake Slack, PagerDuty and Opsgenie: once per event, resolved when
the alert resolves, retried from the store on 429/5xx, given up on other 4xx; and alert.resolved steps."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.inprocess import RunningDaemon, StartDaemon, fixture_payload
from tests.support.opsgenie import OPSGENIE_API_KEY, FakeOpsgenie
from tests.support.pagerduty import PAGERDUTY_ROUTING_KEY, FakePagerDuty
from tests.support.ports import free_port
from tests.support.procs import wait_for
from tests.support.slack import SLACK_BOT_TOKEN, FakeSlack

FIRING = fixture_payload("firing.json")
RESOLVED = fixture_payload("resolved.json")
BROKEN = {
    "name": "broken-fix",
    "target": "app/{{ alert.labels.namespace }}/{{ alert.labels.app }}",
    "steps": [
        {
            "name": "call-fixer",
            "action": "http.request",
            "timeout": "2s",
            "with": {"url": f"http://127.0.0.1:{free_port()}/fix"},
        }
    ],
}
RULE = {"name": "demo", "matchers": ["alertname=DemoAppDown"], "playbook": "broken-fix"}


def notify_config(
    slack: FakeSlack, pagerduty: FakePagerDuty, opsgenie: FakeOpsgenie, **escalation: Any
) -> dict[str, Any]:
    return {
        "engine": {"poll_interval": "50ms"},
        "notify": {
            "slack": {"token": SLACK_BOT_TOKEN, "channel": "C0ONCALL", "base_url": slack.api_url},
            "pagerduty": {"routing_key": PAGERDUTY_ROUTING_KEY, "url": pagerduty.url},
            "opsgenie": {"api_key": OPSGENIE_API_KEY, "url": opsgenie.url},
        },
        "escalation": {"default": ["slack", "pagerduty", "opsgenie"], "retry_initial": "50ms", **escalation},
    }


async def delivered(d: RunningDaemon, count: int, *, state: str = "sent") -> list[Any]:
    async def enough() -> list[Any] | None:
        found = [x for x in await d.daemon.store.deliveries(limit=100) if x.state == state]
        return found if len(found) >= count else None

    return await wait_for(enough, timeout=15, message=f"{count} deliveries {state}")


async def test_failed_run_escalates_once_and_resolves_with_the_alert(
    start_daemon: StartDaemon,
    fake_slack: FakeSlack,
    fake_pagerduty: FakePagerDuty,
    fake_opsgenie: FakeOpsgenie,
) -> None:
    d = await start_daemon(
        rules=[RULE], playbooks=[BROKEN], extra=notify_config(fake_slack, fake_pagerduty, fake_opsgenie)
    )
    await d.post_alerts(FIRING)
    await delivered(d, 3)
    (message,) = fake_slack.top_level()
    assert message.channel == "C0ONCALL"
    header = message.blocks[0]["text"]["text"]  # type: ignore[index]
    assert header.startswith("[autoremedy] remediation failed: DemoAppDown")
    assert "web deployment unhealthy" in str(message.blocks)
    (incident,) = fake_pagerduty.incidents
    assert incident.dedup_key.startswith("autoremedy-")
    (alert,) = fake_opsgenie.alerts
    assert alert.alias == incident.dedup_key

    for _ in range(2):  # Alertmanager redelivers: no new escalation
        await d.post_alerts(FIRING)
    await d.post_alerts(RESOLVED)
    await delivered(d, 6)
    assert fake_pagerduty.open_incidents == {}
    assert incident.trigger_count == 1
    assert fake_opsgenie.open_alerts == {}
    (reply,) = fake_slack.thread(message.ts)
    assert "resolved" in reply.text.lower()
    assert len(fake_slack.top_level()) == 1


async def test_429_is_retried_after_retry_after_and_400_is_given_up(
    start_daemon: StartDaemon,
    fake_slack: FakeSlack,
    fake_pagerduty: FakePagerDuty,
    fake_opsgenie: FakeOpsgenie,
) -> None:
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=1)
    fake_pagerduty.fail_next(status=400)
    d = await start_daemon(
        rules=[RULE], playbooks=[BROKEN], extra=notify_config(fake_slack, fake_pagerduty, fake_opsgenie)
    )
    await d.post_alerts(FIRING)
    failed = await delivered(d, 1, state="failed")
    assert failed[0].channel == "pagerduty" and "400" in (failed[0].last_error or "")
    sent = await delivered(d, 2)
    slack = next(x for x in sent if x.channel == "slack")
    assert slack.attempts == 2
    attempts = fake_slack.requests_to("/api/chat.postMessage")
    assert [r.status for r in attempts] == [429, 200]
    assert attempts[1].received_at - attempts[0].received_at >= 1.0  # Retry-After was honoured
    metrics = await (await d.http.get(f"{d.url}/metrics")).text()
    assert 'autoremedy_escalation_failures_total{channel="pagerduty",outcome="give_up"} 1.0' in metrics
    assert 'autoremedy_escalation_failures_total{channel="slack",outcome="retry"} 1.0' in metrics


async def test_every_channel_failing_is_kept_and_retried_until_it_works(
    start_daemon: StartDaemon,
    fake_slack: FakeSlack,
    fake_pagerduty: FakePagerDuty,
    fake_opsgenie: FakeOpsgenie,
) -> None:
    fake_slack.fail_next("chat.postMessage", status=500, times=3)
    fake_pagerduty.fail_next(status=503, times=3)
    fake_opsgenie.fail_next(status=500, times=3)
    d = await start_daemon(
        rules=[RULE], playbooks=[BROKEN], extra=notify_config(fake_slack, fake_pagerduty, fake_opsgenie)
    )
    await d.post_alerts(FIRING)
    sent = await delivered(d, 3)
    assert sorted(x.attempts for x in sent) == [4, 4, 4]
    assert len(fake_pagerduty.incidents) == 1 and len(fake_opsgenie.alerts) == 1


@pytest.mark.parametrize(
    ("rule_escalate", "severity_map", "expected"),
    [
        pytest.param([], {}, [], id="rule-says-none"),
        pytest.param(["opsgenie"], {}, ["opsgenie"], id="rule-channels"),
        pytest.param(None, {"critical": ["pagerduty"]}, ["pagerduty"], id="by-severity"),
        pytest.param(None, {"warning": ["pagerduty"]}, ["opsgenie", "pagerduty", "slack"], id="default"),
    ],
)
async def test_policy_picks_the_channels(
    start_daemon: StartDaemon,
    fake_slack: FakeSlack,
    fake_pagerduty: FakePagerDuty,
    fake_opsgenie: FakeOpsgenie,
    rule_escalate: list[str] | None,
    severity_map: dict[str, list[str]],
    expected: list[str],
) -> None:
    rule = {**RULE, **({} if rule_escalate is None else {"escalate": rule_escalate})}
    d = await start_daemon(
        rules=[rule],
        playbooks=[BROKEN],
        extra=notify_config(fake_slack, fake_pagerduty, fake_opsgenie, by_severity=severity_map),
    )
    await d.post_alerts(FIRING)
    await wait_for(lambda: _fanned_out(d), timeout=15, message="the escalation is fanned out")
    if expected:
        await delivered(d, len(expected))
    assert sorted(x.channel for x in await d.daemon.store.deliveries(limit=10)) == expected


async def _fanned_out(d: RunningDaemon) -> bool:
    escalations = await d.daemon.store.escalations(limit=5)
    return bool(escalations) and all(e.trigger == "run_failed" for e in escalations)


async def test_approval_requests_go_to_chat_only(
    start_daemon: StartDaemon,
    fake_slack: FakeSlack,
    fake_pagerduty: FakePagerDuty,
    fake_opsgenie: FakeOpsgenie,
) -> None:
    d = await start_daemon(
        rules=[{**RULE, "approval": "required"}],
        playbooks=[BROKEN],
        extra=notify_config(fake_slack, fake_pagerduty, fake_opsgenie),
    )
    await d.post_alerts(FIRING)
    (delivery,) = await delivered(d, 1)
    assert delivery.channel == "slack" and delivery.trigger == "approval_requested"
    assert "approval needed" in fake_slack.top_level()[0].text
    assert fake_pagerduty.incidents == []


WAITS = {
    "name": "restart-and-confirm",
    "target": "app/{{ alert.labels.namespace }}/{{ alert.labels.app }}",
    "steps": [
        {"name": "note", "action": "log", "with": {"message": "restarting"}},
        {"name": "confirm", "action": "alert.resolved", "with": {"within": "1h"}},
        {"name": "after", "action": "log", "with": {"message": "confirmed"}},
    ],
}


async def run_of(d: RunningDaemon, fingerprint: str, *statuses: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        return next((r for r in await d.runs() if r["fingerprint"] == fingerprint and r["status"] in statuses), None)

    return await wait_for(found, timeout=15, message=f"run of {fingerprint} in {statuses}")


async def test_alert_resolved_waits_without_a_slot_and_is_woken(start_daemon: StartDaemon) -> None:
    d = await start_daemon(
        rules=[{**RULE, "playbook": "restart-and-confirm"}],
        playbooks=[WAITS],
        extra={"engine": {"poll_interval": "50ms", "concurrency": 1}},
    )
    await d.post_alerts(FIRING)
    waiting = await run_of(d, "2211ebba9d7bd2f0", "waiting")
    assert [s["outcome"] for s in waiting["steps"]] == ["done", "pending", "pending"]
    other = copy.deepcopy(FIRING)
    other["alerts"][0].update(fingerprint="other0001", labels={**other["alerts"][0]["labels"], "app": "api"})
    await d.post_alerts(other)
    await run_of(d, "other0001", "waiting")  # the only slot was free: the first run holds none while it waits
    await d.post_alerts(RESOLVED)
    done = await run_of(d, "2211ebba9d7bd2f0", "succeeded")
    assert [s["outcome"] for s in done["steps"]] == ["done", "done", "done"]
    assert done["steps"][1]["result"]["message"].startswith("the alert resolved at")
    assert done["steps"][0]["attempts"] == 1  # resumed after the wait: the first step did not run again


async def test_alert_not_resolving_in_time_fails_and_escalates(
    start_daemon: StartDaemon,
    fake_slack: FakeSlack,
    fake_pagerduty: FakePagerDuty,
    fake_opsgenie: FakeOpsgenie,
) -> None:
    playbook = copy.deepcopy(WAITS)
    playbook["steps"][1]["with"]["within"] = "300ms"
    d = await start_daemon(
        rules=[{**RULE, "playbook": "restart-and-confirm"}],
        playbooks=[playbook],
        extra=notify_config(fake_slack, fake_pagerduty, fake_opsgenie),
    )
    await d.post_alerts(FIRING)
    failed = await run_of(d, "2211ebba9d7bd2f0", "failed")
    assert "did not resolve within 300ms" in failed["reason"]
    assert [s["outcome"] for s in failed["steps"]] == ["done", "failed", "not_run"]
    await delivered(d, 3)
    assert (await d.daemon.store.escalations(limit=1))[0].trigger == "verification_failed"
    assert "did not fix it" in fake_pagerduty.events[0]["payload"]["summary"]


async def test_secrets_never_reach_logs_or_records(
    start_daemon: StartDaemon,
    fake_slack: FakeSlack,
    fake_pagerduty: FakePagerDuty,
    fake_opsgenie: FakeOpsgenie,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_pagerduty.fail_next(status=400)
    d = await start_daemon(
        rules=[RULE], playbooks=[BROKEN], extra=notify_config(fake_slack, fake_pagerduty, fake_opsgenie)
    )
    await d.post_alerts(FIRING)
    await delivered(d, 2)
    await delivered(d, 1, state="failed")
    records = str(await d.daemon.store.deliveries(limit=10)) + str(await d.runs())
    output = capsys.readouterr()
    for secret in (SLACK_BOT_TOKEN, PAGERDUTY_ROUTING_KEY, OPSGENIE_API_KEY):
        assert secret not in output.out + output.err
        assert secret not in records
