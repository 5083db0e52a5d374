"""The three PATCH bodies kube-apiserver accepts, applied to plain JSON values.

* strategic merge patch (``application/strategic-merge-patch+json``): maps merge recursively, ``null`` deletes a
  key, lists with a ``patchMergeKey`` in the Go types merge element by element on that key, other lists replace.
  The merge keys below are the ones the core/apps/autoscaling types declare (containers by ``name``, container
  ports by ``containerPort``, Service ports by ``port``, ...). Directives: ``$patch: replace|delete``,
  ``$retainKeys``, ``$deleteFromPrimitiveList/<field>``; ``$setElementOrder/<field>`` is accepted and ignored.
* JSON merge patch (``application/merge-patch+json``, RFC 7386): like the above but every list replaces.
* JSON patch (``application/json-patch+json``, RFC 6902): add, remove, replace, move, copy, test.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .errors import bad_request, unprocessable_patch, unsupported_media_type

#: Field name -> patchMergeKey (``patchStrategy:"merge"`` in k8s.io/api). Service ``spec.ports`` is special-cased.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
#: Lists of scalars with ``patchStrategy:"merge"``: the patch's items are added to the existing ones.
MERGED_SCALAR_LISTS = frozenset({"finalizers"})

_DELETE_FROM = "$deleteFromPrimitiveList/"


# -- strategic merge patch ---------------------------------------------------------------------------------


def strategic_merge(original: dict[str, Any], patch: Any) -> dict[str, Any]:
    if not isinstance(patch, dict):
        raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
    return _merge_map(original, patch, ())


def _merge_key(path: tuple[str, ...]) -> str | None:
    if path == ("spec", "ports"):  # ServiceSpec.Ports: patchMergeKey "port"; only Services have spec.ports
        return "port"
    return MERGE_KEYS.get(path[-1]) if path else None


def _merge_map(original: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    directive = patch.get("$patch")
    if directive == "replace":
        replaced: dict[str, Any] = _clean({k: v for k, v in patch.items() if k != "$patch"}, path)
        return replaced
    if directive == "delete":
        return {}
    if directive is not None:
        raise bad_request(f"Unknown patch type: {directive}")
    result = copy.deepcopy(original)
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_value(result.get(key), value, (*path, key))
    _delete_from_scalar_lists(result, patch)
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _delete_from_scalar_lists(result: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, doomed in patch.items():
        if key.startswith(_DELETE_FROM) and isinstance(doomed, list):
            field = key[len(_DELETE_FROM) :]
            result[field] = [v for v in result.get(field) or [] if v not in doomed]


def _merge_value(original: Any, patch: Any, path: tuple[str, ...]) -> Any:
    if isinstance(patch, dict):
        return _merge_map(original if isinstance(original, dict) else {}, patch, path)
    if isinstance(patch, list):
        return _merge_list(original if isinstance(original, list) else [], patch, path)
    return patch


def _merge_list(original: list[Any], patch: list[Any], path: tuple[str, ...]) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_clean(item, path) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    key = _merge_key(path)
    if key is None:
        if path and path[-1] in MERGED_SCALAR_LISTS:
            return original + [v for v in patch if v not in original]
        return [_clean(item, path) for item in patch]
    result = copy.deepcopy(original)
    for item in patch:
        _merge_list_item(result, item, key, path)
    return result


def _merge_list_item(result: list[Any], item: Any, key: str, path: tuple[str, ...]) -> None:
    if not isinstance(item, dict) or key not in item:
        raise bad_request(f"map: {item} does not contain declared merge key: {key}")
    index = next((i for i, cur in enumerate(result) if isinstance(cur, dict) and cur.get(key) == item[key]), None)
    if item.get("$patch") == "delete":
        if index is not None:
            del result[index]
        return
    if index is None:
        result.append(_merge_map({}, item, path))
    else:
        result[index] = _merge_map(result[index], item, path)


def _clean(value: Any, path: tuple[str, ...]) -> Any:
    """A patch value with no original to merge into: drop directives and nulls, as the merge would."""
    if isinstance(value, dict):
        return _merge_map({}, {k: v for k, v in value.items() if k != "$patch"}, path)
    if isinstance(value, list):
        return [_clean(v, path) for v in value]
    return value


# -- JSON merge patch (RFC 7386) ---------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- JSON patch (RFC 6902) ---------------------------------------------------------------------------------


class _PatchFailed(Exception):
    """An operation that does not apply; the server answers 422 without saying which (see errors)."""


def json_patch(document: Any, operations: Any) -> Any:
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(document)
    for op in operations:
        doc = _apply_op(doc, op)
    return doc


def _apply_op(doc: Any, op: dict[str, Any]) -> Any:
    name = op.get("op")
    handler = _OPS.get(name) if isinstance(name, str) else None
    if handler is None:
        raise bad_request(f"Unexpected kind: {name}")
    if not isinstance(op.get("path"), str):
        raise bad_request(f"operation missing path: {op}")
    try:
        return handler(doc, op)
    except _PatchFailed as exc:
        raise unprocessable_patch() from exc


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _PatchFailed(f"invalid JSON pointer {path!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _parent(doc: Any, tokens: list[str]) -> Any:
    for token in tokens[:-1]:
        doc = _child(doc, token)
    return doc


def _child(container: Any, token: str) -> Any:
    if isinstance(container, dict) and token in container:
        return container[token]
    if isinstance(container, list):
        index = _index(container, token, allow_end=False)
        return container[index]
    raise _PatchFailed(f"doc is missing path: {token}")


def _index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise _PatchFailed(f"invalid array index {token!r}")
    index = int(token)
    if index > len(container) or (index == len(container) and not allow_end):
        raise _PatchFailed(f"array index {index} out of bounds")
    return index


def _get(doc: Any, path: str) -> Any:
    value = doc
    for token in _pointer(path):
        value = _child(value, token)
    return value


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], allow_end=True), value)
    else:
        raise _PatchFailed(f"cannot add to {path}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise _PatchFailed("cannot remove the whole document")
    parent = _parent(doc, tokens)
    if isinstance(parent, dict) and tokens[-1] in parent:
        del parent[tokens[-1]]
    elif isinstance(parent, list):
        del parent[_index(parent, tokens[-1], allow_end=False)]
    else:
        raise _PatchFailed(f"doc is missing path: {path}")
    return doc


def _op_add(doc: Any, op: dict[str, Any]) -> Any:
    if "value" not in op:
        raise _PatchFailed("add operation has no value")
    return _add(doc, op["path"], copy.deepcopy(op["value"]))


def _op_remove(doc: Any, op: dict[str, Any]) -> Any:
    return _remove(doc, op["path"])


def _op_replace(doc: Any, op: dict[str, Any]) -> Any:
    if "value" not in op:
        raise _PatchFailed("replace operation has no value")
    _get(doc, op["path"])  # must exist
    if op["path"] == "":
        return copy.deepcopy(op["value"])
    return _add(_remove(doc, op["path"]), op["path"], copy.deepcopy(op["value"]))


def _op_move(doc: Any, op: dict[str, Any]) -> Any:
    source = str(op.get("from", ""))
    if op["path"].startswith(source + "/"):
        raise _PatchFailed("cannot move a value into one of its children")
    value = _get(doc, source)
    return _add(_remove(doc, source), op["path"], value)


def _op_copy(doc: Any, op: dict[str, Any]) -> Any:
    return _add(doc, op["path"], copy.deepcopy(_get(doc, str(op.get("from", "")))))


def _op_test(doc: Any, op: dict[str, Any]) -> Any:
    if not json_equal(_get(doc, op["path"]), op.get("value")):
        raise _PatchFailed(f"testing value {op['path']} failed")
    return doc


_OPS: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    "add": _op_add,
    "remove": _op_remove,
    "replace": _op_replace,
    "move": _op_move,
    "copy": _op_copy,
    "test": _op_test,
}


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's ``==``, ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and isinstance(a, str) == isinstance(b, str)


def apply_patch(content_type: str, original: dict[str, Any], patch: Any) -> Any:
    """Apply ``patch`` (already JSON-decoded) by its media type; raises ``ApiError`` 400/415/422."""
    appliers: dict[str, Callable[[dict[str, Any], Any], Any]] = {
        "application/strategic-merge-patch+json": strategic_merge,
        "application/merge-patch+json": merge_patch,
        "application/json-patch+json": json_patch,
    }
    applier = appliers.get(content_type)
    if applier is None:  # includes application/apply-patch+yaml: server-side apply is not implemented
        raise unsupported_media_type()
    return applier(original, patch)
