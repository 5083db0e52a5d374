"""Alert events: one per (fingerprint, status, startsAt), however often Alertmanager delivers it."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict

from autoremedy.models.ids import EventId, Fingerprint
from autoremedy.models.trusted import trusted
from autoremedy.models.webhook import Alert, WebhookPayload


class EventState(StrEnum):
    """Where a stored event is in the decision stage."""

    PENDING = "pending"
    PROCESSING = "processing"
    """Claimed by a daemon that is deciding it (back to pending if that daemon dies)."""
    DONE = "done"
    """Decided: its runs, and what its resolution cancelled or woke, are recorded."""
    NO_RULE_MATCHED = "no_rule_matched"
    """Decided: no rule matched it; nothing else is recorded about it (no audit entry of its own)."""
    DEAD = "dead"
    """Dead-lettered: deciding it failed permanently or too often; an audit entry and an escalation say why."""


class NewEvent(BaseModel):
    """An alert as received, before it is stored."""

    model_config = ConfigDict(frozen=True)

    fingerprint: Fingerprint
    status: str
    starts_at: str
    ends_at: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    receiver: str
    external_url: str
    group_key: str

    def template_view(self) -> dict[str, Any]:
        """What playbook templates see as `alert`, named as in Alertmanager's own templates."""
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": self.starts_at,
            "endsAt": self.ends_at,
            "generatorURL": self.generator_url,
            "fingerprint": self.fingerprint,
            "receiver": self.receiver,
            "externalURL": self.external_url,
        }


class AlertEvent(NewEvent):
    id: EventId
    received_at: datetime
    deliveries: int
    state: EventState = EventState.PENDING


@lru_cache(maxsize=1024)  # a storm's alerts share their few startsAt instants (the rule evaluations that fired them)
def canonical_time(value: datetime) -> str:
    """One spelling per instant, so the dedupe key does not depend on how a peer formatted it.

    The webhook model has already checked that the instant converts to UTC (see `models.webhook.UtcTime`)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _ends_at(alert: Alert) -> str | None:
    # Alertmanager sends Go's zero time for an alert that has not ended.
    if alert.ends_at is None or alert.ends_at.year <= 1:
        return None
    return canonical_time(alert.ends_at)


def events_from_payload(payload: WebhookPayload) -> list[NewEvent]:
    # The payload is validated: the events hold its values as they are (see models/trusted.py).
    return [
        trusted(
            NewEvent,
            {
                "fingerprint": Fingerprint(alert.fingerprint),
                "status": alert.status,
                "starts_at": canonical_time(alert.starts_at),
                "ends_at": _ends_at(alert),
                "labels": alert.labels,
                "annotations": alert.annotations,
                "generator_url": alert.generator_url,
                "receiver": payload.receiver,
                "external_url": payload.external_url,
                "group_key": payload.group_key,
            },
        )
        for alert in payload.alerts
    ]
