"""Self-test of the SaaS fakes: Slack through the real slack_sdk AsyncWebClient, PagerDuty and Opsgenie
through plain aiohttp, covering the happy paths, de-duplication, every validation error and the faults."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.models.blocks import DividerBlock, HeaderBlock, MarkdownTextObject, SectionBlock
from slack_sdk.web.async_client import AsyncWebClient

from tests.support.opsgenie import OPSGENIE_API_KEY, FakeOpsgenie
from tests.support.pagerduty import PAGERDUTY_ROUTING_KEY, FakePagerDuty
from tests.support.slack import FakeSlack

TS = re.compile(r"^\d{10}\.\d{6}$")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


def slack_client(fake: FakeSlack, token: str | None = None, **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token=token or fake.token, base_url=f"{fake.url}/api/", timeout=10, **kwargs)


def section(text: str, kind: str = "mrkdwn") -> dict[str, Any]:
    return {"type": "section", "text": {"type": kind, "text": text}}


BLOCKS: list[dict[str, Any]] = [
    {"type": "header", "text": {"type": "plain_text", "text": "Remediation failed"}},
    section("*restart* of `web` failed after 3 attempts"),
    {"type": "divider"},
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "run 42"}]},
    {
        "type": "actions",
        "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": "https://x.test"}],
    },
]


# --------------------------------------------------------------------------------------------------------
# Slack
# --------------------------------------------------------------------------------------------------------


async def test_slack_post_message_with_blocks(fake_slack: FakeSlack) -> None:
    assert fake_slack.api_url == f"{fake_slack.url}/api/"
    response = await slack_client(fake_slack).chat_postMessage(channel="C0ALERTS", text="fallback", blocks=BLOCKS)
    assert response.status_code == 200
    assert response["ok"] is True
    assert response["channel"] == "C0ALERTS"
    assert TS.match(response["ts"])
    assert response["message"]["text"] == "fallback"
    assert response["message"]["blocks"] == BLOCKS
    assert response["message"]["bot_id"] == fake_slack.bot_id
    [message] = fake_slack.messages
    assert (message.channel, message.ts, message.text, message.blocks) == (
        "C0ALERTS",
        response["ts"],
        "fallback",
        BLOCKS,
    )
    [request] = fake_slack.requests
    assert request.path == "/api/chat.postMessage"
    assert request.headers["Authorization"] == f"Bearer {fake_slack.token}"
    assert request.headers["Content-Type"].startswith("application/json")
    assert fake_slack.calls("chat.postMessage") == [{"channel": "C0ALERTS", "text": "fallback", "blocks": BLOCKS}]


async def test_slack_accepts_sdk_block_models(fake_slack: FakeSlack) -> None:
    blocks = [HeaderBlock(text="Escalation"), SectionBlock(text=MarkdownTextObject(text="*bold*")), DividerBlock()]
    response = await slack_client(fake_slack).chat_postMessage(channel="C1", text="t", blocks=blocks)
    assert response["ok"]
    assert [b["type"] for b in fake_slack.message(response["ts"]).blocks or []] == ["header", "section", "divider"]


async def test_slack_ts_is_unique_and_increasing(fake_slack: FakeSlack) -> None:
    client = slack_client(fake_slack)
    stamps = [(await client.chat_postMessage(channel="C1", text=f"m{i}"))["ts"] for i in range(5)]
    assert stamps == sorted(stamps, key=float)
    assert len(set(stamps)) == 5
    assert stamps[0] == "1700000000.000100"


async def test_slack_thread_reply(fake_slack: FakeSlack) -> None:
    client = slack_client(fake_slack)
    parent = await client.chat_postMessage(channel="C1", text="incident")
    reply = await client.chat_postMessage(channel="C1", text="still failing", thread_ts=parent["ts"])
    assert reply["message"]["thread_ts"] == parent["ts"]
    assert reply["ts"] != parent["ts"]
    assert [m.text for m in fake_slack.thread(parent["ts"])] == ["still failing"]
    assert [m.text for m in fake_slack.top_level("C1")] == ["incident"]
    # a reply's ts threads under the parent, as Slack asks clients to do anyway
    again = await client.chat_postMessage(channel="C1", text="again", thread_ts=reply["ts"])
    assert again["message"]["thread_ts"] == parent["ts"]
    assert len(fake_slack.thread(parent["ts"])) == 2


@pytest.mark.parametrize("thread_ts", ["1600000000.000100", "not-a-ts"])
async def test_slack_unknown_thread_is_thread_not_found(fake_slack: FakeSlack, thread_ts: str) -> None:
    with pytest.raises(SlackApiError) as caught:
        await slack_client(fake_slack).chat_postMessage(channel="C1", text="x", thread_ts=thread_ts)
    assert caught.value.response.status_code == 200
    assert caught.value.response["error"] == "thread_not_found"
    assert fake_slack.messages == []


async def test_slack_thread_in_another_channel_is_thread_not_found(fake_slack: FakeSlack) -> None:
    client = slack_client(fake_slack)
    parent = await client.chat_postMessage(channel="C1", text="incident")
    with pytest.raises(SlackApiError, match="thread_not_found"):
        await client.chat_postMessage(channel="C2", text="x", thread_ts=parent["ts"])


async def test_slack_chat_update(fake_slack: FakeSlack) -> None:
    client = slack_client(fake_slack)
    posted = await client.chat_postMessage(channel="C1", text="failing", blocks=[section("failing")])
    updated = await client.chat_update(channel="C1", ts=posted["ts"], text="resolved", blocks=[section("resolved")])
    assert updated["ok"] and updated["ts"] == posted["ts"] and updated["text"] == "resolved"
    message = fake_slack.message(posted["ts"])
    assert message.text == "resolved"
    assert message.blocks == [section("resolved")]
    [update] = fake_slack.updates
    assert (update.old_text, update.text, update.ts) == ("failing", "resolved", posted["ts"])
    # text only: blocks are kept, as Slack keeps them when the field is omitted
    await client.chat_update(channel="C1", ts=posted["ts"], text="resolved again")
    assert fake_slack.message(posted["ts"]).blocks == [section("resolved")]
    assert len(fake_slack.messages) == 1


@pytest.mark.parametrize(
    ("channel", "ts", "error"),
    [
        ("C1", "1699999999.000100", "message_not_found"),
        ("C2", None, "message_not_found"),
        ("", None, "channel_not_found"),
    ],
)
async def test_slack_chat_update_errors(fake_slack: FakeSlack, channel: str, ts: str | None, error: str) -> None:
    client = slack_client(fake_slack)
    posted = await client.chat_postMessage(channel="C1", text="x")
    with pytest.raises(SlackApiError) as caught:
        await client.chat_update(channel=channel, ts=ts or posted["ts"], text="y")
    assert caught.value.response["error"] == error
    assert fake_slack.updates == []


MISSING_TEXT = pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")


@MISSING_TEXT
async def test_slack_chat_update_without_content_is_no_text(fake_slack: FakeSlack) -> None:
    client = slack_client(fake_slack)
    posted = await client.chat_postMessage(channel="C1", text="x")
    with pytest.raises(SlackApiError, match="no_text"):
        await client.chat_update(channel="C1", ts=posted["ts"])


async def test_slack_auth_test(fake_slack: FakeSlack) -> None:
    response = await slack_client(fake_slack).auth_test()
    assert response["ok"]
    assert (response["user_id"], response["bot_id"], response["team_id"]) == ("U0FAKEBOT", "B0FAKEBOT", "T0FAKETEAM")


async def test_slack_invalid_token_is_invalid_auth(fake_slack: FakeSlack) -> None:
    client = slack_client(fake_slack, token="xoxb-not-the-configured-token")
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="C1", text="x")
    assert caught.value.response.status_code == 200
    assert caught.value.response.data == {"ok": False, "error": "invalid_auth"}
    with pytest.raises(SlackApiError, match="invalid_auth"):
        await client.auth_test()
    assert fake_slack.messages == []


async def test_slack_missing_token_is_not_authed(fake_slack: FakeSlack, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{fake_slack.api_url}chat.postMessage", json={"channel": "C1", "text": "x"}) as resp:
        assert resp.status == 200
        assert await resp.json() == {"ok": False, "error": "not_authed"}
    # a token inside a JSON body does not count (Slack wants it in the Authorization header)
    body = {"channel": "C1", "text": "x", "token": fake_slack.token}
    async with http.post(f"{fake_slack.api_url}chat.postMessage", json=body) as resp:
        assert (await resp.json())["error"] == "not_authed"
    headers = {"Authorization": f"Basic {fake_slack.token}"}
    async with http.post(f"{fake_slack.api_url}auth.test", headers=headers) as resp:
        assert (await resp.json())["error"] == "invalid_auth"


async def test_slack_form_encoded_post_message(fake_slack: FakeSlack, http: aiohttp.ClientSession) -> None:
    form = {"token": fake_slack.token, "channel": "C1", "text": "via form", "blocks": json.dumps([section("hi")])}
    async with http.post(f"{fake_slack.api_url}chat.postMessage", data=form) as resp:
        body = await resp.json()
    assert body["ok"] is True, body
    assert fake_slack.message(body["ts"]).blocks == [section("hi")]
    form["blocks"] = "[not json"
    async with http.post(f"{fake_slack.api_url}chat.postMessage", data=form) as resp:
        assert (await resp.json())["error"] == "invalid_blocks_format"
    form["token"] = "xoxb-wrong"
    async with http.post(f"{fake_slack.api_url}chat.postMessage", data=form) as resp:
        assert (await resp.json())["error"] == "invalid_auth"


async def test_slack_malformed_json_body(fake_slack: FakeSlack, http: aiohttp.ClientSession) -> None:
    headers = {"Authorization": f"Bearer {fake_slack.token}", "Content-Type": "application/json"}
    async with http.post(f"{fake_slack.api_url}chat.postMessage", data=b"{", headers=headers) as resp:
        assert (await resp.json())["error"] == "invalid_json"
    async with http.post(f"{fake_slack.api_url}chat.postMessage", data=b"[1]", headers=headers) as resp:
        assert (await resp.json())["error"] == "json_not_object"


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([{"type": "image_carousel"}], "/blocks/0/type"),
        (["section"], "/blocks/0"),
        ([section("x" * 3001)], "/blocks/0/text/text"),
        ([section("")], "/blocks/0/text/text"),
        ([section("x", kind="markdown")], "/blocks/0/text/type"),
        ([{"type": "section"}], "/blocks/0"),
        ([{"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}], "/blocks/0/fields/0/text"),
        ([{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}], "/blocks/0/text/type"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}], "/blocks/0/text/text"),
        ([{"type": "context", "elements": []}], "/blocks/0/elements"),
        (
            [{"type": "context", "elements": [{"type": "image", "image_url": "https://x.test/i.png"}]}],
            "/blocks/0/elements/0",
        ),
        ([{"type": "actions", "elements": []}], "/blocks/0/elements"),
        ([{"type": "actions", "elements": [{"text": "no type"}]}], "/blocks/0/elements/0"),
        ([{"type": "divider", "block_id": "x" * 256}], "/blocks/0/block_id"),
        ([{"type": "divider"}] * 51, "/blocks"),
        ([{"type": "divider"}, section("x" * 3001)], "/blocks/1/text/text"),
    ],
)
async def test_slack_invalid_blocks(fake_slack: FakeSlack, blocks: list[Any], pointer: str) -> None:
    with pytest.raises(SlackApiError) as caught:
        await slack_client(fake_slack).chat_postMessage(channel="C1", text="x", blocks=blocks)
    data = caught.value.response.data
    assert isinstance(data, dict)
    assert data["error"] == "invalid_blocks"
    assert data["errors"][0].endswith(f"[json-pointer:{pointer}]"), data
    assert data["response_metadata"]["messages"][0].startswith("[ERROR] ")
    assert fake_slack.messages == []


async def test_slack_blocks_at_the_limits_are_accepted(fake_slack: FakeSlack) -> None:
    client = slack_client(fake_slack)
    assert (await client.chat_postMessage(channel="C1", text="x", blocks=[section("x" * 3000)]))["ok"]
    assert (await client.chat_postMessage(channel="C1", text="x", blocks=[{"type": "divider"}] * 50))["ok"]


async def test_slack_blocks_must_be_a_list(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError, match="invalid_blocks_format"):
        await slack_client(fake_slack).api_call(
            "chat.postMessage", json={"channel": "C1", "blocks": {"type": "divider"}}
        )


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"channel": "C1"}, "no_text"), ({"channel": "C1", "text": ""}, "no_text"), ({"text": "x"}, "channel_not_found")],
)
async def test_slack_post_message_requires_channel_and_content(
    fake_slack: FakeSlack, kwargs: dict[str, Any], error: str
) -> None:
    with pytest.raises(SlackApiError) as caught:
        await slack_client(fake_slack).api_call("chat.postMessage", json=kwargs)
    assert caught.value.response["error"] == error


@MISSING_TEXT
async def test_slack_blocks_without_text_are_enough(fake_slack: FakeSlack) -> None:
    response = await slack_client(fake_slack).chat_postMessage(channel="C1", blocks=[section("only blocks")])
    assert response["ok"] and fake_slack.messages[0].text == ""


async def test_slack_known_channels() -> None:
    async with FakeSlack(channels={"C0ALERTS"}) as fake:
        client = slack_client(fake)
        assert (await client.chat_postMessage(channel="C0ALERTS", text="x"))["ok"]
        with pytest.raises(SlackApiError, match="channel_not_found"):
            await client.chat_postMessage(channel="C0OTHER", text="x")


async def test_slack_unknown_method(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError, match="unknown_method"):
        await slack_client(fake_slack).api_call("chat.frobnicate", json={})


async def test_slack_rate_limit_raises_without_retry_handler(fake_slack: FakeSlack) -> None:
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=1)
    client = slack_client(fake_slack)
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="C1", text="x")
    response = caught.value.response
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response["error"] == "ratelimited"
    assert fake_slack.messages == []
    assert fake_slack.pending_faults == 0
    assert (await client.chat_postMessage(channel="C1", text="x"))["ok"]  # the fault was used up


async def test_slack_rate_limit_retried_by_sdk_handler(fake_slack: FakeSlack) -> None:
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=1)
    client = slack_client(fake_slack, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
    response = await client.chat_postMessage(channel="C1", text="x")
    assert response["ok"]
    first, second = fake_slack.requests
    assert (first.status, second.status) == (429, 200)
    assert second.received_at - first.received_at >= 1.0  # the client honoured Retry-After
    assert len(fake_slack.messages) == 1


async def test_slack_server_error_and_fault_scope(fake_slack: FakeSlack) -> None:
    fake_slack.fail_next("chat.postMessage", status=500, times=2)
    client = slack_client(fake_slack)
    assert (await client.auth_test())["ok"]  # another method is not affected
    for _ in range(2):
        with pytest.raises(SlackApiError) as caught:
            await client.chat_postMessage(channel="C1", text="x")
        assert caught.value.response.status_code == 500
        assert "Retry-After" not in caught.value.response.headers
    assert (await client.chat_postMessage(channel="C1", text="x"))["ok"]
    assert [r.status for r in fake_slack.requests] == [200, 500, 500, 200]


async def test_slack_error_next(fake_slack: FakeSlack) -> None:
    fake_slack.error_next("chat.postMessage", "channel_not_found")
    client = slack_client(fake_slack)
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="C1", text="x")
    assert caught.value.response.status_code == 200
    assert caught.value.response["error"] == "channel_not_found"
    assert fake_slack.messages == []
    assert (await client.chat_postMessage(channel="C1", text="x"))["ok"]


async def test_slack_rejects_non_bot_token() -> None:
    with pytest.raises(ValueError, match="xoxb"):
        FakeSlack(token="xoxp-user-token")


# --------------------------------------------------------------------------------------------------------
# PagerDuty
# --------------------------------------------------------------------------------------------------------


def pd_event(action: str = "trigger", dedup_key: str | None = "autoremedy/web", **payload: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"routing_key": PAGERDUTY_ROUTING_KEY, "event_action": action}
    if dedup_key is not None:
        event["dedup_key"] = dedup_key
    if action == "trigger":
        event["payload"] = {"summary": "restart of web failed", "source": "autoremedy", "severity": "critical"}
        event["payload"].update(payload)
    return event


async def pd_send(http: aiohttp.ClientSession, fake: FakePagerDuty, event: Any) -> tuple[int, Any, Any]:
    async with http.post(fake.enqueue_url, json=event) as resp:
        return resp.status, await resp.json(), resp.headers


async def test_pagerduty_trigger_opens_incident(fake_pagerduty: FakePagerDuty, http: aiohttp.ClientSession) -> None:
    status, body, _ = await pd_send(http, fake_pagerduty, pd_event())
    assert status == 202
    assert body == {"status": "success", "message": "Event processed", "dedup_key": "autoremedy/web"}
    incident = fake_pagerduty.incident("autoremedy/web")
    assert (incident.status, incident.trigger_count, incident.severity) == ("triggered", 1, "critical")
    assert list(fake_pagerduty.open_incidents) == ["autoremedy/web"]


async def test_pagerduty_repeat_trigger_is_deduplicated(
    fake_pagerduty: FakePagerDuty, http: aiohttp.ClientSession
) -> None:
    for _ in range(3):
        status, body, _ = await pd_send(http, fake_pagerduty, pd_event())
        assert (status, body["dedup_key"]) == (202, "autoremedy/web")
    [incident] = fake_pagerduty.incidents
    assert (incident.trigger_count, incident.repeats, len(incident.events)) == (3, 2, 3)
    await pd_send(http, fake_pagerduty, pd_event(dedup_key="autoremedy/db"))
    assert len(fake_pagerduty.incidents) == 2


async def test_pagerduty_trigger_without_dedup_key_gets_one(
    fake_pagerduty: FakePagerDuty, http: aiohttp.ClientSession
) -> None:
    _, first, _ = await pd_send(http, fake_pagerduty, pd_event(dedup_key=None))
    _, second, _ = await pd_send(http, fake_pagerduty, pd_event(dedup_key=None))
    assert first["dedup_key"] != second["dedup_key"]
    assert re.fullmatch(r"[0-9a-f]{32}", first["dedup_key"])
    assert len(fake_pagerduty.incidents) == 2


async def test_pagerduty_acknowledge_and_resolve(fake_pagerduty: FakePagerDuty, http: aiohttp.ClientSession) -> None:
    await pd_send(http, fake_pagerduty, pd_event())
    status, body, _ = await pd_send(http, fake_pagerduty, pd_event("acknowledge"))
    assert (status, body["dedup_key"]) == (202, "autoremedy/web")
    assert fake_pagerduty.incident("autoremedy/web").status == "acknowledged"
    await pd_send(http, fake_pagerduty, pd_event())  # a trigger on an acknowledged incident still de-duplicates
    assert fake_pagerduty.incident("autoremedy/web").trigger_count == 2
    status, _, _ = await pd_send(http, fake_pagerduty, pd_event("resolve"))
    assert status == 202
    first = fake_pagerduty.incident("autoremedy/web")
    assert first.status == "resolved" and not first.is_open
    assert fake_pagerduty.open_incidents == {}
    await pd_send(http, fake_pagerduty, pd_event())  # after resolve the same key opens a new incident
    assert len(fake_pagerduty.incidents) == 2
    assert fake_pagerduty.incident("autoremedy/web") is not first


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
async def test_pagerduty_event_for_unknown_key_is_accepted_and_dropped(
    fake_pagerduty: FakePagerDuty, http: aiohttp.ClientSession, action: str
) -> None:
    status, body, _ = await pd_send(http, fake_pagerduty, pd_event(action, dedup_key="never-triggered"))
    assert (status, body["status"]) == (202, "success")
    assert fake_pagerduty.incidents == []
    assert [e["dedup_key"] for e in fake_pagerduty.dropped] == ["never-triggered"]


def _without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    target = event
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return event


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({**pd_event(), "routing_key": "f" * 32}, "Invalid routing key"),
        ({**pd_event(), "routing_key": "short"}, "Length of 'routing_key' is incorrect"),
        ({**pd_event(), "routing_key": "-" * 32}, "cannot contain non-alphanumeric"),
        (_without(pd_event(), "routing_key"), "'routing_key' is missing"),
        (_without(pd_event(), "event_action"), "'event_action'"),
        ({**pd_event(), "event_action": "escalate"}, "'event_action'"),
        (pd_event("acknowledge", dedup_key=None), "'dedup_key' is missing"),
        (pd_event("resolve", dedup_key=None), "'dedup_key' is missing"),
        (pd_event("resolve", dedup_key=""), "'dedup_key' is missing"),
        (pd_event(dedup_key="k" * 256), "'dedup_key' is too long"),
        ({**pd_event(), "dedup_key": 42}, "'dedup_key' must be a string"),
        (_without(pd_event(), "payload"), "'payload'"),
        (_without(pd_event(), "payload", "summary"), "'payload.summary' is missing"),
        (pd_event(summary="   "), "'payload.summary' is missing"),
        (pd_event(summary="s" * 1025), "'payload.summary' is too long"),
        (_without(pd_event(), "payload", "source"), "'payload.source'"),
        (_without(pd_event(), "payload", "severity"), "'payload.severity'"),
        (pd_event(severity="fatal"), "'payload.severity'"),
    ],
)
async def test_pagerduty_invalid_events(
    fake_pagerduty: FakePagerDuty, http: aiohttp.ClientSession, event: dict[str, Any], expected: str
) -> None:
    status, body, _ = await pd_send(http, fake_pagerduty, event)
    assert status == 400
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    assert any(expected in e for e in body["errors"]), body
    assert fake_pagerduty.incidents == [] and fake_pagerduty.events == []


async def test_pagerduty_limits_are_inclusive(fake_pagerduty: FakePagerDuty, http: aiohttp.ClientSession) -> None:
    status, _, _ = await pd_send(http, fake_pagerduty, pd_event(dedup_key="k" * 255, summary="s" * 1024))
    assert status == 202


async def test_pagerduty_reports_every_error_at_once(
    fake_pagerduty: FakePagerDuty, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await pd_send(
        http, fake_pagerduty, {"routing_key": "x", "event_action": "trigger", "payload": {}}
    )
    assert status == 400
    assert len(body["errors"]) == 4  # routing_key length, summary, source, severity


async def test_pagerduty_body_must_be_a_json_object(fake_pagerduty: FakePagerDuty, http: aiohttp.ClientSession) -> None:
    for data, ctype in [(b"{", "application/json"), (b"[]", "application/json"), (b'{"a": 1}', "text/plain")]:
        async with http.post(fake_pagerduty.enqueue_url, data=data, headers={"Content-Type": ctype}) as resp:
            assert resp.status == 400
            body = await resp.json()
            assert body["status"] == "Unrecognized object"
            assert body["message"] == "Event object format is unrecognized"


async def test_pagerduty_rate_limit_without_retry_after(
    fake_pagerduty: FakePagerDuty, http: aiohttp.ClientSession
) -> None:
    fake_pagerduty.fail_next(429)
    status, _, headers = await pd_send(http, fake_pagerduty, pd_event())
    assert status == 429
    assert "Retry-After" not in headers
    assert fake_pagerduty.incidents == []
    fake_pagerduty.fail_next(429, retry_after=30)
    status, _, headers = await pd_send(http, fake_pagerduty, pd_event())
    assert (status, headers["Retry-After"]) == (429, "30")
    status, _, _ = await pd_send(http, fake_pagerduty, pd_event())
    assert status == 202
    assert fake_pagerduty.incident("autoremedy/web").trigger_count == 1


@pytest.mark.parametrize("fault", [500, 502, 400])
async def test_pagerduty_faults_change_nothing(
    fake_pagerduty: FakePagerDuty, http: aiohttp.ClientSession, fault: int
) -> None:
    fake_pagerduty.fail_next(fault, times=2)
    for _ in range(2):
        status, body, _ = await pd_send(http, fake_pagerduty, pd_event())
        assert status == fault
        assert "status" in body and "message" in body
    assert fake_pagerduty.events == [] and fake_pagerduty.pending_faults == 0
    assert (await pd_send(http, fake_pagerduty, pd_event()))[0] == 202
    assert [r.status for r in fake_pagerduty.requests] == [fault, fault, 202]


async def test_pagerduty_routing_key_must_be_valid() -> None:
    with pytest.raises(ValueError, match="32"):
        FakePagerDuty(routing_key="too-short")


# --------------------------------------------------------------------------------------------------------
# Opsgenie
# --------------------------------------------------------------------------------------------------------

GENIE = {"Authorization": f"GenieKey {OPSGENIE_API_KEY}"}


def og_alert(alias: str | None = "autoremedy-web", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message": "restart of web failed",
        "description": "3 attempts, last error: timeout",
        "details": {"namespace": "default", "attempts": "3"},
        "tags": ["autoremedy", "web"],
        "priority": "P2",
    }
    if alias is not None:
        body["alias"] = alias
    body.update(fields)
    return body


async def og_create(
    http: aiohttp.ClientSession, fake: FakeOpsgenie, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any, Any]:
    async with http.post(fake.alerts_url, json=body, headers=GENIE if headers is None else headers) as resp:
        return resp.status, await resp.json(), resp.headers


async def og_close(
    http: aiohttp.ClientSession,
    fake: FakeOpsgenie,
    identifier: str,
    identifier_type: str | None = "alias",
    body: Any = None,
) -> tuple[int, Any]:
    params = {} if identifier_type is None else {"identifierType": identifier_type}
    url = f"{fake.alerts_url}/{identifier}/close"
    async with http.post(url, params=params, json=body, headers=GENIE) as resp:
        return resp.status, await resp.json()


async def og_request_status(http: aiohttp.ClientSession, fake: FakeOpsgenie, request_id: str) -> tuple[int, Any]:
    async with http.get(f"{fake.alerts_url}/requests/{request_id}", headers=GENIE) as resp:
        return resp.status, await resp.json()


def assert_accepted(status: int, body: Any) -> None:
    assert status == 202, body
    assert body["result"] == "Request will be processed"
    assert isinstance(body["took"], float)
    uuid.UUID(body["requestId"])


async def test_opsgenie_create(fake_opsgenie: FakeOpsgenie, http: aiohttp.ClientSession) -> None:
    status, body, _ = await og_create(http, fake_opsgenie, og_alert())
    assert_accepted(status, body)
    alert = fake_opsgenie.open_alerts["autoremedy-web"]
    assert (alert.message, alert.priority, alert.count, alert.status) == ("restart of web failed", "P2", 1, "open")
    assert alert.details == {"namespace": "default", "attempts": "3"} and alert.tags == ["autoremedy", "web"]
    code, result = await og_request_status(http, fake_opsgenie, body["requestId"])
    assert code == 200
    assert result["data"]["isSuccess"] is True and result["data"]["alertId"] == alert.id
    assert result["data"]["alias"] == "autoremedy-web" and result["data"]["action"] == "Create"


async def test_opsgenie_default_priority_is_p3(fake_opsgenie: FakeOpsgenie, http: aiohttp.ClientSession) -> None:
    await og_create(http, fake_opsgenie, {"message": "m", "alias": "a"})
    assert fake_opsgenie.alert("a").priority == "P3"


async def test_opsgenie_open_alias_is_deduplicated(fake_opsgenie: FakeOpsgenie, http: aiohttp.ClientSession) -> None:
    for _ in range(3):
        assert_accepted(*(await og_create(http, fake_opsgenie, og_alert()))[:2])
    [alert] = fake_opsgenie.alerts
    assert alert.count == 3 and len(alert.payloads) == 3
    await og_create(http, fake_opsgenie, og_alert(alias="autoremedy-db"))
    assert sorted(fake_opsgenie.open_alerts) == ["autoremedy-db", "autoremedy-web"]


async def test_opsgenie_without_alias_never_deduplicates(
    fake_opsgenie: FakeOpsgenie, http: aiohttp.ClientSession
) -> None:
    await og_create(http, fake_opsgenie, og_alert(alias=None))
    await og_create(http, fake_opsgenie, og_alert(alias=None))
    first, second = fake_opsgenie.alerts
    assert first.alias == first.id and second.alias == second.id
    assert first.count == second.count == 1


async def test_opsgenie_close_by_alias(fake_opsgenie: FakeOpsgenie, http: aiohttp.ClientSession) -> None:
    await og_create(http, fake_opsgenie, og_alert())
    status, body = await og_close(http, fake_opsgenie, "autoremedy-web", body={"user": "autoremedy", "note": "fixed"})
    assert_accepted(status, body)
    alert = fake_opsgenie.alert("autoremedy-web")
    assert alert.status == "closed" and alert.close_payload == {"user": "autoremedy", "note": "fixed"}
    assert fake_opsgenie.open_alerts == {}
    _, result = await og_request_status(http, fake_opsgenie, body["requestId"])
    assert (result["data"]["isSuccess"], result["data"]["action"]) == (True, "Close")
    await og_create(http, fake_opsgenie, og_alert())  # a closed alias no longer de-duplicates
    assert len(fake_opsgenie.alerts) == 2
    assert fake_opsgenie.alert("autoremedy-web").count == 1


async def test_opsgenie_close_unknown_alias_is_accepted_but_fails_later(
    fake_opsgenie: FakeOpsgenie, http: aiohttp.ClientSession
) -> None:
    await og_create(http, fake_opsgenie, og_alert())
    status, body = await og_close(http, fake_opsgenie, "no-such-alias")
    assert_accepted(status, body)
    assert list(fake_opsgenie.open_alerts) == ["autoremedy-web"]
    code, result = await og_request_status(http, fake_opsgenie, body["requestId"])
    assert code == 200
    assert result["data"]["isSuccess"] is False
    assert result["data"]["status"] == "Alert does not exist"
    # closing twice: the second close finds no open alert with that alias
    await og_close(http, fake_opsgenie, "autoremedy-web")
    _, body = await og_close(http, fake_opsgenie, "autoremedy-web")
    _, result = await og_request_status(http, fake_opsgenie, body["requestId"])
    assert result["data"]["isSuccess"] is False


async def test_opsgenie_close_by_id_and_tiny_id(fake_opsgenie: FakeOpsgenie, http: aiohttp.ClientSession) -> None:
    await og_create(http, fake_opsgenie, og_alert(alias="a"))
    await og_create(http, fake_opsgenie, og_alert(alias="b"))
    assert_accepted(*await og_close(http, fake_opsgenie, fake_opsgenie.alert("a").id, identifier_type=None))
    assert_accepted(*await og_close(http, fake_opsgenie, fake_opsgenie.alert("b").tiny_id, identifier_type="tiny"))
    assert fake_opsgenie.open_alerts == {}


async def test_opsgenie_close_rejects_unknown_identifier_type(
    fake_opsgenie: FakeOpsgenie, http: aiohttp.ClientSession
) -> None:
    status, body = await og_close(http, fake_opsgenie, "x", identifier_type="name")
    assert status == 422
    assert "identifierType" in body["errors"]


async def test_opsgenie_close_validates_its_body(fake_opsgenie: FakeOpsgenie, http: aiohttp.ClientSession) -> None:
    await og_create(http, fake_opsgenie, og_alert())
    status, body = await og_close(http, fake_opsgenie, "autoremedy-web", body={"note": "n" * 25001})
    assert (status, list(body["errors"])) == (422, ["note"])
    assert "autoremedy-web" in fake_opsgenie.open_alerts


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "GenieKey wrong-key"}, {"Authorization": f"Bearer {OPSGENIE_API_KEY}"}],
    ids=["missing", "wrong-key", "wrong-scheme"],
)
async def test_opsgenie_authentication(
    fake_opsgenie: FakeOpsgenie, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    status, body, _ = await og_create(http, fake_opsgenie, og_alert(), headers=headers)
    assert status == 401
    assert body["message"] == "Could not authenticate"
    assert isinstance(body["took"], float)
    uuid.UUID(body["requestId"])
    async with http.post(
        f"{fake_opsgenie.alerts_url}/x/close", params={"identifierType": "alias"}, headers=headers
    ) as r:
        assert r.status == 401
    assert fake_opsgenie.alerts == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_without(og_alert(), "message"), "message"),
        (og_alert(message="  "), "message"),
        (og_alert(message="m" * 131), "message"),
        (og_alert(message=42), "message"),
        (og_alert(alias="a" * 513), "alias"),
        (og_alert(description="d" * 15001), "description"),
        (og_alert(entity="e" * 513), "entity"),
        (og_alert(source="s" * 101), "source"),
        (og_alert(priority="P6"), "priority"),
        (og_alert(priority="high"), "priority"),
        (og_alert(tags="autoremedy"), "tags"),
        (og_alert(tags=[f"t{i}" for i in range(21)]), "tags"),
        (og_alert(tags=["t" * 51]), "tags"),
        (og_alert(details=["a"]), "details"),
        (og_alert(details={"nested": {"a": "b"}}), "details"),
        (og_alert(actions=["a"] * 11), "actions"),
        (og_alert(responders=[{"type": "team"}]), "responders[0]"),
        (og_alert(responders=[{"type": "robot", "name": "x"}]), "responders[0]"),
    ],
)
async def test_opsgenie_invalid_alerts(
    fake_opsgenie: FakeOpsgenie, http: aiohttp.ClientSession, body: dict[str, Any], field: str
) -> None:
    status, answer, _ = await og_create(http, fake_opsgenie, body)
    assert status == 422
    assert answer["message"] == "Request body is not processable. Please check the errors."
    assert field in answer["errors"], answer
    assert isinstance(answer["took"], float) and uuid.UUID(answer["requestId"])
    assert fake_opsgenie.alerts == []


async def test_opsgenie_limits_are_inclusive(fake_opsgenie: FakeOpsgenie, http: aiohttp.ClientSession) -> None:
    body = og_alert(
        alias="a" * 512,
        message="m" * 130,
        description="d" * 15000,
        tags=["t" * 50] * 20,
        responders=[{"type": "team", "name": "sre"}],
    )
    status, answer, _ = await og_create(http, fake_opsgenie, body)
    assert_accepted(status, answer)


async def test_opsgenie_priority_error_text(fake_opsgenie: FakeOpsgenie, http: aiohttp.ClientSession) -> None:
    _, answer, _ = await og_create(http, fake_opsgenie, og_alert(priority="P0"))
    assert answer["errors"] == {"priority": "should be one of [ P1, P2, P3, P4, P5 ]"}


async def test_opsgenie_body_format(fake_opsgenie: FakeOpsgenie, http: aiohttp.ClientSession) -> None:
    headers = {**GENIE, "Content-Type": "application/json"}
    async with http.post(fake_opsgenie.alerts_url, data=b"{", headers=headers) as resp:
        assert resp.status == 400
    headers["Content-Type"] = "text/plain"
    async with http.post(fake_opsgenie.alerts_url, data=b'{"message": "m"}', headers=headers) as resp:
        assert resp.status == 415
    async with http.get(f"{fake_opsgenie.alerts_url}/requests/{uuid.uuid4()}", headers=GENIE) as resp:
        assert resp.status == 404
    async with http.get(f"{fake_opsgenie.url}/v1/json/alert", headers=GENIE) as resp:
        assert resp.status == 404
    assert fake_opsgenie.alerts == []


@pytest.mark.parametrize(("fault", "retry_after"), [(429, None), (429, 5), (500, None), (422, None)])
async def test_opsgenie_faults(
    fake_opsgenie: FakeOpsgenie, http: aiohttp.ClientSession, fault: int, retry_after: int | None
) -> None:
    fake_opsgenie.fail_next(fault, operation="create", retry_after=retry_after)
    status, body, headers = await og_create(http, fake_opsgenie, og_alert())
    assert status == fault
    assert "message" in body and isinstance(body["took"], float) and uuid.UUID(body["requestId"])
    assert headers.get("Retry-After") == (None if retry_after is None else str(retry_after))
    assert fake_opsgenie.alerts == []
    assert_accepted(*(await og_create(http, fake_opsgenie, og_alert()))[:2])


async def test_opsgenie_fault_scope(fake_opsgenie: FakeOpsgenie, http: aiohttp.ClientSession) -> None:
    fake_opsgenie.fail_next(500, operation="close")
    assert_accepted(*(await og_create(http, fake_opsgenie, og_alert()))[:2])  # create is not affected
    status, _ = await og_close(http, fake_opsgenie, "autoremedy-web")
    assert status == 500
    assert "autoremedy-web" in fake_opsgenie.open_alerts
    assert_accepted(*await og_close(http, fake_opsgenie, "autoremedy-web"))
    assert fake_opsgenie.open_alerts == {}
    fake_opsgenie.fail_next(503, times=2)  # any operation
    assert (await og_create(http, fake_opsgenie, og_alert()))[0] == 503
    assert (await og_close(http, fake_opsgenie, "autoremedy-web"))[0] == 503
    assert fake_opsgenie.pending_faults == 0


# --------------------------------------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------------------------------------


async def test_fakes_bind_loopback_and_stop(http: aiohttp.ClientSession) -> None:
    for fake in (FakeSlack(), FakePagerDuty(), FakeOpsgenie()):
        async with fake:
            assert fake.url.startswith("http://127.0.0.1:")
            url = fake.url
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.post(f"{url}/api/auth.test"):
                pass


async def test_wait_for_requests(fake_pagerduty: FakePagerDuty, http: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    await pd_send(http, fake_pagerduty, pd_event())
    [request] = await fake_pagerduty.wait_for_requests(1, path="/v2/enqueue", deadline_s=5)
    assert request.json == pd_event() and request.status == 202 and request.received_at >= started
    with pytest.raises(AssertionError, match="2 request"):
        await fake_pagerduty.wait_for_requests(2, deadline_s=0.1)
