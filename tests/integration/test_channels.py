"""The three channel adapters against the SaaS fakes: what each service receives on trigger and resolve, within
its limits; de-duplication and threads; how every kind of answer is classified; and that no secret leaks."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from pydantic import SecretStr

from autoremedy.config.settings import OpsgenieSettings, PagerDutySettings, SlackSettings
from autoremedy.decide.escalation import severity_of
from autoremedy.decide.text import slack_escape_fit
from autoremedy.models.notifications import (
    Notification,
    NotificationKind,
    SendOutcome,
    SendResult,
    Severity,
    StepLine,
    Trigger,
)
from autoremedy.notify.base import Channel
from autoremedy.notify.opsgenie import OpsgenieChannel
from autoremedy.notify.pagerduty import PagerDutyChannel
from autoremedy.notify.render import error_text, fit_key, parse_retry_after
from autoremedy.notify.slack import SlackChannel
from tests.support.opsgenie import OPSGENIE_API_KEY, FakeOpsgenie
from tests.support.pagerduty import PAGERDUTY_ROUTING_KEY, FakePagerDuty
from tests.support.ports import free_port
from tests.support.slack import SLACK_BOT_TOKEN, FakeSlack

CHANNEL_ID = "C0ALERTS"
TIMEOUT = 5.0
SECRETS = (SLACK_BOT_TOKEN, PAGERDUTY_ROUTING_KEY, OPSGENIE_API_KEY)
OTHER_PD_KEY = "fedcba9876543210fedcba9876543210"

LABELS = {
    "alertname": "DemoAppDown",
    "namespace": "shop",
    "app": "checkout",
    "instance": "10.0.0.7:8080",
    "job": "checkout",
    "severity": "critical",
    "query": "rate(x[5m]) < 1 & up > 0",
}
STEPS = (
    StepLine("restart", "kubernetes.restart", "done", "deployment shop/checkout restarted"),
    StepLine("verify", "prometheus.verify", "failed", 'up{job="checkout"} still 0 after 120s'),
    StepLine("notify", "log", "not_run"),
)


def notification(kind: NotificationKind = NotificationKind.TRIGGER, **changes: Any) -> Notification:
    base = Notification(
        kind=kind,
        dedup_key="fp-3f2a9c:restart-on-down",
        title="[autoremedy] run failed: DemoAppDown (shop/checkout)",
        summary="verification failed: <checkout> still down & 0 ready replicas",
        severity=Severity.CRITICAL,
        trigger=Trigger.VERIFICATION_FAILED,
        fingerprint="3f2a9c41d0b7e6aa",
        rule="restart-on-down",
        run_id="run-0193",
        labels=dict(LABELS),
        annotations={"summary": "checkout is down", "description": "no ready pods"},
        generator_url="http://prometheus.test:9090/graph?g0.expr=up%3D%3D0&g0.tab=1",
        runbook_url="https://runbooks.test/checkout-down",
        steps=STEPS,
    )
    return dataclasses.replace(base, **changes)


def resolve(**changes: Any) -> Notification:
    return notification(
        NotificationKind.RESOLVE,
        title="[autoremedy] resolved: DemoAppDown (shop/checkout)",
        summary="the alert resolved",
        trigger="alert_resolved",
        alert_status="resolved",
        steps=(),
        **changes,
    )


@pytest.fixture
async def closing() -> AsyncIterator[Callable[[Channel], Channel]]:
    """Register channels to close at teardown."""
    opened: list[Channel] = []

    def register(channel: Channel) -> Channel:
        opened.append(channel)
        return channel

    yield register
    for channel in opened:
        await channel.close()


def slack(fake: FakeSlack, closing: Callable[[Channel], Channel], **settings: Any) -> SlackChannel:
    values: dict[str, Any] = {"token": SecretStr(fake.token), "channel": CHANNEL_ID, "base_url": fake.api_url}
    channel = SlackChannel(SlackSettings(**(values | settings)), request_timeout=TIMEOUT)
    closing(channel)
    return channel


def pagerduty(fake: FakePagerDuty, closing: Callable[[Channel], Channel], key: str | None = None) -> PagerDutyChannel:
    settings = PagerDutySettings(routing_key=SecretStr(key or fake.routing_key), url=fake.url)
    channel = PagerDutyChannel(settings, request_timeout=TIMEOUT)
    closing(channel)
    return channel


def opsgenie(fake: FakeOpsgenie, closing: Callable[[Channel], Channel], key: str | None = None) -> OpsgenieChannel:
    channel = OpsgenieChannel(
        OpsgenieSettings(api_key=SecretStr(key or fake.api_key), url=fake.url), request_timeout=TIMEOUT
    )
    closing(channel)
    return channel


def texts(blocks: list[dict[str, Any]] | None) -> list[str]:
    """Every text of the blocks, in order (header, section texts, context elements)."""
    found: list[str] = []
    for block in blocks or []:
        if "text" in block:
            found.append(block["text"]["text"])
        found += [element["text"] for element in block.get("elements", [])]
    return found


# --------------------------------------------------------------------------------------------------------
# Slack
# --------------------------------------------------------------------------------------------------------


async def test_slack_trigger_posts_block_kit_message(fake_slack: FakeSlack, closing: Any) -> None:
    channel = slack(fake_slack, closing)
    assert channel.name == "slack"
    result = await channel.send(notification())
    [message] = fake_slack.messages
    assert result == SendResult(SendOutcome.SENT, reference=f"{CHANNEL_ID}:{message.ts}")
    assert message.channel == CHANNEL_ID and message.thread_ts is None
    [request] = fake_slack.requests
    assert request.headers["Authorization"] == f"Bearer {SLACK_BOT_TOKEN}"
    assert request.args["unfurl_links"] is False
    blocks = message.blocks or []
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context", "section", "context"]
    header, summary, labels, links, steps, meta = blocks
    assert header["text"] == {"type": "plain_text", "text": "[autoremedy] run failed: DemoAppDown (shop/checkout)"}
    assert summary["text"] == {
        "type": "mrkdwn",
        "text": "verification failed: &lt;checkout&gt; still down &amp; 0 ready replicas",
    }
    assert labels["text"]["text"].splitlines() == [
        "*Labels*",
        "*alertname*: DemoAppDown",
        "*namespace*: shop",
        "*app*: checkout",
        "*instance*: 10.0.0.7:8080",
        "*job*: checkout",
        "*severity*: critical",
        "*query*: rate(x[5m]) &lt; 1 &amp; up &gt; 0",
    ]
    assert texts([links]) == [
        "<http://prometheus.test:9090/graph?g0.expr=up%3D%3D0&amp;g0.tab=1|Prometheus>",
        "<https://runbooks.test/checkout-down|Runbook>",
    ]
    assert steps["text"]["text"].splitlines() == [
        "*Steps*",
        "✅ restart (kubernetes.restart): done — deployment shop/checkout restarted",
        '❌ verify (prometheus.verify): failed — up{job="checkout"} still 0 after 120s',
        "⏭️ notify (log): not_run",
    ]
    assert texts([meta]) == [
        "run `run-0193` · rule `restart-on-down` · fingerprint `3f2a9c41d0b7e6aa` · trigger `verification_failed`"
    ]
    assert message.text == (
        "[autoremedy] run failed: DemoAppDown (shop/checkout) — verification failed: &lt;checkout&gt; still down "
        "&amp; 0 ready replicas"
    )


async def test_slack_trigger_without_labels_links_steps_or_run(fake_slack: FakeSlack, closing: Any) -> None:
    bare = notification(labels={}, steps=(), generator_url="", runbook_url="", run_id=None)
    assert (await slack(fake_slack, closing).send(bare)).outcome is SendOutcome.SENT
    blocks = fake_slack.messages[0].blocks or []
    assert [b["type"] for b in blocks] == ["header", "section", "context"]
    assert texts(blocks)[-1].startswith("rule `restart-on-down`")


async def test_slack_trigger_stays_within_block_kit_limits(fake_slack: FakeSlack, closing: Any) -> None:
    huge = notification(
        title="T" * 400,
        summary="<&>" * 4000,
        labels={f"label_{i:02}": "v&" * 900 for i in range(40)},
        steps=tuple(StepLine(f"step{i}", "http.request", "failed", "x" * 5000) for i in range(80)),
        generator_url="http://prometheus.test/graph?g0.expr=" + "a" * 5000,
    )
    result = await slack(fake_slack, closing).send(huge)
    assert result.outcome is SendOutcome.SENT, result.error  # the fake checks every Block Kit limit
    blocks = fake_slack.messages[0].blocks or []
    header, summary, labels, links, steps, _meta = blocks
    assert texts([links]) == ["<https://runbooks.test/checkout-down|Runbook>"]  # a link too long is left out
    assert header["text"]["text"] == "T" * 149 + "…"
    assert len(summary["text"]["text"]) <= 3000
    assert re.fullmatch(r"(&lt;|&amp;|&gt;)+…", summary["text"]["text"])  # whole entities only
    assert len(labels["text"]["text"]) <= 3000
    assert labels["text"]["text"].splitlines()[-1].endswith("more labels")
    assert all(len(line) < 1700 for line in labels["text"]["text"].splitlines())
    assert len(steps["text"]["text"]) <= 3000
    assert steps["text"]["text"].splitlines()[-1].endswith("more steps")
    assert len(fake_slack.messages[0].text) <= 3000


async def test_slack_resolve_replies_in_the_trigger_thread(fake_slack: FakeSlack, closing: Any) -> None:
    channel = slack(fake_slack, closing)
    trigger = await channel.send(notification())
    assert trigger.reference is not None
    parent_ts = trigger.reference.split(":")[1]
    result = await channel.send(resolve(thread_reference=trigger.reference))
    [reply] = fake_slack.thread(parent_ts)
    assert result == SendResult(SendOutcome.SENT, reference=f"{CHANNEL_ID}:{reply.ts}")
    assert [m.ts for m in fake_slack.top_level(CHANNEL_ID)] == [parent_ts]
    assert [b["type"] for b in reply.blocks or []] == ["section", "context"]
    assert texts(reply.blocks)[0] == "✅ *Resolved:* the alert resolved"
    assert reply.text.startswith("Resolved: [autoremedy] resolved: DemoAppDown")


async def test_slack_resolve_uses_the_channel_of_the_reference(fake_slack: FakeSlack, closing: Any) -> None:
    # The trigger went to a channel by name; Slack answered with its id, and the resolve finds it there.
    trigger = await slack(fake_slack, closing, channel="C0OLD").send(notification())
    assert trigger.reference is not None
    result = await slack(fake_slack, closing, channel="C0NEW").send(resolve(thread_reference=trigger.reference))
    assert result.outcome is SendOutcome.SENT
    assert fake_slack.messages[-1].channel == "C0OLD"
    assert fake_slack.messages[-1].thread_ts == fake_slack.messages[0].ts


@pytest.mark.parametrize("reference", [None, "garbage", f"{CHANNEL_ID}:1600000000.000100"])
async def test_slack_resolve_without_a_live_thread_posts_in_the_channel(
    fake_slack: FakeSlack, closing: Any, reference: str | None
) -> None:
    result = await slack(fake_slack, closing).send(resolve(thread_reference=reference))
    [message] = fake_slack.messages  # a lost thread is not retried into: the reply lands in the channel
    assert result == SendResult(SendOutcome.SENT, reference=f"{CHANNEL_ID}:{message.ts}")
    assert message.thread_ts is None
    assert texts(message.blocks)[:2] == [
        "[autoremedy] resolved: DemoAppDown (shop/checkout)",
        "✅ *Resolved:* the alert resolved",
    ]


def retry(error: str, retry_after: float | None = None) -> SendResult:
    return SendResult(SendOutcome.RETRY, error=error, retry_after=retry_after)


def give_up(error: str) -> SendResult:
    return SendResult(SendOutcome.GIVE_UP, error=error)


SLACK_FAULTS = [
    # (how the fake fails, what the adapter makes of it)
    pytest.param(("fail", 429, 7), retry("slack: ratelimited", 7.0), id="429-retry-after"),
    pytest.param(("fail", 429, None), retry("slack: ratelimited"), id="429-without-retry-after"),
    pytest.param(("fail", 500, None), retry("slack: internal_error"), id="500"),
    pytest.param(("fail", 503, None), retry("slack: internal_error"), id="503"),
    pytest.param(("error", "internal_error"), retry("slack: internal_error"), id="internal_error"),
    pytest.param(("error", "fatal_error"), retry("slack: fatal_error"), id="fatal_error"),
    pytest.param(("error", "ratelimited"), retry("slack: ratelimited"), id="ratelimited-200"),
    pytest.param(("error", "not_in_channel"), give_up("slack: not_in_channel"), id="not_in_channel"),
    pytest.param(("error", "is_archived"), give_up("slack: is_archived"), id="is_archived"),
    pytest.param(("error", "invalid_blocks"), give_up("slack: invalid_blocks"), id="invalid_blocks"),
]


@pytest.mark.parametrize(("fault", "expected"), SLACK_FAULTS)
@pytest.mark.parametrize("kind", list(NotificationKind))
async def test_slack_failures_are_classified(
    fake_slack: FakeSlack, closing: Any, kind: NotificationKind, fault: tuple[Any, ...], expected: SendResult
) -> None:
    if fault[0] == "fail":
        fake_slack.fail_next("chat.postMessage", status=fault[1], retry_after=fault[2])
    else:
        fake_slack.error_next("chat.postMessage", fault[1])
    sent = notification() if kind is NotificationKind.TRIGGER else resolve()
    assert await slack(fake_slack, closing).send(sent) == expected
    assert fake_slack.messages == [] and len(fake_slack.requests) == 1  # no retry inside the adapter


async def test_slack_invalid_token_gives_up(fake_slack: FakeSlack, closing: Any) -> None:
    wrong = "xoxb-1000000000-2000000000-someOtherToken00"
    result = await slack(fake_slack, closing, token=SecretStr(wrong)).send(notification())
    assert result == SendResult(SendOutcome.GIVE_UP, error="slack: invalid_auth")


async def test_slack_unknown_channel_gives_up(closing: Any) -> None:
    async with FakeSlack(channels={CHANNEL_ID}) as fake:
        result = await slack(fake, closing, channel="C0NOPE").send(notification())
    assert result == SendResult(SendOutcome.GIVE_UP, error="slack: channel_not_found")


async def test_slack_rate_limit_on_the_thread_reply(fake_slack: FakeSlack, closing: Any) -> None:
    channel = slack(fake_slack, closing)
    trigger = await channel.send(notification())
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=3)
    result = await channel.send(resolve(thread_reference=trigger.reference))
    assert result == SendResult(SendOutcome.RETRY, error="slack: ratelimited", retry_after=3.0)
    assert len(fake_slack.messages) == 1  # no fallback to the channel on a rate limit


# --------------------------------------------------------------------------------------------------------
# PagerDuty
# --------------------------------------------------------------------------------------------------------


async def test_pagerduty_trigger_event(fake_pagerduty: FakePagerDuty, closing: Any) -> None:
    channel = pagerduty(fake_pagerduty, closing)
    assert channel.name == "pagerduty"
    result = await channel.send(notification())
    assert result == SendResult(SendOutcome.SENT, reference="fp-3f2a9c:restart-on-down")
    [request] = fake_pagerduty.requests
    assert (request.method, request.path, request.status) == ("POST", "/v2/enqueue", 202)
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.json == {
        "routing_key": PAGERDUTY_ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "fp-3f2a9c:restart-on-down",
        "client": "autoremedy",
        "links": [
            {"href": "http://prometheus.test:9090/graph?g0.expr=up%3D%3D0&g0.tab=1", "text": "Prometheus"},
            {"href": "https://runbooks.test/checkout-down", "text": "Runbook"},
        ],
        "payload": {
            "summary": "[autoremedy] run failed: DemoAppDown (shop/checkout)",
            "source": "10.0.0.7:8080",
            "severity": "critical",
            "component": "shop/checkout",
            "group": "DemoAppDown",
            "class": "verification_failed",
            "custom_details": {
                "summary": "verification failed: <checkout> still down & 0 ready replicas",
                "rule": "restart-on-down",
                "run_id": "run-0193",
                "fingerprint": "3f2a9c41d0b7e6aa",
                "alert_status": "firing",
                "steps": [
                    "✅ restart (kubernetes.restart): done — deployment shop/checkout restarted",
                    '❌ verify (prometheus.verify): failed — up{job="checkout"} still 0 after 120s',
                    "⏭️ notify (log): not_run",
                ],
                "labels": LABELS,
                "annotations": {"summary": "checkout is down", "description": "no ready pods"},
            },
        },
    }
    [incident] = fake_pagerduty.incidents
    assert (incident.dedup_key, incident.severity, incident.status) == (
        "fp-3f2a9c:restart-on-down",
        "critical",
        "triggered",
    )


async def test_pagerduty_repeat_trigger_is_one_incident_and_resolve_closes_it(
    fake_pagerduty: FakePagerDuty, closing: Any
) -> None:
    channel = pagerduty(fake_pagerduty, closing)
    for _ in range(2):
        assert (await channel.send(notification())).outcome is SendOutcome.SENT
    [incident] = fake_pagerduty.incidents
    assert incident.trigger_count == 2 and incident.is_open
    result = await channel.send(resolve())
    assert result == SendResult(SendOutcome.SENT, reference="fp-3f2a9c:restart-on-down")
    assert fake_pagerduty.requests[-1].json == {
        "routing_key": PAGERDUTY_ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "fp-3f2a9c:restart-on-down",
    }
    assert incident.status == "resolved" and fake_pagerduty.open_incidents == {}


@pytest.mark.parametrize(
    ("severity", "labels", "expected"),
    [
        ("critical", LABELS, ("critical", "10.0.0.7:8080", "shop/checkout", "DemoAppDown")),
        ("error", {"job": "api", "namespace": "shop"}, ("error", "api", "shop", None)),
        ("warning", {"app": "web"}, ("warning", "autoremedy", "web", None)),
        ("info", {}, ("info", "autoremedy", None, None)),
        ("warn", {}, ("warning", "autoremedy", None, None)),
        ("page", {}, ("critical", "autoremedy", None, None)),
        ("bogus", {}, ("error", "autoremedy", None, None)),
    ],
)
async def test_pagerduty_severity_source_component_group(
    fake_pagerduty: FakePagerDuty,
    closing: Any,
    severity: str,
    labels: dict[str, str],
    expected: tuple[str, str, str | None, str | None],
) -> None:
    # The one severity table (decide.escalation) turns the label into the word every channel maps from.
    said = severity_of({"severity": severity})
    result = await pagerduty(fake_pagerduty, closing).send(notification(severity=said, labels=labels))
    assert result.outcome is SendOutcome.SENT, result.error
    payload = fake_pagerduty.requests[-1].json["payload"]
    assert (payload["severity"], payload["source"], payload.get("component"), payload.get("group")) == expected


async def test_pagerduty_limits_and_a_long_dedup_key(fake_pagerduty: FakePagerDuty, closing: Any) -> None:
    channel = pagerduty(fake_pagerduty, closing)
    long_key = "fp-" + "k" * 400
    result = await channel.send(notification(title="S" * 2000, dedup_key=long_key, generator_url="", runbook_url=""))
    assert result.outcome is SendOutcome.SENT, result.error
    assert result.reference == fit_key(long_key, 255) and len(result.reference) == 255
    event = fake_pagerduty.requests[-1].json
    assert event["payload"]["summary"] == "S" * 1023 + "…"
    assert "links" not in event
    assert (await channel.send(resolve(dedup_key=long_key))).outcome is SendOutcome.SENT
    assert fake_pagerduty.incident(result.reference).status == "resolved"


PAGERDUTY_FAULTS = [
    # ((status, Retry-After), what the adapter makes of it)
    pytest.param((429, 30), retry("pagerduty: HTTP 429: Too many API calls at a time.", 30.0), id="429"),
    pytest.param((429, None), retry("pagerduty: HTTP 429: Too many API calls at a time."), id="429-no-header"),
    pytest.param((500, None), retry("pagerduty: HTTP 500: Internal Server Error"), id="500"),
    pytest.param((503, 2), retry("pagerduty: HTTP 503: Internal Server Error", 2.0), id="503"),
    pytest.param((400, None), give_up("pagerduty: HTTP 400: Event object is invalid; injected fault"), id="400"),
]


@pytest.mark.parametrize(("fault", "expected"), PAGERDUTY_FAULTS)
@pytest.mark.parametrize("kind", list(NotificationKind))
async def test_pagerduty_failures_are_classified(
    fake_pagerduty: FakePagerDuty,
    closing: Any,
    kind: NotificationKind,
    fault: tuple[int, int | None],
    expected: SendResult,
) -> None:
    fake_pagerduty.fail_next(fault[0], retry_after=fault[1])
    sent = notification() if kind is NotificationKind.TRIGGER else resolve()
    assert await pagerduty(fake_pagerduty, closing).send(sent) == expected
    assert fake_pagerduty.events == []


@pytest.mark.parametrize(
    ("key", "error"),
    [
        (OTHER_PD_KEY, "pagerduty: HTTP 400: Event object is invalid; Invalid routing key"),
        (
            "short",
            "pagerduty: HTTP 400: Event object is invalid; Length of 'routing_key' is incorrect (should be 32 "
            "characters)",
        ),
    ],
)
async def test_pagerduty_rejected_routing_key_gives_up(
    fake_pagerduty: FakePagerDuty, closing: Any, key: str, error: str
) -> None:
    result = await pagerduty(fake_pagerduty, closing, key=key).send(notification())
    assert result == SendResult(SendOutcome.GIVE_UP, error=error)
    assert fake_pagerduty.incidents == []


# --------------------------------------------------------------------------------------------------------
# Opsgenie
# --------------------------------------------------------------------------------------------------------


async def test_opsgenie_create_alert(fake_opsgenie: FakeOpsgenie, closing: Any) -> None:
    channel = opsgenie(fake_opsgenie, closing)
    assert channel.name == "opsgenie"
    result = await channel.send(notification())
    assert result == SendResult(SendOutcome.SENT, reference="fp-3f2a9c:restart-on-down")
    [request] = fake_opsgenie.requests
    assert (request.method, request.path, request.status) == ("POST", "/v2/alerts", 202)
    assert request.headers["Authorization"] == f"GenieKey {OPSGENIE_API_KEY}"
    assert request.json == {
        "message": "[autoremedy] run failed: DemoAppDown (shop/checkout)",
        "alias": "fp-3f2a9c:restart-on-down",
        "description": (
            "verification failed: <checkout> still down & 0 ready replicas\n\n"
            "Steps:\n"
            "✅ restart (kubernetes.restart): done — deployment shop/checkout restarted\n"
            '❌ verify (prometheus.verify): failed — up{job="checkout"} still 0 after 120s\n'
            "⏭️ notify (log): not_run\n\n"
            "Links:\n"
            "Prometheus: http://prometheus.test:9090/graph?g0.expr=up%3D%3D0&g0.tab=1\n"
            "Runbook: https://runbooks.test/checkout-down"
        ),
        "details": {
            "run_id": "run-0193",
            "rule": "restart-on-down",
            "fingerprint": "3f2a9c41d0b7e6aa",
            "trigger": "verification_failed",
            "alert_status": "firing",
            **LABELS,
        },
        "priority": "P1",
        "tags": ["autoremedy", "verification_failed", "restart-on-down"],
        "source": "autoremedy",
        "entity": "shop/checkout",
    }
    [alert] = fake_opsgenie.alerts
    assert (alert.alias, alert.priority, alert.status) == ("fp-3f2a9c:restart-on-down", "P1", "open")


async def test_opsgenie_repeat_is_deduplicated_and_resolve_closes_by_alias(
    fake_opsgenie: FakeOpsgenie, closing: Any
) -> None:
    channel = opsgenie(fake_opsgenie, closing)
    alias = "fp/9 rule:x%y?z#w"  # every character that needs quoting in a path
    for _ in range(2):
        assert (await channel.send(notification(dedup_key=alias))).outcome is SendOutcome.SENT
    [alert] = fake_opsgenie.alerts
    assert alert.count == 2 and alert.is_open
    result = await channel.send(resolve(dedup_key=alias))
    assert result == SendResult(SendOutcome.SENT, reference=alias)
    close = fake_opsgenie.requests[-1]
    assert close.path == f"/v2/alerts/{alias}/close"
    assert dict(close.query) == {"identifierType": "alias"}
    assert close.headers["Authorization"] == f"GenieKey {OPSGENIE_API_KEY}"
    assert close.json == {"note": "Resolved: the alert resolved", "source": "autoremedy"}
    assert alert.status == "closed" and fake_opsgenie.open_alerts == {}
    [status] = [s for s in fake_opsgenie.request_statuses.values() if s["action"] == "Close"]
    assert status["isSuccess"] is True


@pytest.mark.parametrize(
    ("severity", "priority"), [("critical", "P1"), ("error", "P2"), ("warning", "P3"), ("info", "P5"), ("x", "P2")]
)
async def test_opsgenie_priority(fake_opsgenie: FakeOpsgenie, closing: Any, severity: str, priority: str) -> None:
    said = severity_of({"severity": severity})
    assert (await opsgenie(fake_opsgenie, closing).send(notification(severity=said))).outcome is SendOutcome.SENT
    assert fake_opsgenie.alerts[0].priority == priority


async def test_opsgenie_limits(fake_opsgenie: FakeOpsgenie, closing: Any) -> None:
    huge = notification(
        title="M" * 500,
        dedup_key="a" * 700,
        summary="s" * 20000,
        rule="r" * 80,
        labels={f"label_{i:02}": "v" * 3000 for i in range(30)} | {"rule": "shadowed"},
        steps=tuple(StepLine(f"s{i}", "log", "done", "d" * 1000) for i in range(100)),
    )
    result = await opsgenie(fake_opsgenie, closing).send(huge)
    assert result.outcome is SendOutcome.SENT, result.error  # the fake rejects what Opsgenie would (422)
    body = fake_opsgenie.requests[-1].json
    assert body["message"] == "M" * 129 + "…"
    assert result.reference == body["alias"] == fit_key("a" * 700, 512)
    assert len(body["description"]) == 15000
    assert body["description"].endswith("Runbook: https://runbooks.test/checkout-down")
    assert sum(len(k) + len(v) for k, v in body["details"].items()) <= 8000
    assert all(isinstance(v, str) for v in body["details"].values())
    assert body["details"]["rule"] == "r" * 80
    assert body["tags"][2] == "r" * 49 + "…"
    assert (await opsgenie(fake_opsgenie, closing).send(resolve(dedup_key="a" * 700))).outcome is SendOutcome.SENT
    assert fake_opsgenie.alerts[0].status == "closed"


async def test_opsgenie_description_of_links_only(fake_opsgenie: FakeOpsgenie, closing: Any) -> None:
    await opsgenie(fake_opsgenie, closing).send(notification(summary="", steps=()))
    assert fake_opsgenie.alerts[0].description == (
        "Links:\nPrometheus: http://prometheus.test:9090/graph?g0.expr=up%3D%3D0&g0.tab=1\n"
        "Runbook: https://runbooks.test/checkout-down"
    )


async def test_opsgenie_label_named_like_a_detail_is_kept_apart(fake_opsgenie: FakeOpsgenie, closing: Any) -> None:
    await opsgenie(fake_opsgenie, closing).send(notification(labels={"rule": "from-label", "run_id": "x"}))
    details = fake_opsgenie.alerts[0].details
    assert (details["rule"], details["label.rule"], details["label.run_id"]) == ("restart-on-down", "from-label", "x")


OG_UNPROCESSABLE = "Request body is not processable. Please check the errors."
OPSGENIE_FAULTS = [
    # ((status, Retry-After, body), what the adapter makes of it)
    pytest.param((429, 12, None), retry("opsgenie: HTTP 429: Too many requests", 12.0), id="429"),
    pytest.param((500, None, None), retry("opsgenie: HTTP 500: Internal Server Error"), id="500"),
    pytest.param((502, 1, None), retry("opsgenie: HTTP 502: Internal Server Error", 1.0), id="502"),
    pytest.param((422, None, None), give_up(f"opsgenie: HTTP 422: {OG_UNPROCESSABLE}; fault: injected"), id="422"),
    pytest.param(
        (400, None, {"message": "Request body is not a valid JSON object"}),
        give_up("opsgenie: HTTP 400: Request body is not a valid JSON object"),
        id="400",
    ),
    pytest.param((404, None, {"message": "Alert not found"}), give_up("opsgenie: HTTP 404: Alert not found"), id="404"),
]


@pytest.mark.parametrize(("fault", "expected"), OPSGENIE_FAULTS)
@pytest.mark.parametrize("kind", list(NotificationKind))
async def test_opsgenie_failures_are_classified(
    fake_opsgenie: FakeOpsgenie, closing: Any, kind: NotificationKind, fault: tuple[Any, ...], expected: SendResult
) -> None:
    fake_opsgenie.fail_next(fault[0], retry_after=fault[1], body=fault[2])
    sent = notification() if kind is NotificationKind.TRIGGER else resolve()
    assert await opsgenie(fake_opsgenie, closing).send(sent) == expected
    assert fake_opsgenie.request_statuses == {}


@pytest.mark.parametrize("kind", list(NotificationKind))
async def test_opsgenie_wrong_key_gives_up(fake_opsgenie: FakeOpsgenie, closing: Any, kind: NotificationKind) -> None:
    sent = notification() if kind is NotificationKind.TRIGGER else resolve()
    result = await opsgenie(fake_opsgenie, closing, key="00000000-0000-0000-0000-000000000000").send(sent)
    assert result == SendResult(SendOutcome.GIVE_UP, error="opsgenie: HTTP 401: Could not authenticate")


# --------------------------------------------------------------------------------------------------------
# Every channel: unreachable, silent, secret-free
# --------------------------------------------------------------------------------------------------------


def build(name: str, url: str, timeout: float) -> Channel:
    if name == "slack":
        return SlackChannel(
            SlackSettings(token=SecretStr(SLACK_BOT_TOKEN), channel=CHANNEL_ID, base_url=f"{url}/api/"), timeout
        )
    if name == "pagerduty":
        return PagerDutyChannel(PagerDutySettings(routing_key=SecretStr(PAGERDUTY_ROUTING_KEY), url=url), timeout)
    return OpsgenieChannel(OpsgenieSettings(api_key=SecretStr(OPSGENIE_API_KEY), url=url), timeout)


NAMES = ["slack", "pagerduty", "opsgenie"]


@pytest.mark.parametrize("kind", list(NotificationKind))
@pytest.mark.parametrize("name", NAMES)
async def test_unreachable_service_is_retried(closing: Any, name: str, kind: NotificationKind) -> None:
    channel = closing(build(name, f"http://127.0.0.1:{free_port()}", TIMEOUT))
    sent = notification() if kind is NotificationKind.TRIGGER else resolve(thread_reference=f"{CHANNEL_ID}:1.000100")
    result = await channel.send(sent)
    assert result.outcome is SendOutcome.RETRY and result.retry_after is None
    assert result.error is not None and result.error.startswith(f"{name}: ClientConnectorError")


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections and never answers (until the client hangs up)."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("name", NAMES)
async def test_timeout_is_retried(closing: Any, silent_server: str, name: str) -> None:
    channel = closing(build(name, silent_server, 0.2))
    result = await channel.send(notification())
    assert result == SendResult(SendOutcome.RETRY, error=f"{name}: no answer within 0.2s")


@dataclasses.dataclass
class Fakes:
    slack: FakeSlack
    pagerduty: FakePagerDuty
    opsgenie: FakeOpsgenie


@pytest.fixture
def fakes(fake_slack: FakeSlack, fake_pagerduty: FakePagerDuty, fake_opsgenie: FakeOpsgenie) -> Fakes:
    return Fakes(fake_slack, fake_pagerduty, fake_opsgenie)


async def test_close_is_idempotent_and_a_closed_channel_reconnects(fakes: Fakes, closing: Any) -> None:
    channels: list[Channel] = [
        slack(fakes.slack, closing),
        pagerduty(fakes.pagerduty, closing),
        opsgenie(fakes.opsgenie, closing),
    ]
    for channel in channels:
        await channel.close()  # never used: nothing to close
        assert (await channel.send(notification())).outcome is SendOutcome.SENT
        await channel.close()
        await channel.close()
        assert (await channel.send(resolve())).outcome is SendOutcome.SENT


async def test_secrets_never_reach_results_or_logs(
    fakes: Fakes, closing: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # slack-sdk and aiohttp log requests at DEBUG
    fake_slack, fake_pagerduty, fake_opsgenie = fakes.slack, fakes.pagerduty, fakes.opsgenie
    results: list[SendResult] = []
    s, p, o = slack(fake_slack, closing), pagerduty(fake_pagerduty, closing), opsgenie(fake_opsgenie, closing)
    for channel in (s, p, o):
        results.append(await channel.send(notification()))
        results.append(await channel.send(resolve()))
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=1)
    fake_slack.error_next("chat.postMessage", "invalid_auth")
    results += [await s.send(notification()), await s.send(notification())]
    # A service that echoes the key back in its error text: the result must not carry it.
    fake_pagerduty.fail_next(400, body={"message": f"routing key {PAGERDUTY_ROUTING_KEY} is disabled"})
    fake_opsgenie.fail_next(403, body={"message": f"key {OPSGENIE_API_KEY} lacks the create permission"})
    results += [await p.send(notification()), await o.send(notification())]
    assert results[-2].error == "pagerduty: HTTP 400: routing key <redacted> is disabled"
    assert results[-1].error == "opsgenie: HTTP 403: key <redacted> lacks the create permission"
    for name in NAMES:
        unreachable = closing(build(name, f"http://127.0.0.1:{free_port()}", TIMEOUT))
        results.append(await unreachable.send(notification()))
    assert [r.outcome for r in results].count(SendOutcome.SENT) == 6
    assert any(r.name.startswith("slack_sdk") for r in caplog.records)  # the requests were logged, and looked at
    captured = capfd.readouterr()
    logged = caplog.text + captured.out + captured.err + "".join(repr(r) for r in results)
    for secret in SECRETS:
        assert secret not in logged


# --------------------------------------------------------------------------------------------------------
# Pure helpers the tables above rely on
# --------------------------------------------------------------------------------------------------------


NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),
        ("Wed, 01 May 2024 12:00:30 GMT", 30.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ('{"message": "Event object is invalid", "errors": ["a", "b"]}', "Event object is invalid; a; b"),
        ('{"message": "not processable", "errors": {"message": "empty"}}', "not processable; message: empty"),
        ("<html>\n<b>502 Bad Gateway</b>\n</html>", "<html> <b>502 Bad Gateway</b> </html>"),
        ('"just a string"', '"just a string"'),
        ("x" * 2000, "x" * 499 + "…"),
        ("", ""),
    ],
)
def test_error_text_is_what_the_service_said(body: str, said: str) -> None:
    assert error_text(body) == said


def test_slack_escape_fit_never_cuts_an_entity() -> None:
    fitted = slack_escape_fit("&" * 10, 12)
    assert fitted == "&amp;&amp;…"
    assert slack_escape_fit("a<b", 10) == "a&lt;b"
