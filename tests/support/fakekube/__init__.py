"""A faithful fake Kubernetes API server for tests that drive the real kubernetes-asyncio client.

    async with FakeKubeApiServer() as kube:
        kube.add(deployment_dict)
        path = kube.write_kubeconfig(tmp_path / "kubeconfig")
        # config.load_kube_config(config_file=str(path), client_configuration=cfg) -> ApiClient(cfg)

See ``server.FakeKubeApiServer`` for the helpers (add/update/get/list/remove, requests, deletions, deny,
fail_next, stall_rollouts) and the module docstrings for which apiserver behaviour each part reproduces.
"""

from .controller import HASH_LABEL, REVISION, REVISION_HISTORY, template_hash
from .errors import ApiError
from .registry import Deletion
from .server import DEFAULT_TOKEN, DEFAULT_USER, FakeKubeApiServer, Fault, RecordedRequest
from .validation import KUBERNETES_VERSION

__all__ = [
    "DEFAULT_TOKEN",
    "DEFAULT_USER",
    "HASH_LABEL",
    "KUBERNETES_VERSION",
    "REVISION",
    "REVISION_HISTORY",
    "ApiError",
    "Deletion",
    "FakeKubeApiServer",
    "Fault",
    "RecordedRequest",
    "template_hash",
]
