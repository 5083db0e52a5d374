"""Pure helpers the channel adapters share: line fitting, step lines, and turning a service's HTTP
answer into a `SendResult` (classified as Alertmanager's notifiers do). Text fitting, escaping and scrubbing,
which the chat transport shares too, are in decide/text.py."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import urlsplit

from autoremedy.clock import SYSTEM_CLOCK
from autoremedy.decide.text import ellipsize, one_line, scrub
from autoremedy.models.notifications import SendOutcome, SendResult, StepLine

_STEP_MARKS: Final[Mapping[str, str]] = {
    "done": "✅",
    "failed": "❌",
    "interrupted": "⚠️",
    "not_run": "⏭️",
    "pending": "⏳",
}
STEP_DETAIL_MAX: Final = 200
_ERROR_TEXT_MAX: Final = 500


# -- text ------------------------------------------------------------------------------------------------


def is_web_url(url: str) -> bool:
    """An http(s) URL with a host (what a chat message may link to)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return (
        parts.scheme.lower() in ("http", "https") and bool(parts.netloc) and not any(c.isspace() for c in url.strip())
    )


def fit_lines(lines: Iterable[str], limit: int, *, noun: str) -> str:
    """Join `lines` with newlines within `limit` characters; what does not fit is counted in a last line."""
    pending = list(lines)
    kept: list[str] = []
    used = 0
    for index, line in enumerate(pending):
        rest = len(pending) - index - 1
        reserve = len(f"\n…and {rest} more {noun}") if rest else 0
        cost = len(line) + (1 if kept else 0)
        if used + cost + reserve > limit:
            more = f"…and {len(pending) - index} more {noun}"
            return "\n".join([*kept, more]) if kept else ellipsize(more, limit)
        kept.append(line)
        used += cost
    return "\n".join(kept)


def fit_key(key: str, limit: int) -> str:
    """`key` if it fits, else a deterministic shorter one (a prefix and a hash), so a trigger and its resolve
    still agree on it."""
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[: limit - len(digest) - 1]}~{digest}"


def step_line(step: StepLine, *, detail_max: int = STEP_DETAIL_MAX) -> str:
    """`✅ restart (kubernetes.restart): done — pod web-1 deleted` (plain text, not escaped)."""
    mark = _STEP_MARKS.get(step.outcome, "•")
    line = f"{mark} {step.name} ({step.action}): {step.outcome}"
    detail = one_line(step.detail)
    return f"{line} — {ellipsize(detail, detail_max)}" if detail else line


def component(labels: Mapping[str, str]) -> str:
    """`namespace/app` from the alert's labels, as much of it as is there."""
    return "/".join(labels[name] for name in ("namespace", "app") if labels.get(name))


# -- answers ---------------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or an HTTP date); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or SYSTEM_CLOCK.now())).total_seconds(), 0.0)


def outcome_of(status: int) -> SendOutcome:
    """2xx sent; 429 and 5xx retry; anything else gives up."""
    if 200 <= status < 300:
        return SendOutcome.SENT
    if status == 429 or status >= 500:
        return SendOutcome.RETRY
    return SendOutcome.GIVE_UP


def error_text(body: str) -> str:
    """What a service said in an error answer: `message` and `errors` of a JSON body, else the body itself."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return ellipsize(one_line(body), _ERROR_TEXT_MAX)
    if not isinstance(data, dict):
        return ellipsize(one_line(body), _ERROR_TEXT_MAX)
    parts: list[str] = []
    for name in ("message", "error", "status"):
        if isinstance(data.get(name), str) and data[name]:
            parts.append(data[name])
            break
    errors = data.get("errors")
    if isinstance(errors, Mapping):
        parts.extend(f"{key}: {why}" for key, why in errors.items())
    elif isinstance(errors, list):
        parts.extend(str(why) for why in errors)
    return ellipsize(one_line("; ".join(parts) or body), _ERROR_TEXT_MAX)


def http_result(
    service: str,
    status: int,
    body: str,
    retry_after_header: str | None,
    *,
    reference: str,
    secrets: Iterable[str],
) -> SendResult:
    """The `SendResult` for an HTTP answer of `service`."""
    outcome = outcome_of(status)
    if outcome is SendOutcome.SENT:
        return SendResult(SendOutcome.SENT, reference=reference)
    said = error_text(body)
    error = scrub(f"{service}: HTTP {status}" + (f": {said}" if said else ""), secrets)
    retry_after = parse_retry_after(retry_after_header) if outcome is SendOutcome.RETRY else None
    return SendResult(outcome, error=error, retry_after=retry_after)


def unreachable(service: str, exc: BaseException, secrets: Iterable[str], *, timeout: float) -> SendResult:
    """A connection error or a timeout: retry later."""
    if isinstance(exc, TimeoutError):
        why = f"no answer within {timeout:g}s"
    else:
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return SendResult(
        SendOutcome.RETRY, error=scrub(f"{service}: {ellipsize(one_line(why), _ERROR_TEXT_MAX)}", secrets)
    )
