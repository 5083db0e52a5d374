"""End to end: a remediation that does not fix the metric fails its PromQL verification and escalates once to
Slack and PagerDuty; when the metric recovers, Alertmanager's resolved webhook resolves the PagerDuty incident and
updates the Slack thread; a redelivered webhook escalates nothing again.

GaugeExporter -> Prometheus -> Alertmanager -> autoremedy (process) -> fake Slack, fake PagerDuty
                                   ^-------------- prometheus.verify ----------'
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from tests.support.daemon import TOKEN, DaemonProcess, DaemonProcesses, write_daemon_config
from tests.support.inprocess import fixture_payload
from tests.support.pagerduty import PAGERDUTY_ROUTING_KEY, FakePagerDuty
from tests.support.ports import free_port
from tests.support.procs import wait_for
from tests.support.prometheus import PromStackFactory, demo_down_rules
from tests.support.receiver import GaugeExporter
from tests.support.slack import SLACK_BOT_TOKEN, FakeSlack

LABELS = {"namespace": "shop", "app": "checkout"}
RULES = demo_down_rules(runbook_url="https://runbooks.example/checkout")
PLAYBOOK = {
    "name": "restart-and-verify",
    "target": "app/{{ alert.labels.namespace }}/{{ alert.labels.app }}",
    "steps": [
        {"name": "pretend-restart", "action": "log", "with": {"message": "restarting {{ alert.labels.app }}"}},
        {
            "name": "verify",
            "action": "prometheus.verify",
            "with": {
                "query": 'demo_healthy{app="{{ alert.labels.app }}"} == 1',
                "within": "1500ms",
                "interval": "200ms",
            },
        },
    ],
}
RULE = {"name": "checkout-down", "matchers": ["alertname=DemoAppDown"], "playbook": "restart-and-verify"}


async def post_again(daemon: DaemonProcess, body: dict[str, object]) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{daemon.url}/api/v1/alerts", json=body, headers=daemon.headers) as response,
    ):
        return response.status


@pytest.mark.e2e
async def test_failed_verification_escalates_and_resolves(
    tmp_path: Path,
    gauge_exporter: GaugeExporter,
    prom_stack: PromStackFactory,
    daemon_processes: DaemonProcesses,
    fake_slack: FakeSlack,
    fake_pagerduty: FakePagerDuty,
) -> None:
    listen = f"127.0.0.1:{free_port()}"
    gauge_exporter.set("demo_healthy", 1, labels=LABELS)
    stack = await prom_stack(
        webhook_url=f"http://{listen}/api/v1/alerts",
        rules_yaml=RULES,
        scrape_targets=[gauge_exporter.host_port],
        bearer_token=TOKEN,
    )
    config = write_daemon_config(
        tmp_path / "autoremedy",
        rules=[RULE],
        playbooks=[PLAYBOOK],
        server={"listen": listen},
        prometheus={"url": stack.prometheus_url},
        notify={
            "slack": {"token": SLACK_BOT_TOKEN, "channel": "C0ONCALL", "base_url": fake_slack.api_url},
            "pagerduty": {"routing_key": PAGERDUTY_ROUTING_KEY, "url": fake_pagerduty.url},
        },
        escalation={"default": ["slack"], "by_severity": {"critical": ["slack", "pagerduty"]}},
    )
    daemon = await daemon_processes.start(config)

    gauge_exporter.set("demo_healthy", 0, labels=LABELS)  # down, and the "restart" will not fix it
    await wait_for(
        lambda: fake_pagerduty.incidents and fake_slack.top_level(),
        timeout=45,
        message="the failed verification is escalated",
    )
    (incident,) = fake_pagerduty.incidents
    (message,) = fake_slack.top_level()
    assert "did not fix it" in message.text and "checkout" in message.text
    assert "runbooks.example/checkout" in json.dumps(message.blocks)
    async with aiohttp.ClientSession() as http:
        (run,) = await daemon.runs(http)
    assert run["status"] == "failed" and "verification failed" in run["reason"]

    firing = fixture_payload("firing.json")  # a redelivery of the same alert (Alertmanager HA, retries)
    firing["alerts"][0].update(
        labels=run_labels(daemon), fingerprint=run["fingerprint"], startsAt=first_starts_at(daemon)
    )
    assert await post_again(daemon, firing) == 200
    ((deliveries,),) = daemon.query_db("SELECT deliveries FROM events WHERE status = 'firing'")
    assert deliveries >= 2  # the redelivery arrived, and was counted, not acted on

    gauge_exporter.set("demo_healthy", 1, labels=LABELS)  # recovers by itself: Alertmanager sends resolved
    await wait_for(
        lambda: not fake_pagerduty.open_incidents and fake_slack.thread(message.ts),
        timeout=45,
        message="the incident is resolved and the thread updated",
    )
    assert incident.trigger_count == 1
    assert len(fake_slack.top_level()) == 1
    (reply,) = fake_slack.thread(message.ts)
    assert "resolved" in reply.text.lower()


def run_labels(daemon: DaemonProcess) -> dict[str, str]:
    ((labels,),) = [row for row in daemon.query_db("SELECT labels FROM events WHERE status = 'firing'")]
    parsed: dict[str, str] = json.loads(labels)
    return parsed


def first_starts_at(daemon: DaemonProcess) -> str:
    ((starts_at,),) = daemon.query_db("SELECT starts_at FROM events WHERE status = 'firing'")
    return str(starts_at)
