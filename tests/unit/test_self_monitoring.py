"""deploy/alertmanager and deploy/prometheus, checked by the tools that load them: amtool accepts the receiver
snippet merged into a config, promtool accepts the alert rules and passes a test case per alert, and the Grafana
dashboard is well formed. That its queries name only real metrics is tests/integration/test_self_monitoring.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = ROOT / "deploy" / "alertmanager" / "autoremedy-receiver.yaml"
ALERTS = ROOT / "deploy" / "prometheus" / "autoremedy-alerts.yaml"
ALERT_TESTS = Path(__file__).parent / "promtool" / "autoremedy-alerts.test.yaml"
DASHBOARD = ROOT / "deploy" / "prometheus" / "autoremedy-dashboard.json"


def tool(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"{names[0]} not found: `make system-deps` installs prometheus and prometheus-alertmanager")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=60, cwd=cwd)


def merged_config(snippet: dict[str, Any]) -> dict[str, Any]:
    """The snippet merged into the smallest whole Alertmanager config: a default receiver for everything else."""
    return {
        "route": {"receiver": "people", "routes": snippet["route"]["routes"]},
        "receivers": [{"name": "people"}, *snippet["receivers"]],
    }


def amtool_check(config: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return run(tool("amtool"), "check-config", str(path))


def test_the_receiver_snippet_passes_amtool(tmp_path: Path) -> None:
    snippet = yaml.safe_load(SNIPPET.read_text())
    result = amtool_check(merged_config(snippet), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (route,) = snippet["route"]["routes"]
    assert route["continue"] is True  # people's receivers still get every alert
    (receiver,) = snippet["receivers"]
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"].endswith("/api/v1/alerts") and webhook["send_resolved"] is True
    authorization = webhook["http_config"]["authorization"]
    assert authorization["type"] == "Bearer" and "credentials_file" in authorization
    assert "credentials" not in authorization  # the token is never written into the config


def test_amtool_rejects_a_broken_snippet(tmp_path: Path) -> None:
    snippet = yaml.safe_load(SNIPPET.read_text())
    authorization = snippet["receivers"][0]["webhook_configs"][0]["http_config"]["authorization"]
    authorization["credentials"] = "inline-too"  # Alertmanager allows one of credentials, credentials_file
    result = amtool_check(merged_config(snippet), tmp_path)
    assert result.returncode != 0
    assert "credentials" in result.stdout + result.stderr


def test_the_alert_rules_pass_promtool() -> None:
    result = run(tool("promtool"), "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_promtool_test_and_they_pass() -> None:
    alerts = {rule["alert"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]}
    assert alerts >= {
        "AutoremedyDown",
        "AutoremedyEscalationsFailing",
        "AutoremedyCircuitBreakerOpen",
        "AutoremedyQueueBackingUp",
        "AutoremedyRunsFailing",
    }
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    firing = {check["alertname"] for case in cases for check in case["alert_rule_test"] if check.get("exp_alerts")}
    assert firing == alerts
    result = run(tool("promtool"), "test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_described_for_people() -> None:
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_the_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    titles = " ".join(p["title"].lower() for p in panels)
    for needed in ("runs by outcome", "guardrail blocks", "ack latency", "queue depth"):
        assert needed in titles
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
    occupied: set[tuple[int, int]] = set()
    for panel in panels:  # no two panels on the same cell of Grafana's 24-column grid
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        cells = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, panel["title"]
        occupied |= cells
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["job"]["type"] == "query"
