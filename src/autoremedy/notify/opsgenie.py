"""Opsgenie Alert API v2: a trigger creates the alert of its alias (Opsgenie de-duplicates repeats), a resolve
closes it by alias."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from autoremedy.config.settings import OpsgenieSettings
from autoremedy.decide.text import ellipsize
from autoremedy.models.notifications import Notification, NotificationKind, SendResult, Severity
from autoremedy.notify.http import JsonPoster
from autoremedy.notify.render import component, fit_key, step_line

MESSAGE_MAX: Final = 130
ALIAS_MAX: Final = 512
DESCRIPTION_MAX: Final = 15000
ENTITY_MAX: Final = 512
NOTE_MAX: Final = 25000
DETAILS_MAX: Final = 8000
"""Opsgenie's limit on all keys and values of `details` together."""
DETAIL_VALUE_MAX: Final = 1000
TAG_MAX: Final = 50
SOURCE: Final = "autoremedy"
PRIORITIES: Final[Mapping[Severity, str]] = {
    Severity.CRITICAL: "P1",
    Severity.ERROR: "P2",
    Severity.WARNING: "P3",
    Severity.INFO: "P5",
}


class OpsgenieChannel:
    """`Authorization: GenieKey <api_key>`; 202 is sent, with the alias as the reference."""

    name: str = "opsgenie"

    def __init__(self, settings: OpsgenieSettings, request_timeout: float) -> None:
        if settings.api_key is None:
            raise ValueError("opsgenie: no api_key configured")
        self._api_key = settings.api_key
        self._alerts_url = settings.url.rstrip("/") + "/v2/alerts"
        self._poster = JsonPoster("opsgenie", timeout=request_timeout, secrets=(settings.api_key.get_secret_value(),))

    async def send(self, notification: Notification) -> SendResult:
        alias = fit_key(notification.dedup_key, ALIAS_MAX)
        if notification.kind is NotificationKind.RESOLVE:
            url = f"{self._alerts_url}/{quote(alias, safe='')}/close?identifierType=alias"
            body = close_body(notification)
        else:
            url, body = self._alerts_url, create_body(notification, alias)
        headers = {"Authorization": f"GenieKey {self._api_key.get_secret_value()}"}
        return await self._poster.post(url, body, reference=alias, headers=headers)

    async def close(self) -> None:
        await self._poster.close()


def create_body(notification: Notification, alias: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message": ellipsize(" ".join(notification.title.split()) or "autoremedy escalation", MESSAGE_MAX),
        "alias": alias,
        "description": description(notification),
        "details": details(notification),
        "priority": PRIORITIES[notification.severity],
        "tags": [tag for tag in (SOURCE, notification.trigger, ellipsize(notification.rule, TAG_MAX)) if tag],
        "source": SOURCE,
    }
    entity = component(notification.labels)
    if entity:
        body["entity"] = ellipsize(entity, ENTITY_MAX)
    return body


def close_body(notification: Notification) -> dict[str, Any]:
    note = notification.summary or notification.title
    return {"note": ellipsize(f"Resolved: {note}", NOTE_MAX), "source": SOURCE}


def description(notification: Notification) -> str:
    """Summary, the steps and the links, within Opsgenie's 15000 characters (links are kept whole)."""
    links = "".join(
        f"\n{text}: {url}"
        for url, text in ((notification.generator_url, "Prometheus"), (notification.runbook_url, "Runbook"))
        if url
    )
    links = f"\n\nLinks:{links}" if links else ""
    steps = "\n".join(step_line(step) for step in notification.steps)
    text = notification.summary + (f"\n\nSteps:\n{steps}" if steps else "")
    if len(links) >= DESCRIPTION_MAX // 2:
        return ellipsize((text + links).strip(), DESCRIPTION_MAX)
    return (ellipsize(text, DESCRIPTION_MAX - len(links)) + links).strip()


def details(notification: Notification) -> dict[str, str]:
    """A flat string map: autoremedy's own keys, then the labels (a label named like one of them gets `label.`)."""
    own = {
        "run_id": notification.run_id or "",
        "rule": notification.rule,
        "fingerprint": notification.fingerprint,
        "trigger": notification.trigger,
        "alert_status": notification.alert_status,
    }
    found: dict[str, str] = {key: value for key, value in own.items() if value}
    used = sum(len(key) + len(value) for key, value in found.items())
    for name, raw in notification.labels.items():
        key = f"label.{name}" if name in own else name
        value = ellipsize(raw, DETAIL_VALUE_MAX)
        if used + len(key) + len(value) > DETAILS_MAX:
            break
        found[key] = value
        used += len(key) + len(value)
    return found
