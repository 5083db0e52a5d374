"""Chat commands and buttons, whatever carries them: who may do what, the commands, and their audit.

A transport (ingest/slack.py) verifies the request and hands over the caller (user and channel ids) and the text;
this module checks the caller's role, runs the command through the same functions as the HTTP API (control.py),
records every command, allowed or refused, in the audit log, and answers in Slack mrkdwn with every configured
secret scrubbed. A manual run (`run PLAYBOOK key=value ...`) is a synthetic alert stored like a webhook's, so the
rules that match it, and their guardrails, decide it.

Rights: `chatops.roles` maps user ids (U..., W...) and channel ids (C..., G...) to a role; a caller has the higher
of their own role and the channel's. User groups (S...) are refused by the config: a slash command carries no group
membership, and resolving it would cost a usergroups API call per command.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from autoremedy.config.settings import Settings
from autoremedy.decide.planning import DRY_RUN_LABEL
from autoremedy.decide.redact import is_secret_key
from autoremedy.ingest.common import Services
from autoremedy.ingest.control import UnknownRule, UnknownRun, decide_run, pause_scope, resume_scope, status_of
from autoremedy.models.events import NewEvent
from autoremedy.models.runs import Run
from autoremedy.notify.render import ellipsize, one_line, scrub, slack_escape
from autoremedy.observability import get_logger
from autoremedy.store.base import AuditEntry, AuditRecord, NotAwaitingApproval

log = get_logger("autoremedy.chatops")

ROLES: Final = ("viewer", "operator", "approver", "admin")
MANUAL: Final = "run PLAYBOOK"
"""The manual-run command's key: `run` with labels or --dry-run after the playbook (`run ID` shows a run)."""
MANUAL_ALERTNAME: Final = "manual"
PLAYBOOK_LABEL: Final = "autoremedy_playbook"
REQUESTER_LABEL: Final = "autoremedy_requested_by"
MAX_LABELS: Final = 30
LABEL_VALUE_MAX: Final = 1000
_LABEL_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
AUDIT_KIND: Final = "chatops"
DEFAULT_RUNS: Final = 10
MAX_RUNS: Final = 50
ANSWER_MAX: Final = 3500
EXPLAIN_ENTRIES: Final = 30
REASON_MAX: Final = 2000


@dataclass(frozen=True, slots=True)
class Command:
    role: str | None
    """The least role needed; None: anyone (help)."""
    usage: str
    does: str


COMMANDS: Final = {
    "help": Command(None, "help", "this list"),
    "status": Command("viewer", "status", "queue, active runs, breaker, paused rules"),
    "runs": Command("viewer", "runs [N]", f"the last N runs (default {DEFAULT_RUNS}, at most {MAX_RUNS})"),
    "run": Command("viewer", "run ID", "one run: its guardrail verdict and steps"),
    MANUAL: Command(
        "operator",
        "run PLAYBOOK key=value ... [--dry-run]",
        "a manual run: an alert `manual` with these labels, decided by the rules (and guardrails) that match it",
    ),
    "explain": Command("viewer", "explain FINGERPRINT", "an alert's decisions: rules matched, each verdict and why"),
    "approve": Command("approver", "approve ID [reason]", "let a run awaiting approval go ahead"),
    "deny": Command("approver", "deny ID [reason]", "refuse a run awaiting approval"),
    "pause": Command("operator", "pause [RULE] [-- reason]", "pause one rule, or all automation"),
    "resume": Command("operator", "resume [RULE]", "resume one rule, or all automation"),
}
DECISIONS: Final = frozenset({"approve", "deny"})


@dataclass(frozen=True, slots=True)
class Caller:
    user: str
    channel: str
    name: str = ""

    @property
    def actor(self) -> str:
        return f"{self.name} (via slack:{self.user})" if self.name else f"slack:{self.user}"


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    public: bool = False
    """in_channel (everyone sees it) rather than ephemeral (only the caller)."""
    allowed: bool = True
    run: Run | None = field(default=None, compare=False)
    """The run an approve or deny decided."""
    fingerprint: str | None = None
    """The alert a manual run was stored as."""


class Refused(Exception):
    """The caller lacks a right; the message names it."""


class Chatops:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._settings = services.settings.chatops
        self._secrets = secrets_of(services.settings)

    # -- rights -----------------------------------------------------------------------------------------------

    def role_of(self, caller: Caller) -> str | None:
        found = [self._settings.roles.get(caller.user), self._settings.roles.get(caller.channel)]
        ranks = [ROLES.index(role) for role in found if role is not None]
        return ROLES[max(ranks)] if ranks else None

    def _require(self, caller: Caller, name: str) -> None:
        needed = COMMANDS[name].role
        if needed is None:
            return
        role = self.role_of(caller)
        if role is None or ROLES.index(role) < ROLES.index(needed):
            has = f"your role is `{role}`" if role else "you have no role"
            raise Refused(f"`{name}` needs the role `{needed}` ({has}; see chatops.roles)")

    def _require_approver_of(self, caller: Caller, run: Run) -> None:
        allowed = self._settings.approvers.get(run.playbook)
        if allowed is not None and caller.user not in allowed and caller.channel not in allowed:
            raise Refused(
                f"runs of playbook `{run.playbook}` need the role `approver` and a place in "
                f"chatops.approvers.{run.playbook}"
            )

    def _clean(self, reason: str) -> str:
        """A reason as stored: a secret typed into it by mistake is not kept."""
        return scrub(reason, self._secrets)[:REASON_MAX]

    # -- entry points -----------------------------------------------------------------------------------------

    async def command(self, caller: Caller, text: str) -> Answer:
        """One `/autoremedy ...` command: checked, run, audited; the answer is scrubbed of secrets."""
        words = text.split()
        name = words[0].lower() if words else "help"
        if name == "run" and len(words) > 2:
            name = MANUAL  # a key no typed word can be (it has a space)
        try:
            if name not in COMMANDS:
                answer = Answer(f"unknown command `{slack_escape(name)}`; try `/autoremedy help`", allowed=False)
            else:
                self._require(caller, name)
                answer = await self._run(caller, name, words[1:])
        except Refused as exc:
            answer = Answer(f"refused: {exc}", allowed=False)
        return await self._audited(caller, f"/autoremedy {text.strip()}", answer)

    async def button(self, caller: Caller, action: str, run_id: str) -> Answer:
        """An Approve or Deny button press: the same rights and store call as `approve ID` / `deny ID`."""
        try:
            self._require(caller, action)
            answer = await self._decide(caller, action, run_id, f"{action} button in Slack")
        except Refused as exc:
            answer = Answer(f"refused: {exc}", allowed=False)
        return await self._audited(caller, f"button {action} {run_id}", answer)

    async def _audited(self, caller: Caller, command: str, answer: Answer) -> Answer:
        text = ellipsize(scrub(answer.text, self._secrets), ANSWER_MAX)
        command = ellipsize(scrub(one_line(command), self._secrets), 500)
        said = _plain(text.removeprefix("refused: "))
        result = ("" if answer.allowed else "refused: ") + ellipsize(one_line(said), 300)
        entry = AuditEntry(
            AUDIT_KIND,
            f"{command}: {result}",
            run_id=answer.run.id if answer.run is not None else None,
            fingerprint=answer.fingerprint,
            actor=caller.actor,
            data={
                "user": caller.user,
                "channel": caller.channel,
                "command": command,
                "allowed": answer.allowed,
                "result": result,
            },
        )
        await self._services.store.record_audit([entry], now=_now())
        await log.ainfo(
            "chat command", user=caller.user, channel=caller.channel, command=command, allowed=answer.allowed
        )
        return Answer(text, answer.public, answer.allowed, answer.run, answer.fingerprint)

    # -- commands ---------------------------------------------------------------------------------------------

    async def _run(self, caller: Caller, name: str, args: list[str]) -> Answer:
        if name == "help":
            return Answer(help_text())
        if name == "status":
            return Answer(await self._status())
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

    async def _status(self) -> str:
        status = await status_of(self._services)
        runs = ", ".join(f"{state} {count}" for state, count in sorted(status["runs"].items())) or "none"
        breaker = "*open*" if status["breaker"]["open"] else "closed"
        paused = (
            "; ".join(
                f"`{p['scope']}` by {p['by']}" + (f" ({p['reason']})" if p["reason"] else "") for p in status["paused"]
            )
            or "nothing"
        )
        return slack_escape(
            f"Queue: {status['queue_depth']} alerts waiting\nRuns: {runs}\nBreaker: {breaker}\nPaused: {paused}"
        )

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
        return Answer("\n".join(_run_line(run) for run in runs))

    async def _one_run(self, caller: Caller, args: list[str]) -> Answer:
        if len(args) != 1:
            return Answer("usage: `/autoremedy run ID`")
        run = await self._services.store.get_run(args[0])
        if run is None:
            return Answer(f"no run `{slack_escape(args[0])}`")
        lines = [
            _run_line(run),
            f"reason: {slack_escape(one_line(run.reason))}",
            f"fingerprint `{slack_escape(run.fingerprint)}` · alert {run.alert_status}"
            + (" · dry run" if run.dry_run else ""),
        ]
        lines += [
            f"{step.index + 1}. {slack_escape(step.name or step.action)} ({slack_escape(step.action)}): "
            f"{step.outcome.value}" + (f" — {slack_escape(one_line(step.error))}" if step.error else "")
            for step in run.steps
        ]
        return Answer("\n".join(lines))

    async def _manual(self, caller: Caller, args: list[str]) -> Answer:
        """A synthetic alert through the normal path: stored like a webhook's, decided by the worker with the
        rules that match it, under their guardrails; the answer names the alert to `explain`."""
        playbook, labels, dry_run, problem = _manual_request(args)
        if problem:
            return Answer(f"{problem}; usage: `/autoremedy {COMMANDS[MANUAL].usage}`")
        labels |= {"alertname": MANUAL_ALERTNAME, PLAYBOOK_LABEL: playbook, REQUESTER_LABEL: caller.user}
        if dry_run:
            labels[DRY_RUN_LABEL] = "true"
        rules = self._services.match_rules(labels)
        if not rules:
            return Answer(
                f"no rule takes manual runs of playbook `{slack_escape(playbook)}`: add one with matchers "
                f'`alertname="{MANUAL_ALERTNAME}"` and `{PLAYBOOK_LABEL}="{slack_escape(playbook)}"` '
                "(its guardrails apply to these runs)"
            )
        event = _manual_event(labels, caller)
        await self._services.committer.submit([event])
        self._services.metrics.alerts_received.labels(event.status).inc()
        shown = ", ".join(f"{k}={v}" for k, v in labels.items() if not k.startswith("autoremedy_") and k != "alertname")
        said = (
            f"<@{caller.user}> asked for a {'dry ' if dry_run else ''}run of `{slack_escape(playbook)}`"
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
        lines += [_explain_line(entry) for entry in reversed(entries)]
        return Answer("\n".join(lines))

    async def _decide(self, caller: Caller, name: str, run_id: str, reason: str) -> Answer:
        run = await self._services.store.get_run(run_id)
        if run is None:
            return Answer(f"no run `{slack_escape(run_id)}`")
        self._require_approver_of(caller, run)
        try:
            decided = await decide_run(
                self._services, run_id, approved=name == "approve", actor=caller.actor, reason=self._clean(reason)
            )
        except NotAwaitingApproval:
            return Answer(f"run `{slack_escape(run_id)}` is not awaiting approval (it is {run.status.value})")
        except UnknownRun:
            return Answer(f"no run `{slack_escape(run_id)}`")
        verb = "approved" if name == "approve" else "denied"
        why = f": {slack_escape(one_line(reason))}" if reason else ""
        said = f"<@{caller.user}> {verb} run `{slack_escape(run_id)}` ({slack_escape(run.playbook)}){why}"
        return Answer(said, public=True, run=decided)

    async def _pause(self, caller: Caller, args: list[str]) -> Answer:
        rule, reason = _rule_and_reason(args)
        try:
            scope = await pause_scope(self._services, rule, actor=caller.actor, reason=self._clean(reason))
        except UnknownRule as exc:
            return Answer(slack_escape(str(exc)))
        what = "all automation" if rule is None else f"rule `{slack_escape(scope)}`"
        return Answer(f"<@{caller.user}> paused {what}" + (f": {slack_escape(reason)}" if reason else ""), public=True)

    async def _resume(self, caller: Caller, args: list[str]) -> Answer:
        rule, _ = _rule_and_reason(args)
        scope, removed = await resume_scope(self._services, rule, actor=caller.actor)
        what = "all automation" if rule is None else f"rule `{slack_escape(scope)}`"
        if not removed:
            return Answer(f"{what} was not paused")
        return Answer(f"<@{caller.user}> resumed {what}", public=True)


def help_text() -> str:
    lines = ["*/autoremedy* commands:"]
    for command in COMMANDS.values():
        needs = f" _(role: {command.role})_" if command.role else ""
        lines.append(f"• `{command.usage}` — {command.does}{needs}")
    return "\n".join(lines)


def _run_line(run: Run) -> str:
    when = run.created_at.strftime("%Y-%m-%d %H:%M:%SZ")
    guard = f" ({slack_escape(run.guardrail)})" if run.guardrail != "allowed" else ""
    return (
        f"`{run.id}` *{run.status.value}*{guard} · rule {slack_escape(run.rule)} · "
        f"playbook {slack_escape(run.playbook)} · {slack_escape(run.target)} · {when}"
    )


def _explain_line(entry: AuditRecord) -> str:
    when = entry.at.strftime("%Y-%m-%d %H:%M:%SZ")
    said = slack_escape(ellipsize(one_line(entry.message), 300))
    data = entry.data
    if entry.kind.startswith("verdict_"):
        decision = str(data.get("decision", "?"))
        return (
            f"• {when} rule `{slack_escape(str(data.get('rule')))}` matched → playbook "
            f"`{slack_escape(str(data.get('playbook')))}` on `{slack_escape(str(data.get('target')))}`: guardrail "
            f"*{slack_escape(str(data.get('guardrail')))}* ({slack_escape(decision)}) — {said}"
        )
    run = f" run `{slack_escape(entry.run_id)}`" if entry.run_id else ""
    return f"• {when} {slack_escape(entry.kind)}{run} by {slack_escape(entry.actor)}: {said}"


def _manual_request(args: list[str]) -> tuple[str, dict[str, str], bool, str | None]:
    """(playbook, labels, dry run, problem) of `PLAYBOOK key=value ... [--dry-run]`."""
    playbook, dry_run = (args[0] if args else ""), False
    labels: dict[str, str] = {}
    for word in args[1:]:
        if word == "--dry-run":
            dry_run = True
            continue
        key, sep, value = word.partition("=")
        if not sep or not _LABEL_NAME.match(key):
            return playbook, labels, dry_run, f"`{slack_escape(word)}` is not a label (key=value)"
        if key == "alertname" or key.startswith("autoremedy_"):
            return playbook, labels, dry_run, f"label `{slack_escape(key)}` is set by autoremedy"
        if is_secret_key(key):
            return playbook, labels, dry_run, f"label `{slack_escape(key)}` looks like a secret; labels are shown"
        labels[key] = value[:LABEL_VALUE_MAX]
    if len(labels) > MAX_LABELS:
        return playbook, labels, dry_run, f"at most {MAX_LABELS} labels"
    return playbook, labels, dry_run, None


def _manual_event(labels: dict[str, str], caller: Caller) -> NewEvent:
    now = _now()
    fingerprint = f"manual-{uuid.uuid4().hex[:16]}"
    return NewEvent(
        fingerprint=fingerprint,
        status="firing",
        starts_at=now.isoformat().replace("+00:00", "Z"),
        ends_at=None,
        labels=labels,
        annotations={"summary": f"manual run of {labels[PLAYBOOK_LABEL]} asked in Slack by {caller.actor}"},
        generator_url="",
        receiver="slack",
        external_url="",
        group_key=f"manual:{fingerprint}",
    )


def _plain(mrkdwn: str) -> str:
    """An answer as the audit log keeps it: without Slack's escaping."""
    return mrkdwn.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _rule_and_reason(args: list[str]) -> tuple[str | None, str]:
    """`[RULE] [-- reason]`: a reason follows `--`."""
    if "--" in args:
        at = args.index("--")
        head, reason = args[:at], " ".join(args[at + 1 :])
    else:
        head, reason = args, ""
    return (head[0] if head else None), reason[:REASON_MAX]


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """Every secret value in the settings, to scrub from answers should one ever be echoed."""
    found = [token.get_secret_value() for token in settings.server.auth.bearer_tokens]
    found += [password.get_secret_value() for password in settings.server.auth.basic_users.values()]
    notify = settings.notify
    for secret in (
        notify.slack.token if notify.slack else None,
        notify.pagerduty.routing_key if notify.pagerduty else None,
        notify.opsgenie.api_key if notify.opsgenie else None,
        settings.chatops.slack.signing_secret if settings.chatops.slack else None,
        settings.chatops.slack.app_token if settings.chatops.slack else None,
    ):
        if secret is not None:
            found.append(secret.get_secret_value())
    return tuple(secret for secret in found if secret)


def _now() -> datetime:
    return datetime.now(UTC)
