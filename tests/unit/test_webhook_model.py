"""The webhook model without a server: what parse_webhook takes, refuses and names; the collector pause."""

from __future__ import annotations

import copy
import gc
import json
import re
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoremedy.ingest.offload import collector_paused
from autoremedy.models.events import events_from_payload
from autoremedy.models.webhook import (
    FINGERPRINT_RULE,
    MAX_PROBLEMS,
    InvalidWebhook,
    WebhookLimits,
    _alert_by_alert,
    parse_webhook,
)

FIRING: dict[str, Any] = {
    "version": "4",
    "receiver": "autoremedy",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "DiskFull", "instance": "db1"},
            "annotations": {"summary": "disk full"},
            "startsAt": "2026-11-26T22:15:01.179Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prom:9090/graph",
            "fingerprint": "2211ebba9d7bd2f0",
        }
    ],
}


def body_with(**alert: Any) -> bytes:
    body = copy.deepcopy(FIRING)
    body["alerts"][0].update(alert)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("starts_at", "canonical"),
    [
        ("2026-11-26T22:15:01.179Z", "2026-11-26T22:15:01.179000Z"),
        ("2026-11-27T00:15:01.179+02:00", "2026-11-26T22:15:01.179000Z"),  # one spelling per instant
        ("2026-11-26T22:15:01", "2026-11-26T22:15:01.000000Z"),  # no offset: UTC
        ("0001-01-01T23:00:00+22:00", "0001-01-01T01:00:00.000000Z"),
        ("9998-12-31T23:59:59.999999Z", "9998-12-31T23:59:59.999999Z"),
    ],
)
def test_times_within_years_1_to_9998_in_utc_are_taken(starts_at: str, canonical: str) -> None:
    (event,) = events_from_payload(parse_webhook(body_with(startsAt=starts_at), WebhookLimits()).payload)
    assert event.starts_at == canonical
    assert event.ends_at is None  # Go's zero time: not ended


@pytest.mark.parametrize(
    "moment",
    ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+01:00", "9999-01-01T00:00:00Z", "0001-01-01T00:59:59+01:00"],
)
@pytest.mark.parametrize("field", ["startsAt", "endsAt"])
def test_times_outside_years_1_to_9998_in_utc_are_refused(field: str, moment: str) -> None:
    parsed = parse_webhook(body_with(**{field: moment}), WebhookLimits())
    assert parsed.payload.alerts == []
    assert [(p.field, p.message) for p in parsed.problems] == [
        (f"alerts.0.{field}", "Value error, must be within years 1-9998 in UTC")
    ]


def test_problems_are_counted_out_at_a_bound_and_the_valid_alerts_kept() -> None:
    bad = {"status": "burning"}
    body = json.dumps({**FIRING, "alerts": [bad] * 1000 + FIRING["alerts"] + [bad]}).encode()
    parsed = parse_webhook(body, WebhookLimits())
    assert len(parsed.problems) == MAX_PROBLEMS
    assert parsed.problems[0].field == "alerts.0.status"
    assert [alert.fingerprint for alert in parsed.payload.alerts] == ["2211ebba9d7bd2f0"]
    assert parsed.positions == [1000]


def test_a_body_that_is_no_webhook_is_refused_whole() -> None:
    for body in (b"{", b"[]", json.dumps({**FIRING, "version": "3"}).encode(), json.dumps({"version": "4"}).encode()):
        with pytest.raises(InvalidWebhook):
            parse_webhook(body, WebhookLimits())


def test_a_huge_name_is_not_echoed_whole() -> None:
    name = "n\x00" + "x" * 100_000
    problems = parse_webhook(body_with(labels={name: "v"}), WebhookLimits()).problems
    assert problems and all(len(p.field) < 100 and len(p.message) < 200 for p in problems)


def test_the_collector_is_paused_until_the_last_one_leaves_and_restored() -> None:
    assert gc.isenabled()
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with collector_paused():
            entered.set()
            leave.wait(timeout=10)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert entered.wait(timeout=10)
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the other thread is still inside
    finally:
        leave.set()
        thread.join(timeout=10)
    assert gc.isenabled()
    with collector_paused(False):
        assert gc.isenabled()


def test_a_collector_disabled_by_someone_else_stays_disabled() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize(
    ("label", "value"), [("autoremedy_requested_by", "slack:U999ONLY"), ("autoremedy_playbook", "failover-postgres")]
)
def test_the_labels_of_manual_runs_are_refused_from_a_webhook(label: str, value: str) -> None:
    labels = {**FIRING["alerts"][0]["labels"], label: value}
    parsed = parse_webhook(body_with(labels=labels), WebhookLimits())
    assert parsed.payload.alerts == []
    assert [p.field for p in parsed.problems] == [f"alerts.0.labels.{label}"]


# -- a valid small body is validated in one call; whatever that call takes, alert by alert would take too ---------

_TEXTS = st.text(alphabet=st.sampled_from(["a", "Z", "0", " ", "é", "\x00", "\t", "\n", "\r", "\x1b", "\x7f", "\x85"]))
_ALERTS = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["firing", "resolved", "burning"]),
        "labels": st.dictionaries(
            st.one_of(_TEXTS, st.sampled_from(["autoremedy_requested_by", "autoremedy_playbook", "alertname"])),
            _TEXTS,
            max_size=4,
        ),
        "annotations": st.dictionaries(_TEXTS, _TEXTS, max_size=3),
        "startsAt": st.sampled_from(["2026-11-26T22:15:01Z", "9999-12-31T23:59:59-12:00", "not a time"]),
        "fingerprint": st.sampled_from(["2211ebba9d7bd2f0", "abc", "", "a-b", "x" * 129]),
    }
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(alerts=st.lists(_ALERTS, min_size=1, max_size=4))
def test_a_body_validated_in_one_call_keeps_and_refuses_what_alert_by_alert_would(alerts: list[dict[str, Any]]) -> None:
    limits = WebhookLimits(labels_per_alert=3, label_name_length=3, value_length=4)
    body = json.dumps({**FIRING, "alerts": alerts}).encode()
    at_once, one_by_one = parse_webhook(body, limits), _alert_by_alert(body, limits)
    assert at_once.positions == one_by_one.positions
    assert [a.model_dump() for a in at_once.payload.alerts] == [a.model_dump() for a in one_by_one.payload.alerts]
    assert at_once.problems == one_by_one.problems


# The same, for bodies an attacker writes by hand: duplicate keys, \\u escapes (lone surrogates, control and C1
# characters, astral characters counted as one), values that are not strings, huge numbers, times at the edges of
# the years allowed once their offset is applied, numeric times, a BOM or another encoding. A value carries a
# marker that no refusal may echo.
_MARK = "Qz"
_CHARS = [
    "a",
    _MARK,
    "\x00",
    "\x1f",
    "\x7f",
    "\x85",
    "\x9f",
    "\u2028",
    "\ud800",
    "\udfff",
    "\U0001f600",
    "\ufeff",
    "\n",
]


def _strings(fair: list[str], hostile: list[str]) -> st.SearchStrategy[str]:
    """JSON strings, mostly fair (so that whole bodies pass and the one call keeps them), some hostile, escaped
    (\\u0000, lone \\ud800) or written as they are (invalid UTF-8 for a lone surrogate)."""
    fair_text = st.lists(st.sampled_from(fair), max_size=3).map("".join)
    hostile_text = st.lists(st.sampled_from(hostile), max_size=5).map("".join)
    return st.one_of(
        *[fair_text.map(json.dumps)] * 6,
        fair_text.map(lambda t: json.dumps(t, ensure_ascii=False)),
        hostile_text.map(json.dumps),
        hostile_text.map(lambda t: json.dumps(t, ensure_ascii=False)),
    )


_FAIR = ["a", "é", "\U0001f600", "\u2028"]
_RAW_STRING = _strings([*_FAIR, _MARK], _CHARS)
_NAME_STRING = _strings(_FAIR, [c for c in _CHARS if c != _MARK])  # a name is shown, cut short: never the mark
_RAW_VALUE = st.one_of(
    *[_RAW_STRING] * 8,
    st.sampled_from(["null", "1", "-0", "1e400", "123456789012345678901234567890", "true", "{}", "[]"]),
)
_RAW_NAME = st.one_of(
    *[_NAME_STRING] * 8, st.sampled_from(['"autoremedy_playbook"', '"autoremedy_requested_by"', '"ab"'])
)
_RAW_TIME = st.one_of(
    *[st.just('"2026-11-26T22:15:01Z"')] * 4,
    st.sampled_from(
        [
            '"2026-11-26t22:15:01z"', '"2026-11-26T22:15:01"', '"2026-11-26T22:15:01.123456789Z"',
            '"0001-01-01T00:30:00+01:00"', '"0001-01-01T00:30:00-01:00"', '"9998-12-31T23:30:00-01:00"',
            '"9998-12-31T23:30:00+01:00"', '"9999-01-01T00:30:00+01:00"', '"0000-12-31T23:00:00-02:00"', "0",
            "-62135596800", "253402300799", "253370764800", "1e400", "NaN", "null", '"2026-11-26T22:15:01+24:00"',
        ]
    ),
)  # fmt: skip
_RAW_FINGERPRINT = st.one_of(
    *[st.just('"2211ebba9d7bd2f0"')] * 4, _RAW_STRING, st.sampled_from(['"abc"', "12", '"\\u0061"'])
)


def _raw_object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{name}:{value}" for name, value in pairs) + "}"


_RAW_ALERT = st.tuples(
    st.lists(st.tuples(_RAW_NAME, _RAW_VALUE), max_size=5),
    st.lists(st.tuples(_RAW_NAME, _RAW_VALUE), max_size=2),
    _RAW_TIME,
    st.one_of(st.none(), _RAW_TIME),
    _RAW_FINGERPRINT,
    st.lists(st.sampled_from(['"status":"resolved"', '"labels":{"ab":"a"}', '"fingerprint":"x-y"']), max_size=1),
).map(
    lambda a: _raw_object(
        [
            ('"status"', '"firing"'),
            ('"labels"', _raw_object(a[0])),
            ('"annotations"', _raw_object(a[1])),
            ('"startsAt"', a[2]),
            *([('"endsAt"', a[3])] if a[3] is not None else []),
            ('"fingerprint"', a[4]),
            *(tuple(extra.split(":", 1)) for extra in a[5]),  # a key again, later in the object: the last one counts
        ]
    )
)


def _raw_body(alerts: list[str], encoding: str) -> bytes:
    text = '{"version":"4","status":"firing","receiver":"r","alerts":[' + ",".join(alerts) + "]}"
    if encoding == "bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")
    return text.encode(encoding, "surrogatepass")


@settings(max_examples=600, derandomize=True, deadline=None)
@given(
    alerts=st.lists(_RAW_ALERT, min_size=1, max_size=3), encoding=st.sampled_from(["utf-8"] * 14 + ["bom", "utf-16"])
)
def test_a_hand_written_hostile_body_is_kept_or_refused_in_one_call_as_alert_by_alert(
    alerts: list[str], encoding: str
) -> None:
    limits = WebhookLimits(labels_per_alert=3, label_name_length=3, value_length=4)
    body = _raw_body(alerts, encoding)
    try:
        one_by_one = _alert_by_alert(body, limits)
    except InvalidWebhook as refused:
        with pytest.raises(InvalidWebhook) as also:
            parse_webhook(body, limits)
        assert also.value.problems == refused.problems
        return
    at_once = parse_webhook(body, limits)
    assert at_once.positions == one_by_one.positions
    assert [a.model_dump() for a in at_once.payload.alerts] == [a.model_dump() for a in one_by_one.payload.alerts]
    assert at_once.problems == one_by_one.problems
    assert not any(_MARK in p.message for p in at_once.problems)  # a refusal never echoes a value
    for alert in at_once.payload.alerts:  # what is kept is text without control characters, within the limits
        texts = [*alert.labels, *alert.labels.values(), *alert.annotations, alert.fingerprint]
        assert all(isinstance(t, str) and not re.search("[\x00-\x1f\x7f-\x9f\ud800-\udfff]", t) for t in texts)
        assert len(alert.labels) <= 3 and all(len(v) <= 4 for v in alert.labels.values())


def test_a_refused_string_is_named_in_words_without_its_value() -> None:
    problems = parse_webhook(body_with(labels={"job": "secret\x1bvalue"}, fingerprint="a-b"), WebhookLimits()).problems
    assert [(p.field, p.message) for p in problems] == [
        ("alerts.0.labels.job", "Value error, control character U+001B at position 6"),
        ("alerts.0.fingerprint", f"Value error, {FINGERPRINT_RULE}"),
    ]
