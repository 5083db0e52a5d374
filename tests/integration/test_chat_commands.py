"""The chat commands without HTTP or Slack: `Chatops.command` and `Chatops.button` over the real control service, group
committer and SQLite store, as a transport would call them once it has verified the request. What each command
parses, whom it refuses (and that a refusal changes nothing), what it answers, and that every call is audited
with no secret in the answer or the audit row. The signed-request side is in test_chatops.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from autoremedy.chatops.commands import Chatops
from autoremedy.chatops.context import Caller, ChatServices
from autoremedy.chatops.manual import MANUAL_ALERTNAME, PLAYBOOK_LABEL
from autoremedy.chatops.rights import COMMANDS, MANUAL, MAX_RUNS, ROLES
from autoremedy.config.settings import load_settings
from autoremedy.control.service import ControlService
from autoremedy.models.runs import RunStatus
from autoremedy.observability import Metrics
from autoremedy.store.base import AuditRecord
from autoremedy.store.groupcommit import GroupCommitter
from autoremedy.store.sqlite import SQLiteStore
from tests.support.clock import ManualClock
from tests.support.daemon import write_daemon_config
from tests.support.records import NOW, decide, event, new_run, stored
from tests.support.slack import SLACK_BOT_TOKEN

SIGNING_SECRET = "5ee7c0ffee5ee7c0ffee5ee7c0ffee00"
ROLE_OF = {"U0VIEWER": "viewer", "U0OPS": "operator", "U0APPROVER": "approver", "U0ADMIN": "admin", "U0DBA": "approver"}
CHANNEL = "C0PLAIN"
"""A channel with no role, so a caller's own role is what counts (except where a test says otherwise)."""


@dataclass
class Chat:
    chatops: Chatops
    store: SQLiteStore
    manual_rules: dict[str, list[str]]
    """Playbook -> the rules a manual run of it would go to (the daemon asks its ruleset)."""

    async def say(self, user: str, text: str, channel: str = CHANNEL) -> str:
        return (await self.chatops.command(Caller(user, channel, user.lower()), text)).text

    async def audit(self) -> list[AuditRecord]:
        return [a for a in await self.store.list_audit(run_id=None, limit=200) if a.kind == "chatops"]

    async def status_of(self, run_id: str) -> RunStatus:
        run = await self.store.get_run(run_id)
        assert run is not None
        return run.status


@pytest.fixture
async def chat(tmp_path: Path) -> AsyncIterator[Chat]:
    config = write_daemon_config(
        tmp_path,
        rules=[{"name": "r", "matchers": ["alertname=A"], "playbook": "note"}],
        playbooks=[{"name": "note", "target": "t/x", "steps": [{"action": "log", "with": {"message": "m"}}]}],
        # Required by chatops.slack (approval messages are updated with it); nothing is posted in these tests.
        notify={"slack": {"token": SLACK_BOT_TOKEN, "channel": "C0ONCALL", "base_url": "http://127.0.0.1:9/api/"}},
        chatops={
            "slack": {"signing_secret": SIGNING_SECRET},
            "roles": {**ROLE_OF, "C0ONCALL": "operator"},
            "approvers": {"guarded": ["U0DBA"]},
        },
    )
    settings = load_settings(config)
    store = SQLiteStore(tmp_path / "chat.db")
    await store.open()
    metrics = Metrics()
    committer = GroupCommitter(lambda events: store.insert_events(events, now=NOW), metrics=metrics)
    committer.start()
    control = ControlService(
        store=store,
        approvers=settings.chatops.approvers,
        rule_names=lambda: {"r"},
        wake=lambda: None,
        on_denied=lambda run: None,
        instance="test",
        clock=lambda: NOW,
    )
    manual_rules: dict[str, list[str]] = {}

    def match_rules(labels: Mapping[str, str]) -> list[str]:
        assert labels["alertname"] == MANUAL_ALERTNAME
        return manual_rules.get(labels[PLAYBOOK_LABEL], [])

    services = ChatServices(settings, store, control, committer, metrics, match_rules, clock=ManualClock(NOW))
    try:
        yield Chat(Chatops(services), store, manual_rules)
    finally:
        await committer.stop()
        await store.close()


async def held(chat: Chat, run_id: str, *, playbook: str = "note") -> None:
    new = event(f"f-{run_id}")
    alert = await stored(chat.store, new)
    run = replace(new_run(run_id, alert.id, target=f"t/{run_id}", fingerprint=new.fingerprint), playbook=playbook)
    assert await decide(chat.store, alert, run, approval="required") == [RunStatus.AWAITING_APPROVAL]


def below(role: str) -> str:
    """A user whose role is the one just under `role` (or who has none)."""
    rank = ROLES.index(role)
    return "U0NOBODY" if rank == 0 else next(u for u, r in ROLE_OF.items() if r == ROLES[rank - 1])


async def test_help_is_for_anyone_and_lists_every_command(chat: Chat) -> None:
    for text in ("help", "", "   ", "HELP"):
        answer = await chat.say("U0NOBODY", text)
        for command in COMMANDS.values():
            assert command.usage in answer, (text, command.usage)
    assert [a.data["allowed"] for a in await chat.audit()] == [True] * 4


async def test_an_unknown_command_is_refused_and_named(chat: Chat) -> None:
    answer = await chat.chatops.command(Caller("U0ADMIN", CHANNEL), "reboot everything")
    assert not answer.allowed and "unknown command `reboot`" in answer.text
    (record,) = await chat.audit()
    assert record.actor == "slack:U0ADMIN" and record.data["allowed"] is False and record.at == NOW
    assert record.data["command"] == "/autoremedy reboot everything"


@pytest.mark.parametrize("name", [name for name, command in COMMANDS.items() if command.role is not None])
async def test_a_role_below_the_commands_is_refused_and_changes_nothing(chat: Chat, name: str) -> None:
    await held(chat, "h1")
    chat.manual_rules["note"] = ["r"]  # a manual run would be taken: only the refusal stops it
    needed = COMMANDS[name].role
    assert needed is not None
    text = {"approve": "approve h1", "deny": "deny h1", "pause": "pause", "resume": "resume", MANUAL: "run note a=b"}
    answer = await chat.chatops.command(Caller(below(needed), CHANNEL), text.get(name, name))
    assert not answer.allowed
    assert answer.text.startswith(f"refused: `{name}` needs the role `{needed}`")
    assert await chat.status_of("h1") is RunStatus.AWAITING_APPROVAL
    assert await chat.store.pauses() == []
    assert await chat.store.pending_events() == 0  # no manual alert was stored (the held run's event is decided)
    (record,) = await chat.audit()
    assert record.data["allowed"] is False and record.message.split(": ", 1)[1].startswith("refused: ")


async def test_a_caller_has_the_higher_of_their_role_and_the_channels(chat: Chat) -> None:
    refused = await chat.say("U0VIEWER", "pause")
    assert refused.startswith("refused: `pause` needs the role `operator` (your role is `viewer`")
    assert (await chat.say("U0VIEWER", "pause -- in the on-call channel", channel="C0ONCALL")).startswith(
        "<@U0VIEWER> paused all automation"
    )
    assert [(p.scope, p.actor, p.reason) for p in await chat.store.pauses()] == [
        ("all", "slack:U0VIEWER", "in the on-call channel")
    ]
    assert (await chat.say("U0NOBODY", "status")).startswith("refused: `status` needs the role `viewer` (you have no")


async def test_approve_and_deny_decide_held_runs_and_say_who(chat: Chat) -> None:
    await held(chat, "a1")
    await held(chat, "d1")
    approved = await chat.chatops.command(Caller("U0APPROVER", CHANNEL), "approve a1 looked at the graphs")
    assert approved.allowed and approved.public and approved.run is not None and approved.run.id == "a1"
    assert approved.text == "<@U0APPROVER> approved run `a1` (note): looked at the graphs"
    assert await chat.status_of("a1") is RunStatus.PLANNED
    denied = await chat.chatops.button(Caller("U0ADMIN", CHANNEL), "deny", "d1")
    assert denied.text == "<@U0ADMIN> denied run `d1` (note): deny button in Slack"
    assert await chat.status_of("d1") is RunStatus.SKIPPED

    again = await chat.say("U0APPROVER", "approve a1")
    assert again == "run `a1` is not awaiting approval (it is planned)"
    assert await chat.say("U0APPROVER", "deny nope") == "no run `nope`"
    assert await chat.say("U0APPROVER", "approve") == f"usage: `/autoremedy {COMMANDS['approve'].usage}`"
    by_run = {a.run_id: a for a in await chat.audit() if a.run_id is not None}
    assert by_run["a1"].actor == "slack:U0APPROVER" and by_run["d1"].data["command"] == "button deny d1"


async def test_a_playbooks_approvers_list_is_the_only_one_that_may_decide_it(chat: Chat) -> None:
    await held(chat, "g1", playbook="guarded")
    refused = await chat.chatops.command(Caller("U0ADMIN", CHANNEL), "approve g1")
    assert not refused.allowed and "not an approver of playbook 'guarded'" in refused.text
    assert await chat.status_of("g1") is RunStatus.AWAITING_APPROVAL
    assert (await chat.say("U0DBA", "approve g1")).startswith("<@U0DBA> approved run `g1` (guarded)")


async def test_pause_and_resume_one_rule_or_everything(chat: Chat) -> None:
    assert await chat.say("U0OPS", "pause r -- deploy freeze") == "<@U0OPS> paused rule `r`: deploy freeze"
    assert await chat.say("U0OPS", "pause") == "<@U0OPS> paused all automation"
    assert {(p.scope, p.reason) for p in await chat.store.pauses()} == {("r", "deploy freeze"), ("all", "")}
    assert "no rule 'nope'" in await chat.say("U0OPS", "pause nope")
    assert await chat.say("U0OPS", "resume r") == "<@U0OPS> resumed rule `r`"
    assert await chat.say("U0OPS", "resume r") == "rule `r` was not paused"
    assert await chat.say("U0OPS", "resume") == "<@U0OPS> resumed all automation"
    assert await chat.store.pauses() == []


async def test_runs_and_run_read_the_store(chat: Chat) -> None:
    assert await chat.say("U0VIEWER", "runs") == "no runs yet"
    await held(chat, "r1")
    await held(chat, "r2")
    listed = await chat.say("U0VIEWER", "runs 1")
    assert "r2" in listed and "r1" not in listed
    assert "r1" in await chat.say("U0VIEWER", "runs")
    for bad in ("0", str(MAX_RUNS + 1), "ten"):
        assert (await chat.say("U0VIEWER", f"runs {bad}")).startswith("usage: `/autoremedy runs [N]`"), bad
    detail = await chat.say("U0VIEWER", "run r1")
    assert "r1" in detail and "awaiting_approval" in detail
    assert await chat.say("U0VIEWER", "run nope") == "no run `nope`"
    assert await chat.say("U0VIEWER", "run") == "usage: `/autoremedy run ID`"


async def test_explain_tells_an_alerts_decisions_or_that_none_was_recorded(chat: Chat) -> None:
    await held(chat, "e1")
    explained = await chat.say("U0VIEWER", "explain f-e1")
    assert explained.startswith("*Alert `f-e1`*, oldest first") and "e1" in explained
    assert await chat.say("U0VIEWER", "explain f-none") == "nothing recorded about alert `f-none` (or it was pruned)"
    assert await chat.say("U0VIEWER", "explain") == "usage: `/autoremedy explain FINGERPRINT`"


async def test_a_manual_run_is_an_alert_the_rules_decide(chat: Chat) -> None:
    nothing = await chat.say("U0OPS", "run note app=web")
    assert nothing.startswith("no rule takes manual runs of playbook `note`")
    assert await chat.store.pending_events() == 0

    chat.manual_rules["note"] = ["manual-note"]
    answer = await chat.chatops.command(Caller("U0OPS", CHANNEL), "run note app=web --dry-run")
    assert answer.public and answer.fingerprint is not None
    assert answer.text.startswith("<@U0OPS> asked for a dry run of `note` (app=web): rule `manual-note` decides it")
    assert await chat.store.pending_events() == 1
    (alert,) = await chat.store.claim_events(limit=10, now=NOW)
    assert alert.fingerprint == answer.fingerprint and alert.labels["app"] == "web"
    assert alert.starts_at.startswith("2026-11-26T22:15")  # the chat services' clock, not the wall clock
    assert alert.labels["alertname"] == MANUAL_ALERTNAME and alert.labels[PLAYBOOK_LABEL] == "note"


async def test_no_secret_reaches_an_answer_a_reason_or_the_audit_log(chat: Chat) -> None:
    await held(chat, "s1")
    said = [
        await chat.say("U0VIEWER", f"explain {SIGNING_SECRET}"),
        await chat.say("U0APPROVER", f"deny s1 the key is {SIGNING_SECRET}"),
        await chat.say("U0OPS", f"pause r -- {SIGNING_SECRET}"),
        await chat.say("U0OPS", f"{SIGNING_SECRET} please"),
        await chat.say("U0OPS", f"pause nope -- {SLACK_BOT_TOKEN}"),
    ]
    stored_text = [repr(a) for a in await chat.audit()] + [repr(p) for p in await chat.store.pauses()]
    stored_text += [repr(a) for a in await chat.store.list_audit(run_id="s1", limit=20)]
    assert await chat.status_of("s1") is RunStatus.SKIPPED
    for text in said + stored_text:
        assert SIGNING_SECRET not in text and SLACK_BOT_TOKEN not in text
    assert len(await chat.audit()) == 5


async def test_control_characters_make_an_unknown_command_not_a_store_error(chat: Chat) -> None:
    answer = await chat.chatops.command(Caller.of("U0OPS\x00", CHANNEL), "st\x00atus\udc80")
    assert not answer.allowed and answer.text.startswith("unknown command `st`")
    (record,) = await chat.audit()
    assert "\x00" not in record.data["command"] and record.actor == "slack:U0OPS "
