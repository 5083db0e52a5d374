"""Who may run which chat command. `chatops.roles` maps Slack user ids (U..., W...) and channel ids (C..., G...)
to a role; a caller has the higher of their own role and the channel's. A role gives the caller's principal its
scopes, and the control service applies the rules every transport shares (approvers, requester) on top.

User groups (S...) are refused by the config: a slash command carries no group membership, and resolving it would
cost a usergroups API call per command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from autoremedy.chatops.context import Caller
from autoremedy.control.credentials import Principal, Scope

ROLES: Final = ("viewer", "operator", "approver", "admin")
MANUAL: Final = "run PLAYBOOK"
"""The manual-run command's key: `run` with labels or --dry-run after the playbook (`run ID` shows a run)."""
DEFAULT_RUNS: Final = 10
MAX_RUNS: Final = 50
_STEERING: Final = frozenset({Scope.READ, Scope.INGEST, Scope.CONTROL})
SCOPES_OF_ROLE: Final[Mapping[str, frozenset[Scope]]] = {
    "viewer": frozenset({Scope.READ}),
    "operator": _STEERING,
    "approver": _STEERING,
    "admin": _STEERING,
}
"""Finer than scopes: which command each role may run is in COMMANDS (approve needs `approver`)."""


@dataclass(frozen=True, slots=True)
class Command:
    role: str | None
    """The least role needed; None: anyone (help)."""
    usage: str
    does: str


COMMANDS: Final = {
    "help": Command(None, "help", "this list"),
    "status": Command("viewer", "status", "queue, active runs, breaker, paused rules"),
    "runs": Command("viewer", "runs [N]", f"the last N runs (default {DEFAULT_RUNS}, at most {MAX_RUNS})"),
    "run": Command("viewer", "run ID", "one run: its guardrail verdict and steps"),
    MANUAL: Command(
        "operator",
        "run PLAYBOOK key=value ... [--dry-run]",
        "a manual run: an alert `manual` with these labels, decided by the rules (and guardrails) that match it",
    ),
    "explain": Command("viewer", "explain FINGERPRINT", "an alert's decisions: rules matched, each verdict and why"),
    "approve": Command("approver", "approve ID [reason]", "let a run awaiting approval go ahead"),
    "deny": Command("approver", "deny ID [reason]", "refuse a run awaiting approval"),
    "pause": Command("operator", "pause [RULE] [-- reason]", "pause one rule, or all automation"),
    "resume": Command("operator", "resume [RULE]", "resume one rule, or all automation"),
}


class Refused(Exception):
    """The caller may not do this; the message says why."""


def role_of(caller: Caller, roles: Mapping[str, str]) -> str | None:
    found = [roles.get(caller.user), roles.get(caller.channel)]
    ranks = [ROLES.index(role) for role in found if role is not None]
    return ROLES[max(ranks)] if ranks else None


def require(caller: Caller, command: str, roles: Mapping[str, str]) -> None:
    """Raise Refused when the caller's role is below the command's."""
    needed = COMMANDS[command].role
    if needed is None:
        return
    role = role_of(caller, roles)
    if role is None or ROLES.index(role) < ROLES.index(needed):
        has = f"your role is `{role}`" if role else "you have no role"
        raise Refused(f"`{command}` needs the role `{needed}` ({has}; see chatops.roles)")


def principal_of(caller: Caller, roles: Mapping[str, str]) -> Principal:
    """The caller as the control service sees them: `slack:<user id>`, the channel for approvers lists."""
    role = role_of(caller, roles)
    scopes = SCOPES_OF_ROLE[role] if role is not None else frozenset()
    return Principal(caller.actor, scopes, via=caller.channel)
