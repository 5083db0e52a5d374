"""The built-in actions, and the adapters' actions bound to their clients."""

from __future__ import annotations

from autoremedy.actions.base import ActionRegistry
from autoremedy.actions.builtin import LOG, WAIT, WAIT_FOR_RESOLUTION
from autoremedy.actions.crowdsec import CrowdSecActions
from autoremedy.actions.http import HttpActions
from autoremedy.actions.kubernetes.actions import KubernetesActions
from autoremedy.actions.kubernetes.client import KubeClient
from autoremedy.actions.postgres import PostgresActions
from autoremedy.actions.prometheus import PrometheusActions, PrometheusReader
from autoremedy.config.settings import Settings


def default_registry(settings: Settings | None = None) -> ActionRegistry:
    """Every action; clients are created here but connect only on first use, so `validate` needs no cluster."""
    settings = settings or Settings()
    registry = ActionRegistry([*HttpActions(settings.http).specs(), LOG, WAIT, WAIT_FOR_RESOLUTION])
    kube = KubeClient(settings.kubernetes)
    for spec in KubernetesActions(kube, settings.kubernetes.namespaces).specs():
        registry.register(spec)
    registry.add_closer(kube.close)
    for spec in PrometheusActions(PrometheusReader(settings.prometheus)).specs():
        registry.register(spec)
    # Registered even without a `crowdsec:` section or `databases:`, so playbooks that use them validate
    # everywhere; a step then gives up saying what is missing from the config.
    for spec in CrowdSecActions(settings.crowdsec).specs():
        registry.register(spec)
    for spec in PostgresActions(settings.databases).specs():
        registry.register(spec)
    return registry
