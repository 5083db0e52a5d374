"""The whole loop with real parts: a metric flips, Prometheus fires, Alertmanager delivers to autoremedy (bearer
auth), the rule's playbook calls http.request against a local receiver with the templated body, and the run is
`succeeded` in the API; the resolved notification is stored and acted on too.

GaugeExporter -> Prometheus -> Alertmanager -> autoremedy (process) -> RecordingReceiver
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.daemon import TOKEN, DaemonProcess, DaemonProcesses, write_daemon_config
from tests.support.procs import wait_for
from tests.support.prometheus import PromStackFactory, demo_down_rules
from tests.support.receiver import GaugeExporter, RecordingReceiver

DEADLINE_S = 30.0
LABELS = {"namespace": "shop", "app": "checkout"}
PROMETHEUS_RULES = demo_down_rules()


def playbook(hook_url: str) -> dict[str, Any]:
    return {
        "name": "page-owner",
        "target": "app/{{ alert.labels.namespace }}/{{ alert.labels.app }}",
        "steps": [
            {
                "name": "notify",
                "action": "http.request",
                "retries": 2,
                "with": {
                    "url": f"{hook_url}/hooks/{{{{ alert.labels.namespace }}}}",
                    "json": {
                        "text": "{{ alert.annotations.summary }} ({{ alert.status }})",
                        "app": "{{ alert.labels.app }}",
                        "fingerprint": "{{ alert.fingerprint }}",
                    },
                },
            }
        ],
    }


RULE = {
    "name": "demo-down",
    "matchers": ["alertname=DemoAppDown", "severity=~crit.*"],
    "playbook": "page-owner",
    "on": "both",
}


async def finished_runs(http: aiohttp.ClientSession, daemon: DaemonProcess, count: int) -> list[dict[str, Any]] | None:
    runs = await daemon.runs(http)
    return runs if len(runs) >= count and all(r["finished_at"] for r in runs) else None


@pytest.mark.e2e
async def test_metric_flip_to_remediation_and_back(
    tmp_path: Path,
    receiver: RecordingReceiver,
    gauge_exporter: GaugeExporter,
    prom_stack: PromStackFactory,
    daemon_processes: DaemonProcesses,
) -> None:
    config = write_daemon_config(tmp_path / "autoremedy", rules=[RULE], playbooks=[playbook(receiver.url)])
    daemon = await daemon_processes.start(config)
    gauge_exporter.set("demo_healthy", 1, labels=LABELS)
    await prom_stack(
        webhook_url=f"{daemon.url}/api/v1/alerts",
        rules_yaml=PROMETHEUS_RULES,
        scrape_targets=[gauge_exporter.host_port],
        bearer_token=TOKEN,
    )

    gauge_exporter.set("demo_healthy", 0, labels=LABELS)
    (firing,) = await receiver.wait_for_requests(1, path="/hooks/shop", deadline_s=DEADLINE_S)
    assert firing.json["text"] == "checkout unhealthy (firing)"
    assert firing.json["app"] == "checkout"

    async with aiohttp.ClientSession() as http:
        (run,) = await wait_for(lambda: finished_runs(http, daemon, 1), timeout=DEADLINE_S, message="run finished")
        assert (run["status"], run["target"], run["alert_status"]) == ("succeeded", "app/shop/checkout", "firing")
        assert run["fingerprint"] == firing.json["fingerprint"]

        gauge_exporter.set("demo_healthy", 1, labels=LABELS)
        requests = await receiver.wait_for_requests(2, path="/hooks/shop", deadline_s=DEADLINE_S)
        assert requests[1].json["text"] == "checkout unhealthy (resolved)"
        runs = await wait_for(lambda: finished_runs(http, daemon, 2), timeout=DEADLINE_S, message="resolved run")
    assert [r["alert_status"] for r in runs] == ["resolved", "firing"]
    assert {r["status"] for r in runs} == {"succeeded"}
    events = daemon.query_db("SELECT status, fingerprint, state FROM events ORDER BY id")
    assert events == [("firing", run["fingerprint"], "done"), ("resolved", run["fingerprint"], "done")]
