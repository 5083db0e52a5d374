"""A property-based fuzz of the two Slack endpoints against a running daemon: random bodies, headers and content
types, forged and genuinely signed, as raw bytes. None may get a 5xx, and the daemon stays ready.

Hypothesis runs derandomized with a bounded number of examples, so every run tries the same inputs. It drives
blocking sockets from a thread while the daemon serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_chatops import USERS, chatops_config, rule, sign
from tests.support.inprocess import LOG_PLAYBOOK, StartDaemon, fixture_payload
from tests.support.slack import FakeSlack

FIRING = fixture_payload("firing.json")
PATHS = st.sampled_from(["/slack/commands", "/slack/interactions"])
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=latin-1",
            "application/json",
            "text/plain",
            "multipart/form-data; boundary=x",
            "",
        ]
    ),
    st.binary(max_size=60),
)
HEADER_BYTES = st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
WORDS = st.sampled_from(["status", "runs", "run", "approve", "deny", "pause", "resume", "explain", "help", "--"])
COMMAND_TEXT = st.one_of(st.lists(st.one_of(WORDS, st.text(max_size=20)), max_size=6).map(" ".join), st.text())
USER_IDS = st.one_of(st.sampled_from([*USERS, "U0DBA", ""]), st.text(max_size=12))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def press_payloads(draw: st.DrawFn) -> str:
    payload: dict[str, Any] = {
        "type": draw(st.sampled_from(["block_actions", "view_submission", ""])),
        "user": draw(st.one_of(st.fixed_dictionaries({"id": USER_IDS}), JSON_VALUES)),
        "actions": draw(
            st.one_of(
                st.lists(
                    st.fixed_dictionaries(
                        {
                            "action_id": st.sampled_from(["autoremedy_approve", "autoremedy_deny", "x"]),
                            "value": st.text(max_size=20),
                        }
                    ),
                    max_size=2,
                ),
                JSON_VALUES,
            )
        ),
        "container": draw(JSON_VALUES),
        "message": draw(JSON_VALUES),
        "response_url": draw(st.sampled_from(["", "ftp://x", "http://127.0.0.1:9/x"])),
    }
    return json.dumps(payload) if draw(st.booleans()) else draw(st.text(max_size=200))


@st.composite
def form_bodies(draw: st.DrawFn) -> bytes:
    fields = {"user_id": draw(USER_IDS), "channel_id": draw(st.sampled_from(["C0ONCALL", "C0RANDOM", ""]))}
    if draw(st.booleans()):
        fields["text"] = draw(COMMAND_TEXT)
    else:
        fields["payload"] = draw(press_payloads())
    return urlencode(fields).encode()


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes, dict[str, bytes]]:
    path = draw(PATHS)
    body = draw(st.one_of(form_bodies(), st.binary(max_size=500)))
    content_type = draw(CONTENT_TYPES)
    headers: dict[str, bytes] = {
        "Content-Type": content_type.encode() if isinstance(content_type, str) else content_type
    }
    signing = draw(st.sampled_from(["genuine", "forged", "random", "none"]))
    if signing == "genuine":  # deep into the commands: Slack's own signature over the fuzzed body
        signed = sign(body, int(time.time()))
        headers |= {k: v.encode() for k, v in signed.items() if k != "Content-Type"}
    elif signing == "forged":
        signed = sign(body, int(time.time()), secret="not-the-secret")
        headers |= {k: v.encode() for k, v in signed.items() if k != "Content-Type"}
    elif signing == "random":
        headers["X-Slack-Request-Timestamp"] = draw(HEADER_BYTES)
        headers["X-Slack-Signature"] = draw(HEADER_BYTES)
    return path, body, headers


def send(url: str, path: str, body: bytes, headers: dict[str, bytes]) -> int:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = [f"POST {path} HTTP/1.1".encode(), f"Host: {host}:{port}".encode()]
    head += [name.encode() + b": " + value for name, value in headers.items()]
    head += [f"Content-Length: {len(body)}".encode(), b"Connection: close"]
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        response = b""
        while chunk := connection.recv(65536):
            response += chunk
    return int(response.split(b" ", 2)[1])


def fuzz(url: str, statuses: list[int]) -> None:
    @settings(
        max_examples=300,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(requests())
    def one(request: tuple[str, bytes, dict[str, bytes]]) -> None:
        path, body, headers = request
        status = send(url, path, body, headers)
        statuses.append(status)
        assert status < 500, (status, path, headers, body[:200])

    one()


async def test_fuzzed_slack_requests_never_get_a_5xx(start_daemon: StartDaemon, fake_slack: FakeSlack) -> None:
    d = await start_daemon(rules=[rule()], playbooks=[LOG_PLAYBOOK], extra=chatops_config(fake_slack))
    await d.post_alerts(FIRING)  # a held run for the fuzzed buttons and commands to find
    statuses: list[int] = []
    await asyncio.to_thread(fuzz, d.url, statuses)
    # The fuzz reached every kind of answer: refused types, refused signatures, and served commands.
    assert {200, 401, 415} <= set(statuses), sorted(set(statuses))
    async with d.http.get(f"{d.url}/readyz") as response:
        assert response.status == 200
    chat = [e for e in await d.daemon.store.list_audit(run_id=None, limit=1000) if e.kind == "chatops"]
    assert chat, "no fuzzed request reached a command"
