"""Templates and the filters they use. Autoescaping is on for every template: alert labels and annotations come
from whoever can make an alert fire, so no value reaches the page unescaped, and only http(s) URLs become links."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined

from autoremedy.models.durations import format_duration

_ISO_INSTANT: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def link_target(url: Any) -> str | None:
    """The URL when it may be a link (http or https with a host), else None: shown as text."""
    text = str(url or "")
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    return text if parts.scheme in {"http", "https"} and parts.netloc else None


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "—"


def clock(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%H:%M:%S") if value is not None else "—"


def age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return format_duration(timedelta(seconds=int(max(seconds, 0))))


def took(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    return format_duration(timedelta(milliseconds=int((end - start).total_seconds() * 1000)))


def readable_times(text: Any) -> str:
    """ISO-8601 instants in a sentence (verdict reasons carry them) as `2026-12-06 14:05:00 UTC`."""

    def one(match: re.Match[str]) -> str:
        try:
            return when(datetime.fromisoformat(match.group(0).replace("Z", "+00:00")))
        except ValueError:
            return match.group(0)

    return _ISO_INSTANT.sub(one, str(text))


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def build_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("autoremedy.console", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        link_target=link_target,
        when=when,
        clock=clock,
        age=age,
        took=took,
        times=readable_times,
        pretty=pretty,
        duration=format_duration,
    )
    return env


ENVIRONMENT: Final = build_environment()


def render(name: str, **context: Any) -> str:
    return ENVIRONMENT.get_template(name).render(**context)


def page(name: str, *, status: int = 200, **context: Any) -> web.Response:
    response = web.Response(text=render(name, **context), status=status, content_type="text/html", charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    return response
