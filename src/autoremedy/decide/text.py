"""Pure text helpers every channel and the chat transport share: fitting text to a limit, Slack's mrkdwn
escaping, and scrubbing secrets from what a service or a library said."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from autoremedy.decide.redact import redact_text

ELLIPSIS: Final = "…"
REDACTED: Final = "<redacted>"


def ellipsize(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in `…` when it was cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS if limit > 0 else ""


def one_line(text: str) -> str:
    return " ".join(text.split())


def slack_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_escape_fit(text: str, limit: int) -> str:
    """`text` escaped for mrkdwn and at most `limit` characters long, never cutting an `&amp;`-style entity."""
    escaped = slack_escape(text)
    if len(escaped) <= limit:
        return escaped
    out: list[str] = []
    used = 0
    for char in text:
        piece = slack_escape(char)
        if used + len(piece) > limit - 1:
            break
        out.append(piece)
        used += len(piece)
    return "".join(out) + ELLIPSIS


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value replaced, should a service or a library ever echo one, then through the
    daemon's one redaction (URL credentials, configured secrets)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return redact_text(text)
