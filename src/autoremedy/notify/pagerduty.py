"""PagerDuty Events API v2: a trigger opens (or repeats into) the incident of its dedup_key, a resolve closes it."""

from __future__ import annotations

from typing import Any, Final

from autoremedy.config.settings import PagerDutySettings
from autoremedy.decide.text import ellipsize
from autoremedy.models.notifications import Notification, NotificationKind, SendResult
from autoremedy.notify.http import JsonPoster
from autoremedy.notify.render import component, fit_key, step_line

SUMMARY_MAX: Final = 1024
DEDUP_KEY_MAX: Final = 255
CLIENT: Final = "autoremedy"


class PagerDutyChannel:
    """POSTs events to `{settings.url}/v2/enqueue`; 202 is sent, with the dedup_key as the reference."""

    name: str = "pagerduty"

    def __init__(self, settings: PagerDutySettings, request_timeout: float) -> None:
        if settings.routing_key is None:
            raise ValueError("pagerduty: no routing_key configured")
        self._routing_key = settings.routing_key
        self._url = settings.url.rstrip("/") + "/v2/enqueue"
        self._poster = JsonPoster(
            "pagerduty", timeout=request_timeout, secrets=(settings.routing_key.get_secret_value(),)
        )

    async def send(self, notification: Notification) -> SendResult:
        dedup_key = fit_key(notification.dedup_key, DEDUP_KEY_MAX)
        event: dict[str, Any] = {
            "routing_key": self._routing_key.get_secret_value(),
            "event_action": "resolve" if notification.kind is NotificationKind.RESOLVE else "trigger",
            "dedup_key": dedup_key,
        }
        if notification.kind is NotificationKind.TRIGGER:
            event |= trigger_fields(notification)
        return await self._poster.post(self._url, event, reference=dedup_key)

    async def close(self) -> None:
        await self._poster.close()


def trigger_fields(notification: Notification) -> dict[str, Any]:
    """`payload`, `links` and `client` of a trigger event (everything but the routing key and dedup_key)."""
    labels = notification.labels
    payload: dict[str, Any] = {
        "summary": ellipsize(notification.title.strip() or notification.summary.strip() or "autoremedy", SUMMARY_MAX),
        "source": labels.get("instance") or labels.get("job") or "autoremedy",
        "severity": notification.severity.value,
        "class": notification.trigger,
        "custom_details": {
            "summary": notification.summary,
            "rule": notification.rule,
            "run_id": notification.run_id,
            "fingerprint": notification.fingerprint,
            "alert_status": notification.alert_status,
            "steps": [step_line(step) for step in notification.steps],
            "labels": dict(labels),
            "annotations": dict(notification.annotations),
        },
    }
    if component(labels):
        payload["component"] = component(labels)
    if labels.get("alertname"):
        payload["group"] = labels["alertname"]
    links = [
        {"href": url, "text": text}
        for url, text in ((notification.generator_url, "Prometheus"), (notification.runbook_url, "Runbook"))
        if url
    ]
    fields: dict[str, Any] = {"payload": payload, "client": CLIENT}
    if links:
        fields["links"] = links
    return fields
