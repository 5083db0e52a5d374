"""Whether a rendered URL may be called: the host is the playbook's, not the alert's.

Checked after rendering and before any request: no userinfo; the host[:port] is the one written literally in the
template, or, when the template builds the host, matches `http.allowed_hosts`; link-local and cloud metadata
addresses are refused unless `http.allow_link_local`. Pure: names are not resolved here (the action does that).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Final
from urllib.parse import urlsplit

_TAG = re.compile(r"\{[{%#]")
_WHOLE_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
# A port after a name, an IPv4 address or a bracketed IPv6 one: `fd00::5` is an address, not `fd00:` port 5.
_PATTERN_PORT = re.compile(r"(?P<glob>[^:\[\]]*|\[[^\]]*\]):(?P<port>\d+)")
_LITERAL_PORT = re.compile(r":(\d+)\Z")
_WRITTEN_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
LINK_LOCAL_NETWORKS: Final = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local: AWS/GCP/Azure/OpenStack metadata, ECS task roles
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
)
METADATA_NAMES: Final = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    allowed_hosts: tuple[str, ...] = ()
    """Glob patterns (`*.hooks.example.com`) a host built by the template may match; matched case-insensitively.
    A pattern may end with a port (`hooks.example.com:8443`); without one, only the scheme's default port or a
    port the template writes literally is allowed, so a label cannot append a port to an allowed host."""
    allow_link_local: bool = False


def literal_authority(template: str) -> str | None:
    """The `host[:port]` a URL template writes literally before its first tag, or None when a tag builds it.

    `https://api.example.com/{{ path }}` -> `api.example.com`; `https://api.example.com{{ path }}` ->
    `api.example.com` too, but unfinished (see `_written_authority`); `{{ params.url }}` and `https://{{ h }}/x`
    -> None."""
    return _written_authority(template)[0]


def _written_authority(template: str) -> tuple[str | None, bool]:
    """(the literal authority, whether the template finishes it before any tag)."""
    tag = _TAG.search(template)
    prefix = template[: tag.start()] if tag else template
    if "://" not in prefix:
        return None, False
    after = prefix.split("://", 1)[1]
    authority = re.split(r"[/?#]", after, maxsplit=1)[0]
    finished = tag is None or len(authority) < len(after)
    return authority.rpartition("@")[2].lower() or None, finished


def is_ip_literal(host: str) -> bool:
    """A host written as an IP address (IPv6 in brackets or not, with or without a zone)."""
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def is_link_local(address: str) -> bool:
    """A literal IP in a link-local or metadata network (an IPv4-mapped IPv6 address counts as its IPv4)."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        ip = _embedded_ipv4(ip) or ip
    return any(ip in network for network in LINK_LOCAL_NETWORKS)


_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one reaches: IPv4-mapped, NAT64 (64:ff9b::a9fe:a9fe) and 6to4 (2002:a9fe:a9fe::)."""
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.ipv4_mapped or ip.sixtofour


REMEMBERED_URL_LENGTH: Final = 2048
"""URLs up to this long have their check remembered; a longer one (labels can make it megabytes) is checked afresh,
so that hostile labels cannot pin thousands of long URLs in memory."""


def url_refusal(template: str, rendered: str, policy: UrlPolicy) -> str | None:
    """Why `rendered` (from `template`) must not be called, or None."""
    if len(rendered) + len(template) <= REMEMBERED_URL_LENGTH:
        return _remembered_url_refusal(template, rendered, policy)
    return _url_refusal(template, rendered, policy)


@lru_cache(maxsize=4096)  # every run of a playbook asks about the same URLs, at decision and at execution
def _remembered_url_refusal(template: str, rendered: str, policy: UrlPolicy) -> str | None:
    return _url_refusal(template, rendered, policy)


def _url_refusal(template: str, rendered: str, policy: UrlPolicy) -> str | None:
    try:
        parts = urlsplit(rendered.strip())
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError as exc:
        return f"url is not a valid URL: {exc}"
    if parts.scheme not in ("http", "https") or not host:
        return "url must be an http:// or https:// URL with a host"
    if "@" in parts.netloc:
        return 'url carries credentials (user:password@): refused; send them in a header with secret("NAME")'
    if "\\" in parts.netloc:  # the URL standard (pydantic, browsers) ends the host at a backslash, Python does not
        return "url has a backslash in its host: refused (it would end the host there: write / instead)"
    if (is_link_local(host) or host in METADATA_NAMES) and not policy.allow_link_local:
        return f"url host {host} is a link-local or cloud metadata address: refused (http.allow_link_local)"
    return _host_refusal(template, host, port, bracketed="[" in parts.netloc, policy=policy)


def _host_refusal(template: str, host: str, port: int | None, *, bracketed: bool, policy: UrlPolicy) -> str | None:
    """A finished literal authority must be rendered as written. One a tag follows directly
    (`https://api.example.com{{ path }}`) may be as written, or else the host was built: then, as for a host
    written by a tag, it must match http.allowed_hosts."""
    literal, finished = _written_authority(template)
    shown = f"[{host}]" if bracketed else host  # an IPv6 literal keeps its brackets in the written authority
    authority = shown if port is None else f"{shown}:{port}"
    if literal is not None and authority == literal:
        return None
    if literal is not None and finished:
        return f"url host {authority} is not {literal}, the host the playbook writes: refused"
    matching = [pattern for pattern in policy.allowed_hosts if fnmatchcase(host, _pattern_host(pattern))]
    if not matching:
        return f"url host {host} is built by the template and matches no http.allowed_hosts pattern: refused"
    if port is None or port == _written_port(template) or any(port == _pattern_port(p) for p in matching):
        return None
    return (
        f"url port {port} is neither written in the template nor named by an http.allowed_hosts pattern "
        f"({host}:{port}): refused"
    )


def _pattern_host(pattern: str) -> str:
    found = _PATTERN_PORT.fullmatch(pattern)
    return (found.group("glob") if found else pattern).strip("[]").lower()


def _pattern_port(pattern: str) -> int | None:
    found = _PATTERN_PORT.fullmatch(pattern)
    return int(found.group("port")) if found else None


def _written_port(template: str) -> int | None:
    """The port a template writes literally at the end of the authority it builds (`http://{{ svc }}.ns:8080/`).

    Only after a scheme the template writes itself: a tag before the `://` may render a whole authority, and then a
    port written further on (`{{ base }}/cb?next=https://x:8443/`) is not the port of the host the tag built."""
    found_scheme = _WRITTEN_SCHEME.match(template)
    if found_scheme is None:
        return None
    after = _WHOLE_TAG.sub("\x00", template[found_scheme.end() :])
    authority = re.split(r"[/?#]", after, maxsplit=1)[0]
    if "@" in authority:  # the port of a host the template writes after user info, not of one a tag builds
        return None
    found = _LITERAL_PORT.search(authority)
    return int(found.group(1)) if found else None


def same_origin(url: str, other: str) -> bool:
    """Same scheme, host and port (a redirect may stay there and nowhere else)."""
    a, b = urlsplit(url), urlsplit(other)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port) and "@" not in b.netloc
