"""Secrets of the configuration: every value to mask literally, and the `secrets:` playbooks read by name.

`configured_secrets` walks the settings for every SecretStr (server tokens, channel keys, chatops secrets, the
CrowdSec password and bouncer key, database DSNs and passwords) plus the password in a URL-valued setting and the
`secrets:` values, so a new secret setting is masked without anyone remembering to list it here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, SecretStr

from autoremedy.config.settings import SecretSource, Settings
from autoremedy.decide.planning import Templating
from autoremedy.decide.urls import UrlPolicy


@dataclass(frozen=True, slots=True)
class ResolvedSecrets:
    values: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    """Why a configured secret has no value (an unset variable, an unreadable file), by name."""


def resolve_secret(name: str, source: SecretSource) -> tuple[str | None, str | None]:
    """(value, None) or (None, why not). File paths are already absolute (load_settings resolves them)."""
    if source.env is not None:
        value = os.environ.get(source.env)
        if not value:
            return None, f"secret {name!r}: environment variable {source.env} is not set or empty"
        return value, None
    assert source.file is not None  # SecretSource validates exactly one of env and file
    try:
        value = source.file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        return None, f"secret {name!r}: cannot read {source.file}: {exc.strerror or exc}"
    return (value, None) if value else (None, f"secret {name!r}: {source.file} is empty")


def resolve_secrets(settings: Settings) -> ResolvedSecrets:
    resolved = ResolvedSecrets()
    for name, source in settings.secrets.items():
        value, problem = resolve_secret(name, source)
        if value is not None:
            resolved.values[name] = value
        if problem is not None:
            resolved.problems[name] = problem
    return resolved


def templating_for(settings: Settings) -> Templating:
    """What rendering needs from the settings: the `secrets:` values and where URLs may point."""
    resolved = resolve_secrets(settings)
    urls = UrlPolicy(allowed_hosts=tuple(settings.http.allowed_hosts), allow_link_local=settings.http.allow_link_local)
    return Templating(secrets=resolved.values, urls=urls, unavailable=resolved.problems)


def configured_secrets(settings: Settings) -> tuple[str, ...]:
    """Every secret value in the settings: all SecretStr fields, passwords inside URLs, and `secrets:`."""
    found = [*_secret_strs(settings), *resolve_secrets(settings).values.values()]
    urls = [*found, *_url_settings(settings)]
    found += [password for url in urls for password in _url_passwords(url)]
    return tuple(dict.fromkeys(secret for secret in found if secret))


def _secret_strs(value: Any) -> Iterator[str]:
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_strs(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _secret_strs(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secret_strs(item)


def _url_settings(settings: Settings) -> list[str]:
    urls = [settings.store.url, settings.prometheus.url]
    if settings.crowdsec is not None:
        urls.append(settings.crowdsec.url)
    return urls


def _url_passwords(text: str) -> list[str]:
    """The password of a URL (a DSN), as written and percent-decoded: an error may quote either."""
    if "://" not in text:
        return []
    try:
        password = urlsplit(text).password
    except ValueError:
        return []
    return [password, unquote(password)] if password else []
