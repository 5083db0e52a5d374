"""Credentials and what they may do. An Authorization header (Bearer or HTTP basic, as Alertmanager's http_config
sends them) or a console sign-in becomes a `Principal`: a name the audit log records and a set of scopes.

- `server.auth.tokens`: named bearer tokens with their scopes; principal `token:<name>`.
- `server.auth.users`: basic-auth users with their scopes (people signing in to the console); `basic:<user>`.
- Legacy `server.auth.bearer_tokens` (principal `bearer`) and `basic_users` (`basic:<user>`): ingest and read.
- No credential configured (loopback): `anonymous` with every scope, as before scopes existed; with
  `allow_anonymous` (a non-loopback address served without credentials): ingest and read only, never control.

Every secret comparison is constant-time and goes over all configured secrets, so timing tells neither which
token nor which user exists. A header that is not ASCII is refused before anything is decoded.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from autoremedy.config.settings import AuthSettings


class Scope(StrEnum):
    INGEST = "ingest"
    """POST /api/v1/alerts."""
    READ = "read"
    """Runs, status, audit (and /metrics when protected)."""
    CONTROL = "control"
    """Approve, deny, pause, resume, close the breaker."""


@dataclass(frozen=True)
class Principal:
    name: str
    """What the audit log records as actor: token:<name>, basic:<user>, bearer, anonymous, slack:<user id>."""
    scopes: frozenset[Scope]
    via: str = ""
    """Where the request came from, when an approvers list may name it (a Slack channel id)."""

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes


ALL_SCOPES: Final = frozenset(Scope)
LEGACY_SCOPES: Final = frozenset({Scope.INGEST, Scope.READ})
_UNKNOWN: Final = b"\0no such credential"


def anonymous(auth: AuthSettings) -> Principal:
    return Principal("anonymous", LEGACY_SCOPES if auth.allow_anonymous else ALL_SCOPES)


def authenticate(header: str | None, auth: AuthSettings) -> Principal | None:
    """The caller of an Authorization header; None: refuse with 401."""
    if not auth.has_credentials:
        return anonymous(auth)
    if not header or not header.isascii():
        # Headers reach us decoded as latin-1 or with surrogates: anything not ASCII is no credential of ours.
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return _bearer(value.encode("ascii"), auth)
    if scheme.lower() == "basic":
        return _basic(value, auth)
    return None


def authenticate_login(user: str | None, secret: str, auth: AuthSettings) -> Principal | None:
    """The caller of a sign-in form: a token alone, or a basic-auth user and password; None: refused."""
    if not auth.has_credentials:
        return anonymous(auth)
    given = secret.encode("utf-8", "surrogatepass")
    if not user:
        return _bearer(given, auth)
    return _basic_pair(user, given, auth)


def configured_scopes(name: str, auth: AuthSettings) -> frozenset[Scope]:
    """The scopes the configuration gives the principal of this name now (none when it is gone): how a session
    started earlier (the console's) loses the rights its credential has lost since."""
    kind, _, who = name.partition(":")
    if name == "anonymous":
        return anonymous(auth).scopes if not auth.has_credentials else frozenset()
    if name == "bearer":
        return LEGACY_SCOPES if auth.bearer_tokens else frozenset()
    if kind == "token":
        return next((frozenset(Scope(s) for s in t.scopes) for t in auth.tokens if t.name == who), frozenset())
    if kind == "basic":
        scoped = next((u for u in auth.users if u.name == who), None)
        if scoped is not None:
            return frozenset(Scope(s) for s in scoped.scopes)
        return LEGACY_SCOPES if who in auth.basic_users else frozenset()
    return frozenset()


def slack_identities(auth: AuthSettings) -> dict[str, str]:
    """Each credential that names its holder's Slack user, as the audit names them: `token:ops-cli` ->
    `slack:U0123`. What lets the requester of a manual run (asked in Slack) be told apart from other credentials."""
    named = [(f"token:{t.name}", t.slack_user) for t in auth.tokens] + [
        (f"basic:{u.name}", u.slack_user) for u in auth.users
    ]
    return {principal: f"slack:{user}" for principal, user in named if user is not None}


def _bearer(given: bytes, auth: AuthSettings) -> Principal | None:
    candidates = [
        (token.token.get_secret_value(), Principal(f"token:{token.name}", frozenset(Scope(s) for s in token.scopes)))
        for token in auth.tokens
        if token.token is not None
    ]
    candidates += [(token.get_secret_value(), Principal("bearer", LEGACY_SCOPES)) for token in auth.bearer_tokens]
    found: Principal | None = None
    for secret, principal in candidates:  # no early exit: constant time over the configured tokens
        if hmac.compare_digest(given, secret.encode()) and found is None:
            found = principal
    return found if given else None


def _basic(value: str, auth: AuthSettings) -> Principal | None:
    try:
        pair = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    user_bytes, sep, password = pair.partition(b":")
    if not sep:
        return None
    try:
        user = user_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return _basic_pair(user, password, auth)


def _basic_pair(user: str, password: bytes, auth: AuthSettings) -> Principal | None:
    expected, scopes = _user_secret(user, auth)
    # Compare even for an unknown user, so timing does not tell which users exist.
    secret = expected.encode() if expected is not None else _UNKNOWN
    matches = hmac.compare_digest(password, secret)
    return Principal(f"basic:{user}", scopes) if matches and expected is not None else None


def _user_secret(user: str, auth: AuthSettings) -> tuple[str | None, frozenset[Scope]]:
    """The password and scopes of a basic-auth user: `users` with their scopes, legacy `basic_users` read-only."""
    scoped = next((u for u in auth.users if u.name == user and u.password is not None), None)
    if scoped is not None and scoped.password is not None:
        return scoped.password.get_secret_value(), frozenset(Scope(s) for s in scoped.scopes)
    legacy = auth.basic_users.get(user)
    return (legacy.get_secret_value() if legacy is not None else None), LEGACY_SCOPES
