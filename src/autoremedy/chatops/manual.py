"""A manual run asked in chat: `run PLAYBOOK key=value ... [--dry-run]` becomes a synthetic alert stored like a
webhook's, so the rules that match it, and their guardrails, decide it. The alert records who asked
(`autoremedy_requested_by`), and the control service refuses that person's approval of the run."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from autoremedy.control.service import REQUESTER_LABEL
from autoremedy.decide.planning import DRY_RUN_LABEL
from autoremedy.decide.redact import is_secret_key
from autoremedy.decide.text import slack_escape
from autoremedy.models.events import NewEvent

MANUAL_ALERTNAME: Final = "manual"
PLAYBOOK_LABEL: Final = "autoremedy_playbook"
MAX_LABELS: Final = 30
LABEL_VALUE_MAX: Final = 1000
_LABEL_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(slots=True)
class ManualRequest:
    playbook: str
    labels: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    problem: str | None = None

    def alert_labels(self, requester: str) -> dict[str, str]:
        labels = self.labels | {
            "alertname": MANUAL_ALERTNAME,
            PLAYBOOK_LABEL: self.playbook,
            REQUESTER_LABEL: requester,
        }
        if self.dry_run:
            labels[DRY_RUN_LABEL] = "true"
        return labels


def parse_manual(args: list[str]) -> ManualRequest:
    """`PLAYBOOK key=value ... [--dry-run]`, or what is wrong with it."""
    request = ManualRequest(args[0] if args else "")
    for word in args[1:]:
        if word == "--dry-run":
            request.dry_run = True
            continue
        request.problem = _label_problem(word)
        if request.problem:
            return request
        key, _, value = word.partition("=")
        request.labels[key] = value[:LABEL_VALUE_MAX]
    if len(request.labels) > MAX_LABELS:
        request.problem = f"at most {MAX_LABELS} labels"
    return request


def _label_problem(word: str) -> str | None:
    key, sep, _ = word.partition("=")
    if not sep or not _LABEL_NAME.match(key):
        return f"`{slack_escape(word)}` is not a label (key=value)"
    if key == "alertname" or key.startswith("autoremedy_"):
        return f"label `{slack_escape(key)}` is set by autoremedy"
    if is_secret_key(key):
        return f"label `{slack_escape(key)}` looks like a secret; labels are shown"
    return None


def manual_event(labels: dict[str, str], *, requester: str, now: datetime) -> NewEvent:
    fingerprint = f"manual-{uuid.uuid4().hex[:16]}"
    return NewEvent(
        fingerprint=fingerprint,
        status="firing",
        starts_at=now.isoformat().replace("+00:00", "Z"),
        ends_at=None,
        labels=labels,
        annotations={"summary": f"manual run of {labels[PLAYBOOK_LABEL]} asked in Slack by {requester}"},
        generator_url="",
        receiver="slack",
        external_url="",
        group_key=f"manual:{fingerprint}",
    )
