"""Local fakes of the SaaS services autoremedy escalates to: Slack (Web API), PagerDuty (Events API v2) and
Opsgenie (Alert API v2). Tests never reach the real services; these fakes check what the real ones check.

Each fake binds 127.0.0.1 port 0 (``_LocalServer``), runs on the test's event loop, logs every request it
answered in ``requests`` (with the status and body it answered), keeps the state a test asserts on, and can
be told to fail the next call(s) the way the real service fails (``fail_next``; Slack also ``error_next``).

- ``FakeSlack``: ``AsyncWebClient(token=fake.token, base_url=f"{fake.url}/api/")`` talks to it.
  Implements ``chat.postMessage`` (incl. ``thread_ts`` replies), ``chat.update`` and ``auth.test``.
- ``FakePagerDuty``: ``POST {fake.url}/v2/enqueue``; tracks incidents by ``dedup_key``.
- ``FakeOpsgenie``: ``POST {fake.url}/v2/alerts``, ``POST {fake.url}/v2/alerts/{id}/close?identifierType=...``
  and ``GET {fake.url}/v2/alerts/requests/{requestId}``; de-duplicates open alerts by alias.

Fixtures ``fake_slack``, ``fake_pagerduty`` and ``fake_opsgenie`` (function scope, stopped at teardown) are
defined at the bottom under the function names ``fake_*_fixture``: a test module gets them by importing those
names (``from tests.support.saas import fake_slack_fixture  # noqa: F401``), or every test gets them once
``"tests.support.saas"`` is listed in the root conftest's ``pytest_plugins``.

Where a real error text was not documented, the fake's wording is its own; tests should assert on status
codes, ``error`` codes and field names, not on those sentences.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

import pytest
from aiohttp import WSMsgType, web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from .procs import wait_for
from .receiver import RecordedRequest, _LocalServer

#: Default credentials of the fakes (any syntactically valid values would do).
SLACK_BOT_TOKEN: Final = "xoxb-1000000000-2000000000-fakeSlackBotToken0"
SLACK_APP_TOKEN: Final = "xapp-1-A0FAKEAPP-3000000000-fakeSlackAppToken0"
PAGERDUTY_ROUTING_KEY: Final = "0123456789abcdef0123456789abcdef"
OPSGENIE_API_KEY: Final = "8c5e1b7a-3f2d-4c6e-9a0b-1d2e3f4a5b6c"


# --------------------------------------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SaaSRequest(RecordedRequest):
    """A request a fake received (see ``RecordedRequest``) plus what the fake answered."""

    status: int = 0  # HTTP status answered
    response: Any = None  # JSON body answered
    args: Mapping[str, Any] = field(default_factory=dict)  # Slack: the merged method arguments (no token)


@dataclass(frozen=True)
class _Reply:
    status: int
    payload: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _Fault:
    key: str | None  # which call it hits (Slack method, Opsgenie operation); None: the next call of any kind
    make: Callable[[], _Reply]
    remaining: int


_Handler = Callable[[web.Request, bytes], Awaitable[_Reply]]


class _FakeService(_LocalServer):
    """Request log, fault queue and JSON answering shared by the three fakes."""

    def __init__(self) -> None:
        super().__init__()
        #: Every request answered, in arrival order (faulted and rejected ones included).
        self.requests: list[SaaSRequest] = []
        self._faults: list[_Fault] = []

    # -- faults ----------------------------------------------------------------------------------------

    def _add_fault(self, key: str | None, make: Callable[[], _Reply], times: int) -> None:
        if times < 1:
            raise ValueError("times must be >= 1")
        self._faults.append(_Fault(key, make, times))

    def _take_fault(self, key: str) -> _Reply | None:
        for fault in self._faults:
            if fault.key is None or fault.key == key:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault.make()
        return None

    @property
    def pending_faults(self) -> int:
        """How many injected failures have not been served yet."""
        return sum(f.remaining for f in self._faults)

    def clear_faults(self) -> None:
        self._faults.clear()

    # -- request log -----------------------------------------------------------------------------------

    def requests_to(self, path: str, method: str | None = None) -> list[SaaSRequest]:
        return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    async def wait_for_requests(
        self, count: int = 1, *, path: str | None = None, deadline_s: float = 10.0
    ) -> list[SaaSRequest]:
        """Wait until at least ``count`` requests (to ``path``, if given) were answered; return them."""

        def matching() -> list[SaaSRequest]:
            return [r for r in self.requests if path is None or r.path == path]

        await wait_for(
            lambda: len(matching()) >= count,
            timeout=deadline_s,
            message=lambda: f"{count} request(s) to {path or 'any path'} expected, got {len(matching())}",
        )
        return matching()

    # -- plumbing --------------------------------------------------------------------------------------

    def _wrap(self, handler: _Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def wrapped(request: web.Request) -> web.Response:
            body = await request.read()
            reply = await handler(request, body)
            self.requests.append(
                SaaSRequest(
                    method=request.method,
                    path=request.path,
                    query=MultiDictProxy(MultiDict(request.query)),
                    headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                    body=body,
                    json=_parse_json(body),
                    received_at=time.monotonic(),
                    status=reply.status,
                    response=reply.payload,
                    args=reply.args,
                )
            )
            return web.json_response(reply.payload, status=reply.status, headers=dict(reply.headers))

        return wrapped


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _retry_after_headers(retry_after: int | None) -> dict[str, str]:
    return {} if retry_after is None else {"Retry-After": str(retry_after)}


# --------------------------------------------------------------------------------------------------------
# Slack
# --------------------------------------------------------------------------------------------------------


class _SlackError(Exception):
    """An ``{"ok": false, "error": ...}`` answer (HTTP 200, as Slack answers method errors)."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class _BlockError(Exception):
    def __init__(self, message: str, pointer: str) -> None:
        super().__init__(f"{message} [json-pointer:{pointer}]")


@dataclass
class SlackMessage:
    """A message as the fake stores it; ``thread_ts`` is set on replies (the parent's ts)."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None = None
    attachments: list[Any] | None = None
    thread_ts: str | None = None
    args: dict[str, Any] = field(default_factory=dict)  # everything the client sent (no token)


@dataclass(frozen=True)
class SlackUpdate:
    """One successful ``chat.update``: what the message looked like before and after."""

    channel: str
    ts: str
    old_text: str
    text: str
    old_blocks: list[dict[str, Any]] | None
    blocks: list[dict[str, Any]] | None


_TEXT_TYPES: Final = frozenset({"plain_text", "mrkdwn"})
_MAX_BLOCKS: Final = 50
_SECTION_TEXT_MAX: Final = 3000
_SECTION_FIELD_MAX: Final = 2000
_HEADER_TEXT_MAX: Final = 150
_BLOCK_ID_MAX: Final = 255


def _check_text_object(obj: Any, pointer: str, *, max_len: int, types: frozenset[str] = _TEXT_TYPES) -> None:
    if not isinstance(obj, dict):
        raise _BlockError("must provide an object", pointer)
    if obj.get("type") not in types:
        raise _BlockError(f"must be one of {', '.join(sorted(types))}", f"{pointer}/type")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        raise _BlockError("must be more than 0 characters", f"{pointer}/text")
    if len(text) > max_len:
        raise _BlockError(f"must be less than {max_len + 1} characters", f"{pointer}/text")


def _check_elements(block: dict[str, Any], pointer: str, max_items: int) -> list[Any]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        raise _BlockError("must provide a non-empty array", f"{pointer}/elements")
    if len(elements) > max_items:
        raise _BlockError(f"no more than {max_items} items allowed", f"{pointer}/elements")
    return elements


def _check_section(block: dict[str, Any], pointer: str) -> None:
    text, fields = block.get("text"), block.get("fields")
    if text is None and fields is None:
        raise _BlockError("must provide either text or fields", pointer)
    if text is not None:
        _check_text_object(text, f"{pointer}/text", max_len=_SECTION_TEXT_MAX)
    if fields is not None:
        if not isinstance(fields, list) or not fields or len(fields) > 10:
            raise _BlockError("must provide an array of 1 to 10 items", f"{pointer}/fields")
        for i, item in enumerate(fields):
            _check_text_object(item, f"{pointer}/fields/{i}", max_len=_SECTION_FIELD_MAX)


def _check_header(block: dict[str, Any], pointer: str) -> None:
    _check_text_object(block.get("text"), f"{pointer}/text", max_len=_HEADER_TEXT_MAX, types=frozenset({"plain_text"}))


def _check_context(block: dict[str, Any], pointer: str) -> None:
    for i, element in enumerate(_check_elements(block, pointer, max_items=10)):
        where = f"{pointer}/elements/{i}"
        if isinstance(element, dict) and element.get("type") == "image":
            if not element.get("alt_text") or not (element.get("image_url") or element.get("slack_file")):
                raise _BlockError("image elements need image_url and alt_text", where)
        else:
            _check_text_object(element, where, max_len=_SECTION_TEXT_MAX)


def _check_divider(block: dict[str, Any], pointer: str) -> None:
    del block, pointer  # nothing but type (and block_id) to check


def _check_actions(block: dict[str, Any], pointer: str) -> None:
    for i, element in enumerate(_check_elements(block, pointer, max_items=25)):
        if not isinstance(element, dict) or not isinstance(element.get("type"), str):
            raise _BlockError("must provide an object with a type", f"{pointer}/elements/{i}")


_BLOCK_CHECKS: Final[Mapping[str, Callable[[dict[str, Any], str], None]]] = {
    "section": _check_section,
    "header": _check_header,
    "context": _check_context,
    "divider": _check_divider,
    "actions": _check_actions,
}
#: Block types the fake accepts (the ones autoremedy's messages use).
KNOWN_BLOCK_TYPES: Final = frozenset(_BLOCK_CHECKS)


def _check_block(block: Any, pointer: str) -> None:
    if not isinstance(block, dict):
        raise _BlockError("must provide an object", pointer)
    kind = block.get("type")
    check = _BLOCK_CHECKS.get(kind) if isinstance(kind, str) else None
    if check is None:
        raise _BlockError(f"must be one of {', '.join(sorted(KNOWN_BLOCK_TYPES))}", f"{pointer}/type")
    block_id = block.get("block_id")
    if block_id is not None and (not isinstance(block_id, str) or not block_id or len(block_id) > _BLOCK_ID_MAX):
        raise _BlockError(f"must be 1 to {_BLOCK_ID_MAX} characters", f"{pointer}/block_id")
    check(block, pointer)


def _decode_json_arg(value: Any, error: str) -> Any:
    """Form-encoded calls pass blocks/attachments as JSON strings, JSON calls as arrays."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise _SlackError(error) from None
    return value


def _parse_blocks(raw: Any) -> list[dict[str, Any]] | None:
    if raw is None:
        return None
    blocks = _decode_json_arg(raw, "invalid_blocks_format")
    if not isinstance(blocks, list):
        raise _SlackError("invalid_blocks_format")
    try:
        if len(blocks) > _MAX_BLOCKS:
            raise _BlockError(f"no more than {_MAX_BLOCKS} items allowed", "/blocks")
        for i, block in enumerate(blocks):
            _check_block(block, f"/blocks/{i}")
    except _BlockError as exc:
        raise _SlackError(
            "invalid_blocks", errors=[str(exc)], response_metadata={"messages": [f"[ERROR] {exc}"]}
        ) from None
    return blocks


def _parse_attachments(raw: Any) -> list[Any] | None:
    if raw is None:
        return None
    attachments = _decode_json_arg(raw, "invalid_attachments")
    if not isinstance(attachments, list):
        raise _SlackError("invalid_attachments")
    return attachments


class FakeSlack(_FakeService):
    """The Slack Web API methods autoremedy calls, at ``POST /api/{method}``.

    Authentication: ``Authorization: Bearer <token>`` (or, for form-encoded bodies, a ``token`` field, which
    Slack also accepts); no token -> ``not_authed``, another token -> ``invalid_auth``. Method errors are
    HTTP 200 ``{"ok": false, "error": ...}`` as Slack answers them. Bodies may be JSON (what slack-sdk sends
    for chat.*) or ``application/x-www-form-urlencoded``; query parameters are arguments too.

    ``channels``: if given, the only channel IDs/names that exist (others -> ``channel_not_found``).
    """

    def __init__(
        self,
        token: str = SLACK_BOT_TOKEN,
        *,
        channels: Iterable[str] | None = None,
        team_id: str = "T0FAKETEAM",
        bot_user_id: str = "U0FAKEBOT",
        bot_id: str = "B0FAKEBOT",
    ) -> None:
        if not token.startswith("xoxb-"):
            raise ValueError("FakeSlack stands in for a bot token (xoxb-...)")
        super().__init__()
        self.token = token
        self.channels: frozenset[str] | None = None if channels is None else frozenset(channels)
        self.team_id, self.bot_user_id, self.bot_id = team_id, bot_user_id, bot_id
        #: Every message posted (top-level and thread replies), in posting order.
        self.messages: list[SlackMessage] = []
        #: Every successful chat.update, in order.
        self.updates: list[SlackUpdate] = []
        self._by_ts: dict[str, SlackMessage] = {}
        self._seq = 0
        #: Socket Mode: the app-level token apps.connections.open accepts, the open sockets, every message a
        #: client sent on one (acknowledgements), and how many connections were opened.
        self.app_token = SLACK_APP_TOKEN
        self.sockets: list[web.WebSocketResponse] = []
        self.socket_messages: list[dict[str, Any]] = []
        self.socket_connections = 0
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "apps.connections.open": self._connections_open,
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.history": self._history,
        }

    @property
    def api_url(self) -> str:
        """What to pass as ``base_url`` to slack-sdk clients."""
        return f"{self.url}/api/"

    # -- state -----------------------------------------------------------------------------------------

    def message(self, ts: str) -> SlackMessage:
        return self._by_ts[ts]

    def thread(self, ts: str) -> list[SlackMessage]:
        """The replies in the thread of the message ``ts``, in posting order."""
        return [m for m in self.messages if m.thread_ts == ts]

    def top_level(self, channel: str | None = None) -> list[SlackMessage]:
        return [m for m in self.messages if m.thread_ts is None and (channel is None or m.channel == channel)]

    def calls(self, method: str) -> list[Mapping[str, Any]]:
        """The arguments of every call of ``method`` (whatever was answered)."""
        return [r.args for r in self.requests if r.path == f"/api/{method}"]

    def response_url(self, key: str = "1") -> str:
        """A ``response_url`` as Slack puts in slash commands and interactions; what is posted to it is kept."""
        return f"{self.url}/response/{key}"

    def responses(self, key: str = "1") -> list[Any]:
        """The JSON bodies posted to ``response_url(key)``, in order."""
        return [r.json for r in self.requests if r.path == f"/response/{key}"]

    # -- fault injection -------------------------------------------------------------------------------

    def fail_next(self, method: str, status: int = 429, *, retry_after: int | None = 1, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP ``status`` and change nothing.

        429 is Slack's rate limit: ``{"ok": false, "error": "ratelimited"}`` plus ``Retry-After:
        <retry_after>`` (omitted if None). Any other status answers ``{"ok": false, "error":
        "internal_error"}`` without Retry-After.
        """

        def make() -> _Reply:
            if status == 429:
                return _Reply(429, {"ok": False, "error": "ratelimited"}, _retry_after_headers(retry_after))
            return _Reply(status, {"ok": False, "error": "internal_error"})

        self._add_fault(method, make, times)

    def error_next(self, method: str, error: str, *, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP 200 ``{"ok": false, "error": error}``."""
        self._add_fault(method, lambda: _Reply(200, {"ok": False, "error": error}), times)

    # -- HTTP ------------------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._wrap(self._handle))
        app.router.add_post("/response/{key}", self._wrap(self._response))
        app.router.add_get("/socket-mode", self._socket)
        return app

    # -- Socket Mode -----------------------------------------------------------------------------------

    def _connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        del args
        return {"url": f"ws://127.0.0.1:{self.port}/socket-mode?ticket=fake"}

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        """Slack's Socket Mode: a `hello`, then envelopes sent by the test; what the client sends is kept."""
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self.sockets.append(socket)
        self.socket_connections += 1
        await socket.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0FAKEAPP"}})
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    self.socket_messages.append(json.loads(message.data))
        finally:
            if socket in self.sockets:
                self.sockets.remove(socket)
        return socket

    async def send_envelope(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = True,
        envelope_id: str | None = None,
    ) -> str:
        """Send a Socket Mode envelope (``slash_commands``, ``interactive``, ...) on the newest socket; its id.
        Give ``envelope_id`` to redeliver an envelope as Slack does when its acknowledgement is late."""
        if not self.sockets:
            raise RuntimeError("no Socket Mode client connected")
        self._seq += 1
        envelope_id = envelope_id or f"env-{self._seq}"
        await self.sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": accepts_response_payload,
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        return envelope_id

    def ack(self, envelope_id: str) -> dict[str, Any] | None:
        """The client's acknowledgement of an envelope (with its response payload, if any), or None yet."""
        return next((m for m in self.socket_messages if m.get("envelope_id") == envelope_id), None)

    async def drop_sockets(self) -> None:
        """Close every socket as Slack does before a refresh; a client is expected to reconnect."""
        for socket in list(self.sockets):
            await socket.close()

    async def stop(self) -> None:
        await self.drop_sockets()
        await super().stop()

    async def _response(self, request: web.Request, body: bytes) -> _Reply:
        # Slack answers a response_url post with a plain "ok"; JSON is close enough for the client.
        del request, body
        return _Reply(200, {"ok": True})

    async def _handle(self, request: web.Request, body: bytes) -> _Reply:
        method = request.match_info["method"]
        fault = self._take_fault(method)
        if fault is not None:
            return fault
        args: dict[str, Any] = {}
        try:
            args, form_token = _slack_args(request, body)
            # apps.connections.open takes the app-level token (xapp-...), every other method the bot token.
            expected = self.app_token if method == "apps.connections.open" else None
            self._authenticate(request, form_token, expected=expected)
            implementation = self._methods.get(method)
            if implementation is None:
                raise _SlackError("unknown_method", req_method=method)
            return _Reply(200, {"ok": True, **implementation(args)}, args=args)
        except _SlackError as exc:
            return _Reply(200, {"ok": False, "error": exc.error, **exc.extra}, args=args)

    def _authenticate(self, request: web.Request, form_token: str | None, *, expected: str | None = None) -> None:
        header = request.headers.get("Authorization")
        token = form_token
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer":
                raise _SlackError("invalid_auth")
        if not token:
            raise _SlackError("not_authed")
        if token.strip() != (expected or self.token):
            raise _SlackError("invalid_auth")

    # -- methods ---------------------------------------------------------------------------------------

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        del args
        return {
            "url": "https://fake-workspace.slack.com/",
            "team": "Fake Workspace",
            "user": "autoremedy",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        blocks = _parse_blocks(args.get("blocks"))
        attachments = _parse_attachments(args.get("attachments"))
        text = str(args.get("text") or "")
        if not text and not blocks and not attachments:
            raise _SlackError("no_text")
        thread_ts = self._thread_root(channel, args.get("thread_ts"))
        message = SlackMessage(channel, self._next_ts(), text, blocks, attachments, thread_ts, dict(args))
        self.messages.append(message)
        self._by_ts[message.ts] = message
        return {"channel": channel, "ts": message.ts, "message": self._message_object(message)}

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages of a channel, newest first, with their metadata when ``include_all_metadata``.
        ``oldest`` is not applied: the fake's ts are a counter, not wall-clock times."""
        channel = self._channel(args)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in {"1", "true"}
        found = []
        for message in reversed(self.top_level(channel)):
            obj = self._message_object(message)
            metadata = _decode_json_arg(message.args.get("metadata"), "invalid_metadata")
            if with_metadata and metadata:
                obj["metadata"] = metadata
            found.append(obj)
        return {"messages": found[: int(args.get("limit") or 100)], "has_more": False}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        message = self._by_ts.get(str(args.get("ts") or ""))
        if message is None or message.channel != channel:
            raise _SlackError("message_not_found")
        blocks = _parse_blocks(args.get("blocks"))
        attachments = _parse_attachments(args.get("attachments"))
        text = args.get("text")
        if not text and not blocks and not attachments:
            raise _SlackError("no_text")
        old_text, old_blocks = message.text, message.blocks
        if text is not None:
            message.text = str(text)
        if blocks is not None:  # omitted: previous blocks kept; [] removes them
            message.blocks = blocks
        if attachments is not None:
            message.attachments = attachments
        self.updates.append(SlackUpdate(channel, message.ts, old_text, message.text, old_blocks, message.blocks))
        return {"channel": channel, "ts": message.ts, "text": message.text, "message": self._message_object(message)}

    # -- helpers ---------------------------------------------------------------------------------------

    def _channel(self, args: Mapping[str, Any]) -> str:
        channel = args.get("channel")
        if not isinstance(channel, str) or not channel:
            raise _SlackError("channel_not_found")
        if self.channels is not None and channel not in self.channels:
            raise _SlackError("channel_not_found")
        return channel

    def _thread_root(self, channel: str, thread_ts: Any) -> str | None:
        if thread_ts is None or thread_ts == "":
            return None
        parent = self._by_ts.get(str(thread_ts))
        if parent is None or parent.channel != channel:
            raise _SlackError("thread_not_found")
        return parent.thread_ts or parent.ts  # a reply's ts threads under its parent

    def _next_ts(self) -> str:
        self._seq += 1
        seconds, micros = divmod(self._seq * 100, 1_000_000)
        return f"{1_700_000_000 + seconds}.{micros:06d}"

    def _message_object(self, message: SlackMessage) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "team": self.team_id,
            "text": message.text,
            "ts": message.ts,
        }
        if message.blocks is not None:
            obj["blocks"] = message.blocks
        if message.attachments is not None:
            obj["attachments"] = message.attachments
        if message.thread_ts is not None:
            obj["thread_ts"] = message.thread_ts
            obj["parent_user_id"] = self.bot_user_id
        return obj


def _slack_args(request: web.Request, body: bytes) -> tuple[dict[str, Any], str | None]:
    """Merge query and body arguments; return them (without any token) and a form-field token."""
    args: dict[str, Any] = dict(request.query)
    args.pop("token", None)  # Slack no longer accepts tokens in query strings
    form_token: str | None = None
    if request.content_type == "application/json":
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            raise _SlackError("invalid_json") from None
        if not isinstance(data, dict):
            raise _SlackError("json_not_object")
        data.pop("token", None)  # JSON bodies must carry the token in the Authorization header
        args.update(data)
    elif request.content_type == "application/x-www-form-urlencoded" or not body:
        form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        form_token = form.pop("token", None)
        args.update(form)
    else:  # multipart (file uploads) is not part of what autoremedy sends
        raise _SlackError("invalid_form_data")
    return args, form_token


# --------------------------------------------------------------------------------------------------------
# PagerDuty
# --------------------------------------------------------------------------------------------------------

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


class FakePagerDuty(_FakeService):
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
        self._add_fault(None, lambda: _Reply(status, payload, _retry_after_headers(retry_after)), times)

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/enqueue", self._wrap(self._handle))
        return app

    async def _handle(self, request: web.Request, body: bytes) -> _Reply:
        fault = self._take_fault("enqueue")
        if fault is not None:
            return fault
        event = _parse_json(body) if request.content_type == "application/json" else None
        if not isinstance(event, dict):
            why = (
                "JSON parse error"
                if request.content_type == "application/json"
                else "Content-Type must be application/json"
            )
            return _Reply(
                400,
                {"status": "Unrecognized object", "message": "Event object format is unrecognized", "errors": [why]},
            )
        errors = self._event_errors(event)
        if errors:
            return _Reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors})
        dedup_key = self._apply(event)
        return _Reply(202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key})

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


# --------------------------------------------------------------------------------------------------------
# Opsgenie
# --------------------------------------------------------------------------------------------------------

_OG_STRING_LIMITS: Final[Mapping[str, int]] = {
    "message": 130,
    "alias": 512,
    "description": 15000,
    "entity": 512,
    "source": 100,
    "user": 100,
    "note": 25000,
}
_OG_CLOSE_FIELDS: Final = ("user", "source", "note")
_OG_PRIORITIES: Final = ("P1", "P2", "P3", "P4", "P5")
_OG_IDENTIFIER_TYPES: Final = ("id", "alias", "tiny")
_OG_NOT_PROCESSABLE: Final = "Request body is not processable. Please check the errors."
_OG_RECIPIENT_TYPES: Final = frozenset({"team", "user", "escalation", "schedule"})

AlertStatus = Literal["open", "closed"]


@dataclass
class OpsgenieAlert:
    """An alert; creates with the alias of an open alert are de-duplicated into it (``count`` + 1)."""

    id: str
    tiny_id: str
    alias: str  # the client's alias, or the alert id when none was given (so it never de-duplicates)
    message: str
    priority: str
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    entity: str | None = None
    source: str | None = None
    status: AlertStatus = "open"
    count: int = 1
    payloads: list[dict[str, Any]] = field(default_factory=list)  # every create body that landed here
    close_payload: dict[str, Any] | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "open"


def _og_string_errors(body: Mapping[str, Any], names: Iterable[str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            errors[name] = "should be a string"
        elif len(value) > _OG_STRING_LIMITS[name]:
            errors[name] = f"{name} can not be longer than {_OG_STRING_LIMITS[name]} characters"
    return errors


def _og_string_list_errors(body: Mapping[str, Any], name: str, *, max_items: int, max_len: int) -> dict[str, str]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return {name: "should be a list of strings"}
    if len(value) > max_items:
        return {name: f"can not have more than {max_items} items"}
    if any(len(v) > max_len for v in value):
        return {name: f"items can not be longer than {max_len} characters"}
    return {}


def _og_recipient_errors(body: Mapping[str, Any], name: str) -> dict[str, str]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, list):
        return {name: "should be a list"}
    for i, item in enumerate(value):
        if not isinstance(item, dict) or item.get("type") not in _OG_RECIPIENT_TYPES:
            return {f"{name}[{i}]": f"type should be one of [{', '.join(sorted(_OG_RECIPIENT_TYPES))}]"}
        if not (item.get("id") or item.get("name") or item.get("username")):
            return {f"{name}[{i}]": "id or name should be provided"}
    return {}


def _og_create_errors(body: Mapping[str, Any]) -> dict[str, str]:
    message = body.get("message")
    errors: dict[str, str] = {}
    if not isinstance(message, str) or not message.strip():
        errors["message"] = "Message can not be empty."
    errors |= {k: v for k, v in _og_string_errors(body, _OG_STRING_LIMITS).items() if k not in errors}
    priority = body.get("priority")
    if priority is not None and priority not in _OG_PRIORITIES:
        errors["priority"] = f"should be one of [ {', '.join(_OG_PRIORITIES)} ]"
    details = body.get("details")
    if details is not None and (
        not isinstance(details, dict) or any(isinstance(v, dict | list) for v in details.values())
    ):
        errors["details"] = "should be a map of key-value pairs"
    errors |= _og_string_list_errors(body, "tags", max_items=20, max_len=50)
    errors |= _og_string_list_errors(body, "actions", max_items=10, max_len=50)
    errors |= _og_recipient_errors(body, "responders")
    errors |= _og_recipient_errors(body, "visibleTo")
    return errors


class FakeOpsgenie(_FakeService):
    """Opsgenie Alert API v2: create, close and request status.

    Every request needs ``Authorization: GenieKey <api_key>`` (else 401 ``{"message": "Could not
    authenticate", "took": ..., "requestId": ...}``). Valid create/close requests answer 202 ``{"result":
    "Request will be processed", "took": ..., "requestId": ...}`` and are processed at once; as in Opsgenie,
    a close of an alert that does not exist is still a 202 whose request status (``GET
    /v2/alerts/requests/{requestId}``) says ``"isSuccess": false, "status": "Alert does not exist"``.
    Semantic errors answer 422 ``{"message": "Request body is not processable. ...", "errors": {field: why},
    ...}``, unparsable JSON 400, a body not sent as ``application/json`` 415.
    """

    def __init__(self, api_key: str = OPSGENIE_API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.integration_id = str(uuid.uuid4())
        #: Every alert ever created, in order (closed ones stay here).
        self.alerts: list[OpsgenieAlert] = []
        #: Outcome of every accepted create/close request, by requestId.
        self.request_statuses: dict[str, dict[str, Any]] = {}
        self._open: dict[str, OpsgenieAlert] = {}

    @property
    def alerts_url(self) -> str:
        return f"{self.url}/v2/alerts"

    @property
    def open_alerts(self) -> dict[str, OpsgenieAlert]:
        """Open alerts by alias."""
        return dict(self._open)

    def alert(self, alias: str) -> OpsgenieAlert:
        """The most recent alert with ``alias``."""
        for alert in reversed(self.alerts):
            if alert.alias == alias:
                return alert
        raise KeyError(alias)

    def fail_next(
        self,
        status: int = 500,
        *,
        operation: Literal["create", "close", "status"] | None = None,
        retry_after: int | None = None,
        times: int = 1,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        """Answer the next ``times`` requests (of ``operation``, else of any kind) with HTTP ``status``
        (429, 500, 422, ...) and process nothing. ``Retry-After`` only if ``retry_after`` is given."""

        def make() -> _Reply:
            payload: dict[str, Any] = dict(body) if body is not None else _og_fault_body(status)
            payload |= {"took": 0.001, "requestId": str(uuid.uuid4())}
            return _Reply(status, payload, _retry_after_headers(retry_after))

        self._add_fault(operation, make, times)

    # -- HTTP ------------------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/alerts", self._wrap(self._create))
        app.router.add_post("/v2/alerts/{identifier}/close", self._wrap(self._close))
        app.router.add_get("/v2/alerts/requests/{request_id}", self._wrap(self._request_status))
        app.router.add_route("*", "/{tail:.*}", self._wrap(self._not_found))
        return app

    async def _create(self, request: web.Request, body: bytes) -> _Reply:
        started = time.perf_counter()
        rejection = self._take_fault("create") or self._auth_rejection(request, started)
        if rejection is not None:
            return rejection
        parsed = self._json_body(request, body, started, required=True)
        if isinstance(parsed, _Reply):
            return parsed
        errors = _og_create_errors(parsed)
        if errors:
            return self._answer(422, started, message=_OG_NOT_PROCESSABLE, errors=errors)
        request_id = str(uuid.uuid4())
        self.request_statuses[request_id] = self._apply_create(parsed)
        return self._answer(202, started, request_id, result="Request will be processed")

    async def _close(self, request: web.Request, body: bytes) -> _Reply:
        started = time.perf_counter()
        rejection = self._take_fault("close") or self._auth_rejection(request, started)
        if rejection is not None:
            return rejection
        identifier_type = request.query.get("identifierType", "id")
        if identifier_type not in _OG_IDENTIFIER_TYPES:
            errors = {"identifierType": f"should be one of [{', '.join(_OG_IDENTIFIER_TYPES)}]"}
            return self._answer(422, started, message=_OG_NOT_PROCESSABLE, errors=errors)
        parsed = self._json_body(request, body, started, required=False)
        if isinstance(parsed, _Reply):
            return parsed
        errors = _og_string_errors(parsed, _OG_CLOSE_FIELDS)
        if errors:
            return self._answer(422, started, message=_OG_NOT_PROCESSABLE, errors=errors)
        request_id = str(uuid.uuid4())
        identifier = request.match_info["identifier"]
        self.request_statuses[request_id] = self._apply_close(identifier, identifier_type, parsed)
        return self._answer(202, started, request_id, result="Request will be processed")

    async def _request_status(self, request: web.Request, body: bytes) -> _Reply:
        del body
        started = time.perf_counter()
        rejection = self._take_fault("status") or self._auth_rejection(request, started)
        if rejection is not None:
            return rejection
        status = self.request_statuses.get(request.match_info["request_id"])
        if status is None:
            return self._answer(404, started, message="Request not found. It might not be processed, yet.")
        return self._answer(200, started, data=status)

    async def _not_found(self, request: web.Request, body: bytes) -> _Reply:
        del request, body
        return self._answer(404, time.perf_counter(), message="Resource or handler not found")

    # -- helpers ---------------------------------------------------------------------------------------

    def _answer(self, status: int, started: float, request_id: str | None = None, **fields: Any) -> _Reply:
        took = round(time.perf_counter() - started, 3)
        return _Reply(status, {**fields, "took": took, "requestId": request_id or str(uuid.uuid4())})

    def _auth_rejection(self, request: web.Request, started: float) -> _Reply | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme == "GenieKey" and key.strip() == self.api_key:
            return None
        return self._answer(401, started, message="Could not authenticate")

    def _json_body(
        self, request: web.Request, body: bytes, started: float, *, required: bool
    ) -> dict[str, Any] | _Reply:
        if not body and not required:
            return {}
        if request.content_type != "application/json":
            return self._answer(415, started, message="Content-Type must be application/json")
        parsed = _parse_json(body)
        if not isinstance(parsed, dict):
            return self._answer(400, started, message="Request body is not a valid JSON object")
        return parsed

    def _apply_create(self, body: dict[str, Any]) -> dict[str, Any]:
        alias: str | None = body.get("alias") or None
        existing = self._open.get(alias) if alias else None
        if existing is not None:
            existing.count += 1
            existing.payloads.append(body)
            return self._status_record("Create", True, "Alert is deduplicated", existing)
        alert_id = str(uuid.uuid4())
        alert = OpsgenieAlert(
            id=alert_id,
            tiny_id=str(len(self.alerts) + 1),
            alias=alias or alert_id,
            message=body["message"],
            priority=body.get("priority") or "P3",
            description=body.get("description"),
            tags=list(body.get("tags") or []),
            details=dict(body.get("details") or {}),
            entity=body.get("entity"),
            source=body.get("source"),
            payloads=[body],
        )
        self.alerts.append(alert)
        self._open[alert.alias] = alert
        return self._status_record("Create", True, "Created alert", alert)

    def _apply_close(self, identifier: str, identifier_type: str, body: dict[str, Any]) -> dict[str, Any]:
        alert = self._find(identifier, identifier_type)
        if alert is None:
            return self._status_record("Close", False, "Alert does not exist", None)
        if not alert.is_open:
            return self._status_record("Close", False, "Alert is already closed", alert)
        alert.status = "closed"
        alert.close_payload = body
        del self._open[alert.alias]
        return self._status_record("Close", True, "Closed alert", alert)

    def _find(self, identifier: str, identifier_type: str) -> OpsgenieAlert | None:
        if identifier_type == "alias":
            return self._open.get(identifier)
        attribute = "id" if identifier_type == "id" else "tiny_id"
        return next((a for a in self.alerts if getattr(a, attribute) == identifier), None)

    def _status_record(self, action: str, success: bool, status: str, alert: OpsgenieAlert | None) -> dict[str, Any]:
        return {
            "success": success,
            "action": action,
            "processedAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "integrationId": self.integration_id,
            "isSuccess": success,
            "status": status,
            "alertId": alert.id if alert else "",
            "alias": alert.alias if alert else "",
        }


def _og_fault_body(status: int) -> dict[str, Any]:
    if status == 422:
        return {"message": _OG_NOT_PROCESSABLE, "errors": {"fault": "injected"}}
    if status == 429:
        return {"message": "Too many requests"}
    return {"message": "Internal Server Error"}


# --------------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(name="fake_slack")
async def fake_slack_fixture() -> AsyncIterator[FakeSlack]:
    """A started ``FakeSlack`` with the default bot token (stopped at teardown)."""
    async with FakeSlack() as server:
        yield server


@pytest.fixture(name="fake_pagerduty")
async def fake_pagerduty_fixture() -> AsyncIterator[FakePagerDuty]:
    """A started ``FakePagerDuty`` with the default routing key (stopped at teardown)."""
    async with FakePagerDuty() as server:
        yield server


@pytest.fixture(name="fake_opsgenie")
async def fake_opsgenie_fixture() -> AsyncIterator[FakeOpsgenie]:
    """A started ``FakeOpsgenie`` with the default API key (stopped at teardown)."""
    async with FakeOpsgenie() as server:
        yield server
