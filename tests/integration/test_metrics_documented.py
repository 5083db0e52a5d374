"""docs/architecture.md's metrics table and a running daemon's /metrics name the same metrics, with the same types
and labels: a metric added without a row, or a row for a metric that no longer exists, fails here."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.inprocess import DEMO_RULE, LOG_PLAYBOOK, StartDaemon, fixture_payload
from tests.support.procs import wait_for

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
ROW = re.compile(r"^\| `(?P<name>autoremedy_[a-z_]+)` \| (?P<type>counter|gauge|histogram) \|(?P<labels>[^|]*)\|")


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    """Metric name -> (type, label names), from the rows of the "## Metrics" section's table."""
    section = ARCHITECTURE.read_text().split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, frozenset[str]]] = {}
    for line in section.splitlines():
        found = ROW.match(line)
        if found:
            assert found["name"] not in rows, f"{found['name']} has two rows"
            labels = frozenset(re.findall(r"`([a-z_]+)`", found["labels"]))
            rows[found["name"]] = (found["type"], labels)
    return rows


def exposed(page: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Metric name -> (type, label names seen on its samples), autoremedy's own metrics only. The parser names a
    counter's family without `_total`; the name documented (and queried) is the sample's."""
    metrics: dict[str, tuple[str, frozenset[str]]] = {}
    for family in text_string_to_metric_families(page):
        if family.name.startswith("autoremedy_"):
            name = family.name + ("_total" if family.type == "counter" else "")
            labels = {label for sample in family.samples for label in sample.labels if label != "le"}
            metrics[name] = (family.type, frozenset(labels))
    # prometheus_client adds a `<name>_created` gauge (when the series started) to each counter and histogram.
    created = {f"{name.removesuffix('_total')}_created" for name, (kind, _) in metrics.items() if kind != "gauge"}
    return {name: metric for name, metric in metrics.items() if name not in created}


async def test_every_metric_on_metrics_is_documented_and_every_documented_one_exists(
    start_daemon: StartDaemon,
) -> None:
    daemon = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK])
    assert (await daemon.post_alerts(fixture_payload("firing.json"))).status == 200

    async def succeeded() -> bool:
        return [run["status"] for run in await daemon.runs()] == ["succeeded"]

    await wait_for(succeeded, timeout=20, message="the alert's run never succeeded")
    async with daemon.http.get(f"{daemon.url}/metrics", headers=daemon.headers) as response:
        assert response.status == 200
        page = await response.text()
    on_metrics, in_docs = exposed(page), documented()

    assert sorted(set(on_metrics) - set(in_docs)) == [], "on /metrics but not in docs/architecture.md"
    assert sorted(set(in_docs) - set(on_metrics)) == [], "in docs/architecture.md but not on /metrics"
    for name, (kind, labels) in on_metrics.items():
        doc_kind, doc_labels = in_docs[name]
        assert kind == doc_kind, name
        # A labelled metric shows its labels once it has a sample; those it shows must be the documented ones.
        assert not labels or labels == doc_labels, (name, labels, doc_labels)
    assert any(labels for _, labels in on_metrics.values()), "no labelled sample: the label check checked nothing"
