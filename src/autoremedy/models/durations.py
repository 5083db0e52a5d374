"""Durations written as Prometheus writes them: `30s`, `5m`, `1h30m`, `500ms`, `1d`, `1w`, `1y`."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNITS_MS = {
    "y": 365 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1_000,
    "ms": 1,
}
# Units must appear in this order, each at most once, as in Prometheus' model.ParseDuration.
_DURATION = re.compile(
    r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?"
)


def parse_duration(text: str) -> timedelta:
    """Parse a Prometheus duration; raise ValueError naming the text when it is not one."""
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"invalid duration {text!r}: write it as Prometheus does, e.g. 30s, 5m, 1h30m")
    millis = sum(int(part) * unit for part, unit in zip(match.groups(), _UNITS_MS.values(), strict=True) if part)
    return timedelta(milliseconds=millis)


@lru_cache(maxsize=1024)  # verdicts say their durations for every run they judge: a backtest judges 100,000s
def format_duration(value: timedelta) -> str:
    """The shortest Prometheus spelling of a duration (`0s` for zero)."""
    millis = value // timedelta(milliseconds=1)  # integer maths: total_seconds() * 1000 can lose a millisecond
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS_MS.items():
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _coerce(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, bool | int | float):
        raise ValueError(f"invalid duration {value!r}: add a unit, e.g. {value}s")
    return value


Duration = Annotated[timedelta, BeforeValidator(_coerce), PlainSerializer(format_duration, return_type=str)]
"""A pydantic field type that reads and writes Prometheus durations."""
