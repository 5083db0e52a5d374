"""Answers in Slack mrkdwn: help, runs, an alert's story, the status; and what answers are scrubbed of."""

from __future__ import annotations

from autoremedy.chatops.rights import COMMANDS
from autoremedy.config.secrets import configured_secrets
from autoremedy.config.settings import Settings
from autoremedy.control.service import StatusReport
from autoremedy.decide.explain import explain_entry
from autoremedy.decide.text import ellipsize, one_line, slack_escape
from autoremedy.models.runs import GuardrailReason, Run
from autoremedy.store.base import AuditRecord


def help_text() -> str:
    lines = ["*/autoremedy* commands:"]
    for command in COMMANDS.values():
        needs = f" _(role: {command.role})_" if command.role else ""
        lines.append(f"• `{command.usage}` — {command.does}{needs}")
    return "\n".join(lines)


def status_text(status: StatusReport) -> str:
    runs = ", ".join(f"{state} {count}" for state, count in sorted(status.runs.items())) or "none"
    breaker = "*open*" if status.breaker.open else "closed"
    paused = (
        "; ".join(f"`{p.scope}` by {p.by}" + (f" ({p.reason})" if p.reason else "") for p in status.paused) or "nothing"
    )
    return slack_escape(
        f"Queue: {status.queue_depth} alerts waiting\nRuns: {runs}\nBreaker: {breaker}\nPaused: {paused}"
    )


def run_line(run: Run) -> str:
    when = run.created_at.strftime("%Y-%m-%d %H:%M:%SZ")
    guard = f" ({slack_escape(run.guardrail)})" if run.guardrail != GuardrailReason.ALLOWED else ""
    return (
        f"`{run.id}` *{run.status.value}*{guard} · rule {slack_escape(run.rule)} · "
        f"playbook {slack_escape(run.playbook)} · {slack_escape(run.target)} · {when}"
    )


def run_detail(run: Run) -> str:
    lines = [
        run_line(run),
        f"reason: {slack_escape(one_line(run.reason))}",
        f"fingerprint `{slack_escape(run.fingerprint)}` · alert {run.alert_status}"
        + (" · dry run" if run.dry_run else ""),
    ]
    lines += [
        f"{step.index + 1}. {slack_escape(step.name or step.action)} ({slack_escape(step.action)}): "
        f"{step.outcome.value}" + (f" — {slack_escape(one_line(step.error))}" if step.error else "")
        for step in run.steps
    ]
    return "\n".join(lines)


def explain_line(entry: AuditRecord) -> str:
    """One entry of an alert's story, read as the web console reads it (autoremedy.decide.explain)."""
    when = entry.at.strftime("%Y-%m-%d %H:%M:%SZ")
    said = slack_escape(ellipsize(one_line(entry.message), 300))
    told = explain_entry(
        at=entry.at, kind=entry.kind, actor=entry.actor, message=entry.message, run_id=entry.run_id, data=entry.data
    )
    if (verdict := told.verdict) is not None:
        return (
            f"• {when} rule `{slack_escape(verdict.rule)}` matched → playbook "
            f"`{slack_escape(verdict.playbook)}` on `{slack_escape(verdict.target)}`: guardrail "
            f"*{slack_escape(verdict.guardrail)}* ({slack_escape(verdict.decision)}) — {said}"
        )
    run = f" run `{slack_escape(told.run_id)}`" if told.run_id else ""
    return f"• {when} {slack_escape(told.kind)}{run} by {slack_escape(told.actor)}: {said}"


def plain(mrkdwn: str) -> str:
    """An answer as the audit log keeps it: without Slack's escaping."""
    return mrkdwn.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """Every secret value in the settings, to scrub from answers should one ever be echoed (the one list the
    daemon's redaction also masks: every SecretStr, CrowdSec and database ones included)."""
    return configured_secrets(settings)
