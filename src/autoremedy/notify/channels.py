"""Building the configured channels and the escalation policy from settings and the current rules."""

from __future__ import annotations

from autoremedy.config.settings import Settings, configured_channels
from autoremedy.decide.escalation import EscalationPolicy
from autoremedy.decide.planning import Ruleset
from autoremedy.notify.base import Channel
from autoremedy.notify.opsgenie import OpsgenieChannel
from autoremedy.notify.pagerduty import PagerDutyChannel
from autoremedy.notify.slack import SlackChannel


def build_channels(settings: Settings) -> dict[str, Channel]:
    notify, timeout = settings.notify, settings.notify.request_timeout.total_seconds()
    configured = configured_channels(settings)
    channels: dict[str, Channel] = {}
    if "slack" in configured and notify.slack is not None:
        channels["slack"] = SlackChannel(notify.slack, request_timeout=timeout)
    if "pagerduty" in configured and notify.pagerduty is not None:
        channels["pagerduty"] = PagerDutyChannel(notify.pagerduty, request_timeout=timeout)
    if "opsgenie" in configured and notify.opsgenie is not None:
        channels["opsgenie"] = OpsgenieChannel(notify.opsgenie, request_timeout=timeout)
    return channels


def escalation_policy(settings: Settings, ruleset: Ruleset) -> EscalationPolicy:
    rule_channels: dict[str, list[str] | None] = {}
    for compiled in ruleset.rules:
        playbook = ruleset.playbooks.get(compiled.rule.playbook)
        own = (
            compiled.rule.escalate if compiled.rule.escalate is not None else (playbook.escalate if playbook else None)
        )
        rule_channels[compiled.rule.name] = list(own) if own is not None else None
    return EscalationPolicy(
        default=list(settings.escalation.default),
        by_severity={severity: list(channels) for severity, channels in settings.escalation.by_severity.items()},
        rule_channels=rule_channels,
        configured=configured_channels(settings),
    )
