"""Settings of the HTTP server: API tokens and users, authentication, limits and the web UI."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from autoremedy.config.settings_base import _CREDENTIAL_NAME, DEFAULT_PORT, ScopeName, _Section
from autoremedy.models.durations import Duration
from autoremedy.models.webhook import WebhookLimits


def _slack_user() -> Any:
    return Field(
        default=None,
        pattern=r"^[UW][A-Z0-9]{2,31}$",
        description=(
            "the Slack user id (U...) of the person who holds it: a manual run that person asked for in Slack cannot "
            "be approved or denied with this credential either; a credential without it cannot decide runs asked "
            "for in Slack (it cannot be told apart from the person who asked)"
        ),
    )


class ApiToken(_Section):
    """A named bearer token with its scopes; its `name` is what the audit log records (as `token:<name>`)."""

    name: str = Field(description="who holds it, recorded in the audit log as `token:<name>` (e.g. ops-cli)")
    token: SecretStr | None = Field(default=None, description="the token; or token_file, or the env override")
    token_file: Path | None = Field(default=None, description="a file holding the token (e.g. a mounted Secret)")
    scopes: list[ScopeName] = Field(
        min_length=1, description="what it may do: ingest (POST alerts), read (runs, status), control (approve...)"
    )
    slack_user: str | None = _slack_user()

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, name: str) -> str:
        if not _CREDENTIAL_NAME.match(name):
            raise ValueError(f"token name {name!r}: 1-64 of letters, digits, `_.@-`, starting with a letter or digit")
        return name

    @field_validator("token")
    @classmethod
    def _token_not_empty(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("a token must not be empty")
        return token


class ApiUser(_Section):
    """An HTTP basic-auth user with scopes (a person signing in to the console, say); recorded as `basic:<name>`."""

    name: str = Field(description="the user name, recorded in the audit log as `basic:<name>`")
    password: SecretStr | None = Field(default=None, description="the password; or password_file, or the env")
    password_file: Path | None = Field(default=None, description="a file holding the password")
    scopes: list[ScopeName] = Field(min_length=1, description="what the user may do: ingest, read, control")
    slack_user: str | None = _slack_user()

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, name: str) -> str:
        if not _CREDENTIAL_NAME.match(name):
            raise ValueError(f"user name {name!r}: 1-64 of letters, digits, `_.@-`, starting with a letter or digit")
        return name

    @field_validator("password")
    @classmethod
    def _password_not_empty(cls, password: SecretStr | None) -> SecretStr | None:
        if password is not None and not password.get_secret_value():
            raise ValueError("a password must not be empty")
        return password


class AuthSettings(_Section):
    bearer_tokens: list[SecretStr] = Field(
        default_factory=list, description="legacy `Authorization: Bearer` tokens: scopes ingest and read"
    )
    basic_users: dict[str, SecretStr] = Field(
        default_factory=dict, description="legacy HTTP basic auth, user to password: scopes ingest and read"
    )
    tokens: list[ApiToken] = Field(
        default_factory=list, description="named bearer tokens with scopes (ingest, read, control)"
    )
    users: list[ApiUser] = Field(default_factory=list, description="HTTP basic-auth users with scopes")
    allow_anonymous: bool = Field(
        default=False,
        description="serve without credentials on a non-loopback address (anonymous callers get ingest and read)",
    )
    protect_metrics: bool = Field(default=False, description="GET /metrics needs a credential with the read scope")
    max_failures: int = Field(
        default=10, ge=1, description="failed sign-ins (API or console) from one address before it must wait"
    )
    failure_window: Duration = Field(
        default=timedelta(minutes=10),
        description="how long a failed sign-in counts; an address over max_failures waits until its oldest leaves",
    )

    @property
    def has_credentials(self) -> bool:
        return bool(self.bearer_tokens or self.basic_users or self.tokens or self.users)

    @field_validator("bearer_tokens")
    @classmethod
    def _tokens_not_empty(cls, tokens: list[SecretStr]) -> list[SecretStr]:
        if any(not token.get_secret_value().strip() for token in tokens):
            raise ValueError("a bearer token must not be empty")
        return tokens

    @field_validator("basic_users")
    @classmethod
    def _users_not_empty(cls, users: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if any(not user.strip() or not password.get_secret_value() for user, password in users.items()):
            raise ValueError("a basic auth user needs a name and a non-empty password")
        return users

    @field_validator("tokens")
    @classmethod
    def _token_names_unique(cls, tokens: list[ApiToken]) -> list[ApiToken]:
        names = [token.name for token in tokens]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"token names must be unique: {', '.join(duplicates)} appear more than once")
        for token in tokens:
            if (token.token is None) == (token.token_file is None):
                raise ValueError(f"token {token.name!r}: set exactly one of token and token_file")
        return tokens

    @field_validator("users")
    @classmethod
    def _user_names_unique(cls, users: list[ApiUser]) -> list[ApiUser]:
        names = [user.name for user in users]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"user names must be unique: {', '.join(duplicates)} appear more than once")
        for user in users:
            if (user.password is None) == (user.password_file is None):
                raise ValueError(f"user {user.name!r}: set exactly one of password and password_file")
        return users

    @model_validator(mode="after")
    def _one_user_one_entry(self) -> AuthSettings:
        both = sorted({user.name for user in self.users} & set(self.basic_users))
        if both:
            raise ValueError(f"{', '.join(both)}: in both users and basic_users; keep one (users has scopes)")
        return self


class UiSettings(_Section):
    enabled: bool = Field(default=True, description="serve the web console at /ui/")
    secure_cookies: bool = Field(
        default=False,
        description="mark the session cookie Secure (always done when the request came over TLS); set it behind a "
        "TLS-terminating proxy",
    )
    session_ttl: Duration = Field(default=timedelta(hours=12), description="a console sign-in lasts this long")

    @field_validator("session_ttl")
    @classmethod
    def _ttl_positive(cls, ttl: timedelta) -> timedelta:
        if ttl <= timedelta(0):
            raise ValueError("session_ttl must be longer than zero")
        return ttl


class ServerSettings(_Section):
    listen: str = Field(default=f"127.0.0.1:{DEFAULT_PORT}", description="host:port to listen on")
    auth: AuthSettings = Field(default_factory=AuthSettings)
    ui: UiSettings = Field(default_factory=UiSettings)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0, description="larger webhooks get 413")
    limits: WebhookLimits = Field(default_factory=WebhookLimits, description="per alert: bigger ones get 400")
    header_timeout: Duration = Field(
        default=timedelta(seconds=10),
        gt=timedelta(0),
        description="a connection that has not sent a request's headers this long after opening, or after the "
        "previous response, is closed (idle keep-alive connections and slow headers)",
    )
    body_timeout: Duration = Field(
        default=timedelta(seconds=30),
        gt=timedelta(0),
        description="a webhook body not received whole this long after its headers gets 408 (slow or stuck bodies)",
    )
    shutdown_grace: Duration = Field(default=timedelta(seconds=25), description="SIGTERM: time to drain runs")

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    @field_validator("listen")
    @classmethod
    def _listen_is_host_port(cls, listen: str) -> str:
        host, sep, port = listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"listen {listen!r} must be host:port, e.g. 127.0.0.1:{DEFAULT_PORT}")
        return listen

    def is_loopback(self) -> bool:
        host = self.host_port[0]
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
