"""The Kubernetes actions. Each one reads, decides with `decide.kubernetes`, and writes once, carrying a mark
(`autoremedy.io/*` annotations with the step's operation id) so a step repeated after a crash changes nothing."""

from __future__ import annotations

from typing import Any

from autoremedy.actions.base import ActionContext, ActionResult, ActionSpec, Permission
from autoremedy.actions.kubernetes.client import KubeClient
from autoremedy.actions.kubernetes.guard import api_exception, dry_run_arg, target_problem, with_retries
from autoremedy.actions.kubernetes.inputs import (
    DeletePodInputs,
    PatchServiceSelectorInputs,
    RestartInputs,
    RollbackInputs,
    ScaleInputs,
    WaitRolloutInputs,
)
from autoremedy.actions.kubernetes.workloads import Workloads
from autoremedy.config.settings import NamespacePolicy
from autoremedy.decide.kubernetes import (
    controller_of,
    desired_replicas,
    hpa_bounds,
    hpa_for,
    rollback_source,
    rollout_status,
    template_for_rollback,
)

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
RESTART_MARK = "autoremedy.io/restart"
SCALE_MARK = "autoremedy.io/scale"
ROLLBACK_MARK = "autoremedy.io/rollback"

# The RBAC each action needs: exactly the calls it makes (tests/integration/test_action_permissions.py records
# them against the fake API server), and what deploy/kubernetes/base/rbac.yaml grants.
_READ_PATCH = ("get", "patch")
SCALE_PERMISSIONS = (
    Permission("apps", "deployments", _READ_PATCH),
    Permission("apps", "statefulsets", _READ_PATCH),
    Permission("autoscaling", "horizontalpodautoscalers", ("list", "patch")),  # an HPA's bounds are raised instead
)
RESTART_PERMISSIONS = (
    Permission("apps", "deployments", _READ_PATCH),
    Permission("apps", "statefulsets", _READ_PATCH),
    Permission("apps", "daemonsets", _READ_PATCH),
)
DELETE_POD_PERMISSIONS = (Permission("", "pods", ("get", "delete")),)
ROLLBACK_PERMISSIONS = (
    Permission("apps", "deployments", _READ_PATCH),
    Permission("apps", "replicasets", ("list",)),  # the revisions to go back to
)
PATCH_SERVICE_PERMISSIONS = (Permission("", "services", _READ_PATCH),)
WAIT_ROLLOUT_PERMISSIONS = (
    Permission("apps", "deployments", ("get",)),
    Permission("apps", "statefulsets", ("get",)),
    Permission("apps", "daemonsets", ("get",)),
)


class KubernetesActions:
    def __init__(self, client: KubeClient, policy: NamespacePolicy) -> None:
        self._client = client
        self._policy = policy
        self._workloads = Workloads(client)

    def specs(self) -> list[ActionSpec]:
        return [
            ActionSpec(
                "kubernetes.scale",
                ScaleInputs,
                self.scale,
                "Scale a Deployment or StatefulSet within min/max; raises an HPA's bounds instead of fighting it.",
                dry_run=True,
                permissions=SCALE_PERMISSIONS,
            ),
            ActionSpec(
                "kubernetes.restart",
                RestartInputs,
                self.restart,
                "Rollout restart, as `kubectl rollout restart` does it.",
                dry_run=True,
                permissions=RESTART_PERMISSIONS,
            ),
            ActionSpec(
                "kubernetes.delete_pod",
                DeletePodInputs,
                self.delete_pod,
                "Delete a pod so its controller replaces it.",
                dry_run=True,
                permissions=DELETE_POD_PERMISSIONS,
            ),
            ActionSpec(
                "kubernetes.rollback",
                RollbackInputs,
                self.rollback,
                "Restore a Deployment's previous (or a given) revision, as `kubectl rollout undo`.",
                dry_run=True,
                permissions=ROLLBACK_PERMISSIONS,
            ),
            ActionSpec(
                "kubernetes.patch_service_selector",
                PatchServiceSelectorInputs,
                self.patch_service_selector,
                "Point a Service at other pods by replacing its selector.",
                dry_run=True,
                permissions=PATCH_SERVICE_PERMISSIONS,
            ),
            ActionSpec(
                "kubernetes.wait_rollout",
                WaitRolloutInputs,
                self.wait_rollout,
                "Wait until a rollout is complete, within the step timeout.",
                dry_run=True,
                permissions=WAIT_ROLLOUT_PERMISSIONS,
            ),
        ]

    # -- scale --------------------------------------------------------------------------------------------

    async def scale(self, inputs: ScaleInputs, ctx: ActionContext) -> ActionResult:
        if inputs.min > inputs.max:
            return ActionResult.give_up(f"min ({inputs.min}) is greater than max ({inputs.max})")
        return await self._guarded(inputs.namespace, {"name": inputs.name}, ctx, lambda: self._scale(inputs, ctx))

    async def _scale(self, inputs: ScaleInputs, ctx: ActionContext) -> ActionResult:
        obj = await self._workloads.read(inputs.kind, inputs.namespace, inputs.name)
        hpa = await self._hpa(inputs)
        mark = (hpa or obj).get("metadata", {}).get("annotations", {}) or {}
        if mark.get(SCALE_MARK, "").startswith(f"{ctx.operation_id}="):
            return ActionResult.done(f"already scaled by this step ({mark[SCALE_MARK]})")
        try:
            change = desired_replicas(
                int(obj.get("spec", {}).get("replicas", 1)), inputs.replicas, minimum=inputs.min, maximum=inputs.max
            )
        except ValueError as exc:
            return ActionResult.give_up(str(exc))
        data: dict[str, Any] = {"from": change.current, "to": change.desired, "clamped": change.clamped}
        if hpa is not None:
            return await self._raise_hpa(hpa, change.desired, ctx, data)
        annotations = {SCALE_MARK: f"{ctx.operation_id}={change.desired}"}
        patch = {
            "metadata": {"annotations": annotations, "resourceVersion": obj["metadata"]["resourceVersion"]},
            "spec": {"replicas": change.desired},
        }
        await self._workloads.patch(inputs.kind, inputs.namespace, inputs.name, patch, **dry_run_arg(ctx))
        note = " (bounded by min/max)" if change.clamped else ""
        return ActionResult.done(
            f"{inputs.kind} {inputs.namespace}/{inputs.name} scaled from {change.current} to {change.desired}{note}",
            **data,
        )

    async def _hpa(self, inputs: ScaleInputs) -> dict[str, Any] | None:
        api = await self._client.autoscaling()
        listed = await api.list_namespaced_horizontal_pod_autoscaler(
            inputs.namespace, _request_timeout=self._client.request_timeout
        )
        items = (await self._client.as_dict(listed)).get("items", [])
        found = hpa_for(items, kind=inputs.kind, name=inputs.name)
        return dict(found) if found is not None else None

    async def _raise_hpa(
        self, hpa: dict[str, Any], desired: int, ctx: ActionContext, data: dict[str, Any]
    ) -> ActionResult:
        meta = hpa["metadata"]
        bounds = hpa_bounds(hpa, desired)
        patch = {
            "metadata": {
                "annotations": {SCALE_MARK: f"{ctx.operation_id}={desired}"},
                "resourceVersion": meta["resourceVersion"],
            },
            "spec": bounds,
        }
        api = await self._client.autoscaling()
        await api.patch_namespaced_horizontal_pod_autoscaler(
            meta["name"], meta["namespace"], patch, _request_timeout=self._client.request_timeout, **dry_run_arg(ctx)
        )
        previous = {k: hpa.get("spec", {}).get(k) for k in bounds}
        data["hpa"] = {"name": meta["name"], "from": previous, "to": bounds}
        return ActionResult.done(
            f"HorizontalPodAutoscaler {meta['name']} manages the replicas: raised its bounds from "
            f"{previous['minReplicas']}-{previous['maxReplicas']} to {bounds['minReplicas']}-{bounds['maxReplicas']}",
            **data,
        )

    # -- restart ------------------------------------------------------------------------------------------

    async def restart(self, inputs: RestartInputs, ctx: ActionContext) -> ActionResult:
        return await self._guarded(inputs.namespace, {"name": inputs.name}, ctx, lambda: self._restart(inputs, ctx))

    async def _restart(self, inputs: RestartInputs, ctx: ActionContext) -> ActionResult:
        obj = await self._workloads.read(inputs.kind, inputs.namespace, inputs.name)
        template_meta = obj.get("spec", {}).get("template", {}).get("metadata", {}) or {}
        if (template_meta.get("annotations") or {}).get(RESTART_MARK) == ctx.operation_id:
            return ActionResult.done("already restarted by this step")
        now = ctx.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        annotations = {RESTARTED_AT: now, RESTART_MARK: ctx.operation_id}
        patch = {
            "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
            "spec": {"template": {"metadata": {"annotations": annotations}}},
        }
        written = await self._workloads.patch(inputs.kind, inputs.namespace, inputs.name, patch, **dry_run_arg(ctx))
        generation = written.get("metadata", {}).get("generation")
        return ActionResult.done(
            f"{inputs.kind} {inputs.namespace}/{inputs.name} restarted at {now}", restartedAt=now, generation=generation
        )

    # -- delete pod ---------------------------------------------------------------------------------------

    async def delete_pod(self, inputs: DeletePodInputs, ctx: ActionContext) -> ActionResult:
        return await self._guarded(inputs.namespace, {"name": inputs.name}, ctx, lambda: self._delete_pod(inputs, ctx))

    async def _delete_pod(self, inputs: DeletePodInputs, ctx: ActionContext) -> ActionResult:
        core = await self._client.core()
        timeout = self._client.request_timeout
        try:
            pod = await self._client.as_dict(
                await core.read_namespaced_pod(inputs.name, inputs.namespace, _request_timeout=timeout)
            )
        except api_exception() as exc:
            if exc.status == 404:  # the end state a delete wants; also what a repeated step finds
                return ActionResult.done(f"pod {inputs.namespace}/{inputs.name} is already gone")
            raise
        controller = controller_of(pod)
        if controller is None and not inputs.allow_orphan:
            return ActionResult.give_up(
                f"pod {inputs.namespace}/{inputs.name} has no controller: nothing would replace it "
                "(set allow_orphan: true to delete it anyway)"
            )
        grace: dict[str, Any] = {}
        if inputs.grace_period_seconds is not None:
            grace["grace_period_seconds"] = inputs.grace_period_seconds
        await core.delete_namespaced_pod(
            inputs.name, inputs.namespace, _request_timeout=timeout, **grace, **dry_run_arg(ctx)
        )
        owner = f"{controller['kind']}/{controller['name']}" if controller else "no controller"
        return ActionResult.done(
            f"pod {inputs.namespace}/{inputs.name} deleted ({owner} replaces it)",
            controller=owner,
            grace_period_seconds=inputs.grace_period_seconds,
        )

    # -- rollback -----------------------------------------------------------------------------------------

    async def rollback(self, inputs: RollbackInputs, ctx: ActionContext) -> ActionResult:
        return await self._guarded(inputs.namespace, {"name": inputs.name}, ctx, lambda: self._rollback(inputs, ctx))

    async def _rollback(self, inputs: RollbackInputs, ctx: ActionContext) -> ActionResult:
        deployment = await self._workloads.read("Deployment", inputs.namespace, inputs.name)
        annotations = deployment.get("metadata", {}).get("annotations") or {}
        if annotations.get(ROLLBACK_MARK) == ctx.operation_id:
            return ActionResult.done("already rolled back by this step")
        replicasets = await self._workloads.replicasets(deployment)
        source, description = rollback_source(deployment, replicasets, to_revision=inputs.to_revision)
        if source is None:
            return ActionResult.give_up(f"cannot roll back Deployment {inputs.namespace}/{inputs.name}: {description}")
        patch = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": deployment["metadata"]["resourceVersion"]},
            {"op": "replace", "path": "/spec/template", "value": template_for_rollback(source)},
            {"op": "add", "path": "/metadata/annotations", "value": {**annotations, ROLLBACK_MARK: ctx.operation_id}},
        ]
        await self._workloads.patch("Deployment", inputs.namespace, inputs.name, patch, **dry_run_arg(ctx))
        current = annotations.get("deployment.kubernetes.io/revision")
        return ActionResult.done(
            f"Deployment {inputs.namespace}/{inputs.name} rolled back from revision {current} "
            f"to the template of {description}",
            from_revision=current,
            to=description,
        )

    # -- service selector ---------------------------------------------------------------------------------

    async def patch_service_selector(self, inputs: PatchServiceSelectorInputs, ctx: ActionContext) -> ActionResult:
        labels = {f"selector key {key!r}": key.rpartition("/")[2].lower() for key in inputs.selector}
        return await self._guarded(
            inputs.namespace, {"name": inputs.name}, ctx, lambda: self._patch_service(inputs, ctx), extra=labels
        )

    async def _patch_service(self, inputs: PatchServiceSelectorInputs, ctx: ActionContext) -> ActionResult:
        core = await self._client.core()
        timeout = self._client.request_timeout
        service = await self._client.as_dict(
            await core.read_namespaced_service(inputs.name, inputs.namespace, _request_timeout=timeout)
        )
        before = service.get("spec", {}).get("selector") or {}
        if before == inputs.selector:
            return ActionResult.done(f"Service {inputs.namespace}/{inputs.name} already selects {inputs.selector}")
        patch = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": service["metadata"]["resourceVersion"]},
            {
                "op": "replace" if "selector" in service.get("spec", {}) else "add",
                "path": "/spec/selector",
                "value": inputs.selector,
            },
        ]
        await core.patch_namespaced_service(
            inputs.name, inputs.namespace, patch, _request_timeout=timeout, **dry_run_arg(ctx)
        )
        return ActionResult.done(
            f"Service {inputs.namespace}/{inputs.name} selector changed from {before} to {inputs.selector}",
            before=before,
            after=inputs.selector,
        )

    # -- wait for rollout ---------------------------------------------------------------------------------

    async def wait_rollout(self, inputs: WaitRolloutInputs, ctx: ActionContext) -> ActionResult:
        return await self._guarded(
            inputs.namespace, {"name": inputs.name}, ctx, lambda: self._wait_rollout(inputs, ctx)
        )

    async def _wait_rollout(self, inputs: WaitRolloutInputs, ctx: ActionContext) -> ActionResult:
        interval = inputs.interval.total_seconds()
        while True:
            obj = await self._workloads.read(inputs.kind, inputs.namespace, inputs.name)
            complete, where = rollout_status(inputs.kind, obj)
            if complete:
                return ActionResult.done(
                    f"rollout of {inputs.kind} {inputs.namespace}/{inputs.name} complete: {where}",
                    status=obj.get("status"),
                )
            if ctx.dry_run:
                return ActionResult.done(f"dry run: rollout not complete now ({where}); would wait for it")
            if ctx.clock.monotonic() + interval >= ctx.deadline - 0.05:
                return ActionResult.give_up(
                    f"rollout of {inputs.kind} {inputs.namespace}/{inputs.name} not "
                    f"complete within the step timeout: {where}",
                    status=obj.get("status"),
                )
            await ctx.clock.sleep(interval)

    # -- shared -------------------------------------------------------------------------------------------

    async def _guarded(
        self, namespace: str, names: dict[str, str], ctx: ActionContext, work: Any, extra: dict[str, str] | None = None
    ) -> ActionResult:
        problem = target_problem(namespace, {**names, **(extra or {})}, self._policy)
        if problem is not None:
            return ActionResult.give_up(f"refused before any call: {problem}")
        result: ActionResult = await with_retries(ctx, work)
        return result
