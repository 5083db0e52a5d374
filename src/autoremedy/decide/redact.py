"""Secrets never reach run records, logs or API answers: values under secret-looking keys are masked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"
_SECRET_KEY = re.compile(
    r"(authorization|password|passwd|passphrase|pwd|secret|token|api[-_]?key|access[-_]?key|credential|cookie|private)",
    re.I,
)


def is_secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def redact(value: Any) -> Any:
    """A copy of value with every entry under a secret-looking key replaced by a marker."""
    if isinstance(value, Mapping):
        return {key: REDACTED if is_secret_key(str(key)) else redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value
