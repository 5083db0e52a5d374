"""The built-in actions. Later adapters add theirs in `default_registry`."""

from __future__ import annotations

from autoremedy.actions.base import ActionRegistry
from autoremedy.actions.builtin import LOG, WAIT
from autoremedy.actions.http import HTTP_REQUEST


def default_registry() -> ActionRegistry:
    return ActionRegistry([HTTP_REQUEST, LOG, WAIT])
