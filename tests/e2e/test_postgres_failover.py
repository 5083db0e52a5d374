"""End to end: real Prometheus and Alertmanager fire PostgresPrimaryDown; autoremedy (a process) runs the shipped
`failover-postgres` playbook against a real PostgreSQL primary and streaming replica and the fake Kubernetes API.

GaugeExporter -> Prometheus -> Alertmanager -> autoremedy (process) -> PostgreSQL 15 (asyncpg) + FakeKubeApiServer

With the primary stopped, the replica is promoted and takes writes, the primary Service selects the replica's pod,
and the run succeeds. With the primary still up, the run fails with the split-brain refusal and nothing changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.support.daemon import TOKEN, DaemonProcess, DaemonProcesses, write_daemon_config
from tests.support.fakekube import FakeKubeApiServer
from tests.support.fakekube.manifests import NS
from tests.support.postgres import PostgresPair
from tests.support.procs import wait_for
from tests.support.prometheus import PromStackFactory
from tests.support.receiver import GaugeExporter

REPO = Path(__file__).resolve().parents[2]
DB = "orders"
RULES = """
groups:
  - name: databases
    rules:
      - alert: PostgresPrimaryDown
        expr: pg_up{role="primary"} == 0
        for: 0s
        labels:
          severity: critical
        annotations:
          summary: "primary of {{ $labels.database }} is down"
"""
LABELS = {"role": "primary", "database": DB, "namespace": NS}
OLD_SELECTOR = {"app": DB, "statefulset.kubernetes.io/pod-name": f"{DB}-0"}
NEW_SELECTOR = {"app": DB, "statefulset.kubernetes.io/pod-name": f"{DB}-1"}


def shipped_rule_and_playbook() -> tuple[dict[str, Any], dict[str, Any]]:
    """The repository's own rule and playbook, so the examples are what is tested. The rule's `delay: 1m` (which
    spares a primary that comes back quickly) is dropped: the test would only wait a minute longer."""
    rules = yaml.safe_load((REPO / "rules" / "40-security-and-db.yaml").read_text())["rules"]
    [rule] = [r for r in rules if r["name"] == "postgres-primary-failover"]
    playbook = yaml.safe_load((REPO / "playbooks" / "failover-postgres.yaml").read_text())
    return {k: v for k, v in rule.items() if k != "delay"}, playbook


def primary_service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"{DB}-primary", "namespace": NS},
        "spec": {"selector": dict(OLD_SELECTOR), "ports": [{"port": 5432}]},
    }


@dataclass
class Failover:
    pair: PostgresPair
    cluster: FakeKubeApiServer
    daemon: DaemonProcess
    gauges: GaugeExporter

    async def primary_down_alert(self) -> dict[str, Any]:
        """Flip the gauge; return the finished run with its steps."""
        self.gauges.set("pg_up", 0, labels=LABELS)
        async with aiohttp.ClientSession() as http:

            async def finished() -> dict[str, Any] | None:
                runs = await self.daemon.runs(http)
                return runs[0] if runs and runs[0]["finished_at"] else None

            run = await wait_for(finished, timeout=45, message="the failover run finishes")
            async with http.get(f"{self.daemon.url}/api/v1/runs/{run['id']}", headers=self.daemon.headers) as answer:
                full: dict[str, Any] = await answer.json()
        return full

    def selector(self) -> dict[str, str]:
        service = self.cluster.get("Service", NS, f"{DB}-primary")
        assert service is not None
        selector: dict[str, str] = service["spec"]["selector"]
        return selector


@pytest.fixture
async def failover(
    tmp_path: Path,
    postgres_pair: PostgresPair,
    gauge_exporter: GaugeExporter,
    prom_stack: PromStackFactory,
    daemon_processes: DaemonProcesses,
) -> AsyncIterator[Failover]:
    primary, replica = postgres_pair
    await primary.fetchval("CREATE TABLE orders (id serial PRIMARY KEY, note text)")
    await primary.fetchval("INSERT INTO orders (note) VALUES ('before failover')")
    await replica.wait_caught_up(primary)
    async with FakeKubeApiServer() as cluster:
        cluster.add(primary_service())
        rule, playbook = shipped_rule_and_playbook()
        config = write_daemon_config(
            tmp_path / "autoremedy",
            rules=[rule],
            playbooks=[playbook],
            kubernetes={"kubeconfig": str(cluster.write_kubeconfig(tmp_path / "kubeconfig"))},
            databases={DB: {"primary": primary.dsn(), "replica": replica.dsn()}},
        )
        daemon = await daemon_processes.start(config)
        gauge_exporter.set("pg_up", 1, labels=LABELS)
        await prom_stack(
            webhook_url=f"{daemon.url}/api/v1/alerts",
            rules_yaml=RULES,
            scrape_targets=[gauge_exporter.host_port],
            bearer_token=TOKEN,
        )
        yield Failover(postgres_pair, cluster, daemon, gauge_exporter)


@pytest.mark.e2e
async def test_primary_down_fails_over_to_the_replica(failover: Failover) -> None:
    failover.pair.primary.stop("fast")
    run = await failover.primary_down_alert()
    assert (run["status"], run["target"], run["reason"]) == ("succeeded", f"database/{DB}", "all steps done"), run
    promote, repoint, verify = run["steps"]
    assert [s["outcome"] for s in run["steps"]] == ["done", "done", "done"]
    assert promote["result"]["message"].startswith(f"promoted the replica of {DB!r} (")
    assert promote["result"]["old_primary"] == "unreachable"
    assert repoint["result"]["after"] == NEW_SELECTOR
    assert verify["result"]["message"].startswith(f"the replica of {DB!r} commits writes (")
    assert failover.selector() == NEW_SELECTOR
    replica = failover.pair.replica
    assert not await replica.is_in_recovery()
    await replica.fetchval("INSERT INTO orders (note) VALUES ('after failover')")
    assert await replica.fetchval("SELECT count(*) FROM orders") == 2


@pytest.mark.e2e
async def test_primary_still_up_is_refused_as_split_brain(failover: Failover) -> None:
    run = await failover.primary_down_alert()
    assert run["status"] == "failed", run
    assert run["reason"].startswith(
        "step promote-replica failed: refused: the old primary still accepts writes; promoting the replica would "
        "make two primaries (split brain)"
    )
    assert run["steps"][0]["outcome"] == "failed"
    assert all(s["outcome"] != "done" for s in run["steps"][1:])
    assert failover.selector() == OLD_SELECTOR
    assert await failover.pair.replica.is_in_recovery()
    assert not await failover.pair.primary.is_in_recovery()
