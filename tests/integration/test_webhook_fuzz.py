"""Property: whatever body, headers and content type reach the webhook, the answer is never a 5xx (which
Alertmanager would retry forever) nor a traceback, and the daemon stays ready.

The daemon runs in a thread with its own event loop, as it would in its own process; hypothesis drives plain
HTTP requests (http.client, so header values can be any bytes) at it. Derandomized: the same examples every run.
Non-UTF-8 credentials and the Slack endpoints are fuzzed with the credentials work (trust-control), so the
Authorization header here is ASCII.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import http.client
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoremedy.app import Daemon
from autoremedy.config.settings import Settings, load_settings
from tests.support.inprocess import (
    DEMO_RULE,
    FULL_AUTH,
    LOG_PLAYBOOK,
    TOKEN,
    fixture_payload,
    fresh_database,
    write_config,
)
from tests.support.postgres import PostgresServer

FIRING = fixture_payload("firing.json")
EXAMPLES = 150


class ThreadedDaemon:
    """A Daemon serving from its own thread and loop until stopped."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name="fuzzed-daemon")

    async def _serve(self) -> None:
        daemon = Daemon(self.settings)
        try:
            await daemon.start()
        except BaseException as exc:
            self._failed = exc
            self._ready.set()
            raise
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await daemon.stop()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(timeout=30) or self._failed is not None:
            raise RuntimeError(f"the daemon did not start: {self._failed!r}")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, Any] | None = None) -> Answer:
        host, port = self.settings.server.host_port
        connection = http.client.HTTPConnection(host, port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Answer(response.status, response.read())
        finally:
            connection.close()


class Answer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedDaemon]:
    """On both stores: PostgreSQL refuses what SQLite takes (NUL in text), so a hole shows on one only."""
    root: Path = tmp_path_factory.mktemp(f"fuzzed-daemon-{request.param}")
    # Backpressure is not under test: room for everything the examples store.
    # A body cut short is answered after server.body_timeout: short, so such examples stay quick.
    # The fuzz sends wrong credentials on purpose, thousands of times from one address: no waiting for it here
    # (the limit itself: test_credentials.py).
    auth = {**FULL_AUTH, "max_failures": 10**6}
    extra: dict[str, Any] = {"engine": {"max_queue_depth": 10**6}, "server": {"body_timeout": "1s", "auth": auth}}
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("shared_postgres")
        extra["store"] = {"url": asyncio.run(fresh_database(server))}
    config = write_config(root, rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK], extra=extra)
    running = ThreadedDaemon(load_settings(config))
    running.start()
    try:
        yield running
    finally:
        running.stop()


# -- strategies -------------------------------------------------------------------------------------------------

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=30)  # surrogates and controls included
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | ANY_TEXT
JSON_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4), max_leaves=12
)
OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
EDGES = st.sampled_from([datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59), datetime(9998, 12, 31, 23)])
TIMES = st.builds(
    lambda moment, offset: moment.replace(tzinfo=offset).isoformat(),
    EDGES | st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    OFFSETS,
)
ALERT_KEYS = ["status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"]
TOP_KEYS = ["version", "receiver", "status", "groupKey", "externalURL", "truncatedAlerts", "alerts"]


PRINTABLE = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=30)
FINGERPRINTS = st.text("0123456789abcdefABCDEF", min_size=1, max_size=20)


@st.composite
def plausible_webhooks(draw: st.DrawFn) -> bytes:
    """Webhooks as a label author could shape them: any printable label and annotation text, any time and offset."""
    alert = {
        **FIRING["alerts"][0],
        "labels": draw(st.dictionaries(PRINTABLE, PRINTABLE, max_size=5)),
        "annotations": draw(st.dictionaries(PRINTABLE, PRINTABLE | ANY_TEXT, max_size=3)),
        "startsAt": draw(TIMES),
        "fingerprint": draw(FINGERPRINTS),
    }
    return json.dumps({**FIRING, "alerts": [alert]}).encode()


@st.composite
def mutated_webhooks(draw: st.DrawFn) -> bytes:
    """A real webhook with a few of its fields, labels or annotations replaced by anything."""
    body = copy.deepcopy(FIRING)
    alert = body["alerts"][0]
    alert["fingerprint"] = draw(FINGERPRINTS)  # a new alert each time, so a valid one is stored, not a duplicate
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        where = draw(st.sampled_from(["alert", "top", "label", "annotation", "time"]))
        if where == "time":
            alert[draw(st.sampled_from(["startsAt", "endsAt"]))] = draw(TIMES)
        elif where == "alert":
            alert[draw(st.sampled_from(ALERT_KEYS))] = draw(JSON_VALUES)
        elif where == "top":
            body[draw(st.sampled_from(TOP_KEYS))] = draw(JSON_VALUES)
        elif isinstance(alert.get(where + "s"), dict):
            alert[where + "s"][draw(ANY_TEXT)] = draw(ANY_TEXT)
    return json.dumps(body).encode()


BODIES = st.one_of(
    plausible_webhooks(),
    mutated_webhooks(),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=300),
)
ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def mostly(known: list[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """One of `known` (listed first: drawn more often), now and then anything from `other`."""
    anything = object()
    return st.sampled_from([*known, anything]).flatmap(lambda pick: other if pick is anything else st.just(pick))


CONTENT_TYPES = mostly(
    ["application/json"] * 6
    + [
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/json; charset=latin-1",
        "application/json; charset*=utf-8''utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=--x",
        "",
        None,
    ],
    st.text(ASCII, max_size=40),
)
# Visible ASCII and obs-text bytes (0x80-0xFF), which HTTP allows in a header value; control bytes are refused by
# aiohttp's parser before any handler runs, so they appear only now and then.
HEADER_VALUES = mostly(
    [b"", b"*/*", b"application/json"],
    st.binary(max_size=40).map(lambda raw: bytes(b for b in raw if b >= 0x20 and b != 0x7F)),
)
HEADER_NAMES = st.sampled_from(["X-Anything", "Accept", "Accept-Encoding", "User-Agent", "X-Forwarded-For", "Origin"])
AUTHORIZATION = mostly([f"Bearer {TOKEN}"] * 14 + ["Bearer wrong", None], st.text(ASCII, max_size=30))


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    body = draw(BODIES)
    headers: dict[str, Any] = {}
    for name, value in (("Authorization", draw(AUTHORIZATION)), ("Content-Type", draw(CONTENT_TYPES))):
        if value is not None:
            headers[name] = value
    encoding = draw(st.sampled_from([None] * 6 + ["gzip", "deflate", "identity", "x-unknown"]))
    if encoding == "gzip" and draw(st.booleans()):
        body = gzip.compress(body)
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    headers.update(draw(st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=3)))
    return body, headers


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(request=requests())
def test_no_input_gets_a_5xx_or_unreadies_the_daemon(
    daemon: ThreadedDaemon, request: tuple[bytes, dict[str, Any]]
) -> None:
    body, headers = request
    answer = daemon.request("POST", "/api/v1/alerts", body, headers)
    assert answer.status < 500, (answer.status, answer.body[:300])
    assert b"Traceback" not in answer.body
    assert daemon.request("GET", "/readyz").status == 200


def test_the_fuzz_reaches_every_answer(daemon: ThreadedDaemon) -> None:
    """The strategies are not all refused at the door: the same kinds of request get 200, 400, 401 and 415."""
    valid = json.dumps({**FIRING, "alerts": [{**FIRING["alerts"][0], "fingerprint": "f0ff"}]}).encode()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    cases = [
        (valid, {**auth, "Content-Type": "application/json"}, 200),
        (b"{}", {**auth, "Content-Type": "application/json"}, 400),
        (valid, {"Authorization": "Bearer wrong", "Content-Type": "application/json"}, 401),
        (valid, {**auth, "Content-Type": "text/plain"}, 415),
    ]
    for body, headers, status in cases:
        assert daemon.request("POST", "/api/v1/alerts", body, headers).status == status
