"""Console sign-in: a session cookie backed by the store, a CSRF token per session, and the Origin check.

The cookie holds 32 random bytes; the store keeps only their SHA-256, so a copy of the database hands out no live
session. The cookie is HttpOnly and SameSite=Strict, and Secure when the request came over TLS or
`server.ui.secure_cookies` says a proxy terminates TLS. A state-changing request must come from this origin and
carry the session's CSRF token; anything else is refused with 403.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

from autoremedy.config.settings import AuthSettings, UiSettings
from autoremedy.control.credentials import Principal, Scope, configured_scopes
from autoremedy.store.base import ConsoleSession, Store

COOKIE: Final = "autoremedy_session"
COOKIE_PATH: Final = "/ui"
CSRF_FIELD: Final = "csrf_token"


@dataclass(frozen=True, slots=True)
class SignedIn:
    principal: Principal
    csrf_token: str
    key_hash: str
    expires_at: datetime

    def may(self, scope: Scope) -> bool:
        return self.principal.has(scope)


SIGNED_IN = web.RequestKey("console_signed_in", SignedIn)


def key_hash(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode("utf-8", "surrogateescape")).hexdigest()


async def start_session(store: Store, principal: Principal, ui: UiSettings, *, now: datetime) -> str:
    """A new session for a signed-in principal; the cookie value to hand to the browser."""
    value = secrets.token_urlsafe(32)
    session = ConsoleSession(
        key_hash=key_hash(value),
        principal=principal.name,
        scopes=frozenset(scope.value for scope in principal.scopes),
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + ui.session_ttl,
    )
    await store.create_console_session(session, now=now)
    return value


async def signed_in(request: web.Request, store: Store, auth: AuthSettings, *, now: datetime) -> SignedIn | None:
    """The session of this request's cookie, with the scopes its credential has now: a credential removed from
    the configuration (or its scopes narrowed) since sign-in takes its sessions' rights with it."""
    value = request.cookies.get(COOKIE)
    if not value or len(value) > 200:
        return None
    session = await store.console_session(key_hash(value), now=now)
    if session is None:
        return None
    now_held = {scope.value for scope in configured_scopes(session.principal, auth)}
    scopes = frozenset(Scope(name) for name in session.scopes & now_held)
    if not scopes:
        return None
    principal = Principal(session.principal, scopes)
    return SignedIn(principal, session.csrf_token, session.key_hash, session.expires_at)


def set_cookie(response: web.StreamResponse, request: web.Request, value: str, ui: UiSettings) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=int(ui.session_ttl.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=ui.secure_cookies or request.secure,
    )


def clear_cookie(response: web.StreamResponse, request: web.Request, ui: UiSettings) -> None:
    response.del_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=ui.secure_cookies or request.secure
    )


def same_origin(request: web.Request) -> bool:
    """The request was sent by a page of this console: its Origin names this host (http or https, since a proxy
    may terminate TLS). Browsers send Origin with every POST; its absence is refused too."""
    origin = request.headers.get("Origin")
    if not origin:
        return False
    parts = urlsplit(origin)
    return parts.scheme in {"http", "https"} and bool(parts.netloc) and parts.netloc == request.host


def csrf_matches(session: SignedIn, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), session.csrf_token.encode())
