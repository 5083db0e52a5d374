"""REST semantics of the apiserver's generic registry, independent of HTTP.

Create, read, list, update, patch and delete for every served resource, the ``scale`` and ``status``
subresources, dry runs, optimistic concurrency and the registry strategies (status kept on spec writes,
generation bumps, defaulting, validation). ``on_change`` tells the controller about every persisted write.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .defaults import apply_defaults, zero_status
from .errors import (
    ApiError,
    Cause,
    already_exists,
    bad_request,
    conflict,
    internal,
    invalid,
    not_found,
)
from .patching import apply_patch
from .resources import PODS, SERVICES, Generation, Resource, lookup
from .selectors import format_selector, labels_match, parse_field_selector, parse_label_selector
from .store import ObjectStore, meta, stamp_new
from .validation import KUBERNETES_VERSION, check_schema, drop_unknown, scale_causes, semantic_causes

JSON = dict[str, Any]
#: Called after each persisted write: (resource, namespace, name, seeded by a test helper).
ChangeHook = Callable[[Resource, str, str, bool], None]

_SYSTEM_FIELDS = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class WriteOptions:
    dry_run: bool = False
    field_validation: str = "Warn"  # the apiserver's default since 1.27: drop unknown fields, warn about them


@dataclass(frozen=True)
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    dry_run: bool = False
    preconditions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Deletion:
    """One DELETE as the server understood it (query and DeleteOptions body merged)."""

    resource: str
    namespace: str
    name: str
    grace_period_seconds: int | None
    propagation_policy: str | None
    dry_run: bool


@dataclass
class Outcome:
    body: JSON
    code: int = 200
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Decoded:
    warnings: list[str]
    causes: list[Cause]


def scale_view(res: Resource, obj: JSON) -> JSON:
    """The ``autoscaling/v1`` Scale the ``/scale`` subresource shows for a workload."""
    m = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in m},
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": format_selector(obj.get("spec", {}).get("selector")),
        },
    }


def _deleted_status(res: Resource, obj: JSON) -> JSON:
    m = obj["metadata"]
    details = {"name": m["name"], "group": res.group, "kind": res.plural, "uid": m["uid"]}
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {k: v for k, v in details.items() if v},
    }


def _dedupe(causes: list[Cause]) -> list[Cause]:
    return list(dict.fromkeys(causes))


def _comparable(obj: JSON) -> JSON:
    out = copy.deepcopy(obj)
    for key in ("resourceVersion", "managedFields"):
        out.get("metadata", {}).pop(key, None)
    return out


class Registry:
    def __init__(self, store: ObjectStore, *, on_change: ChangeHook, version: str = KUBERNETES_VERSION) -> None:
        self.store = store
        self.on_change = on_change
        self.version = version
        self.deletions: list[Deletion] = []

    # -- reads -----------------------------------------------------------------------------------------

    def current(self, res: Resource, namespace: str, name: str) -> JSON:
        obj = self.store.get(res, namespace, name)
        if obj is None:
            raise not_found(res, name)
        return obj

    def read(self, res: Resource, namespace: str, name: str, sub: str | None = None) -> JSON:
        obj = self.current(res, namespace, name)
        return scale_view(res, obj) if sub == "scale" else obj

    def list_objects(
        self, res: Resource, namespace: str | None, label_selector: str = "", field_selector: str = ""
    ) -> JSON:
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, res)
        items = [
            obj
            for obj in self.store.items(res, namespace)
            if labels_match(labels, obj) and all(f.matches(obj) for f in fields)
        ]
        for item in items:  # the real server omits kind/apiVersion on list items of built-in types
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {
            "kind": res.list_kind,
            "apiVersion": res.api_version,
            "metadata": {"resourceVersion": self.store.revision},
            "items": items,
        }

    # -- create ----------------------------------------------------------------------------------------

    def create(self, res: Resource, namespace: str, body: Any, opts: WriteOptions) -> Outcome:
        obj = self._require_object(body)
        decoded = self._decode(res, obj, opts, None, patch_text=None)
        m = meta(obj)
        if m.get("namespace", namespace) != namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if m.get("resourceVersion"):
            raise internal("resourceVersion should not be set on objects to be created")
        self._prepare_create(res, namespace, obj)
        self._validate(res, obj, None, decoded.causes)
        if self.store.get(res, namespace, m["name"]) is not None:
            raise already_exists(res, m["name"])
        if opts.dry_run:
            return Outcome(obj, 201, decoded.warnings)
        stored = self.store.write(res, obj)
        self.on_change(res, namespace, m["name"], False)
        return Outcome(stored, 201, decoded.warnings)

    def seed(self, obj: JSON) -> JSON:
        """Store an object as a test arranges the world: validated, defaulted, its status kept."""
        res = lookup(str(obj.get("kind", "")))
        obj = copy.deepcopy(obj)
        m = meta(obj)
        namespace = m.setdefault("namespace", "default")
        given: JSON = {k: m[k] for k in ("uid", "creationTimestamp") if k in m}
        status = obj.get("status") or {}
        decoded = self._decode(res, obj, WriteOptions(field_validation="Strict"), None, patch_text=None)
        self._prepare_create(res, namespace, obj)
        m.update(given)  # a test may pin a uid, e.g. to point ownerReferences at the object
        obj["status"] = {**obj["status"], **status}
        self._validate(res, obj, None, decoded.causes)
        if self.store.get(res, namespace, m["name"]) is not None:
            raise already_exists(res, m["name"])
        self.store.write(res, obj)
        self.on_change(res, namespace, m["name"], True)
        return self.current(res, namespace, m["name"])

    def _prepare_create(self, res: Resource, namespace: str, obj: JSON) -> None:
        m = meta(obj)
        m["namespace"] = namespace
        if not m.get("name") and m.get("generateName"):
            m["name"] = m["generateName"] + "".join(random.choices(_GENERATE_ALPHABET, k=5))
        for key in (*_SYSTEM_FIELDS, "resourceVersion", "managedFields"):
            m.pop(key, None)
        stamp_new(obj, res)
        obj["status"] = zero_status(res, obj)
        apply_defaults(res, obj)
        if res is SERVICES:
            self._allocate_cluster_ip(obj["spec"])

    def _allocate_cluster_ip(self, spec: JSON) -> None:
        if spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None":
            return
        ip = spec.get("clusterIP") or self.store.next_cluster_ip()
        spec.update({"clusterIP": ip, "clusterIPs": [ip], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"})

    # -- update and patch ------------------------------------------------------------------------------

    def update(
        self, res: Resource, namespace: str, name: str, body: Any, *, opts: WriteOptions, sub: str | None = None
    ) -> Outcome:
        current = self.current(res, namespace, name)
        obj = self._require_object(body)
        decoded = self._decode(res, obj, opts, sub, patch_text=None)
        return self._update(res, current, obj, opts=opts, sub=sub, decoded=decoded)

    def patch(
        self,
        res: Resource,
        namespace: str,
        name: str,
        patch: Any,
        *,
        content_type: str,
        opts: WriteOptions,
        sub: str | None = None,
    ) -> Outcome:
        current = self.current(res, namespace, name)
        view = scale_view(res, current) if sub == "scale" else current
        patched = apply_patch(content_type, view, patch)
        obj = self._require_object(patched)
        decoded = self._decode(res, obj, opts, sub, patch_text=json.dumps(patch))
        return self._update(res, current, obj, opts=opts, sub=sub, decoded=decoded)

    def _update(
        self, res: Resource, current: JSON, body: JSON, *, opts: WriteOptions, sub: str | None, decoded: _Decoded
    ) -> Outcome:
        namespace, name = current["metadata"]["namespace"], current["metadata"]["name"]
        self._check_identity(body, namespace, name)
        self._check_preconditions(res, current, body)
        proposed = self._proposed(res, current, body, sub)
        if sub == "scale":
            causes = _dedupe(decoded.causes + scale_causes(proposed["spec"].get("replicas")))
            if causes:
                raise invalid("autoscaling", "Scale", name, causes)
        else:
            self._validate(res, proposed, current, decoded.causes)
        render: Callable[[JSON], JSON] = (lambda o: scale_view(res, o)) if sub == "scale" else (lambda o: o)
        if _comparable(proposed) == _comparable(current):
            return Outcome(render(current), 200, decoded.warnings)  # a no-op write is not persisted: no new RV
        if opts.dry_run:
            return Outcome(render(proposed), 200, decoded.warnings)
        stored = self.store.write(res, proposed)
        self.on_change(res, namespace, name, False)
        return Outcome(render(stored), 200, decoded.warnings)

    def _proposed(self, res: Resource, current: JSON, body: JSON, sub: str | None) -> JSON:
        if sub == "scale":
            new = copy.deepcopy(current)
            new["spec"]["replicas"] = (body.get("spec") or {}).get("replicas", 0)  # omitempty int32: absent is 0
        elif sub == "status":
            new = copy.deepcopy(current)
            new["status"] = body.get("status") or {}
        else:
            new = copy.deepcopy(body)
            if "status" in current:  # the main resource ignores status, the status subresource everything else
                new["status"] = copy.deepcopy(current["status"])
        m, old = meta(new), current["metadata"]
        for key in (*_SYSTEM_FIELDS, "resourceVersion"):
            if key in old:
                m[key] = old[key]
            else:
                m.pop(key, None)
        m["namespace"], m["name"] = old["namespace"], old["name"]
        new["kind"], new["apiVersion"] = res.kind, res.api_version
        apply_defaults(res, new)
        self._bump_generation(res, current, new)
        return new

    @staticmethod
    def _bump_generation(res: Resource, current: JSON, new: JSON) -> None:
        if res.generation is Generation.NONE:
            return
        changed = new.get("spec") != current.get("spec")
        if res.generation is Generation.SPEC_OR_ANNOTATIONS:
            changed = changed or new["metadata"].get("annotations") != current["metadata"].get("annotations")
        if changed:
            new["metadata"]["generation"] = current["metadata"].get("generation", 0) + 1

    @staticmethod
    def _check_identity(body: JSON, namespace: str, name: str) -> None:
        m = body.get("metadata") or {}
        if m.get("name") != name:
            raise bad_request(
                f"the name of the object ({m.get('name', '')}) does not match the name on the URL ({name})"
            )
        if m.get("namespace", namespace) != namespace:
            theirs = m["namespace"]
            raise bad_request(
                f"the namespace of the object ({theirs}) does not match the namespace on the request ({namespace})"
            )

    @staticmethod
    def _check_preconditions(res: Resource, current: JSON, body: JSON) -> None:
        m, old = body.get("metadata") or {}, current["metadata"]
        if m.get("uid") and m["uid"] != old["uid"]:
            why = f"Precondition failed: UID in precondition: {m['uid']}, UID in object meta: {old['uid']}"
            raise conflict(res, old["name"], why)
        if m.get("resourceVersion") and m["resourceVersion"] != old["resourceVersion"]:
            raise conflict(res, old["name"])

    # -- delete ----------------------------------------------------------------------------------------

    def delete(self, res: Resource, namespace: str, name: str, opts: DeleteOptions) -> Outcome:
        current = self.current(res, namespace, name)
        self._check_delete_preconditions(res, current, opts.preconditions)
        self.deletions.append(
            Deletion(res.plural, namespace, name, opts.grace_period_seconds, opts.propagation_policy, opts.dry_run)
        )
        if res is PODS and self._pod_grace(current, opts) > 0:
            return self._delete_gracefully(current, opts)
        if not opts.dry_run:
            self.store.remove(res, namespace, name)
            self.store.collect_garbage(current["metadata"]["uid"], opts.propagation_policy or "Background")
            self.on_change(res, namespace, name, False)
        return Outcome(current if res.delete_returns_object else _deleted_status(res, current))

    @staticmethod
    def _pod_grace(pod: JSON, opts: DeleteOptions) -> int:
        if opts.grace_period_seconds is not None:
            return opts.grace_period_seconds
        return int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))

    def _delete_gracefully(self, pod: JSON, opts: DeleteOptions) -> Outcome:
        """A pod with a grace period is only marked; the kubelet (the controller here) removes it later."""
        m = pod["metadata"]
        if "deletionTimestamp" in m:
            return Outcome(pod)
        grace = self._pod_grace(pod, opts)
        when = datetime.now(UTC) + timedelta(seconds=grace)
        m["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        m["deletionGracePeriodSeconds"] = grace
        if opts.dry_run:
            return Outcome(pod)
        stored = self.store.write(PODS, pod)
        self.on_change(PODS, m["namespace"], m["name"], False)
        return Outcome(stored)

    @staticmethod
    def _check_delete_preconditions(res: Resource, current: JSON, pre: Mapping[str, str]) -> None:
        old = current["metadata"]
        for key, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            if pre.get(key) and pre[key] != old.get(key):
                why = f"Precondition failed: {label} in precondition: {pre[key]}, {label} in object meta: {old[key]}"
                raise conflict(res, old["name"], why)

    # -- decoding and validation -----------------------------------------------------------------------

    @staticmethod
    def _require_object(body: Any) -> JSON:
        if not isinstance(body, dict):
            raise bad_request("json: cannot unmarshal non-object into Go value of type struct")
        return body

    def _decode(
        self, res: Resource, obj: JSON, opts: WriteOptions, sub: str | None, *, patch_text: str | None
    ) -> _Decoded:
        """What the apiserver's decoder does: check kind/apiVersion, types and unknown fields."""
        kind, api_version = ("Scale", "autoscaling/v1") if sub == "scale" else (res.kind, res.api_version)
        for key, expected in (("apiVersion", api_version), ("kind", kind)):
            if obj.get(key) not in (None, "", expected):
                raise bad_request(f"the {key} in the data ({obj[key]}) does not match the expected {key} ({expected})")
            obj[key] = expected
        report = check_schema(obj, kind, api_version, self.version)
        if report.type_issues:
            issue = report.type_issues[0]
            detail = f"json: cannot unmarshal {issue.got} into Go struct field .{issue.path} of type {issue.expected}"
            raise self._decode_error(kind, api_version, detail, patch_text)
        warnings = [f'unknown field "{path}"' for path in report.unknown_paths]
        if warnings and opts.field_validation == "Strict":
            detail = "strict decoding error: " + ", ".join(warnings)
            raise self._decode_error(kind, api_version, detail, patch_text, strict=True)
        drop_unknown(obj, report)
        return _Decoded(warnings if opts.field_validation == "Warn" else [], report.causes)

    @staticmethod
    def _decode_error(
        kind: str, api_version: str, detail: str, patch_text: str | None, *, strict: bool = False
    ) -> ApiError:
        # POST/PUT bodies fail to decode with 400; a patch whose result does not decode is a 422 on "patch".
        if patch_text is not None:
            cause = Cause("FieldValueInvalid", f"Invalid value: {json.dumps(patch_text)}: {detail}", "patch")
            return invalid("", "", "", [cause])
        if strict:
            return bad_request(detail)
        version = api_version.rsplit("/", 1)[-1]
        return bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {detail}')

    @staticmethod
    def _validate(res: Resource, obj: JSON, old: JSON | None, schema_causes: list[Cause]) -> None:
        causes = _dedupe(schema_causes + semantic_causes(res, obj, old))
        if causes:
            raise invalid(res.group, res.kind, obj["metadata"].get("name", ""), causes)
