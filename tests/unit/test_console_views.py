"""The console's pure parts: filters of the runs page, link and time rendering, cooldowns and budgets per target,
and the Server-Sent Events framing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from multidict import MultiDict, MultiDictProxy
from pydantic import ValidationError

from autoremedy.config.settings import UiSettings
from autoremedy.console.guard import text_field
from autoremedy.console.live import event
from autoremedy.console.render import link_target, readable_times, render
from autoremedy.console.views import BadFilter, RunFilter, run_filter, target_limits
from autoremedy.models.rules import Rule
from autoremedy.models.runs import Run, RunStatus

NOW = datetime(2026, 12, 6, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "link"),
    [
        ("https://grafana.example/d/1", True),
        ("http://10.0.0.1:9090/graph", True),
        ("javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        ("data:text/html,<script>", False),
        ("//evil.example/x", False),
        ("https://", False),
        ("http://[::1", False),
        ("", False),
    ],
)
def test_only_http_urls_with_a_host_become_links(url: str, link: bool) -> None:
    assert (link_target(url) == url) is link


def test_times_in_sentences_are_readable() -> None:
    text = "cooldown of 5m after the run at 2026-12-06T14:00:00+00:00, until 2026-12-06T14:05:00.123456Z"
    assert readable_times(text) == (
        "cooldown of 5m after the run at 2026-12-06 14:00:00 UTC, until 2026-12-06 14:05:00 UTC"
    )


def test_run_filters() -> None:
    assert run_filter({}) == RunFilter()
    chosen = run_filter({"status": "failed", "rule": " restart ", "target": ""})
    assert chosen == RunFilter(RunStatus.FAILED, "restart", None)
    assert chosen.query() == {"status": "failed", "rule": "restart"}
    with pytest.raises(BadFilter, match="status must be one of"):
        run_filter({"status": "exploded"})


def counted(rule: str, target: str, minutes_ago: int) -> Run:
    return Run(
        id=f"{rule}-{target}-{minutes_ago}",
        status=RunStatus.SUCCEEDED,
        reason="ok",
        rule=rule,
        playbook="p",
        target=target,
        fingerprint="f",
        event_id=1,
        alert_status="firing",
        dry_run=False,
        created_at=NOW - timedelta(minutes=minutes_ago),
    )


def test_cooldowns_and_budgets_in_force_per_target() -> None:
    rules = {
        "restart": Rule.model_validate({"name": "restart", "playbook": "p", "cooldown": "10m", "budgets": ["3/1h"]}),
        "scale": Rule.model_validate({"name": "scale", "playbook": "p", "cooldown": "5m"}),
    }
    runs = [
        counted("restart", "web", 2),
        counted("restart", "web", 30),
        counted("restart", "api", 50),
        counted("scale", "web", 7),  # its cooldown is over
        counted("gone", "web", 1),  # no such rule any more
    ]
    limits = {(limit.rule, limit.target): limit for limit in target_limits(rules, runs, NOW)}
    assert set(limits) == {("restart", "api"), ("restart", "web")}
    web = limits[("restart", "web")]
    assert web.cooldown_until == NOW + timedelta(minutes=8)
    assert [(use.used, use.max, use.per, use.exhausted) for use in web.budgets] == [(2, 3, "1h", False)]
    assert limits[("restart", "api")].cooldown_until is None  # only its budget holds


def test_an_sse_message_prefixes_every_line() -> None:
    assert event("runs", "<tr>\n<td>x</td>\n</tr>") == b"event: runs\ndata: <tr>\ndata: <td>x</td>\ndata: </tr>\n\n"
    assert event("runs", "") == b"event: runs\ndata: \n\n"


def test_templates_escape_what_alerts_carry() -> None:
    html = render("error.html", title="<b>t</b>", message="<script>x</script>", signed_in=None)
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "&lt;b&gt;t&lt;/b&gt;" in html


def test_ui_settings() -> None:
    assert UiSettings() == UiSettings(enabled=True, secure_cookies=False, session_ttl=timedelta(hours=12))
    assert UiSettings.model_validate({"session_ttl": "30m"}).session_ttl == timedelta(minutes=30)
    with pytest.raises(ValidationError, match="session_ttl must be longer than zero"):
        UiSettings.model_validate({"session_ttl": "0s"})
    with pytest.raises(ValidationError, match="Extra inputs"):
        UiSettings.model_validate({"enable": False})


def test_form_fields_lose_control_characters_and_are_bounded() -> None:
    form = MultiDictProxy(MultiDict({"reason": " looks\x00 fine\r\nreally \x1b[31m ", "file": b"bytes"}))
    assert text_field(form, "reason", limit=100) == "looks  fine  really  [31m"
    assert text_field(form, "reason", limit=5) == "looks"
    assert text_field(form, "file", limit=10) == "" and text_field(form, "missing", limit=10) == ""
