"""A local fake of the PagerDuty Events API v2 (``POST {fake.url}/v2/enqueue``); tracks incidents by ``dedup_key``.

The ``fake_pagerduty`` fixture (function scope, stopped at teardown) is registered by the root conftest.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from aiohttp import web

from .fakeservice import FakeService, Reply, parse_json, retry_after_headers

#: Default routing key of the fake (any syntactically valid value would do).
PAGERDUTY_ROUTING_KEY: Final = "0123456789abcdef0123456789abcdef"


_PD_ACTIONS: Final = ("trigger", "acknowledge", "resolve")
_PD_SEVERITIES: Final = ("critical", "error", "warning", "info")
_PD_DEDUP_KEY_MAX: Final = 255
_PD_SUMMARY_MAX: Final = 1024

IncidentStatus = Literal["triggered", "acknowledged", "resolved"]


@dataclass
class PagerDutyIncident:
    """An alert PagerDuty opened for a trigger; later events with its ``dedup_key`` apply to it while open."""

    dedup_key: str
    summary: str
    source: str
    severity: str
    status: IncidentStatus = "triggered"
    trigger_count: int = 1  # the opening trigger plus repeats
    events: list[dict[str, Any]] = field(default_factory=list)  # every event applied to it, in order

    @property
    def is_open(self) -> bool:
        return self.status != "resolved"

    @property
    def repeats(self) -> int:
        """Triggers that were de-duplicated into this incident."""
        return self.trigger_count - 1


def _pd_payload_errors(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object"]
    errors: list[str] = []
    summary, source, severity = payload.get("summary"), payload.get("source"), payload.get("severity")
    if not isinstance(summary, str) or not summary.strip():
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > _PD_SUMMARY_MAX:
        errors.append(f"'payload.summary' is too long (maximum is {_PD_SUMMARY_MAX} characters)")
    if not isinstance(source, str) or not source.strip():
        errors.append("'payload.source' is missing or blank")
    if severity not in _PD_SEVERITIES:
        errors.append(f"'payload.severity' is invalid (must be one of {', '.join(_PD_SEVERITIES)})")
    return errors


def _pd_dedup_key_errors(dedup_key: Any, *, required: bool) -> list[str]:
    if dedup_key is None or dedup_key == "":
        return ["'dedup_key' is missing or blank"] if required else []
    if not isinstance(dedup_key, str):
        return ["'dedup_key' must be a string"]
    if len(dedup_key) > _PD_DEDUP_KEY_MAX:
        return [f"'dedup_key' is too long (maximum is {_PD_DEDUP_KEY_MAX} characters)"]
    return []


class FakePagerDuty(FakeService):
    """PagerDuty Events API v2 at ``POST /v2/enqueue``.

    Accepted events answer 202 ``{"status": "success", "message": "Event processed", "dedup_key": ...}``;
    invalid ones 400 ``{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}``;
    a body that is not a JSON object (or not sent as ``application/json``) 400 ``{"status": "Unrecognized
    object", "message": "Event object format is unrecognized", "errors": [...]}``.

    A trigger whose ``dedup_key`` has an open incident is applied to it (``trigger_count`` + 1), not a new
    incident; a trigger without ``dedup_key`` gets a generated one (always a new incident). acknowledge and
    resolve need a ``dedup_key``; with no open incident for it they are accepted (202) and dropped.
    """

    def __init__(self, routing_key: str = PAGERDUTY_ROUTING_KEY) -> None:
        if len(routing_key) != 32 or not (routing_key.isascii() and routing_key.isalnum()):
            raise ValueError("an Events API v2 routing key is 32 alphanumeric characters")
        super().__init__()
        self.routing_key = routing_key
        #: Every incident ever opened, in order (resolved ones stay here).
        self.incidents: list[PagerDutyIncident] = []
        #: Every accepted event (202), in order, dropped ones included.
        self.events: list[dict[str, Any]] = []
        #: Accepted acknowledge/resolve events that matched no open incident.
        self.dropped: list[dict[str, Any]] = []
        self._open: dict[str, PagerDutyIncident] = {}

    @property
    def enqueue_url(self) -> str:
        return f"{self.url}/v2/enqueue"

    @property
    def open_incidents(self) -> dict[str, PagerDutyIncident]:
        """Open (triggered or acknowledged) incidents by dedup_key."""
        return dict(self._open)

    def incident(self, dedup_key: str) -> PagerDutyIncident:
        """The most recent incident opened with ``dedup_key``."""
        for incident in reversed(self.incidents):
            if incident.dedup_key == dedup_key:
                return incident
        raise KeyError(dedup_key)

    def fail_next(self, status: int = 500, *, retry_after: int | None = None, times: int = 1, body: Any = None) -> None:
        """Answer the next ``times`` events with HTTP ``status`` (429, 500, 400, ...) and apply nothing.

        PagerDuty documents no Retry-After on 429 (retry "after some time"), so none is sent unless
        ``retry_after`` is given.
        """
        payload = body if body is not None else _pd_fault_body(status)
        self._add_fault(None, lambda: Reply(status, payload, retry_after_headers(retry_after)), times)

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/enqueue", self._wrap(self._handle))
        return app

    async def _handle(self, request: web.Request, body: bytes) -> Reply:
        fault = self._take_fault("enqueue")
        if fault is not None:
            return fault
        event = parse_json(body) if request.content_type == "application/json" else None
        if not isinstance(event, dict):
            why = (
                "JSON parse error"
                if request.content_type == "application/json"
                else "Content-Type must be application/json"
            )
            return Reply(
                400,
                {"status": "Unrecognized object", "message": "Event object format is unrecognized", "errors": [why]},
            )
        errors = self._event_errors(event)
        if errors:
            return Reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors})
        dedup_key = self._apply(event)
        return Reply(202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key})

    def _event_errors(self, event: dict[str, Any]) -> list[str]:
        errors = self._routing_key_errors(event.get("routing_key"))
        action = event.get("event_action")
        if action not in _PD_ACTIONS:
            errors.append(f"'event_action' is missing or invalid (must be one of {', '.join(_PD_ACTIONS)})")
        errors += _pd_dedup_key_errors(event.get("dedup_key"), required=action in ("acknowledge", "resolve"))
        if action == "trigger":
            errors += _pd_payload_errors(event.get("payload"))
        return errors

    def _routing_key_errors(self, key: Any) -> list[str]:
        if not isinstance(key, str) or not key:
            return ["'routing_key' is missing or blank"]
        errors: list[str] = []
        if len(key) != 32:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        if not (key.isascii() and key.isalnum()):
            errors.append("'routing_key' cannot contain non-alphanumeric characters.")
        if not errors and key != self.routing_key:
            errors.append("Invalid routing key")
        return errors

    def _apply(self, event: dict[str, Any]) -> str:
        self.events.append(event)
        action: str = event["event_action"]
        dedup_key: str = event.get("dedup_key") or uuid.uuid4().hex
        incident = self._open.get(dedup_key)
        if action == "trigger":
            if incident is None:
                payload = event["payload"]
                incident = PagerDutyIncident(dedup_key, payload["summary"], payload["source"], payload["severity"])
                self.incidents.append(incident)
                self._open[dedup_key] = incident
            else:
                incident.trigger_count += 1
        elif incident is None:
            self.dropped.append(event)
            return dedup_key
        elif action == "acknowledge":
            incident.status = "acknowledged"
        else:
            incident.status = "resolved"
            del self._open[dedup_key]
        incident.events.append(event)
        return dedup_key


def _pd_fault_body(status: int) -> dict[str, Any]:
    if status == 429:
        return {"status": "throttle event", "message": "Too many API calls at a time."}
    if status == 400:
        return {"status": "invalid event", "message": "Event object is invalid", "errors": ["injected fault"]}
    return {"status": "error", "message": "Internal Server Error"}
