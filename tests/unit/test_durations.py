"""Table-driven tests for Prometheus-style durations: parse_duration, format_duration and the pydantic type."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from autoremedy.models.durations import Duration, format_duration, parse_duration


class _Holder(BaseModel):
    timeout: Duration


# (text, expected timedelta)
PARSE_CASES = [
    pytest.param("30s", timedelta(seconds=30), id="seconds"),
    pytest.param("5m", timedelta(minutes=5), id="minutes"),
    pytest.param("1h30m", timedelta(hours=1, minutes=30), id="hours-minutes"),
    pytest.param("500ms", timedelta(milliseconds=500), id="millis"),
    pytest.param("1d", timedelta(days=1), id="day"),
    pytest.param("1w", timedelta(weeks=1), id="week"),
    pytest.param("2y", timedelta(days=730), id="years-are-365-days"),
    pytest.param("0s", timedelta(0), id="zero"),
    pytest.param("0ms", timedelta(0), id="zero-millis"),
    pytest.param("90m", timedelta(minutes=90), id="unnormalised-minutes"),
    pytest.param("1m30s500ms", timedelta(minutes=1, seconds=30, milliseconds=500), id="three-units"),
    pytest.param(
        "1y2w3d4h5m6s7ms",
        timedelta(days=365 + 14 + 3, hours=4, minutes=5, seconds=6, milliseconds=7),
        id="every-unit",
    ),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


# Texts that are not Prometheus durations; the error must quote the text.
REJECT_CASES = [
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param("5", id="no-unit"),
    pytest.param("1.5s", id="fraction"),
    pytest.param("5x", id="unknown-unit"),
    pytest.param("1m1h", id="wrong-order"),
    pytest.param("1s1s", id="unit-twice"),
    pytest.param("-5s", id="negative"),
    pytest.param("5 m", id="space-inside"),
    pytest.param("ms", id="unit-without-number"),
    pytest.param("5M", id="upper-case-unit"),
]


@pytest.mark.parametrize("text", REJECT_CASES)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration") as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)


# (timedelta, shortest Prometheus spelling)
FORMAT_CASES = [
    pytest.param(timedelta(0), "0s", id="zero"),
    pytest.param(timedelta(seconds=30), "30s", id="seconds"),
    pytest.param(timedelta(minutes=5), "5m", id="minutes"),
    pytest.param(timedelta(minutes=90), "1h30m", id="minutes-carry-into-hours"),
    pytest.param(timedelta(milliseconds=500), "500ms", id="millis"),
    pytest.param(timedelta(hours=24), "1d", id="day"),
    pytest.param(timedelta(days=7), "1w", id="week"),
    pytest.param(timedelta(days=730), "2y", id="years"),
    pytest.param(timedelta(days=366), "1y1d", id="year-and-day"),
    pytest.param(timedelta(hours=1, milliseconds=1), "1h1ms", id="hour-and-milli"),
    pytest.param(timedelta(seconds=59, milliseconds=999), "59s999ms", id="just-under-a-minute"),
    pytest.param(timedelta(seconds=1, milliseconds=1), "1s1ms", id="second-and-milli"),
    pytest.param(timedelta(seconds=3, milliseconds=1), "3s1ms", id="seconds-and-milli"),
]


@pytest.mark.parametrize(("value", "expected"), FORMAT_CASES)
def test_format_duration(value: timedelta, expected: str) -> None:
    assert format_duration(value) == expected


# Canonical spellings survive parse -> format unchanged.
ROUND_TRIP_CASES = [
    pytest.param("0s", id="zero"),
    pytest.param("30s", id="seconds"),
    pytest.param("1h30m", id="hours-minutes"),
    pytest.param("500ms", id="millis"),
    pytest.param("1w", id="week"),
    pytest.param("2y", id="years"),
    pytest.param("1y2w3d4h5m6s7ms", id="every-unit"),
    pytest.param("1m1s1ms", id="minute-second-milli"),
    pytest.param("1s1ms", id="second-milli"),
    pytest.param("10s5ms", id="ten-seconds-five-millis"),
]


@pytest.mark.parametrize("text", ROUND_TRIP_CASES)
def test_round_trip_text(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize("millis", [0, 1, 999, 1000, 1001, 1003, 61_001, 86_400_001, 31_536_000_001])
def test_round_trip_timedelta(millis: int) -> None:
    value = timedelta(milliseconds=millis)
    assert parse_duration(format_duration(value)) == value


# Values the pydantic type accepts.
MODEL_ACCEPT_CASES = [
    pytest.param("30s", timedelta(seconds=30), id="string"),
    pytest.param("1h30m", timedelta(minutes=90), id="compound-string"),
    pytest.param(timedelta(seconds=7), timedelta(seconds=7), id="timedelta-passes-through"),
]


@pytest.mark.parametrize(("raw", "expected"), MODEL_ACCEPT_CASES)
def test_model_accepts(raw: object, expected: timedelta) -> None:
    assert _Holder.model_validate({"timeout": raw}).timeout == expected


# (value, text the error must contain)
MODEL_REJECT_CASES = [
    pytest.param(5, "invalid duration 5: add a unit, e.g. 5s", id="bare-int"),
    pytest.param(0, "invalid duration 0", id="bare-zero"),
    pytest.param(1.5, "invalid duration 1.5", id="bare-float"),
    pytest.param("5", "invalid duration '5'", id="numeric-string"),
    pytest.param("1m1h", "invalid duration '1m1h'", id="wrong-order"),
    pytest.param("", "invalid duration ''", id="empty-string"),
    # YAML `timeout: true` must not silently become one second.
    pytest.param(True, "", id="bool"),
]


@pytest.mark.parametrize(("raw", "message"), MODEL_REJECT_CASES)
def test_model_rejects(raw: object, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _Holder.model_validate({"timeout": raw})
    errors = caught.value.errors()
    assert [error["loc"] for error in errors] == [("timeout",)]
    assert message in errors[0]["msg"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(timedelta(minutes=90), "1h30m", id="compound"),
        pytest.param(timedelta(0), "0s", id="zero"),
        pytest.param(timedelta(milliseconds=250), "250ms", id="millis"),
    ],
)
@pytest.mark.parametrize("mode", ["python", "json"])
def test_model_serialises_as_prometheus_text(value: timedelta, expected: str, mode: str) -> None:
    dumped = _Holder(timeout=value).model_dump(mode=mode)
    assert dumped == {"timeout": expected}
    assert _Holder.model_validate(dumped).timeout == value
