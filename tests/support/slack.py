"""A local fake of the Slack Web API (and Socket Mode) that autoremedy posts to and takes commands from.

``AsyncWebClient(token=fake.token, base_url=f"{fake.url}/api/")`` talks to it. Implements ``chat.postMessage``
(incl. ``thread_ts`` replies), ``chat.update`` and ``auth.test``; blocks are checked as Slack checks them.
The ``fake_slack`` fixture (function scope, stopped at teardown) is registered by the root conftest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from .fakeservice import FakeService, Reply, retry_after_headers

#: Default credentials of the fake (any syntactically valid values would do).
SLACK_BOT_TOKEN: Final = "xoxb-1000000000-2000000000-fakeSlackBotToken0"
SLACK_APP_TOKEN: Final = "xapp-1-A0FAKEAPP-3000000000-fakeSlackAppToken0"


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


class FakeSlack(FakeService):
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

        def make() -> Reply:
            if status == 429:
                return Reply(429, {"ok": False, "error": "ratelimited"}, retry_after_headers(retry_after))
            return Reply(status, {"ok": False, "error": "internal_error"})

        self._add_fault(method, make, times)

    def error_next(self, method: str, error: str, *, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP 200 ``{"ok": false, "error": error}``."""
        self._add_fault(method, lambda: Reply(200, {"ok": False, "error": error}), times)

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

    async def _response(self, request: web.Request, body: bytes) -> Reply:
        # Slack answers a response_url post with a plain "ok"; JSON is close enough for the client.
        del request, body
        return Reply(200, {"ok": True})

    async def _handle(self, request: web.Request, body: bytes) -> Reply:
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
            return Reply(200, {"ok": True, **implementation(args)}, args=args)
        except _SlackError as exc:
            return Reply(200, {"ok": False, "error": exc.error, **exc.extra}, args=args)

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
