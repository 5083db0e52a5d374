"""Models built from values that are already what their fields hold, without validating them again.

A storm turns every alert into a `NewEvent` at ingest and every stored row into an `AlertEvent` when it is
decided: tens of thousands a second, from data the webhook model validated or the store kept. pydantic's
`model_construct` skips validation but loops over the fields in Python (slower than validating); `trusted` does
what it does for a model with every field given, in four assignments. Only for models without validators that
change values, `model_post_init`, private attributes or extra fields (checked once per model), and only with
values of the fields' types: tests/unit/test_trusted.py holds each use to the model's own validation.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
_set = object.__setattr__


def trusted(model: type[M], values: dict[str, Any]) -> M:
    """An instance of `model` holding `values` (every field, already of its type) as they are."""
    instance = model.__new__(model)
    _set(instance, "__dict__", values)
    _set(instance, "__pydantic_fields_set__", _fields(model))
    _set(instance, "__pydantic_extra__", None)
    _set(instance, "__pydantic_private__", None)
    return instance


@cache
def _fields(model: type[BaseModel]) -> frozenset[str]:
    """The model's field names, once it is known to be a model `trusted` may build."""
    plain = (
        not model.__pydantic_root_model__
        and not model.__private_attributes__
        and model.model_config.get("extra") != "allow"
        and model.__pydantic_post_init__ is None
    )
    if not plain:
        raise TypeError(f"{model.__name__} cannot be built without validation (root, private, extra or post-init)")
    return frozenset(model.model_fields)
