"""Slack chatops through a running daemon: signed requests (valid, forged, stale, replayed, wrong content type),
roles against every command, approvals by command and by button (the message updated in the fake Slack), the
audit log, and no secret in any answer."""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from autoremedy.chatops.rights import COMMANDS, MANUAL, ROLES
from tests.support.inprocess import LOG_PLAYBOOK, TOKEN, RunningDaemon, StartDaemon, fixture_payload
from tests.support.procs import wait_for
from tests.support.rawhttp import raw_request
from tests.support.slack import SLACK_APP_TOKEN, SLACK_BOT_TOKEN, FakeSlack, SlackMessage

SECRET = "8f742231b10e8888abcd99b1c2d3e4f5"
FIRING = fixture_payload("firing.json")
FAILOVER = {**LOG_PLAYBOOK, "name": "failover-postgres"}
USERS = {"U0NOBODY": None, "U0VIEWER": "viewer", "U0OPS": "operator", "U0APPROVER": "approver", "U0ADMIN": "admin"}
SECRETS = (SECRET, SLACK_BOT_TOKEN, TOKEN)
_triggers = itertools.count()


def chatops_config(slack: FakeSlack, *, playbook: str = "note") -> dict[str, Any]:
    return {
        "engine": {"poll_interval": "50ms"},
        "notify": {"slack": {"token": SLACK_BOT_TOKEN, "channel": "C0ONCALL", "base_url": slack.api_url}},
        "escalation": {"default": ["slack"], "retry_initial": "50ms"},
        "chatops": {
            "slack": {"signing_secret": SECRET},
            "roles": {
                **{user: role for user, role in USERS.items() if role},
                "U0DBA": "approver",
                "C0ONCALL": "viewer",
            },
            "approvers": {"failover-postgres": ["U0DBA"]},
        },
    }


def rule(playbook: str = "note") -> dict[str, Any]:
    return {"name": "demo", "matchers": ["alertname=DemoAppDown"], "playbook": playbook, "approval": "required"}


def sign(body: bytes, timestamp: int, secret: str = SECRET) -> dict[str, str]:
    base = f"v0:{timestamp}:".encode() + body
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest(),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def command_body(text: str, user: str, channel: str) -> bytes:
    return urlencode(command_fields(text, user, channel)).encode()


def command_fields(text: str, user: str, channel: str) -> dict[str, str]:
    return {
        "token": "deprecated-verification-token",
        "team_id": "T0FAKETEAM",
        "channel_id": channel,
        "user_id": user,
        "user_name": user.lower(),
        "command": "/autoremedy",
        "text": text,
        "response_url": "https://hooks.slack.invalid/commands/1",
        "trigger_id": f"trigger-{next(_triggers)}",  # Slack makes every request unique; so do the tests
    }


async def post(d: RunningDaemon, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with d.http.post(f"{d.url}{path}", data=body, headers=headers) as response:
        text = await response.text()
        for secret in SECRETS:
            assert secret not in text
        is_json = response.content_type == "application/json"
        return response.status, (json.loads(text) if is_json else text)


async def slash(d: RunningDaemon, text: str, user: str, channel: str = "C0RANDOM") -> dict[str, Any]:
    body = command_body(text, user, channel)
    status, answer = await post(d, "/slack/commands", body, sign(body, int(time.time())))
    assert status == 200, answer
    assert isinstance(answer, dict) and answer["response_type"] in {"ephemeral", "in_channel"}
    return answer


async def press(
    d: RunningDaemon, slack: FakeSlack, message: SlackMessage, user: str, action: str, key: str = "1"
) -> int:
    payload = press_payload(slack, message, user, action, key)
    body = urlencode({"payload": json.dumps(payload)}).encode()
    status, _ = await post(d, "/slack/interactions", body, sign(body, int(time.time())))
    return status


def press_payload(slack: FakeSlack, message: SlackMessage, user: str, action: str, key: str) -> dict[str, Any]:
    run_id = next(e["value"] for b in message.blocks or [] if b["type"] == "actions" for e in b["elements"])
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "channel": {"id": message.channel},
        "container": {"type": "message", "message_ts": message.ts, "channel_id": message.channel},
        "message": {"ts": message.ts, "text": message.text, "blocks": message.blocks},
        "response_url": slack.response_url(key),
        "trigger_id": f"trigger-{next(_triggers)}",
        "actions": [{"type": "button", "action_id": f"autoremedy_{action}", "value": run_id}],
    }


async def held_run(d: RunningDaemon) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        runs = await d.runs()
        return runs[0] if runs and runs[0]["status"] == "awaiting_approval" else None

    return await wait_for(found, timeout=15, message="a run awaiting approval")


async def approval_message(slack: FakeSlack) -> SlackMessage:
    async def posted() -> SlackMessage | None:
        return next(iter(slack.top_level()), None)

    return await wait_for(posted, timeout=15, message="the approval message")


async def chat_audit(d: RunningDaemon) -> list[dict[str, Any]]:
    entries = await d.daemon.store.list_audit(run_id=None, limit=500)
    return [e.data | {"actor": e.actor, "message": e.message} for e in reversed(entries) if e.kind == "chatops"]


async def test_only_signed_fresh_unseen_form_requests_are_served(
    start_daemon: StartDaemon, fake_slack: FakeSlack
) -> None:
    d = await start_daemon(rules=[rule()], playbooks=[LOG_PLAYBOOK], extra=chatops_config(fake_slack))
    now = int(time.time())
    body = command_body("status", "U0VIEWER", "C0RANDOM")
    assert (await post(d, "/slack/commands", body, sign(body, now)))[0] == 200
    replayed = await post(d, "/slack/commands", body, sign(body, now))
    assert replayed == (401, {"error": "replayed request"})

    other = command_body("status", "U0VIEWER", "C0RANDOM")
    forged = await post(d, "/slack/commands", other, sign(other, now, secret="not-the-secret"))
    assert forged == (401, {"error": "invalid Slack signature"})
    tampered = await post(d, "/slack/commands", other.replace(b"U0VIEWER", b"U0ADMIN"), sign(other, now))
    assert tampered[0] == 401
    stale = await post(d, "/slack/commands", other, sign(other, now - 301))
    assert stale[0] == 401 and "stale" in stale[1]["error"]
    unsigned = await post(d, "/slack/commands", other, {"Content-Type": "application/x-www-form-urlencoded"})
    assert unsigned[0] == 401
    as_json = await post(d, "/slack/commands", other, {**sign(other, now), "Content-Type": "application/json"})
    assert as_json[0] == 415
    assert (await post(d, "/slack/interactions", other, sign(other, now, secret="x")))[0] == 401
    # The refused requests never reached a command: only the first is in the audit log.
    assert [(e["user"], e["command"]) for e in await chat_audit(d)] == [("U0VIEWER", "/autoremedy status")]
    # The genuine signature, sent again a second later, is still refused.
    assert (await post(d, "/slack/commands", body, sign(body, now)))[0] == 401


async def test_without_chatops_config_there_is_no_slack_endpoint(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[rule()], playbooks=[LOG_PLAYBOOK])
    body = command_body("status", "U0ADMIN", "C0RANDOM")
    assert (await post(d, "/slack/commands", body, sign(body, int(time.time()))))[0] == 404


CASES = [
    ("status", "viewer"),
    ("runs 5", "viewer"),
    ("run nope", "viewer"),
    ("explain nope", "viewer"),
    ("run note app=web --dry-run", "operator"),
    ("pause demo", "operator"),
    ("resume demo", "operator"),
    ("approve nope checked", "approver"),
    ("deny nope no", "approver"),
]


async def test_roles_against_every_command(start_daemon: StartDaemon, fake_slack: FakeSlack) -> None:
    d = await start_daemon(rules=[rule()], playbooks=[LOG_PLAYBOOK], extra=chatops_config(fake_slack))
    keys = {MANUAL if len(text.split()) > 2 and text.startswith("run ") else text.split()[0] for text, _ in CASES}
    assert keys | {"help"} == set(COMMANDS)
    expected = []
    for user, role in USERS.items():
        for text, needed in CASES:
            answer = await slash(d, text, user)
            allowed = role is not None and ROLES.index(role) >= ROLES.index(needed)
            if allowed:
                assert not answer["text"].startswith("refused"), (user, text, answer)
            else:
                assert answer == {"response_type": "ephemeral", "text": answer["text"]}
                assert f"needs the role `{needed}`" in answer["text"], (user, text, answer)
            expected.append((user, f"/autoremedy {text}", allowed))
    # A channel's role counts: anyone in the on-call channel may look, not steer.
    assert not (await slash(d, "status", "U0NOBODY", "C0ONCALL"))["text"].startswith("refused")
    assert "needs the role `operator`" in (await slash(d, "pause", "U0NOBODY", "C0ONCALL"))["text"]
    expected += [("U0NOBODY", "/autoremedy status", True), ("U0NOBODY", "/autoremedy pause", False)]
    audit = await chat_audit(d)
    assert [(e["user"], e["command"], e["allowed"]) for e in audit] == expected
    refused = audit[0]
    assert (refused["channel"], refused["actor"], refused["name"]) == ("C0RANDOM", "slack:U0NOBODY", "u0nobody")
    assert refused["result"].startswith("refused: `status` needs the role `viewer`")


async def test_help_lists_every_command_to_anyone(start_daemon: StartDaemon, fake_slack: FakeSlack) -> None:
    d = await start_daemon(rules=[rule()], playbooks=[LOG_PLAYBOOK], extra=chatops_config(fake_slack))
    for text in ("help", ""):
        answer = await slash(d, text, "U0NOBODY")
        for command in COMMANDS.values():
            assert command.usage in answer["text"]
    assert "unknown command" in (await slash(d, "launch missiles", "U0ADMIN"))["text"]


async def test_status_pause_resume_and_runs(start_daemon: StartDaemon, fake_slack: FakeSlack) -> None:
    d = await start_daemon(rules=[rule()], playbooks=[LOG_PLAYBOOK], extra=chatops_config(fake_slack))
    await d.post_alerts(FIRING)
    held = await held_run(d)
    paused = await slash(d, f"pause demo -- migrating, token {SLACK_BOT_TOKEN}", "U0OPS")
    assert paused["response_type"] == "in_channel" and "paused rule `demo`" in paused["text"]
    assert "<redacted>" in paused["text"]
    (pause,) = await d.daemon.store.pauses()
    assert (pause.scope, pause.actor) == ("demo", "slack:U0OPS") and SLACK_BOT_TOKEN not in pause.reason
    assert "no rule 'nope'" in (await slash(d, "pause nope", "U0OPS"))["text"]
    status = (await slash(d, "status", "U0VIEWER"))["text"]
    assert "awaiting_approval 1" in status and "`demo` by slack:U0OPS" in status and "Breaker: closed" in status
    resumed = await slash(d, "resume demo", "U0OPS")
    assert resumed["response_type"] == "in_channel" and "resumed rule `demo`" in resumed["text"]
    assert "was not paused" in (await slash(d, "resume demo", "U0OPS"))["text"]
    listed = (await slash(d, "runs", "U0VIEWER"))["text"]
    assert held["id"] in listed and "awaiting_approval" in listed
    one = (await slash(d, f"run {held['id']}", "U0VIEWER"))["text"]
    assert held["fingerprint"] in one and "(log)" in one
    assert "between 1 and 50" in (await slash(d, "runs 500", "U0VIEWER"))["text"]


async def test_approve_by_command_runs_the_playbook(start_daemon: StartDaemon, fake_slack: FakeSlack) -> None:
    d = await start_daemon(rules=[rule()], playbooks=[LOG_PLAYBOOK], extra=chatops_config(fake_slack))
    await d.post_alerts(FIRING)
    held = await held_run(d)
    answer = await slash(d, f"approve {held['id']} looks safe", "U0APPROVER")
    assert answer["response_type"] == "in_channel" and f"<@U0APPROVER> approved run `{held['id']}`" in answer["text"]
    again = await slash(d, f"deny {held['id']}", "U0ADMIN")
    assert "is not awaiting approval" in again["text"]

    async def succeeded() -> bool:
        return (await d.runs())[0]["status"] == "succeeded"

    await wait_for(succeeded, timeout=15, message="the approved run succeeds")
    audit = await d.daemon.store.list_audit(run_id=held["id"], limit=50)
    approved = next(a for a in audit if a.kind == "approved")
    assert approved.actor == "slack:U0APPROVER" and "looks safe" in approved.message
    chat = next(a for a in audit if a.kind == "chatops")
    assert chat.data["allowed"] is True and chat.data["user"] == "U0APPROVER"


async def test_explain_shows_the_rules_verdicts_and_decisions(start_daemon: StartDaemon, fake_slack: FakeSlack) -> None:
    d = await start_daemon(rules=[rule()], playbooks=[LOG_PLAYBOOK], extra=chatops_config(fake_slack))
    await d.post_alerts(FIRING)
    held = await held_run(d)
    await slash(d, f"approve {held['id']} go", "U0APPROVER")
    answer = (await slash(d, f"explain {held['fingerprint']}", "U0VIEWER"))["text"]
    lines = answer.splitlines()
    assert held["fingerprint"] in lines[0]
    verdict = next(line for line in lines if "matched" in line)
    assert "rule `demo` matched → playbook `note`" in verdict and "guardrail *awaiting_approval*" in verdict
    assert any("approved run `" in line and "slack:U0APPROVER" in line for line in lines)
    assert "nothing recorded" in (await slash(d, "explain nope", "U0VIEWER"))["text"]


MANUAL_RULE = {
    "name": "manual-note",
    "matchers": ['alertname="manual"', 'autoremedy_playbook="note"'],
    "playbook": "note",
    "cooldown": "1h",
}


async def runs_of(d: RunningDaemon, fingerprint: str, *statuses: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        return next((r for r in await d.runs() if r["fingerprint"] == fingerprint and r["status"] in statuses), None)

    return await wait_for(found, timeout=15, message=f"a run of {fingerprint} in {statuses}")


def fingerprint_in(answer: dict[str, Any]) -> str:
    return answer["text"].rsplit("/autoremedy explain ", 1)[1].strip("`")


async def test_manual_runs_go_through_the_rules_and_guardrails(
    start_daemon: StartDaemon, fake_slack: FakeSlack
) -> None:
    d = await start_daemon(rules=[rule(), MANUAL_RULE], playbooks=[LOG_PLAYBOOK], extra=chatops_config(fake_slack))
    asked = await slash(d, "run note namespace=shop app=web", "U0OPS")
    assert asked["response_type"] == "in_channel" and "rule `manual-note` decides it" in asked["text"]
    first = await runs_of(d, fingerprint_in(asked), "succeeded")
    assert (first["rule"], first["target"], first["dry_run"]) == ("manual-note", "app/shop/web", False)
    event = await d.daemon.store.get_event(first["event_id"])
    assert event is not None and event.labels["alertname"] == "manual"
    assert event.labels["autoremedy_requested_by"] == "slack:U0OPS"

    again = await slash(d, "run note namespace=shop app=web", "U0ADMIN")
    cooled = await runs_of(d, fingerprint_in(again), "skipped")
    assert cooled["guardrail"] == "cooldown"
    rehearsed = await slash(d, "run note namespace=shop app=api --dry-run", "U0OPS")
    assert "asked for a dry run" in rehearsed["text"]
    assert (await runs_of(d, fingerprint_in(rehearsed), "dry_run"))["target"] == "app/shop/api"
    story = (await slash(d, f"explain {fingerprint_in(asked)}", "U0VIEWER"))["text"]
    assert "rule `manual-note` matched" in story and "slack:U0OPS" in story

    assert "needs the role `operator`" in (await slash(d, "run note app=web x=y", "U0VIEWER"))["text"]
    assert "no rule takes manual runs of playbook `other`" in (await slash(d, "run other app=web", "U0OPS"))["text"]
    assert "is set by autoremedy" in (await slash(d, "run note alertname=x app=y", "U0OPS"))["text"]
    assert "looks like a secret" in (await slash(d, "run note api_token=abc app=y", "U0OPS"))["text"]
    assert "is not a label" in (await slash(d, "run note app web", "U0OPS"))["text"]
    assert len(await d.runs()) == 3


async def test_a_playbook_can_require_named_approvers(start_daemon: StartDaemon, fake_slack: FakeSlack) -> None:
    d = await start_daemon(rules=[rule("failover-postgres")], playbooks=[FAILOVER], extra=chatops_config(fake_slack))
    await d.post_alerts(FIRING)
    held = await held_run(d)
    for user in ("U0APPROVER", "U0ADMIN"):
        refused = await slash(d, f"approve {held['id']}", user)
        assert refused["response_type"] == "ephemeral"
        assert "chatops.approvers.failover-postgres" in refused["text"]
    assert (await d.runs())[0]["status"] == "awaiting_approval"
    denied = await slash(d, f"deny {held['id']} not now", "U0DBA")
    assert "<@U0DBA> denied" in denied["text"]
    denied_run = (await d.runs())[0]
    assert (denied_run["status"], denied_run["guardrail"]) == ("skipped", "denied")


async def test_buttons_approve_and_update_the_message(start_daemon: StartDaemon, fake_slack: FakeSlack) -> None:
    d = await start_daemon(rules=[rule()], playbooks=[LOG_PLAYBOOK], extra=chatops_config(fake_slack))
    await d.post_alerts(FIRING)
    held = await held_run(d)
    posted = await approval_message(fake_slack)
    message = copy.deepcopy(posted)  # as a client still shows it after the update (the fake's copy changes)
    (actions,) = [b for b in message.blocks or [] if b["type"] == "actions"]
    assert [(e["text"]["text"], e["value"]) for e in actions["elements"]] == [
        ("Approve", held["id"]),
        ("Deny", held["id"]),
    ]

    assert await press(d, fake_slack, message, "U0VIEWER", "approve", key="viewer") == 200
    assert fake_slack.updates == []
    (refusal,) = fake_slack.responses("viewer")
    assert refusal["response_type"] == "ephemeral" and "needs the role `approver`" in refusal["text"]

    assert await press(d, fake_slack, message, "U0APPROVER", "approve") == 200
    (update,) = fake_slack.updates
    assert update.ts == message.ts and update.channel == "C0ONCALL"
    assert not any(b["type"] == "actions" for b in update.blocks or [])
    said = json.dumps(update.blocks)
    assert "Approved by <@U0APPROVER> at " in said and "Approved by <@U0APPROVER>" in update.text
    run = await d.daemon.store.get_run(held["id"])
    assert run is not None and run.status.value in {"planned", "running", "succeeded"}

    assert await press(d, fake_slack, message, "U0ADMIN", "deny", key="late") == 200
    (late,) = fake_slack.responses("late")
    assert "is not awaiting approval" in late["text"] and len(fake_slack.updates) == 1
    audit = [(e["user"], e["command"].split()[:2], e["allowed"]) for e in await chat_audit(d)]
    assert audit == [
        ("U0VIEWER", ["button", "approve"], False),
        ("U0APPROVER", ["button", "approve"], True),
        ("U0ADMIN", ["button", "deny"], True),
    ]


async def test_deny_button(start_daemon: StartDaemon, fake_slack: FakeSlack) -> None:
    d = await start_daemon(rules=[rule()], playbooks=[LOG_PLAYBOOK], extra=chatops_config(fake_slack))
    await d.post_alerts(FIRING)
    held = await held_run(d)
    message = await approval_message(fake_slack)
    assert await press(d, fake_slack, message, "U0APPROVER", "deny") == 200
    (update,) = fake_slack.updates
    assert "Denied by <@U0APPROVER>" in json.dumps(update.blocks)
    run = await d.daemon.store.get_run(held["id"])
    assert run is not None and (run.status.value, run.guardrail) == ("skipped", "denied")


@pytest.mark.parametrize("text", ["status", "runs", "help"])
async def test_no_secret_in_answers(start_daemon: StartDaemon, fake_slack: FakeSlack, text: str) -> None:
    d = await start_daemon(rules=[rule()], playbooks=[LOG_PLAYBOOK], extra=chatops_config(fake_slack))
    await slash(d, f"pause -- {SECRET} {TOKEN}", "U0ADMIN")
    answer = json.dumps(await slash(d, text, "U0ADMIN"))
    for secret in SECRETS:
        assert secret not in answer
    for entry in await d.daemon.store.list_audit(run_id=None, limit=100):
        for secret in SECRETS:
            assert secret not in entry.message and secret not in json.dumps(entry.data)


async def test_socket_mode_serves_the_same_commands_and_buttons(
    start_daemon: StartDaemon, fake_slack: FakeSlack
) -> None:
    config = chatops_config(fake_slack)
    config["chatops"]["slack"] = {"app_token": SLACK_APP_TOKEN}
    d = await start_daemon(rules=[rule()], playbooks=[LOG_PLAYBOOK], extra=config)
    await wait_for(lambda: bool(fake_slack.sockets), timeout=15, message="the Socket Mode client connects")
    body = command_body("status", "U0ADMIN", "C0RANDOM")
    assert (await post(d, "/slack/commands", body, sign(body, int(time.time()))))[0] == 404  # no HTTP endpoint

    async def acked(envelope_id: str) -> dict[str, Any]:
        return await wait_for(lambda: fake_slack.ack(envelope_id), timeout=15, message=f"ack of {envelope_id}")

    status = await acked(await fake_slack.send_envelope("slash_commands", command_fields("status", "U0VIEWER", "C1")))
    assert status["payload"]["response_type"] == "ephemeral" and "Breaker: closed" in status["payload"]["text"]
    refused = await acked(await fake_slack.send_envelope("slash_commands", command_fields("pause", "U0VIEWER", "C1")))
    assert "needs the role `operator`" in refused["payload"]["text"]

    await d.post_alerts(FIRING)
    held = await held_run(d)
    message = copy.deepcopy(await approval_message(fake_slack))
    pressed = press_payload(fake_slack, message, "U0APPROVER", "approve", "1")
    envelope = await fake_slack.send_envelope("interactive", pressed)
    assert "payload" not in await acked(envelope)
    await wait_for(lambda: bool(fake_slack.updates), timeout=15, message="the message is updated")
    assert "Approved by <@U0APPROVER>" in json.dumps(fake_slack.updates[0].blocks)
    run = await d.daemon.store.get_run(held["id"])
    assert run is not None and run.status.value != "awaiting_approval"

    # A redelivered envelope is acknowledged again but not acted on twice.
    await fake_slack.send_envelope("interactive", pressed, envelope_id=envelope)
    await wait_for(
        lambda: len([m for m in fake_slack.socket_messages if m.get("envelope_id") == envelope]) == 2,
        timeout=15,
        message="the redelivery is acknowledged",
    )
    assert len([e for e in await chat_audit(d) if e["command"].startswith("button")]) == 1

    # Slack closes the socket (as before a refresh): the client reconnects by itself and is served again.
    await fake_slack.drop_sockets()
    await wait_for(
        lambda: fake_slack.socket_connections >= 2 and bool(fake_slack.sockets),
        timeout=30,
        message="the client reconnects",
    )
    again = await acked(await fake_slack.send_envelope("slash_commands", command_fields("runs 1", "U0VIEWER", "C1")))
    assert held["id"] in again["payload"]["text"]


ARABIC_DIGITS = "\u0661\u0667" + "\u0660" * 8
"""str.isdigit() says yes, int() would take them: Slack's timestamp is ASCII digits only."""


def hostile_requests(now: int) -> list[tuple[str, str, bytes, dict[str, str | bytes]]]:
    """(case, path, body, headers) that must each get 401, never a 5xx."""
    body = command_body("status", "U0ADMIN", "C0RANDOM")
    not_utf8 = b"text=\xff\xfe&user_id=U0ADMIN&channel_id=C0RANDOM"
    payload_not_utf8 = b"payload=%7B%22type%22%3A%22block_actions%22%7D\xc3\x28"
    cases: list[tuple[str, str, bytes, dict[str, str | bytes]]] = []
    for path in ("/slack/commands", "/slack/interactions"):
        cases += [
            ("timestamp-superscript", path, body, {**sign(body, now), "X-Slack-Request-Timestamp": "²".encode()}),
            ("timestamp-arabic-digits", path, body, {**sign(body, now), "X-Slack-Request-Timestamp": ARABIC_DIGITS}),
            ("timestamp-huge", path, body, {**sign(body, now), "X-Slack-Request-Timestamp": "9" * 400}),
            ("timestamp-negative", path, body, {**sign(body, now), "X-Slack-Request-Timestamp": "-1"}),
            ("signature-not-ascii", path, body, {**sign(body, now), "X-Slack-Signature": "v0=é".encode()}),
            ("signature-latin1", path, body, {**sign(body, now), "X-Slack-Signature": b"v0=\xe9\xff"}),
            ("timestamp-latin1", path, body, {**sign(body, now), "X-Slack-Request-Timestamp": b"17\xb2"}),
            ("body-not-utf8-forged", path, not_utf8, {**sign(body, now)}),
            ("body-not-utf8-signed", path, not_utf8, sign(not_utf8, now)),
            ("payload-not-utf8-signed", path, payload_not_utf8, sign(payload_not_utf8, now)),
        ]
    return cases


async def test_hostile_slack_requests_get_401_never_5xx(start_daemon: StartDaemon, fake_slack: FakeSlack) -> None:
    d = await start_daemon(rules=[rule()], playbooks=[LOG_PLAYBOOK], extra=chatops_config(fake_slack))
    for case, path, body, headers in hostile_requests(int(time.time())):
        status, answer = await raw_request(d.url, "POST", path, headers=headers, body=body)
        assert status == 401, (case, path, answer)
        assert json.loads(answer)["error"], case
    assert await chat_audit(d) == []  # none of them reached a command
    async with d.http.get(f"{d.url}/readyz") as response:
        assert response.status == 200


async def test_slack_approvals_are_recorded_as_the_slack_user(start_daemon: StartDaemon, fake_slack: FakeSlack) -> None:
    d = await start_daemon(rules=[rule()], playbooks=[LOG_PLAYBOOK], extra=chatops_config(fake_slack))
    await d.post_alerts(FIRING)
    held = await held_run(d)
    message = copy.deepcopy(await approval_message(fake_slack))
    assert await press(d, fake_slack, message, "U0APPROVER", "approve") == 200
    audit = await d.daemon.store.list_audit(run_id=held["id"], limit=50)
    assert [a.actor for a in audit if a.kind == "approved"] == ["slack:U0APPROVER"]
    (chat,) = [a for a in audit if a.kind == "chatops"]
    assert (chat.actor, chat.data["name"]) == ("slack:U0APPROVER", "u0approver")
