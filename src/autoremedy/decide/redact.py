"""One redaction for every text that leaves the daemon: run records, logs, escalations, chat and API answers.

`redact(value)` copies nested data, masking whole values under secret-looking keys and running every string
through `redact_text`, which masks the configured secrets literally, URL userinfo, query-string values, long
opaque path segments (a Slack webhook's `/services/T.../B.../XXXX`), and `Bearer`/`Basic` credentials.

Configured secrets are registered once when the daemon starts (`register_secrets`); the set is module state
because a logging processor, an action and an escalation all need it and none of them is handed the settings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import lru_cache
from typing import Any, Final
from urllib.parse import quote

from autoremedy.models.notifications import Notification

REDACTED: Final = "<redacted>"
MIN_SECRET_LENGTH: Final = 4
"""Shorter configured secrets are not masked literally: replacing every `abc` in every message helps nobody."""

# Substrings that mark a secret wherever they sit in a key (`db_password`, `X-Session-Id`, `slack_webhook`).
_SECRET_PART = re.compile(
    r"password|passwd|passphrase|secret|token|credential|cookie|signature|webhook|session|authoriz|authentic"
    r"|private|api[-_]?key|access[-_]?key|routing[-_]?key",
    re.I,
)
# Whole words only: `key` but not `monkey`/`keyboard`, `auth` but not `author`.
_SECRET_WORDS: Final = frozenset({"key", "auth", "dsn", "pwd", "sig", "pass", "apikey"})
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")

# A marker already in a URL (from an earlier pass) is part of it, so the rest of the URL is still masked.
_URL = re.compile(r"\b(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>(?:<redacted>|[^\s<>\"'`|])+)")
# `Authorization: Bearer x` echoed in an error; the credential must look like one (a digit, or long), so that
# "Basic information" stays readable.
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic|Token|GenieKey|bearer)\s+(?=[^\s]*\d|[^\s]{16})[A-Za-z0-9._~+/=-]{6,}")
_URL_PARTS = re.compile(r"(?P<authority>[^/?#]*)(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?(?:#(?P<fragment>.*))?", re.S)
_OPAQUE_SEGMENT = re.compile(r"[A-Za-z0-9_~+=.-]{16,}")
_SLACK_HOOK = re.compile(r"(?i)(?:^|\.)slack\.com$")
# `token=x`, `password: x`, `"api_key": "x"` inside free text (an error message, a response body excerpt such as a
# token endpoint's `{"access_token": "..."}`): the value is masked when the key looks like a secret's.
_KEY_SEP = re.compile(r"""(?P<key>[A-Za-z][A-Za-z0-9_.-]*)(?P<sep>["']?[ \t]*[:=][ \t]*)""")
_VALUE = re.compile(
    r"""(?P<quote>["'])[^"'\n]*(?P=quote)|(?P<scheme>(?:Bearer|Basic|Token|GenieKey)[ \t]+)?[^\s"',;&)}\]<]+"""
)

_registered: list[str] = []


def register_secrets(secrets: Iterable[str]) -> None:
    """The daemon's configured secret values, masked literally from now on (replaces any earlier set)."""
    found = {form for secret in secrets if len(secret) >= MIN_SECRET_LENGTH for form in _written_forms(secret)}
    _registered[:] = sorted(found, key=len, reverse=True)  # longest first: a secret inside another
    _redact_short.cache_clear()  # what was remembered was masked for the secrets before


def _written_forms(secret: str) -> set[str]:
    """The secret, and as it reads once percent-encoded (a URL normalised by the action's URL type, `| urlencode`)
    or JSON-escaped (a receiver echoing it back, `/` as `\\/` included)."""
    escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
    url_forms = {quote(secret, safe=safe) for safe in ("", "/", "/:@!$&'()*+,;=")}
    return {secret, *url_forms, escaped, escaped.replace("/", "\\/")}


def registered_secrets() -> tuple[str, ...]:
    return tuple(_registered)


@lru_cache(maxsize=4096)  # the same few keys, in every step's inputs and every run record
def is_secret_key(key: str) -> bool:
    if _SECRET_PART.search(key):
        return True
    return any(word.lower() in _SECRET_WORDS for word in _WORD_SPLIT.split(key) if word)


def redact(value: Any) -> Any:
    """A copy of value: entries under a secret-looking key masked whole, every string through `redact_text`.

    True/False under a secret key is kept (`idempotency_key: false`): it says whether something is on."""
    if isinstance(value, Mapping):
        return {key: _masked(item) if is_secret_key(str(key)) else redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def _masked(value: Any) -> Any:
    return value if isinstance(value, bool) else REDACTED


SHORT_TEXT: Final = 512
"""Texts up to this long are remembered with their redaction: a run's messages repeat (`POST <url> answered 200`)
and each redaction runs a dozen patterns; longer ones (response excerpts) are redacted afresh."""


def redact_text(text: str) -> str:
    """Free text with configured secrets, URL credentials and query values, opaque path segments and
    `Authorization`-style credentials masked."""
    return _redact_short(text) if len(text) <= SHORT_TEXT else _redact(text)


@lru_cache(maxsize=4096)
def _redact_short(text: str) -> str:
    return _redact(text)


def _redact(text: str) -> str:
    if "://" in text:
        text = _URL.sub(lambda match: redact_url(match.group(0)), text)
    text = _mask_secret_pairs(text)
    for secret in _registered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _AUTH_SCHEME.sub(lambda match: f"{match.group(1)} {REDACTED}", text)


@lru_cache(maxsize=4096)
def _is_secret_key_in_text(key: str) -> bool:
    """As `is_secret_key`, less the bare words `key`, `pass`, `sig` and `auth`: in prose (`key=value`, the usage of
    a chat command) they are words, not names of secrets."""
    return _SECRET_PART.search(key) is not None or any(
        word.lower() in _SECRET_WORDS - _PROSE_WORDS for word in _WORD_SPLIT.split(key) if word
    )


_PROSE_WORDS: Final = frozenset({"key", "pass", "sig", "auth"})


def _mask_secret_pairs(text: str) -> str:
    """Each value after a secret-looking `key=` / `key:` replaced, its quotes and `Bearer ` kept."""
    pieces, done = [], 0
    for pair in _KEY_SEP.finditer(text):
        value = _VALUE.match(text, pair.end())
        if pair.start() < done or value is None or not _is_secret_key_in_text(pair.group("key")):
            continue
        quote = value.group("quote") or ""
        pieces += [text[done : pair.end()], quote, value.group("scheme") or "", REDACTED, quote]
        done = value.end()
    return "".join(pieces) + text[done:] if pieces else text


def redact_url(url: str, *, keep_query: bool = False) -> str:
    """A URL without userinfo, with every query value and long opaque path segment masked.

    `keep_query` keeps the query (a Prometheus link's `g0.expr`), still without configured secrets. Works on the
    text, not a parsed URL, so a URL that a parser would reject is masked too."""
    scheme, _, rest = url.partition("://")
    parts = _URL_PARTS.fullmatch(rest)
    if parts is None:  # cannot happen: every part of the pattern is optional
        return f"{scheme}://{REDACTED}"
    authority, path, query, fragment = parts.group("authority", "path", "query", "fragment")
    host = authority.rpartition("@")[2]
    if "@" in authority:
        host = f"{REDACTED}@{host}"
    text = f"{scheme}://{host}{_redact_path(path, host)}"
    if query is not None:
        text += "?" + (_redact_query(query, only_secret_keys=True) if keep_query else _redact_query(query))
    if fragment is not None:  # `#access_token=...` (OAuth's implicit flow) is a query by another name
        text += "#" + (_redact_query(fragment) if "=" in fragment else fragment)
    for secret in _registered:
        text = text.replace(secret, REDACTED)
    return text


def _redact_path(path: str, host: str) -> str:
    segments = path.split("/")  # "/services/T1/B2/X" -> ["", "services", "T1", "B2", "X"]
    if _SLACK_HOOK.search(host.partition(":")[0]) and segments[1:2] == ["services"]:
        return "/".join([*segments[:2], *([REDACTED] * (len(segments) - 2))])
    return "/".join(REDACTED if _is_opaque(segment) else segment for segment in segments)


def _is_opaque(segment: str) -> bool:
    """A token-like segment: long, one word of letters and digits (a pod name has dashes and is lowercase)."""
    if not _OPAQUE_SEGMENT.fullmatch(segment) or not re.search(r"\d", segment):
        return False
    mixed_case = re.search(r"[a-z]", segment) is not None and re.search(r"[A-Z]", segment) is not None
    return mixed_case or (len(segment) >= 32 and "-" not in segment.strip("-"))


def _redact_query(query: str, *, only_secret_keys: bool = False) -> str:
    """Every value masked, or (a kept link query) those under a secret-looking name (`access_token=`)."""
    pairs = (pair.partition("=") for pair in query.split("&"))
    return "&".join(
        f"{name}={REDACTED}" if sep and (not only_secret_keys or is_secret_key(name)) else f"{name}{sep}{value}"
        for name, sep, value in pairs
    )


def redact_notification(notification: Notification) -> Notification:
    """An escalation as every channel (Slack, PagerDuty, Opsgenie) sends it: each text through the redaction.

    The Prometheus link keeps its query (the expression people click through to); other URLs do not."""
    return replace(
        notification,
        title=redact_text(notification.title),
        summary=redact_text(notification.summary),
        labels=redact(notification.labels),
        annotations=redact(notification.annotations),
        generator_url=redact_url(notification.generator_url, keep_query=True) if notification.generator_url else "",
        runbook_url=redact_text(notification.runbook_url),
        steps=tuple(replace(step, detail=redact_text(step.detail)) for step in notification.steps),
    )
