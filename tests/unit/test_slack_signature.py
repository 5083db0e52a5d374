"""Slack's request signature over raw bytes: genuine, forged, stale, and every hostile header or body refused."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from autoremedy.chatops.signature import signature_refusal

SECRET = b"8f742231b10e8888abcd99b1c2d3e4f5"
NOW = 1_764_000_000
BODY = b"token=x&user_id=U0ADMIN&text=status"


def signed(body: bytes, timestamp: str, secret: bytes = SECRET) -> str:
    return "v0=" + hmac.new(secret, f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()


def test_a_genuine_signature_passes_even_over_bytes_that_are_not_utf8() -> None:
    assert signature_refusal(SECRET, BODY, str(NOW), signed(BODY, str(NOW)), now=NOW) is None
    binary = b"text=\xff\xfe"
    assert signature_refusal(SECRET, binary, str(NOW), signed(binary, str(NOW)), now=NOW) is None


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "secret", "refusal"),
    [
        pytest.param(str(NOW), signed(BODY, str(NOW), b"other"), BODY, SECRET, "invalid Slack signature", id="forged"),
        pytest.param(str(NOW), signed(BODY, str(NOW)), BODY + b"&x=1", SECRET, "invalid", id="tampered"),
        pytest.param(str(NOW - 301), signed(BODY, str(NOW - 301)), BODY, SECRET, "stale", id="stale"),
        pytest.param(str(NOW + 301), signed(BODY, str(NOW + 301)), BODY, SECRET, "stale", id="future"),
        pytest.param("²", signed(BODY, "²"), BODY, SECRET, "ASCII digits", id="superscript-digit"),
        pytest.param("\u0661\u0667", "v0=x", BODY, SECRET, "ASCII digits", id="arabic-indic-digits"),
        pytest.param("9" * 13, "v0=x", BODY, SECRET, "ASCII digits", id="too-long"),
        pytest.param("-1", "v0=x", BODY, SECRET, "ASCII digits", id="negative"),
        pytest.param("", "v0=x", BODY, SECRET, "ASCII digits", id="no-timestamp"),
        pytest.param(str(NOW), "", BODY, SECRET, "missing or invalid", id="no-signature"),
        pytest.param(str(NOW), "v0=é\udcff", BODY, SECRET, "missing or invalid", id="signature-not-ascii"),
        pytest.param(str(NOW), signed(BODY, str(NOW)), BODY, None, "invalid Slack signature", id="no-secret"),
    ],
)
def test_refusals(timestamp: str, signature: str, body: bytes, secret: bytes | None, refusal: str) -> None:
    said = signature_refusal(secret, body, timestamp, signature, now=NOW)
    assert said is not None and refusal in said
