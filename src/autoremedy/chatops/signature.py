"""Slack's request signature, checked over the raw bytes: `v0=` + HMAC-SHA256 of `v0:<timestamp>:<body>` with the
app's signing secret, compared in constant time, with a timestamp of ASCII digits within 5 minutes.

Written here rather than taken from slack-sdk's SignatureVerifier, which decodes the body as UTF-8 and compares str
values (both raise on bytes that are not UTF-8 or not ASCII: a 500 for whoever sends them).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

MAX_AGE_SECONDS: Final = 5 * 60
MAX_TIMESTAMP_DIGITS: Final = 12


def signature_refusal(secret: bytes | None, body: bytes, timestamp: str, signature: str, *, now: float) -> str | None:
    """Why a request is not Slack's, from its raw bytes and headers (None: it is, within the time window)."""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_TIMESTAMP_DIGITS):
        return "missing or invalid Slack signature headers: X-Slack-Request-Timestamp must be ASCII digits"
    if not signature or not signature.isascii():
        return "missing or invalid Slack signature headers"
    if abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        return "stale request: timestamp more than 5 minutes away"
    if secret is None:
        return "invalid Slack signature"
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    expected = "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
        return "invalid Slack signature"
    return None
