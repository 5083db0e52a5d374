"""Credentials as Alertmanager's http_config sends them: `Authorization: Bearer` or HTTP basic auth."""

from __future__ import annotations

import base64
import binascii
import hmac

from autoremedy.config.settings import AuthSettings


def is_authorized(header: str | None, auth: AuthSettings) -> bool:
    """True when no credentials are configured (loopback or explicit anonymous), or the header carries valid ones."""
    return identify(header, auth) is not None


def identify(header: str | None, auth: AuthSettings) -> str | None:
    """Who is calling, for the audit log: a basic-auth user name, `bearer` or `anonymous`; None when refused."""
    if not auth.has_credentials:
        return "anonymous"
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return "bearer" if _any_equal(value, [token.get_secret_value() for token in auth.bearer_tokens]) else None
    if scheme.lower() == "basic":
        return _basic_user(value, auth)
    return None


def _basic_user(value: str, auth: AuthSettings) -> str | None:
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    expected = auth.basic_users.get(user)
    # Compare even for an unknown user, so timing does not tell which users exist.
    secret = expected.get_secret_value() if expected is not None else "\0unknown"
    matches = hmac.compare_digest(password.encode(), secret.encode())
    return user if sep and matches and expected is not None else None


def _any_equal(given: str, accepted: list[str]) -> bool:
    found = False
    for candidate in accepted:  # no early exit: constant time over the configured tokens
        found |= hmac.compare_digest(given.encode(), candidate.encode())
    return found
