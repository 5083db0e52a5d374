"""Chat commands and buttons, whatever carries them: the caller's role checked (rights.py), the command run over
the control service (approvals, pauses, status) or the store's reads (runs, explain), every command recorded in
the audit log, allowed or refused, and the answer scrubbed of every configured secret.

A transport (slack_http.py, socketmode.py) verifies the request and hands over the caller and the text.
"""

from __future__ import annotations

from typing import Final

from autoremedy.chatops.context import Answer, Caller, ChatServices, printable
from autoremedy.chatops.manual import MANUAL_ALERTNAME, PLAYBOOK_LABEL, manual_event, parse_manual
from autoremedy.chatops.rights import COMMANDS, DEFAULT_RUNS, MANUAL, MAX_RUNS, Refused, principal_of, require
from autoremedy.chatops.text import explain_line, help_text, plain, run_detail, run_line, secrets_of, status_text
from autoremedy.control.service import Forbidden, UnknownRule, UnknownRun
from autoremedy.decide.text import ellipsize, one_line, scrub, slack_escape
from autoremedy.observability import get_logger
from autoremedy.store.base import AuditEntry, NotAwaitingApproval

log = get_logger("autoremedy.chatops")

AUDIT_KIND: Final = "chatops"
ANSWER_MAX: Final = 3500
EXPLAIN_ENTRIES: Final = 30
REASON_MAX: Final = 2000
DECISIONS: Final = frozenset({"approve", "deny"})


class Chatops:
    def __init__(self, services: ChatServices) -> None:
        self._services = services
        self._control = services.control
        self._roles = services.settings.chatops.roles
        self._secrets = secrets_of(services.settings)

    # -- entry points -----------------------------------------------------------------------------------------

    async def command(self, caller: Caller, text: str) -> Answer:
        """One `/autoremedy ...` command: checked, run, audited; the answer is scrubbed of secrets."""
        text = printable(text)
        words = text.split()
        name = words[0].lower() if words else "help"
        if name == "run" and len(words) > 2:
            name = MANUAL  # a key no typed word can be (it has a space)
        try:
            if name not in COMMANDS:
                answer = Answer(f"unknown command `{slack_escape(name)}`; try `/autoremedy help`", allowed=False)
            else:
                require(caller, name, self._roles)
                answer = await self._run(caller, name, words[1:])
        except Refused as exc:
            answer = Answer(f"refused: {exc}", allowed=False)
        return await self._audited(caller, f"/autoremedy {text.strip()}", answer)

    async def button(self, caller: Caller, action: str, run_id: str) -> Answer:
        """An Approve or Deny button press: the same rights and service call as `approve ID` / `deny ID`."""
        run_id = printable(run_id)
        try:
            require(caller, action, self._roles)
            answer = await self._decide(caller, action, run_id, f"{action} button in Slack")
        except Refused as exc:
            answer = Answer(f"refused: {exc}", allowed=False)
        return await self._audited(caller, f"button {action} {run_id}", answer)

    async def _audited(self, caller: Caller, command: str, answer: Answer) -> Answer:
        text = ellipsize(scrub(answer.text, self._secrets), ANSWER_MAX)
        command = ellipsize(scrub(one_line(command), self._secrets), 500)
        said = plain(text.removeprefix("refused: "))
        result = ("" if answer.allowed else "refused: ") + ellipsize(one_line(said), 300)
        entry = AuditEntry(
            AUDIT_KIND,
            f"{command}: {result}",
            run_id=answer.run.id if answer.run is not None else None,
            fingerprint=answer.fingerprint,
            actor=caller.actor,
            data={
                "user": caller.user,
                "name": ellipsize(printable(caller.name), 100),
                "channel": caller.channel,
                "command": command,
                "allowed": answer.allowed,
                "result": result,
            },
        )
        await self._services.store.record_audit([entry], now=self._services.clock.now())
        await log.ainfo(
            "chat command", user=caller.user, channel=caller.channel, command=command, allowed=answer.allowed
        )
        return Answer(text, answer.public, answer.allowed, answer.run, answer.fingerprint)

    # -- commands ---------------------------------------------------------------------------------------------

    async def _run(self, caller: Caller, name: str, args: list[str]) -> Answer:
        if name == "help":
            return Answer(help_text())
        if name == "status":
            return Answer(status_text(await self._control.status()))
        if name in DECISIONS:
            if not args:
                return Answer(f"usage: `/autoremedy {COMMANDS[name].usage}`")
            return await self._decide(caller, name, args[0], " ".join(args[1:]))
        handlers = {
            MANUAL: self._manual,
            "runs": self._runs,
            "run": self._one_run,
            "explain": self._explain,
            "pause": self._pause,
            "resume": self._resume,
        }
        return await handlers[name](caller, args)

    async def _runs(self, caller: Caller, args: list[str]) -> Answer:
        try:
            limit = int(args[0]) if args else DEFAULT_RUNS
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_RUNS:
            return Answer(f"usage: `/autoremedy runs [N]`, N between 1 and {MAX_RUNS}")
        runs = await self._services.store.list_runs(status=None, limit=limit)
        if not runs:
            return Answer("no runs yet")
        return Answer("\n".join(run_line(run) for run in runs))

    async def _one_run(self, caller: Caller, args: list[str]) -> Answer:
        if len(args) != 1:
            return Answer("usage: `/autoremedy run ID`")
        run = await self._services.store.get_run(args[0])
        if run is None:
            return Answer(f"no run `{slack_escape(args[0])}`")
        return Answer(run_detail(run))

    async def _manual(self, caller: Caller, args: list[str]) -> Answer:
        """A synthetic alert through the normal path; the answer names the alert to `explain`."""
        request = parse_manual(args)
        if request.problem:
            return Answer(f"{request.problem}; usage: `/autoremedy {COMMANDS[MANUAL].usage}`")
        labels = request.alert_labels(caller.actor)
        playbook = slack_escape(request.playbook)
        rules = self._services.match_rules(labels)
        if not rules:
            return Answer(
                f"no rule takes manual runs of playbook `{playbook}`: add one with matchers "
                f'`alertname="{MANUAL_ALERTNAME}"` and `{PLAYBOOK_LABEL}="{playbook}"` '
                "(its guardrails apply to these runs)"
            )
        event = manual_event(labels, requester=caller.actor, now=self._services.clock.now())
        await self._services.committer.submit([event])
        self._services.metrics.alerts_received.labels(event.status).inc()
        shown = ", ".join(f"{k}={v}" for k, v in request.labels.items())
        said = (
            f"<@{caller.user}> asked for a {'dry ' if request.dry_run else ''}run of `{playbook}`"
            f" ({slack_escape(shown) or 'no labels'}): rule {', '.join(f'`{slack_escape(r)}`' for r in rules)} "
            f"decides it. Follow it with `/autoremedy explain {event.fingerprint}`"
        )
        return Answer(said, public=True, fingerprint=event.fingerprint)

    async def _explain(self, caller: Caller, args: list[str]) -> Answer:
        if len(args) != 1:
            return Answer("usage: `/autoremedy explain FINGERPRINT`")
        entries = await self._services.store.fingerprint_audit(args[0], limit=EXPLAIN_ENTRIES)
        if not entries:
            return Answer(f"nothing recorded about alert `{slack_escape(args[0])}` (or it was pruned)")
        lines = [f"*Alert `{slack_escape(args[0])}`*, oldest first (at most {EXPLAIN_ENTRIES} entries):"]
        lines += [explain_line(entry) for entry in reversed(entries)]
        return Answer("\n".join(lines))

    async def _decide(self, caller: Caller, name: str, run_id: str, reason: str) -> Answer:
        principal = principal_of(caller, self._roles)
        decide = self._control.approve if name == "approve" else self._control.deny
        try:
            decided = await decide(principal, run_id, reason=self._clean(reason))
        except Forbidden as exc:
            raise Refused(str(exc)) from exc
        except UnknownRun:
            return Answer(f"no run `{slack_escape(run_id)}`")
        except NotAwaitingApproval:
            run = await self._services.store.get_run(run_id)
            now = f" (it is {run.status.value})" if run is not None else ""
            return Answer(f"run `{slack_escape(run_id)}` is not awaiting approval{now}")
        verb = "approved" if name == "approve" else "denied"
        why = f": {slack_escape(one_line(reason))}" if reason else ""
        said = f"<@{caller.user}> {verb} run `{slack_escape(run_id)}` ({slack_escape(decided.playbook)}){why}"
        return Answer(said, public=True, run=decided)

    async def _pause(self, caller: Caller, args: list[str]) -> Answer:
        rule, reason = _rule_and_reason(args)
        try:
            await self._control.pause(principal_of(caller, self._roles), rule, reason=self._clean(reason))
        except Forbidden as exc:
            raise Refused(str(exc)) from exc
        except UnknownRule as exc:
            return Answer(slack_escape(str(exc)))
        what = "all automation" if rule is None else f"rule `{slack_escape(rule)}`"
        return Answer(f"<@{caller.user}> paused {what}" + (f": {slack_escape(reason)}" if reason else ""), public=True)

    async def _resume(self, caller: Caller, args: list[str]) -> Answer:
        rule, _ = _rule_and_reason(args)
        try:
            removed = await self._control.resume(principal_of(caller, self._roles), rule)
        except Forbidden as exc:
            raise Refused(str(exc)) from exc
        what = "all automation" if rule is None else f"rule `{slack_escape(rule)}`"
        if not removed:
            return Answer(f"{what} was not paused")
        return Answer(f"<@{caller.user}> resumed {what}", public=True)

    def _clean(self, reason: str) -> str:
        """A reason as stored: a secret typed into it by mistake is not kept."""
        return scrub(reason, self._secrets)[:REASON_MAX]


def _rule_and_reason(args: list[str]) -> tuple[str | None, str]:
    """`[RULE] [-- reason]`: a reason follows `--`."""
    if "--" in args:
        at = args.index("--")
        head, reason = args[:at], " ".join(args[at + 1 :])
    else:
        head, reason = args, ""
    return (head[0] if head else None), reason[:REASON_MAX]
