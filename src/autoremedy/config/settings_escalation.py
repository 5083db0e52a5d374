"""Settings of escalation (Slack, PagerDuty, Opsgenie) and of chat commands (ChatOps)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from autoremedy.config.settings_base import _API_PRINCIPALS, _CREDENTIAL_NAME, _Section
from autoremedy.models.durations import Duration


class SlackSettings(_Section):
    token: SecretStr | None = Field(default=None, description="bot token (xoxb-...); or token_file, or env")
    token_file: Path | None = Field(default=None, description="a file holding the token (e.g. a mounted Secret)")
    channel: str = Field(default="", description="channel id or name escalations are posted to")
    base_url: str = Field(default="https://slack.com/api/", description="Slack Web API base URL")


class PagerDutySettings(_Section):
    routing_key: SecretStr | None = Field(default=None, description="Events API v2 integration key")
    routing_key_file: Path | None = None
    url: str = Field(default="https://events.pagerduty.com", description="Events API base URL")


class OpsgenieSettings(_Section):
    api_key: SecretStr | None = Field(default=None, description="API integration key (GenieKey)")
    api_key_file: Path | None = None
    url: str = Field(
        default="https://api.opsgenie.com", description="Alert API base URL (api.eu.opsgenie.com in the EU)"
    )


class NotifySettings(_Section):
    slack: SlackSettings | None = None
    pagerduty: PagerDutySettings | None = None
    opsgenie: OpsgenieSettings | None = None
    request_timeout: Duration = Field(default=timedelta(seconds=10), description="per request to a channel")


class EscalationSettings(_Section):
    default: list[Literal["slack", "pagerduty", "opsgenie"]] = Field(
        default_factory=list, description="channels used where a rule or playbook names none"
    )
    by_severity: dict[str, list[Literal["slack", "pagerduty", "opsgenie"]]] = Field(
        default_factory=dict, description="channels by the alert's severity label, before the default"
    )
    retry_initial: Duration = Field(default=timedelta(seconds=1), description="first wait after a failed send")
    retry_max: Duration = Field(default=timedelta(minutes=10), description="longest wait between sends")


ChatRole = Literal["viewer", "operator", "approver", "admin"]
_SLACK_ID = re.compile(r"^[UWCG][A-Z0-9]{2,}$")


def _check_slack_ids(ids: list[str], where: str) -> None:
    for slack_id in ids:
        if slack_id.startswith("S"):
            raise ValueError(
                f"{where}: {slack_id!r} is a user group; groups are not resolved (that needs a usergroups API "
                "call per command), list its members' user ids (U...) or a channel id (C...) instead"
            )
        if not _SLACK_ID.match(slack_id):
            raise ValueError(f"{where}: {slack_id!r} is not a Slack user id (U..., W...) or channel id (C..., G...)")


class ChatopsSlackSettings(_Section):
    signing_secret: SecretStr | None = Field(
        default=None, description="the Slack app's signing secret (Basic Information); or signing_secret_file, or env"
    )
    signing_secret_file: Path | None = Field(default=None, description="a file holding the signing secret")
    app_token: SecretStr | None = Field(
        default=None, description="app-level token (xapp-...): when set, Socket Mode is used instead of HTTP"
    )
    app_token_file: Path | None = Field(default=None, description="a file holding the app-level token")

    @property
    def socket_mode(self) -> bool:
        return self.app_token is not None


class ChatopsSettings(_Section):
    slack: ChatopsSlackSettings | None = Field(
        default=None, description="serve POST /slack/commands and /slack/interactions (bot token: notify.slack)"
    )
    roles: dict[str, ChatRole] = Field(
        default_factory=dict,
        description="Slack user id (U..., W...) or channel id (C..., G...) to role: viewer < operator < approver < "
        "admin; a user gets the higher of their own role and the channel's",
    )
    approvers: dict[str, list[str]] = Field(
        default_factory=dict,
        description="playbook to who alone may approve or deny its runs, on every path: Slack user ids (U...) or "
        "channel ids (C...), API credentials as token:<name> or basic:<user>",
    )

    @field_validator("roles")
    @classmethod
    def _role_ids(cls, roles: dict[str, str]) -> dict[str, str]:
        _check_slack_ids(list(roles), "chatops.roles")
        return roles

    @field_validator("approvers")
    @classmethod
    def _approver_ids(cls, approvers: dict[str, list[str]]) -> dict[str, list[str]]:
        for playbook, ids in approvers.items():
            if not ids:
                raise ValueError(f"chatops.approvers.{playbook}: name at least one user or channel")
            slack_ids = [i.removeprefix("slack:") for i in ids if not i.startswith(_API_PRINCIPALS)]
            _check_slack_ids(slack_ids, f"chatops.approvers.{playbook}")
            for api_id in (i for i in ids if i.startswith(_API_PRINCIPALS)):
                if not _CREDENTIAL_NAME.match(api_id.partition(":")[2]):
                    raise ValueError(f"chatops.approvers.{playbook}: {api_id!r} names no credential")
        return approvers
