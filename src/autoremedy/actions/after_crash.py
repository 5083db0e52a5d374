"""What a crash between an action's call and the record of its outcome can cause, per action, for the reference.

A step whose outcome was not recorded runs again when its run is resumed (after a restart, or by the instance that
took the run over). The executor gives every step an operation id, `<run id>.<step index>`, the same on every
repeat; actions that can leave a mark with it (an annotation, a note, a request header) use it to find their own
earlier call, the others are safe to repeat or say here what a repeat does.
"""

from __future__ import annotations

from autoremedy.actions.base import ActionSpec

AFTER_CRASH: dict[str, str] = {
    "http.request": (
        "the request is sent again. Every attempt and every repeat carries the same `Idempotency-Key: <run id>."
        "<step index>` header (the IETF httpapi draft), so a receiver that keeps the keys it has seen can drop the "
        "repeat; a receiver that does not, or a step with `idempotency_key: false` (or its own header), sees the "
        "request twice."
    ),
    "kubernetes.scale": (
        "none: the scale leaves an annotation with the step's operation id, and a repeat that finds it stops."
    ),
    "kubernetes.restart": (
        "none: the restart annotation carries the step's operation id, and a repeat that finds it does not restart "
        "the workload a second time."
    ),
    "kubernetes.delete_pod": (
        "a repeat finds the pod gone (done) or, when the controller re-created it under the same name (a "
        "StatefulSet), deletes the new pod too: a second restart of that one pod."
    ),
    "kubernetes.rollback": (
        "none: the rollback leaves an annotation with the step's operation id, and a repeat that finds it stops."
    ),
    "kubernetes.patch_service_selector": "none: the same selector is written again.",
    "kubernetes.wait_rollout": "the wait starts again; it only reads.",
    "crowdsec.ban": (
        "none: a repeat finds the active decision on the address and pushes no second one (the decision's note "
        "names the step's operation id)."
    ),
    "crowdsec.unban": "none: a repeat finds no decision left to delete.",
    "postgres.promote": "none: a repeat finds the replica already primary and stops.",
    "postgres.check_writable": "the check runs again (a temporary table, dropped at commit).",
}


def after_crash(spec: ActionSpec) -> str:
    return spec.after_crash or AFTER_CRASH.get(spec.name, "")
