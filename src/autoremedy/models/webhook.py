"""The Alertmanager webhook payload (version 4), as Alertmanager 0.25+ sends it, and the limits its alerts keep.

Only the fields we use are declared; unknown fields (e.g. `notification_reason` from 0.32+) are ignored so a newer
Alertmanager never gets a 400 from us. What we keep is checked so that nothing stored can break a later step: times
that convert to UTC within years 1-9998, fingerprints as Alertmanager makes them, no control characters (NUL cannot
even be stored in PostgreSQL text). Sizes are capped by configurable limits (`server.limits`), checked apart from the
model because they come from the settings.

Every check of a string is a pattern that pydantic-core runs in Rust, so a valid webhook of small size is
validated in one call without a Python function per string (a webhook storm is mostly valid webhooks, and this was
the webhook's largest cost); the friendly message for a refused string is made only when one is refused
(`field_problems`). A body that fails as a whole, or a big one, is validated alert by alert: a bad alert is refused
alone and the others of its webhook are kept, and a caller running it in a thread lets the interpreter switch to the
event loop between alerts (a 4 MiB webhook of 18,000 alerts does not hold the loop for its whole validation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, create_model
from pydantic_core import from_json

AlertStatus = Literal["firing", "resolved"]
LIMITS_KEY = "server.limits"
"""Where the limits are configured; every refusal over a limit names its key."""
FIRST_YEAR, LAST_YEAR = 1, 9998
MAX_PROBLEMS = 20
"""A refusal lists this many problems at most: enough to fix the sender, small whatever the body."""
WHOLE_BODY_AT_ONCE = 64 * 1024
"""Bodies up to this size (some 250 alerts) are validated in one call when they are valid; bigger ones alert by
alert (see the module's docstring)."""
# Patterns as pydantic-core's Rust regex reads them: `$` is the end of the text, never before a final newline.
_NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]*$"
_NO_CONTROL_BUT_LINES = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
_FINGERPRINT = r"^[0-9A-Za-z]{1,128}$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
FINGERPRINT_RULE = "must be 1 to 128 characters of 0-9, A-Z, a-z (Alertmanager's are 16 hex digits)"
REQUESTER_LABEL = "autoremedy_requested_by"
"""Set by autoremedy alone, on a manual run asked in chat: who asked, who then cannot approve the run. From a
webhook it would let the token holder name someone else as the asker (and keep that person from approving)."""
PLAYBOOK_LABEL = "autoremedy_playbook"
"""Set by autoremedy alone, on a manual run asked in chat: the playbook a chat operator chose. From a webhook it
would let whoever holds the Alertmanager token start the rules meant for people with the operator role in chat."""
RESERVED_LABELS = (REQUESTER_LABEL, PLAYBOOK_LABEL)


def _utc_within_years(value: datetime) -> datetime:
    """The instant in UTC; refused if it falls outside years 1-9998 there (later arithmetic must not overflow)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        utc = aware.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not FIRST_YEAR <= utc.year <= LAST_YEAR:
        raise ValueError(f"must be within years {FIRST_YEAR}-{LAST_YEAR} in UTC")
    return utc


Text = Annotated[str, StringConstraints(pattern=_NO_CONTROL)]
FreeText = Annotated[str, StringConstraints(pattern=_NO_CONTROL_BUT_LINES)]
UtcTime = Annotated[datetime, AfterValidator(_utc_within_years)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Alert(_Lenient):
    status: AlertStatus
    labels: dict[Text, Text]
    annotations: dict[Text, FreeText] = Field(default_factory=dict)
    starts_at: UtcTime = Field(alias="startsAt")
    ends_at: UtcTime | None = Field(default=None, alias="endsAt")
    generator_url: Text = Field(default="", alias="generatorURL")
    fingerprint: Annotated[str, StringConstraints(pattern=_FINGERPRINT)]


class _WebhookFields(_Lenient):
    version: Literal["4"]
    receiver: Text = ""
    status: AlertStatus
    group_key: Text = Field(default="", alias="groupKey")
    external_url: Text = Field(default="", alias="externalURL")
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts")


class WebhookPayload(_WebhookFields):
    alerts: list[Alert]


class _Envelope(_WebhookFields):
    """The webhook with its alerts not yet validated (`parse_webhook` takes them one by one)."""

    alerts: list[Any]


class WebhookLimits(BaseModel):
    """`server.limits`: how big one alert may be. The number of alerts is not capped here: Alertmanager drops what
    gets a 4xx, so a real notification group must always fit; the body size (`server.max_body_bytes`) caps it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    labels_per_alert: int = Field(default=100, ge=1, description="labels per alert, and annotations per alert")
    label_name_length: int = Field(default=256, ge=1, description="characters in a label or annotation name")
    value_length: int = Field(default=16 * 1024, ge=1, description="characters in a label or annotation value")


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    """Dotted path into the body, e.g. `alerts.3.startsAt`; `(body)` for the body as a whole."""
    message: str


class InvalidWebhook(ValueError):
    """The body is not a webhook we take; `problems` name the fields (at most MAX_PROBLEMS of them)."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ParsedWebhook:
    """A webhook's valid alerts and what is wrong with the others. One bad alert must not cost the rest of its
    notification group: Alertmanager drops the whole notification on a 4xx, so the valid alerts are kept."""

    payload: WebhookPayload
    """The webhook with its valid alerts only."""
    problems: list[FieldProblem]
    """The refused alerts' problems, at most MAX_PROBLEMS of them."""
    positions: list[int]
    """Where each kept alert was in the body (`alerts.N`)."""


def parse_webhook(body: bytes, limits: WebhookLimits) -> ParsedWebhook:
    """The webhook in `body`, split into valid alerts (within `limits`) and problems naming the others' fields.

    InvalidWebhook when the body as a whole is not a webhook (not JSON, a wrong version, no alerts list, ...)."""
    if len(body) <= WHOLE_BODY_AT_ONCE:
        try:
            payload = _payload_within(limits).model_validate_json(body)
        except ValidationError:
            pass  # which alerts, and why: alert by alert below
        else:
            if not any(_has_reserved(alert) for alert in payload.alerts):
                return ParsedWebhook(payload, [], list(range(len(payload.alerts))))
    return _alert_by_alert(body, limits)


@lru_cache(maxsize=8)
def _payload_within(limits: WebhookLimits) -> type[WebhookPayload]:
    """WebhookPayload whose alerts are also held to `limits`, every check in pydantic-core. A refusal sends the body
    alert by alert, where `alert_over_limits` says in words which limit (and its configuration key) was passed."""
    name = Annotated[str, StringConstraints(pattern=_NO_CONTROL, max_length=limits.label_name_length)]
    value = Annotated[str, StringConstraints(pattern=_NO_CONTROL, max_length=limits.value_length)]
    text = Annotated[str, StringConstraints(pattern=_NO_CONTROL_BUT_LINES, max_length=limits.value_length)]
    most = limits.labels_per_alert
    alert: Any = create_model(
        "AlertWithinLimits",
        __base__=Alert,
        labels=(Annotated[dict[name, value], Field(max_length=most)], ...),
        annotations=(Annotated[dict[name, text], Field(max_length=most)], Field(default_factory=dict)),
    )
    return cast(
        type[WebhookPayload], create_model("WebhookWithinLimits", __base__=WebhookPayload, alerts=(list[alert], ...))
    )


def _has_reserved(alert: Alert) -> bool:
    return not alert.labels.keys().isdisjoint(RESERVED_LABELS)


def _alert_by_alert(body: bytes, limits: WebhookLimits) -> ParsedWebhook:
    try:
        raw = from_json(body)
    except ValueError as exc:
        raise InvalidWebhook([FieldProblem("(body)", f"not JSON: {exc}")]) from None
    if not isinstance(raw, dict):
        raise InvalidWebhook([FieldProblem("(body)", "must be a JSON object (an Alertmanager webhook)")])
    try:
        envelope = _Envelope.model_validate(raw)
    except ValidationError as exc:
        raise InvalidWebhook(field_problems(exc)[:MAX_PROBLEMS]) from None
    alerts, positions, problems = _valid_alerts(envelope.alerts, limits)
    fields = {name: getattr(envelope, name) for name in _WebhookFields.model_fields}
    return ParsedWebhook(WebhookPayload.model_construct(**fields, alerts=alerts), problems, positions)


def _valid_alerts(items: list[Any], limits: WebhookLimits) -> tuple[list[Alert], list[int], list[FieldProblem]]:
    alerts: list[Alert] = []
    positions: list[int] = []
    problems: list[FieldProblem] = []
    for index, item in enumerate(items):
        try:
            alert = Alert.model_validate(item)
        except ValidationError as exc:
            problems += field_problems(exc, prefix=("alerts", index))[:MAX_PROBLEMS]
            continue
        over = alert_over_limits(alert, limits, prefix=f"alerts.{index}")
        if over:
            problems += over[:MAX_PROBLEMS]
            continue
        alerts.append(alert)
        positions.append(index)
        del problems[MAX_PROBLEMS:]
    return alerts, positions, problems[:MAX_PROBLEMS]


def alert_over_limits(alert: Alert, limits: WebhookLimits, *, prefix: str) -> list[FieldProblem]:
    reserved = [
        FieldProblem(f"{prefix}.labels.{name}", "set only by autoremedy (a manual run asked in chat)")
        for name in RESERVED_LABELS
        if name in alert.labels
    ]
    return [
        *reserved,
        *_mapping_over_limits(alert.labels, limits, field=f"{prefix}.labels", noun="labels"),
        *_mapping_over_limits(alert.annotations, limits, field=f"{prefix}.annotations", noun="annotations"),
    ]


def _mapping_over_limits(
    mapping: dict[str, str], limits: WebhookLimits, *, field: str, noun: str
) -> list[FieldProblem]:
    problems = []
    if len(mapping) > limits.labels_per_alert:
        problems.append(FieldProblem(field, _over(f"{len(mapping)} {noun}", "labels_per_alert", limits)))
    for name, value in mapping.items():
        if len(name) > limits.label_name_length:
            size = f"a name of {len(name)} characters ({_preview(name)})"
            problems.append(FieldProblem(field, _over(size, "label_name_length", limits)))
        elif len(value) > limits.value_length:
            size = f"a value of {len(value)} characters"
            problems.append(FieldProblem(f"{field}.{name}", _over(size, "value_length", limits)))
    return problems


def _over(what: str, key: str, limits: WebhookLimits) -> str:
    return f"{what}: more than {LIMITS_KEY}.{key} ({getattr(limits, key)})"


def _preview(text: str, length: int = 32) -> str:
    return repr(text[:length] + "...") if len(text) > length else repr(text)


def field_problems(error: ValidationError, *, prefix: tuple[str | int, ...] = ()) -> list[FieldProblem]:
    """One problem per pydantic error, its location as a dotted path (names cut short: they echo the input)."""
    return [
        FieldProblem(
            ".".join(_preview(str(part), 64).strip("'\"") for part in (*prefix, *item["loc"])) or "(body)",
            _message(item),
        )
        for item in error.errors(include_url=False, include_input=True, include_context=True)
    ]


def _message(item: Any) -> str:
    """pydantic's message, or for a refused string what is wrong with it in words (never the value itself)."""
    if item["type"] != "string_pattern_mismatch":
        return str(item["msg"])
    pattern, text = item["ctx"]["pattern"], str(item["input"])
    if pattern == _FINGERPRINT:
        return f"Value error, {FINGERPRINT_RULE}"
    found = (_CONTROL if pattern == _NO_CONTROL else _CONTROL_BUT_LINES).search(text)
    if found is None:  # cannot be: the pattern refused it for a control character
        return str(item["msg"])
    return f"Value error, control character U+{ord(found.group()):04X} at position {found.start()}"
