"""Credentials as Alertmanager's http_config sends them: `Authorization: Bearer` or HTTP basic auth."""

from __future__ import annotations

import base64
import binascii
import hmac

from autoremedy.config.settings import AuthSettings


def is_authorized(header: str | None, auth: AuthSettings) -> bool:
    """True when no credentials are configured (loopback or explicit anonymous), or the header carries valid ones."""
    if not auth.has_credentials:
        return True
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return _any_equal(value, [token.get_secret_value() for token in auth.bearer_tokens])
    if scheme.lower() == "basic":
        return _basic_ok(value, auth)
    return False


def _basic_ok(value: str, auth: AuthSettings) -> bool:
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    expected = auth.basic_users.get(user)
    # Compare even for an unknown user, so timing does not tell which users exist.
    secret = expected.get_secret_value() if expected is not None else "\0unknown"
    return bool(sep) and hmac.compare_digest(password.encode(), secret.encode()) and expected is not None


def _any_equal(given: str, accepted: list[str]) -> bool:
    found = False
    for candidate in accepted:  # no early exit: constant time over the configured tokens
        found |= hmac.compare_digest(given.encode(), candidate.encode())
    return found
