"""End to end: real Prometheus and Alertmanager fire a crash-loop alert; autoremedy restarts the Deployment in the
(fake) cluster through kubernetes-asyncio and waits for the rollout; the run succeeds.

GaugeExporter -> Prometheus -> Alertmanager -> autoremedy (process) -> FakeKubeApiServer
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.daemon import TOKEN, DaemonProcesses, write_daemon_config
from tests.support.fakekube import REVISION, FakeKubeApiServer
from tests.support.fakekube.manifests import NS, deployment
from tests.support.procs import wait_for
from tests.support.prometheus import PromStackFactory
from tests.support.receiver import GaugeExporter

RULES = """
groups:
  - name: kube
    rules:
      - alert: KubePodCrashLooping
        expr: kube_pod_container_status_restarts_increase > 2
        for: 0s
        labels:
          severity: warning
        annotations:
          summary: "{{ $labels.pod }} is crash-looping"
"""
LABELS = {"namespace": NS, "pod": "checkout-7d9c8b5f4-x2k8p", "deployment": "checkout"}
RULE = {
    "name": "crashloop-restart",
    "matchers": ["alertname=KubePodCrashLooping"],
    "playbook": "restart-deployment",
    "params": {"deployment": "{{ alert.labels.deployment }}"},
}
PLAYBOOK = {
    "name": "restart-deployment",
    "target": "deployment/{{ alert.labels.namespace }}/{{ params.deployment }}",
    "steps": [
        {
            "name": "restart",
            "action": "kubernetes.restart",
            "with": {"namespace": "{{ alert.labels.namespace }}", "name": "{{ params.deployment }}"},
        },
        {
            "name": "wait",
            "action": "kubernetes.wait_rollout",
            "timeout": "30s",
            "with": {
                "namespace": "{{ alert.labels.namespace }}",
                "name": "{{ params.deployment }}",
                "interval": "100ms",
            },
        },
    ],
}


@pytest.fixture
async def cluster() -> AsyncIterator[FakeKubeApiServer]:
    async with FakeKubeApiServer() as server:
        yield server


@pytest.mark.e2e
async def test_crash_loop_alert_restarts_the_deployment(
    tmp_path: Path,
    cluster: FakeKubeApiServer,
    gauge_exporter: GaugeExporter,
    prom_stack: PromStackFactory,
    daemon_processes: DaemonProcesses,
) -> None:
    cluster.add(deployment("checkout"))
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    config = write_daemon_config(
        tmp_path / "autoremedy", rules=[RULE], playbooks=[PLAYBOOK], kubernetes={"kubeconfig": str(kubeconfig)}
    )
    daemon = await daemon_processes.start(config)
    gauge_exporter.set("kube_pod_container_status_restarts_increase", 0, labels=LABELS)
    await prom_stack(
        webhook_url=f"{daemon.url}/api/v1/alerts",
        rules_yaml=RULES,
        scrape_targets=[gauge_exporter.host_port],
        bearer_token=TOKEN,
    )

    gauge_exporter.set("kube_pod_container_status_restarts_increase", 5, labels=LABELS)
    async with aiohttp.ClientSession() as http:

        async def finished() -> dict[str, Any] | None:
            runs = await daemon.runs(http)
            return runs[0] if runs and runs[0]["finished_at"] else None

        run = await wait_for(finished, timeout=45, message="the remediation run finishes")
        async with http.get(f"{daemon.url}/api/v1/runs/{run['id']}", headers=daemon.headers) as response:
            full = await response.json()
    assert (run["status"], run["target"]) == ("succeeded", "deployment/prod/checkout"), full
    assert [s["outcome"] for s in full["steps"]] == ["done", "done"]
    checkout = cluster.get("Deployment", NS, "checkout")
    assert checkout is not None
    template_annotations = checkout["spec"]["template"]["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in template_annotations
    assert checkout["metadata"]["annotations"][REVISION] == "2"
    assert "updated and available" in full["steps"][1]["result"]["message"]
