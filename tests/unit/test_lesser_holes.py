"""Issue 12 point 7 and the redaction of outgoing messages: Slack links only to web URLs, namespaces kube-* and the
daemon's own denied by default, every escalation and log line redacted."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from tests.unit.test_planning import _alert, _playbook, _rule

from autoremedy.actions.kubernetes import guard
from autoremedy.config.settings import NamespacePolicy
from autoremedy.decide.escalation import About, notification
from autoremedy.decide.planning import DRY_RUN_LABEL, Ruleset, decide
from autoremedy.decide.redact import REDACTED
from autoremedy.models.notifications import Notification, NotificationKind
from autoremedy.notify.render import is_web_url
from autoremedy.notify.slack import trigger_blocks
from autoremedy.observability import configure_logging, get_logger

# -- Slack links ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "web"),
    [
        ("https://runbooks.example.com/web", True),
        ("http://prometheus:9090/graph?g0.expr=up", True),
        ("HTTPS://example.com/", True),
        ("javascript:alert(1)", False),
        ("slack://channel?team=T1&id=C1", False),
        ("file:///etc/passwd", False),
        ("mailto:ops@example.com", False),
        ("https:///no-host", False),
        ("https://example.com/a b", False),
        ("", False),
    ],
)
def test_is_web_url(url: str, web: bool) -> None:
    assert is_web_url(url) is web


def _links(generator_url: str, runbook_url: str) -> list[str]:
    note = Notification(
        kind=NotificationKind.TRIGGER,
        dedup_key="k",
        title="t",
        summary="s",
        severity="error",
        trigger="run_failed",
        fingerprint="f",
        rule="r",
        generator_url=generator_url,
        runbook_url=runbook_url,
    )
    contexts = [b for b in trigger_blocks(note) if b["type"] == "context"]
    return [element["text"] for block in contexts for element in block["elements"] if "|" in element["text"]]


def test_slack_links_only_to_web_urls() -> None:
    assert _links("javascript:alert(document.cookie)", "slack://open") == []
    assert _links("http://prom/graph", "https://runbooks/web") == [
        "<http://prom/graph|Prometheus>",
        "<https://runbooks/web|Runbook>",
    ]


# -- escalations are redacted -----------------------------------------------------------------------------------


def test_every_text_of_an_escalation_is_redacted() -> None:
    about = About(
        kind="trigger",
        trigger="run_failed",
        detail="step call failed: POST http://u:pw@hooks.example.com/x?token=t1 answered 500",
        fingerprint="f1",
        rule="r",
        run=None,
        labels={"alertname": "A", "api_token": "label-token", "url": "https://h/?k=v"},
        annotations={"summary": "see https://u:pw@wiki/x?session=s1", "runbook_url": "https://wiki/r?token=t2"},
        generator_url="http://prom:9090/graph?g0.expr=up%7Bjob%3D%22x%22%7D",
        alert_status="firing",
    )
    note = notification(about)
    text = json.dumps([note.summary, note.labels, note.annotations, note.runbook_url])
    for secret in ("u:pw", "t1", "label-token", "k=v", "s1", "t2"):
        assert secret not in text, secret
    assert note.labels["api_token"] == REDACTED
    assert note.generator_url == "http://prom:9090/graph?g0.expr=up%7Bjob%3D%22x%22%7D"  # the link keeps its query


# -- log lines are redacted -------------------------------------------------------------------------------------


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    configure_logging(level="debug", fmt="json")
    buffer = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buffer))
    try:
        yield buffer
    finally:
        structlog.reset_defaults()


def test_log_lines_go_through_the_redaction(log_buffer: io.StringIO) -> None:
    log = get_logger("test")
    log.info("calling POST http://u:pw@h/x?token=tok1", password="pw-value", headers={"X-Session": "sess1"})
    try:
        raise RuntimeError("connect to http://admin:hunter2@db failed")
    except RuntimeError:
        log.exception("failed")
    lines = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    assert lines[0]["event"] == f"calling POST http://{REDACTED}@h/x?token={REDACTED}"
    assert lines[0]["password"] == REDACTED and lines[0]["headers"] == {"X-Session": REDACTED}
    assert "hunter2" not in lines[1]["exception"] and "RuntimeError" in lines[1]["exception"]


# -- namespaces -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "denied"),
    [
        ("kube-system", True),
        ("kube-public", True),
        ("kube-node-lease", True),
        ("autoremedy", True),
        ("shop", False),
        ("kubernetes-dashboard", False),
        ("autoremedy\n", True),  # `$` matches before a final newline: the own-namespace check compared unequal
        ("Kube-System", True),
    ],
)
def test_default_namespace_policy(namespace: str, denied: bool) -> None:
    policy = NamespacePolicy(own_namespace="autoremedy")
    problem = guard.target_problem(namespace, {"name": "web"}, policy)
    assert (problem is not None) is denied, problem


def test_own_namespace_is_read_from_the_service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "namespace"
    file.write_text("remediation\n")
    monkeypatch.setattr(guard, "SERVICE_ACCOUNT_NAMESPACE", file)
    guard._service_account_namespace.cache_clear()
    try:
        problem = guard.target_problem("remediation", {"name": "web"}, NamespacePolicy())
        assert problem is not None and "autoremedy's own" in problem
        assert guard.target_problem("remediation", {"name": "web"}, NamespacePolicy(own_namespace="")) is None
    finally:
        guard._service_account_namespace.cache_clear()


# -- the dry-run label only makes a run safer --------------------------------------------------------------------


@pytest.mark.parametrize("rule_dry_run", [None, False, True])
@pytest.mark.parametrize("label", ["true", "false", "no", "0", ""])
@pytest.mark.parametrize("global_dry_run", [False, True])
def test_the_dry_run_label_can_only_turn_a_dry_run_on(
    rule_dry_run: bool | None, label: str, global_dry_run: bool
) -> None:
    fields = {} if rule_dry_run is None else {"dry_run": rule_dry_run}
    ruleset = Ruleset(rules=(_rule("r", **fields),), playbooks={"pb": _playbook()})
    without = decide(ruleset, _alert(), dry_run=global_dry_run)
    with_label = decide(ruleset, _alert(**{DRY_RUN_LABEL: label}), dry_run=global_dry_run)
    assert with_label[0].dry_run == (without[0].dry_run or label == "true")


@pytest.mark.parametrize("name", ["web\n", "web\n\n", "a.b\n"])
def test_a_trailing_newline_is_not_a_kubernetes_name(name: str) -> None:
    assert guard.target_problem("shop", {"name": name}, NamespacePolicy(own_namespace="autoremedy")) is not None
