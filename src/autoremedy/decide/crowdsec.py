"""Pure decisions behind the CrowdSec actions: what a ban value means, whether it may be banned at all, the alert
that carries the ban, Go durations (the Local API speaks them), and whether a ban already exists.

Nothing here talks to the Local API; `now` is a parameter.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Scope = Literal["Ip", "Range"]
ORIGIN = "autoremedy"
_REASON_LIMIT = 256


@dataclass(frozen=True, slots=True)
class Protected:
    """A network that is never banned, and why."""

    network: IPNetwork
    why: str


def _protected(cidr: str, why: str) -> Protected:
    return Protected(ipaddress.ip_network(cidr), why)


# Written out rather than taken from `ipaddress`' is_private/is_global: those flags changed between Python patch
# releases and also cover documentation ranges, which are harmless to ban. Most specific entries first, so a
# refusal names the narrowest reason.
BUILTIN_ALLOWLIST: tuple[Protected, ...] = (
    _protected("0.0.0.0/8", "unspecified ('this network')"),
    _protected("10.0.0.0/8", "private (RFC 1918)"),
    _protected("100.64.0.0/10", "shared address space (carrier-grade NAT, RFC 6598)"),
    _protected("127.0.0.0/8", "loopback"),
    _protected("169.254.0.0/16", "link-local"),
    _protected("172.16.0.0/12", "private (RFC 1918)"),
    _protected("192.168.0.0/16", "private (RFC 1918)"),
    _protected("224.0.0.0/4", "multicast"),
    _protected("240.0.0.0/4", "reserved (and broadcast)"),
    _protected("::/128", "unspecified"),
    _protected("::1/128", "loopback"),
    _protected("::/8", "reserved (IETF)"),
    _protected("fc00::/7", "private (unique local)"),
    _protected("fe80::/10", "link-local"),
    _protected("fec0::/10", "reserved (deprecated site-local)"),
    _protected("ff00::/8", "multicast"),
)

_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


@dataclass(frozen=True, slots=True)
class BanTarget:
    """A parsed ban value: one address (scope Ip) or a network (scope Range)."""

    network: IPNetwork
    scope: Scope

    @property
    def value(self) -> str:
        """The value sent to the Local API: an address, or a CIDR."""
        return str(self.network.network_address) if self.scope == "Ip" else str(self.network)

    @property
    def query(self) -> dict[str, str]:
        """The query parameter that selects decisions on this value (`ip=` or `range=`)."""
        return {"ip": self.value} if self.scope == "Ip" else {"range": self.value}


def parse_target(text: str) -> BanTarget:
    """An address (`203.0.113.7`, `2001:db8::1`) or a network (`203.0.113.0/24`); ValueError saying why not.

    An IPv4-mapped IPv6 address (`::ffff:203.0.113.7`) is the IPv4 address it maps."""
    value = text.strip()
    if not value:
        raise ValueError("the ip input is empty")
    if "%" in value:  # Python accepts `fe80::1%eth0`; CrowdSec would ban a string that names an interface
        raise ValueError(f"{value!r} is a scoped IPv6 address (%zone): ban the address without its zone, or nothing")
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or CIDR") from None
        raise ValueError(f"{value!r} has host bits set: write the network, {loose}") from None
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
        if network.prefixlen != 128:
            raise ValueError(f"{value!r} is an IPv4-mapped IPv6 range: write it as an IPv4 range")
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        network = ipaddress.ip_network(mapped)
    scope: Scope = "Ip" if network.prefixlen == network.max_prefixlen else "Range"
    return BanTarget(network, scope)


def parse_allowlist(cidrs: Iterable[str]) -> tuple[Protected, ...]:
    """Configured CIDRs (validated at load time) as protected networks."""
    return tuple(Protected(ipaddress.ip_network(cidr, strict=False), "in crowdsec.allowlist") for cidr in cidrs)


def ban_refusal(
    target: BanTarget, *, allowlist: Sequence[Protected], max_prefix_v4: int, max_prefix_v6: int
) -> str | None:
    """Why this value must not be banned, or None. Refused: anything inside a protected network; a range wider than
    the configured prefix; a range that overlaps a protected network (a ban on 10.0.0.0/7 would ban 10.0.0.0/8).
    The reasons are tried in that order, so the message names the most telling one."""
    network = target.network
    embedded = _embedded_ipv4_refusal(target, allowlist)
    if embedded is not None:
        return embedded
    protected = [p for p in (*BUILTIN_ALLOWLIST, *allowlist) if p.network.version == network.version]
    for entry in protected:
        if _inside(network, entry.network):
            return f"{target.value} is in {entry.network}, {entry.why}: never banned"
    limit, setting = (
        (max_prefix_v4, "crowdsec.max_prefix") if network.version == 4 else (max_prefix_v6, "crowdsec.max_prefix_v6")
    )
    if network.prefixlen < limit:
        return f"{network} is wider than /{limit} ({setting})"
    for entry in protected:
        if network.overlaps(entry.network):
            return f"{target.value} overlaps {entry.network}, {entry.why}: never banned"
    return None


# IPv6 prefixes that carry an IPv4 address inside them: (prefix, bit offset of the IPv4 address from the top).
# NAT64's 64:ff9b::/96 needs no entry: it lies in ::/8, which is never banned.
_EMBEDDING: tuple[tuple[ipaddress.IPv6Network, int, str], ...] = ((ipaddress.IPv6Network("2002::/16"), 16, "6to4"),)


def _embedded_ipv4_refusal(target: BanTarget, allowlist: Sequence[Protected]) -> str | None:
    """A 6to4 address (2002:AABB:CCDD::/48) routes to the IPv4 address it embeds: banning it bans that IPv4 host,
    so the IPv4 allowlist applies to it."""
    network = target.network
    if not isinstance(network, ipaddress.IPv6Network):
        return None
    for prefix, offset, name in _EMBEDDING:
        if not network.subnet_of(prefix):
            continue
        bits = max(min(network.prefixlen - offset, 32), 0)
        first = (int(network.network_address) >> (128 - offset - 32)) & 0xFFFFFFFF
        ipv4 = ipaddress.IPv4Network((first >> (32 - bits) << (32 - bits), bits))
        for entry in (*BUILTIN_ALLOWLIST, *allowlist):
            if isinstance(entry.network, ipaddress.IPv4Network) and ipv4.overlaps(entry.network):
                return f"{target.value} is {name} for {ipv4}, which is in {entry.network}, {entry.why}: never banned"
    return None


def _inside(inner: IPNetwork, outer: IPNetwork) -> bool:
    return int(outer.network_address) <= int(inner.network_address) and int(inner.broadcast_address) <= int(
        outer.broadcast_address
    )


def ban_alert(target: BanTarget, *, duration: timedelta, reason: str, note: str, now: datetime) -> dict[str, Any]:
    """The alert for `POST /v1/alerts` (send a list of one) carrying one ban decision, shaped as `cscli decisions
    add --reason` shapes it: the reason is the scenario people see in `cscli decisions list`. Every field is
    present (a missing one gives 500); expiry counts from `stop_at`, so it is now."""
    scenario = shorten(reason)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    source: dict[str, str] = {"scope": target.scope, "value": target.value}
    source["ip" if target.scope == "Ip" else "range"] = target.value
    return {
        "scenario": scenario,
        "scenario_hash": "",
        "scenario_version": "",
        "message": f"{note}: {scenario}",
        "events_count": 1,
        "start_at": stamp,
        "stop_at": stamp,
        "capacity": 0,
        "leakspeed": "0",
        "simulated": False,
        "events": [],
        "source": source,
        "decisions": [
            {
                "duration": go_duration(duration),
                "type": "ban",
                "scope": target.scope,
                "value": target.value,
                "origin": ORIGIN,
                "scenario": scenario,
            }
        ],
    }


def shorten(text: str, limit: int = _REASON_LIMIT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# -- Go durations -------------------------------------------------------------------------------------------

_GO_UNITS_MS = (("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1))
_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
_GO_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(value: timedelta) -> str:
    """A duration as Go's time.ParseDuration reads it (`96h`, `1h30m`, `2m0s500ms` -> `2m500ms`): the Local API
    rejects Prometheus' `d`, `w` and `y` units (500, `unknown unit "d"`)."""
    millis = value // timedelta(milliseconds=1)
    if millis <= 0:
        raise ValueError("a ban lasts longer than zero")
    parts = []
    for unit, size in _GO_UNITS_MS:
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_go_duration(text: str) -> timedelta | None:
    """`3h59m59.6s` (what the Local API reports as a decision's remaining time) -> timedelta; None if unreadable."""
    value = text.strip()
    sign = -1 if value.startswith("-") else 1
    value = value.lstrip("+-")
    if not value or _GO_PART.sub("", value):
        return None
    seconds = sum(float(number) * _GO_SECONDS[unit] for number, unit in _GO_PART.findall(value))
    return timedelta(seconds=sign * seconds)


# -- decisions as the Local API lists them ------------------------------------------------------------------


def decisions_on(decisions: Iterable[Mapping[str, Any]], target: BanTarget) -> list[Mapping[str, Any]]:
    """Active, non-simulated ban decisions on exactly this value (not on a wider range that contains it)."""
    found = []
    for decision in decisions:
        if str(decision.get("type", "")).lower() != "ban" or decision.get("simulated"):
            continue
        try:
            network = ipaddress.ip_network(str(decision.get("value", "")), strict=False)
        except ValueError:
            continue
        remaining = parse_go_duration(str(decision.get("duration", "")))
        if network == target.network and (remaining is None or remaining > timedelta(0)):
            found.append(decision)
    return found


def longest_remaining(decisions: Iterable[Mapping[str, Any]]) -> timedelta | None:
    remaining = [parse_go_duration(str(d.get("duration", ""))) for d in decisions]
    known = [r for r in remaining if r is not None]
    return max(known) if known else None


def alerts_decisions(alerts: Any) -> list[Mapping[str, Any]]:
    """The decisions inside `GET /v1/alerts` answers (a list of alerts, or `null`)."""
    found: list[Mapping[str, Any]] = []
    for alert in alerts or []:
        if isinstance(alert, Mapping):
            found.extend(d for d in alert.get("decisions") or [] if isinstance(d, Mapping))
    return found


def token_lifetime(expire: Any, issued: datetime) -> timedelta | None:
    """How long a Local API JWT lasts: its `expire` (RFC 3339) minus the LAPI's time when it was issued; None when
    unreadable (the token is then kept until the LAPI refuses it)."""
    try:
        parsed = datetime.fromisoformat(str(expire))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)) - issued
