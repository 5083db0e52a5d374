"""Hostile input on the Alertmanager webhook, against a running daemon: every case is a clear 4xx naming the field,
never a 5xx (which Alertmanager would retry forever), and what is accepted is stored whole.

Credentials (non-UTF-8 Authorization) and the Slack endpoints have their own battery (issue 12, trust-control).
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from autoremedy.config.settings import load_settings
from autoremedy.control.service import ControlService
from autoremedy.ingest.common import Services
from autoremedy.ingest.server import build_app
from autoremedy.observability import Metrics
from autoremedy.store.groupcommit import GroupCommitter
from autoremedy.store.sqlite import SQLiteStore
from tests.support.inprocess import (
    DEMO_RULE,
    JSON_BODY,
    LOG_PLAYBOOK,
    TOKEN,
    RunningDaemon,
    StartDaemon,
    fixture_payload,
    fresh_database,
    write_config,
)
from tests.support.postgres import PostgresServer
from tests.support.procs import wait_for

FIRING = fixture_payload("firing.json")
Mutation = Callable[[dict[str, Any]], None]


def alert_field(name: str, value: Any) -> Mutation:
    return lambda body: body["alerts"][0].__setitem__(name, value)


def label(name: str, value: str) -> Mutation:
    return lambda body: body["alerts"][0]["labels"].__setitem__(name, value)


def annotation(name: str, value: str) -> Mutation:
    return lambda body: body["alerts"][0]["annotations"].__setitem__(name, value)


def labels(count: int) -> Mutation:
    return lambda body: body["alerts"][0].__setitem__("labels", {f"l{n}": "v" for n in range(count)})


def top(name: str, value: Any) -> Mutation:
    return lambda body: body.__setitem__(name, value)


def mutated(*mutations: Mutation) -> bytes:
    body = copy.deepcopy(FIRING)
    for mutation in mutations:
        mutation(body)
    return json.dumps(body).encode()


# (body, expected field, words the message must hold). Everything here is refused with 400.
REFUSED = [
    pytest.param(mutated(alert_field("startsAt", "9999-12-31T23:59:59-12:00")), "alerts.0.startsAt", "1-9998",
                 id="startsAt-past-9999-in-utc"),
    pytest.param(mutated(alert_field("startsAt", "0001-01-01T00:00:00+01:00")), "alerts.0.startsAt", "1-9998",
                 id="startsAt-before-year-1-in-utc"),
    pytest.param(mutated(alert_field("endsAt", "9999-12-31T23:59:59-12:00")), "alerts.0.endsAt", "1-9998",
                 id="endsAt-past-9999-in-utc"),
    pytest.param(mutated(alert_field("endsAt", "0001-01-01T00:00:00+01:00")), "alerts.0.endsAt", "1-9998",
                 id="endsAt-before-year-1-in-utc"),
    pytest.param(mutated(alert_field("startsAt", "9999-01-01T00:00:00Z")), "alerts.0.startsAt", "1-9998",
                 id="startsAt-year-9999"),
    pytest.param(mutated(alert_field("startsAt", 1e300)), "alerts.0.startsAt", "", id="startsAt-huge-number"),
    pytest.param(mutated(alert_field("fingerprint", "")), "alerts.0.fingerprint", "1 to 128", id="fingerprint-empty"),
    pytest.param(mutated(alert_field("fingerprint", "a" * 129)), "alerts.0.fingerprint", "1 to 128",
                 id="fingerprint-129-chars"),
    pytest.param(mutated(alert_field("fingerprint", "../../etc/passwd")), "alerts.0.fingerprint", "0-9, A-Z",
                 id="fingerprint-path"),
    pytest.param(mutated(alert_field("fingerprint", "2211ebba9d7bd2f\u0660")), "alerts.0.fingerprint", "0-9, A-Z",
                 id="fingerprint-non-ascii-digit"),
    pytest.param(mutated(label("job", "a\x00b")), "alerts.0.labels.job", "U+0000", id="label-value-nul"),
    pytest.param(mutated(label("job", "\x1b[31mred")), "alerts.0.labels.job", "U+001B", id="label-value-escape"),
    pytest.param(mutated(label("job", "a\nb")), "alerts.0.labels.job", "U+000A", id="label-value-newline"),
    pytest.param(mutated(label("job", "a\x85b")), "alerts.0.labels.job", "U+0085", id="label-value-c1-control"),
    pytest.param(mutated(label("a\x00b", "x")), "alerts.0.labels.a\\x00b.[key]", "U+0000", id="label-name-nul"),
    pytest.param(mutated(annotation("summary", "x\x00")), "alerts.0.annotations.summary", "U+0000",
                 id="annotation-nul"),
    pytest.param(mutated(annotation("summary", "x\x07")), "alerts.0.annotations.summary", "U+0007",
                 id="annotation-bell"),
    pytest.param(mutated(alert_field("generatorURL", "http://x/\x00")), "alerts.0.generatorURL", "U+0000",
                 id="generatorURL-nul"),
    pytest.param(mutated(top("receiver", "r\x00")), "receiver", "U+0000", id="receiver-nul"),
    pytest.param(mutated(top("groupKey", "{}\r\n")), "groupKey", "U+000D", id="groupKey-crlf"),
    pytest.param(mutated(top("externalURL", "http://am\x7f")), "externalURL", "U+007F", id="externalURL-del"),
    pytest.param(mutated(labels(101)), "alerts.0.labels", "server.limits.labels_per_alert", id="101-labels"),
    pytest.param(mutated(labels(200_000)), "alerts.0.labels", "server.limits.labels_per_alert",
                 id="200k-labels"),
    pytest.param(mutated(label("n" * 257, "x")), "alerts.0.labels", "server.limits.label_name_length",
                 id="label-name-257"),
    pytest.param(mutated(label("n" * 3_000_000, "x")), "alerts.0.labels", "server.limits.label_name_length",
                 id="label-name-3MB"),
    pytest.param(mutated(label("job", "v" * 16_385)), "alerts.0.labels.job", "server.limits.value_length",
                 id="label-value-16KiB+1"),
    pytest.param(mutated(annotation("description", "v" * 16_385)), "alerts.0.annotations.description",
                 "server.limits.value_length", id="annotation-value-16KiB+1"),
    pytest.param(b"\xff\xfe{}", "(body)", "not JSON", id="not-utf8"),
    pytest.param(b'{"version": "4", "receiver": "\\ud800"}', "(body)", "not JSON", id="lone-surrogate"),
    pytest.param(b"[" * 10_000 + b"]" * 10_000, "(body)", "not JSON", id="deeply-nested"),
    pytest.param(b"[]", "(body)", "JSON object", id="array-body"),
    pytest.param(json.dumps({**FIRING, "alerts": [{}] * 5000}).encode(), "alerts.0.status", "",
                 id="5000-empty-alerts"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field", "words"), REFUSED)
async def test_hostile_body_is_a_400_naming_the_field(
    start_daemon: StartDaemon, body: bytes, field: str, words: str
) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK])
    answer = await _refused(d, body, 400)
    problems = {problem["field"]: problem["message"] for problem in answer["fields"]}
    assert field in problems, answer
    assert words in problems[field]
    assert len(answer["fields"]) <= 20  # a body of 5,000 bad alerts gets a short answer
    await _still_ready(d)


ACCEPTED = [
    pytest.param(mutated(alert_field("fingerprint", "A" * 128)), id="fingerprint-128-chars"),
    pytest.param(mutated(alert_field("endsAt", "0001-01-01T00:00:00Z")), id="go-zero-endsAt"),
    pytest.param(mutated(alert_field("startsAt", "9998-12-31T23:59:59Z")), id="startsAt-last-year"),
    pytest.param(mutated(alert_field("startsAt", "0001-01-01T23:00:00+22:00")), id="startsAt-year-1-in-utc"),
    pytest.param(mutated(labels(100)), id="100-labels"),
    pytest.param(mutated(label("n" * 256, "v" * 16_384)), id="longest-label"),
    pytest.param(mutated(annotation("description", "line one\nline two\r\n\ttabbed")), id="multi-line-annotation"),
    pytest.param(mutated(label("pod", "caf\u00e9-\U0001f525-\u2028-\u202e")), id="unicode-label"),
]


@pytest.mark.parametrize("body", ACCEPTED)
async def test_unusual_but_valid_body_is_stored(start_daemon: StartDaemon, body: bytes) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK])
    assert (await d.post_alerts(body)).status == 200
    await _stored_as_sent(d, body)


async def test_one_bad_alert_does_not_cost_the_others(start_daemon: StartDaemon) -> None:
    """Alertmanager drops a notification answered 4xx: its valid alerts are stored all the same, and said so."""
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK])
    good = [{**FIRING["alerts"][0], "fingerprint": f"{n:016x}"} for n in range(3)]
    bad = {**FIRING["alerts"][0], "fingerprint": "bad\x00"}
    answer = await _refused(d, json.dumps({**FIRING, "alerts": [good[0], bad, *good[1:]]}).encode(), 400)
    assert answer["stored"] == 3 and answer["duplicates"] == 0
    assert [problem["field"] for problem in answer["fields"]] == ["alerts.1.fingerprint"]
    stored = [await d.daemon.store.get_event(event_id) for event_id in (1, 2, 3)]
    assert [event.fingerprint for event in stored if event] == [alert["fingerprint"] for alert in good]


# (headers added to the token, expected status). Content types a browser may send cross-site without asking first
# (text/plain, forms) are refused: a web page cannot post alerts to a daemon on an operator's loopback.
CONTENT_TYPES = [
    pytest.param({"Content-Type": "text/plain"}, 415, id="text-plain"),
    pytest.param({"Content-Type": "application/x-www-form-urlencoded"}, 415, id="form"),
    pytest.param({"Content-Type": "multipart/form-data; boundary=x"}, 415, id="multipart"),
    pytest.param({}, 415, id="missing"),
    pytest.param({"Content-Type": "application/jsonp"}, 415, id="jsonp"),
    pytest.param({"Content-Type": "application/json; charset=iso-8859-1"}, 415, id="latin-1-charset"),
    pytest.param({"Content-Type": "application/json"}, 200, id="json"),
    pytest.param({"Content-Type": "application/json; charset=utf-8"}, 200, id="json-utf-8"),
    pytest.param({"Content-Type": "Application/JSON; Charset=UTF-8"}, 200, id="json-upper-case"),
    pytest.param({"Content-Type": "application/json", "Content-Encoding": "gzip"}, 400, id="gzip-not-gzipped"),
    pytest.param({"Content-Type": "application/json", "Content-Encoding": "deflate"}, 400, id="deflate-garbage"),
]


@pytest.mark.parametrize(("headers", "status"), CONTENT_TYPES)
async def test_content_type(start_daemon: StartDaemon, headers: dict[str, str], status: int) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK])
    sent = {"Authorization": f"Bearer {TOKEN}", **headers}
    async with d.http.post(f"{d.url}/api/v1/alerts", data=json.dumps(FIRING).encode(), headers=sent) as response:
        assert response.status == status, await response.text()
        assert response.content_type == "application/json"
    await _still_ready(d)


async def test_gzipped_webhook_is_taken_and_a_bomb_is_413(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK])
    headers = {"Authorization": f"Bearer {TOKEN}", **JSON_BODY, "Content-Encoding": "gzip"}
    async with d.http.post(f"{d.url}/api/v1/alerts", data=gzip.compress(json.dumps(FIRING).encode()),
                           headers=headers) as response:  # fmt: skip
        assert response.status == 200
    bomb = gzip.compress(b" " * (64 * 1024 * 1024))  # 64 KiB on the wire, 64 MiB once inflated
    async with d.http.post(f"{d.url}/api/v1/alerts", data=bomb, headers=headers) as response:
        assert response.status == 413


async def test_chunked_body_over_the_limit_is_413(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK], extra={"server": {"max_body_bytes": 4096}})

    async def chunks() -> Any:  # no Content-Length: the limit holds while reading
        for _ in range(10):
            yield b" " * 1024

    async with d.http.post(f"{d.url}/api/v1/alerts", data=chunks(), headers={**d.headers, **JSON_BODY}) as response:
        assert response.status == 413
        assert "server.max_body_bytes" in (await response.json())["error"]


async def test_limits_come_from_the_settings(start_daemon: StartDaemon) -> None:
    limits = {"labels_per_alert": 7, "label_name_length": 11, "value_length": 40}
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK], extra={"server": {"limits": limits}})
    assert (await d.post_alerts(FIRING)).status == 200  # 7 labels, names of 11 characters at most
    cases = [
        ([label("extra", "x")], "alerts.0.labels", "8 labels: more than server.limits.labels_per_alert (7)"),
        (
            [label("job", "j" * 41)],
            "alerts.0.labels.job",
            "a value of 41 characters: more than server.limits.value_length (40)",
        ),
        (
            [labels(0), label("twelve_chars", "x")],
            "alerts.0.labels",
            "a name of 12 characters ('twelve_chars'): more than server.limits.label_name_length (11)",
        ),
    ]
    for mutations, field, message in cases:
        answer = await _refused(d, mutated(*mutations), 400)
        assert answer["fields"] == [{"field": field, "message": message}]


# -- PostgreSQL: NUL cannot be stored in its text at all, so the refusals must hold there too ------------------------


POSTGRES_CASES = [case for case in REFUSED if case.id and ("nul" in case.id or "surrogate" in case.id)]


async def test_on_postgresql_control_characters_are_refused_and_unicode_stored(
    start_daemon: StartDaemon, shared_postgres: PostgresServer
) -> None:
    dsn = await fresh_database(shared_postgres)
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK], extra={"store": {"url": dsn}})
    assert len(POSTGRES_CASES) >= 6
    for case in POSTGRES_CASES:
        body, field, _ = case.values
        answer = await _refused(d, body, 400)  # type: ignore[arg-type]
        assert field in [problem["field"] for problem in answer["fields"]], (case.id, answer)
    await _still_ready(d)
    body = mutated(label("pod", "caf\u00e9-\U0001f525-\u2028"), annotation("description", "a\n\tb"))
    assert (await d.post_alerts(body)).status == 200
    await _stored_as_sent(d, body)


# -- a webhook as big as the body limit allows ------------------------------------------------------------------


def big_webhook(count: int) -> bytes:
    """`count` small alerts, as a storm's notification group sends them (about 230 bytes each)."""
    alert = {
        "status": "firing",
        "labels": {"alertname": "NodeDown", "instance": "10.0.0.0"},
        "annotations": {},
        "startsAt": "2026-11-26T22:15:01Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom:9090/",
    }
    alerts = [
        {
            **alert,
            "labels": {"alertname": "NodeDown", "instance": f"10.0.{n // 250}.{n % 250}"},
            "fingerprint": f"{n:016x}",
        }
        for n in range(count)
    ]
    return json.dumps({**FIRING, "alerts": alerts}, separators=(",", ":")).encode()


async def test_4_mib_webhook_is_stored_whole_while_healthz_answers(start_daemon: StartDaemon) -> None:
    count = 18_000
    body = big_webhook(count)
    assert 4_000_000 < len(body) <= 4 * 1024 * 1024
    # The engine's own backpressure limit is not what this test is about: room for every alert.
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK], extra={"engine": {"max_queue_depth": 10**6}})
    probes = HealthProbes(f"{d.url}/healthz")
    probes.start()
    try:
        await wait_for(lambda: probes.answered > 0, timeout=10, message="/healthz answers before the webhook")
        sent = time.monotonic()
        response = await d.post_alerts(body)
        acknowledged = time.monotonic()
    finally:
        await probes.stop()
    assert response.status == 200
    during = [at for at in probes.answers if sent < at < acknowledged]
    assert during, "no /healthz answer while the webhook was read, validated and stored"
    assert probes.failures == 0
    stored = await asyncio.to_thread(_count_events, d)
    assert stored == count


class HealthProbes:
    """/healthz asked back to back from a thread with its own event loop, as a kubelet would from outside."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._probe()), daemon=True)

    @property
    def answered(self) -> int:
        return len(self.answers)

    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        # Joined from another thread: the daemon under test answers the last probe on this loop.
        await asyncio.to_thread(self._thread.join, 30)
        assert not self._thread.is_alive()

    async def _probe(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            while not self._stop.is_set():
                async with http.get(self.url) as response:
                    await response.read()
                if response.status == 200:
                    self.answers.append(time.monotonic())
                else:
                    self.failures += 1


def _count_events(d: RunningDaemon) -> int:
    path = d.daemon.settings.sqlite_path
    assert path is not None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (count,) = db.execute("SELECT count(*) FROM events").fetchone()
        return int(count)
    finally:
        db.close()


# -- our own failure: a 500 with a request id, the traceback only in the log ---------------------------------------


async def test_an_unexpected_error_is_a_json_500_with_a_request_id(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK]))
    store = SQLiteStore(tmp_path / "store.db")
    await store.open()
    committer = GroupCommitter(lambda events: store.insert_events(events, now=datetime.now(UTC)))
    metrics = Metrics()
    services = Services(
        settings=settings,
        store=store,
        committer=committer,
        metrics=metrics,
        is_ready=lambda: True,
        rule_names=lambda: {"demo"},
        wake=lambda: None,
        backlog=lambda: 0,
        instance=store.owner,
        control=ControlService(
            store=store,
            approvers={},
            rule_names=lambda: {"demo"},
            wake=lambda: None,
            on_denied=lambda run: None,
            instance=store.owner,
        ),
    )
    app = build_app(services)

    async def broken(request: web.Request) -> web.Response:  # a bug somewhere below a handler
        raise KeyError("secret-detail-of-the-bug")

    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        with structlog.testing.capture_logs() as logs:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{runner.addresses[0][1]}/broken") as response:
                    assert response.status == 500
                    text = await response.text()
                async with http.get(f"http://127.0.0.1:{runner.addresses[0][1]}/nowhere") as missing:
                    assert missing.status == 404  # aiohttp's own answers pass through the catch-all
    finally:
        await runner.cleanup()
        await store.close()
    answer = json.loads(text)
    assert answer["error"] == "internal error" and len(answer["request_id"]) == 32
    assert "secret-detail" not in text and "Traceback" not in text and "KeyError" not in text
    (logged,) = [entry for entry in logs if entry["event"] == "request failed"]
    assert logged["request_id"] == answer["request_id"]
    assert isinstance(logged["exc_info"], KeyError) and logged["path"] == "/broken"


# -- connections that send nothing, or their headers too slowly -----------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"", id="idle-from-the-start"),
        pytest.param(b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Ty", id="headers-never-finished"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", id="idle-after-a-response"),
    ],
)
async def test_connections_without_a_request_are_closed_after_the_header_timeout(
    start_daemon: StartDaemon, sent: bytes
) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK], extra={"server": {"header_timeout": "300ms"}})
    host, port = d.daemon.settings.server.host_port
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(sent)
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), timeout=30)  # until the daemon closes the connection
    finally:
        writer.close()
    if sent.startswith(b"GET"):
        assert received.startswith(b"HTTP/1.1 200")
    else:
        assert received == b""
    await _still_ready(d)


async def test_a_slow_request_within_the_timeout_is_answered(start_daemon: StartDaemon) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK], extra={"server": {"header_timeout": "30s"}})
    host, port = d.daemon.settings.server.host_port
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for part in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"Connection: close\r\n\r\n"):
            writer.write(part)
            await writer.drain()
        received = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
    assert received.startswith(b"HTTP/1.1 200")


HEAD = (
    b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n"
    b"Content-Type: application/json\r\n"
)


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        pytest.param(b"Content-Length: 100\r\n", b'{"version": "4"', id="body-never-finished"),
        # One byte of a deflate stream, then the end: aiohttp's reader would wait for the rest forever.
        pytest.param(b"Content-Length: 1\r\nContent-Encoding: deflate\r\n", b"\x00", id="deflate-cut-short"),
    ],
)
async def test_a_body_that_does_not_arrive_is_408(start_daemon: StartDaemon, headers: bytes, body: bytes) -> None:
    d = await start_daemon(rules=[DEMO_RULE], playbooks=[LOG_PLAYBOOK], extra={"server": {"body_timeout": "300ms"}})
    host, port = d.daemon.settings.server.host_port
    reader, writer = await asyncio.open_connection(host, port)
    try:
        # Expect: 100-continue, so the body goes only once the daemon has taken the headers and reads.
        writer.write(HEAD + headers + b"Expect: 100-continue\r\n\r\n")
        await writer.drain()
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)).startswith(b"HTTP/1.1 100")
        writer.write(body)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        answer = json.loads(await reader.readexactly(length))
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 408"), head
    assert "server.body_timeout" in answer["error"]
    await _still_ready(d)


# -- helpers ----------------------------------------------------------------------------------------------------


async def _refused(d: RunningDaemon, body: bytes, status: int) -> dict[str, Any]:
    async with d.http.post(f"{d.url}/api/v1/alerts", data=body, headers={**d.headers, **JSON_BODY}) as response:
        answer: dict[str, Any] = await response.json()
        assert response.status == status, answer
    assert "Traceback" not in json.dumps(answer)
    return answer


async def _still_ready(d: RunningDaemon) -> None:
    async with d.http.get(f"{d.url}/readyz") as response:
        assert response.status == 200


async def _stored_as_sent(d: RunningDaemon, body: bytes) -> None:
    sent = json.loads(body)["alerts"][0]
    event = await d.daemon.store.get_event(1)
    assert event is not None
    assert event.labels == sent["labels"]
    assert event.annotations == sent["annotations"]
    assert event.fingerprint == sent["fingerprint"]
