"""The self-monitoring queries read metrics that exist: a real Alertmanager, configured with the receiver snippet
from deploy/alertmanager (bearer token from a credentials file), delivers alerts to an in-process daemon; runs
succeed and fail, the circuit breaker opens, escalations are retried, given up and sent, rules are reloaded. Then
every metric the Grafana dashboard and the Prometheus alert rules name, with the labels they select on, must be on
/metrics of autoremedy (autoremedy_*) or of that Alertmanager (the ack latency it measures), or be Prometheus' own
`up`."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.inprocess import RunningDaemon, StartDaemon
from tests.support.pagerduty import PAGERDUTY_ROUTING_KEY, FakePagerDuty
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess, wait_for
from tests.support.prometheus import _binary

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = ROOT / "deploy" / "alertmanager" / "autoremedy-receiver.yaml"
ALERTS = ROOT / "deploy" / "prometheus" / "autoremedy-alerts.yaml"
DASHBOARD = ROOT / "deploy" / "prometheus" / "autoremedy-dashboard.json"
TOKEN = "alertmanager-webhook-token"
# Added by Prometheus when it scrapes, not by the exporter.
TARGET_LABELS = {"job", "instance"}

# -- PromQL: which series a query selects -----------------------------------------------------------------------

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator, value)


def selectors(expr: str) -> list[Selector]:
    """The vector selectors of a PromQL expression (enough PromQL for our queries: no strings outside braces)."""
    text = re.sub(r"\[[^\]]*\]", "", expr)  # range and subquery windows, with Grafana's $__rate_interval
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = []
    # An identifier right after a digit is a unit (`offset 5m`), not a name.
    name_re = r"(?<![0-9.])[A-Za-z_:][A-Za-z0-9_:]*"
    for match in re.finditer(rf"({name_re})?\s*(\{{[^}}]*\}})|({name_re})(\s*\()?", text):
        name, braces, bare, call = match.groups()
        if braces is not None:
            assert name, f"selector without a metric name in {expr!r}"
            found.append(Selector(name, tuple(_MATCHER.findall(braces))))
        elif bare and not call and bare not in _KEYWORDS:
            found.append(Selector(bare, ()))
    return found


def test_selectors_reads_our_kind_of_promql() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le, action) (rate(a_bucket{job="$job", x=~"y|z"}[$__rate_interval])))'
        ' / on (job) group_left b and absent(up{job="j"} == 1) unless c offset 5m'
    )
    assert selectors(expr) == [
        Selector("a_bucket", (("job", "=", "$job"), ("x", "=~", "y|z"))),
        Selector("b", ()),
        Selector("up", (("job", "=", "j"),)),
        Selector("c", ()),
    ]


def queries() -> Iterator[tuple[str, str]]:
    """(where, expr) of every dashboard panel query and every alert rule."""
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield f"dashboard panel {panel['title']!r}", target["expr"]
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "job")
    yield "dashboard variable job", re.sub(r"label_values\((\w+),\s*\w+\)", r"\1", variable["definition"])
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            yield f"alert {rule['alert']}", rule["expr"]


# -- the system under test ----------------------------------------------------------------------------------------

NOTE = {
    "name": "note",
    "target": "app/{{ alert.labels.app }}",
    "steps": [{"action": "log", "with": {"message": "{{ alert.labels.alertname }} {{ alert.status }}"}}],
}
BROKEN = {
    "name": "broken-fix",
    "target": "app/{{ alert.labels.app }}",
    "steps": [{"action": "http.request", "timeout": "1s", "with": {"url": f"http://127.0.0.1:{free_port()}/fix"}}],
}
RULES = [
    {"name": "works", "matchers": ["alertname=SelfTestWorks"], "playbook": "note"},
    {"name": "fails", "matchers": ["alertname=SelfTestFails"], "playbook": "broken-fix"},
]


@asynccontextmanager
async def alertmanager_for(daemon: RunningDaemon, tmp_path: Path) -> AsyncIterator[ManagedProcess]:
    """Alertmanager with the snippet merged into a config, pointed at the daemon; only timings are shortened."""
    snippet = yaml.safe_load(SNIPPET.read_text())
    (route,) = snippet["route"]["routes"]
    route.update(group_wait="0s", group_interval="100ms")
    (receiver,) = snippet["receivers"]
    (webhook,) = receiver["webhook_configs"]
    webhook["url"] = f"{daemon.url}/api/v1/alerts"
    (tmp_path / "token").write_text(TOKEN + "\n")  # as a mounted Secret: a trailing newline is usual
    webhook["http_config"]["authorization"]["credentials_file"] = str(tmp_path / "token")
    config = {
        "route": {"receiver": "people", "routes": [route]},
        "receivers": [{"name": "people"}, receiver],
    }
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    proc = ManagedProcess(
        [
            _binary("ALERTMANAGER_BIN", "prometheus-alertmanager", "alertmanager"),
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        log_dir=tmp_path,
        name="alertmanager",
        base_url=f"http://127.0.0.1:{port}",
    ).start()
    try:
        await proc.wait_http_ok(f"{proc.base_url}/-/ready", 30)
        yield proc
    finally:
        proc.stop()


Exposed = dict[str, list[tuple[dict[str, str], float]]]


def samples(text: str) -> Exposed:
    """Sample name -> its label sets and values, from a /metrics page."""
    found: Exposed = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


async def page(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as response:
        assert response.status == 200
        return await response.text()


def total(exposed: Exposed, name: str, **labels: str) -> float:
    return sum(value for found, value in exposed.get(name, []) if labels.items() <= found.items())


async def test_dashboard_and_alerts_read_metrics_that_exist(
    start_daemon: StartDaemon, fake_pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    daemon = await start_daemon(
        rules=RULES,
        playbooks=[NOTE, BROKEN],
        extra={
            "server": {"auth": {"bearer_tokens": ["test-token", TOKEN]}},
            "engine": {"poll_interval": "50ms"},
            "guardrails": {"breaker": {"max_runs": 1, "within": "10m", "quiet_period": "1h"}},
            "notify": {"pagerduty": {"routing_key": PAGERDUTY_ROUTING_KEY, "url": fake_pagerduty.url}},
            "escalation": {"default": ["pagerduty"], "retry_initial": "50ms"},
        },
    )
    # The first send fails (retried), the second is refused (given up); later ones are delivered.
    fake_pagerduty.fail_next(500)
    fake_pagerduty.fail_next(400)
    async with alertmanager_for(daemon, tmp_path) as alertmanager, aiohttp.ClientSession() as http:
        # The failing run (an HTTP call) reaches the breaker's max_runs and the next one like it is skipped; the
        # log-only runs succeed whatever the breaker says (they change nothing, so it neither counts nor blocks them).
        for index, name in enumerate(["SelfTestFails", "SelfTestWorks", "SelfTestFails", "SelfTestWorks"]):
            await post_alert(http, alertmanager, name, app=f"app{index}")
            await wait_for(partial(decided, daemon, index + 1), timeout=20, message=f"{index + 1} alerts decided")

        assert await daemon.daemon.reload()  # as SIGHUP does

        async def settled() -> Exposed | None:
            exposed = samples(await page(http, f"{daemon.url}/metrics"))
            wanted = [
                total(exposed, "autoremedy_runs_total", status="succeeded"),
                total(exposed, "autoremedy_runs_total", status="failed"),
                total(exposed, "autoremedy_guardrail_blocks_total", reason="breaker_open"),
                total(exposed, "autoremedy_escalation_failures_total", outcome="retry"),
                total(exposed, "autoremedy_escalation_failures_total", outcome="give_up"),
                total(exposed, "autoremedy_escalations_sent_total", channel="pagerduty"),
            ]
            return exposed if all(wanted) else None

        ours = await wait_for(settled, timeout=30, message="runs, breaker and escalations on /metrics")
        theirs = samples(await page(http, f"{alertmanager.base_url}/metrics"))
    # Alertmanager authenticated with the token from its file: every webhook notification was accepted.
    assert total(theirs, "alertmanager_notifications_total", integration="webhook") >= 4
    assert total(theirs, "alertmanager_notifications_failed_total", integration="webhook") == 0
    assert total(theirs, "alertmanager_notification_latency_seconds_count", integration="webhook") >= 4
    assert_queries_use(ours, theirs)


def assert_queries_use(ours: Exposed, theirs: Exposed) -> None:
    problems = []
    for where, expr in queries():
        for selector in selectors(expr):
            if selector.metric == "up":
                continue  # written by Prometheus for every target
            exposed = theirs if selector.metric.startswith("alertmanager_") else ours
            label_sets = [labels for labels, _ in exposed.get(selector.metric, [])]
            if not label_sets:
                problems.append(f"{where}: {selector.metric} is not exposed")
                continue
            names = set().union(*label_sets) | TARGET_LABELS
            for label, operator, wanted in selector.matchers:
                if label not in names:
                    problems.append(f"{where}: {selector.metric} has no label {label!r}")
                elif (
                    operator == "="
                    and label not in TARGET_LABELS | {"code"}  # any HTTP status the webhook may answer
                    and not any(labels.get(label) == wanted for labels in label_sets)
                ):
                    problems.append(f"{where}: {selector.metric}{{{label}={wanted!r}}} never seen")
    assert problems == []


async def post_alert(http: aiohttp.ClientSession, alertmanager: ManagedProcess, name: str, **labels: str) -> None:
    alert = {
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} for the self-monitoring test"},
        "startsAt": datetime.now(UTC).isoformat(),
    }
    async with http.post(f"{alertmanager.base_url}/api/v2/alerts", json=[alert]) as response:
        assert response.status == 200, await response.text()


async def decided(daemon: RunningDaemon, count: int) -> bool:
    # Every alert makes a run (finished, or skipped by the breaker) once it is decided.
    return len(await daemon.runs(limit="100")) >= count
