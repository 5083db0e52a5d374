"""What every settings section shares: strict frozen models, the default port, credential names."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

DEFAULT_PORT = 9095


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ScopeName = Literal["ingest", "read", "control"]
_CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")

_API_PRINCIPALS = ("token:", "basic:")
